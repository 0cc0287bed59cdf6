//! What one character (or one JSON escape) counts as when looking for card numbers: a decimal digit of any
//! script, a separator that may sit between digit groups, or anything else. Owns the Unicode tables; decoding
//! never fails, whatever the input.

/// The zero of every run of ten Unicode decimal digits (general category Nd), Unicode 16. Nd digits always come
/// in such contiguous runs, so a digit's value is its distance from the nearest zero below it.
const ND_ZEROS: [u32; 75] = [
    0x30, 0x660, 0x6F0, 0x7C0, 0x966, 0x9E6, 0xA66, 0xAE6, 0xB66, 0xBE6, 0xC66, 0xCE6, 0xD66,
    0xDE6, 0xE50, 0xED0, 0xF20, 0x1040, 0x1090, 0x17E0, 0x1810, 0x1946, 0x19D0, 0x1A80, 0x1A90,
    0x1B50, 0x1BB0, 0x1C40, 0x1C50, 0xA620, 0xA8D0, 0xA900, 0xA9D0, 0xA9F0, 0xAA50, 0xABF0, 0xFF10,
    0x104A0, 0x10D30, 0x10D40, 0x11066, 0x110F0, 0x11136, 0x111D0, 0x112F0, 0x11450, 0x114D0,
    0x11650, 0x116C0, 0x116D0, 0x116DA, 0x11730, 0x118E0, 0x11950, 0x11BF0, 0x11C50, 0x11D50,
    0x11DA0, 0x11F50, 0x16130, 0x16A60, 0x16AC0, 0x16B50, 0x16D70, 0x1CCF0, 0x1D7CE, 0x1D7D8,
    0x1D7E2, 0x1D7EC, 0x1D7F6, 0x1E140, 0x1E2F0, 0x1E5F1, 0x1E950, 0x1FBF0,
];

/// The value of a decimal digit in any script (`4`, `４`, `٤`, `४`, `𝟒`...). Not `char::to_digit`, which knows
/// only ASCII, and not `char::is_numeric`, which also takes `½`, `Ⅳ` and `②`.
pub(super) fn digit_value(c: char) -> Option<u8> {
    if c.is_ascii() {
        return c.is_ascii_digit().then(|| c as u8 - b'0');
    }
    let code = u32::from(c);
    // Full-width digits are the common non-ASCII ones (Japanese receipts and input methods).
    if let Some(d) = code.checked_sub(0xFF10).filter(|d| *d < 10) {
        return Some(d as u8);
    }
    let run = ND_ZEROS.partition_point(|&zero| zero <= code);
    let zero = ND_ZEROS[run.checked_sub(1)?];
    (code - zero < 10).then(|| (code - zero) as u8)
}

/// Characters a card number may be printed or typed with between its digit groups: every Unicode space (tab,
/// NBSP, ideographic space, line breaks), hyphens and dashes, dots, slashes, their full-width forms, and the
/// invisible characters that can be slipped between digits.
pub(super) fn is_separator(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '-' | '.'
                | '/'
                // Hyphens, dashes and minus signs; the katakana prolonged sound mark serves as a dash in
                // Japanese phone and card numbers.
                | '\u{2010}'..='\u{2015}'
                | '\u{2043}'
                | '\u{2212}'
                | '\u{FE58}'
                | '\u{FE63}'
                | '\u{FF0D}'
                | '\u{30FC}'
                | '\u{FF70}'
                // Dots: middle dots, the ideographic and full-width full stops, the one-dot leader.
                | '\u{00B7}'
                | '\u{2024}'
                | '\u{2027}'
                | '\u{3002}'
                | '\u{30FB}'
                | '\u{FF0E}'
                | '\u{FF61}'
                | '\u{FF65}'
                // Slashes.
                | '\u{2044}'
                | '\u{2215}'
                | '\u{FF0F}'
                // Invisible: zero-width space and joiners, word joiner, byte order mark, soft hyphen,
                // Mongolian vowel separator.
                | '\u{200B}'..='\u{200D}'
                | '\u{2060}'
                | '\u{FEFF}'
                | '\u{00AD}'
                | '\u{180E}'
        )
}

