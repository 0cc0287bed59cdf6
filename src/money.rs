//! Amounts as people read them: in the currency's major unit with its symbol (`¥1,280`, `$12.80`).

/// Digits after the decimal point of an ISO 4217 currency; 2 unless the standard says otherwise.
fn minor_digits(currency: &str) -> u32 {
    match currency {
        "JPY" | "KRW" | "VND" | "CLP" | "ISK" | "PYG" | "UGX" | "XAF" | "XOF" | "TWD" => 0,
        "BHD" | "KWD" | "OMR" | "JOD" | "TND" | "IQD" | "LYD" => 3,
        _ => 2,
    }
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
    use super::format_amount;

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
