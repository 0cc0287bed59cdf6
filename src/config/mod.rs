//! The config file: its model, its defaults, and its validation. Every problem in a file is reported at once,
//! each with its key path and line, and a `Config` that exists is valid as a file: the rest of the daemon never
//! re-checks it. What depends on the vendor definitions (the credentials a definition needs, the hosts it
//! contacts, a footage link's template) is checked against them by `camera::check_site`, since definitions are
//! read and reloaded by the camera stage; this module reads the file alone and imports no later stage.
//!
//! Secrets are never in the file: it names environment variables (`password_env`), read here into [`Secret`]s.

mod alerts;
mod duration;
mod intake;
mod metrics;
pub(crate) mod reader;
mod rules;
mod size;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

pub use alerts::{
    AlertConfig, Channel, DigestTime, Language, SmtpConfig, SmtpSecurity, WebhookFormat,
};
pub use duration::{Millis, parse as parse_duration};
pub use intake::IntakeConfig;
pub use metrics::MetricsConfig;
pub use reader::ConfigError;
pub use reader::Section;
use reader::{At, Doc, Table};
pub use rules::{CompareOp, Comparison, Matcher, OpeningHours, RuleConfig, RuleKind, TextField};
pub use size::{Bytes, parse as parse_size};

pub use crate::event::RegisterScope;
use crate::event::{EventType, is_valid_id};
pub use crate::secret::Secret;
use crate::tls::{MqttTls, MqttTlsFiles};

#[derive(Debug, Clone)]
pub struct Config {
    pub mqtt: MqttConfig,
    pub database: DatabaseConfig,
    pub web: WebConfig,
    pub bookmarks: BookmarkConfig,
    pub delivery: DeliveryConfig,
    pub dead_letters: DeadLetterConfig,
    pub retention: RetentionConfig,
    pub integrations: IntegrationsConfig,
    pub intake: IntakeConfig,
    /// `[metrics]`: where Prometheus scrapes `/metrics`; off by default.
    pub metrics: MetricsConfig,
    /// `[signing]`: whether events must be signed, and each register's key.
    pub signing: crate::event::Signing,
    pub stores: Vec<StoreConfig>,
    pub camera_systems: Vec<CameraSystemConfig>,
    pub cameras: Vec<CameraConfig>,
    /// `[[rules]]`: the exception rules, in file order. Default: none.
    pub rules: Vec<RuleConfig>,
    /// `[smtp]`: the mail server email alerts go through unless an alert names its own. Default: none.
    pub smtp: Option<SmtpConfig>,
    /// `[[alerts]]`: who hears about exceptions, and how. Default: none.
    pub alerts: Vec<AlertConfig>,
}

/// `[mqtt]`: where register events come from.
#[derive(Debug, Clone)]
pub struct MqttConfig {
    /// An external broker. Default: none, which starts the embedded broker.
    pub url: Option<BrokerUrl>,
    /// Where the embedded broker listens. Default `127.0.0.1:1883`.
    pub embedded_listen: SocketAddr,
    /// Client id; stable so the broker keeps the session (and queued events) while the daemon is down. It
    /// also names this daemon's leases on the outbox: daemons sharing a database each need their own, as
    /// daemons sharing a broker already do. Default `tillmark`.
    pub client_id: String,
    /// Topic filters. Default `["pos/+/+/events"]`.
    pub topics: Vec<String>,
    /// `shared_group`: several daemons share the stream. Each topic is subscribed as `$share/GROUP/TOPIC`
    /// (MQTT 5 shared subscriptions), so the broker hands each message to one daemon of the group; each daemon
    /// needs its own `client_id`. Only with an external broker. Default: none (this daemon gets every message).
    pub shared_group: Option<String>,
    /// `receive_maximum`: how many unacknowledged QoS 1 messages an external broker may send before it waits
    /// for tillmark's acknowledgements (MQTT 5's Receive Maximum). Messages are acknowledged only after their
    /// batch has committed, so this bounds a batch: a small window means a commit (and an fsync) per handful of
    /// events. Default 10000.
    pub receive_maximum: u16,
    /// Default: none.
    pub username: Option<String>,
    /// From the variable named by `password_env`. Default: none.
    pub password: Option<Secret>,
    /// How an `mqtts://` url is reached, from `tls_ca` (trust this CA instead of the system's roots) and
    /// `client_cert` + `client_key` (mutual TLS: both or neither), read and checked at load. Default: the
    /// system's roots, no client certificate. `None` exactly when the url is not `mqtts://`.
    pub tls: Option<MqttTls>,
    /// `embedded_tls_cert` and `embedded_tls_key`: the embedded broker speaks MQTT over TLS (mqtts). Default:
    /// none (plain MQTT).
    pub embedded_tls: Option<TlsFiles>,
    /// `[[mqtt.clients]]`: the logins registers use on the embedded broker, each bound to a register or a store.
    /// Default: none, so any client may publish to an accepted topic (allowed only on a loopback listen).
    pub clients: Vec<MqttClient>,
}

/// Whether a PostgreSQL URL carries a password: `user:password@` before the host, or a `password=` parameter.
fn postgres_password_in(url: &str) -> bool {
    let Some(rest) = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
    else {
        return false;
    };
    let authority = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
    let in_userinfo = authority
        .rsplit_once('@')
        .is_some_and(|(userinfo, _)| userinfo.contains(':'));
    let query = rest.split_once('?').map_or("", |(_, q)| q);
    in_userinfo
        || query
            .split('&')
            .any(|pair| pair.to_ascii_lowercase().starts_with("password="))
}

impl MqttConfig {
    /// What is subscribed for `topic`: itself, or its shared form when daemons share the stream.
    pub fn filter(&self, topic: &str) -> String {
        match &self.shared_group {
            Some(group) => format!("$share/{group}/{topic}"),
            None => topic.to_string(),
        }
    }
}

/// One `[[mqtt.clients]]` login for the embedded broker.
#[derive(Debug, Clone)]
pub struct MqttClient {
    pub username: String,
    /// From the variable named by `password_env`.
    pub password: Secret,
    /// What it may publish for: `store/register`, or `store/*` for every register of a store.
    pub register: RegisterScope,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    pub host: String,
    pub port: u16,
    pub tls: bool,
}

impl fmt::Display for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "mqtts" } else { "mqtt" };
        write!(f, "{scheme}://{}:{}", self.host, self.port)
    }
}

impl BrokerUrl {
    /// A plain-TCP broker at a socket address, such as the embedded one.
    pub fn plain(addr: SocketAddr) -> BrokerUrl {
        let host = match addr {
            SocketAddr::V4(a) => a.ip().to_string(),
            SocketAddr::V6(a) => format!("[{}]", a.ip()),
        };
        BrokerUrl {
            host,
            port: addr.port(),
            tls: false,
        }
    }

