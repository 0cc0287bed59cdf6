//! The index in Japanese and English. A person's language is the `lang` cookie they chose with the switch in
//! the header, or else the best of their browser's Accept-Language. Every word a page shows is a message in
//! `web/i18n/{en,ja}.toml` (nested tables, read as dotted keys), looked up by the templates' `t("key", name=value)`.
//!
//! A message is plain text: it is HTML-escaped, as is every value put into it, unless the template marks a
//! value safe (a `<code>` it built itself). A key missing from the catalog fails the page, never shows
//! nothing; a test checks that both catalogs hold the same keys and every key the templates use.
//!
//! The JSON API, the daemon's log and the names of bookmarks on the camera systems stay in English: they
//! are read by scripts and by the camera systems' own search.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::LazyLock;

use axum::extract::{Query, Request};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use minijinja::value::{Kwargs, Value};
use minijinja::{Error, ErrorKind};
use serde::Deserialize;

use super::auth::cookie;
use super::local_path::local_path;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    Ja,
}

impl Lang {
    pub const ALL: [Lang; 2] = [Lang::Ja, Lang::En];

    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Ja => "ja",
        }
    }

    fn parse(code: &str) -> Option<Lang> {
        Lang::ALL.into_iter().find(|l| l.code() == code)
    }

    /// The language a tag of Accept-Language asks for: `ja`, `ja-JP`, `en-GB` all count.
    fn of_tag(tag: &str) -> Option<Lang> {
        let primary = tag.split('-').next().unwrap_or_default();
        Lang::ALL
            .into_iter()
            .find(|l| l.code().eq_ignore_ascii_case(primary))
    }
}

/// The cookie the language switch sets.
pub const LANG_COOKIE: &str = "lang";

/// The language for a request: the cookie's, else the browser's most preferred one we have, else English.
pub fn negotiate(headers: &HeaderMap) -> Lang {
    if let Some(lang) = cookie(headers, LANG_COOKIE).and_then(Lang::parse) {
        return lang;
    }
    let accept = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let mut best: Option<(f32, Lang)> = None;
    for item in accept.split(',') {
        let mut parts = item.split(';');
        let tag = parts.next().unwrap_or_default().trim();
        let q = parts
            .find_map(|p| p.trim().strip_prefix("q="))
            .map(|q| q.trim().parse::<f32>().unwrap_or(0.0))
            .unwrap_or(1.0);
        // The first of equal weights wins: the browser lists them in the person's order.
        if let Some(lang) = Lang::of_tag(tag)
            && q > 0.0
            && best.is_none_or(|(b, _)| q > b)
        {
            best = Some((q, lang));
        }
    }
    best.map(|(_, l)| l).unwrap_or(Lang::En)
}

/// What a page rendered for this request needs to know of it.
#[derive(Debug, Clone)]
struct Here {
    lang: Lang,
    /// The path and query, for the language switch to come back to.
    path: String,
}

tokio::task_local! {
    static HERE: Here;
}

/// Middleware: every handler of the request, and every page it renders, speaks the request's language.
pub async fn locale(request: Request, next: Next) -> Response {
    let here = Here {
        lang: negotiate(request.headers()),
        path: request
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into()),
    };
    let mut response = HERE.scope(here, next.run(request)).await;
    // The same page answers in two languages; the stylesheet and the API do not, and stay cacheable.
    let page = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|t| t.as_bytes().starts_with(b"text/html"));
    if page {
        response.headers_mut().append(
            header::VARY,
            HeaderValue::from_static("accept-language, cookie"),
        );
    }
    response
}

/// The language of the request being answered (English outside one).
pub fn current() -> Lang {
    HERE.try_with(|h| h.lang).unwrap_or(Lang::En)
}

/// Runs `f` speaking `lang`, as a page rendered for a request in that language would: for what is written
/// outside a request, such as an alert's email in its store's language.
pub fn in_language<R>(lang: Lang, f: impl FnOnce() -> R) -> R {
    let here = Here {
        lang,
        path: "/".into(),
    };
    HERE.sync_scope(here, f)
}

/// A message in the current language with each `{name}` replaced by its value, as plain text (no escaping):
/// for text that is no page, such as an email.
pub fn text_with(key: &str, values: &[(&str, &str)]) -> String {
    values.iter().fold(text(key), |message, (name, value)| {
        message.replace(&format!("{{{name}}}"), value)
    })
}

