//! Durations as people write them in a config file: `"10s"`, `"1.5s"`, `"250ms"`, `"2m"`, `"1h"`, `"30d"`, `"3y"`, and signed
//! (`"-2.5s"`) where a correction can go either way. Kept to milliseconds, the precision every camera API uses.

use std::fmt;

/// A signed span of time in whole milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Millis(pub i64);

impl Millis {
    pub fn as_std(self) -> std::time::Duration {
        std::time::Duration::from_millis(self.0.max(0) as u64)
    }
}

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0;
        if ms % YEAR_MS == 0 && ms != 0 {
            write!(f, "{}y", ms / YEAR_MS)
        } else if ms % 86_400_000 == 0 && ms != 0 {
            write!(f, "{}d", ms / 86_400_000)
        } else if ms % 3_600_000 == 0 && ms != 0 {
            write!(f, "{}h", ms / 3_600_000)
        } else if ms % 60_000 == 0 && ms != 0 {
            write!(f, "{}m", ms / 60_000)
        } else if ms % 1000 == 0 {
            write!(f, "{}s", ms / 1000)
        } else {
            write!(f, "{ms}ms")
        }
    }
}

/// A year as a duration: 365 days. Retention is counted in whole days, and a calendar year's extra day every
/// fourth year matters to no retention rule; `"3y"` is 1,095 days.
pub const YEAR_MS: i64 = 365 * 86_400_000;

/// Parses `"<number><unit>"` with unit `ms`, `s`, `m`, `h`, `d` (24 hours) or `y` (365 days). A bare number is refused: a unit-less `10`
/// could mean seconds or milliseconds, and guessing wrong puts a bookmark at the wrong moment.
pub fn parse(text: &str) -> Result<Millis, String> {
    let t = text.trim();
    let split = t.find(|c: char| c.is_ascii_alphabetic()).ok_or_else(|| {
        format!("\"{text}\" has no unit: write it like \"10s\", \"250ms\", \"2m\" or \"1h\"")
    })?;
    let (number, unit) = t.split_at(split);
    if number.trim().is_empty() {
        return Err(format!(
            "\"{text}\" is not a duration: write it like \"10s\", \"250ms\", \"2m\" or \"1h\""
        ));
    }
    let scale: f64 = match unit {
        "ms" => 1.0,
        "s" => 1000.0,
        "m" | "min" => 60_000.0,
        "h" => 3_600_000.0,
        "d" => 86_400_000.0,
        "y" => YEAR_MS as f64,
        _ => {
            return Err(format!(
                "\"{text}\" has an unknown unit \"{unit}\": use ms, s, m, h, d or y"
            ));
        }
    };
    let value: f64 = number.trim().parse().map_err(|_| {
        format!("\"{text}\" is not a duration: write it like \"10s\", \"250ms\", \"2m\" or \"1h\"")
    })?;
    let ms = (value * scale).round();
    // Ten years: the longest span any setting needs (retention), and far inside i64 milliseconds.
    if !ms.is_finite() || ms.abs() > 3660.0 * 86_400_000.0 {
        return Err(format!("\"{text}\" is out of range"));
    }
    Ok(Millis(ms as i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_with_units_parse_to_milliseconds() {
        assert_eq!(parse("10s"), Ok(Millis(10_000)));
        assert_eq!(parse("1.5s"), Ok(Millis(1_500)));
        assert_eq!(parse("250ms"), Ok(Millis(250)));
        assert_eq!(parse("2m"), Ok(Millis(120_000)));
        assert_eq!(parse("1h"), Ok(Millis(3_600_000)));
        assert_eq!(parse("-2.5s"), Ok(Millis(-2_500)));
        assert_eq!(parse("400d"), Ok(Millis(400 * 86_400_000)));
        assert_eq!(parse("30d"), Ok(Millis(30 * 86_400_000)));
        assert_eq!(parse("3y"), Ok(Millis(3 * 365 * 86_400_000)));
        assert_eq!(parse("10y"), Ok(Millis(3650 * 86_400_000)));
        assert!(parse("11y").unwrap_err().contains("out of range"));
    }

    #[test]
    fn a_number_without_a_unit_is_refused_with_an_example() {
        let err = parse("10").unwrap_err();
        assert!(err.contains("has no unit"), "{err}");
        assert!(parse("10 parsecs").unwrap_err().contains("unknown unit"));
        assert!(parse("abcs").is_err());
    }

    #[test]
    fn durations_display_in_their_largest_whole_unit() {
        assert_eq!(Millis(10_000).to_string(), "10s");
        assert_eq!(Millis(120_000).to_string(), "2m");
        assert_eq!(Millis(1_500).to_string(), "1500ms");
        assert_eq!(Millis(7 * 86_400_000).to_string(), "7d");
        assert_eq!(Millis(36 * 3_600_000).to_string(), "36h");
        assert_eq!(Millis(3 * YEAR_MS).to_string(), "3y");
        assert_eq!(Millis(400 * 86_400_000).to_string(), "400d");
    }
}