/// What a unit of text counts as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Digit(u8),
    Separator,
    Other(char),
}

/// One character of the text, or with `escapes` one JSON escape (`\u0034`, a surrogate pair, `\t`, `\/`...),
/// read at byte `at`: what it counts as and where the next unit starts. `at` must be a char boundary before
/// the end of `text`.
pub(super) fn unit_at(text: &str, at: usize, escapes: bool) -> (Kind, usize) {
    let rest = &text[at..];
    let Some(c) = rest.chars().next() else {
        return (Kind::Other('\0'), text.len());
    };
    let (decoded, len) = if escapes && c == '\\' {
        json_escape(rest)
    } else {
        (c, c.len_utf8())
    };
    (classify(decoded), at + len)
}

fn classify(c: char) -> Kind {
    if c.is_ascii() {
        return match c {
            '0'..='9' => Kind::Digit(c as u8 - b'0'),
            ' ' | '\t' | '\n' | '\r' | '\u{B}' | '\u{C}' | '-' | '.' | '/' => Kind::Separator,
            _ => Kind::Other(c),
        };
    }
    // Kana and CJK ideographs, the bulk of Japanese text, are neither digits nor separators (but for the
    // katakana middle dot and prolonged sound mark).
    if ('\u{3040}'..='\u{9FFF}').contains(&c) && !matches!(c, '\u{30FB}' | '\u{30FC}') {
        return Kind::Other(c);
    }
    if let Some(d) = digit_value(c) {
        Kind::Digit(d)
    } else if is_separator(c) {
        Kind::Separator
    } else {
        Kind::Other(c)
    }
}

/// Decodes the JSON escape at the start of `s` (which starts with a backslash): the character it stands for and
/// its length. Several backslashes before the escape letter count as one, so a body escaped twice (a JSON body
/// kept inside a JSON string, `\\u0034`) still shows its digits; that reading of a literal backslash before
/// `u0034` is the price, and it can only mask more.
fn json_escape(s: &str) -> (char, usize) {
    let b = s.as_bytes();
    let slashes = b.iter().take_while(|&&c| c == b'\\').count();
    let after = slashes + 1;
    match b.get(slashes) {
        Some(b'u') => match hex4(&b[after..]) {
            Some(high @ 0xD800..=0xDBFF) => {
                let rest = &b[after + 4..];
                let low_slashes = rest.iter().take_while(|&&c| c == b'\\').count();
                let low = (low_slashes > 0 && rest.get(low_slashes) == Some(&b'u'))
                    .then(|| hex4(&rest[low_slashes + 1..]))
                    .flatten()
                    .filter(|low| (0xDC00..=0xDFFF).contains(low));
                match low {
                    Some(low) => {
                        let code = 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00);
                        let len = after + 4 + low_slashes + 5;
                        (char::from_u32(code).unwrap_or('\u{FFFD}'), len)
                    }
                    None => ('\u{FFFD}', after + 4),
                }
            }
            Some(code) => (char::from_u32(code).unwrap_or('\u{FFFD}'), after + 4),
            None => ('\\', slashes),
        },
        Some(b't') => ('\t', after),
        Some(b'n') => ('\n', after),
        Some(b'r') => ('\r', after),
        Some(b'f') => ('\u{C}', after),
        Some(b'b') => ('\u{8}', after),
        Some(b'/') => ('/', after),
        Some(b'"') => ('"', after),
        _ => ('\\', slashes),
    }
}

fn hex4(b: &[u8]) -> Option<u32> {
    let digits = b.get(..4)?;
    digits
        .iter()
        .try_fold(0u32, |acc, &d| Some(acc * 16 + char::from(d).to_digit(16)?))
}
