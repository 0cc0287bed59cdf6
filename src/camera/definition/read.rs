//! Reading a definition file: every section, every key, every template compiled, so `integrations check`
//! reports all of a file's problems at once, each with its line and key.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use super::{
    Answer, Auth, Body, Clip, Create, DEFAULT_RETRY, Definition, Fallback, IdFrom, Lookup, Moment,
    RateLimit, Request, Session, Setup, TokenFrom,
};
use crate::config::Integration;
use crate::config::reader::{Doc, Table};

/// The hosts a definition declares under `[hosts]`, and the options whose addresses its requests begin with,
/// gathered as its request URLs are read.
struct Hosts {
    declared: BTreeMap<String, String>,
    options: RefCell<BTreeSet<String>>,
}

impl Hosts {
    /// `[hosts]`: each host (with its port where not the scheme's own) and why the vendor's API uses it.
    fn read(doc: &Doc, top: &Table) -> Hosts {
        let mut declared = BTreeMap::new();
        if let Some(t) = top.opt_table("hosts") {
            for (host, why) in t.string_entries() {
                if !super::hosts::is_host(&host) {
                    doc.push(
                        why.path,
                        Some(why.line),
                        format!(
                            "\"{host}\" is not a host: write the name alone (auth.example.com), with a port \
                             where it is not the scheme's own"
                        ),
                    );
                } else if why.value.trim().is_empty() {
                    doc.push(
                        why.path,
                        Some(why.line),
                        "needs the reason the vendor's API uses this host",
                    );
                } else {
                    declared.insert(host.to_ascii_lowercase(), why.value);
                }
            }
        }
        Hosts {
            declared,
            options: RefCell::default(),
        }
    }

    /// A request's URL template, checked to begin at the system's host, a declared host or an option.
    fn url(&self, doc: &Doc, t: &Table, key: &'static str) -> Option<String> {
        let value = t.req_str(key)?;
        if let Err(e) = crate::camera::template::check(&value.value) {
            doc.push(value.path, Some(value.line), e);
            return None;
        }
        match super::hosts::check_url(&value.value, &self.declared) {
            Ok(super::hosts::Start::Option(name)) => {
                self.options.borrow_mut().insert(name);
            }
            Ok(_) => {}
            Err(e) => {
                doc.push(value.path, Some(value.line), e);
                return None;
            }
        }
        Some(value.value)
    }
}

fn template(doc: &Doc, t: &Table, key: &'static str, required: bool) -> Option<String> {
    let value = if required {
        t.req_str(key)
    } else {
        t.opt_str(key)
    }?;
    if let Err(e) = crate::camera::template::check(&value.value) {
        doc.push(value.path, Some(value.line), e);
        return None;
    }
    Some(value.value)
}

/// A free-form table of templates (headers, form fields).
fn template_entries(doc: &Doc, t: &Table, key: &'static str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(h) = t.opt_table(key) {
        for (name, value) in h.string_entries() {
            match crate::camera::template::check(&value.value) {
                Ok(()) => out.push((name, value.value)),
                Err(e) => doc.push(value.path, Some(value.line), e),
            }
        }
    }
    out
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

/// The request keys of a section: `method`, `url`, `headers`, and a `body` (JSON) or `form`.
fn request(doc: &Doc, hosts: &Hosts, t: &Table, default_method: &str) -> Option<Request> {
    let method = t
        .opt_str("method")
        .map(|m| m.value)
        .unwrap_or_else(|| default_method.into());
    let method = match method.as_str() {
        "POST" | "PUT" | "PATCH" | "GET" | "DELETE" => {
            reqwest::Method::from_bytes(method.as_bytes()).ok()
        }
        other => {
            t.error(
                "method",
                format!("\"{other}\" is not one of POST, PUT, PATCH, GET, DELETE"),
            );
            None
        }
    };
    let url = hosts.url(doc, t, "url");
    let headers = template_entries(doc, t, "headers");
    let json = template(doc, t, "body", false);
    let form = t.has("form").then(|| template_entries(doc, t, "form"));
    let body = match (json, form) {
        (Some(_), Some(_)) => {
            t.error("form", "a request has a JSON `body` or a `form`, not both");
            Body::None
        }
        (Some(json), None) => Body::Json(json),
        (None, Some(form)) => Body::Form(form),
        (None, None) => Body::None,
    };
    Some(Request {
        method: method?,
        url: url?,
        headers,
        body,
    })
}

