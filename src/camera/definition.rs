//! Vendor definitions: how to make a bookmark on one kind of camera system, written as a TOML file in the
//! integrations folder instead of Rust. A definition names its auth scheme, the create request (method, URL,
//! headers, JSON body, all templates), how to read the answer (success statuses, the vendor's id, logical
//! errors inside a 2xx), which statuses are worth retrying, the footage link, and limits on text fields.
//!
//! Loading checks everything — every template compiles, every key is known — and reports every problem with
//! its file, line and key, so an integrator fixes a file in one pass.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::ConfigError;
use crate::config::reader::{Doc, Table, read_document};

/// Where the bookmark sits on the vendor's timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moment {
    /// A span: pre-roll before the event to post-roll after it (bookmarks, exports).
    Range,
    /// The event's moment on the camera's clock (markers, seekpoints, generic events).
    Point,
}

/// How requests authenticate, with the camera system's credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    None,
    /// `username` and `password_env`.
    Basic,
    /// `api_key_env`, sent as `Authorization: Bearer`.
    Bearer,
    /// `api_key_env`, sent in the named header.
    Header(String),
}

#[derive(Debug, Clone)]
pub struct Request {
    pub method: reqwest::Method,
    pub url: String,
    pub headers: Vec<(String, String)>,
    /// A template that renders to JSON.
    pub body: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Definition {
    pub name: String,
    pub title: String,
    pub moment: Moment,
    pub auth: Auth,
    pub create: Request,
    /// Statuses that mean created; empty means any 2xx.
    pub success: Vec<u16>,
    /// Dotted path to the vendor's id in the answer, e.g. `id` or `data.event_id`.
    pub id_path: Option<String>,
    /// A field that, when true in a success answer, means it failed after all (Rhombus answers 200 with
    /// `"error": true`), and the field that says why.
    pub error_flag: Option<String>,
    pub error_message: Option<String>,
    /// Statuses worth trying again; other failures are final and shown with the vendor's words.
    pub retry: Vec<u16>,
    pub footage_link: Option<String>,
    pub max_name: Option<usize>,
    pub max_description: Option<usize>,
    /// The file it came from, or `None` for one built into tillmark.
    pub source: Option<PathBuf>,
}

pub const DEFAULT_RETRY: [u16; 6] = [408, 429, 500, 502, 503, 504];

/// Definitions built into the binary, so they work from any working directory; a file of the same name in
/// the integrations folder replaces one.
pub const BUILT_IN: [(&str, &str); 4] = [
    ("webhook", include_str!("../../integrations/webhook.toml")),
    ("genetec", include_str!("../../integrations/genetec.toml")),
    (
        "nx-witness-legacy",
        include_str!("../../integrations/nx-witness-legacy.toml"),
    ),
    ("rhombus", include_str!("../../integrations/rhombus.toml")),
];

/// Names the Rust adapters answer to; a definition cannot take them.
pub const RUST_ADAPTERS: [&str; 1] = ["nx-witness"];

/// Definition names: 1 to 64 of a-z, 0-9 and -.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

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
    read_document(text, |doc, top| build(doc, top, name, source))
}

fn template(doc: &Doc, t: &Table, key: &'static str, required: bool) -> Option<String> {
    let value = if required {
        t.req_str(key)
    } else {
        t.opt_str(key)
    }?;
    if let Err(e) = super::template::check(&value.value) {
        doc.push(value.path, Some(value.line), e);
        return None;
    }
    Some(value.value)
}

fn statuses(doc: &Doc, t: &Table, key: &'static str) -> Option<Vec<u16>> {
    let list = t.opt_int_list(key, 100..600)?;
    if list.is_empty() {
        doc.push(
            t.key_path(key),
            Some(t.line_of(key)),
            "must list at least one status",
        );
    }
    Some(list.into_iter().map(|n| n as u16).collect())
}

