//! Vendor definitions: how to make a bookmark on one kind of camera system, written as a TOML file in the
//! integrations folder instead of Rust. A definition names its auth scheme, the create request (method, URL,
//! headers, JSON body, all templates), how to read the answer (success statuses, the vendor's id, logical
//! errors inside a 2xx), which statuses are worth retrying, the footage link, and limits on text fields.
//!
//! Loading checks everything — every template compiles, every key is known — and reports every problem with
//! its file, line and key, so an integrator fixes a file in one pass.

pub mod hosts;
mod read;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::config::ConfigError;
use crate::config::reader::read_document;

/// Where the bookmark sits on the vendor's timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moment {
    /// A span: pre-roll before the event to post-roll after it (bookmarks, exports).
    Range,
    /// The event's own moment (markers, seekpoints, generic events).
    Point,
    /// The vendor places it at its own "now" (Frigate, Safie): the create request must go out promptly, and
    /// `create.when` decides whether it still can; otherwise the `fallback` request (an export) is made.
    Realtime,
}

/// How requests authenticate, with the camera system's credentials.
#[derive(Debug, Clone)]
pub enum Auth {
    None,
    /// `username` and `password_env`.
    Basic,
    /// `username` and `password_env`, answered to the server's Digest challenge.
    Digest,
    /// `api_key_env`, sent as `Authorization: Bearer`.
    Bearer,
    /// `api_key_env`, sent in the named header.
    Header(String),
    /// A token from a login request, renewed before it expires and when the vendor says it has.
    Session(Box<Session>),
}

/// Where a login answer carries its token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenFrom {
    /// A dotted path in the JSON answer.
    Body(String),
    /// A `Set-Cookie` of this name (Frigate's `frigate_token`).
    Cookie(String),
}

#[derive(Debug, Clone)]
pub struct Session {
    /// `login`, `oauth2-password` or `oauth2-refresh`, for messages.
    pub scheme: String,
    pub login: Request,
    pub token: TokenFrom,
    /// Dotted path of the token's lifetime in seconds in the answer (`expiresInS`, `expires_in`).
    pub lifetime_path: Option<String>,
    /// The lifetime when the answer does not say (Verkada: 30 minutes).
    pub lifetime: Duration,
    /// Where the token goes on each request, and how (a template over `token`).
    pub header: String,
    pub value: String,
    /// Statuses meaning the token is no longer good; the request is sent again once with a fresh token.
    pub expired_status: Vec<u16>,
    /// A response header that, with any status, means the same (Nx: `x-auth-result: Auth_WrongSessionToken`).
    pub expired_header: Option<(String, String)>,
    /// Dotted path of a new refresh token in the answer (OAuth2 rotation), used for the next login.
    pub refresh_token_path: Option<String>,
}

#[derive(Debug, Clone)]
pub enum Body {
    None,
    /// A template that renders to JSON.
    Json(String),
    /// Form fields (`application/x-www-form-urlencoded`), each value a template.
    Form(Vec<(String, String)>),
}

#[derive(Debug, Clone)]
pub struct Request {
    pub method: reqwest::Method,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Body,
}

/// How to read the answer to a request that makes something (the bookmark, or the fallback export).
#[derive(Debug, Clone)]
pub struct Answer {
    /// Statuses that mean created; empty means any 2xx.
    pub success: Vec<u16>,
    /// Statuses worth trying again; other failures are final and shown with the vendor's words.
    pub retry: Vec<u16>,
    pub id: IdFrom,
    /// A field that, when set in a success answer, means it failed after all (Rhombus answers 200 with
    /// `"error": true`); or one that must be set for success (Frigate's `"success": true`).
    pub error_flag: Option<String>,
    pub success_flag: Option<String>,
    /// The field that says why, in a failure answer or one flagged as failed.
    pub error_message: Option<String>,
    /// What a status means, in the operator's words (`404` → `has no camera "…"`), templates.
    pub messages: BTreeMap<u16, String>,
}

#[derive(Debug, Clone)]
pub enum IdFrom {
    None,
    /// A dotted path in the answer (`id`, `data.event_id`, `items.0.id`).
    Path(String),
    /// A template: the id the request itself supplied (Nx 4.x's `guid`), when the answer has none.
    Template(String),
}