/// How to read a creating request's answer: the keys beside the request in `[create]` and `[fallback]`.
fn answer(doc: &Doc, t: &Table) -> Answer {
    let mut answer = Answer {
        success: statuses(doc, t, "success").unwrap_or_default(),
        retry: statuses(doc, t, "retry").unwrap_or_else(|| DEFAULT_RETRY.to_vec()),
        id: IdFrom::None,
        error_flag: t.opt_str("error_flag").map(|i| i.value),
        success_flag: t.opt_str("success_flag").map(|i| i.value),
        error_message: t.opt_str("error_message").map(|i| i.value),
        messages: BTreeMap::new(),
    };
    let path = t.opt_str("id").map(|i| i.value);
    let supplied = template(doc, t, "vendor_id", false);
    answer.id = match (path, supplied) {
        (Some(_), Some(_)) => {
            t.error(
                "vendor_id",
                "give the id's path in the answer (`id`) or the id the request supplied (`vendor_id`), not both",
            );
            IdFrom::None
        }
        (Some(p), None) => IdFrom::Path(p),
        (None, Some(tpl)) => IdFrom::Template(tpl),
        (None, None) => IdFrom::None,
    };
    for (status, message) in template_entries(doc, t, "messages") {
        match status.parse::<u16>() {
            Ok(code) if (100..600).contains(&code) => {
                answer.messages.insert(code, message);
            }
            _ => t.error(
                "messages",
                format!("\"{status}\" is not an HTTP status: keys are statuses such as \"404\""),
            ),
        }
    }
    answer
}

/// `[clip]`: the export request and its answer, `[clip.poll]` with its `ready` test, `[clip.download]`, and the
/// limits on the whole.
fn clip(doc: &Doc, hosts: &Hosts, c: &Table) -> Option<Clip> {
    let export = request(doc, hosts, c, "POST");
    let answer = answer(doc, c);
    if matches!(answer.id, IdFrom::None) {
        c.error(
            "id",
            "is required: the path of the export's id in the answer, which the poll and download use as `job`",
        );
    }
    let every = c
        .opt_duration("every")
        .map(|m| m.as_std())
        .unwrap_or(Duration::from_secs(2));
    let time_limit = c
        .opt_duration("time_limit")
        .map(|m| m.as_std())
        .unwrap_or(Duration::from_secs(600));
    let max_size = c
        .opt_size("max_size")
        .unwrap_or(crate::config::Bytes(500 * 1000 * 1000));
    let mut ready = None;
    let mut failed = None;
    let poll = c.opt_table("poll");
    if poll.is_none() {
        c.error(
            "poll",
            "is required: the request that asks whether the export is ready",
        );
    }
    let poll = poll.and_then(|p| {
        let r = request(doc, hosts, &p, "GET");
        ready = template(doc, &p, "ready", true);
        failed = template(doc, &p, "failed", false);
        p.finish();
        r
    });
    let download = c.opt_table("download");
    if download.is_none() {
        c.error(
            "download",
            "is required: the request that fetches the finished clip",
        );
    }
    let download = download.and_then(|d| {
        // An address the answer gives whole is checked when sent; any other URL is checked here.
        let r = match d.peek_str("url") {
            Some(url) if super::hosts::is_answer_address(&url.value) => {
                let method = d.opt_str("method");
                if method.is_some_and(|m| m.value != "GET") {
                    d.error(
                        "method",
                        "a download from an address in the answer is a GET",
                    );
                }
                template(doc, &d, "url", true).map(|url| Request {
                    method: reqwest::Method::GET,
                    url,
                    headers: Vec::new(),
                    body: Body::None,
                })
            }
            _ => request(doc, hosts, &d, "GET"),
        };
        d.finish();
        r
    });
    c.finish();
    Some(Clip {
        request: export?,
        answer,
        poll: poll?,
        ready: ready?,
        failed,
        every,
        download: download?,
        max_size,
        time_limit,
    })
}

