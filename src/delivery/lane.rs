//! One camera system's lane: how many of its bookmarks may be in flight (found by [`Controller`]), when its
//! vendor's published rate lets the next request go ([`Spacing`]), and the pause it asked for. The worker
//! claims only what a lane can take now, so a slow or rate-limited system's rows stay in the outbox instead
//! of holding another system's turn.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use super::concurrency::{Answer, Controller, Ticket};
use super::rate::Spacing;
use super::schedule::pause;
use crate::camera::CameraSystem;
use crate::camera::definition::RateLimit;

/// Most rounds of its limit a lane holds claimed ahead of sending, however fast its system answers.
const MAX_ROUNDS_AHEAD: usize = 32;

/// When a camera system may be called again after it asked to slow down; shared by its lane's tasks.
#[derive(Default)]
pub struct Pace {
    /// Epoch milliseconds until which nothing is sent to this system.
    until: AtomicI64,
    /// The last pause taken when the vendor named no time, in milliseconds; zero after a bookmark is made.
    unnamed_ms: AtomicI64,
}

impl Pace {
    pub fn until(&self) -> i64 {
        self.until.load(Ordering::SeqCst)
    }

    /// Sends nothing to the system before `until`.
    pub fn hold(&self, until: i64) {
        self.until.fetch_max(until, Ordering::SeqCst);
    }

    /// Pauses the system after it asked to slow down; returns when it may be called again.
    pub fn slow_down(&self, now: i64, asked: Option<Duration>) -> i64 {
        let current = self.until();
        // Requests sent before the pause began meet the same limit: only a new one lengthens an unnamed pause.
        if asked.is_none() && current > now {
            return current;
        }
        let previous = Duration::from_millis(self.unnamed_ms.load(Ordering::SeqCst) as u64);
        let wait = pause(asked, previous);
        if asked.is_none() {
            self.unnamed_ms
                .store(wait.as_millis() as i64, Ordering::SeqCst);
        }
        let until = now + wait.as_millis() as i64;
        self.hold(until);
        until.max(current)
    }

    /// The vendor answered with a bookmark: an unnamed pause starts again from its shortest.
    pub fn answered(&self) {
        self.unnamed_ms.store(0, Ordering::SeqCst);
    }
}

pub struct Lane {
    pub pace: Pace,
    state: Mutex<State>,
}

struct State {
    concurrency: Controller,
    /// The definition's rate when last looked at, and the spacing it gives.
    rate: Option<RateLimit>,
    spacing: Option<Spacing>,
    /// Requests counted against the spacing: one per attempt when it starts, and those the camera system
    /// reports beyond (logins, lookups, thumbnails).
    counted: u64,
}

/// What the integrations page shows of a lane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LaneView {
    /// Requests the lane may have in flight now.
    pub limit: usize,
    pub in_flight: usize,
    /// The camera system's usual latency, once it has answered.
    pub latency: Option<Duration>,
}