    /// Accepts `mqtt://`, `tcp://`, `mqtts://`, `ssl://` URLs and a bare `host:port`.
    pub fn parse(text: &str) -> Result<BrokerUrl, String> {
        let with_scheme = if text.contains("://") {
            text.to_string()
        } else {
            format!("mqtt://{text}")
        };
        let url = url::Url::parse(&with_scheme)
            .map_err(|e| format!("\"{text}\" is not a broker URL ({e})"))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err("must not carry a user or password: use username and password_env".into());
        }
        let tls = match url.scheme() {
            "mqtt" | "tcp" => false,
            "mqtts" | "ssl" => true,
            other => {
                return Err(format!(
                    "scheme \"{other}\" is not supported: use mqtt:// or mqtts://"
                ));
            }
        };
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| format!("\"{text}\" has no host"))?;
        // IPv6 hosts keep their brackets: the MQTT client joins host and port with a colon.
        let host = host.to_string();
        if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
            return Err(format!(
                "\"{text}\" has a path or query: give only the host and port"
            ));
        }
        let port = url.port().unwrap_or(if tls { 8883 } else { 1883 });
        if port == 0 {
            return Err(format!("\"{text}\": the port must be between 1 and 65535"));
        }
        Ok(BrokerUrl { host, port, tls })
    }
}

/// `[database]`.
#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    /// `sqlite://FILE`, or `postgres://USER@HOST/DATABASE` for several daemons sharing one database (each with
    /// its own `[mqtt] client_id`). Default `sqlite://tillmark.db`, created if missing.
    pub url: String,
}

/// `[web]`.
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// Default `127.0.0.1:8080`. An address beyond loopback needs TLS: `tls_cert` and `tls_key`, or
    /// `behind_proxy` when a TLS reverse proxy stands in front.
    pub listen: SocketAddr,
    /// PEM certificate chain and private key: the index serves HTTPS itself. Default: none (plain HTTP).
    pub tls: Option<TlsFiles>,
    /// A reverse proxy terminates TLS in front of the index: trust its `X-Forwarded-For` (for the client's
    /// address in throttling and the audit log) and mark cookies `Secure`. Default `false`.
    pub behind_proxy: bool,
    /// The proxies whose `X-Forwarded-For` is believed, by address; any other peer's is ignored, or anyone
    /// could write an address into the audit log and out of the sign-in throttle. Default: none, which with
    /// `behind_proxy` means a proxy on this machine (loopback).
    pub trusted_proxies: Vec<IpAddr>,
    /// A session unused this long is signed out. Default `8h`: a shift.
    pub session_idle: Millis,
    /// How long an API token works when `tillmark token create` is not told (`--expires`). Default `90d`.
    pub token_lifetime: Millis,
    /// `public_url`: the index's address as people outside reach it (`https://tillmark.example.com/`), for the
    /// links in alerts. Default: none, so alerts carry no links.
    pub public_url: Option<url::Url>,
}

#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl WebConfig {
    /// Whether browsers reach the index over HTTPS, so cookies may be marked `Secure`.
    pub fn served_over_tls(&self) -> bool {
        self.tls.is_some() || self.behind_proxy
    }

    /// Whether a request from `peer` comes through the proxy, so its `X-Forwarded-For` tells the client.
    pub fn trusts_proxy(&self, peer: IpAddr) -> bool {
        self.behind_proxy
            && match self.trusted_proxies.is_empty() {
                true => peer.is_loopback(),
                false => self.trusted_proxies.contains(&peer),
            }
    }
}

/// `[bookmarks]`: which events become bookmarks and how long they span.
#[derive(Debug, Clone)]
pub struct BookmarkConfig {
    /// Default: the types of medium and high severity: void, item_void, correction, refund, no_sale,
    /// drawer_open (only when nothing explains it).
    pub types: BTreeSet<EventType>,
    /// Time before the event. Default `10s`.
    pub pre_roll: Millis,
    /// Time after the event. Default `20s`.
    pub post_roll: Millis,
    /// A drawer open with a sale, refund or paid in/out at its register this close to it (either side) is
    /// explained: not flagged, not bookmarked. Its bookmarks wait this long (plus
    /// [`DRAWER_OPEN_GRACE_MS`]) after it arrives, for a sale that arrives after it. `0s`: every drawer open
    /// is flagged at once. Default `30s`, at most `10m`.
    pub drawer_open_explained_within: Millis,
}

/// How much longer than the window a drawer open's bookmarks wait: a sale rung up just inside the window may
/// reach tillmark a moment after the window has passed on tillmark's clock.
pub const DRAWER_OPEN_GRACE_MS: i64 = 5_000;

impl BookmarkConfig {
    /// How long a drawer open's bookmarks wait after its arrival before they may be made: the window in which
    /// an explaining sale may still arrive. `None` when drawer opens are not held (not flagged, or a zero
    /// window).
    pub fn drawer_open_hold_ms(&self) -> Option<i64> {
        let within = self.drawer_open_explained_within.0;
        (self.types.contains(&EventType::DrawerOpen) && within > 0)
            .then_some(within + DRAWER_OPEN_GRACE_MS)
    }
}

/// `[delivery]`: how bookmarks reach camera systems.
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    /// Waits between attempts; the last repeats for as long as it takes. Default
    /// `["1s", "5s", "15s", "30s", "1m", "2m", "5m"]`. Each wait gets ±20% jitter.
    pub retry: Vec<Millis>,
    /// The most requests in flight per camera system (1 to 256). Default 64. Each system starts at one and
    /// finds its own level below this, by how its latency and answers respond.
    pub concurrency: usize,
    /// Time limit of one HTTP request. Default `10s`.
    pub timeout: Millis,
    /// How many daemons deliver from this database (1 to 64). Each keeps to its share of every vendor's
    /// published rate (`[limits] rate` of a definition), so together they keep to the rate itself. Pauses a
    /// vendor asks for are shared through the database whatever this says. Default 1.
    pub daemons: u32,
}

/// `[dead_letters]`: how much of the dead-letter list is kept. The daemon removes the oldest letters beyond
/// the size bound, and those older than `[retention] dead_letters`, every hour (and once at start);
/// `tillmark dead-letters purge` does it on demand. The age bound was `keep_for` here before `[retention]`
/// existed: that key is still read, as the same setting.
#[derive(Debug, Clone)]
pub struct DeadLetterConfig {
    /// The most the letters may keep together (their text, topics and reasons); the oldest beyond it are
    /// removed. Default `64MiB`: about a thousand letters of the largest valid size, and tens of thousands of
    /// ordinary ones; at least 1MiB.
    pub max_total: Bytes,
}

