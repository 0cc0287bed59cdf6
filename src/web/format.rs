//! How the pages write times: in a store's zone (or the offset a register sent), as `2026-11-21 18:42:07`; how
//! they read the times people type into the filter form; and clock skew as a person reads it (`+1.2 s`).
//! Pure functions, so these rules are tested without a server. Words are left to the templates.

use chrono::{DateTime, FixedOffset, LocalResult, NaiveDate, NaiveDateTime, Offset, TimeZone, Utc};
use chrono_tz::{OffsetName, Tz};
use serde::Serialize;

use crate::config::{Config, StoreConfig};
use crate::store::StoreDay;

/// A zone the pages show times in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Zone {
    /// A configured store's IANA zone (or UTC).
    Named(Tz),
    /// The offset a register wrote in `at`, for a store the config does not know.
    Fixed(FixedOffset),
}

/// Where times go when nothing names a zone: the form without a store, the dead letters, the footer.
pub const FALLBACK: Zone = Zone::Named(Tz::UTC);

/// A zone as a page names it: `Asia/Tokyo` and `JST`, or the register's `+09:00`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ZoneLabel {
    /// The IANA name; `None` for a register's offset.
    pub name: Option<String>,
    /// `JST`, `CET`, `UTC`, or the offset where the zone has no letters for it (`+05:30`).
    pub abbr: String,
}

/// Why a time typed into the form cannot be used; the template words it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LocalTimeError {
    NotATime,
    /// A wall time the clocks skipped (the start of daylight saving time).
    Skipped,
}

impl Zone {
    /// The store's zone; for a store missing from the config, the offset the register sent — never a silent UTC,
    /// which would move a Tokyo register's 18:42 to 09:42.
    pub fn of_event(config: &Config, store: &str, at: &str) -> Zone {
        match config.store(store) {
            Some(s) => Zone::Named(s.timezone),
            None => DateTime::parse_from_rfc3339(at)
                .map(|t| Zone::Fixed(*t.offset()))
                .unwrap_or(FALLBACK),
        }
    }

    /// The zone in which the form's times are read: the chosen store's, else [`FALLBACK`].
    pub fn of_store(config: &Config, store: Option<&str>) -> Zone {
        store
            .and_then(|id| config.store(id))
            .map(|s| Zone::Named(s.timezone))
            .unwrap_or(FALLBACK)
    }

