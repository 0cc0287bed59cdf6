//! How many requests one camera system gets at once: adaptive request concurrency, as TCP finds a window.
//!
//! The limit starts at one. Time is cut into windows of one round trip (the baseline's mean latency). After a
//! window whose answers were good, whose mean latency stayed flat (not above the baseline), and in which the
//! lane used its whole limit, the limit grows: it doubles until the first window of back-pressure or of
//! latency clearly (a fifth) above the baseline (slow start, as TCP's), which halves it back to the last limit that was fine, so a lane reaches a fast
//! system's ceiling in a few round trips rather than one per step; from then on it grows by one. After a window with a timeout, a 5xx, a 429 or a 503, or whose mean latency rose above the
//! baseline by more than its usual deviation allows, the limit shrinks to nine tenths (at least one less,
//! never under one), and slow start is over. The baseline is a moving average of the windows' means
//! and of how far they stray from it. So a fast NVR on a LAN climbs to the configured ceiling, a receiver that
//! slows under load settles where its latency starts to rise, and a failing one gets one request at a time
//! until it answers again.
//!
//! Pure logic: callers hand in the time and each answer, so tests drive it with the latencies they choose.

use std::time::Duration;

use tokio::time::Instant;

/// How much of a window's mean goes into the baseline when the window was flat, or the limit is down to one
/// (nothing of ours to blame for the latency).
const EWMA_ALPHA: f64 = 0.4;
/// How much when the latency rose under our load: a system that really became slower is followed, slowly,
/// but the congestion we cause does not become the new normal.
const EWMA_ALPHA_LOADED: f64 = 0.05;
/// How many deviations above the baseline a window's mean may go before it counts as rising latency.
const DEVIATION_SCALE: f64 = 2.5;
/// No more than this rise in latency, as a share of the baseline, is flat.
const FLAT_FRACTION: f64 = 0.01;
/// The least rise that counts as rising, as a share of the baseline and in absolute terms: a millisecond is
/// scheduling noise on a busy host, and a twentieth the jitter of any network path, not a queue forming.
const RISE_FRACTION: f64 = 0.05;
const RISE_FLOOR: f64 = 0.001;
/// The rise that ends slow start, as a share of the baseline: doubling past a system's knee raises its
/// latency by far more.
const SLOW_START_RISE_FRACTION: f64 = 0.2;
/// What the limit is multiplied by on back-pressure or rising latency.
const DECREASE_RATIO: f64 = 0.9;

/// What an attempt's answer says about the camera system's load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// It answered, in this time: a bookmark made or a definite refusal of this one bookmark.
    Good(Duration),
    /// It is struggling or asked to slow down: a timeout, a 5xx, a 429, a 503.
    Overloaded,
}

/// The window a request started in: only requests started under the current limit judge it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket(u64);

/// A moving average and the moving average of the squared distance from it.
#[derive(Debug, Clone, Copy)]
struct Baseline {
    mean: f64,
    variance: f64,
}

impl Baseline {
    fn update(&mut self, sample: f64, alpha: f64) {
        let delta = sample - self.mean;
        self.mean += alpha * delta;
        self.variance = (1.0 - alpha) * (self.variance + alpha * delta * delta);
    }

    fn deviation(&self) -> f64 {
        self.variance.sqrt()
    }
}

/// What happened in the current window.
#[derive(Debug, Clone, Copy, Default)]
struct Window {
    number: u64,
    latency_sum: f64,
    answers: u32,
    overloaded: bool,
    reached_limit: bool,
}

#[derive(Debug, Clone)]
pub struct Controller {
    ceiling: usize,
    limit: usize,
    in_flight: usize,
    /// Mean latency, in seconds, and its deviation; none before the first good answer.
    baseline: Option<Baseline>,
    window: Window,
    window_ends: Instant,
    /// Until the first window of load, the limit doubles where it would grow by one.
    slow_start: bool,
}

