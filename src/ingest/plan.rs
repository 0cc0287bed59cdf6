//! Which bookmarks an event gets: one per camera watching its register, if its type is flagged, spanning
//! pre-roll before the register's moment to post-roll after it. Decided at ingest and stored with the event,
//! so a bookmark made hours later still lands at the original moment.

use crate::config::{Config, Watchers};
use crate::event::Event;
use crate::store::NewBookmark;

pub struct Plan {
    pub flagged: bool,
    pub mapped: bool,
    pub bookmarks: Vec<NewBookmark>,
}

pub fn plan(config: &Config, watchers: &Watchers, event: &Event) -> Plan {
    let flagged = config.bookmarks.types.contains(&event.kind);
    let cameras = watchers.cameras(&event.store, &event.register);
    let pre = config.bookmarks.pre_roll.0;
    let post = config.bookmarks.post_roll.0;
    let bookmarks = if flagged {
        cameras
            .iter()
            .filter_map(|&i| config.cameras.get(i))
            .map(|c| NewBookmark {
                system: c.system.clone(),
                device: c.device.clone(),
                camera: c.name.clone(),
                start_ms: event.at_ms() - pre,
                duration_ms: pre + post,
            })
            .collect()
    } else {
        Vec::new()
    };
    Plan {
        flagged,
        mapped: !cameras.is_empty(),
        bookmarks,
    }
}
