//! Which rows the outbox owes: one per (alert, exception) for immediate alerts, found by trailing the
//! exceptions as they are recorded; one per (alert, store, local day) for digests, at the digest's local time.
//! Planning twice adds nothing (the rows are unique), so the cursor here only saves reading.

use chrono::{Days, NaiveDate, TimeZone};

use crate::config::{AlertConfig, Config, DigestTime};
use crate::store::{AlertSubject, ExceptionRecord, NewAlert, Store, StoreError};

/// How far back a starting daemon looks for exceptions not alerted yet: an alert added to the config does not
/// send the whole history, and a daemon down for less than this misses nothing.
pub const LOOKBACK_MS: i64 = 86_400_000;

/// How far before its cursor the planner reads again: an exception is stamped when its step began and visible
/// when that step commits, and two daemons' steps commit in any order.
const OVERLAP_MS: i64 = 60_000;

/// How long after a digest's moment it is planned: exceptions stamped just before it are committed by then.
pub const DIGEST_SETTLE_MS: i64 = 10_000;

/// Exceptions one read takes.
const PAGE: i64 = 2_000;

/// Rows one planning statement writes: well inside SQLite's limit on a statement's values.
const PLAN_CHUNK: usize = 500;

/// The most exceptions one digest lists; it says how many more there were.
pub const DIGEST_MOST: i64 = 200;

pub(super) struct Planner {
    /// Exceptions found before this (less the overlap) have been planned.
    cursor_ms: i64,
    /// The local day whose digest was last looked at, per (alert, store): each is read once.
    digests_seen: std::collections::HashMap<(String, String), String>,
}

impl Planner {
    pub(super) fn new(now_ms: i64) -> Planner {
        Planner {
            cursor_ms: now_ms - LOOKBACK_MS,
            digests_seen: Default::default(),
        }
    }

    /// Plans what is owed as of `now_ms`; returns how many rows are new.
    pub(super) async fn plan(
        &mut self,
        store: &dyn Store,
        config: &Config,
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        let mut new = 0;
        if config.alerts.iter().any(|a| a.digest.is_none()) {
            new += self.immediate(store, config, now_ms).await?;
        }
        for alert in config.alerts.iter().filter(|a| a.digest.is_some()) {
            new += self.digests(store, config, alert, now_ms).await?;
        }
        Ok(new)
    }

    async fn immediate(
        &mut self,
        store: &dyn Store,
        config: &Config,
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        let found = all_found(store, self.cursor_ms - OVERLAP_MS, now_ms + 1).await?;
        let rows: Vec<NewAlert> = found
            .iter()
            .flat_map(|x| {
                config
                    .alerts
                    .iter()
                    .filter(|a| a.digest.is_none() && a.covers(&x.rule, &x.severity, &x.store))
                    .map(|a| NewAlert {
                        alert: a.id.clone(),
                        store: x.store.clone(),
                        what: AlertSubject::Exception {
                            rule: x.rule.clone(),
                            event_seq: x.event_seq,
                        },
                        due_ms: now_ms,
                    })
            })
            .collect();
        let mut new = 0;
        for chunk in rows.chunks(PLAN_CHUNK) {
            new += store.plan_alerts(chunk, now_ms).await?;
        }
        self.cursor_ms = now_ms;
        Ok(new)
    }

    /// The digest of each store `alert` covers, once its moment (plus [`DIGEST_SETTLE_MS`]) has passed, if
    /// it has anything to list.
    async fn digests(
        &mut self,
        store: &dyn Store,
        config: &Config,
        alert: &AlertConfig,
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        let Some(time) = alert.digest else {
            return Ok(0);
        };
        let mut new = 0;
        for shop in config
            .stores
            .iter()
            .filter(|s| alert.stores.is_empty() || alert.stores.contains(&s.id))
        {
            let Some((day, from_ms, to_ms)) =
                last_digest(shop.timezone, time, now_ms - DIGEST_SETTLE_MS)
            else {
                continue;
            };
            let seen = (alert.id.clone(), shop.id.clone());
            if self.digests_seen.get(&seen) == Some(&day) {
                continue;
            }
            if !digest_exceptions(store, alert, &shop.id, from_ms, to_ms)
                .await?
                .is_empty()
            {
                let row = NewAlert {
                    alert: alert.id.clone(),
                    store: shop.id.clone(),
                    what: AlertSubject::Digest {
                        day: day.clone(),
                        from_ms,
                        to_ms,
                    },
                    due_ms: to_ms,
                };
                new += store.plan_alerts(&[row], now_ms).await?;
            }
            self.digests_seen.insert(seen, day);
        }
        Ok(new)
    }
}

