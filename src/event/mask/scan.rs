//! The search: runs of digits (any script) joined by separator runs, the card numbers among their spans of whole
//! groups, the track data after them, and card-sized numbers in exponent notation. Linear in the text's length:
//! every span is at most 19 digits long, and every piece of text is read a bounded number of times.

use std::borrow::Cow;

use super::chars::{Kind, digit_value, unit_at};
use super::track;

/// Card numbers (ISO/IEC 7812 PANs) are 13 to 19 digits long; PCI DSS allows the first 6 and last 4 to be shown.
const MIN: usize = 13;
const MAX: usize = 19;
const KEEP_FIRST: usize = 6;
const KEEP_LAST: usize = 4;
/// The fewest digits a card number in track data behind a start sentinel has: ISO/IEC 7812 numbers of 12 digits
/// exist, though no network issues them any more.
const MIN_SENTINEL_TRACK: usize = 12;

/// What replaces a whole track: nothing of it may stay, not even masked.
const TRACK_REMOVED: &str = "[track data removed]";

/// Masks `text`; with `escapes`, JSON escapes count as the characters they stand for.
///
/// The output is masked again until nothing changes, so it never holds what a second masking would find: digits
/// left beside a cut are searched within a pass already, but an exponent number can also form from them
/// (`4111111111111111e+10` leaves `1111e+10`). Should a text still change after a few passes, every digit in it
/// is masked: bounded time matters more than keeping digits of such a text.
pub(super) fn mask(text: &str, escapes: bool) -> Cow<'_, str> {
    let Cow::Owned(mut masked) = mask_once(text, escapes) else {
        return Cow::Borrowed(text);
    };
    // Within a pass, digits left beside a cut are searched already; only an exponent number needs a digit
    // followed by `e`, so without one the output is known to be final.
    if !has_exponent_mark(masked.as_bytes()) {
        return Cow::Owned(masked);
    }
    for _ in 0..MAX_PASSES {
        match mask_once(&masked, escapes) {
            Cow::Borrowed(_) => return Cow::Owned(masked),
            Cow::Owned(again) => masked = again,
        }
    }
    Cow::Owned(mask_every_digit(&masked, escapes))
}

/// How many times a masked text is masked again before every digit goes; real text needs one pass, rarely two.
const MAX_PASSES: usize = 4;

fn mask_every_digit(text: &str, escapes: bool) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    while at < text.len() {
        let (kind, next) = unit_at(text, at, escapes);
        match kind {
            Kind::Digit(_) => out.push('*'),
            _ => out.push_str(&text[at..next]),
        }
        at = next;
    }
    out
}

/// One pass over `text`.
fn mask_once(text: &str, escapes: bool) -> Cow<'_, str> {
    let bytes = text.as_bytes();
    // Most text has nothing that could start a digit: no ASCII digit, no other script, no escape.
    if !bytes
        .iter()
        .any(|&b| b.is_ascii_digit() || b >= 0x80 || (escapes && b == b'\\'))
    {
        return Cow::Borrowed(text);
    }
    let numbers = if has_exponent_mark(bytes) {
        exponent_numbers(bytes)
    } else {
        Vec::new()
    };
    let mut numbers = numbers.into_iter().peekable();
    let mut edits = Vec::new();
    let mut run = Run::default();
    let mut at = 0;
    while at < bytes.len() {
        let b = bytes[at];
        if b >= 0x80 {
            // Letters of other scripts are the bulk of non-ASCII text: only a digit starts a run. No decimal
            // digit lies in U+0080–U+05FF (lead bytes C2–D7) or U+2000–U+9FFF (E2–E9: punctuation, kana, CJK).
            let c = match b {
                0xC2..=0xD7 | 0xE2..=0xE9 => None,
                _ => text.get(at..).and_then(|rest| rest.chars().next()),
            };
            if c.and_then(digit_value).is_none() {
                at += match b {
                    0xC2..=0xDF => 2,
                    0xE0..=0xEF => 3,
                    _ => c.map_or(1, char::len_utf8),
                };
                continue;
            }
        } else if b.is_ascii_digit() {
            while numbers.next_if(|n| n.start < at).is_some() {}
            if let Some(number) = numbers.next_if(|n| n.start == at) {
                at = number.end;
                edits.push(number);
                continue;
            }
        } else if escapes && b == b'\\' {
            let (kind, next) = unit_at(text, at, escapes);
            if !matches!(kind, Kind::Digit(_)) {
                at = next;
                continue;
            }
        } else {
            // The common case, kept cheap: any other ASCII byte starts nothing.
            at += 1;
            continue;
        }
        let barrier = numbers.peek().map_or(text.len(), |n| n.start);
        at = run.mask(text, at, escapes, barrier, &mut edits);
    }
    rewrite(text, edits)
}

