//! Amounts as people read them: in the currency's major unit with its symbol (`¥1,280`, `$12.80`), and back:
//! what a person types into a filter (`1,280`, `¥1,280`, `42.50`) as the minor units events carry.

use serde::Serialize;

/// Digits after the decimal point of an ISO 4217 currency; 2 unless the standard says otherwise.
fn minor_digits(currency: &str) -> u32 {
    match currency {
        "JPY" | "KRW" | "VND" | "CLP" | "ISK" | "PYG" | "UGX" | "XAF" | "XOF" | "TWD" => 0,
        "BHD" | "KWD" | "OMR" | "JOD" | "TND" | "IQD" | "LYD" => 3,
        _ => 2,
    }
}

/// Symbols as [`format_amount`] writes them (and the full-width yen sign a Japanese keyboard types), the
/// longest first so `CA$` is not read as `$`.
const SYMBOLS: [(&str, &str); 13] = [
    ("CN¥", "CNY"),
    ("NT$", "TWD"),
    ("CA$", "CAD"),
    ("HK$", "HKD"),
    ("A$", "AUD"),
    ("S$", "SGD"),
    ("¥", "JPY"),
    ("￥", "JPY"),
    ("$", "USD"),
    ("€", "EUR"),
    ("£", "GBP"),
    ("₩", "KRW"),
    ("円", "JPY"),
];

/// Why a typed amount cannot be used; the page words it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "error", rename_all = "snake_case")]
pub enum AmountError {
    /// Not a number, with or without a currency symbol.
    NotANumber,
    /// More decimals than the currency has (`¥12.5`, `$1.005`).
    TooManyDecimals { currency: String, digits: u32 },
    /// Decimals typed where no currency says what they are worth.
    NoCurrency,
    /// Larger than any amount stored.
    TooLarge,
}

/// An amount read from what a person typed: in minor units, and the currency it is in when the text or the
/// caller named one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypedAmount {
    pub minor: i64,
    pub currency: Option<String>,
}

/// Reads an amount as the pages show them: `1,280`, `¥1,280`, `1280円`, `42.50`, `$42.50`, `-5`, `12.80 USD`.
/// `assumed` is the currency when the text names none (the one currency of the events in view); without
/// either, only a whole number is read, as minor units.
pub fn parse_amount(text: &str, assumed: Option<&str>) -> Result<TypedAmount, AmountError> {
    let mut rest = text.trim();
    let mut negative = false;
    if let Some(r) = rest.strip_prefix('-') {
        negative = true;
        rest = r.trim_start();
    }
    let mut named: Option<String> = None;
    for (sym, code) in SYMBOLS {
        if let Some(r) = rest.strip_prefix(sym) {
            named = Some(code.into());
            rest = r.trim_start();
            break;
        }
        if let Some(r) = rest.strip_suffix(sym) {
            named = Some(code.into());
            rest = r.trim_end();
            break;
        }
    }
    if named.is_none()
        && let Some((number, code)) = rest.rsplit_once(' ')
        && code.len() == 3
        && code.chars().all(|c| c.is_ascii_alphabetic())
    {
        named = Some(code.to_ascii_uppercase());
        rest = number.trim_end();
    }
    if !negative && let Some(r) = rest.strip_prefix('-') {
        negative = true;
        rest = r;
    }
    let (whole, fraction) = match rest.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (rest, None),
    };
    let whole: String = whole.chars().filter(|c| *c != ',').collect();
    let digits_only = |t: &str| !t.is_empty() && t.chars().all(|c| c.is_ascii_digit());
    if !digits_only(&whole) || fraction.is_some_and(|f| !digits_only(f)) {
        return Err(AmountError::NotANumber);
    }
    let currency = named.or_else(|| assumed.map(str::to_string));
    let digits = match (&currency, fraction) {
        (Some(code), _) => minor_digits(code),
        (None, None) => 0,
        (None, Some(_)) => return Err(AmountError::NoCurrency),
    };
    let fraction = fraction.unwrap_or_default();
    if fraction.len() > digits as usize {
        // `42.50` typed for yen is refused; trailing zeros (`1,280.00`) are only how it was written.
        if fraction[digits as usize..].chars().any(|c| c != '0') {
            return Err(AmountError::TooManyDecimals {
                currency: currency.unwrap_or_default(),
                digits,
            });
        }
    }
    let fraction: String = format!("{fraction:0<width$}", width = digits as usize)
        .chars()
        .take(digits as usize)
        .collect();
    let minor = format!("{whole}{fraction}")
        .parse::<i64>()
        .map_err(|_| AmountError::TooLarge)?;
    Ok(TypedAmount {
        minor: if negative { -minor } else { minor },
        currency,
    })
}