impl Controller {
    /// A lane that may grow to `ceiling` requests at once (at least one), starting at one.
    pub fn new(ceiling: usize, now: Instant) -> Controller {
        Controller {
            ceiling: ceiling.max(1),
            limit: 1,
            in_flight: 0,
            baseline: None,
            window: Window::default(),
            window_ends: now,
            slow_start: true,
        }
    }

    /// How many requests may be in flight now.
    pub fn limit(&self) -> usize {
        self.limit
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// How many more requests may start now.
    pub fn room(&self) -> usize {
        self.limit.saturating_sub(self.in_flight)
    }

    /// The camera system's usual latency, once it has answered.
    pub fn latency(&self) -> Option<Duration> {
        self.baseline
            .map(|b| Duration::from_secs_f64(b.mean.max(0.0)))
    }

    /// A request started; hand its ticket back when it ends.
    pub fn started(&mut self) -> Ticket {
        self.in_flight += 1;
        if self.in_flight >= self.limit {
            self.window.reached_limit = true;
        }
        Ticket(self.window.number)
    }

    /// A request ended with `answer`. A window ends one baseline latency after it began, once a request
    /// started in it has answered; then the limit moves.
    pub fn finished(&mut self, now: Instant, ticket: Ticket, answer: Answer) {
        self.in_flight = self.in_flight.saturating_sub(1);
        match answer {
            // A slow answer to a request sent under an older limit says nothing about this one.
            Answer::Good(latency) if ticket == Ticket(self.window.number) => {
                self.window.latency_sum += latency.as_secs_f64();
                self.window.answers += 1;
            }
            Answer::Good(_) => {}
            Answer::Overloaded => self.window.overloaded = true,
        }
        let Some(mut baseline) = self.baseline else {
            // The first good answer sets the baseline.
            if self.window.answers > 0 {
                let mean = self.window.latency_sum / f64::from(self.window.answers);
                self.baseline = Some(Baseline {
                    mean,
                    variance: 0.0,
                });
                self.next_window(now);
            } else if self.window.overloaded {
                // Nothing good yet: stay at one, and keep no window open on its account.
                self.next_window(now);
            }
            return;
        };
        if now < self.window_ends || (self.window.answers == 0 && !self.window.overloaded) {
            return;
        }
        // A doubling is judged by a whole limit's answers: the first back are those sent while few were in
        // flight, and would call a window flat whose later requests already queue at the system.
        if self.slow_start
            && !self.window.overloaded
            && self.window.reached_limit
            && (self.window.answers as usize) < self.limit
        {
            return;
        }
        let mean = (self.window.answers > 0)
            .then(|| self.window.latency_sum / f64::from(self.window.answers));
        // Rising: beyond the baseline's usual deviation, a twentieth of it or a millisecond, whichever is more.
        // Flat: no more than a hundredth above the baseline, so steady answers measured to the nanosecond count
        // as flat. In between the limit holds.
        let tolerance = baseline.mean * FLAT_FRACTION;
        let least_rise = (baseline.mean * RISE_FRACTION).max(RISE_FLOOR);
        let rising = mean.is_some_and(|m| {
            m > baseline.mean + (DEVIATION_SCALE * baseline.deviation()).max(least_rise)
        });
        let flat = mean.is_some_and(|m| m <= baseline.mean + tolerance);
        // Slow start ends on back-pressure or a clear rise: a few samples' jitter would end it at the start.
        let clearly_rising = mean.is_some_and(|m| {
            m > baseline.mean
                + (DEVIATION_SCALE * baseline.deviation())
                    .max(baseline.mean * SLOW_START_RISE_FRACTION)
                    .max(RISE_FLOOR)
        });
        if self.slow_start && (self.window.overloaded || clearly_rising) {
            // The last doubling went past what the system takes: back to the limit before it, which was
            // flat. The overshoot's latency is ours, not the system's usual, so the baseline does not take it.
            self.slow_start = false;
            self.limit = (self.limit / 2).max(1);
            self.next_window(now);
            return;
        }
        if let Some(m) = mean {
            let alpha = if flat || self.limit == 1 {
                EWMA_ALPHA
            } else {
                EWMA_ALPHA_LOADED
            };
            baseline.update(m, alpha);
            self.baseline = Some(baseline);
        }
        if (self.window.overloaded || rising) && !self.slow_start {
            self.limit = ((self.limit as f64 * DECREASE_RATIO) as usize)
                .min(self.limit - 1)
                .max(1);
        } else if self.window.reached_limit && flat {
            let grown = match self.slow_start {
                true => self.limit * 2,
                false => self.limit + 1,
            };
            self.limit = grown.min(self.ceiling);
            // At the ceiling there is nothing left to find quickly.
            self.slow_start &= self.limit < self.ceiling;
        }
        self.next_window(now);
    }

    fn next_window(&mut self, now: Instant) {
        let number = self.window.number + 1;
        self.window = Window {
            number,
            // Requests already at the new limit count as having reached it.
            reached_limit: self.in_flight >= self.limit,
            ..Window::default()
        };
        let length = self.baseline.map_or(0.0, |b| b.mean);
        self.window_ends = now + Duration::from_secs_f64(length);
    }
}

#[cfg(test)]
mod tests {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;

    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// Runs a lane with an endless backlog against a receiver for `run`: each request takes
    /// `receiver(in flight when it arrived, its start)` and is answered as it says. Returns the limit at each
    /// moment a request ended, with that moment's offset from the start.
    fn simulate(
        controller: &mut Controller,
        start: Instant,
        run: Duration,
        mut receiver: impl FnMut(usize, Duration) -> (Duration, bool),
    ) -> Vec<(Duration, usize)> {
        let mut ends: BinaryHeap<Reverse<(Instant, Duration, bool, u64)>> = BinaryHeap::new();
        let mut tickets = std::collections::HashMap::new();
        let mut limits = Vec::new();
        let mut now = start;
        loop {
            while controller.room() > 0 {
                let ticket = controller.started();
                let (latency, ok) = receiver(controller.in_flight(), now - start);
                let id = tickets.len() as u64;
                tickets.insert(id, ticket);
                ends.push(Reverse((now + latency, latency, ok, id)));
            }
            let Some(Reverse((at, latency, ok, id))) = ends.pop() else {
                break;
            };
            now = at;
            if now - start > run {
                break;
            }
            let answer = if ok {
                Answer::Good(latency)
            } else {
                Answer::Overloaded
            };
            controller.finished(now, tickets[&id], answer);
            limits.push((now - start, controller.limit()));
        }
        limits
    }

