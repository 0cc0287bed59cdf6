//! No card number survives masking, in any spelling: every spelling of the corpus through every masking path,
//! then generated card numbers of every network in generated spellings (property tests).

mod card_spellings;

use card_spellings::{
    DIGIT_ZEROS, Masked, SEPARATORS, Spelling, TRACK_EXPIRY_SERVICE, TRACK_NAME, TRACK_REMOVED,
    holds_pan, json_escape_all, masked_form, normalise, spellings, track1, track2,
};
use proptest::prelude::*;
use serde_json::{Value, json};
use tillmark::event::{contains_card_number, mask_card_numbers, mask_json, mask_text_payload};

/// Checks what masking made of `spelling` along `path`: no card left, and what remains is what PCI DSS allows.
fn assert_masked(path: &str, spelling: &Spelling, out: &str) {
    let what = format!(
        "{path}, {}: {:?} became {out:?}",
        spelling.name, spelling.text
    );
    assert!(!holds_pan(out, spelling.pan), "card survives: {what}");
    assert!(!contains_card_number(out), "still reads as a card: {what}");
    match spelling.masked {
        Masked::FirstSixLastFour => assert!(
            normalise(out).contains(&masked_form(spelling.pan)),
            "first 6 and last 4 expected: {what}"
        ),
        Masked::TrackRemoved => {
            assert!(out.contains(TRACK_REMOVED), "track marker expected: {what}");
            assert!(!out.contains(TRACK_NAME), "name survives: {what}");
            assert!(
                !normalise(out).contains(TRACK_EXPIRY_SERVICE),
                "expiry and service code survive: {what}"
            );
        }
        Masked::AllStars => assert!(
            out.contains(&"*".repeat(spelling.pan.len())),
            "every digit masked expected: {what}"
        ),
    }
}

#[test]
fn the_corpus_has_every_form_over_several_networks_and_lengths() {
    let all = spellings();
    assert!(all.len() >= 40, "{} spellings", all.len());
    let lengths: std::collections::BTreeSet<usize> = all.iter().map(|s| s.pan.len()).collect();
    assert_eq!(
        lengths.into_iter().collect::<Vec<_>>(),
        [13, 14, 15, 16, 19]
    );
    for form in [
        Masked::FirstSixLastFour,
        Masked::TrackRemoved,
        Masked::AllStars,
    ] {
        assert!(all.iter().any(|s| s.masked == form), "{form:?}");
    }
    assert!(all.iter().any(|s| s.json_escaped));
    assert!(all.iter().filter(|s| s.fits_a_topic_level()).count() >= 30);
}

#[test]
fn every_spelling_of_the_corpus_holds_its_card_before_masking() {
    for s in spellings() {
        if s.masked != Masked::AllStars {
            assert!(holds_pan(&s.text, s.pan), "{}: {:?}", s.name, s.text);
        }
        assert!(contains_card_number(&s.text), "{}: {:?}", s.name, s.text);
    }
}

#[test]
fn every_spelling_of_the_corpus_is_masked_as_text() {
    for s in spellings().iter().filter(|s| !s.json_escaped) {
        assert_masked("text", s, &mask_card_numbers(&s.text));
    }
}