    /// The one zone these stores share (a chain in one country: the usual case), else [`FALLBACK`].
    pub fn shared_by<'a>(mut stores: impl Iterator<Item = &'a StoreConfig>) -> Zone {
        let Some(first) = stores.next() else {
            return FALLBACK;
        };
        if stores.all(|s| s.timezone == first.timezone) {
            Zone::Named(first.timezone)
        } else {
            FALLBACK
        }
    }

    /// The zone an IANA name (`Asia/Tokyo`, `UTC`) names.
    pub fn named(name: &str) -> Option<Zone> {
        name.trim().parse::<Tz>().ok().map(Zone::Named)
    }

    /// The IANA name, for a form to send back; a register's offset has none.
    pub fn name(&self) -> Option<&'static str> {
        match self {
            Zone::Named(tz) => Some(tz.name()),
            Zone::Fixed(_) => None,
        }
    }

    /// The zone a person reads times in where no store names one: the one they chose, else the one their
    /// stores share, else [`FALLBACK`] (stores in several zones, and nothing chosen).
    pub fn of_person<'a>(
        chosen: Option<&str>,
        stores: impl Iterator<Item = &'a StoreConfig>,
    ) -> Zone {
        chosen
            .and_then(Zone::named)
            .unwrap_or_else(|| Zone::shared_by(stores))
    }

    /// `[start, end)` of the day `now_ms` falls on in this zone: its first moment (midnight, or the first hour
    /// the clocks show where a change of time skips midnight) to the next day's.
    pub fn day_of(&self, now_ms: i64) -> (i64, i64) {
        let date = self
            .format(now_ms, "%Y-%m-%d")
            .and_then(|d| NaiveDate::parse_from_str(&d, "%Y-%m-%d").ok());
        let Some(date) = date else {
            return (now_ms, now_ms);
        };
        let first = |d: NaiveDate| {
            (0..24).find_map(|h| {
                let naive = d.and_hms_opt(h, 0, 0)?;
                self.parse_local(&naive.format("%Y-%m-%dT%H:%M").to_string())
                    .ok()
            })
        };
        let start = first(date).unwrap_or(now_ms);
        let end = date.succ_opt().and_then(first).unwrap_or(i64::MAX);
        (start, end)
    }

    /// Midnight starting the day `ms` falls on, as the form's inputs write it.
    pub fn day_start_input(&self, ms: i64) -> String {
        self.format(ms, "%Y-%m-%dT00:00")
            .unwrap_or_else(|| ms.to_string())
    }

    fn format(&self, ms: i64, pattern: &str) -> Option<String> {
        let utc = Utc.timestamp_millis_opt(ms).single()?;
        Some(match self {
            Zone::Named(tz) => utc.with_timezone(tz).format(pattern).to_string(),
            Zone::Fixed(offset) => utc.with_timezone(offset).format(pattern).to_string(),
        })
    }

    /// `2026-11-21 18:42:07`. A moment chrono cannot represent shows as its raw milliseconds.
    pub fn datetime(&self, ms: i64) -> String {
        self.format(ms, "%Y-%m-%d %H:%M:%S")
            .unwrap_or_else(|| ms.to_string())
    }

    /// The value of a `datetime-local` input: `2026-11-21T18:42:07`.
    pub fn input_value(&self, ms: i64) -> String {
        self.format(ms, "%Y-%m-%dT%H:%M:%S")
            .unwrap_or_else(|| ms.to_string())
    }

    /// `18:42:27` when `end_ms` falls on the day `start_ms` does, else the full date and time.
    pub fn span_end(&self, start_ms: i64, end_ms: i64) -> String {
        let day = |ms| self.format(ms, "%Y-%m-%d");
        if day(start_ms) == day(end_ms) {
            self.format(end_ms, "%H:%M:%S")
                .unwrap_or_else(|| end_ms.to_string())
        } else {
            self.datetime(end_ms)
        }
    }

    /// The zone's name and its abbreviation at `ms` (`JST`; `CET` or `CEST` depending on the date).
    pub fn label(&self, ms: i64) -> ZoneLabel {
        match self {
            Zone::Named(tz) => {
                let offset = Utc
                    .timestamp_millis_opt(ms)
                    .single()
                    .map(|t| tz.offset_from_utc_datetime(&t.naive_utc()));
                let abbr = match &offset {
                    // Zones without letters of their own carry `+05` or `-03` in the tz database.
                    Some(o) => match o.abbreviation() {
                        Some(a) if a.starts_with(|c: char| c.is_ascii_alphabetic()) => {
                            a.to_string()
                        }
                        _ => o.fix().to_string(),
                    },
                    None => tz.name().to_string(),
                };
                ZoneLabel {
                    name: Some(tz.name().to_string()),
                    abbr,
                }
            }
            Zone::Fixed(offset) => ZoneLabel {
                name: None,
                abbr: offset.to_string(),
            },
        }
    }

    /// Reads a wall time in this zone: what a `datetime-local` input sends (`2026-11-21T18:42`, with or without
    /// seconds), the same with a space, or a bare date (its midnight).
    pub fn parse_local(&self, text: &str) -> Result<i64, LocalTimeError> {
        let naive = parse_naive(text.trim()).ok_or(LocalTimeError::NotATime)?;
        let local: LocalResult<i64> = match self {
            Zone::Named(tz) => tz.from_local_datetime(&naive).map(|t| t.timestamp_millis()),
            Zone::Fixed(offset) => offset
                .from_local_datetime(&naive)
                .map(|t| t.timestamp_millis()),
        };
        // The hour the clocks go back happens twice; the earlier one is taken so a range starting there
        // misses nothing.
        local.earliest().ok_or(LocalTimeError::Skipped)
    }
}

/// Each store's today at `now_ms`, on its own clock: a Tokyo store's day begins at 00:00 JST, a New York
/// store's at 00:00 in New York, whatever the zone of the person asking.
pub fn todays<'a>(stores: impl Iterator<Item = &'a StoreConfig>, now_ms: i64) -> Vec<StoreDay> {
    stores
        .map(|s| {
            let (from_ms, to_ms) = Zone::Named(s.timezone).day_of(now_ms);
            StoreDay {
                store: s.id.clone(),
                from_ms,
                to_ms,
            }
        })
        .collect()
}

fn parse_naive(text: &str) -> Option<NaiveDateTime> {
    const FORMATS: [&str; 4] = [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
    ];
    FORMATS
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
        .or_else(|| {
            NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        })
}

/// Clock skew (received − register time) as a person reads it: `+1.2 s`, `-0.3 s`, `+3 min 12 s`, `+2 h 05 min`,
/// `+3 d 4 h`.
pub fn skew(ms: i64) -> String {
    let sign = if ms < 0 { "-" } else { "+" };
    let a = ms.unsigned_abs();
    let body = match a {
        0..60_000 => format!("{:.1} s", a as f64 / 1000.0),
        60_000..3_600_000 => format!("{} min {} s", a / 60_000, a % 60_000 / 1000),
        3_600_000..86_400_000 => format!("{} h {:02} min", a / 3_600_000, a % 3_600_000 / 60_000),
        _ => format!("{} d {} h", a / 86_400_000, a % 86_400_000 / 3_600_000),
    };
    format!("{sign}{body}")
}

