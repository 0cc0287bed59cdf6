//! Where a definition's requests may go. Every request carries the camera system's credentials, so a request
//! URL must begin at the system's own `url`, at a host the definition declares under `[hosts]` with the
//! vendor's reason, or at an address the site's config gives in an option (which the site also allows with
//! `allowed_hosts`). What a template builds at run time is checked again before each request leaves
//! (`Wire::elsewhere`); this check names the file and line before anything runs.

use std::collections::{BTreeMap, BTreeSet};

/// Where a request URL begins, when it is allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// `{{ system.url }}`: the camera system's own origin.
    System,
    /// A host the definition declares.
    Declared(String),
    /// `{{ options.<name> ... }}`: an address from the site's config.
    Option(String),
}

/// Checks one request URL template against the hosts the definition declares: where it begins, and every
/// host written out in it (`https://host` in a `default(...)` too).
pub fn check_url(template: &str, declared: &BTreeMap<String, String>) -> Result<Start, String> {
    let text = after_assignments(template);
    for host in literal_hosts(text) {
        let host = host?;
        if !declared.contains_key(&host) {
            return Err(format!(
                "names the host {host}, which this definition does not declare: list it under [hosts] with the \
                 reason the vendor's API uses it (the site must also allow it with allowed_hosts)"
            ));
        }
    }
    let expected = "must begin with {{ system.url }}, a host declared under [hosts] (https://host/...), or an \
                    address the site gives in an option ({{ options.<name> }}): every request carries the \
                    camera system's credentials";
    if let Some(rest) = text.strip_prefix("{{") {
        let Some(end) = rest.find("}}") else {
            return Err(expected.into());
        };
        let inner = rest[..end].trim();
        let after = &rest[end + 2..];
        if inner == "system.url" {
            // `{{ system.url }}@other.host` or `{{ system.url }}.other.host` would leave the system's host.
            return match after.chars().next() {
                None | Some('/' | '?' | '#') => Ok(Start::System),
                Some(_) => Err(
                    "must continue {{ system.url }} with a path (/...), a query or nothing, so the request \
                     stays on the camera system's host"
                        .into(),
                ),
            };
        }
        if let Some(option) = inner.strip_prefix("options.") {
            let name: String = option
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                return Ok(Start::Option(name));
            }
        }
        return Err(expected.into());
    }
    match literal_hosts(text).next() {
        Some(Ok(host)) if text.starts_with("http://") || text.starts_with("https://") => {
            Ok(Start::Declared(host))
        }
        _ => Err(expected.into()),
    }
}

/// A URL that is an address the vendor's answer gives, whole (`{{ answer.url }}`): a clip's download link
/// (Safie's `url`). It cannot be checked before it exists, so it is checked when sent (`Wire::elsewhere`:
/// the system's origin or an allowed host), and goes off the origin without the system's credentials.
pub fn is_answer_address(template: &str) -> bool {
    let text = template.trim();
    let Some(inner) = text.strip_prefix("{{").and_then(|t| t.strip_suffix("}}")) else {
        return false;
    };
    let inner = inner.trim();
    inner.strip_prefix("answer.").is_some_and(|path| {
        !path.is_empty()
            && path
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
    })
}

/// The template from its first output on: past blank space and `{% set ... %}` tags, which print nothing
/// (Genetec's URL first makes its text safe for the call it builds).
fn after_assignments(template: &str) -> &str {
    let mut text = template.trim_start();
    while let Some(rest) = text.strip_prefix("{%") {
        let inner = rest.trim_start_matches(['-', '+']).trim_start();
        let Some(end) = rest.find("%}") else {
            break;
        };
        if !inner.starts_with("set ") {
            break;
        }
        text = rest[end + 2..].trim_start();
    }
    text
}

/// Each host written out after `http://` or `https://`, lower-cased with its port; an error where one is
/// built by a template or carries a user name, which would hide the real host.
fn literal_hosts(text: &str) -> impl Iterator<Item = Result<String, String>> + '_ {
    text.match_indices("://").filter_map(move |(at, _)| {
        let scheme = &text[..at];
        if !(scheme.ends_with("https") || scheme.ends_with("http")) {
            return None;
        }
        let rest = &text[at + 3..];
        let end = rest
            .find(|c: char| matches!(c, '/' | '?' | '#' | '\'' | '"' | '`') || c.is_whitespace())
            .unwrap_or(rest.len());
        let host = &rest[..end];
        Some(if host.contains("{{") || host.contains('~') {
            Err(format!(
                "builds the host of \"{}\" from a template: write the host out and declare it under [hosts], or \
                 begin with {{{{ system.url }}}} or an option",
                &text[..(at + 3 + end).min(text.len())]
            ))
        } else if host.contains('@') {
            Err(format!(
                "has a user name before the host in \"{host}\": credentials go in [auth], and the host must be \
                 plain"
            ))
        } else if host.is_empty() {
            Err("has an address with no host".into())
        } else {
            Ok(host.to_ascii_lowercase())
        })
    })
}