#[test]
fn every_spelling_of_the_corpus_is_masked_in_a_payload_kept_as_text() {
    for s in spellings() {
        assert_masked("payload", &s, &mask_text_payload(&s.text));
        let broken = format!(r#"{{"reason": "{}", "lines": ["#, s.text);
        assert_masked("broken payload", &s, &mask_text_payload(&broken));
    }
}

#[test]
fn every_spelling_of_the_corpus_is_masked_in_a_json_string_and_key() {
    for s in spellings() {
        let mut value = json!({"lines": [s.text.clone()], "attributes": {s.text.clone(): true}});
        mask_json(&mut value);
        assert_masked(
            "json string",
            &s,
            value["lines"][0].as_str().expect("a string"),
        );
        let keys: Vec<&String> = value["attributes"]
            .as_object()
            .expect("an object")
            .keys()
            .collect();
        assert_masked("json key", &s, keys[0]);
        // The value as stored: serialized, with the string's own escaping.
        assert_masked("json text", &s, &value.to_string());
    }
}

#[test]
fn every_card_of_the_corpus_sent_as_a_json_number_becomes_a_masked_string() {
    for s in spellings() {
        let numbers = [Some(s.pan), s.json_number];
        for number in numbers.into_iter().flatten() {
            let mut value: Value = serde_json::from_str(number).expect("a JSON number");
            mask_json(&mut value);
            assert_eq!(
                value,
                Value::String(masked_form(s.pan)),
                "{}: {number}",
                s.name
            );
        }
    }
}

/// The first digits of each network's cards and the lengths it issues.
const NETWORKS: [(&[&str], &[usize]); 11] = [
    (&["4"], &[13, 16, 19]),
    (&["51", "52", "53", "54", "55"], &[16]),
    (&["2221", "2300", "2599", "2720"], &[16]),
    (&["34", "37"], &[15]),
    (&["6011", "65"], &[16, 19]),
    (&["3528", "3550", "3589"], &[16, 19]),
    (&["62"], &[16, 17, 18, 19]),
    (&["36"], &[14]),
    (&["6304", "6759"], &[13, 19]),
    (&["5018", "6220"], &[18]),
    (&["6011"], &[17]),
];

/// A Luhn-valid card number of one of the networks, in ASCII digits.
fn pan() -> impl Strategy<Value = String> {
    (
        0..NETWORKS.len(),
        any::<prop::sample::Index>(),
        any::<prop::sample::Index>(),
    )
        .prop_flat_map(|(network, prefix, length)| {
            let (prefixes, lengths) = NETWORKS[network];
            let prefix = prefix.get(prefixes).to_string();
            let length = *length.get(lengths);
            let body = length - prefix.len() - 1;
            (Just(prefix), prop::collection::vec(0u8..10, body))
        })
        .prop_map(|(prefix, body)| {
            let mut digits: Vec<u8> = prefix.bytes().map(|b| b - b'0').chain(body).collect();
            digits.push(check_digit(&digits));
            digits.into_iter().map(|d| char::from(b'0' + d)).collect()
        })
}

fn check_digit(digits: &[u8]) -> u8 {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 0 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    ((10 - sum % 10) % 10) as u8
}

/// `pan` spelled: each digit in a random script, random group splits, a random separator run in each gap.
fn spelled(pan: String) -> impl Strategy<Value = (String, String)> {
    let n = pan.len();
    (
        prop::collection::vec(prop::sample::select(DIGIT_ZEROS.as_slice()), n),
        prop::collection::vec(any::<bool>(), n),
        prop::collection::vec(
            prop::collection::vec(prop::sample::select(SEPARATORS.as_slice()), 1..=3),
            n,
        ),
    )
        .prop_map(move |(zeros, gaps, separators)| {
            let mut text = String::new();
            for (i, d) in pan.bytes().enumerate() {
                if i > 0 && gaps[i] {
                    text.push_str(&separators[i].concat());
                }
                text.push(
                    char::from_u32(u32::from(zeros[i]) + u32::from(d - b'0')).expect("a digit"),
                );
            }
            (pan.clone(), text)
        })
}

/// Text around a card: letters, digits, spaces, punctuation, Japanese. It never touches the card with a digit
/// (a digit glued to the card makes another, longer number) and holds none of the track characters.
fn surrounding() -> impl Strategy<Value = (String, String)> {
    (
        "(|[A-Za-z0-9 ¥,:*()#円税込合計カード\t-]{0,24}[A-Za-z ¥:#円])",
        "(|[A-Za-z ¥:#円][A-Za-z0-9 ¥,:*()#円税込合計カード\t-]{0,24})",
    )
}

/// A card number of any network in any spelling, inside surrounding text: (the card in ASCII, the text).
fn card_in_text() -> impl Strategy<Value = (String, String)> {
    (pan().prop_flat_map(spelled), surrounding())
        .prop_map(|((pan, card), (before, after))| (pan, format!("{before}{card}{after}")))
}

/// Checks a masked text holds no card: not `pan`, and nothing else that reads as a card; and that masking it
/// again changes nothing.
fn assert_clean(out: &str, pan: &str) -> Result<(), TestCaseError> {
    prop_assert!(!holds_pan(out, pan), "card survives in {out:?}");
    prop_assert!(
        !contains_card_number(out),
        "a card number remains in {out:?}"
    );
    prop_assert_eq!(mask_text_payload(out), out);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn a_card_in_any_spelling_inside_any_text_is_masked((pan, text) in card_in_text()) {
        let out = mask_card_numbers(&text);
        assert_clean(&out, &pan)?;
        prop_assert_eq!(mask_card_numbers(&out), out.clone());
        assert_clean(&mask_text_payload(&text), &pan)?;
    }

    #[test]
    fn a_card_in_any_spelling_inside_a_json_string_is_masked((pan, text) in card_in_text()) {
        let mut value = json!({"reason": text.clone(), "attributes": {text.clone(): text}});
        let raw = value.to_string();
        assert_clean(&mask_text_payload(&raw), &pan)?;
        mask_json(&mut value);
        assert_clean(&value.to_string(), &pan)?;
    }

    #[test]
    fn a_card_sent_as_a_json_number_becomes_a_masked_string(pan in pan()) {
        let raw = format!(r#"{{"pan": {pan}, "amount": 1280}}"#);
        assert_clean(&mask_text_payload(&raw), &pan)?;
        let mut value: Value = serde_json::from_str(&raw).expect("JSON");
        mask_json(&mut value);
        prop_assert_eq!(&value["pan"], &Value::String(masked_form(&pan)));
        prop_assert_eq!(&value["amount"], &json!(1280));
    }

    #[test]
    fn a_card_with_json_escaped_digits_in_a_broken_payload_is_masked(
        (pan, text) in card_in_text(),
        escape in prop::collection::vec(any::<bool>(), 64),
    ) {
        // Some characters escaped, some not, as a hand-made or half-escaped body has them.
        let body: String = text
            .chars()
            .zip(escape.iter().cycle())
            .map(|(c, &e)| if e { json_escape_all(&c.to_string()) } else { c.to_string() })
            .collect();
        let payload = format!(r#"{{"reason": "{body}", "#);
        assert_clean(&mask_text_payload(&payload), &pan)?;
    }

    #[test]
    fn track_data_with_a_card_in_any_spelling_is_removed_whole(
        (pan, card) in pan().prop_flat_map(spelled),
        (before, after) in surrounding(),
        track_one in any::<bool>(),
        sentinels in any::<bool>(),
    ) {
        let track = if track_one { track1(&card, sentinels) } else { track2(&card, sentinels) };
        let text = format!("{before} {track} {after}");
        for out in [mask_card_numbers(&text), mask_text_payload(&text)] {
            assert_clean(&out, &pan)?;
            prop_assert!(out.contains(TRACK_REMOVED), "{out:?}");
            prop_assert!(!out.contains('^') && !out.contains('='), "{out:?}");
            prop_assert!(!out.contains(TRACK_NAME), "{out:?}");
        }
    }

    #[test]
    fn masking_any_text_never_panics_and_twice_is_once(text in any::<String>()) {
        let once = mask_card_numbers(&text);
        prop_assert_eq!(mask_card_numbers(&once), once.clone());
        let once = mask_text_payload(&text);
        prop_assert_eq!(mask_text_payload(&once), once.clone());
        prop_assert!(!contains_card_number(&once));
    }

    #[test]
    fn masking_card_shaped_text_leaves_nothing_that_reads_as_a_card(
        text in "[0-9０-９٠-٩ \\-./\t　^=D%;?eE+*B]{0,160}",
    ) {
        for once in [mask_card_numbers(&text), mask_text_payload(&text)] {
            prop_assert!(!contains_card_number(&once), "{:?} became {:?}", text, once);
            prop_assert_eq!(mask_card_numbers(&once), once.clone());
        }
    }

    #[test]
    fn masking_escape_heavy_text_never_panics_and_twice_is_once(text in r"([\\u0-9a-fA-FD=^%;?. \-]|\\u[0-9a-fA-F]{4}){0,80}") {
        let once = mask_text_payload(&text);
        prop_assert_eq!(mask_text_payload(&once), once.clone());
        prop_assert!(!contains_card_number(&once));
    }

    #[test]
    fn text_without_card_numbers_is_left_unchanged(
        time in (2000u32..2100, 1u32..13, 1u32..29, 0u32..24, 0u32..60, 0u32..60, 0u32..1000),
        yen in 0u32..10_000_000,
        transaction in 0u32..1_000_000,
        barcode in 0u64..1_000_000_000_000,
    ) {
        let (y, mo, d, h, mi, s, ms) = time;
        let texts = [
            format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}+09:00"),
            format!("{y}/{mo:02}/{d:02} {h:02}:{mi:02}"),
            format!("合計 ¥{} 税込", group_thousands(yen)),
            format!("T-{transaction:06} ONIGIRI SALMON      180"),
            format!("REF {barcode:012}"),
        ];
        for text in texts {
            prop_assert_eq!(mask_card_numbers(&text), text.as_str());
            prop_assert!(!contains_card_number(&text), "{text:?}");
        }
    }
}

fn group_thousands(n: u32) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