/// How late a message arrived, as a person reads it: `45 s`, `20 min`, `2 h 05 min`, `3 d 4 h`. Whole
/// minutes past a minute: "20 min late" is what matters, not its seconds.
pub fn late(ms: i64) -> String {
    let a = ms.unsigned_abs();
    match a {
        0..60_000 => format!("{} s", a / 1000),
        60_000..3_600_000 => format!("{} min", a / 60_000),
        3_600_000..86_400_000 => format!("{} h {:02} min", a / 3_600_000, a % 3_600_000 / 60_000),
        _ => format!("{} d {} h", a / 86_400_000, a % 86_400_000 / 3_600_000),
    }
}

/// Skew beyond which footage may not line up with the register's time: the page points it out, for one live
/// event and for a register's median. Past 2 s a bookmark sits beside the wrong moment of a fast hand.
pub const SKEW_WARNING_MS: i64 = 2_000;

#[cfg(test)]
mod tests {
    use super::*;

    const TOKYO: Zone = Zone::Named(chrono_tz::Asia::Tokyo);

    fn ms(rfc3339: &str) -> i64 {
        DateTime::parse_from_rfc3339(rfc3339)
            .unwrap()
            .timestamp_millis()
    }

    #[test]
    fn a_utc_instant_shows_as_the_tokyo_wall_clock() {
        let at = ms("2026-11-21T09:42:07.310Z");
        assert_eq!(TOKYO.datetime(at), "2026-11-21 18:42:07");
        assert_eq!(TOKYO.input_value(at), "2026-11-21T18:42:07");
        assert_eq!(
            TOKYO.label(at),
            ZoneLabel {
                name: Some("Asia/Tokyo".into()),
                abbr: "JST".into()
            }
        );
    }

    #[test]
    fn an_unknown_store_keeps_the_offset_the_register_sent() {
        let config = Config::default();
        let zone = Zone::of_event(&config, "nowhere", "2026-11-21T18:42:07.310+09:00");
        assert_eq!(
            zone.datetime(ms("2026-11-21T09:42:07Z")),
            "2026-11-21 18:42:07"
        );
        assert_eq!(zone.label(0).abbr, "+09:00");
        assert_eq!(zone.label(0).name, None);
    }

    #[test]
    fn zones_without_letters_show_their_offset_and_summer_time_changes_the_abbreviation() {
        let kolkata = Zone::Named(chrono_tz::Asia::Kolkata);
        assert_eq!(kolkata.label(0).abbr, "IST");
        let sao_paulo = Zone::Named(chrono_tz::America::Sao_Paulo);
        assert_eq!(sao_paulo.label(ms("2026-01-01T00:00:00Z")).abbr, "-03:00");
        let berlin = Zone::Named(chrono_tz::Europe::Berlin);
        assert_eq!(berlin.label(ms("2026-01-01T00:00:00Z")).abbr, "CET");
        assert_eq!(berlin.label(ms("2026-07-01T00:00:00Z")).abbr, "CEST");
    }

    #[test]
    fn typed_wall_times_are_read_in_the_zone_with_or_without_seconds() {
        let want = ms("2026-11-21T18:00:00+09:00");
        assert_eq!(TOKYO.parse_local("2026-11-21T18:00"), Ok(want));
        assert_eq!(TOKYO.parse_local("2026-11-21T18:00:00"), Ok(want));
        assert_eq!(TOKYO.parse_local(" 2026-11-21 18:00 "), Ok(want));
        assert_eq!(TOKYO.parse_local("2026-11-21T18:00:00.5"), Ok(want + 500));
        assert_eq!(
            TOKYO.parse_local("2026-11-21"),
            Ok(ms("2026-11-21T00:00:00+09:00"))
        );
        assert_eq!(
            TOKYO.parse_local("yesterday"),
            Err(LocalTimeError::NotATime)
        );
        assert_eq!(
            TOKYO.parse_local("2026-13-40T25:00"),
            Err(LocalTimeError::NotATime)
        );
    }

    #[test]
    fn a_wall_time_skipped_by_summer_time_is_refused_and_a_repeated_one_takes_the_earlier() {
        let new_york = Zone::Named(chrono_tz::America::New_York);
        assert_eq!(
            new_york.parse_local("2026-03-08T02:30"),
            Err(LocalTimeError::Skipped)
        );
        assert_eq!(
            new_york.parse_local("2026-11-01T01:30"),
            Ok(ms("2026-11-01T01:30:00-04:00"))
        );
    }

