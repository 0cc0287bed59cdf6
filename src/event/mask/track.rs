//! Magnetic-stripe track data around a card number that was found: track 1 (`%B` PAN `^` NAME `^` YYMM service
//! code, discretionary data `?`), track 2 (`;` PAN `=` YYMM service code, discretionary data `?`) and the EMV
//! track 2 equivalent (PAN `D` YYMM...). Sentinels are optional, since a reader's output is often trimmed or
//! logged without them. The whole track goes, not just the PAN's middle: expiry, service code, name and
//! discretionary data are all sensitive authentication data.

use super::chars::{Kind, unit_at};

/// The longest a track 1 name field is (26) with room for readers that pad it, and the longest whole track 1
/// (79 characters): bounds so a stray `^` cannot take a whole message with it.
const MAX_NAME: usize = 40;
const MAX_TRACK: usize = 79;

/// Fewest digits after `=` or `D` that make them track 2 rather than a card number followed by a sign: an
/// expiry date (YYMM) after `=`, expiry and service code after the rarer `D`.
const MIN_TRACK2_DIGITS: usize = 4;
const MIN_EMV_DIGITS: usize = 7;

/// Where the track data that follows a card number ending at byte `after` ends, if there is any.
pub(super) fn end(text: &str, after: usize, escapes: bool) -> Option<usize> {
    let rest = &text[after..];
    let first = rest.chars().next()?;
    let past = after + first.len_utf8();
    match first {
        '^' | '\u{FF3E}' => Some(track1_end(text, past)),
        '=' | '\u{FF1D}' => track2_end(text, past, escapes, MIN_TRACK2_DIGITS),
        'D' | 'd' => track2_end(text, past, escapes, MIN_EMV_DIGITS),
        _ => None,
    }
}

/// Where the start sentinel and format code in front of a card number that starts at byte `pan` begin: `;`,
/// `%B`, `B` or `%`, ASCII or full-width; `pan` itself when there is none.
pub(super) fn start(text: &str, pan: usize) -> usize {
    let mut before = text[..pan].char_indices().rev();
    match before.next() {
        Some((i, ';' | '\u{FF1B}' | '%' | '\u{FF05}')) => i,
        Some((i, 'B' | 'b' | '\u{FF22}')) => match before.next() {
            Some((j, '%' | '\u{FF05}')) => j,
            _ => i,
        },
        _ => pan,
    }
}

/// The track around digits at bytes `pan..pan_end` when a start sentinel (`%`, `;`) stands right before them
/// (`B` between) and a field separator right after: where it starts and ends.
pub(super) fn with_sentinel(
    text: &str,
    pan: usize,
    pan_end: usize,
    escapes: bool,
) -> Option<(usize, usize)> {
    let from = start(text, pan);
    let sentinel = text[from..].chars().next()?;
    if !matches!(sentinel, ';' | '\u{FF1B}' | '%' | '\u{FF05}') {
        return None;
    }
    Some((from, end(text, pan_end, escapes)?))
}

/// Track 1 after the `^` that follows the PAN: the name up to the second `^`, then everything up to the end
/// sentinel `?` or the next space. Without a second `^`, the name runs to `?` or the end of the line.
fn track1_end(text: &str, name_start: usize) -> usize {
    let mut end = name_start;
    for (n, (i, c)) in text[name_start..].char_indices().enumerate() {
        match c {
            '^' | '\u{FF3E}' => return data_end(text, name_start + i + c.len_utf8()),
            '?' | '\u{FF1F}' => return name_start + i + c.len_utf8(),
            '\n' | '\r' => return name_start + i,
            _ if n >= MAX_TRACK => return name_start + i,
            _ => end = name_start + i + c.len_utf8(),
        }
        if n >= MAX_NAME && c.is_whitespace() {
            return name_start + i;
        }
    }
    end
}

/// Track 1 after its second `^`: expiry, service code and discretionary data, up to and with the end sentinel.
fn data_end(text: &str, from: usize) -> usize {
    let mut end = from;
    for (n, (i, c)) in text[from..].char_indices().enumerate() {
        if c.is_whitespace() || n >= MAX_TRACK {
            break;
        }
        end = from + i + c.len_utf8();
        if matches!(c, '?' | '\u{FF1F}') {
            break;
        }
    }
    end
}

/// Track 2 after its field separator: digits (in any script, escaped or not), padding `F`s, and the end sentinel.
/// None when too few digits follow for it to be track data.
fn track2_end(text: &str, from: usize, escapes: bool, min_digits: usize) -> Option<usize> {
    let mut at = from;
    let mut digits = 0;
    while at < text.len() && digits < MAX_TRACK {
        let (kind, next) = unit_at(text, at, escapes);
        if !matches!(kind, Kind::Digit(_)) {
            break;
        }
        digits += 1;
        at = next;
    }
    if digits < min_digits {
        return None;
    }
    let rest = &text[at..];
    let padding = rest.len() - rest.trim_start_matches(['F', 'f']).len();
    at += padding;
    if let Some(c) = text[at..]
        .chars()
        .next()
        .filter(|c| matches!(c, '?' | '\u{FF1F}'))
    {
        at += c.len_utf8();
    }
    Some(at)
}
