//! Card-number masking. Runs before anything is written, sent or logged: any run of 13–19 digits (single spaces
//! or dashes allowed between them) that passes the Luhn check keeps its first 6 and last 4 digits; the digits
//! between become `*`. Separators stay, so a masked receipt line still reads like the printed one. A longer run
//! is searched for such a run made of its whole space- or dash-separated groups, so a card number printed next
//! to an expiry date or an amount is masked too.

use std::borrow::Cow;

/// Masks every card number in `text`; borrows when there is none (the common case).
pub fn mask_card_numbers(text: &str) -> Cow<'_, str> {
    let bytes = text.as_bytes();
    let mut out: Option<Vec<u8>> = None;
    let mut i = 0;
    while i < bytes.len() {
        if !bytes[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        // Collect one run: digits joined by at most one separator each; `groups` holds where each
        // separator-delimited group of digits starts in `digits`.
        let mut digits: Vec<usize> = vec![i];
        let mut groups: Vec<usize> = vec![0];
        let mut j = i + 1;
        loop {
            if j < bytes.len() && bytes[j].is_ascii_digit() {
                digits.push(j);
                j += 1;
            } else if j + 1 < bytes.len()
                && matches!(bytes[j], b' ' | b'-')
                && bytes[j + 1].is_ascii_digit()
            {
                groups.push(digits.len());
                j += 1;
            } else {
                break;
            }
        }
        // The run may hold more than the card: "4111 1111 1111 1111 12/28", "QTY 1 4111-1111-1111-1111".
        // So every span of whole groups is a candidate: from each group, the longest span that is a card is
        // masked. Spans stop at 19 digits, which keeps this linear on a long run of short groups; spans may
        // overlap, which can only mask more.
        for g in 0..groups.len() {
            let start = groups[g];
            let card = (g + 1..=groups.len())
                .map(|end| &digits[start..groups.get(end).copied().unwrap_or(digits.len())])
                .take_while(|span| span.len() <= 19)
                .filter(|span| span.len() >= 13 && luhn(span.iter().map(|&p| bytes[p] - b'0')))
                .last();
            if let Some(span) = card {
                let buf = out.get_or_insert_with(|| bytes.to_vec());
                for &p in &span[6..span.len() - 4] {
                    buf[p] = b'*';
                }
            }
        }
        i = j;
    }
    match out {
        // Only ASCII digits were replaced by an ASCII byte, so the text is still UTF-8.
        Some(buf) => Cow::Owned(
            String::from_utf8(buf)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
        ),
        None => Cow::Borrowed(text),
    }
}

fn luhn(digits: impl DoubleEndedIterator<Item = u8>) -> bool {
    let sum: u32 = digits
        .rev()
        .enumerate()
        .map(|(i, d)| {
            let d = u32::from(d);
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// Masks every string (and every key) in a JSON value in place. A card number sent as a JSON number becomes a
/// masked string: the value is no longer what the register sent, but nothing unmasked survives.
pub fn mask_json(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::String(s) => {
            if let Cow::Owned(masked) = mask_card_numbers(s) {
                *s = masked;
            }
        }
        Value::Number(n) => {
            let text = n.to_string();
            if let Cow::Owned(masked) = mask_card_numbers(&text) {
                *value = Value::String(masked);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(mask_json),
        Value::Object(map) => {
            let needs_key_mask = map
                .keys()
                .any(|k| matches!(mask_card_numbers(k), Cow::Owned(_)));
            if needs_key_mask {
                let old = std::mem::take(map);
                for (k, v) in old {
                    map.insert(mask_card_numbers(&k).into_owned(), v);
                }
            }
            map.values_mut().for_each(mask_json);
        }
        Value::Null | Value::Bool(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_card_number_keeps_its_first_six_and_last_four_digits() {
        assert_eq!(
            mask_card_numbers("VISA 4111111111111111 OK"),
            "VISA 411111******1111 OK"
        );
    }

    #[test]
    fn spaces_and_dashes_inside_a_card_number_are_kept_and_it_is_still_masked() {
        assert_eq!(
            mask_card_numbers("4111 1111 1111 1111"),
            "4111 11** **** 1111"
        );
        assert_eq!(
            mask_card_numbers("5500-0000-0000-0004"),
            "5500-00**-****-0004"
        );
    }

    #[test]
    fn digit_runs_that_fail_luhn_or_have_the_wrong_length_are_left_alone() {
        assert_eq!(mask_card_numbers("4111111111111112"), "4111111111111112");
        assert_eq!(
            mask_card_numbers("T-000981 ONIGIRI 180"),
            "T-000981 ONIGIRI 180"
        );
        assert_eq!(
            mask_card_numbers("2026-11-21T18:42:07.310+09:00"),
            "2026-11-21T18:42:07.310+09:00"
        );
        // 12 digits, Luhn-valid: too short to be a card number.
        assert_eq!(mask_card_numbers("123456789015"), "123456789015");
    }

    #[test]
    fn nineteen_digit_cards_and_cards_next_to_text_are_masked() {
        assert_eq!(mask_card_numbers("6011000990139424"), "601100******9424");
        assert_eq!(
            mask_card_numbers("PAN:4012888888881881/"),
            "PAN:401288******1881/"
        );
        assert_eq!(
            mask_card_numbers("6304000000000000000"),
            "630400*********0000"
        );
    }

    #[test]
    fn card_numbers_in_json_strings_numbers_and_keys_are_masked() {
        let mut v = serde_json::json!({
            "lines": ["CARD 4111 1111 1111 1111"],
            "attributes": {"pan": 4111111111111111_u64, "4111111111111111": true}
        });
        mask_json(&mut v);
        let text = v.to_string();
        assert!(!text.contains("4111111111111111"), "{text}");
        assert!(!text.contains("4111 1111 1111 1111"), "{text}");
        assert_eq!(v["attributes"]["pan"], "411111******1111");
        assert_eq!(v["lines"][0], "CARD 4111 11** **** 1111");
    }
}