    #[test]
    fn a_window_on_one_day_writes_the_date_once() {
        let start = ms("2026-11-21T18:41:57+09:00");
        assert_eq!(TOKYO.span_end(start, start + 30_000), "18:42:27");
        assert_eq!(
            TOKYO.span_end(start, ms("2026-11-22T00:00:10+09:00")),
            "2026-11-22 00:00:10"
        );
    }

    fn store(id: &str, timezone: Tz) -> StoreConfig {
        StoreConfig {
            id: id.into(),
            name: id.into(),
            timezone,
            hours: None,
            language: crate::config::Language::default_for(timezone),
        }
    }

    #[test]
    fn today_at_a_tokyo_store_at_eight_in_the_morning_began_at_its_own_midnight_not_utcs() {
        let now = ms("2026-11-21T08:00:00+09:00");
        let days = todays([store("shibuya-01", chrono_tz::Asia::Tokyo)].iter(), now);
        let day = &days[0];
        assert_eq!(day.store, "shibuya-01");
        assert_eq!(day.from_ms, ms("2026-11-21T00:00:00+09:00"));
        assert_eq!(day.to_ms, ms("2026-11-22T00:00:00+09:00"));
        let today = |at: &str| (day.from_ms..day.to_ms).contains(&ms(at));
        assert!(today("2026-11-21T00:30:00+09:00"));
        assert!(!today("2026-11-20T23:30:00+09:00"), "yesterday's 23:30");
        // UTC's midnight would have let in everything since 09:00 yesterday.
        assert!(!today("2026-11-20T09:30:00+09:00"));
    }

    #[test]
    fn stores_in_two_zones_each_have_their_own_today() {
        // 08:00 in Tokyo is 18:00 the day before in New York.
        let now = ms("2026-11-21T08:00:00+09:00");
        let days = todays(
            [
                store("shibuya-01", chrono_tz::Asia::Tokyo),
                store("nyc-01", chrono_tz::America::New_York),
            ]
            .iter(),
            now,
        );
        assert_eq!(days[0].from_ms, ms("2026-11-21T00:00:00+09:00"));
        assert_eq!(days[1].store, "nyc-01");
        assert_eq!(days[1].from_ms, ms("2026-11-20T00:00:00-05:00"));
        assert_eq!(days[1].to_ms, ms("2026-11-21T00:00:00-05:00"));
    }

    #[test]
    fn a_day_whose_midnight_the_clocks_skip_begins_at_its_first_hour() {
        // Santiago moves its clocks from 00:00 to 01:00 on the first Sunday of September.
        let santiago = Zone::Named(chrono_tz::America::Santiago);
        let (start, end) = santiago.day_of(ms("2026-09-06T12:00:00-03:00"));
        assert_eq!(start, ms("2026-09-06T01:00:00-03:00"));
        assert_eq!(end, ms("2026-09-07T00:00:00-03:00"));
    }

    #[test]
    fn a_persons_zone_is_their_choice_else_their_stores_common_zone_else_utc() {
        let tokyo = [
            store("a", chrono_tz::Asia::Tokyo),
            store("b", chrono_tz::Asia::Tokyo),
        ];
        assert_eq!(Zone::of_person(None, tokyo.iter()), TOKYO);
        assert_eq!(Zone::of_person(Some("UTC"), tokyo.iter()), FALLBACK);
        let mixed = [
            store("a", chrono_tz::Asia::Tokyo),
            store("n", chrono_tz::America::New_York),
        ];
        assert_eq!(Zone::of_person(None, mixed.iter()), FALLBACK);
        assert_eq!(Zone::of_person(Some("Asia/Tokyo"), mixed.iter()), TOKYO);
    }

    #[test]
    fn lateness_reads_in_whole_minutes_past_a_minute() {
        assert_eq!(late(20 * 60_000 + 150), "20 min");
        assert_eq!(late(45_300), "45 s");
        assert_eq!(late(2 * 3_600_000 + 5 * 60_000), "2 h 05 min");
    }

    #[test]
    fn skew_reads_in_the_largest_sensible_unit_with_its_sign() {
        assert_eq!(skew(1_200), "+1.2 s");
        assert_eq!(skew(0), "+0.0 s");
        assert_eq!(skew(-350), "-0.3 s");
        assert_eq!(skew(192_000), "+3 min 12 s");
        assert_eq!(skew(-(2 * 3_600_000 + 5 * 60_000)), "-2 h 05 min");
        assert_eq!(skew(3 * 86_400_000 + 4 * 3_600_000), "+3 d 4 h");
        assert_eq!(skew(i64::MIN).chars().next(), Some('-'));
    }
}