fn lookup(doc: &Doc, hosts: &Hosts, t: &Table) -> Option<Lookup> {
    let request = request(doc, hosts, t, "GET");
    let lookup = Lookup {
        request: request?,
        items: t.opt_str("items").map(|i| i.value),
        matches: template(doc, t, "match", false),
        id: t.opt_str("id").map(|i| i.value),
        not_found: statuses(doc, t, "not_found").unwrap_or_else(|| vec![404]),
    };
    Some(lookup)
}

fn setup(doc: &Doc, hosts: &Hosts, t: &Table) -> Option<Setup> {
    let name = t.req_str("name");
    if let Some(n) = &name
        && !n
            .value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        t.error(
            "name",
            "must be letters, digits and _ (templates use setup.<name>)",
        );
    }
    let find = t.opt_table("find").and_then(|f| {
        let l = lookup(doc, hosts, &f);
        if f.opt_str("id").is_none() {
            f.error("id", "is required: the path of the value in the found item");
        }
        f.finish();
        l
    });
    if !t.has("find") {
        t.error("find", "is required: how to look the value up");
    }
    let mut create_value = None;
    let create = t.opt_table("create").and_then(|c| {
        create_value = c.req_str("value").map(|v| v.value);
        let r = request(doc, hosts, &c, "POST");
        c.finish();
        r
    });
    if !t.has("create") {
        t.error(
            "create",
            "is required: how to make the value when it is missing",
        );
    }
    t.finish();
    Some(Setup {
        name: name?.value,
        find: find?,
        create: create?,
        create_value: create_value?,
    })
}

