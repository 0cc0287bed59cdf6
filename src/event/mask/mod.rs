//! Card-number masking (PCI DSS: no full PAN and no track data at rest). Runs before anything is written, sent
//! or logged.
//!
//! Guarantees, for any input (no panic, whatever the text):
//! - A card number is any span of 13–19 digits that passes the Luhn check, read after normalising: a decimal
//!   digit of any script (`４`, `٤`, `४`...) counts as its ASCII value, and any run of separators (Unicode
//!   spaces, tabs, line breaks, hyphens and dashes, dots, slashes, their full-width forms, zero-width
//!   characters) may sit between digit groups. A longer run is searched for such spans made of its whole groups,
//!   so a card printed next to an expiry date or an amount is found too.
//! - A card number keeps its first 6 and last 4 digits, as written (full-width stays full-width); the digits
//!   between become `*`, and separators stay, so a masked receipt line still reads like the printed one.
//! - Track data (track 1, track 2, EMV track 2 equivalent, with or without sentinels) is removed whole and
//!   replaced by `[track data removed]`; behind a start sentinel (`%B`, `;`) even when its card fails Luhn.
//! - A number in exponent notation whose whole part has 13–19 digits (`4.91761e15`) becomes `*`s.
//! - The output holds no span that reads as a card number, so masking twice is masking once.
//! - Text without any of these comes back borrowed, untouched.
//!
//! Not caught, on purpose: digits glued to a card without a separator (`74111111111111111` is a 17-digit
//! number, not a card), cards split by letters or punctuation outside the separator set (commas, colons,
//! brackets), digits written as words or as non-decimal numerals (`①`, `Ⅳ`, kanji numerals), cards that fail
//! Luhn (unless in track data behind a start sentinel), and track data whose card fails Luhn and has no
//! start sentinel.
//! Caught on purpose though not cards: any Luhn-valid 13–19 digit span, so one EAN-13 barcode in ten, some
//! dotted dates with times, and digit ids spread over several separated groups are masked too.

mod chars;
mod scan;
mod track;

use std::borrow::Cow;

use serde_json::Value;

/// Masks every card number and removes all track data in `text`; borrows when there is none (the common case).
pub fn mask_card_numbers(text: &str) -> Cow<'_, str> {
    scan::mask(text, false)
}

/// Masks a payload kept as text because it is not valid JSON: as [`mask_card_numbers`], and JSON escapes count
/// as the characters they stand for (`\u0034` is a `4`, `\u0020` and `\t` are separators), since a broken JSON
/// body still holds its escaped digits. Escaped digits that are masked become `*`.
pub fn mask_text_payload(text: &str) -> Cow<'_, str> {
    scan::mask(text, true)
}

/// Whether `text` holds a card number or track data in any spelling that [`mask_text_payload`] masks (JSON
/// escapes included): for text that must be refused rather than masked, such as an MQTT topic.
pub fn contains_card_number(text: &str) -> bool {
    matches!(mask_text_payload(text), Cow::Owned(_))
}

/// Masks every string and every key of a JSON value in place, JSON escapes inside them included (a body
/// embedded as a string). A number that is a card number (an integer of 13–19 digits passing Luhn), or a float
/// whose whole part has 13–19 digits (its digits may be rounded, so no Luhn check can be trusted), becomes a
/// masked string: the value is no longer what the register sent, but nothing unmasked survives. Says whether
/// anything was masked, so a caller keeps what was received when nothing was.
pub fn mask_json(value: &mut Value) -> bool {
    match value {
        Value::String(s) => match mask_text_payload(s) {
            Cow::Owned(masked) => {
                *s = masked;
                true
            }
            Cow::Borrowed(_) => false,
        },
        Value::Number(n) => match mask_number(n) {
            Some(masked) => {
                *value = Value::String(masked);
                true
            }
            None => false,
        },
        // Every item is masked: `|`, not `||`.
        Value::Array(items) => items
            .iter_mut()
            .fold(false, |changed, v| mask_json(v) | changed),
        Value::Object(map) => {
            let needs_key_mask = map.keys().any(|k| contains_card_number(k));
            if needs_key_mask {
                let old = std::mem::take(map);
                for (k, v) in old {
                    map.insert(mask_text_payload(&k).into_owned(), v);
                }
            }
            map.values_mut()
                .fold(needs_key_mask, |changed, v| mask_json(v) | changed)
        }
        Value::Null | Value::Bool(_) => false,
    }
}

fn mask_number(n: &serde_json::Number) -> Option<String> {
    if n.is_f64() {
        let x = n.as_f64()?;
        if !scan::card_sized(x) {
            return None;
        }
        let whole = format!("{:.0}", x.abs().trunc());
        let sign = if x < 0.0 { "-" } else { "" };
        let hidden = whole.len() - 10;
        return Some(format!(
            "{sign}{}{}{}",
            &whole[..6],
            "*".repeat(hidden),
            &whole[whole.len() - 4..]
        ));
    }
    match mask_card_numbers(&n.to_string()) {
        Cow::Owned(masked) => Some(masked),
        Cow::Borrowed(_) => None,
    }
}

#[cfg(test)]
mod tests;
