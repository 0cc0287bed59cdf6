//! Sizes as people write them in a config file: `"64MiB"`, `"512 KiB"`, `"1.5GiB"`, `"100MB"`. Binary units
//! (KiB, MiB, GiB) are powers of 1024, decimal ones (kB, MB, GB) powers of 1000, as disk tools print them.

use std::fmt;

/// A number of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Bytes(pub u64);

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;

impl fmt::Display for Bytes {
    /// In the largest binary unit that reads as at least 1: `64 MiB`, `1.5 KiB`, `812 B`; whole numbers
    /// without a decimal, others with one.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        let (unit, scale) = match n {
            n if n >= GIB => ("GiB", GIB),
            n if n >= MIB => ("MiB", MIB),
            n if n >= KIB => ("KiB", KIB),
            _ => return write!(f, "{n} B"),
        };
        if n.is_multiple_of(scale) {
            write!(f, "{} {unit}", n / scale)
        } else {
            write!(f, "{:.1} {unit}", n as f64 / scale as f64)
        }
    }
}

/// Parses `"<number><unit>"` with unit `B`, `KiB`, `MiB`, `GiB`, `kB`, `MB` or `GB` (a space between is
/// allowed). A bare number is refused: `64` could mean bytes or megabytes.
pub fn parse(text: &str) -> Result<Bytes, String> {
    let example = "write it like \"64MiB\", \"512KiB\" or \"1GiB\"";
    let t = text.trim();
    let split = t
        .find(|c: char| c.is_ascii_alphabetic())
        .ok_or_else(|| format!("\"{text}\" has no unit: {example}"))?;
    let (number, unit) = t.split_at(split);
    let scale: u64 = match unit {
        "B" => 1,
        "KiB" => KIB,
        "MiB" => MIB,
        "GiB" => GIB,
        "kB" | "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => {
            return Err(format!(
                "\"{text}\" has an unknown unit \"{unit}\": use B, KiB, MiB, GiB, kB, MB or GB"
            ));
        }
    };
    let value: f64 = number
        .trim()
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite() && *v >= 0.0)
        .ok_or_else(|| format!("\"{text}\" is not a size: {example}"))?;
    let bytes = (value * scale as f64).round();
    // Far beyond any disk, and where f64 stops holding whole bytes.
    if bytes > (1u64 << 52) as f64 {
        return Err(format!("\"{text}\" is out of range"));
    }
    Ok(Bytes(bytes as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_with_binary_and_decimal_units_parse_to_bytes() {
        assert_eq!(parse("64MiB"), Ok(Bytes(64 * 1024 * 1024)));
        assert_eq!(parse("512 KiB"), Ok(Bytes(512 * 1024)));
        assert_eq!(parse("1.5GiB"), Ok(Bytes(1_610_612_736)));
        assert_eq!(parse("100MB"), Ok(Bytes(100_000_000)));
        assert_eq!(parse("2kB"), Ok(Bytes(2_000)));
        assert_eq!(parse("0B"), Ok(Bytes(0)));
    }

    #[test]
    fn a_size_without_a_unit_or_with_a_strange_one_is_refused_with_an_example() {
        assert!(parse("64").unwrap_err().contains("has no unit"));
        assert!(parse("64mb").unwrap_err().contains("unknown unit \"mb\""));
        assert!(parse("MiB").unwrap_err().contains("not a size"));
        assert!(parse("-1MiB").unwrap_err().contains("not a size"));
        assert!(parse("9999999GiB").unwrap_err().contains("out of range"));
    }

    #[test]
    fn sizes_display_in_their_largest_binary_unit() {
        assert_eq!(Bytes(64 * 1024 * 1024).to_string(), "64 MiB");
        assert_eq!(Bytes(1536).to_string(), "1.5 KiB");
        assert_eq!(Bytes(812).to_string(), "812 B");
        assert_eq!(Bytes(4 * 1024 * 1024 * 1024).to_string(), "4 GiB");
    }
}