/// Login presets: OAuth2 grants are a login with a known form, answer and header.
fn session(doc: &Doc, hosts: &Hosts, a: &Table, scheme: &str) -> Option<Session> {
    let oauth = scheme.starts_with("oauth2-");
    let login = if oauth {
        let url = hosts.url(doc, a, "token_url");
        let client_id = template(doc, a, "client_id", false);
        let mut form = vec![("grant_type".to_string(), String::new())];
        let mut headers = Vec::new();
        if scheme == "oauth2-password" {
            form[0].1 = "password".into();
            form.push(("username".into(), "{{ system.username }}".into()));
            form.push(("password".into(), "{{ secret.password }}".into()));
            form.push((
                "client_id".into(),
                client_id.unwrap_or_else(|| "{{ system.client_id }}".into()),
            ));
        } else {
            form[0].1 = "refresh_token".into();
            form.push(("refresh_token".into(), "{{ refresh_token }}".into()));
            // The client authenticates with Basic client_id:client_secret (RFC 6749 2.3.1).
            headers.push((
                "Authorization".into(),
                "Basic {{ (system.client_id ~ ':' ~ secret.client_secret) | b64encode }}".into(),
            ));
        }
        Some(Request {
            method: reqwest::Method::POST,
            url: url?,
            headers,
            body: Body::Form(form),
        })
    } else {
        let login = a.opt_table("login");
        if login.is_none() {
            a.error(
                "login",
                "is required with scheme = \"login\": the request that returns a token",
            );
        }
        login.and_then(|l| {
            let r = request(doc, hosts, &l, "POST");
            l.finish();
            r
        })
    };
    let token = match (a.opt_str("token"), a.opt_str("token_cookie")) {
        (Some(_), Some(_)) => {
            a.error(
                "token_cookie",
                "the token comes in the body (`token`) or a cookie (`token_cookie`), not both",
            );
            None
        }
        (Some(p), None) => Some(TokenFrom::Body(p.value)),
        (None, Some(c)) => Some(TokenFrom::Cookie(c.value)),
        (None, None) if oauth => Some(TokenFrom::Body("access_token".into())),
        (None, None) => {
            a.error(
                "token",
                "is required: the path of the token in the login answer (or `token_cookie`)",
            );
            None
        }
    };
    let lifetime_path = a
        .opt_str("lifetime_path")
        .map(|p| p.value)
        .or_else(|| oauth.then(|| "expires_in".to_string()));
    let lifetime = a
        .opt_duration("lifetime")
        .map(|m| m.as_std())
        .unwrap_or(Duration::from_secs(60));
    let header = a
        .opt_str("header")
        .map(|h| h.value)
        .unwrap_or_else(|| "Authorization".into());
    let value = template(doc, a, "value", false).unwrap_or_else(|| "Bearer {{ token }}".into());
    let expired_status = statuses(doc, a, "expired").unwrap_or_else(|| vec![401]);
    let expired_header = a.opt_table("expired_header").and_then(|h| {
        let entries = h.string_entries();
        if entries.len() != 1 {
            a.error("expired_header", "must hold exactly one header = value");
        }
        entries.into_iter().next().map(|(k, v)| (k, v.value))
    });
    let refresh_token_path = a
        .opt_str("refresh_token_path")
        .map(|p| p.value)
        .or_else(|| (scheme == "oauth2-refresh").then(|| "refresh_token".to_string()));
    Some(Session {
        scheme: scheme.to_string(),
        login: login?,
        token: token?,
        lifetime_path,
        lifetime,
        header,
        value,
        expired_status,
        expired_header,
        refresh_token_path,
    })
}

const SCHEMES: &str = "none, basic, digest, bearer, header, login, oauth2-password, oauth2-refresh";

fn auth(doc: &Doc, hosts: &Hosts, top: &Table) -> Option<(Auth, Option<String>)> {
    let Some(a) = top.opt_table("auth") else {
        return Some((Auth::None, None));
    };
    let when = template(doc, &a, "when", false);
    let scheme = a.req_str("scheme");
    let auth = match scheme.as_ref().map(|s| s.value.as_str()) {
        Some("none") => Some(Auth::None),
        Some("basic") => Some(Auth::Basic),
        Some("digest") => Some(Auth::Digest),
        Some("bearer") => Some(Auth::Bearer),
        Some("header") => match a.opt_str("header") {
            Some(h) => Some(Auth::Header(h.value)),
            None => {
                a.error(
                    "header",
                    "is required with scheme = \"header\": the header that carries the key",
                );
                None
            }
        },
        Some(s @ ("login" | "oauth2-password" | "oauth2-refresh")) => {
            session(doc, hosts, &a, s).map(|s| Auth::Session(Box::new(s)))
        }
        Some(other) => {
            a.error(
                "scheme",
                format!("unknown scheme \"{other}\"; available: {SCHEMES}"),
            );
            None
        }
        None => None,
    };
    a.finish();
    auth.map(|auth| (auth, when))
}

fn moment(top: &Table) -> Option<Moment> {
    match top.opt_str("moment").as_ref().map(|m| m.value.as_str()) {
        None | Some("range") => Some(Moment::Range),
        Some("point") => Some(Moment::Point),
        Some("realtime") => Some(Moment::Realtime),
        Some(other) => {
            top.error(
                "moment",
                format!("\"{other}\" is not a moment: use \"range\", \"point\" or \"realtime\""),
            );
            None
        }
    }
}