impl Lane {
    fn new(ceiling: usize, now: Instant) -> Lane {
        Lane {
            pace: Pace::default(),
            state: Mutex::new(State {
                concurrency: Controller::new(ceiling, now),
                rate: None,
                spacing: None,
                counted: 0,
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The state is numbers updated whole; one left by a panicking holder is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many rows the lane can take now (`now_ms` and `now` being the same moment), and, when it can take
    /// none for its vendor's pause or rate, when to look again.
    pub fn room(
        &self,
        now_ms: i64,
        now: Instant,
        system: Option<&dyn CameraSystem>,
        daemons: u32,
    ) -> (usize, Option<Instant>) {
        let until = self.pace.until();
        if until > now_ms {
            return (
                0,
                Some(now + Duration::from_millis((until - now_ms) as u64)),
            );
        }
        let mut state = self.state();
        let state = &mut *state;
        let rate = system
            .and_then(|s| s.rate_limit())
            .map(|r| r.shared_by(daemons));
        let sent = system.map(|s| s.requests_sent()).unwrap_or(0);
        if rate != state.rate {
            // A new or changed definition: the spacing starts over, counting from what was sent so far.
            state.rate = rate;
            state.spacing = rate.map(|r| Spacing::new(r, now));
            state.counted = sent;
        }
        let room = state.concurrency.room();
        let Some(spacing) = &mut state.spacing else {
            return (room, None);
        };
        if sent > state.counted {
            spacing.sent((sent - state.counted).min(u64::from(u32::MAX)) as u32, now);
        }
        // With nothing in flight every counted request has been sent (or never will be): start even.
        if sent > state.counted || state.concurrency.in_flight() == 0 {
            state.counted = sent;
        }
        if spacing.ready(now) {
            (room.min(1), None)
        } else {
            (0, Some(spacing.next()))
        }
    }

    /// How many more rows the lane would take from the outbox, holding `waiting` claimed and not yet sent,
    /// when a claim takes `claim` to come back: enough to keep its limit busy until then (a fast system on a
    /// LAN answers many times over while one claim is made durable), one turn ahead for a system with a
    /// published rate, and none while its vendor's pause lasts.
    pub fn wants(
        &self,
        now_ms: i64,
        waiting: usize,
        system: Option<&dyn CameraSystem>,
        claim: Duration,
    ) -> usize {
        if self.pace.until() > now_ms {
            return 0;
        }
        let state = self.state();
        let limit = state.concurrency.limit();
        let held = if system.and_then(|s| s.rate_limit()).is_some() {
            limit + 1
        } else {
            let rounds = match state.concurrency.latency() {
                Some(latency) if !latency.is_zero() => {
                    (claim.as_secs_f64() / latency.as_secs_f64()).ceil() as usize
                }
                _ => 1,
            };
            limit * (1 + rounds.clamp(1, MAX_ROUNDS_AHEAD))
        };
        let want = held.saturating_sub(state.concurrency.in_flight() + waiting);
        // A lane that still holds rows asks again once it can take half a limit, so claims come in batches
        // rather than one durable transaction per answer.
        match waiting > 0 && want < limit.div_ceil(2) {
            true => 0,
            false => want,
        }
    }

    /// One of its rows is being sent; hand the ticket back with its answer.
    pub fn start(&self, now: Instant) -> Ticket {
        let mut state = self.state();
        if let Some(spacing) = &mut state.spacing {
            spacing.sent(1, now);
            state.counted += 1;
        }
        state.concurrency.started()
    }

    pub fn finished(&self, now: Instant, ticket: Ticket, answer: Answer) {
        self.state().concurrency.finished(now, ticket, answer);
    }

    pub fn view(&self) -> LaneView {
        let state = self.state();
        LaneView {
            limit: state.concurrency.limit(),
            in_flight: state.concurrency.in_flight(),
            latency: state.concurrency.latency(),
        }
    }
}

/// Every camera system's lane, by system id; shared with the web index, which shows them.
#[derive(Clone, Default)]
pub struct Lanes(Arc<Mutex<HashMap<String, Arc<Lane>>>>);

impl Lanes {
    fn map(&self) -> MutexGuard<'_, HashMap<String, Arc<Lane>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How the camera system's lane stands, once it has one.
    pub fn view(&self, system: &str) -> Option<LaneView> {
        self.map().get(system).map(|l| l.view())
    }

    /// The system's lane, made with room for one and a ceiling of `ceiling` if it has none yet.
    pub fn lane(&self, system: &str, ceiling: usize, now: Instant) -> Arc<Lane> {
        self.map()
            .entry(system.to_string())
            .or_insert_with(|| Arc::new(Lane::new(ceiling, now)))
            .clone()
    }

    /// When the first pause a vendor asked for ends, if any lane is paused (`now_ms` and `now` being the same
    /// moment): its rows are claimed again from then.
    pub fn next_resume(&self, now_ms: i64, now: Instant) -> Option<Instant> {
        let until = self
            .map()
            .values()
            .map(|l| l.pace.until())
            .filter(|u| *u > now_ms)
            .min()?;
        Some(now + Duration::from_millis((until - now_ms) as u64))
    }

    /// Holds the lanes of these systems until the times given: pauses another daemon was asked for.
    pub fn hold(&self, holds: &[(String, i64)]) {
        let map = self.map();
        for (system, until) in holds {
            if let Some(lane) = map.get(system) {
                lane.pace.hold(*until);
            }
        }
    }

    pub fn all(&self) -> Vec<(String, Arc<Lane>)> {
        self.map()
            .iter()
            .map(|(id, lane)| (id.clone(), lane.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;

    use async_trait::async_trait;

    use super::*;
    use crate::camera::{Delivery, Thumbnail};
    use crate::store::Job;

    /// A camera system whose vendor allows `rate` and that has sent `sent` requests.
    struct Counted {
        rate: Option<RateLimit>,
        sent: AtomicU64,
    }

    #[async_trait]
    impl CameraSystem for Counted {
        async fn deliver(&self, _: &Job) -> Delivery {
            unreachable!("the lane never sends")
        }
        async fn thumbnail(&self, _: &Job) -> Result<Option<Thumbnail>, String> {
            Ok(None)
        }
        fn requests_sent(&self) -> u64 {
            self.sent.load(Ordering::SeqCst)
        }
        fn rate_limit(&self) -> Option<RateLimit> {
            self.rate
        }
    }

    #[test]
    fn a_rate_limited_lane_takes_one_row_per_turn_and_a_login_beside_the_bookmark_costs_a_turn() {
        let start = Instant::now();
        let system = Counted {
            rate: RateLimit::parse("60/min").ok(),
            sent: AtomicU64::new(0),
        };
        let lane = Lane::new(64, start);
        let room = |at: Instant| lane.room(0, at, Some(&system), 1);
        assert_eq!(room(start), (1, None), "one at a time");
        let ticket = lane.start(start);
        // The attempt logged in, then made its bookmark: two requests.
        system.sent.store(2, Ordering::SeqCst);
        lane.finished(
            start + Duration::from_millis(20),
            ticket,
            Answer::Good(Duration::from_millis(20)),
        );
        let turn = Duration::from_secs_f64(1.0 / 0.97);
        let (n, again) = room(start + turn);
        assert_eq!(n, 0, "the login took the next turn");
        assert!(again.is_some_and(|at| at >= start + Duration::from_secs(2)));
        assert_eq!(room(start + turn * 2).0, 1);
    }

    #[test]
    fn three_daemons_sharing_a_vendor_each_keep_to_a_third_of_its_rate() {
        let start = Instant::now();
        let system = Counted {
            rate: RateLimit::parse("60/min").ok(),
            sent: AtomicU64::new(0),
        };
        let lane = Lane::new(64, start);
        let room = |at: Instant| lane.room(0, at, Some(&system), 3);
        assert_eq!(room(start).0, 1);
        let ticket = lane.start(start);
        system.sent.store(1, Ordering::SeqCst);
        lane.finished(start, ticket, Answer::Good(Duration::from_millis(5)));
        // Alone it could send again after a second; a third of 60/min is one request every three seconds.
        assert_eq!(room(start + Duration::from_millis(1_100)).0, 0);
        assert_eq!(room(start + Duration::from_millis(2_800)).0, 0);
        assert_eq!(room(start + Duration::from_millis(3_200)).0, 1);
    }

    #[test]
    fn a_paused_lane_has_no_room_until_the_pause_ends() {
        let start = Instant::now();
        let lane = Lane::new(64, start);
        lane.pace.hold(2_000);
        assert_eq!(
            lane.room(500, start, None, 1),
            (0, Some(start + Duration::from_millis(1_500)))
        );
        assert_eq!(lane.room(2_000, start, None, 1), (1, None));
    }

    #[test]
    fn the_lanes_show_a_systems_limit_and_its_latency_once_it_has_answered() {
        let start = Instant::now();
        let lanes = Lanes::default();
        assert_eq!(lanes.view("nvr"), None);
        let lane = lanes.lane("nvr", 64, start);
        let ticket = lane.start(start);
        lane.finished(
            start + Duration::from_millis(38),
            ticket,
            Answer::Good(Duration::from_millis(38)),
        );
        let view = lanes.view("nvr").unwrap();
        assert_eq!(view.limit, 1);
        assert_eq!(view.in_flight, 0);
        assert_eq!(view.latency, Some(Duration::from_millis(38)));
    }
}