/// `[retention]`: how long personal data is kept. Cashier ids, receipt lines and footage links are personal
/// data, kept only as long as they serve; the daemon removes what is older once a day (and once at start),
/// `tillmark retention purge` does it on demand, and every purge that removes anything is in the audit log.
///
/// There is no "forever": every kind has a bound of at most 10y. What must outlive it is held by an open
/// case (legal hold), never by a longer setting for everyone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionConfig {
    /// Events whose moment (`at`) is older than this go, with their bookmarks, delivery attempts, search rows
    /// and closed cases. Default `400d` (what intake still accepts, `[intake] max_age`); at least `30d`. An
    /// event in an open case, or with a bookmark still to deliver, is kept whatever its age.
    pub events: Millis,
    /// Dead letters received longer ago than this go (hourly, with `[dead_letters] max_total`). Default `30d`:
    /// a month's pattern of a misbehaving sender stays visible; at least `1h`. `[dead_letters] keep_for` is
    /// its older name and still works; the file may set one or the other.
    pub dead_letters: Millis,
    /// Sign-in sessions unused for this long go (their rows keep the browser's address). Default: `[web]
    /// session_idle`, after which a session has ended anyway; never shorter than that.
    pub sessions: Millis,
    /// Audit rows older than this go, leaving a checkpoint row that keeps the hash chain verifiable from there
    /// on. Default `3y`; at least `1y`, so last year's incident can still be traced to who saw what.
    pub audit_log: Millis,
}

/// `[[stores]]`.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub id: String,
    /// Default: the id.
    pub name: String,
    /// IANA zone, required: times in the index are shown in it.
    pub timezone: chrono_tz::Tz,
    /// `hours`: when it is open, in `timezone` (`"09:00-22:00"`, or a table by weekday), for the
    /// `outside_hours` rule. Default: none, always open.
    pub hours: Option<OpeningHours>,
    /// `language`: `en` or `ja`, the language of its alerts. Default `ja` for a store in `Asia/Tokyo`, else
    /// `en`.
    pub language: Language,
}

/// The vendor definition a camera system uses, by name (built in, or a file in the integrations folder).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Integration(String);

impl Integration {
    /// Any definition name (a-z, 0-9, -); whether that definition exists is checked when the definitions are
    /// loaded, so a missing one holds bookmarks instead of stopping the daemon.
    pub fn parse(name: &str) -> Option<Integration> {
        Integration::is_valid_name(name).then(|| Integration(name.to_string()))
    }

    /// Definition names: 1 to 64 of a-z, 0-9 and -. A definition file is named so too, which is how a
    /// config's name finds it.
    pub fn is_valid_name(name: &str) -> bool {
        !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    }

    pub fn name(&self) -> &str {
        &self.0
    }
}

/// `[integrations]`: where vendor definitions are read from.
#[derive(Debug, Clone)]
pub struct IntegrationsConfig {
    /// Default `integrations`, relative to the working directory. Watched: changes apply within seconds.
    pub dir: PathBuf,
}

/// `[[camera_systems]]`: one NVR, VMS or cloud account.
#[derive(Debug, Clone)]
pub struct CameraSystemConfig {
    pub id: String,
    pub integration: Integration,
    /// The server (Nx: `https://HOST:7001`) or, for a webhook, the URL to POST to.
    pub url: url::Url,
    pub username: Option<String>,
    /// From `password_env`.
    pub password: Option<Secret>,
    /// From `api_key_env`; a webhook sends it as `Authorization: Bearer`.
    pub api_key: Option<Secret>,
    /// OAuth2 client id, for vendors whose API wants OAuth2 (templates: `system.client_id`). Default: none.
    pub client_id: Option<String>,
    /// OAuth2 client secret, from `client_secret_env` (templates: `secret.client_secret`). Default: none.
    pub client_secret: Option<Secret>,
    /// OAuth2 refresh token, from `refresh_token_env` (templates: `secret.refresh_token`). Default: none.
    pub refresh_token: Option<Secret>,
    /// A CA certificate (PEM) to trust for this system, for self-signed NVRs.
    pub tls_ca: Option<PathBuf>,
    /// Accept any certificate. An explicit opt-out, warned about at start.
    pub tls_insecure: bool,
    /// Hosts besides the origin of `url` that its requests may go to (`auth.example.com`, or `host:port`),
    /// for a vendor whose API spans hosts: Eagle Eye's OAuth token endpoint. Anything else is refused before it
    /// is sent, since every request carries the system's credentials. Default: none.
    pub allowed_hosts: Vec<String>,
    /// A template for a browser link to the footage; variables: `device`, `start_ms`, `start_s`, `start_iso`, `host`.
    pub web_viewer_url: Option<String>,
    /// Vendor specifics, for definitions' templates as `options.<key>`; Nx reads `cloud_host` (default `nxvms.com`).
    pub options: serde_json::Map<String, serde_json::Value>,
    /// Where its `[[camera_systems]]` section is in the file, for the check against its vendor definition
    /// (`camera::check_site`), which the file alone cannot make.
    pub section: Section,
}

impl CameraSystemConfig {
    pub fn option_str(&self, key: &str) -> Option<&str> {
        self.options.get(key).and_then(|v| v.as_str())
    }
}

/// `[[cameras]]`.
#[derive(Debug, Clone)]
pub struct CameraConfig {
    pub system: String,
    /// The camera's id in its system.
    pub device: String,
    /// Default: the device id.
    pub name: String,
    /// `store/register` pairs this camera watches.
    pub registers: Vec<RegisterRef>,
    /// How far the camera's recording clock is ahead of the register clock (negative: behind), within ±1h.
    /// Its bookmarks are placed at the register's moment plus this. Default `0s`.
    pub offset: Millis,
    /// Time before the event. Default: `[bookmarks] pre_roll`.
    pub pre_roll: Millis,
    /// Time after the event. Default: `[bookmarks] post_roll`.
    pub post_roll: Millis,
}

impl CameraConfig {
    pub fn watches(&self, store: &str, register: &str) -> bool {
        self.registers
            .iter()
            .any(|r| r.store == store && r.register == register)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RegisterRef {
    pub store: String,
    pub register: String,
}

impl fmt::Display for RegisterRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.store, self.register)
    }
}

/// Why a config could not be used: every problem found, in file order.
#[derive(Debug, thiserror::Error)]
pub struct ConfigErrors {
    pub file: Option<PathBuf>,
    pub errors: Vec<ConfigError>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors.len();
        match &self.file {
            Some(file) => writeln!(
                f,
                "{} has {n} error{}:",
                file.display(),
                if n == 1 { "" } else { "s" }
            )?,
            None => writeln!(
                f,
                "the config has {n} error{}:",
                if n == 1 { "" } else { "s" }
            )?,
        }
        for e in &self.errors {
            writeln!(f, "  - {e}")?;
        }
        Ok(())
    }
}

pub const DEFAULT_TOPIC: &str = "pos/+/+/events";
pub const DEFAULT_RETRY: [i64; 7] = [1_000, 5_000, 15_000, 30_000, 60_000, 120_000, 300_000];
const DAY_MS: i64 = 86_400_000;
/// The largest camera clock correction: beyond it the camera's clock, not tillmark's config, needs fixing.
const MAX_OFFSET_MS: i64 = 3_600_000;

impl Default for Config {
    /// The embedded defaults: embedded broker, SQLite file, index on localhost, no cameras.
    fn default() -> Self {
        Config::parse("", &|_| None).expect("the empty config is valid")
    }
}

