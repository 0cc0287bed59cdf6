//! Which bookmarks an event gets: one per camera watching its register, if its type is flagged, spanning the
//! camera's pre-roll before the register's moment to its post-roll after it, shifted by the camera's clock
//! offset so the window lands on that camera's recording of the moment. Decided at ingest and stored with the
//! event, so a bookmark made hours later still lands at the original moment.

use crate::config::{Config, Watchers};
use crate::event::{Event, EventType};
use crate::store::{DrawerRule, NewBookmark};

pub struct Plan {
    /// Flagged as far as the event alone tells: a drawer open may still be explained by a sale (`drawer`).
    pub flagged: bool,
    pub mapped: bool,
    pub bookmarks: Vec<NewBookmark>,
    pub drawer: DrawerRule,
}

pub fn plan(config: &Config, watchers: &Watchers, event: &Event) -> Plan {
    let flagged = config.bookmarks.types.contains(&event.kind);
    // A drawer open is decided in the store, against the sales around it (DrawerRule says how); every event
    // that can explain one is told the window, whether or not drawer opens are held.
    let within_ms = config.bookmarks.drawer_open_explained_within.0;
    let drawer = match config.bookmarks.drawer_open_hold_ms() {
        Some(hold_ms) if event.kind == EventType::DrawerOpen => {
            DrawerRule::Open { within_ms, hold_ms }
        }
        Some(_) if event.kind.explains_drawer_open() => DrawerRule::Explains { within_ms },
        _ => DrawerRule::None,
    };
    let cameras = watchers.cameras(&event.store, &event.register);
    let bookmarks = if flagged {
        cameras
            .iter()
            .filter_map(|&i| config.cameras.get(i))
            .map(|c| bookmark_for(c, event.at_ms()))
            .collect()
    } else {
        Vec::new()
    };
    Plan {
        flagged,
        mapped: !cameras.is_empty(),
        bookmarks,
        drawer,
    }
}

/// The bookmark a camera gets for an event at `at_ms` on the register's clock: moved by the camera's clock
/// offset, spanning its own pre-roll and post-roll.
pub fn bookmark_for(camera: &crate::config::CameraConfig, at_ms: i64) -> NewBookmark {
    let moment_ms = at_ms + camera.offset.0;
    NewBookmark {
        system: camera.system.clone(),
        device: camera.device.clone(),
        camera: camera.name.clone(),
        moment_ms,
        start_ms: moment_ms - camera.pre_roll.0,
        duration_ms: camera.pre_roll.0 + camera.post_roll.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SITE: &str = r#"
[bookmarks]
pre_roll = "10s"
post_roll = "20s"
[[stores]]
id = "shibuya-01"
timezone = "Asia/Tokyo"
[[camera_systems]]
id = "nvr"
integration = "webhook"
url = "https://nvr.example.com/"
[[cameras]]
system = "nvr"
device = "counter"
registers = ["shibuya-01/r2"]
[[cameras]]
system = "nvr"
device = "door"
registers = ["shibuya-01/r2"]
offset = "-2.5s"
pre_roll = "3s"
post_roll = "1m"
"#;

    fn event(kind: &str) -> Event {
        let payload = format!(
            r#"{{"id":"e1","type":"{kind}","at":"2024-05-01T18:42:07.310+09:00","store":"shibuya-01","register":"r2"}}"#
        );
        crate::event::parse(payload.as_bytes())
            .result
            .expect("a valid event")
    }

    /// 2024-05-01T09:42:07.310Z.
    const AT_MS: i64 = 1_714_556_527_310;

    #[test]
    fn each_camera_gets_its_own_rolls_and_is_shifted_by_its_clock_offset() {
        let config = Config::parse(SITE, &|_| None).expect("valid site");
        let event = event("void");
        assert_eq!(event.at_ms(), AT_MS);
        let plan = plan(&config, &Watchers::new(&config), &event);
        assert!(plan.flagged && plan.mapped);
        let windows: Vec<(&str, i64, i64, i64)> = plan
            .bookmarks
            .iter()
            .map(|b| (b.device.as_str(), b.moment_ms, b.start_ms, b.duration_ms))
            .collect();
        assert_eq!(
            windows,
            [
                // Defaults: no offset, the [bookmarks] rolls.
                ("counter", AT_MS, AT_MS - 10_000, 30_000),
                // 2.5 s behind the register: the moment at 18:42:04.810 on its clock, 3 s before to 60 s after.
                ("door", AT_MS - 2_500, AT_MS - 2_500 - 3_000, 63_000),
            ]
        );
    }
}
