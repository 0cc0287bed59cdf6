//! The retry schedule: the configured waits, the last one repeating, each with ±20% jitter so a camera system
//! that comes back is not hit by every waiting bookmark at once; `Retry-After` is honoured, up to an hour.
//! And the pause of a camera system that asked to slow down, which is no failure and climbs no schedule.

use std::time::Duration;

use crate::config::Millis;

const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// The wait after attempt number `attempts` (1 for the first). `unit` is a random number in `[0, 1)`.
pub fn next_delay(
    schedule: &[Millis],
    attempts: i64,
    retry_after: Option<Duration>,
    unit: f64,
) -> Duration {
    let step = schedule
        .get((attempts.max(1) - 1) as usize)
        .or(schedule.last())
        .map(|m| m.as_std())
        .unwrap_or(Duration::from_secs(60));
    let jittered = step.mul_f64(0.8 + 0.4 * unit.clamp(0.0, 1.0));
    match retry_after {
        Some(after) => jittered.max(after.min(MAX_RETRY_AFTER)),
        None => jittered,
    }
}

/// The first pause after a "slow down" that named no time; it doubles while they continue, up to a minute.
const FIRST_UNNAMED_PAUSE: Duration = Duration::from_secs(1);
const LONGEST_UNNAMED_PAUSE: Duration = Duration::from_secs(60);

/// How long to leave a camera system alone after it asked to slow down: the time it asked for (up to an hour),
/// or, when it named none, twice the previous such pause (zero after a success), from a second up to a minute.
pub fn pause(asked: Option<Duration>, previous_unnamed: Duration) -> Duration {
    match asked {
        Some(after) => after.min(MAX_RETRY_AFTER),
        None => (previous_unnamed * 2).clamp(FIRST_UNNAMED_PAUSE, LONGEST_UNNAMED_PAUSE),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule() -> Vec<Millis> {
        vec![Millis(1_000), Millis(5_000), Millis(30_000)]
    }

    #[test]
    fn waits_follow_the_schedule_and_the_last_step_repeats() {
        assert_eq!(
            next_delay(&schedule(), 1, None, 0.5),
            Duration::from_secs(1)
        );
        assert_eq!(
            next_delay(&schedule(), 2, None, 0.5),
            Duration::from_secs(5)
        );
        assert_eq!(
            next_delay(&schedule(), 3, None, 0.5),
            Duration::from_secs(30)
        );
        assert_eq!(
            next_delay(&schedule(), 40, None, 0.5),
            Duration::from_secs(30)
        );
    }

    #[test]
    fn jitter_stays_within_twenty_percent() {
        assert_eq!(
            next_delay(&schedule(), 2, None, 0.0),
            Duration::from_secs(4)
        );
        assert_eq!(
            next_delay(&schedule(), 2, None, 1.0),
            Duration::from_secs(6)
        );
    }

    #[test]
    fn retry_after_lengthens_the_wait_but_is_capped_at_an_hour() {
        assert_eq!(
            next_delay(&schedule(), 1, Some(Duration::from_secs(120)), 0.5),
            Duration::from_secs(120)
        );
        assert_eq!(
            next_delay(&schedule(), 3, Some(Duration::from_secs(2)), 0.5),
            Duration::from_secs(30)
        );
        assert_eq!(
            next_delay(&schedule(), 1, Some(Duration::from_secs(86_400)), 0.5),
            Duration::from_secs(3600)
        );
    }

    #[test]
    fn a_vendor_asking_to_slow_down_gets_the_time_it_named_or_a_pause_doubling_from_a_second_to_a_minute()
     {
        let secs = Duration::from_secs;
        assert_eq!(pause(Some(secs(2)), secs(8)), secs(2));
        assert_eq!(pause(Some(secs(86_400)), Duration::ZERO), secs(3600));
        assert_eq!(pause(None, Duration::ZERO), secs(1));
        assert_eq!(pause(None, secs(1)), secs(2));
        assert_eq!(pause(None, secs(16)), secs(32));
        assert_eq!(pause(None, secs(32)), secs(60));
        assert_eq!(pause(None, secs(60)), secs(60));
    }
}