impl Config {
    /// Reads `path`, or the embedded defaults when `None`. Secrets come from the process environment.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigErrors> {
        let Some(path) = path else {
            return Ok(Config::default());
        };
        let text = std::fs::read_to_string(path).map_err(|e| ConfigErrors {
            file: Some(path.to_path_buf()),
            errors: vec![ConfigError {
                path: String::new(),
                line: None,
                message: format!("cannot read it: {e}"),
            }],
        })?;
        Config::parse(&text, &|name| std::env::var(name).ok()).map_err(|errors| ConfigErrors {
            file: Some(path.to_path_buf()),
            errors,
        })
    }

    /// Parses and validates a config document; `env` looks up the variables that hold secrets.
    pub fn parse(
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, Vec<ConfigError>> {
        reader::read_document(text, |doc, top| Builder { doc, env }.build(top))
    }

    pub fn store(&self, id: &str) -> Option<&StoreConfig> {
        self.stores.iter().find(|s| s.id == id)
    }

    pub fn camera_system(&self, id: &str) -> Option<&CameraSystemConfig> {
        self.camera_systems.iter().find(|s| s.id == id)
    }
}

struct Builder<'a> {
    doc: &'a Doc<'a>,
    env: &'a dyn Fn(&str) -> Option<String>,
}

