//! Keeping a camera system under its vendor's published rate (`rate_limit = "300/min"`). Two rules:
//! - turns: requests go out one turn apart, a turn a little longer than the rate's interval, and one sent late
//!   (a busy machine, a slow wake-up) is followed by the next on its own turn, down to a quarter interval
//!   after, so lateness does not add up to a slower rate and a backlog drains at 97% of the rate; after a lull
//!   the turns start again from now;
//! - count: never more requests in any stretch of the rate's period (a second, a minute, an hour) than the rate
//!   allows, whatever the turns say, so neither a catch-up nor a vendor counting fixed windows sees one too many.
//!
//! Pure logic over the time it is given.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use crate::camera::definition::RateLimit;

/// The share of the published rate used: the rest absorbs the jitter between a turn and the request's arrival.
const HEADROOM: f64 = 0.97;
/// Rates allowing more requests than this in their period are only spaced: their count is never near.
const MOST_COUNTED: u32 = 10_000;

#[derive(Debug, Clone)]
pub struct Spacing {
    /// The published rate's interval.
    least: Duration,
    /// A turn: the interval and the headroom.
    interval: Duration,
    /// When the next turn is.
    next: Instant,
    /// The rate's period and count, and when each of the latest requests within it went.
    period: Duration,
    count: usize,
    sent: VecDeque<Instant>,
}

impl Spacing {
    pub fn new(rate: RateLimit, now: Instant) -> Spacing {
        Spacing {
            least: Duration::from_secs_f64(1.0 / rate.per_second()),
            interval: Duration::from_secs_f64(1.0 / (rate.per_second() * HEADROOM)),
            next: now,
            period: rate.per,
            count: rate.requests.min(MOST_COUNTED) as usize,
            sent: VecDeque::new(),
        }
    }

    /// Whether a request may go now.
    pub fn ready(&self, now: Instant) -> bool {
        now >= self.next()
    }

    /// When the next request may go.
    pub fn next(&self) -> Instant {
        match self.sent.len().checked_sub(self.count) {
            // The period's count is used: the next goes when the oldest of them leaves the period.
            Some(over) => self.next.max(self.sent[over] + self.period),
            None => self.next,
        }
    }

    /// Counts `n` requests sent at `now`.
    pub fn sent(&mut self, n: u32, now: Instant) {
        // After a lull the turns start again from now: no burst makes up for a quiet spell.
        let from = if now > self.next + self.interval {
            now
        } else {
            self.next
        };
        self.next = (from + self.interval * n).max(now + self.least * n / 4);
        for _ in 0..n {
            self.sent.push_back(now);
        }
        while self
            .sent
            .front()
            .is_some_and(|at| *at + self.period <= now || self.sent.len() > self.count)
        {
            self.sent.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(text: &str) -> RateLimit {
        RateLimit::parse(text).unwrap()
    }

    #[test]
    fn requests_go_one_turn_apart_and_a_late_one_is_followed_on_the_next_turn_or_a_quarter_interval_after()
     {
        let start = Instant::now();
        let mut s = Spacing::new(rate("10/s"), start);
        let ms = Duration::from_millis;
        let interval = Duration::from_secs_f64(0.1 / 0.97);
        assert!(s.ready(start));
        s.sent(1, start);
        assert!(!s.ready(start + ms(100)), "a little under the rate");
        assert_eq!(s.next(), start + interval);
        // Sent 20 ms late: the next turn stays put.
        s.sent(1, start + interval + ms(20));
        assert_eq!(s.next(), start + interval * 2);
        // Sent 90 ms late: the next is a quarter interval after it.
        s.sent(1, start + interval * 2 + ms(90));
        assert_eq!(s.next(), start + interval * 2 + ms(115));
        // A long quiet: no burst to make up for it.
        s.sent(1, start + ms(5_000));
        assert_eq!(s.next(), start + ms(5_000) + interval);
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
    fn however_late_the_turns_were_taken_no_stretch_of_the_period_holds_more_than_the_rate_allows()
    {
        let start = Instant::now();
        let mut s = Spacing::new(rate("10/s"), start);
        let mut sent = Vec::new();
        let mut now = start;
        // A busy machine: every third turn is taken 80 ms late, and the others catch up.
        for n in 0..200 {
            now = s.next().max(now) + Duration::from_millis(if n % 3 == 0 { 80 } else { 0 });
            s.sent(1, now);
            sent.push(now);
        }
        for (i, first) in sent.iter().enumerate() {
            let within = sent[i..]
                .iter()
                .take_while(|at| **at < *first + Duration::from_secs(1))
                .count();
            assert!(within <= 10, "{within} requests in the second from {i}");
        }
        let took = now - start;
        assert!(
            took <= Duration::from_secs_f64(199.0 / 10.0 / 0.95),
            "200 requests took {took:?}"
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
