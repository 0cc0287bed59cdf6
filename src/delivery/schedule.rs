//! The retry schedule: the configured waits, the last one repeating, each with ±20% jitter so a camera system
//! that comes back is not hit by every waiting bookmark at once; `Retry-After` is honoured, up to an hour.

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
}
