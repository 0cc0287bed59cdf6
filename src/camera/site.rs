//! A site's camera systems held against the vendor definitions they name: what the config file alone cannot
//! tell. A definition can need credentials the section lacks, an allowed host must be one the definition
//! contacts, and a footage link must compile as a template and open a viewer. Each problem keeps the key and
//! line reading the file gave it, so `check-config` reads as if the file had been checked in one pass.
//!
//! A system whose definition is missing or broken is not an error here: the definitions check reports that,
//! and its bookmarks wait until the definition is fixed, so a bad vendor file never stops the daemon.

use super::definition::{Definition, Set};
use super::{FOOTAGE_SCHEMES, template};
use crate::config::{CameraSystemConfig, Config, ConfigError};

/// Every problem of every camera system against `definitions`, in file order.
pub fn check_site(config: &Config, definitions: &Set) -> Result<(), Vec<ConfigError>> {
    let mut errors = Vec::new();
    for system in &config.camera_systems {
        footage_link(system, &mut errors);
        if let Some(def) = definitions.definitions.get(system.integration.name()) {
            needs(system, def, &mut errors);
            allowed_hosts(system, def, &mut errors);
        }
    }
    if errors.is_empty() {
        return Ok(());
    }
    errors.sort_by_key(|e| e.line);
    Err(errors)
}

fn footage_link(system: &CameraSystemConfig, errors: &mut Vec<ConfigError>) {
    let Some(tpl) = &system.web_viewer_url else {
        return;
    };
    let at = &system.section;
    if let Err(e) = template::check(tpl) {
        errors.push(at.error("web_viewer_url", e));
    } else if !FOOTAGE_SCHEMES.iter().any(|s| tpl.starts_with(s)) {
        errors.push(at.error(
            "web_viewer_url",
            format!(
                "must begin with {}: a footage link opens a viewer, never a script",
                FOOTAGE_SCHEMES.join(", ")
            ),
        ));
    }
}

/// The credentials the definition's auth needs.
fn needs(system: &CameraSystemConfig, def: &Definition, errors: &mut Vec<ConfigError>) {
    for need in def.needs() {
        let present = match need {
            "username" => system.username.is_some(),
            "client_id" => system.client_id.is_some(),
            secret => system.section.has(secret),
        };
        if !present {
            errors.push(system.section.error(
                need,
                format!(
                    "is required by the {} definition ({} auth)",
                    def.name,
                    def.auth.scheme()
                ),
            ));
        }
    }
}

/// An allowed host must be one the definition declares or the host of an address this system gives in an
/// option the definition's requests begin at; anything else lets through only a mistake.
fn allowed_hosts(system: &CameraSystemConfig, def: &Definition, errors: &mut Vec<ConfigError>) {
    let from_options: Vec<String> = def
        .option_urls
        .iter()
        .filter_map(|o| system.option_str(o))
        .filter_map(|u| url::Url::parse(u).ok())
        .filter_map(|u| {
            let host = u.host_str()?.to_ascii_lowercase();
            Some(match u.port() {
                Some(port) => format!("{host}:{port}"),
                None => host,
            })
        })
        .collect();
    for host in system
        .allowed_hosts
        .iter()
        .filter(|h| !def.hosts.contains_key(*h) && !from_options.contains(h))
    {
        let declared = def
            .hosts
            .keys()
            .cloned()
            .chain(
                def.option_urls
                    .iter()
                    .map(|o| format!("the host of options.{o}")),
            )
            .reduce(|a, b| format!("{a}, {b}"))
            .map_or("it declares none besides the system's url".into(), |h| {
                format!("it declares {h}")
            });
        errors.push(system.section.error(
            "allowed_hosts",
            format!(
                "\"{host}\" is not a host the {} definition contacts ({declared}): remove it",
                def.name
            ),
        ));
    }
}

#[cfg(test)]
mod tests;
