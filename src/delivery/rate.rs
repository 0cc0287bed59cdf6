//! Keeping a camera system under its vendor's published rate (`rate_limit = "300/min"`): requests go out one
//! turn apart, a turn a little longer than the rate's interval, and never closer than that interval, so no
//! second, minute or hour of the vendor's sees more than its count even when requests reach it a little
//! early or late; a backlog drains at 97% of the rate without a burst that earns a 429. Pure logic over the
//! time it is given.

use std::time::Duration;

use tokio::time::Instant;

use crate::camera::definition::RateLimit;

/// The share of the published rate used: the rest absorbs the jitter between a turn and the request's arrival.
const HEADROOM: f64 = 0.97;

#[derive(Debug, Clone)]
pub struct Spacing {
    /// The published rate's interval: no two requests closer than this.
    least: Duration,
    /// A turn: the interval and the headroom.
    interval: Duration,
    /// When the next request may go.
    next: Instant,
}

impl Spacing {
    pub fn new(rate: RateLimit, now: Instant) -> Spacing {
        Spacing {
            least: Duration::from_secs_f64(1.0 / rate.per_second()),
            interval: Duration::from_secs_f64(1.0 / (rate.per_second() * HEADROOM)),
            next: now,
        }
    }

    /// Whether a request may go now.
    pub fn ready(&self, now: Instant) -> bool {
        now >= self.next
    }

    /// When the next request may go.
    pub fn next(&self) -> Instant {
        self.next
    }

    /// Counts `n` requests sent at `now`. One sent a little after its turn keeps to the turns, so the delays of
    /// waking up do not add up to a slower rate; one sent later, or after a lull, pushes the next turn to the
    /// rate's interval after it: no burst makes up for lost time.
    pub fn sent(&mut self, n: u32, now: Instant) {
        self.next = (self.next + self.interval * n).max(now + self.least * n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(text: &str) -> RateLimit {
        RateLimit::parse(text).unwrap()
    }

    #[test]
    fn requests_go_one_turn_apart_never_closer_than_the_rate_allows_and_a_late_wake_up_does_not_slow_them()
     {
        let start = Instant::now();
        let mut s = Spacing::new(rate("10/s"), start);
        let ms = Duration::from_millis;
        let interval = Duration::from_secs_f64(0.1 / 0.97);
        assert!(s.ready(start));
        s.sent(1, start);
        assert!(!s.ready(start + ms(100)), "a little under the rate");
        assert_eq!(s.next(), start + interval);
        // Sent 2 ms late: the next turn stays put.
        s.sent(1, start + interval + ms(2));
        assert_eq!(s.next(), start + interval * 2);
        // Sent 20 ms late: the next is no closer than a tenth of a second.
        s.sent(1, start + interval * 2 + ms(20));
        assert_eq!(s.next(), start + interval * 2 + ms(120));
        // A long quiet: no burst to make up for it.
        s.sent(1, start + ms(5_000));
        assert_eq!(s.next(), start + ms(5_100));
    }

    #[test]
    fn a_backlog_drains_at_the_full_rate_when_every_turn_is_taken_a_few_milliseconds_late() {
        let start = Instant::now();
        let mut s = Spacing::new(rate("300/min"), start);
        let mut now = start;
        for _ in 0..300 {
            now = s.next().max(now) + Duration::from_millis(3);
            s.sent(1, now);
        }
        let took = now - start;
        assert!(
            took <= Duration::from_secs_f64(60.0 / 0.97 + 0.5),
            "300 requests at 300/min took {took:?}"
        );
    }

    #[test]
    fn requests_beyond_the_first_of_an_attempt_push_the_next_turn_back() {
        let start = Instant::now();
        let mut s = Spacing::new(rate("60/min"), start);
        s.sent(1, start);
        // The attempt also logged in: one more request counted.
        s.sent(1, start + Duration::from_millis(10));
        assert_eq!(s.next(), start + Duration::from_secs_f64(2.0 / 0.97));
    }
}
