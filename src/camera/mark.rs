//! What one bookmark is, as a vendor receives it: its text (name, description, tags, amount), its window in
//! the units vendors ask for, and every other value a request template can use. The window itself was fixed
//! when the plan was made at ingest (`ingest::bookmark_for`: the camera's offset and rolls) and stored with the
//! job; a [`Mark`] is built once per attempt from that job, and the create, lookup, fallback and thumbnail
//! requests, and `integrations check`, all read the one context it gives.

use chrono_tz::Tz;
use minijinja::{Value, context};

use super::definition::{Definition, Moment};
use super::{Zones, template, text};
use crate::config::CameraSystemConfig;
use crate::money::format_amount;
use crate::store::Job;

/// One job's bookmark, its text written once.
pub struct Mark<'a> {
    job: &'a Job,
    /// The store's zone, for `window.*_local`; UTC for a store the config no longer has.
    zone: Tz,
    name: String,
    description: String,
    tags: Vec<String>,
    /// The amount as people read it (`¥1,280`); empty when the event has none.
    amount_text: String,
}

/// A text cut to a vendor's limit, in characters.
fn cut(text: &str, limit: Option<usize>) -> String {
    match limit {
        Some(n) => text.chars().take(n).collect(),
        None => text.to_string(),
    }
}

impl<'a> Mark<'a> {
    pub fn new(job: &'a Job, zones: &Zones) -> Mark<'a> {
        let event = &job.event;
        let amount = event
            .amount
            .map(|a| format_amount(a, event.currency.as_deref()));
        Mark {
            job,
            zone: zones.get(&event.store).copied().unwrap_or(Tz::UTC),
            name: text::name(event, amount.as_deref()),
            description: text::description(event, amount.as_deref()),
            tags: text::tags(event),
            amount_text: amount.unwrap_or_default(),
        }
    }

    /// Everything a request template of `def` can use at `now_ms`, with the setup values prepared for it.
    pub fn context(
        &self,
        system: &CameraSystemConfig,
        def: &Definition,
        setup: Value,
        now_ms: i64,
    ) -> Value {
        let (event, b) = (&self.job.event, &self.job.bookmark);
        let (start_ms, duration_ms) = match def.moment {
            Moment::Range | Moment::Realtime => (b.start_ms, b.duration_ms),
            Moment::Point => (b.moment_ms, 0),
        };
        let window = template::window(template::Times {
            start_ms,
            duration_ms,
            // The bookmark's moment, not the event's: it carries the camera's clock offset.
            moment_ms: b.moment_ms,
            now_ms,
            zone: self.zone,
        });
        let uuid_name = format!("{}:{}", event.key, b.device);
        context! {
            event => Value::from_serialize(event),
            key => event.key.clone(),
            bookmark_uuid => uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, uuid_name.as_bytes()).to_string(),
            camera => context! { system => b.system.clone(), device => b.device.clone(), name => b.camera.clone() },
            system => template::system_value(system),
            options => Value::from_serialize(&system.options),
            secret => template::secret_value(system),
            name => cut(&self.name, def.max_name),
            description => cut(&self.description, def.max_description),
            window => window,
            setup => setup,
            tags => self.tags.clone(),
            amount_text => self.amount_text.clone(),
            now_ms => now_ms,
        }
    }
}
