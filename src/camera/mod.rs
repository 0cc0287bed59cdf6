//! Running camera-system integrations: one [`CameraSystem`] per `[[camera_systems]]` entry, each able to make a
//! bookmark for a claimed outbox row and to say where its footage opens.
//!
//! An adapter reports what the vendor's answer means for the row (made, retry, failed) and whether the
//! bookmark may now exist on the vendor's side; the delivery layer turns that into the schedule.

mod defined;
pub mod definition;
mod digest;
mod http;
mod mark;
mod registry;
mod site;
mod template;
pub mod text;
mod wire;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;

use crate::config::{CameraSystemConfig, Config};
use crate::store::Job;
pub use defined::Defined;

pub use http::retry_after;
pub use registry::Integrations;
pub use site::check_site;
pub use wire::Trace;

/// Each store's time zone, by store id.
pub type Zones = Arc<HashMap<String, chrono_tz::Tz>>;

/// What a footage link may open: a viewer on the web, or the Nx client app (`nx-vms://`). Anything else
/// (`javascript:`, `data:`) could run in the index's origin, so config load refuses it and the index never sends
/// a browser there.
pub const FOOTAGE_SCHEMES: [&str; 3] = ["https://", "http://", "nx-vms://"];

/// What one delivery attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// The bookmark exists: created now, or found from an earlier attempt.
    Made {
        vendor_id: Option<String>,
        detail: String,
        /// What was made instead of a live mark (`export of the window`), when the event came too late.
        made_as: Option<String>,
    },
    /// Worth trying again. `maybe_created`: the bookmark may exist now (a timeout or 5xx after sending).
    Retry {
        error: String,
        retry_after: Option<Duration>,
        maybe_created: bool,
    },
    /// The vendor asked to slow down (a 429, or a 503 with `Retry-After`) and created nothing: not a failed
    /// attempt, only a pause for the whole camera system. `wait` is what it asked for, if it said.
    Paced {
        wait: Option<Duration>,
        note: String,
    },
    /// Will never succeed as it is (bad credentials, unknown camera): shown to the operator.
    Failed { error: String },
}

/// A still of the camera at a bookmark's moment, as the vendor served it.
#[derive(Debug, Clone)]
pub struct Thumbnail {
    pub content_type: String,
    pub bytes: Vec<u8>,
}

/// What came of asking a camera system for a clip of a bookmark's window (for an evidence package).
#[derive(Debug, Clone)]
pub enum ClipOutcome {
    /// Its definition has no `[clip]`: the package keeps the link and the window.
    NotOffered,
    Downloaded(ClipFile),
    /// Larger than the definition's `max_size`: reading stopped there and nothing of it is kept.
    TooLarge {
        limit: crate::config::Bytes,
    },
    /// Requested but not had (refused, failed, or not ready in the time limit): why, secrets blanked.
    Failed(String),
}

/// A downloaded clip.
#[derive(Debug, Clone)]
pub struct ClipFile {
    pub content_type: String,
    /// The file name's extension, from the download's address or its content type (`mp4`).
    pub extension: String,
    pub bytes: Vec<u8>,
}

#[async_trait]
pub trait CameraSystem: Send + Sync {
    async fn deliver(&self, job: &Job) -> Delivery;

    /// A clip of the bookmark's window, exported by the camera system where its definition says how.
    async fn clip(&self, _job: &Job) -> ClipOutcome {
        ClipOutcome::NotOffered
    }

    /// The still the vendor offers at the bookmark's moment; `Ok(None)` when it offers none.
    async fn thumbnail(&self, job: &Job) -> Result<Option<Thumbnail>, String>;

    /// How many requests it has sent since start (logins, lookups, creates, thumbnails), each of which counts
    /// against the vendor's rate limit.
    fn requests_sent(&self) -> u64;

    /// The rate its vendor's definition allows, if it names one.
    fn rate_limit(&self) -> Option<definition::RateLimit>;
}

/// A link that opens footage at a moment.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FootageLink {
    /// The kind of link in words: the vendor's title for its own client's link, `Web viewer` for the browser's.
    pub label: String,
    pub url: String,
    pub kind: LinkKind,
}

/// Which of a camera's links a footage link is, so a page can say it in the reader's language.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LinkKind {
    /// The vendor definition's link (often its desktop client, `nx-vms://`).
    Vendor,
    /// The camera system's `web_viewer_url`.
    WebViewer,
}

#[derive(Debug, thiserror::Error)]
#[error("camera system {system}: {message}")]
pub struct BuildError {
    pub system: String,
    pub message: String,
}

/// The running set of camera systems, by id.
#[derive(Clone, Default)]
pub struct Cameras {
    systems: HashMap<String, Arc<dyn CameraSystem>>,
}

impl Cameras {
    pub fn build(config: &Config, integrations: &Integrations) -> Result<Cameras, BuildError> {
        let mut systems: HashMap<String, Arc<dyn CameraSystem>> = HashMap::new();
        for sys in &config.camera_systems {
            systems.insert(
                sys.id.clone(),
                Arc::new(adapter(config, sys, integrations, None)?),
            );
        }
        Ok(Cameras { systems })
    }

    pub fn get(&self, system: &str) -> Option<&Arc<dyn CameraSystem>> {
        self.systems.get(system)
    }

    /// The camera systems' ids.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.systems.keys().map(String::as_str)
    }
}

/// The adapter of one camera system; `trace` writes its exchanges down (`tillmark integrations test`).
pub fn adapter(
    config: &Config,
    sys: &CameraSystemConfig,
    integrations: &Integrations,
    trace: Option<Trace>,
) -> Result<Defined, BuildError> {
    let zones: Zones = Arc::new(
        config
            .stores
            .iter()
            .map(|s| (s.id.clone(), s.timezone))
            .collect(),
    );
    let client =
        http::client(sys, config.delivery.timeout.as_std()).map_err(|message| BuildError {
            system: sys.id.clone(),
            message,
        })?;
    Ok(Defined::new(
        sys.integration.name(),
        sys,
        client,
        integrations.clone(),
        zones,
        trace,
    ))
}

/// Where the footage of a bookmark opens: the vendor's client link and, if configured, a browser link.
pub fn footage_links(
    system: &CameraSystemConfig,
    integrations: &Integrations,
    device: &str,
    start_ms: i64,
) -> Vec<FootageLink> {
    let mut links = Vec::new();
    if let Some(def) = integrations.get(system.integration.name())
        && let Some(tpl) = &def.footage_link
        && let Ok(url) = template::render_link(tpl, system, device, start_ms)
    {
        links.push(FootageLink {
            label: def.title.clone(),
            url,
            kind: LinkKind::Vendor,
        });
    }
    if let Some(tpl) = &system.web_viewer_url
        && let Ok(url) = template::render_link(tpl, system, device, start_ms)
    {
        links.push(FootageLink {
            label: "Web viewer".into(),
            url,
            kind: LinkKind::WebViewer,
        });
    }
    links
}