/// The latest digest moment at or before `at_ms` on the clock of `zone`: its local day (`YYYY-MM-DD`), and the
/// span it covers, from the day before's moment to its own. A moment a clock change skips is taken an hour
/// later; one it repeats, the first time.
pub fn last_digest(
    zone: chrono_tz::Tz,
    time: DigestTime,
    at_ms: i64,
) -> Option<(String, i64, i64)> {
    let utc = chrono::DateTime::from_timestamp_millis(at_ms)?;
    let today = zone.from_utc_datetime(&utc.naive_utc()).date_naive();
    let moment = |day: NaiveDate| -> Option<i64> {
        let local = day.and_hms_opt(time.hour, time.minute, 0)?;
        zone.from_local_datetime(&local)
            .earliest()
            .or_else(|| {
                zone.from_local_datetime(&(local + chrono::Duration::hours(1)))
                    .earliest()
            })
            .map(|t| t.timestamp_millis())
    };
    let mut day = today;
    let mut to = moment(day)?;
    if to > at_ms {
        day = day.checked_sub_days(Days::new(1))?;
        to = moment(day)?;
    }
    let from = moment(day.checked_sub_days(Days::new(1))?)?;
    Some((day.format("%Y-%m-%d").to_string(), from, to))
}

/// The exceptions `alert` lists for `shop` among those found in `[from_ms, to_ms)`, all of them: the message
/// lists the first [`DIGEST_MOST`] and counts the rest.
pub(super) async fn digest_exceptions(
    store: &dyn Store,
    alert: &AlertConfig,
    shop: &str,
    from_ms: i64,
    to_ms: i64,
) -> Result<Vec<ExceptionRecord>, StoreError> {
    let mut found = all_found(store, from_ms, to_ms).await?;
    found.retain(|x| x.store == shop && alert.covers(&x.rule, &x.severity, &x.store));
    Ok(found)
}

/// Every exception found in `[from_ms, to_ms)`, in the order found, read a page at a time.
async fn all_found(
    store: &dyn Store,
    from_ms: i64,
    to_ms: i64,
) -> Result<Vec<ExceptionRecord>, StoreError> {
    let mut all: Vec<ExceptionRecord> = Vec::new();
    loop {
        let after = all
            .last()
            .map(|x| (x.found_ms, x.event_seq, x.rule.clone()));
        let page = store
            .exceptions_found(from_ms, to_ms, after.as_ref(), PAGE)
            .await?;
        let full = page.len() as i64 == PAGE;
        all.extend(page);
        if !full {
            return Ok(all);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(text: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(text)
            .unwrap()
            .timestamp_millis()
    }

    #[test]
    fn the_last_digest_is_todays_once_its_local_time_has_come_and_yesterdays_before() {
        let six = DigestTime {
            hour: 18,
            minute: 0,
        };
        let tokyo = chrono_tz::Asia::Tokyo;
        assert_eq!(
            last_digest(tokyo, six, ms("2026-11-21T17:59:59+09:00")),
            Some((
                "2026-11-20".into(),
                ms("2026-11-19T18:00:00+09:00"),
                ms("2026-11-20T18:00:00+09:00")
            ))
        );
        assert_eq!(
            last_digest(tokyo, six, ms("2026-11-21T18:00:00+09:00"))
                .unwrap()
                .0,
            "2026-11-21"
        );
        // New York's day of the clock change back is 25 hours long, and its digest covers all of them.
        let ny = chrono_tz::America::New_York;
        let (day, from, to) = last_digest(ny, six, ms("2026-11-01T19:00:00-05:00")).unwrap();
        assert_eq!(day, "2026-11-01");
        assert_eq!(to - from, 25 * 3_600_000);
    }
}