impl Builder<'_> {
    fn build(&self, top: &Table) -> Option<Config> {
        let mqtt = self.mqtt(top.opt_table("mqtt").as_ref());
        let database = self.database(top.opt_table("database").as_ref());
        let web = self.web(top.opt_table("web").as_ref());
        let bookmarks = self.bookmarks(top.opt_table("bookmarks").as_ref());
        let delivery = self.delivery(top.opt_table("delivery").as_ref());
        let (dead_letters, keep_for) = self.dead_letters(top.opt_table("dead_letters").as_ref());
        let integrations = self.integrations(top.opt_table("integrations").as_ref());
        let intake = self.intake(top.opt_table("intake").as_ref());
        let metrics = self.metrics(top.opt_table("metrics").as_ref());
        let signing = self.signing(top.opt_table("signing").as_ref());
        let retention = self.retention(
            top.opt_table("retention").as_ref(),
            keep_for,
            web.as_ref().map(|w| w.session_idle),
        );
        let store_tables = top.tables("stores");
        let system_tables = top.tables("camera_systems");
        // Cross references use every id the file declares, valid section or not: a store with a mistyped time
        // zone still exists for the cameras that name it, and gets one error, not one more per camera.
        let store_ids: Vec<At<String>> = store_tables
            .iter()
            .filter_map(|t| t.peek_str("id"))
            .collect();
        let system_ids: Vec<At<String>> = system_tables
            .iter()
            .filter_map(|t| t.peek_str("id"))
            .collect();
        let stores: Vec<StoreConfig> = store_tables.iter().filter_map(|t| self.store(t)).collect();
        let systems: Vec<CameraSystemConfig> = system_tables
            .iter()
            .filter_map(|t| self.camera_system(t))
            .collect();
        let cameras = top
            .tables("cameras")
            .iter()
            .filter_map(|t| self.camera(t, &bookmarks, &store_ids, &system_ids))
            .collect();
        self.unique(&store_ids);
        self.unique(&system_ids);
        let rule_tables = top.tables("rules");
        let rules = self.rules(&rule_tables, &store_ids);
        let rule_ids: Vec<At<String>> = rule_tables
            .iter()
            .filter_map(|t| t.peek_str("id"))
            .collect();
        let smtp_table = top.opt_table("smtp");
        let smtp = self.smtp(smtp_table.as_ref());
        let alerts = self.alerts(
            &top.tables("alerts"),
            &store_ids,
            &rule_ids,
            smtp.as_ref(),
            smtp_table.is_some(),
        );
        Some(Config {
            mqtt: mqtt?,
            database: database?,
            web: web?,
            bookmarks,
            delivery: delivery?,
            dead_letters,
            retention,
            integrations,
            intake,
            metrics,
            signing,
            stores,
            camera_systems: systems,
            cameras,
            rules,
            smtp,
            alerts,
        })
    }

    /// Reports each id that repeats an earlier one, where the repeat is.
    fn unique(&self, ids: &[At<String>]) {
        let mut seen = HashSet::new();
        for id in ids {
            if !seen.insert(id.value.as_str()) {
                self.doc.push(
                    id.path.clone(),
                    Some(id.line),
                    format!("id \"{}\" is used twice", id.value),
                );
            }
        }
    }

    fn secret(&self, t: &Table, key: &'static str) -> Option<Secret> {
        let name = t.opt_str(key)?;
        match (self.env)(&name.value) {
            Some(value) if !value.is_empty() => Some(Secret::new(value)),
            _ => {
                self.doc.push(
                    name.path,
                    Some(name.line),
                    format!("environment variable {} is not set", name.value),
                );
                None
            }
        }
    }

    fn mqtt(&self, t: Option<&Table>) -> Option<MqttConfig> {
        let mut cfg = MqttConfig {
            url: None,
            embedded_listen: "127.0.0.1:1883".parse().ok()?,
            client_id: "tillmark".into(),
            topics: vec![DEFAULT_TOPIC.into()],
            shared_group: None,
            receive_maximum: 10_000,
            username: None,
            password: None,
            tls: None,
            embedded_tls: None,
            clients: Vec::new(),
        };
        let Some(t) = t else { return Some(cfg) };
        if let Some(url) = t.opt_str("url") {
            match BrokerUrl::parse(&url.value) {
                Ok(u) => cfg.url = Some(u),
                Err(e) => t.error("url", e),
            }
        }
        if let Some(addr) = t.opt_str("embedded_listen") {
            match addr.value.parse() {
                Ok(a) => cfg.embedded_listen = a,
                Err(_) => t.error(
                    "embedded_listen",
                    format!("\"{}\" is not an address like 127.0.0.1:1883", addr.value),
                ),
            }
        }
        if let Some(id) = t.opt_str("client_id") {
            if id.value.is_empty() || id.value.len() > 128 {
                t.error("client_id", "must be 1 to 128 characters");
            }
            cfg.client_id = id.value;
        }
        if let Some(topics) = t.opt_str_list("topics") {
            if topics.is_empty() {
                t.error("topics", "must name at least one topic filter");
            }
            for topic in &topics {
                if let Err(e) = check_topic_filter(&topic.value) {
                    self.doc.push(topic.path.clone(), Some(topic.line), e);
                }
            }
            cfg.topics = topics.into_iter().map(|a| a.value).collect();
        }
        if let Some(group) = t.opt_str("shared_group") {
            let bad = group.value.is_empty()
                || group.value.len() > 64
                || group.value.contains(['/', '+', '#', '$'])
                || group.value.chars().any(char::is_control);
            if bad {
                t.error(
                    "shared_group",
                    "must be a name of 1 to 64 characters without /, +, # or $ (it becomes $share/NAME/...)",
                );
            } else if cfg.url.is_none() && !t.has("url") {
                t.error(
                    "shared_group",
                    "is for several daemons on one external broker: set url = \"mqtt://HOST:PORT\" (the embedded broker serves one daemon)",
                );
            }
            cfg.shared_group = Some(group.value);
        }
        if let Some(n) = t.opt_int("receive_maximum", 1..65536) {
            cfg.receive_maximum = n as u16;
        }
        cfg.username = t.opt_str("username").map(|a| a.value);
        cfg.password = self.secret(t, "password_env");
        if cfg.password.is_some() && cfg.username.is_none() {
            t.error("username", "is required when password_env is set");
        }
        cfg.tls = self.mqtt_tls(t, cfg.url.as_ref());
        self.embedded_access(t, &mut cfg);
        t.finish();
        Some(cfg)
    }

    /// `tls_ca`, `client_cert` and `client_key`, loaded for an `mqtts://` url.
    fn mqtt_tls(&self, t: &Table, url: Option<&BrokerUrl>) -> Option<MqttTls> {
        let ca = t.opt_str("tls_ca");
        let identity = match (t.opt_str("client_cert"), t.opt_str("client_key")) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (Some(_), None) => {
                t.error(
                    "client_key",
                    "client_cert needs client_key, the certificate's private key",
                );
                return None;
            }
            (None, Some(_)) => {
                t.error(
                    "client_cert",
                    "client_key needs client_cert, the certificate it belongs to",
                );
                return None;
            }
            (None, None) => None,
        };
        let plain = match url {
            Some(url) if url.tls => None,
            Some(_) => {
                Some("is for a TLS connection, but url is plain mqtt://: use an mqtts:// url")
            }
            // An invalid url has its own error already.
            None if t.has("url") => return None,
            None => Some(
                "is for TLS to an external broker: set url = \"mqtts://HOST:PORT\" (the embedded broker's own TLS is embedded_tls_cert and embedded_tls_key)",
            ),
        };
        if let Some(message) = plain {
            for key in ["tls_ca", "client_cert", "client_key"] {
                if t.has(key) {
                    t.error(key, message);
                }
            }
            return None;
        }
        let files = MqttTlsFiles {
            ca: ca.map(|a| PathBuf::from(a.value)),
            identity: identity.map(|(c, k)| (PathBuf::from(c.value), PathBuf::from(k.value))),
        };
        MqttTls::load(&files)
            .map_err(|e| t.error(e.key(), e.to_string()))
            .ok()
    }

    /// The embedded broker's TLS files and logins, and whether its listen address may be reached from other
    /// machines: only with both, since otherwise anyone on the network could write any store's events.
    fn embedded_access(&self, t: &Table, cfg: &mut MqttConfig) {
        let cert = t.opt_str("embedded_tls_cert");
        let key = t.opt_str("embedded_tls_key");
        match (cert, key) {
            (Some(cert), Some(key)) => {
                let cert_ok = check_pem(&cert, PemKind::Certificates)
                    .map_err(|e| self.doc.push(cert.path.clone(), Some(cert.line), e))
                    .is_ok();
                let key_ok = check_pem(&key, PemKind::PrivateKey)
                    .map_err(|e| self.doc.push(key.path.clone(), Some(key.line), e))
                    .is_ok();
                if cert_ok && key_ok {
                    cfg.embedded_tls = Some(TlsFiles {
                        cert: PathBuf::from(cert.value),
                        key: PathBuf::from(key.value),
                    });
                }
            }
            (Some(_), None) => t.error(
                "embedded_tls_key",
                "embedded_tls_cert needs embedded_tls_key, the certificate's private key",
            ),
            (None, Some(_)) => t.error(
                "embedded_tls_cert",
                "embedded_tls_key needs embedded_tls_cert, the certificate chain",
            ),
            (None, None) => {}
        }
        let mut names = HashSet::new();
        let logins = t.tables("clients");
        let declared = !logins.is_empty();
        for c in logins {
            let username = c.req_str("username");
            let password = if c.has("password_env") {
                self.secret(&c, "password_env")
            } else {
                c.error(
                    "password_env",
                    "is required: the name of the environment variable holding this login's password",
                );
                None
            };
            let register = c
                .req_str("register")
                .and_then(|r| match parse_scope(&r.value) {
                    Ok(scope) => Some(scope),
                    Err(e) => {
                        c.error("register", e);
                        None
                    }
                });
            if let Some(name) = &username
                && !names.insert(name.value.clone())
            {
                c.error(
                    "username",
                    format!("\"{}\" is used by an earlier login", name.value),
                );
            }
            c.finish();
            if let (Some(username), Some(password), Some(register)) = (username, password, register)
            {
                cfg.clients.push(MqttClient {
                    username: username.value,
                    password,
                    register,
                });
            }
        }
        let ip = cfg.embedded_listen.ip();
        if cfg.url.is_none() && !ip.is_loopback() {
            let mut missing = Vec::new();
            if !t.has("embedded_tls_cert") || !t.has("embedded_tls_key") {
                missing.push("embedded_tls_cert and embedded_tls_key (PEM files)");
            }
            if !declared {
                missing.push("at least one [[mqtt.clients]] login per register or store");
            }
            if !missing.is_empty() {
                t.error(
                    "embedded_listen",
                    format!(
                        "{} is reachable from other machines, where anyone could write any store's events: add {}, \
                         or listen on 127.0.0.1",
                        cfg.embedded_listen,
                        missing.join(" and ")
                    ),
                );
            }
        }
    }

    fn database(&self, t: Option<&Table>) -> Option<DatabaseConfig> {
        let mut cfg = DatabaseConfig {
            url: "sqlite://tillmark.db".into(),
        };
        let Some(t) = t else { return Some(cfg) };
        if let Some(url) = t.opt_str("url") {
            if ["sqlite:", "postgres://", "postgresql://"]
                .iter()
                .any(|scheme| url.value.starts_with(scheme))
            {
                if postgres_password_in(&url.value) {
                    // Said without the URL: it holds the password.
                    t.error(
                        "url",
                        "holds a password, and secrets never go in the file: give it in the environment \
                         (PGPASSWORD) or in ~/.pgpass of the user tillmark runs as, or use a client certificate \
                         (sslcert, sslkey)",
                    );
                }
                cfg.url = url.value;
            } else {
                t.error(
                    "url",
                    format!(
                        "\"{}\" is not a database URL: use sqlite://FILE or postgres://USER@HOST/DATABASE",
                        url.value
                    ),
                );
            }
        }
        t.finish();
        Some(cfg)
    }

    fn web(&self, t: Option<&Table>) -> Option<WebConfig> {
        let mut cfg = WebConfig {
            listen: "127.0.0.1:8080".parse().ok()?,
            tls: None,
            behind_proxy: false,
            trusted_proxies: Vec::new(),
            session_idle: Millis(8 * 3_600_000),
            token_lifetime: Millis(90 * 86_400_000),
            public_url: None,
        };
        let Some(t) = t else { return Some(cfg) };
        cfg.behind_proxy = t.opt_bool("behind_proxy").unwrap_or(false);
        cfg.public_url = self.public_url(t);
        for proxy in t.opt_str_list("trusted_proxies").unwrap_or_default() {
            match proxy.value.parse::<IpAddr>() {
                Ok(ip) => cfg.trusted_proxies.push(ip),
                Err(_) => t.error(
                    "trusted_proxies",
                    format!("\"{}\" is not an IP address like 10.0.0.5", proxy.value),
                ),
            }
        }
        if !cfg.trusted_proxies.is_empty() && !cfg.behind_proxy {
            t.error(
                "trusted_proxies",
                "names the proxy in front of the index: set behind_proxy = true as well",
            );
        }
        if let Some(idle) = t.opt_duration("session_idle") {
            if idle.0 < 60_000 {
                t.error("session_idle", "must be at least 1m");
            } else {
                cfg.session_idle = idle;
            }
        }
        if let Some(lifetime) = t.opt_duration("token_lifetime") {
            // A token that outlives its purpose is a key nobody remembers handing out.
            if !(3_600_000..=3 * 365 * 86_400_000).contains(&lifetime.0) {
                t.error("token_lifetime", "must be from 1h to 1095d (three years)");
            } else {
                cfg.token_lifetime = lifetime;
            }
        }
        match (t.opt_str("tls_cert"), t.opt_str("tls_key")) {
            (Some(cert), Some(key)) => {
                cfg.tls = Some(TlsFiles {
                    cert: PathBuf::from(cert.value),
                    key: PathBuf::from(key.value),
                })
            }
            (Some(_), None) => t.error(
                "tls_key",
                "tls_cert needs tls_key, the certificate's private key",
            ),
            (None, Some(_)) => t.error("tls_cert", "tls_key needs tls_cert, the certificate chain"),
            (None, None) => {}
        }
        if cfg.tls.is_some() && cfg.behind_proxy {
            t.error(
                "behind_proxy",
                "choose one: the index serves TLS itself (tls_cert, tls_key) or a proxy does (behind_proxy)",
            );
        }
        if let Some(listen) = t.opt_str("listen") {
            // "localhost" is what people write; it means the IPv4 loopback here.
            let text = listen.value.replace("localhost:", "127.0.0.1:");
            match text.parse::<SocketAddr>() {
                // Passwords and session cookies cross the network only encrypted.
                Ok(a) if !a.ip().is_loopback() && !cfg.served_over_tls() => t.error(
                    "listen",
                    format!(
                        "{a} is reachable from other machines, and sign-in passwords must not cross a network in \
                         clear: set tls_cert and tls_key, or behind_proxy = true behind a TLS reverse proxy"
                    ),
                ),
                // The proxy is elsewhere on the network: say which, so its requests are told from others'.
                Ok(a) if !a.ip().is_loopback() && cfg.tls.is_none() && cfg.trusted_proxies.is_empty() => t.error(
                    "listen",
                    format!(
                        "{a} is reachable from other machines in plain HTTP: name the TLS reverse proxy in front \
                         in trusted_proxies (its address), or listen on 127.0.0.1 with the proxy on this machine"
                    ),
                ),
                Ok(a) => cfg.listen = a,
                Err(_) => t.error("listen", format!("\"{}\" is not an address like 127.0.0.1:8080", listen.value)),
            }
        }
        t.finish();
        Some(cfg)
    }

    fn bookmarks(&self, t: Option<&Table>) -> BookmarkConfig {
        let mut cfg = BookmarkConfig {
            types: EventType::ALL
                .into_iter()
                .filter(|t| t.bookmarked_by_default())
                .collect(),
            pre_roll: Millis(10_000),
            post_roll: Millis(20_000),
            drawer_open_explained_within: Millis(30_000),
        };
        let Some(t) = t else { return cfg };
        if let Some(d) = t.opt_duration("drawer_open_explained_within") {
            if d.0 < 0 || d.0 > 600_000 {
                t.error(
                    "drawer_open_explained_within",
                    "must be between 0s (every drawer open is flagged) and 10m: a longer window lets \
                     a sale minutes away explain a drawer opened on its own",
                );
            }
            cfg.drawer_open_explained_within = d;
        }
        if let Some(types) = t.opt_str_list("types") {
            cfg.types = self.event_types(types);
        }
        (cfg.pre_roll, cfg.post_roll) = self.rolls(t, (cfg.pre_roll, cfg.post_roll));
        t.finish();
        cfg
    }

    /// `pre_roll` and `post_roll` of `t`, each defaulting to its half of `defaults`. `[bookmarks]` and each
    /// camera read them by the same rules, so a camera cannot set a window the section would refuse.
    fn rolls(&self, t: &Table, defaults: (Millis, Millis)) -> (Millis, Millis) {
        let (mut pre, mut post) = defaults;
        for (key, slot) in [("pre_roll", &mut pre), ("post_roll", &mut post)] {
            if let Some(d) = t.opt_duration(key) {
                if d.0 < 0 || d.0 > 3_600_000 {
                    t.error(key, "must be between 0s and 1h");
                }
                *slot = d;
            }
        }
        // Only where this table sets a roll: zero defaults are the section's mistake, reported there once.
        if (t.has("pre_roll") || t.has("post_roll")) && pre.0 + post.0 == 0 {
            t.error(
                "post_roll",
                "pre_roll and post_roll cannot both be zero: a bookmark needs a length",
            );
        }
        (pre, post)
    }

    fn integrations(&self, t: Option<&Table>) -> IntegrationsConfig {
        let dir = t.and_then(|t| {
            let dir = t.opt_str("dir").map(|d| PathBuf::from(d.value));
            t.finish();
            dir
        });
        IntegrationsConfig {
            dir: dir.unwrap_or_else(|| PathBuf::from("integrations")),
        }
    }

    fn delivery(&self, t: Option<&Table>) -> Option<DeliveryConfig> {
        let mut cfg = DeliveryConfig {
            retry: DEFAULT_RETRY.iter().map(|ms| Millis(*ms)).collect(),
            concurrency: 64,
            timeout: Millis(10_000),
            daemons: 1,
        };
        let Some(t) = t else { return Some(cfg) };
        if let Some(steps) = t.opt_str_list("retry") {
            if steps.is_empty() {
                t.error("retry", "must have at least one wait");
            }
            cfg.retry = steps
                .into_iter()
                .filter_map(|s| match parse_duration(&s.value) {
                    Ok(d) if d.0 > 0 && d.0 <= 86_400_000 => Some(d),
                    Ok(_) => {
                        self.doc
                            .push(s.path, Some(s.line), "must be between 1ms and 24h");
                        None
                    }
                    Err(e) => {
                        self.doc.push(s.path, Some(s.line), e);
                        None
                    }
                })
                .collect();
        }
        if let Some(n) = t.opt_int("concurrency", 1..257) {
            cfg.concurrency = n as usize;
        }
        if let Some(d) = t.opt_duration("timeout") {
            if d.0 < 100 || d.0 > 300_000 {
                t.error("timeout", "must be between 100ms and 5m");
            }
            cfg.timeout = d;
        }
        if let Some(n) = t.opt_int("daemons", 1..65) {
            cfg.daemons = n as u32;
        }
        t.finish();
        Some(cfg)
    }

    /// The section, and its `keep_for` (the older name of `[retention] dead_letters`) with where it is.
    fn dead_letters(&self, t: Option<&Table>) -> (DeadLetterConfig, Option<At<Millis>>) {
        let mut cfg = DeadLetterConfig {
            max_total: Bytes(64 * 1024 * 1024),
        };
        let Some(t) = t else { return (cfg, None) };
        let keep_for = t.opt_str("keep_for").and_then(|s| {
            match parse_duration(&s.value) {
                Ok(d) if d.0 < 3_600_000 => t.error(
                    "keep_for",
                    "must be at least 1h: a shorter time removes letters before anyone reads them",
                ),
                Ok(d) => {
                    return Some(At {
                        value: d,
                        path: s.path,
                        line: s.line,
                    });
                }
                Err(message) => self.doc.push(s.path, Some(s.line), message),
            }
            None
        });
        if let Some(b) = t.opt_size("max_total") {
            if b.0 < 1024 * 1024 {
                t.error(
                    "max_total",
                    "must be at least 1MiB: a smaller bound keeps only a few letters",
                );
            } else {
                cfg.max_total = b;
            }
        }
        t.finish();
        (cfg, keep_for)
    }

    /// `[retention]`. `keep_for` is `[dead_letters] keep_for` if the file set it, `session_idle` `[web]`'s
    /// (none when that section was invalid: its own error is reported, and sessions are then checked against
    /// nothing here).
    fn retention(
        &self,
        t: Option<&Table>,
        keep_for: Option<At<Millis>>,
        session_idle: Option<Millis>,
    ) -> RetentionConfig {
        let idle = session_idle.unwrap_or(Millis(60_000));
        let mut cfg = RetentionConfig {
            events: Millis(400 * DAY_MS),
            dead_letters: keep_for.as_ref().map_or(Millis(30 * DAY_MS), |k| k.value),
            sessions: idle,
            audit_log: Millis(3 * duration::YEAR_MS),
        };
        let Some(t) = t else { return cfg };
        let read = |key: &'static str, min: Millis, why: &str| -> Option<Millis> {
            let s = t.opt_str(key)?;
            if ["forever", "never", "off", "0"].contains(&s.value.trim()) {
                t.error(
                    key,
                    format!(
                        "\"{}\" is not a retention: write how long, like \"{}\", at most 10y. Personal data is kept only \
                         as long as it serves; an open case keeps its event however old",
                        s.value, min
                    ),
                );
                return None;
            }
            match parse_duration(&s.value) {
                Ok(d) if d < min => {
                    t.error(key, format!("must be at least {min}: {why}"));
                    None
                }
                Ok(d) => Some(d),
                Err(message) => {
                    self.doc.push(s.path, Some(s.line), message);
                    None
                }
            }
        };
        if let Some(d) = read(
            "events",
            Millis(30 * DAY_MS),
            "a shorter time removes events before a month's review of them",
        ) {
            cfg.events = d;
        }
        if let Some(d) = read(
            "dead_letters",
            Millis(3_600_000),
            "a shorter time removes letters before anyone reads them",
        ) {
            cfg.dead_letters = d;
        }
        if let (true, Some(k)) = (t.has("dead_letters"), &keep_for) {
            self.doc.push(
                k.path.clone(),
                Some(k.line),
                "is the older name of [retention] dead_letters, which is set too: keep only that one",
            );
        }
        if let Some(d) = read(
            "sessions",
            idle,
            "[web] session_idle keeps an unused session that long, and its row must outlast it",
        ) {
            cfg.sessions = d;
        }
        if let Some(d) = read(
            "audit_log",
            Millis(duration::YEAR_MS),
            "last year's incident must still show who saw what",
        ) {
            cfg.audit_log = d;
        }
        t.finish();
        cfg
    }

    fn store(&self, t: &Table) -> Option<StoreConfig> {
        let id = t.req_str("id");
        if let Some(id) = &id
            && !is_valid_id(&id.value)
        {
            t.error(
                "id",
                "must be 1 to 64 of A-Z a-z 0-9 . _ - (as in the event contract)",
            );
        }
        let name = t.opt_str("name");
        let hours = self.hours(t);
        let tz = t
            .req_str("timezone")
            .and_then(|tz| match tz.value.parse::<chrono_tz::Tz>() {
                Ok(z) => Some(z),
                Err(_) => {
                    t.error(
                        "timezone",
                        format!(
                            "\"{}\" is not an IANA time zone such as Asia/Tokyo",
                            tz.value
                        ),
                    );
                    None
                }
            });
        let language = self.language(t, tz);
        t.finish();
        let id = id?.value;
        Some(StoreConfig {
            name: name.map(|n| n.value).unwrap_or_else(|| id.clone()),
            id,
            timezone: tz?,
            hours,
            language,
        })
    }

    fn camera_system(&self, t: &Table) -> Option<CameraSystemConfig> {
        let id = t.req_str("id");
        let integration =
            t.req_str("integration")
                .and_then(|i| match Integration::parse(&i.value) {
                    Some(x) => Some(x),
                    None => {
                        t.error(
                            "integration",
                            format!(
                                "\"{}\" is not an integration name: use a definition's name \
                                 (a-z, 0-9, -), such as nx-witness or webhook",
                                i.value
                            ),
                        );
                        None
                    }
                });
        let url = t
            .req_str("url")
            .and_then(|u| match url::Url::parse(&u.value) {
                Ok(url) if !url.username().is_empty() || url.password().is_some() => {
                    t.error(
                        "url",
                        "must not carry a user or password: use username and password_env",
                    );
                    None
                }
                Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
                    Some(url)
                }
                _ => {
                    t.error(
                        "url",
                        format!("\"{}\" is not an http:// or https:// URL", u.value),
                    );
                    None
                }
            });
        let username = t.opt_str("username").map(|u| u.value);
        let password = self.secret(t, "password_env");
        let api_key = self.secret(t, "api_key_env");
        let client_id = t.opt_str("client_id").map(|c| c.value);
        let client_secret = self.secret(t, "client_secret_env");
        let refresh_token = self.secret(t, "refresh_token_env");
        for key in ["password", "api_key", "client_secret", "refresh_token"] {
            if t.has(key) {
                t.error(key, format!("secrets do not belong in the file: put it in an environment variable and name it with {key}_env"));
            }
        }
        // An OAuth2 secret or refresh token is always presented with the client id it was issued to.
        if client_id.is_none() && (t.has("client_secret_env") || t.has("refresh_token_env")) {
            t.error(
                "client_id",
                "is required when client_secret_env or refresh_token_env is set",
            );
        }
        let tls_ca = t.opt_str("tls_ca").map(|p| PathBuf::from(p.value));
        if let Some(ca) = &tls_ca
            && let Err(e) = std::fs::read(ca)
        {
            t.error("tls_ca", format!("cannot read {}: {e}", ca.display()));
        }
        let tls_insecure = t.opt_bool("tls_insecure").unwrap_or(false);
        let mut allowed_hosts = Vec::new();
        for host in t.opt_str_list("allowed_hosts").unwrap_or_default() {
            let value = host.value.trim().to_ascii_lowercase();
            let valid = !value.is_empty()
                && url::Url::parse(&format!("https://{value}/")).is_ok_and(|u| {
                    u.host_str().is_some() && u.path() == "/" && !value.contains('/')
                });
            if valid {
                allowed_hosts.push(value);
            } else {
                t.error(
                    "allowed_hosts",
                    format!(
                        "\"{}\" is not a host like auth.example.com or 10.0.0.5:8443",
                        host.value
                    ),
                );
            }
        }
        // A footage link's template and scheme, and what the vendor definition asks of this section, are
        // checked against the definitions by `camera::check_site`: the file alone cannot tell.
        let web_viewer_url = t.opt_str("web_viewer_url").map(|w| w.value);
        let options = t.opt_scalar_map("options");
        t.finish();
        Some(CameraSystemConfig {
            id: id?.value,
            integration: integration?,
            url: url?,
            username,
            password,
            api_key,
            client_id,
            client_secret,
            refresh_token,
            tls_ca,
            tls_insecure,
            allowed_hosts,
            web_viewer_url,
            options,
            section: t.section(),
        })
    }

    fn camera(
        &self,
        t: &Table,
        bookmarks: &BookmarkConfig,
        stores: &[At<String>],
        systems: &[At<String>],
    ) -> Option<CameraConfig> {
        let system = t.req_str("system");
        if let Some(s) = &system
            && !systems.iter().any(|x| x.value == s.value)
        {
            t.error(
                "system",
                format!("no [[camera_systems]] has id \"{}\"", s.value),
            );
        }
        let device = t.req_str("device");
        let name = t.opt_str("name").map(|n| n.value);
        let mut registers = Vec::new();
        let list = t.opt_str_list("registers");
        if list.is_none() {
            t.error(
                "registers",
                "is required: the registers this camera watches, as \"store/register\"",
            );
        }
        for r in list.unwrap_or_default() {
            match parse_register_ref(&r, stores) {
                Ok(reg) => registers.push(reg),
                Err(e) => self.doc.push(r.path, Some(r.line), e),
            }
        }
        let offset = t.opt_duration("offset").unwrap_or_default();
        if offset.0.abs() > MAX_OFFSET_MS {
            t.error(
                "offset",
                "must be between -1h and 1h: a camera clock further off than that is misconfigured; \
                 set its time (NTP) instead of correcting it here",
            );
        }
        let (pre_roll, post_roll) = self.rolls(t, (bookmarks.pre_roll, bookmarks.post_roll));
        t.finish();
        let device = device?.value;
        Some(CameraConfig {
            system: system?.value,
            name: name.unwrap_or_else(|| device.clone()),
            device,
            registers,
            offset,
            pre_roll,
            post_roll,
        })
    }
}