    fn mean_limit(limits: &[(Duration, usize)], from: Duration) -> f64 {
        let later: Vec<usize> = limits
            .iter()
            .filter(|(at, _)| *at >= from)
            .map(|(_, l)| *l)
            .collect();
        later.iter().sum::<usize>() as f64 / later.len() as f64
    }

    #[test]
    fn a_receiver_that_slows_beyond_eight_at_once_holds_the_limit_near_eight() {
        let start = Instant::now();
        let mut c = Controller::new(64, start);
        let limits = simulate(&mut c, start, Duration::from_secs(60), |in_flight, _| {
            (MS.mul_f64(10.0 * (in_flight as f64 / 8.0).max(1.0)), true)
        });
        let settled = mean_limit(&limits, Duration::from_secs(10));
        let highest = limits
            .iter()
            .filter(|(at, _)| *at >= Duration::from_secs(10))
            .map(|(_, l)| *l)
            .max()
            .unwrap();
        assert!(
            (7.0..=10.0).contains(&settled) && highest <= 10,
            "settled at {settled:.1} on average, {highest} at most"
        );
        let latency = c.latency().unwrap();
        assert!(latency < 15 * MS, "the usual latency is {latency:?}");
    }

    #[test]
    fn a_fast_flat_receiver_takes_the_lane_to_its_ceiling_and_no_further() {
        let start = Instant::now();
        let mut c = Controller::new(64, start);
        let limits = simulate(&mut c, start, Duration::from_secs(5), |_, _| (2 * MS, true));
        assert_eq!(limits.last().unwrap().1, 64);
        assert!(limits.iter().all(|(_, l)| *l <= 64));
        let pinned = Controller::new(4, start);
        let mut pinned_run = pinned.clone();
        let limits = simulate(&mut pinned_run, start, Duration::from_secs(2), |_, _| {
            (2 * MS, true)
        });
        assert!(limits.iter().all(|(_, l)| *l <= 4));
        assert_eq!(pinned_run.limit(), 4);
    }