/// One replacement in the text: bytes `start..end` become `with`.
struct Edit {
    start: usize,
    end: usize,
    with: Cow<'static, str>,
}

fn rewrite(text: &str, mut edits: Vec<Edit>) -> Cow<'_, str> {
    if edits.is_empty() {
        return Cow::Borrowed(text);
    }
    edits.sort_by_key(|e| e.start);
    let mut out = String::with_capacity(text.len());
    let mut cursor = 0;
    for edit in edits {
        // A mask inside removed track data is already gone with it.
        if edit.start < cursor {
            continue;
        }
        out.push_str(&text[cursor..edit.start]);
        out.push_str(&edit.with);
        cursor = edit.end;
    }
    out.push_str(&text[cursor..]);
    Cow::Owned(out)
}

/// One digit of a run: where it is in the text (a character, or an escape) and its value.
struct Digit {
    start: usize,
    end: usize,
    value: u8,
}

/// The digits of one run, reused from run to run so a message costs few allocations.
#[derive(Default)]
struct Run {
    digits: Vec<Digit>,
    /// Whether each digit starts a group (the first digit, or one after separators).
    group_start: Vec<bool>,
    /// Whether each digit is masked or removed: no longer a digit in the output.
    gone: Vec<bool>,
    /// Starts still to look at while making the output free of card numbers.
    pending: Vec<usize>,
}

impl Run {
    /// Reads the run starting at the digit at byte `at` and masks its card numbers and track data into `edits`;
    /// returns where reading goes on. The run does not reach `barrier`.
    fn mask(
        &mut self,
        text: &str,
        at: usize,
        escapes: bool,
        barrier: usize,
        edits: &mut Vec<Edit>,
    ) -> usize {
        self.read(text, at, escapes, barrier);
        let n = self.digits.len();
        let run_end = self.digits[n - 1].end;
        // Track data behind a start sentinel goes whatever its card number: one that fails Luhn (a misread, a
        // test card) still sits in a card's track, and the sentinel leaves no doubt about what this is.
        if (MIN_SENTINEL_TRACK..=MAX).contains(&n)
            && let Some((start, end)) =
                track::with_sentinel(text, self.digits[0].start, run_end, escapes)
        {
            edits.push(Edit {
                start,
                end,
                with: Cow::Borrowed(TRACK_REMOVED),
            });
            return end;
        }
        if n < MIN {
            return run_end;
        }
        self.gone.clear();
        self.gone.resize(n, false);
        let mut removed = None;

        // First every span of whole groups as written: each card number keeps at most its first 6 and last 4
        // digits. From each group, the longest card is masked, which covers the shorter ones from there; spans
        // from several groups may overlap, which only masks more ("QTY 6 4111 1111 1111 1111").
        for s in 0..n {
            if removed.is_none()
                && self.group_start[s]
                && let Some(e) = self.longest(s, false)
            {
                removed = self.apply(text, s, e, escapes, edits);
            }
        }
        // Then the output itself: masking cuts groups, and the digits left beside a cut may form a new
        // Luhn-valid span. Mask those too, until there is none, so that masking twice changes nothing and the
        // output holds nothing that reads as a card number.
        self.pending.clear();
        self.pending.extend((0..n).rev());
        while let Some(s) = self.pending.pop() {
            if !self.is_start(s) {
                continue;
            }
            if let Some(e) = self.longest(s, true) {
                let cut = self.apply(text, s, e, escapes, edits);
                removed = removed.or(cut);
                let cut_at = if cut.is_some() { s } else { s + KEEP_FIRST };
                self.pending.extend(cut_at.saturating_sub(MAX)..cut_at);
                if cut.is_none() {
                    self.pending.push(e - KEEP_LAST);
                }
            }
        }

        let masked_until = removed.map_or(n, |(from, _)| from);
        edits.extend(
            self.digits[..masked_until]
                .iter()
                .zip(&self.gone)
                .filter(|(_, gone)| **gone)
                .map(|(d, _)| Edit {
                    start: d.start,
                    end: d.end,
                    with: Cow::Borrowed("*"),
                }),
        );
        removed.map_or(run_end, |(_, track_end)| track_end.max(run_end))
    }

    /// Collects the digits from byte `at`: digits, and separator runs that have a digit after them.
    fn read(&mut self, text: &str, at: usize, escapes: bool, barrier: usize) {
        self.digits.clear();
        self.group_start.clear();
        let mut pos = at;
        let mut new_group = true;
        while pos < barrier {
            match unit_at(text, pos, escapes) {
                (Kind::Digit(value), next) => {
                    self.digits.push(Digit {
                        start: pos,
                        end: next,
                        value,
                    });
                    self.group_start.push(new_group);
                    new_group = false;
                    pos = next;
                }
                (Kind::Separator, mut next) => {
                    while next < barrier {
                        match unit_at(text, next, escapes) {
                            (Kind::Separator, after) => next = after,
                            _ => break,
                        }
                    }
                    if next >= barrier || !matches!(unit_at(text, next, escapes).0, Kind::Digit(_))
                    {
                        break;
                    }
                    new_group = true;
                    pos = next;
                }
                (Kind::Other(_), _) => break,
            }
        }
    }

