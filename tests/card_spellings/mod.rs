//! A corpus of card-number spellings that must never survive into anything tillmark keeps, and an independent
//! check for the card in a text. Shared by test files (`mod card_spellings;`): the masking tests and the
//! end-to-end tests that send each spelling through the daemon in every field and in the topic.
//!
//! The check here is written apart from the masker on purpose (its own digit and separator tables, its own JSON
//! unescaping), so a mistake in one is not repeated in the other.
#![allow(dead_code)] // Each test file that includes this module uses a different part of it.

/// How a spelling must look once masked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Masked {
    /// The card's first 6 and last 4 digits remain, in the card's own spelling; the rest are `*`.
    FirstSixLastFour,
    /// Track data: the whole track is replaced by `[track data removed]`.
    TrackRemoved,
    /// A number in exponent notation: no digit can be trusted to be the card's, so every one is `*`.
    AllStars,
}

/// One way a card number reaches tillmark.
#[derive(Debug, Clone)]
pub struct Spelling {
    pub name: &'static str,
    /// The text as it is typed, printed or sent, with the card inside.
    pub text: String,
    /// The card number, in ASCII digits.
    pub pan: &'static str,
    /// Only found where JSON escapes are read (a payload kept as text, a JSON string): the digits are written
    /// as `\u0034`.
    pub json_escaped: bool,
    pub masked: Masked,
    /// The spelling as a JSON number, where it is one (`4.91761e15`).
    pub json_number: Option<&'static str>,
}

impl Spelling {
    /// Whether the text can be one level of an MQTT topic: no level separator `/`, no wildcard, no NUL.
    pub fn fits_a_topic_level(&self) -> bool {
        !self.text.contains(['/', '+', '#', '\0'])
    }
}

/// What replaces track data.
pub const TRACK_REMOVED: &str = "[track data removed]";

/// The cardholder name and the expiry + service code put into generated track data: none of them may survive.
pub const TRACK_NAME: &str = "DOE/JOHN";
pub const TRACK_EXPIRY_SERVICE: &str = "2512101";

/// The zero of each digit script the corpus uses: ASCII, full-width, Arabic-Indic, Extended Arabic-Indic
/// (Persian), Devanagari, Bengali, Thai, mathematical bold (outside the Basic Multilingual Plane).
pub const DIGIT_ZEROS: [char; 8] = [
    '0',
    '\u{FF10}',
    '\u{660}',
    '\u{6F0}',
    '\u{966}',
    '\u{9E6}',
    '\u{E50}',
    '\u{1D7CE}',
];

/// Separator runs a card number is written with between its groups.
pub const SEPARATORS: [&str; 16] = [
    " ", "  ", "\t", "-", " - ", ".", "/", "\n", "\u{3000}", "\u{A0}", "\u{202F}", "\u{200B}",
    "\u{FF0D}", "\u{FF0E}", "\u{FF0F}", "\u{2013}",
];

/// Every separator character of [`SEPARATORS`] that is not white space.
const SEPARATOR_CHARS: [char; 9] = [
    '-', '.', '/', '\u{200B}', '\u{FF0D}', '\u{FF0E}', '\u{FF0F}', '\u{2013}', '\u{3000}',
];

/// `digits` (ASCII) written in the script whose zero is `zero`.
pub fn respell(digits: &str, zero: char) -> String {
    digits
        .bytes()
        .map(|d| char::from_u32(u32::from(zero) + u32::from(d - b'0')).expect("a digit"))
        .collect()
}

/// `text` split into groups of `sizes` (the last group takes the rest), joined by `separator`.
pub fn grouped(text: &str, sizes: &[usize], separator: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut groups = Vec::new();
    let mut at = 0;
    for &size in sizes {
        if at >= chars.len() {
            break;
        }
        let end = (at + size).min(chars.len());
        groups.push(chars[at..end].iter().collect::<String>());
        at = end;
    }
    if at < chars.len() {
        groups.push(chars[at..].iter().collect());
    }
    groups.join(separator)
}