#[derive(Debug, Clone)]
pub struct Create {
    pub request: Request,
    pub answer: Answer,
    /// A template that renders `true` when the create request can still place the mark at the right moment
    /// (realtime vendors); otherwise the fallback is made.
    pub when: Option<String>,
    /// Look the bookmark up right after a successful create, and count it made only if it is there.
    pub read_back: bool,
}

/// A search for an existing bookmark, so an attempt after an uncertain outcome does not make a second one.
#[derive(Debug, Clone)]
pub struct Lookup {
    pub request: Request,
    /// Dotted path to the list of candidates; none: the answer is the one candidate.
    pub items: Option<String>,
    /// A template over `item` that renders `true` for ours; none: any candidate is ours.
    pub matches: Option<String>,
    /// Dotted path, inside the candidate, of the vendor's id.
    pub id: Option<String>,
    /// Statuses meaning "no such bookmark".
    pub not_found: Vec<u16>,
}

/// A value prepared once per camera system before the first bookmark (Verkada's event type): found by a
/// search, or created when missing; templates see it as `setup.<name>`.
#[derive(Debug, Clone)]
pub struct Setup {
    pub name: String,
    pub find: Lookup,
    pub create: Request,
    /// Dotted path of the value in the create answer.
    pub create_value: String,
}

/// The fallback of a realtime vendor: made when the create request can no longer land at the right moment.
#[derive(Debug, Clone)]
pub struct Fallback {
    /// What it is, shown in the index (`export of the window`).
    pub label: String,
    pub request: Request,
    pub answer: Answer,
}

/// A clip of a bookmark's window exported by the camera system (`[clip]`), for evidence packages: requested,
/// waited for, then downloaded within a size limit. A definition without one offers the link and the window
/// only.
#[derive(Debug, Clone)]
pub struct Clip {
    /// The export request, templates over the bookmark as the create request sees it; its answer gives the
    /// export's id (`id`), which the poll and download templates see as `job`.
    pub request: Request,
    pub answer: Answer,
    /// Asked every `every` until `ready` renders `true`; templates see `job` and, in `ready` and `failed`,
    /// the poll's JSON answer as `answer`.
    pub poll: Request,
    pub ready: String,
    /// Renders `true` when the vendor says the export will never be ready.
    pub failed: Option<String>,
    pub every: Duration,
    /// The download; templates see `job` and the ready poll answer as `answer`. Its URL may be an address
    /// from that answer (`{{ answer.url }}`): checked when it is sent to be on the system's origin or one of
    /// its allowed hosts, and sent there without the system's credentials.
    pub download: Request,
    /// The largest clip taken; past it the download stops and the package keeps the link and the window.
    pub max_size: crate::config::Bytes,
    /// How long the whole export may take, request to last byte.
    pub time_limit: Duration,
}

#[derive(Debug, Clone)]
pub struct Definition {
    pub name: String,
    pub title: String,
    pub moment: Moment,
    pub auth: Auth,
    /// A template: authenticate only when it renders `true` (Frigate's internal port takes no login).
    pub auth_when: Option<String>,
    pub setup: Vec<Setup>,
    pub lookup: Option<Lookup>,
    pub create: Create,
    pub fallback: Option<Fallback>,
    pub footage_link: Option<String>,
    /// A still of the camera at the moment, fetched by tillmark with the system's credentials.
    pub thumbnail: Option<Request>,
    pub clip: Option<Clip>,
    pub max_name: Option<usize>,
    pub max_description: Option<usize>,
    /// The rate the vendor allows this camera system, all requests counted.
    pub rate_limit: Option<RateLimit>,
    /// How long to leave the vendor alone after a 429 that gives no `Retry-After` (Verkada: 5 s).
    pub cooldown: Option<Duration>,
    /// Hosts other than the system's own that its requests may begin at, each with the vendor's reason
    /// (`[hosts]`); the site must also allow each (`allowed_hosts`).
    pub hosts: BTreeMap<String, String>,
    /// Options whose addresses its requests begin at: hosts the site's config chooses.
    pub option_urls: BTreeSet<String>,
    /// The file it came from, or `None` for one built into tillmark.
    pub source: Option<PathBuf>,
}