/// What a definition contacts besides its system's own host, for people comparing two definitions: each
/// declared host, and each option whose address it uses.
pub fn contacts(
    declared: &BTreeMap<String, String>,
    options: &BTreeSet<String>,
) -> BTreeSet<String> {
    declared
        .keys()
        .cloned()
        .chain(
            options
                .iter()
                .map(|o| format!("the address in options.{o}")),
        )
        .collect()
}

/// A declared host: a name, optionally with a port (`auth.example.com`, `auth.example.com:8443`).
pub fn is_host(text: &str) -> bool {
    let (name, port) = match text.rsplit_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (text, None),
    };
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        && port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p > 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn declared(hosts: &[&str]) -> BTreeMap<String, String> {
        hosts
            .iter()
            .map(|h| (h.to_string(), "why".to_string()))
            .collect()
    }

    #[test]
    fn a_url_on_the_systems_own_host_passes_and_one_that_leaves_it_does_not() {
        let none = declared(&[]);
        for ok in [
            "{{ system.url }}",
            "{{system.url}}/api/events",
            "\n{{ system.url }}/ec2/bookmarks/add?guid={{ key }}",
            "{%- set text = name | replace(',', ' ') -%}\n{{ system.url }}/WebSdk/action?q={{ text }}",
            "{{ system.url }}?q=1",
        ] {
            assert_eq!(check_url(ok, &none), Ok(Start::System), "{ok}");
        }
        for bad in [
            "{{ system.url }}@collector.example/",
            "{{ system.url }}.collector.example/",
            "{{ system.url }}{{ options.path }}",
            "{{ camera.device }}/api",
            "{{ 'https://' ~ 'collector.example' }}/x",
            "/api/events",
            "{% if x %}{{ options.other }}{% endif %}{{ system.url }}/x",
        ] {
            let e = check_url(bad, &none).unwrap_err();
            assert!(e.contains("system.url") || e.contains("host"), "{bad}: {e}");
        }
    }

    #[test]
    fn a_host_written_out_must_be_declared_wherever_it_appears() {
        let none = declared(&[]);
        let eagle = declared(&["auth.eagleeyenetworks.com"]);
        let token =
            "{{ options.token_url | default('https://auth.eagleeyenetworks.com/oauth2/token') }}";
        assert_eq!(
            check_url(token, &eagle),
            Ok(Start::Option("token_url".into()))
        );
        let e = check_url(token, &none).unwrap_err();
        assert!(
            e.contains(
                "names the host auth.eagleeyenetworks.com, which this definition does not declare"
            ),
            "{e}"
        );
        assert_eq!(
            check_url("https://Auth.EagleEyeNetworks.com/oauth2/token", &eagle),
            Ok(Start::Declared("auth.eagleeyenetworks.com".into()))
        );
        let e = check_url("https://collector.example:8443/x", &eagle).unwrap_err();
        assert!(e.contains("collector.example:8443"), "{e}");
        let e = check_url("{{ system.url }}/x?next=https://collector.example/", &none).unwrap_err();
        assert!(e.contains("collector.example"), "{e}");
    }

    #[test]
    fn a_host_built_by_a_template_or_behind_a_user_name_is_refused() {
        let eagle = declared(&["auth.eagleeyenetworks.com"]);
        for bad in [
            "https://{{ options.region }}.example.com/x",
            "https://auth.eagleeyenetworks.com@collector.example/x",
            "https:///x",
        ] {
            assert!(check_url(bad, &eagle).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_a_whole_address_from_the_answer_counts_as_one() {
        assert!(is_answer_address("{{ answer.url }}"));
        assert!(is_answer_address(" {{answer.data.url}} "));
        for not in [
            "{{ answer.url }}/x",
            "https://x/{{ answer.url }}",
            "{{ answer.url ~ '@evil' }}",
            "{{ answer }}",
            "{{ system.url }}",
        ] {
            assert!(!is_answer_address(not), "{not}");
        }
    }

    #[test]
    fn hosts_are_names_with_an_optional_port() {
        assert!(is_host("auth.example.com"));
        assert!(is_host("127.0.0.1:8443"));
        for bad in [
            "",
            "https://auth.example.com",
            "auth.example.com:0",
            "a b",
            "x:99999",
            "a/b",
        ] {
            assert!(!is_host(bad), "{bad}");
        }
    }
}