    #[test]
    fn a_flat_receiver_takes_the_lane_to_its_ceiling_in_a_few_round_trips_and_slow_start_ends_at_the_first_sign_of_load()
     {
        let start = Instant::now();
        let mut c = Controller::new(64, start);
        let limits = simulate(&mut c, start, Duration::from_millis(200), |_, _| {
            (20 * MS, true)
        });
        let at_ceiling = limits.iter().find(|(_, l)| *l == 64).unwrap().0;
        assert!(
            at_ceiling <= 200 * MS,
            "64 reached after {at_ceiling:?}, ten round trips at most"
        );

        // One overloaded window: from then on the limit grows by one a window.
        let mut c = Controller::new(64, start);
        let limits = simulate(
            &mut c,
            start,
            Duration::from_millis(400),
            |in_flight, at| {
                let refused = (80 * MS..100 * MS).contains(&at) && in_flight > 1;
                (20 * MS, !refused)
            },
        );
        let steps: Vec<usize> = limits
            .windows(2)
            .filter(|w| w[0].0 >= 100 * MS && w[1].1 > w[0].1)
            .map(|w| w[1].1 - w[0].1)
            .collect();
        assert!(
            !steps.is_empty() && steps.iter().all(|s| *s == 1),
            "grew by {steps:?}"
        );
    }

    #[test]
    fn a_failing_receiver_gets_one_request_at_a_time_and_the_lane_climbs_again_when_it_answers() {
        let start = Instant::now();
        let mut c = Controller::new(64, start);
        let failing = Duration::from_secs(5)..Duration::from_secs(8);
        let limits = simulate(&mut c, start, Duration::from_secs(12), |_, at| {
            (5 * MS, !failing.contains(&at))
        });
        let at = |secs: f64| {
            limits
                .iter()
                .rev()
                .find(|(t, _)| *t <= Duration::from_secs_f64(secs))
                .unwrap()
                .1
        };
        assert!(at(4.9) >= 32, "healthy: {}", at(4.9));
        assert_eq!(at(7.9), 1, "failing");
        assert!(at(11.9) >= 32, "answering again: {}", at(11.9));
    }

    #[test]
    fn a_latency_that_doubles_shrinks_the_limit_by_a_tenth_per_window_never_below_one() {
        let start = Instant::now();
        let mut c = Controller::new(64, start);
        let limits = simulate(&mut c, start, Duration::from_secs(3), |_, at| {
            let slow = at >= Duration::from_secs(2);
            (if slow { 40 * MS } else { 4 * MS }, true)
        });
        let before = limits
            .iter()
            .rev()
            .find(|(t, _)| *t < Duration::from_secs(2))
            .unwrap()
            .1;
        let first_slow = limits
            .iter()
            .find(|(t, l)| *t >= Duration::from_secs(2) && *l != before)
            .unwrap()
            .1;
        assert_eq!(first_slow, (before as f64 * 0.9) as usize, "from {before}");
        assert!(limits.iter().all(|(_, l)| *l >= 1));
    }
}