    /// Whether a span may start at digit `s` in the output: it is still a digit and follows a group break or a
    /// masked digit.
    fn is_start(&self, s: usize) -> bool {
        !self.gone[s] && (self.group_start[s] || s == 0 || self.gone[s - 1])
    }

    /// The end of the longest card number starting at digit `s`. `in_output` reads the run as masking has left
    /// it: masked digits are not digits, and they end a group.
    fn longest(&self, s: usize, in_output: bool) -> Option<usize> {
        let n = self.digits.len();
        let mut best = None;
        for e in s + 1..=n.min(s + MAX) {
            if in_output && self.gone[e - 1] {
                break;
            }
            let ends_group = e == n || self.group_start[e] || (in_output && self.gone[e]);
            if e - s >= MIN && ends_group && luhn(self.digits[s..e].iter().map(|d| d.value)) {
                best = Some(e);
            }
        }
        best
    }

    /// Masks the card number at digits `s..e`, or removes it whole with the track data that follows it. Returns
    /// the first removed digit and the end of the track when it was track data.
    fn apply(
        &mut self,
        text: &str,
        s: usize,
        e: usize,
        escapes: bool,
        edits: &mut Vec<Edit>,
    ) -> Option<(usize, usize)> {
        let n = self.digits.len();
        let track_end = (e == n)
            .then(|| track::end(text, self.digits[n - 1].end, escapes))
            .flatten();
        match track_end {
            Some(end) => {
                edits.push(Edit {
                    start: track::start(text, self.digits[s].start),
                    end,
                    with: Cow::Borrowed(TRACK_REMOVED),
                });
                self.gone[s..].fill(true);
                Some((s, end))
            }
            None => {
                self.gone[s + KEEP_FIRST..e - KEEP_LAST].fill(true);
                None
            }
        }
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

/// Whether a number's whole part is as long as a card number. A float cannot be checked with Luhn: its last
/// digits may already be lost, so any such number counts.
pub(super) fn card_sized(x: f64) -> bool {
    (1e12..1e19).contains(&x.abs().trunc())
}

fn has_exponent_mark(bytes: &[u8]) -> bool {
    bytes
        .windows(2)
        .any(|w| w[0].is_ascii_digit() && matches!(w[1], b'e' | b'E'))
}

/// Numbers in exponent notation whose whole part is as long as a card number (`4.91761e15`, `4.91761E+15`):
/// a serializer's spelling of a card number sent as a float. They become one `*` a digit: no digit of them can
/// be trusted to be the card's, and a kept digit could join its neighbours into a new span. Only with a decimal
/// point or a signed exponent, so that hex ids and UUID segments like `1e12` are left alone.
fn exponent_numbers(bytes: &[u8]) -> Vec<Edit> {
    let mut found = Vec::new();
    let word = |b: &u8| b.is_ascii_alphanumeric() || *b == b'_';
    for e in 1..bytes.len().saturating_sub(1) {
        if !matches!(bytes[e], b'e' | b'E') || !bytes[e - 1].is_ascii_digit() {
            continue;
        }
        let mut start = e;
        while start > 0 && bytes[start - 1].is_ascii_digit() {
            start -= 1;
        }
        let point = start > 1 && bytes[start - 1] == b'.' && bytes[start - 2].is_ascii_digit();
        if point {
            start -= 1;
            while start > 0 && bytes[start - 1].is_ascii_digit() {
                start -= 1;
            }
        }
        let signed = matches!(bytes[e + 1], b'+' | b'-');
        let mut end = e + 1 + usize::from(signed);
        let exponent_start = end;
        while end < bytes.len() && bytes[end].is_ascii_digit() {
            end += 1;
        }
        let alone = start.checked_sub(1).is_none_or(|b| !word(&bytes[b]))
            && bytes.get(end).is_none_or(|b| !word(b));
        if end == exponent_start || !(point || signed) || !alone {
            continue;
        }
        // Only ASCII bytes between start and end: the slice is UTF-8.
        let value = std::str::from_utf8(&bytes[start..end])
            .ok()
            .and_then(|s| s.parse::<f64>().ok());
        if let Some(value) = value.filter(|v| card_sized(*v)) {
            let digits = format!("{:.0}", value.abs().trunc()).len();
            found.push(Edit {
                start,
                end,
                with: Cow::Owned("*".repeat(digits)),
            });
        }
    }
    found
}