/// Every character of `text` that is not an ASCII letter written as a JSON `\uXXXX` escape (a surrogate pair
/// outside the Basic Multilingual Plane).
pub fn json_escape_all(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c.is_ascii_alphabetic() {
            out.push(c);
            continue;
        }
        let mut units = [0u16; 2];
        for unit in c.encode_utf16(&mut units) {
            out.push_str(&format!("\\u{unit:04x}"));
        }
    }
    out
}

/// Track 1 around a card spelled `pan_text`: `%B` PAN `^` NAME `^` YYMM service code, discretionary data `?`.
pub fn track1(pan_text: &str, sentinels: bool) -> String {
    let body = format!("B{pan_text}^{TRACK_NAME}^{TRACK_EXPIRY_SERVICE}000000000000");
    if sentinels { format!("%{body}?") } else { body }
}

/// Track 2 around a card spelled `pan_text`: `;` PAN `=` YYMM service code, discretionary data `?`.
pub fn track2(pan_text: &str, sentinels: bool) -> String {
    let body = format!("{pan_text}={TRACK_EXPIRY_SERVICE}0000000000000");
    if sentinels { format!(";{body}?") } else { body }
}

/// `text` as a reader sees through its spelling: JSON escapes decoded (however many backslashes), digits of
/// the corpus's scripts as ASCII digits, separators dropped. Everything else stays, `*` included.
pub fn normalise(text: &str) -> String {
    unescape(text)
        .chars()
        .filter(|&c| !(c.is_whitespace() || SEPARATOR_CHARS.contains(&c)))
        .map(|c| {
            DIGIT_ZEROS
                .iter()
                .find_map(|&zero| {
                    let d = u32::from(c).checked_sub(u32::from(zero))?;
                    (d < 10).then(|| char::from(b'0' + d as u8))
                })
                .unwrap_or(c)
        })
        .collect()
}

/// Whether `text` still holds the card `pan` (ASCII digits) in any spelling of the corpus.
pub fn holds_pan(text: &str, pan: &str) -> bool {
    normalise(text).contains(pan)
}

/// What must remain of `pan` once masked, normalised: its first 6 digits, a `*` for each digit between, its
/// last 4.
pub fn masked_form(pan: &str) -> String {
    format!(
        "{}{}{}",
        &pan[..6],
        "*".repeat(pan.len() - 10),
        &pan[pan.len() - 4..]
    )
}

fn unescape(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut units: Vec<u16> = Vec::new();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '\\' {
            let mut j = i;
            while j < chars.len() && chars[j] == '\\' {
                j += 1;
            }
            let hex: String = chars.iter().skip(j + 1).take(4).collect();
            if chars.get(j) == Some(&'u')
                && hex.len() == 4
                && let Ok(unit) = u16::from_str_radix(&hex, 16)
            {
                units.push(unit);
                i = j + 5;
                continue;
            }
            let simple = match chars.get(j) {
                Some('t') => Some('\t'),
                Some('n') => Some('\n'),
                Some('r') => Some('\r'),
                Some('/') => Some('/'),
                _ => None,
            };
            if let Some(c) = simple {
                out.extend(char::decode_utf16(units.drain(..)).map(|c| c.unwrap_or('\u{FFFD}')));
                out.push(c);
                i = j + 1;
                continue;
            }
        }
        out.extend(char::decode_utf16(units.drain(..)).map(|c| c.unwrap_or('\u{FFFD}')));
        out.push(chars[i]);
        i += 1;
    }
    out.extend(char::decode_utf16(units.drain(..)).map(|c| c.unwrap_or('\u{FFFD}')));
    out
}