impl From<crate::config::Language> for Lang {
    fn from(language: crate::config::Language) -> Lang {
        match language {
            crate::config::Language::En => Lang::En,
            crate::config::Language::Ja => Lang::Ja,
        }
    }
}

type Catalog = HashMap<String, String>;

/// Nested tables flattened to dotted keys: `[case] open = "…"` is `case.open`.
fn flatten(prefix: &str, table: &toml::Table, into: &mut Catalog) -> Result<(), String> {
    for (key, value) in table {
        let key = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            toml::Value::String(s) => {
                into.insert(key, s.clone());
            }
            toml::Value::Table(t) => flatten(&key, t, into)?,
            other => {
                return Err(format!(
                    "{key}: a message is text, not {}",
                    other.type_str()
                ));
            }
        }
    }
    Ok(())
}

pub fn parse_catalog(source: &str) -> Result<Catalog, String> {
    let table: toml::Table = toml::from_str(source).map_err(|e| e.to_string())?;
    let mut catalog = Catalog::new();
    flatten("", &table, &mut catalog)?;
    Ok(catalog)
}

pub const SOURCES: [(Lang, &str); 2] = [
    (Lang::En, include_str!("../../web/i18n/en.toml")),
    (Lang::Ja, include_str!("../../web/i18n/ja.toml")),
];

static CATALOGS: LazyLock<HashMap<&'static str, Catalog>> = LazyLock::new(|| {
    SOURCES
        .iter()
        .map(|(lang, source)| {
            let catalog = parse_catalog(source).unwrap_or_else(|e| {
                tracing::error!(lang = lang.code(), error = %e, "A message catalog does not parse; its pages fail.");
                Catalog::new()
            });
            (lang.code(), catalog)
        })
        .collect()
});

/// The catalog of the request's language (empty when its file did not parse, which is logged).
fn catalog() -> Option<&'static Catalog> {
    CATALOGS.get(current().code())
}

/// A message in the request's language, placeholders filled in, as plain text: for what Rust labels itself.
pub fn text(key: &str) -> String {
    catalog()
        .and_then(|c| c.get(key))
        .cloned()
        .unwrap_or_else(|| {
            tracing::error!(key, "A message is missing from the catalog.");
            key.to_string()
        })
}

/// Whether the current language's catalog has `key`: for words with a fallback of their own.
pub fn has(key: &str) -> bool {
    catalog().is_some_and(|c| c.contains_key(key))
}

/// Escapes text for HTML text and double-quoted attributes, which is everywhere the templates put a message
/// (a test keeps single-quoted attributes out of them). Unlike a full escape it leaves `'` and `/` as they are,
/// so the messages read the same in the page's source as in the catalog.
struct Escaped<'a>(&'a str);

impl std::fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut last = 0;
        for (i, c) in self.0.char_indices() {
            let entity = match c {
                '&' => "&amp;",
                '<' => "&lt;",
                '>' => "&gt;",
                '"' => "&quot;",
                _ => continue,
            };
            f.write_str(&self.0[last..i])?;
            f.write_str(entity)?;
            last = i + 1;
        }
        f.write_str(&self.0[last..])
    }
}

/// An event type's name in the request's language (`返品`, `REFUND`); a type the catalog does not know, as
/// the camera systems' bookmarks write it.
pub fn type_label(kind: &str) -> String {
    catalog()
        .and_then(|c| c.get(&format!("type.{kind}")))
        .cloned()
        .unwrap_or_else(|| crate::camera::text::kind_label(kind))
}

/// An event's name on the index: its type's, except that a flagged drawer open (no sale explained it) is
/// called what it is, a drawer open without a sale.
pub fn event_label(kind: &str, flagged: bool) -> String {
    if kind == "drawer_open" && flagged {
        return type_label("drawer_open_unexplained");
    }
    type_label(kind)
}