fn check_name(top: &Table, name: &str) {
    let Some(declared) = top.req_str("name") else {
        return;
    };
    if declared.value != name {
        top.error(
            "name",
            format!(
                "is \"{}\" but the file is {name}.toml: they must match",
                declared.value
            ),
        );
    } else if !Integration::is_valid_name(name) {
        top.error("name", "must be 1 to 64 of a-z 0-9 -");
    }
}

pub fn definition(doc: &Doc, top: &Table, name: &str, source: Option<&Path>) -> Option<Definition> {
    check_name(top, name);
    let title = top
        .opt_str("title")
        .map(|t| t.value)
        .unwrap_or_else(|| name.to_string());
    let moment = moment(top);
    let hosts = Hosts::read(doc, top);
    let auth = auth(doc, &hosts, top);
    let setup: Vec<Option<Setup>> = top
        .tables("setup")
        .iter()
        .map(|t| setup(doc, &hosts, t))
        .collect();
    let lookup = top.opt_table("lookup").and_then(|t| {
        let l = lookup(doc, &hosts, &t);
        t.finish();
        l
    });
    let create = top.opt_table("create");
    if create.is_none() {
        top.error("create", "is required: the request that makes a bookmark");
    }
    let create = create.and_then(|c| {
        let request = request(doc, &hosts, &c, "POST");
        let answer = answer(doc, &c);
        let when = template(doc, &c, "when", false);
        let read_back = c.opt_bool("read_back").unwrap_or(false);
        if read_back && !top.has("lookup") {
            c.error(
                "read_back",
                "needs a [lookup] section: how to read the bookmark back",
            );
        }
        if when.is_some() && !top.has("fallback") {
            c.error(
                "when",
                "needs a [fallback] section: what to make when it is false",
            );
        }
        c.finish();
        Some(Create {
            request: request?,
            answer,
            when,
            read_back,
        })
    });
    let fallback = top.opt_table("fallback").and_then(|f| {
        let label = f.req_str("label").map(|l| l.value);
        let request = request(doc, &hosts, &f, "POST");
        let answer = answer(doc, &f);
        f.finish();
        Some(Fallback {
            label: label?,
            request: request?,
            answer,
        })
    });
    let footage_link = top.opt_table("links").and_then(|l| {
        let link = template(doc, &l, "footage", false);
        l.finish();
        link
    });
    let thumbnail = top.opt_table("thumbnail").and_then(|t| {
        let r = request(doc, &hosts, &t, "GET");
        t.finish();
        r
    });
    let clip = top.opt_table("clip").and_then(|c| clip(doc, &hosts, &c));
    let (mut max_name, mut max_description) = (None, None);
    let (mut rate_limit, mut cooldown) = (None, None);
    if let Some(l) = top.opt_table("limits") {
        max_name = l.opt_int("name", 1..100_001).map(|n| n as usize);
        max_description = l.opt_int("description", 1..1_000_001).map(|n| n as usize);
        rate_limit = l
            .opt_str("rate_limit")
            .and_then(|r| match RateLimit::parse(&r.value) {
                Ok(rate) => Some(rate),
                Err(e) => {
                    doc.push(r.path, Some(r.line), e);
                    None
                }
            });
        if l.has("requests_per_minute") {
            l.error(
                "requests_per_minute",
                "is now written as a rate: rate_limit = \"300/min\"",
            );
        }
        cooldown = l.opt_duration("cooldown").map(|m| m.as_std());
        l.finish();
    }
    let (auth, auth_when) = auth?;
    Some(Definition {
        name: name.to_string(),
        title,
        moment: moment?,
        auth,
        auth_when,
        setup: setup.into_iter().collect::<Option<Vec<_>>>()?,
        lookup,
        create: create?,
        fallback,
        footage_link,
        thumbnail,
        clip,
        max_name,
        max_description,
        rate_limit,
        cooldown,
        hosts: hosts.declared,
        option_urls: hosts.options.into_inner(),
        source: source.map(Path::to_path_buf),
    })
}