fn parse_register_ref(r: &At<String>, stores: &[At<String>]) -> Result<RegisterRef, String> {
    let Some((store, register)) = r.value.split_once('/') else {
        return Err(format!(
            "\"{}\" must be \"store/register\", e.g. \"shibuya-01/r2\"",
            r.value
        ));
    };
    if !is_valid_id(store) || !is_valid_id(register) {
        return Err(format!(
            "\"{}\": store and register ids use A-Z a-z 0-9 . _ -",
            r.value
        ));
    }
    if !stores.iter().any(|s| s.value == store) {
        return Err(format!(
            "no [[stores]] has id \"{store}\" (it needs one, for its time zone)"
        ));
    }
    Ok(RegisterRef {
        store: store.to_string(),
        register: register.to_string(),
    })
}

/// `store/register` or `store/*`.
/// `"store/register"`, or `"store/*"` for every register of a store: how logins and signing keys name what
/// they speak for.
fn parse_scope(text: &str) -> Result<RegisterScope, String> {
    let invalid = || {
        format!(
            "\"{text}\" must be \"store/register\" or \"store/*\" (ids use A-Z a-z 0-9 . _ -), e.g. \"shibuya-01/r1\""
        )
    };
    let (store, register) = text.split_once('/').ok_or_else(invalid)?;
    if !is_valid_id(store) {
        return Err(invalid());
    }
    let register = match register {
        "*" => None,
        r if is_valid_id(r) => Some(r.to_string()),
        _ => return Err(invalid()),
    };
    Ok(RegisterScope {
        store: store.to_string(),
        register,
    })
}