/// A vendor's published rate: so many requests a second, a minute or an hour (`rate_limit = "300/min"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub requests: u32,
    pub per: Duration,
}

impl RateLimit {
    /// One of `daemons` equal shares: the same requests over `daemons` times the span, so that many daemons
    /// sending at once keep to the rate together.
    pub fn shared_by(self, daemons: u32) -> RateLimit {
        RateLimit {
            requests: self.requests,
            per: self.per * daemons.max(1),
        }
    }

    /// Reads `N/s`, `N/min` or `N/h`, N a whole number from 1 to 1,000,000; anything else is refused with what
    /// was expected.
    pub fn parse(text: &str) -> Result<RateLimit, String> {
        let expected = || {
            format!(
                "\"{text}\" is not a rate: write requests per second, minute or hour, like \"300/min\", \"10/s\" or \"5000/h\""
            )
        };
        let (count, unit) = text.split_once('/').ok_or_else(expected)?;
        let per = match unit {
            "s" => Duration::from_secs(1),
            "min" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            _ => return Err(expected()),
        };
        if count.is_empty() || !count.bytes().all(|b| b.is_ascii_digit()) {
            return Err(expected());
        }
        match count.parse::<u32>() {
            Ok(requests) if (1..=1_000_000).contains(&requests) => Ok(RateLimit { requests, per }),
            _ => Err(format!(
                "\"{text}\": the number of requests must be between 1 and 1000000"
            )),
        }
    }

    /// Requests a second.
    pub fn per_second(&self) -> f64 {
        f64::from(self.requests) / self.per.as_secs_f64()
    }
}

impl std::fmt::Display for RateLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let unit = match self.per.as_secs() {
            1 => "s",
            60 => "min",
            _ => "h",
        };
        write!(f, "{}/{unit}", self.requests)
    }
}

pub const DEFAULT_RETRY: [u16; 6] = [408, 429, 500, 502, 503, 504];

impl Auth {
    pub fn scheme(&self) -> &str {
        match self {
            Auth::None => "none",
            Auth::Basic => "basic",
            Auth::Digest => "digest",
            Auth::Bearer => "bearer",
            Auth::Header(_) => "header",
            Auth::Session(s) => &s.scheme,
        }
    }
}

impl Definition {
    /// The camera-system keys its auth cannot do without. A login template's needs are read from what it
    /// uses; an auth that applies only sometimes (`auth.when`) needs nothing for certain.
    pub fn needs(&self) -> Vec<&'static str> {
        if self.auth_when.is_some() {
            return Vec::new();
        }
        match &self.auth {
            Auth::None => vec![],
            Auth::Basic | Auth::Digest => vec!["username", "password_env"],
            Auth::Bearer | Auth::Header(_) => vec!["api_key_env"],
            Auth::Session(s) if s.scheme == "oauth2-refresh" => {
                vec!["client_id", "client_secret_env", "refresh_token_env"]
            }
            Auth::Session(s) => {
                let mut text = s.login.url.clone();
                for (_, v) in &s.login.headers {
                    text.push_str(v);
                }
                match &s.login.body {
                    Body::None => {}
                    Body::Json(b) => text.push_str(b),
                    Body::Form(fields) => fields.iter().for_each(|(_, v)| text.push_str(v)),
                }
                [
                    ("system.username", "username"),
                    ("secret.password", "password_env"),
                    ("secret.api_key", "api_key_env"),
                    ("system.client_id", "client_id"),
                ]
                .into_iter()
                .filter(|(used, _)| text.contains(used))
                .map(|(_, key)| key)
                .collect()
            }
        }
    }
}

