//! Keeping a camera system under its vendor's published rate (`rate_limit = "300/min"`): requests go out on a
//! grid one interval apart, so no second, minute or hour of the vendor's ever sees more than its count, and a
//! backlog drains at the full rate without a burst that earns a 429. Pure logic over the time it is given.

use std::time::Duration;

use tokio::time::Instant;

use crate::camera::definition::RateLimit;

#[derive(Debug, Clone)]
pub struct Spacing {
    interval: Duration,
    /// When the next request may go.
    next: Instant,
}

impl Spacing {
    pub fn new(rate: RateLimit, now: Instant) -> Spacing {
        Spacing {
            interval: Duration::from_secs_f64(1.0 / rate.per_second()),
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

    /// Counts `n` requests sent at `now`. One sent a little after its turn keeps the grid, so the delays of
    /// waking up do not add up to a slower rate; after a longer lull the grid starts again from now, so no
    /// burst makes up for the quiet.
    pub fn sent(&mut self, n: u64, now: Instant) {
        let from = if now >= self.next && now - self.next > self.interval / 2 {
            now
        } else {
            self.next
        };
        self.next = from + self.interval * n as u32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(text: &str) -> RateLimit {
        RateLimit::parse(text).unwrap()
    }

    #[test]
    fn requests_go_one_interval_apart_and_a_late_wake_up_does_not_slow_the_rate() {
        let start = Instant::now();
        let mut s = Spacing::new(rate("10/s"), start);
        let ms = Duration::from_millis;
        assert!(s.ready(start));
        s.sent(1, start);
        assert!(!s.ready(start + ms(99)));
        assert_eq!(s.next(), start + ms(100));
        // Sent 20 ms late: the next turn is still at 200 ms.
        s.sent(1, start + ms(120));
        assert_eq!(s.next(), start + ms(200));
        // A long quiet: no burst, the grid restarts.
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
            took <= Duration::from_secs(61),
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
        assert_eq!(s.next(), start + Duration::from_secs(2));
    }
}