enum PemKind {
    Certificates,
    PrivateKey,
}

/// Reads a PEM file named in the config now, so a wrong path or file is reported by `check-config` with its key
/// and line rather than when the daemon starts.
fn check_pem(file: &At<String>, kind: PemKind) -> Result<(), String> {
    use tokio_rustls::rustls::pki_types::pem::{self, PemObject};
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let bytes =
        std::fs::read(&file.value).map_err(|e| format!("cannot read {}: {e}", file.value))?;
    match kind {
        PemKind::Certificates => {
            let certs = CertificateDer::pem_slice_iter(&bytes)
                .collect::<Result<Vec<_>, pem::Error>>()
                .map_err(|e| format!("{} is not a PEM certificate chain: {e}", file.value))?;
            if certs.is_empty() {
                return Err(format!("{} holds no PEM certificate", file.value));
            }
        }
        PemKind::PrivateKey => {
            PrivateKeyDer::from_pem_slice(&bytes)
                .map_err(|e| format!("{} holds no PEM private key: {e}", file.value))?;
        }
    }
    Ok(())
}

fn check_topic_filter(filter: &str) -> Result<(), String> {
    if filter.is_empty() {
        return Err("a topic filter cannot be empty".into());
    }
    let levels: Vec<&str> = filter.split('/').collect();
    for (i, level) in levels.iter().enumerate() {
        if level.contains('#') && (*level != "#" || i != levels.len() - 1) {
            return Err(format!("\"{filter}\": # must be a whole last level"));
        }
        if level.contains('+') && *level != "+" {
            return Err(format!("\"{filter}\": + must be a whole level"));
        }
    }
    Ok(())
}

/// Which cameras watch which register, built once from the config for the ingest hot path.
#[derive(Debug, Default, Clone)]
pub struct Watchers {
    by_register: HashMap<RegisterRef, Vec<usize>>,
}

impl Watchers {
    pub fn new(config: &Config) -> Self {
        let mut by_register: HashMap<RegisterRef, Vec<usize>> = HashMap::new();
        for (i, camera) in config.cameras.iter().enumerate() {
            for r in &camera.registers {
                let list = by_register.entry(r.clone()).or_default();
                if !list.contains(&i) {
                    list.push(i);
                }
            }
        }
        Watchers { by_register }
    }

    /// Indexes into `config.cameras` of the cameras watching `store/register`.
    pub fn cameras(&self, store: &str, register: &str) -> &[usize] {
        self.by_register
            .get(&RegisterRef {
                store: store.to_string(),
                register: register.to_string(),
            })
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }
}

// The camera stage's site check reads the same operator's files.
#[cfg(test)]
pub(crate) mod tests;