fn build(doc: &Doc, top: &Table, name: &str, source: Option<&Path>) -> Option<Definition> {
    let declared = top.req_str("name");
    if let Some(d) = &declared {
        if d.value != name {
            top.error(
                "name",
                format!(
                    "is \"{}\" but the file is {name}.toml: they must match",
                    d.value
                ),
            );
        } else if !is_valid_name(name) {
            top.error("name", "must be 1 to 64 of a-z 0-9 -");
        } else if RUST_ADAPTERS.contains(&name) {
            top.error(
                "name",
                format!("\"{name}\" is built into tillmark; choose another name"),
            );
        }
    }
    let title = top
        .opt_str("title")
        .map(|t| t.value)
        .unwrap_or_else(|| name.to_string());
    let moment = match top.opt_str("moment").as_ref().map(|m| m.value.as_str()) {
        None | Some("range") => Some(Moment::Range),
        Some("point") => Some(Moment::Point),
        Some(other) => {
            top.error(
                "moment",
                format!("\"{other}\" is not a moment: use \"range\" or \"point\""),
            );
            None
        }
    };
    let auth = match top.opt_table("auth") {
        None => Some(Auth::None),
        Some(a) => {
            let scheme = a.req_str("scheme");
            let header = a.opt_str("header");
            let auth = match scheme.as_ref().map(|s| s.value.as_str()) {
                Some("none") => Some(Auth::None),
                Some("basic") => Some(Auth::Basic),
                Some("bearer") => Some(Auth::Bearer),
                Some("header") => {
                    match header {
                        Some(h) => Some(Auth::Header(h.value)),
                        None => {
                            a.error("header", "is required with scheme = \"header\": the header that carries the key");
                            None
                        }
                    }
                }
                Some(other) => {
                    a.error(
                        "scheme",
                        format!(
                            "unknown scheme \"{other}\"; available: none, basic, bearer, header"
                        ),
                    );
                    None
                }
                None => None,
            };
            a.finish();
            auth
        }
    };
    let create = top.opt_table("create");
    if create.is_none() {
        top.error("create", "is required: the request that makes a bookmark");
    }
    let mut success = Vec::new();
    let mut retry = DEFAULT_RETRY.to_vec();
    let (mut id_path, mut error_flag, mut error_message) = (None, None, None);
    let request = create.as_ref().and_then(|c| {
        let method = c
            .opt_str("method")
            .map(|m| m.value)
            .unwrap_or_else(|| "POST".into());
        let method = match method.as_str() {
            "POST" | "PUT" | "PATCH" | "GET" => reqwest::Method::from_bytes(method.as_bytes()).ok(),
            other => {
                c.error(
                    "method",
                    format!("\"{other}\" is not one of POST, PUT, PATCH, GET"),
                );
                None
            }
        };
        let url = template(doc, c, "url", true);
        let body = template(doc, c, "body", false);
        let mut headers = Vec::new();
        if let Some(h) = c.opt_table("headers") {
            for (key, value) in h.string_entries() {
                match super::template::check(&value.value) {
                    Ok(()) => headers.push((key, value.value)),
                    Err(e) => doc.push(value.path, Some(value.line), e),
                }
            }
        }
        if let Some(s) = statuses(doc, c, "success") {
            success = s;
        }
        if let Some(r) = statuses(doc, c, "retry") {
            retry = r;
        }
        id_path = c.opt_str("id").map(|i| i.value);
        error_flag = c.opt_str("error_flag").map(|i| i.value);
        error_message = c.opt_str("error_message").map(|i| i.value);
        c.finish();
        Some(Request {
            method: method?,
            url: url?,
            headers,
            body,
        })
    });
    let footage_link = top.opt_table("links").and_then(|l| {
        let link = template(doc, &l, "footage", false);
        l.finish();
        link
    });
    let (mut max_name, mut max_description) = (None, None);
    if let Some(l) = top.opt_table("limits") {
        max_name = l.opt_int("name", 1..100_001).map(|n| n as usize);
        max_description = l.opt_int("description", 1..1_000_001).map(|n| n as usize);
        l.finish();
    }
    Some(Definition {
        name: name.to_string(),
        title,
        moment: moment?,
        auth: auth?,
        create: request?,
        success,
        id_path,
        error_flag,
        error_message,
        retry,
        footage_link,
        max_name,
        max_description,
        source: source.map(Path::to_path_buf),
    })
}

/// A loaded set: the definitions by name, and the files that could not be used.
#[derive(Debug, Clone, Default)]
pub struct Set {
    pub definitions: BTreeMap<String, Arc<Definition>>,
    pub errors: Vec<FileErrors>,
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
            ["genetec", "nx-witness-legacy", "rhombus", "webhook"]
        );
        assert!(
            set.definitions.values().all(|d| d.source.is_none()),
            "built in, not read from a folder"
        );
    }

    #[test]
    fn a_definition_named_unlike_its_file_or_taking_a_rust_adapters_name_is_refused() {
        let errors = parse("name = \"other\"\n[create]\nurl = \"x\"\n", "acme", None).unwrap_err();
        assert_eq!(errors[0].path, "name");
        assert!(errors[0].message.contains("they must match"), "{errors:?}");
        let errors = parse(
            "name = \"nx-witness\"\n[create]\nurl = \"x\"\n",
            "nx-witness",
            None,
        )
        .unwrap_err();
        assert!(
            errors[0].message.contains("built into tillmark"),
            "{errors:?}"
        );
    }
}