/// Definitions built into the binary, so they work from any working directory; a file of the same name in
/// the integrations folder replaces one.
pub const BUILT_IN: [(&str, &str); 11] = [
    (
        "webhook",
        include_str!("../../../integrations/webhook.toml"),
    ),
    (
        "nx-witness",
        include_str!("../../../integrations/nx-witness.toml"),
    ),
    (
        "nx-witness-legacy",
        include_str!("../../../integrations/nx-witness-legacy.toml"),
    ),
    (
        "verkada-helix",
        include_str!("../../../integrations/verkada-helix.toml"),
    ),
    (
        "rhombus",
        include_str!("../../../integrations/rhombus.toml"),
    ),
    (
        "frigate",
        include_str!("../../../integrations/frigate.toml"),
    ),
    (
        "milestone",
        include_str!("../../../integrations/milestone.toml"),
    ),
    (
        "genetec",
        include_str!("../../../integrations/genetec.toml"),
    ),
    (
        "axis-camera-station",
        include_str!("../../../integrations/axis-camera-station.toml"),
    ),
    (
        "eagle-eye",
        include_str!("../../../integrations/eagle-eye.toml"),
    ),
    ("safie", include_str!("../../../integrations/safie.toml")),
];

/// One definition's problems, with the file they are in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileErrors {
    pub file: String,
    pub errors: Vec<ConfigError>,
}

impl std::fmt::Display for FileErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for e in &self.errors {
            match e.line {
                Some(line) => writeln!(f, "{}:{line}: {}: {}", self.file, e.path, e.message)?,
                None => writeln!(f, "{}: {}: {}", self.file, e.path, e.message)?,
            }
        }
        Ok(())
    }
}

/// Parses one definition; `name` is what the file is called (its stem), which the definition must match.
pub fn parse(
    text: &str,
    name: &str,
    source: Option<&Path>,
) -> Result<Definition, Vec<ConfigError>> {
    read_document(text, |doc, top| read::definition(doc, top, name, source))
}

/// A loaded set: the definitions by name, and the files that could not be used.
#[derive(Debug, Clone, Default)]
pub struct Set {
    pub definitions: BTreeMap<String, Arc<Definition>>,
    pub errors: Vec<FileErrors>,
    /// Built-in definitions a folder file of the same name replaces with other text: what runs is the file,
    /// which people are told wherever definitions are listed, with how the hosts it contacts differ.
    pub replaced: BTreeMap<String, HostChange>,
}

/// How the hosts a folder file contacts differ from the built-in definition it replaces.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostChange {
    pub added: Vec<String>,
    pub dropped: Vec<String>,
}

impl std::fmt::Display for HostChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.added.is_empty(), self.dropped.is_empty()) {
            (true, true) => write!(f, "contacts the same hosts"),
            (false, true) => write!(f, "also contacts {}", self.added.join(", ")),
            (true, false) => write!(f, "no longer contacts {}", self.dropped.join(", ")),
            (false, false) => write!(
                f,
                "also contacts {}; no longer {}",
                self.added.join(", "),
                self.dropped.join(", ")
            ),
        }
    }
}

impl Set {
    /// Where `def` comes from, as people read it: `built in`, its file, or its file and what it replaces.
    pub fn source_of(&self, def: &Definition) -> String {
        match &def.source {
            None => "built in".into(),
            Some(path) => match self.replaced.get(&def.name) {
                Some(hosts) => format!(
                    "{} (replaces the built-in {}; {hosts})",
                    path.display(),
                    def.name
                ),
                None => path.display().to_string(),
            },
        }
    }
}

impl Definition {
    /// What it contacts besides its camera system's own host.
    pub fn contacts(&self) -> BTreeSet<String> {
        hosts::contacts(&self.hosts, &self.option_urls)
    }
}

/// How `file`'s contacts differ from `built_in`'s.
fn host_difference(file: &Definition, built_in: &Definition) -> HostChange {
    let (now, was) = (file.contacts(), built_in.contacts());
    HostChange {
        added: now.difference(&was).cloned().collect(),
        dropped: was.difference(&now).cloned().collect(),
    }
}

