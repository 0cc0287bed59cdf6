//! Late or skewed: what the gap between an event's `at` and its arrival means.
//!
//! A gap has two causes that look alike from one number: the message waited (in the register's queue while
//! it was offline, or at the broker while tillmark was down), or the register's clock is off. Only the
//! second one puts a bookmark beside the wrong moment, and only messages sent and delivered live measure it.
//! `sent_at` (contract v1.1) tells the two apart: it is stamped when the message leaves, so `sent_at - at` is
//! how long it waited at the register (on the register's own clock, so no skew is in it), and
//! `arrival - sent_at` how long it was on the way. Without `sent_at`, a gap of more than [`LIVE_WITHIN_MS`]
//! is read as late: no clock that far off is believed from a single message.

use serde::Serialize;

/// How far apart two moments may be and still count as "at once": wider than any register clock that is
/// merely drifting, narrower than any real backlog.
pub const LIVE_WITHIN_MS: i64 = 60_000;

/// What an event's arrival says about its register's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "timing", rename_all = "snake_case")]
pub enum Timing {
    /// Sent and delivered as it happened: `skew_ms` (arrival − `at`) is how far the register's clock is behind
    /// tillmark's (negative: ahead), network time included.
    Live { skew_ms: i64 },
    /// Arrived `late_ms` after its `at`, for a reason that is not the clock: nothing to say about the clock.
    Late { late_ms: i64, why: Lateness },
}

/// Why a late message was late.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Lateness {
    /// `sent_at` is well after `at`: it waited at the register (offline, or a bridge's queue).
    Queued,
    /// Sent at once, arrived much later: it waited on the way (at the broker while tillmark was down).
    OnTheWay,
    /// No `sent_at` to tell: queued somewhere, or the register's clock is that far behind.
    Unknown,
}

impl Timing {
    /// The skew a live message measures; `None` for a late one.
    pub fn skew_ms(self) -> Option<i64> {
        match self {
            Timing::Live { skew_ms } => Some(skew_ms),
            Timing::Late { .. } => None,
        }
    }
}

/// Reads one event's timing from its `at`, its `sent_at` (if sent) and when tillmark received it.
pub fn timing(at_ms: i64, sent_at_ms: Option<i64>, received_ms: i64) -> Timing {
    let gap = received_ms.saturating_sub(at_ms);
    let late = |why| Timing::Late { late_ms: gap, why };
    match sent_at_ms {
        Some(sent) if sent.saturating_sub(at_ms) > LIVE_WITHIN_MS => late(Lateness::Queued),
        Some(sent) if received_ms.saturating_sub(sent) > LIVE_WITHIN_MS => late(Lateness::OnTheWay),
        Some(_) => Timing::Live { skew_ms: gap },
        None if gap > LIVE_WITHIN_MS => late(Lateness::Unknown),
        None => Timing::Live { skew_ms: gap },
    }
}

/// The median skew of the live ones among `timings` and how many there were; `None` when none was live. The
/// median, so one message slowed by the network does not move a register's clock.
pub fn median_skew(timings: impl IntoIterator<Item = Timing>) -> Option<(i64, usize)> {
    let mut skews: Vec<i64> = timings.into_iter().filter_map(Timing::skew_ms).collect();
    if skews.is_empty() {
        return None;
    }
    skews.sort_unstable();
    let n = skews.len();
    let median = if n % 2 == 1 {
        skews[n / 2]
    } else {
        // The mean of the middle two, without overflow.
        skews[n / 2 - 1] + (skews[n / 2] - skews[n / 2 - 1]) / 2
    };
    Some((median, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    const AT: i64 = 1_800_000_000_000;

    #[test]
    fn a_message_sent_twenty_minutes_after_it_happened_is_late_from_the_register_queue_not_skewed()
    {
        let twenty_min = 20 * 60_000;
        assert_eq!(
            timing(AT, Some(AT + twenty_min), AT + twenty_min + 150),
            Timing::Late {
                late_ms: twenty_min + 150,
                why: Lateness::Queued
            }
        );
    }

    #[test]
    fn a_message_sent_at_once_and_held_on_the_way_is_late_not_skewed() {
        assert_eq!(
            timing(AT, Some(AT + 100), AT + 600_000),
            Timing::Late {
                late_ms: 600_000,
                why: Lateness::OnTheWay
            }
        );
    }

    #[test]
    fn a_live_message_measures_the_register_clock_either_way() {
        // The register's clock 5 s behind: with or without sent_at.
        assert_eq!(
            timing(AT, Some(AT + 50), AT + 5_100),
            Timing::Live { skew_ms: 5_100 }
        );
        assert_eq!(
            timing(AT, None, AT + 5_100),
            Timing::Live { skew_ms: 5_100 }
        );
        // Ahead of tillmark's clock by 3 s.
        assert_eq!(
            timing(AT, None, AT - 3_000),
            Timing::Live { skew_ms: -3_000 }
        );
    }

    #[test]
    fn without_sent_at_a_gap_over_a_minute_reads_as_late() {
        assert_eq!(
            timing(AT, None, AT + 61_000),
            Timing::Late {
                late_ms: 61_000,
                why: Lateness::Unknown
            }
        );
    }

    #[test]
    fn the_median_skew_leaves_out_late_messages_and_is_not_moved_by_one_slow_one() {
        let timings = [
            timing(AT, None, AT + 2_400),
            timing(AT, None, AT + 2_600),
            timing(AT, None, AT + 40_000),
            timing(AT, Some(AT + 1_200_000), AT + 1_200_100),
        ];
        assert_eq!(median_skew(timings), Some((2_600, 3)));
        assert_eq!(
            median_skew([timing(AT, None, AT + 1_000), timing(AT, None, AT + 2_000)]),
            Some((1_500, 2))
        );
        assert_eq!(median_skew([timing(AT, None, AT + 3_600_000)]), None);
    }
}