fn symbol(currency: &str) -> Option<&'static str> {
    Some(match currency {
        "JPY" => "¥",
        "USD" => "$",
        "EUR" => "€",
        "GBP" => "£",
        "KRW" => "₩",
        "CNY" => "CN¥",
        "TWD" => "NT$",
        "AUD" => "A$",
        "CAD" => "CA$",
        "HKD" => "HK$",
        "SGD" => "S$",
        _ => return None,
    })
}

fn group_thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `¥1,280`, `-$12.80`, `1,280.00 CHF`; without a currency, the grouped number alone.
pub fn format_amount(amount: i64, currency: Option<&str>) -> String {
    let sign = if amount < 0 { "-" } else { "" };
    let abs = amount.unsigned_abs();
    let Some(code) = currency else {
        return format!("{sign}{}", group_thousands(abs));
    };
    let digits = minor_digits(code);
    let scale = 10u64.pow(digits);
    let number = if digits == 0 {
        group_thousands(abs)
    } else {
        format!(
            "{}.{:0width$}",
            group_thousands(abs / scale),
            abs % scale,
            width = digits as usize
        )
    };
    match symbol(code) {
        Some(sym) => format!("{sign}{sym}{number}"),
        None => format!("{sign}{number} {code}"),
    }
}

#[cfg(test)]
mod tests {
    use super::{AmountError, TypedAmount, format_amount, parse_amount};

    fn typed(minor: i64, currency: Option<&str>) -> Result<TypedAmount, AmountError> {
        Ok(TypedAmount {
            minor,
            currency: currency.map(str::to_string),
        })
    }

    #[test]
    fn amounts_are_read_as_the_pages_write_them() {
        assert_eq!(parse_amount("1,280", Some("JPY")), typed(1280, Some("JPY")));
        assert_eq!(parse_amount("¥1,280", None), typed(1280, Some("JPY")));
        assert_eq!(parse_amount("￥1280", None), typed(1280, Some("JPY")));
        assert_eq!(parse_amount("1,280円", None), typed(1280, Some("JPY")));
        assert_eq!(parse_amount("42.50", Some("USD")), typed(4250, Some("USD")));
        assert_eq!(parse_amount("$42.5", Some("JPY")), typed(4250, Some("USD")));
        assert_eq!(parse_amount("-$0.05", None), typed(-5, Some("USD")));
        assert_eq!(
            parse_amount("1,234.56 CHF", None),
            typed(123_456, Some("CHF"))
        );
        assert_eq!(parse_amount(" 500 ", None), typed(500, None));
        assert_eq!(
            parse_amount("1,280.00", Some("JPY")),
            typed(1280, Some("JPY"))
        );
    }

    #[test]
    fn what_cannot_be_an_amount_says_why() {
        assert_eq!(parse_amount("abc", None), Err(AmountError::NotANumber));
        assert_eq!(parse_amount("¥", None), Err(AmountError::NotANumber));
        assert_eq!(
            parse_amount("1.2.3", Some("USD")),
            Err(AmountError::NotANumber)
        );
        assert_eq!(
            parse_amount("¥12.5", None),
            Err(AmountError::TooManyDecimals {
                currency: "JPY".into(),
                digits: 0
            })
        );
        assert_eq!(parse_amount("1.5", None), Err(AmountError::NoCurrency));
        assert_eq!(
            parse_amount("99999999999999999999", None),
            Err(AmountError::TooLarge)
        );
    }

    #[test]
    fn yen_has_no_decimals_and_groups_thousands() {
        assert_eq!(format_amount(1280, Some("JPY")), "¥1,280");
        assert_eq!(format_amount(1_234_567, Some("JPY")), "¥1,234,567");
        assert_eq!(format_amount(180, Some("JPY")), "¥180");
    }

    #[test]
    fn cents_become_dollars_and_negative_amounts_keep_their_sign() {
        assert_eq!(format_amount(1280, Some("USD")), "$12.80");
        assert_eq!(format_amount(-5, Some("USD")), "-$0.05");
        assert_eq!(format_amount(123_456, Some("CHF")), "1,234.56 CHF");
        assert_eq!(format_amount(1500, Some("KWD")), "1.500 KWD");
        assert_eq!(format_amount(5000, None), "5,000");
    }
}