/// Reads the built-in definitions, then every `*.toml` in `dir` (a missing folder holds none).
pub fn load_all(dir: &Path) -> Set {
    let mut set = Set::default();
    for (name, text) in BUILT_IN {
        match parse(text, name, None) {
            Ok(def) => {
                set.definitions.insert(name.to_string(), Arc::new(def));
            }
            Err(errors) => set.errors.push(FileErrors {
                file: format!("(built in) {name}.toml"),
                errors,
            }),
        }
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return set;
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
        .collect();
    files.sort();
    for path in files {
        let file = path.display().to_string();
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                let error = ConfigError {
                    path: String::new(),
                    line: None,
                    message: format!("cannot read it: {e}"),
                };
                set.errors.push(FileErrors {
                    file,
                    errors: vec![error],
                });
                continue;
            }
        };
        match parse(&text, stem, Some(&path)) {
            Ok(def) => {
                // A copy of the built-in (the repository's own folder) changes nothing; other text does.
                let differs = BUILT_IN
                    .iter()
                    .any(|(name, built_in)| *name == stem && built_in.trim() != text.trim());
                if differs && let Some(built_in) = set.definitions.get(stem) {
                    set.replaced
                        .insert(stem.to_string(), host_difference(&def, built_in));
                }
                set.definitions.insert(stem.to_string(), Arc::new(def));
            }
            Err(errors) => set.errors.push(FileErrors { file, errors }),
        }
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_definition_is_valid_and_in_service_from_any_directory() {
        let set = load_all(Path::new("/nonexistent/integrations"));
        assert!(set.errors.is_empty(), "{:?}", set.errors);
        let names: Vec<&str> = set.definitions.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "axis-camera-station",
                "eagle-eye",
                "frigate",
                "genetec",
                "milestone",
                "nx-witness",
                "nx-witness-legacy",
                "rhombus",
                "safie",
                "verkada-helix",
                "webhook"
            ]
        );
        assert!(
            set.definitions.values().all(|d| d.source.is_none()),
            "built in, not read from a folder"
        );
    }

    #[test]
    fn verkada_is_paced_to_its_documented_limit_and_cooldown_and_mints_30_minute_tokens() {
        let set = load_all(Path::new("/nonexistent/integrations"));
        let def = &set.definitions["verkada-helix"];
        assert_eq!(def.rate_limit, RateLimit::parse("300/min").ok());
        assert_eq!(def.cooldown, Some(Duration::from_secs(5)));
        let Auth::Session(s) = &def.auth else {
            panic!("a minted token: {:?}", def.auth)
        };
        assert_eq!(s.lifetime, Duration::from_secs(30 * 60));
        assert_eq!(s.header, "x-verkada-auth");
        assert_eq!(s.expired_status, [401]);
    }

    #[test]
    fn a_rate_is_requests_per_second_minute_or_hour_and_anything_else_is_refused_with_an_example() {
        for (text, requests, secs) in [
            ("10/s", 10, 1),
            ("300/min", 300, 60),
            ("5000/h", 5000, 3600),
        ] {
            let rate = RateLimit::parse(text).unwrap();
            assert_eq!((rate.requests, rate.per.as_secs()), (requests, secs));
            assert_eq!(rate.to_string(), text);
        }
        assert_eq!(RateLimit::parse("300/min").unwrap().per_second(), 5.0);
        for text in [
            "300",
            "300/m",
            "300 / min",
            "/min",
            "-5/s",
            "1.5/s",
            "300/minute",
            "",
            "0/s",
            "2000000/s",
        ] {
            assert!(RateLimit::parse(text).is_err(), "{text:?} was taken");
        }
        assert!(
            RateLimit::parse("300/m")
                .unwrap_err()
                .contains("\"300/min\"")
        );
    }

    #[test]
    fn a_broken_rate_limit_and_the_old_requests_per_minute_are_reported_with_their_lines() {
        let text = "name = \"acme\"\n[create]\nurl = \"{{ system.url }}\"\n[limits]\nrate_limit = \"300 per minute\"\nrequests_per_minute = 300\n";
        let errors = parse(text, "acme", None).unwrap_err();
        let got: Vec<(usize, &str)> = errors
            .iter()
            .map(|e| (e.line.unwrap_or(0), e.path.as_str()))
            .collect();
        assert_eq!(
            got,
            [(5, "limits.rate_limit"), (6, "limits.requests_per_minute")],
            "{errors:#?}"
        );
        assert!(errors[0].message.contains("\"10/s\""), "{errors:?}");
        assert!(
            errors[1].message.contains("rate_limit = \"300/min\""),
            "{errors:?}"
        );
        let def = parse(
            "name = \"acme\"\n[create]\nurl = \"{{ system.url }}\"\n[limits]\nrate_limit = \"10/s\"\n",
            "acme",
            None,
        )
        .unwrap();
        assert_eq!(def.rate_limit.map(|r| r.per_second()), Some(10.0));
    }

    #[test]
    fn frigate_and_safie_export_clips_and_milestone_documents_none() {
        let set = load_all(Path::new("/nonexistent/integrations"));
        let frigate = set.definitions["frigate"].clip.as_ref().unwrap();
        assert!(frigate.request.url.contains("/api/export/"));
        assert!(matches!(&frigate.answer.id, IdFrom::Path(p) if p == "export_id"));
        assert_eq!(frigate.max_size, crate::config::Bytes(500_000_000));
        let safie = set.definitions["safie"].clip.as_ref().unwrap();
        assert_eq!(safie.download.url, "{{ answer.url }}");
        assert!(set.definitions["milestone"].clip.is_none());
    }

    #[test]
    fn a_clip_section_without_its_id_poll_or_download_is_reported_with_its_line() {
        let text = "name = \"acme\"\n[create]\nurl = \"{{ system.url }}\"\n[clip]\nurl = \"{{ system.url }}/export\"\nmax_size = \"lots\"\n";
        let errors = parse(text, "acme", None).unwrap_err();
        let mut got: Vec<(&str, usize)> = errors
            .iter()
            .map(|e| (e.path.as_str(), e.line.unwrap_or(0)))
            .collect();
        got.sort();
        assert_eq!(
            got,
            [
                ("clip.download", 4),
                ("clip.id", 4),
                ("clip.max_size", 6),
                ("clip.poll", 4)
            ],
            "{errors:#?}"
        );
        let elsewhere = "name = \"acme\"\n[create]\nurl = \"{{ system.url }}\"\n[clip]\nurl = \"{{ system.url }}/export\"\nid = \"id\"\n[clip.poll]\nurl = \"{{ system.url }}/export/{{ job }}\"\nready = \"{{ answer.done }}\"\n[clip.download]\nurl = \"https://cdn.example/{{ answer.file }}\"\n";
        let errors = parse(elsewhere, "acme", None).unwrap_err();
        assert_eq!(errors[0].path, "clip.download.url", "{errors:#?}");
        assert!(errors[0].message.contains("cdn.example"), "{errors:?}");
    }

    #[test]
    fn a_definition_named_unlike_its_file_is_refused() {
        let errors = parse("name = \"other\"\n[create]\nurl = \"x\"\n", "acme", None).unwrap_err();
        assert_eq!(errors[0].path, "name");
        assert!(errors[0].message.contains("they must match"), "{errors:?}");
    }

    #[test]
    fn every_mistake_in_the_new_sections_is_reported_with_its_line() {
        let text = r#"name = "acme"
moment = "sometimes"
[auth]
scheme = "login"
lifetime = "soon"
[auth.login]
url = "{{ system.url }}/login"
body = "{}"
form = { user = "x" }
[create]
url = "{{ system.url }}/events"
when = "{{ true }}"
read_back = true
[create.messages]
teapot = "is a teapot"
[[setup]]
name = "event type"
[thumbnail]
url = "{{ unclosed"
"#;
        let errors = parse(text, "acme", None).unwrap_err();
        let got: Vec<(usize, &str)> = errors
            .iter()
            .map(|e| (e.line.unwrap_or(0), e.path.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (2, "moment"),
                (3, "auth.token"),
                (5, "auth.lifetime"),
                (9, "auth.login.form"),
                (12, "create.when"),
                (13, "create.read_back"),
                (14, "create.messages"),
                (16, "setup[0].find"),
                (16, "setup[0].create"),
                (17, "setup[0].name"),
                (19, "thumbnail.url"),
            ],
            "{errors:#?}"
        );
        assert!(errors[4].message.contains("needs a [fallback] section"));
        assert!(errors[5].message.contains("needs a [lookup] section"));
    }
}