/// `t("key", name=value, ...)`: the message, HTML-escaped, each `{name}` replaced by its value (escaped
/// unless the template marked it safe). With `count=`, the key's `one` or `other` form.
pub fn t(key: &str, args: Kwargs) -> Result<Value, Error> {
    let lang = current();
    let catalog =
        catalog().ok_or_else(|| Error::new(ErrorKind::InvalidOperation, "no message catalog"))?;
    let count: Option<i64> = args.get("count")?;
    let key = match count {
        Some(n) => format!("{key}.{}", if n == 1 { "one" } else { "other" }),
        None => key.to_string(),
    };
    let message = catalog.get(&key).ok_or_else(|| {
        Error::new(
            ErrorKind::UndefinedError,
            format!("no message \"{key}\" in the {} catalog", lang.code()),
        )
    })?;
    let mut out = String::with_capacity(message.len());
    let mut rest = message.as_str();
    while let Some(open) = rest.find('{') {
        let close = rest[open..].find('}').map(|c| open + c).ok_or_else(|| {
            Error::new(
                ErrorKind::SyntaxError,
                format!("message \"{key}\": unclosed {{"),
            )
        })?;
        write!(out, "{}", Escaped(&rest[..open])).ok();
        let name = &rest[open + 1..close];
        let value: Value = args.get(name).map_err(|_| {
            Error::new(
                ErrorKind::MissingArgument,
                format!("message \"{key}\" needs {name}="),
            )
        })?;
        if value.is_safe() {
            out.push_str(&value.to_string());
        } else {
            write!(out, "{}", Escaped(&value.to_string())).ok();
        }
        rest = &rest[close + 1..];
    }
    write!(out, "{}", Escaped(rest)).ok();
    Ok(Value::from_safe_string(out))
}

/// `lang()`: the page's language code, for `<html lang>`.
pub fn lang() -> &'static str {
    current().code()
}

/// `switch_to("ja")`: the address that switches the index to a language and comes back to this page.
pub fn switch_to(code: &str) -> Value {
    let path = HERE
        .try_with(|h| h.path.clone())
        .unwrap_or_else(|_| "/".into());
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    q.append_pair("to", code).append_pair("next", &path);
    Value::from_safe_string(Escaped(&format!("/lang?{}", q.finish())).to_string())
}

#[derive(Debug, Deserialize)]
pub struct SwitchParams {
    to: Option<String>,
    next: Option<String>,
}