/// Every spelling of the corpus: each form a card number has been seen (or could be typed) in, over several
/// networks and lengths.
pub fn spellings() -> Vec<Spelling> {
    let text = text_spelling;
    let escaped = |name, text: String, pan| Spelling {
        json_escaped: true,
        ..text_spelling(name, text, pan)
    };
    let track = |name, text: String, pan| Spelling {
        masked: Masked::TrackRemoved,
        ..text_spelling(name, text, pan)
    };
    let fours = [4, 4, 4, 4];
    let fullwidth = |d| respell(d, '\u{FF10}');
    vec![
        // Plain ASCII, several networks and every length from 13 to 19.
        text(
            "visa 16 digits in a line",
            format!("VISA {} OK", "4111111111111111"),
            "4111111111111111",
        ),
        text(
            "visa 13 digits",
            "CARD 4222222222222".into(),
            "4222222222222",
        ),
        text(
            "visa 19 digits",
            "PAN 4000000000000000006 APPROVED".into(),
            "4000000000000000006",
        ),
        text(
            "mastercard 51-55",
            "MC 5555555555554444".into(),
            "5555555555554444",
        ),
        text(
            "mastercard 2221",
            "MC 2221000000000009".into(),
            "2221000000000009",
        ),
        text(
            "mastercard 2720",
            "MC 2720990000000007".into(),
            "2720990000000007",
        ),
        text(
            "amex 15 digits in 4-6-5",
            "AMEX 3782 822463 10005".into(),
            "378282246310005",
        ),
        text("amex 37 plain", "371449635398431".into(), "371449635398431"),
        text(
            "discover 6011",
            "DISCOVER 6011-1111-1111-1117".into(),
            "6011111111111117",
        ),
        text("discover 65", "6500000000000002".into(), "6500000000000002"),
        text(
            "discover 19 digits",
            "6011 0000 0000 0000 001".into(),
            "6011000000000000001",
        ),
        text(
            "jcb 3528",
            "JCB 3528 0000 0000 0007".into(),
            "3528000000000007",
        ),
        text(
            "jcb 3589",
            "JCB 3589000000000003".into(),
            "3589000000000003",
        ),
        text(
            "unionpay 16",
            "銀聯 6250941006528599".into(),
            "6250941006528599",
        ),
        text(
            "unionpay 19 in groups of 4",
            "UP 6212 3456 7890 1234 569".into(),
            "6212345678901234569",
        ),
        text(
            "diners 14 digits in 4-6-4",
            "DINERS 3622 720627 1667".into(),
            "36227206271667",
        ),
        text("diners 30", "30569309025904".into(), "30569309025904"),
        text(
            "maestro 19 digits",
            "6304000000000000000".into(),
            "6304000000000000000",
        ),
        // Separators between groups.
        text(
            "double spaces",
            "4111  1111  1111  1111".into(),
            "4111111111111111",
        ),
        text(
            "tabs",
            "CARD\t4012\t8888\t8888\t1881".into(),
            "4012888888881881",
        ),
        text("dots", "5105.1051.0510.5100".into(), "5105105105105100"),
        text("slashes", "4012/8888/8888/1881".into(), "4012888888881881"),
        text(
            "spaced dashes",
            "4111 - 1111 - 1111 - 1111".into(),
            "4111111111111111",
        ),
        text(
            "ideographic spaces",
            grouped("3566002020360505", &fours, "\u{3000}"),
            "3566002020360505",
        ),
        text(
            "no-break spaces",
            grouped("4012888888881881", &fours, "\u{A0}"),
            "4012888888881881",
        ),
        text(
            "zero-width spaces",
            grouped("5555555555554444", &[1; 16], "\u{200B}"),
            "5555555555554444",
        ),
        text(
            "line breaks between groups",
            "CARD 4111 1111\n1111 1111".into(),
            "4111111111111111",
        ),
        text(
            "uneven groups and mixed separators",
            "60 1100-09.9013/94 24".into(),
            "6011000990139424",
        ),
        text(
            "card followed by an expiry date",
            "VISA 4111 1111 1111 1111 12/28".into(),
            "4111111111111111",
        ),
        text(
            "card after an amount",
            "1280 4012888888881881".into(),
            "4012888888881881",
        ),
        text(
            "card glued to text",
            "PAN:4012888888881881/EXP".into(),
            "4012888888881881",
        ),
        // Digits of other scripts.
        text(
            "full-width with spaces",
            "４０１２ ８８８８ ８８８８ １８８１".into(),
            "4012888888881881",
        ),
        text(
            "full-width with ideographic spaces and full-width hyphens",
            format!(
                "カード番号：{}",
                grouped(&fullwidth("5555555555554444"), &fours, "\u{3000}－")
            ),
            "5555555555554444",
        ),
        text(
            "ascii and full-width mixed",
            "4111１１１１1111１１１１".into(),
            "4111111111111111",
        ),
        text(
            "arabic-indic",
            respell("4111111111111111", '\u{660}'),
            "4111111111111111",
        ),
        text(
            "persian",
            grouped(&respell("6250941006528599", '\u{6F0}'), &fours, " "),
            "6250941006528599",
        ),
        text(
            "devanagari",
            grouped(&respell("4012888888881881", '\u{966}'), &fours, " "),
            "4012888888881881",
        ),
        text(
            "bengali",
            respell("378282246310005", '\u{9E6}'),
            "378282246310005",
        ),
        text(
            "thai",
            respell("3530111333300000", '\u{E50}'),
            "3530111333300000",
        ),
        text(
            "mathematical bold",
            respell("6011111111111117", '\u{1D7CE}'),
            "6011111111111117",
        ),
        // JSON escapes, as a payload that is not valid JSON still holds them.
        escaped(
            "json-escaped digits",
            json_escape_all("4111111111111111"),
            "4111111111111111",
        ),
        escaped(
            "json-escaped digits and spaces",
            format!("card {}", json_escape_all("4012 8888 8888 1881")),
            "4012888888881881",
        ),
        escaped(
            "json-escaped full-width digits",
            json_escape_all(&fullwidth("5105105105105100")),
            "5105105105105100",
        ),
        escaped(
            "json-escaped surrogate pairs",
            json_escape_all(&respell("36227206271667", '\u{1D7CE}')),
            "36227206271667",
        ),
        escaped(
            "escapes and plain digits mixed",
            r"\u0034111\t1111\/\u0031111 1111".into(),
            "4111111111111111",
        ),
        escaped(
            "escaped twice",
            r"\\u0034\\u0030\\u00312888888881881".into(),
            "4012888888881881",
        ),
        // Numbers as a serializer writes them.
        Spelling {
            json_number: Some("4917610000000000"),
            ..text_spelling(
                "json integer",
                "4917610000000000".into(),
                "4917610000000000",
            )
        },
        Spelling {
            masked: Masked::AllStars,
            json_number: Some("4.91761e15"),
            ..text_spelling(
                "json float in exponent notation",
                "4.91761e15".into(),
                "4917610000000000",
            )
        },
        Spelling {
            masked: Masked::AllStars,
            json_number: Some("4.91761E+15"),
            ..text_spelling(
                "exponent with a sign",
                "PAN 4.91761E+15".into(),
                "4917610000000000",
            )
        },
        // Track data.
        track(
            "track 1 with sentinels",
            track1("4111111111111111", true),
            "4111111111111111",
        ),
        track(
            "track 2 with sentinels",
            track2("4111111111111111", true),
            "4111111111111111",
        ),
        track(
            "track 1 without sentinels",
            track1("5555555555554444", false)[1..].to_string(),
            "5555555555554444",
        ),
        track(
            "track 2 without sentinels",
            format!("SWIPE {}", track2("378282246310005", false)),
            "378282246310005",
        ),
        track(
            "track 1 with a spaced card number",
            track1("4012 8888 8888 1881", true),
            "4012888888881881",
        ),
        track(
            "track 2 in full-width",
            format!(
                "；{}＝{}？",
                fullwidth("6011111111111117"),
                fullwidth("25121010000000")
            ),
            "6011111111111117",
        ),
        track(
            "emv track 2 equivalent",
            "57: 3566002020360505D25121010000000000F".into(),
            "3566002020360505",
        ),
        Spelling {
            json_escaped: true,
            ..track(
                "track 2 with json-escaped digits",
                track2(&json_escape_all("4111111111111111"), true),
                "4111111111111111",
            )
        },
    ]
}

fn text_spelling(name: &'static str, text: String, pan: &'static str) -> Spelling {
    Spelling {
        name,
        text,
        pan,
        json_escaped: false,
        masked: Masked::FirstSixLastFour,
        json_number: None,
    }
}