/// `GET /lang?to=ja&next=/path`: remembers the language for a year and goes back.
pub async fn switch(Query(p): Query<SwitchParams>) -> Response {
    let next = p.next.as_deref().and_then(local_path).unwrap_or("/");
    let Some(lang) = p.to.as_deref().and_then(Lang::parse) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let cookie = format!(
        "{LANG_COOKIE}={}; Path=/; Max-Age=31536000; SameSite=Lax; HttpOnly",
        lang.code()
    );
    let (Ok(location), Ok(cookie)) = (HeaderValue::from_str(next), HeaderValue::from_str(&cookie))
    else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    (
        StatusCode::SEE_OTHER,
        [(header::LOCATION, location), (header::SET_COOKIE, cookie)],
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.insert(name, HeaderValue::from_str(value).unwrap());
        }
        h
    }

    #[test]
    fn the_cookie_wins_then_the_highest_weighted_language_we_have_then_english() {
        let accept = |v: &str| negotiate(&headers(&[(header::ACCEPT_LANGUAGE, v)]));
        assert_eq!(accept("ja-JP,ja;q=0.9,en-US;q=0.8,en;q=0.7"), Lang::Ja);
        assert_eq!(accept("en-US,en;q=0.9,ja;q=0.8"), Lang::En);
        assert_eq!(accept("fr-FR,fr;q=0.9,ja;q=0.5,en;q=0.4"), Lang::Ja);
        assert_eq!(accept("en;q=0.2, ja;q=0.8"), Lang::Ja);
        assert_eq!(accept("ja;q=0, en;q=0.1"), Lang::En);
        assert_eq!(accept("fr, de"), Lang::En);
        assert_eq!(accept("JA"), Lang::Ja);
        assert_eq!(negotiate(&HeaderMap::new()), Lang::En);
        let both = headers(&[
            (header::ACCEPT_LANGUAGE, "ja"),
            (header::COOKIE, "tillmark_session=x; lang=en"),
        ]);
        assert_eq!(negotiate(&both), Lang::En);
        let unknown = headers(&[(header::ACCEPT_LANGUAGE, "ja"), (header::COOKIE, "lang=xx")]);
        assert_eq!(negotiate(&unknown), Lang::Ja);
    }

    #[test]
    fn both_catalogs_parse_and_hold_the_same_keys_with_the_same_placeholders() {
        let placeholders = |text: &str| -> Vec<String> {
            let mut names: Vec<String> = text
                .split('{')
                .skip(1)
                .filter_map(|p| p.split_once('}').map(|(n, _)| n.to_string()))
                .collect();
            names.sort();
            names
        };
        let en = parse_catalog(SOURCES[0].1).unwrap();
        let ja = parse_catalog(SOURCES[1].1).unwrap();
        let mut missing: Vec<String> = en
            .keys()
            .filter(|k| !ja.contains_key(*k))
            .map(|k| format!("ja lacks {k}"))
            .chain(
                ja.keys()
                    .filter(|k| !en.contains_key(*k))
                    .map(|k| format!("en lacks {k}")),
            )
            .collect();
        missing.sort();
        assert!(missing.is_empty(), "{missing:#?}");
        for (key, text) in &en {
            assert_eq!(placeholders(text), placeholders(&ja[key]), "{key}");
        }
    }

    /// Every key a template names literally (`t("key"` or `t('key'`), with `.one`/`.other` when it counts.
    fn template_keys() -> Vec<(String, String)> {
        let mut keys = Vec::new();
        for (name, source) in super::super::pages::TEMPLATES {
            for quote in ['"', '\''] {
                let call = format!("t({quote}");
                // `t(` itself, not the end of another call (`split(" ")`).
                let pieces = source.match_indices(&call).filter_map(|(at, _)| {
                    let before = source[..at].chars().next_back();
                    let other = before.is_some_and(|c| c.is_alphanumeric() || c == '_');
                    (!other).then(|| &source[at + call.len()..])
                });
                for piece in pieces {
                    let Some((key, rest)) = piece.split_once(quote) else {
                        continue;
                    };
                    // A key built in the template (`'role.' ~ x`) is checked below, with its values.
                    if key.ends_with('.') {
                        continue;
                    }
                    let call = rest.split(')').next().unwrap_or_default();
                    if call.contains("count=") {
                        keys.push((name.to_string(), format!("{key}.one")));
                        keys.push((name.to_string(), format!("{key}.other")));
                    } else {
                        keys.push((name.to_string(), key.to_string()));
                    }
                }
            }
        }
        keys
    }

    #[test]
    fn every_message_a_page_asks_for_is_in_both_catalogs() {
        let keys = template_keys();
        assert!(
            keys.len() > 200,
            "the scan finds the templates' keys: {}",
            keys.len()
        );
        let built = crate::event::EventType::ALL
            .iter()
            .map(|t| format!("type.{}", t.as_str()))
            .chain(
                crate::accounts::Role::ALL
                    .iter()
                    .map(|r| format!("role.{}", r.as_str())),
            )
            .chain(
                super::super::audit::ACTIONS
                    .iter()
                    .map(|a| format!("audit.actions.{a}")),
            )
            .chain(
                super::super::cashiers::MEASURES
                    .iter()
                    .map(|(_, k)| k.to_string()),
            );
        let all: Vec<(String, String)> = keys
            .into_iter()
            .chain(built.map(|k| ("rust".to_string(), k)))
            .collect();
        for (lang, source) in SOURCES {
            let catalog = parse_catalog(source).unwrap();
            let missing: Vec<&(String, String)> = all
                .iter()
                .filter(|(_, k)| !catalog.contains_key(k))
                .collect();
            assert!(missing.is_empty(), "{} lacks {missing:?}", lang.code());
        }
    }

    #[test]
    fn no_template_puts_a_value_in_a_single_quoted_attribute() {
        // Messages escape `"` but not `'`: an attribute in single quotes could be broken out of.
        for (name, source) in super::super::pages::TEMPLATES {
            assert!(
                !source.contains("='"),
                "{name} has a single-quoted attribute"
            );
        }
    }

    /// A template's text as a reader sees it, with every tag, expression, statement and comment taken out,
    /// and the values of the attributes a reader sees (placeholder, title, aria-label, alt) kept.
    fn visible_words(source: &str) -> String {
        let mut out = String::new();
        let mut rest = source;
        while let Some(open) = rest.find(['{', '<']) {
            out.push_str(&rest[..open]);
            let tail = &rest[open..];
            let close = match &tail[..2.min(tail.len())] {
                "{{" => tail.find("}}").map(|c| c + 2),
                "{%" => tail.find("%}").map(|c| c + 2),
                "{#" => tail.find("#}").map(|c| c + 2),
                _ if tail.starts_with('<') => {
                    // A tag: its readable attributes' literal parts count, the rest does not.
                    let end = tail.find('>').map_or(tail.len(), |c| c + 1);
                    for attr in ["placeholder=\"", "title=\"", "aria-label=\"", "alt=\""] {
                        if let Some(at) = tail[..end].find(attr) {
                            let value = &tail[at + attr.len()..end];
                            let value = &value[..value.find('"').unwrap_or(value.len())];
                            out.push(' ');
                            out.push_str(&visible_words(value));
                        }
                    }
                    Some(end)
                }
                _ => Some(1),
            };
            let close = close.unwrap_or(tail.len());
            out.push(' ');
            rest = &tail[close..];
        }
        out.push_str(rest);
        out
    }

    #[test]
    fn no_template_writes_words_of_its_own_every_word_comes_from_the_catalogs() {
        // What may stand as it is in either language: the product's name, the language switch (each language
        // named in itself), examples typed into a search
        // (ids, a Japanese word), and the name of a hash.
        const ALLOWED: &[&str] = &["tillmark", "English", "T-000981", "c117", "SHA-256"];
        for (name, source) in super::super::pages::TEMPLATES {
            let text = visible_words(source);
            let words: Vec<&str> = text
                .split(|c: char| c.is_whitespace() || ",.;:()[]·—…|/".contains(c))
                .filter(|w| w.chars().filter(|c| c.is_ascii_alphabetic()).count() >= 2)
                .filter(|w| !ALLOWED.contains(w) && !w.starts_with('&'))
                .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()))
                .filter(|w| !w.is_empty())
                .collect();
            assert!(
                words.is_empty(),
                "{name} writes {words:?} itself: put them in web/i18n/*.toml"
            );
        }
    }

    /// Every string literal of a Rust file before its tests, with the names of the calls and macros it sits
    /// in (innermost last): `tracing::warn!`, `ApiError::bad_request`, `format!`.
    fn literals_with_callers(source: &str) -> Vec<(String, Vec<String>)> {
        let source = source.split("#[cfg(test)]").next().unwrap_or(source);
        let bytes = source.as_bytes();
        let (mut at, mut open, mut found) = (0, Vec::<String>::new(), Vec::new());
        while at < bytes.len() {
            let rest = &source[at..];
            let ident_before =
                at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_');
            if rest.starts_with("//") {
                at += rest.find('\n').unwrap_or(rest.len());
            } else if let Some(after) = rest.strip_prefix('\'') {
                // A char literal ('"', '\'') or a lifetime ('a): neither holds text.
                let close = after
                    .char_indices()
                    .take(3)
                    .find(|&(i, c)| c == '\'' && !(i == 1 && after.starts_with('\\')));
                at += close.map_or(1, |(i, _)| i + 2);
            } else if let Some(hashes) =
                rest.strip_prefix('r')
                    .filter(|_| !ident_before)
                    .and_then(|r| {
                        let n = r.len() - r.trim_start_matches('#').len();
                        r[n..].starts_with('"').then_some(n)
                    })
            {
                let body = &rest[2 + hashes..];
                let end = body
                    .find(&format!("\"{}", "#".repeat(hashes)))
                    .expect("a raw string ends");
                found.push((body[..end].to_string(), open.clone()));
                at += 2 + hashes + end + 1 + hashes;
            } else if rest.starts_with('"') {
                let mut end = 1;
                while rest.as_bytes()[end] != b'"' {
                    end += if rest.as_bytes()[end] == b'\\' { 2 } else { 1 };
                }
                found.push((rest[1..end].to_string(), open.clone()));
                at += end + 1;
            } else {
                match bytes[at] {
                    b'(' | b'[' | b'{' => {
                        let before = source[..at].trim_end();
                        let name_start = before
                            .rfind(|c: char| !(c.is_alphanumeric() || "_:!".contains(c)))
                            .map_or(0, |i| i + 1);
                        open.push(before[name_start..].to_string());
                    }
                    b')' | b']' | b'}' => {
                        open.pop();
                    }
                    _ => {}
                }
                at += rest.chars().next().map_or(1, char::len_utf8);
            }
        }
        found
    }

    #[test]
    fn no_page_code_writes_words_of_its_own_only_logs_the_json_api_and_audit_records_speak_english()
    {
        // Where English is the language by design: the daemon's log, the JSON API's answers (documented in
        // English for programs), the template engine's own errors (which go to the log), and audit records,
        // which are written once, as evidence, and shown as they were written.
        let by_design = |callers: &[String]| {
            callers.iter().any(|c| {
                ["trace!", "debug!", "info!", "warn!", "error!"]
                    .iter()
                    .any(|m| c.ends_with(m))
                    || c.starts_with("ApiError")
                    || c == "json!"
                    || c == "json"
                    || c == "Error::new"
            })
        };
        const AUDIT_DETAILS: &[&str] = &[
            "dead letter {first}",
            "dead letters {first}–{last}",
            "event {}: {} at {}/{}, {}",
            "reset on the people page; {revoked} API tokens revoked",
            "wrong or already used authenticator code",
            "with authenticator code",
            "{revoked} API tokens revoked",
            "timeline {}/{} {} to {} {}",
        ];
        // Headers' values and the catalog reader's own errors (it runs at start, before any page).
        const NOT_FOR_READERS: &[&str] = &[
            "default-src 'none';",
            "public, max-age=31536000, immutable",
            "{key}: a message is text, not {}",
            "message \\\"{key}\\\": unclosed {{",
            "message \\\"{key}\\\" needs {name}=",
        ];
        let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/web");
        let mut own_words = Vec::new();
        let mut files = 0;
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            // The JSON API and its errors answer programs, in English by design, as the README documents it; so
            // does /metrics, whose reader is Prometheus.
            let api = ["api.rs", "error.rs", "metrics.rs"]
                .iter()
                .any(|f| path.file_name().is_some_and(|n| n == *f));
            if path.extension().is_none_or(|e| e != "rs") || api {
                continue;
            }
            files += 1;
            let source = std::fs::read_to_string(&path).unwrap();
            for (literal, callers) in literals_with_callers(&source) {
                let words = literal
                    .split_whitespace()
                    .filter(|w| {
                        let w = w.trim_end_matches([',', '.', ';', ':']);
                        w.len() >= 2 && w.chars().all(|c| c.is_ascii_alphabetic() || c == '\'')
                    })
                    .count();
                let prose = words >= 2 && literal.contains(' ');
                if prose
                    && !by_design(&callers)
                    && !AUDIT_DETAILS.contains(&literal.as_str())
                    && !NOT_FOR_READERS.iter().any(|n| literal.starts_with(n))
                {
                    own_words.push(format!("{}: {literal:?}", path.display()));
                }
            }
        }
        assert!(
            files >= 15,
            "the page code was not found in {}",
            folder.display()
        );
        assert!(
            own_words.is_empty(),
            "page code writes words a reader sees itself: put them in web/i18n/*.toml\n{}",
            own_words.join("\n")
        );
    }

    #[test]
    fn a_message_escapes_what_is_put_into_it_unless_the_template_made_it_safe() {
        let render = |lang: &str, source: &str| {
            let mut env = minijinja::Environment::new();
            env.add_function("t", t);
            let headers = headers(&[(header::COOKIE, &format!("lang={lang}"))]);
            let here = Here {
                lang: negotiate(&headers),
                path: "/".into(),
            };
            HERE.sync_scope(here, || env.render_str(source, minijinja::context! {}))
        };
        assert_eq!(
            render("en", r#"{{ t("event.unknown_store", store="<script>") }}"#).unwrap(),
            "Store &lt;script&gt; is not in the config: shown in the offset the register sent."
        );
        assert_eq!(
            render(
                "ja",
                r#"{{ t("events.none_yet", cmd="<code>tillmark simulate</code>"|safe) }}"#
            )
            .unwrap(),
            "まだイベントがありません。レジのブリッジをブローカーに接続するか、<code>tillmark simulate</code> を実行してください。"
        );
        assert_eq!(
            render("en", r#"{{ t("bookmark.attempts", count=1, n=1) }} / {{ t("bookmark.attempts", count=3, n=3) }}"#)
                .unwrap(),
            "1 attempt / 3 attempts"
        );
        let missing = render("ja", r#"{{ t("no.such.key") }}"#).unwrap_err();
        assert!(
            missing
                .to_string()
                .contains("no message \"no.such.key\" in the ja catalog"),
            "{missing}"
        );
        let unfilled = render("en", r#"{{ t("event.unknown_store") }}"#).unwrap_err();
        assert!(unfilled.to_string().contains("needs store="), "{unfilled}");
    }
}
