//! Contract v1.1 as a register (or an attacker who can reach the broker) meets it: the topic names the
//! register, signatures, the window around arrival, bounded amounts, identifiers that held a card number, and
//! register text that tries to write log lines of its own.

use serde_json::{Value, json};

use super::*;
use crate::secret::Secret;

const TOPIC: &str = "pos/shibuya-01/r2/events";
/// 2026-11-21T09:42:08Z: a second after the example's `at`.
const ARRIVED_MS: i64 = 1_795_254_128_310;
const KEY: &str = "4f9c2a7e1b3d5f60718293a4b5c6d7e8";
const ID_KEY: &[u8] = b"installation-key-for-tests";

fn event() -> Value {
    json!({
        "id": "7c0e6a9e-3f7b-4f7e-9a55-0d2c1b7a4e10", "type": "void", "at": "2026-11-21T18:42:07.310+09:00",
        "store": "shibuya-01", "register": "r2", "amount": 1280, "currency": "JPY",
    })
}

fn signing(mode: SigningMode, register: Option<&str>) -> Signing {
    Signing {
        mode,
        keys: vec![RegisterKey {
            scope: RegisterScope {
                store: "shibuya-01".into(),
                register: register.map(str::to_string),
            },
            key: Secret::new(KEY),
        }],
    }
}

fn read_on(topic: &str, payload: &[u8], signing: &Signing) -> Parsed {
    read(
        payload,
        &Arrival {
            topic,
            received_ms: ARRIVED_MS,
            max_age_ms: 400 * 86_400_000,
            max_ahead_ms: 86_400_000,
            signing,
            id_key: ID_KEY,
        },
    )
}

fn read_plain(topic: &str, message: &Value) -> Parsed {
    read_on(topic, message.to_string().as_bytes(), &Signing::default())
}

fn reason(parsed: &Parsed) -> String {
    match &parsed.result {
        Ok(e) => panic!("accepted: {e:?}"),
        Err(r) => r.reason(),
    }
}

/// An envelope around `event_text`, signed with `key`: what a register holding that key publishes.
fn sealed(event_text: &str, key: &str) -> Vec<u8> {
    let sig = sign(event_text, &Secret::new(key));
    format!(r#"{{"event": {event_text}, "sig": "{sig}"}}"#).into_bytes()
}

#[test]
fn an_event_without_store_and_register_takes_them_from_its_topic() {
    let mut message = event();
    message.as_object_mut().unwrap().remove("store");
    message.as_object_mut().unwrap().remove("register");
    let e = read_plain("pos/osaka-03/r7/events", &message)
        .result
        .expect("accepted");
    assert_eq!((e.store.as_str(), e.register.as_str()), ("osaka-03", "r7"));
}

#[test]
fn a_body_naming_another_store_than_its_topic_is_refused_with_both_names() {
    let why = reason(&read_plain("pos/osaka-03/r2/events", &event()));
    assert!(
        why.contains("store: \"shibuya-01\" does not match the topic's store \"osaka-03\""),
        "{why}"
    );
    let why = reason(&read_plain("pos/shibuya-01/r9/events", &event()));
    assert!(
        why.contains("register: \"r2\" does not match the topic's register \"r9\""),
        "{why}"
    );
}

#[test]
fn a_topic_without_the_contract_shape_leaves_the_identity_to_the_body() {
    let e = read_plain("legacy/till-feed", &event())
        .result
        .expect("accepted");
    assert_eq!(e.store, "shibuya-01");
    let mut message = event();
    message.as_object_mut().unwrap().remove("store");
    assert!(reason(&read_plain("legacy/till-feed", &message)).contains("store: is required"));
}

#[test]
fn a_card_number_in_a_topic_level_makes_a_dead_letter_and_is_not_kept() {
    let parsed = read_plain("pos/shibuya-01/4000000760000002/events", &event());
    assert!(reason(&parsed).contains("topic"), "{}", reason(&parsed));
    assert!(!parsed.raw.contains("4000000760000002"));
}

#[test]
fn years_0000_and_9999_are_refused_as_register_clock_errors() {
    for at in ["0000-01-01T00:00:00Z", "9999-12-31T23:59:59.999+09:00"] {
        let why = reason(&read_plain(
            TOPIC,
            &json!({"id": "a", "type": "void", "at": at}),
        ));
        assert!(
            why.contains("at: ") && why.contains("check the register's clock"),
            "{why}"
        );
    }
}

#[test]
fn an_event_queued_for_a_year_is_kept_and_one_a_day_ahead_is_not() {
    let year_ago = json!({"id": "a", "type": "void", "at": "2025-11-25T09:42:08.310Z"});
    assert!(read_plain(TOPIC, &year_ago).result.is_ok());
    let ahead = json!({"id": "a", "type": "void", "at": "2026-11-22T09:42:09Z"});
    assert!(reason(&read_plain(TOPIC, &ahead)).contains("after it arrived"));
}

#[test]
fn amounts_beyond_a_trillion_minor_units_are_refused_either_way() {
    let at_limit =
        json!({"id": "a", "type": "refund", "at": "2026-11-21T09:42:07Z", "amount": MAX_AMOUNT});
    assert!(read_plain(TOPIC, &at_limit).result.is_ok());
    for amount in [MAX_AMOUNT + 1, -MAX_AMOUNT - 1, i64::MIN, i64::MAX] {
        let message =
            json!({"id": "a", "type": "refund", "at": "2026-11-21T09:42:07Z", "amount": amount});
        assert!(
            reason(&read_plain(TOPIC, &message)).contains("amount: "),
            "{amount}"
        );
    }
}

#[test]
fn two_ids_that_mask_alike_stay_two_ids_and_keep_no_card_number() {
    let ids = ["2026120000020018", "2026120000100018"];
    let read_id = |id: &str| {
        let message =
            json!({"id": id, "type": "refund", "at": "2026-11-21T09:42:07Z", "transaction": id});
        read_plain(TOPIC, &message).result.expect("accepted")
    };
    let (a, b) = (read_id(ids[0]), read_id(ids[1]));
    assert_ne!(a.id, b.id);
    assert_ne!(a.transaction, b.transaction);
    for e in [&a, &b] {
        assert!(e.id.starts_with("202612******0018~"), "{}", e.id);
        assert!(!e.id.contains(ids[0]) && !e.id.contains(ids[1]));
    }
    // The same id always reads the same, so a redelivery is still a duplicate.
    assert_eq!(read_id(ids[0]).id, a.id);
}

#[test]
fn a_signed_event_is_verified_over_the_exact_bytes_it_came_with() {
    // Spacing and key order as a register's serialiser left them: re-serialising would break the signature.
    let text =
        r#"{ "type":"void","id":"s-1",  "at":"2026-11-21T18:42:07.310+09:00", "amount": 1280 }"#;
    let parsed = read_on(
        TOPIC,
        &sealed(text, KEY),
        &signing(SigningMode::Required, Some("r2")),
    );
    assert_eq!(parsed.signature, Signature::Verified);
    let e = parsed.result.expect("accepted");
    assert_eq!((e.id.as_str(), e.amount), ("s-1", Some(1280)));
}

#[test]
fn when_signatures_are_required_an_unsigned_event_is_refused() {
    let parsed = read_on(
        TOPIC,
        event().to_string().as_bytes(),
        &signing(SigningMode::Required, Some("r2")),
    );
    assert!(
        reason(&parsed).starts_with("unsigned"),
        "{}",
        reason(&parsed)
    );
}

#[test]
fn an_altered_event_or_a_wrong_key_is_a_signature_mismatch() {
    let text = event().to_string();
    let mut tampered = String::from_utf8(sealed(&text, KEY)).unwrap();
    tampered = tampered.replace("1280", "9280");
    let required = signing(SigningMode::Required, Some("r2"));
    assert_eq!(
        reason(&read_on(TOPIC, tampered.as_bytes(), &required)),
        "signature mismatch"
    );
    let wrong = sealed(&text, "another-key-of-32-characters-long");
    assert_eq!(
        reason(&read_on(TOPIC, &wrong, &required)),
        "signature mismatch"
    );
}

#[test]
fn a_key_for_one_register_does_not_sign_for_its_neighbour() {
    let mut other = event();
    other["register"] = json!("r3");
    let parsed = read_on(
        "pos/shibuya-01/r3/events",
        &sealed(&other.to_string(), KEY),
        &signing(SigningMode::Required, Some("r2")),
    );
    assert!(
        reason(&parsed).contains("no [[signing.keys]] entry for shibuya-01/r3"),
        "{}",
        reason(&parsed)
    );
}

#[test]
fn a_store_wide_key_signs_for_every_register_of_that_store_only() {
    let store_wide = signing(SigningMode::Required, None);
    let mut r3 = event();
    r3["register"] = json!("r3");
    let parsed = read_on(
        "pos/shibuya-01/r3/events",
        &sealed(&r3.to_string(), KEY),
        &store_wide,
    );
    assert_eq!(parsed.signature, Signature::Verified);
    let mut osaka = event();
    osaka["store"] = json!("osaka-03");
    let parsed = read_on(
        "pos/osaka-03/r2/events",
        &sealed(&osaka.to_string(), KEY),
        &store_wide,
    );
    assert!(reason(&parsed).contains("no [[signing.keys]] entry for osaka-03/r2"));
}

#[test]
fn the_signature_is_checked_against_the_topics_register_not_the_bodys() {
    // A holder of r2's key cannot write r5's events by publishing to r5's topic with a body naming r2.
    let parsed = read_on(
        "pos/shibuya-01/r5/events",
        &sealed(&event().to_string(), KEY),
        &signing(SigningMode::Required, Some("r2")),
    );
    assert!(
        reason(&parsed).contains("shibuya-01/r5"),
        "{}",
        reason(&parsed)
    );
}

#[test]
fn optional_signing_marks_unsigned_events_and_still_refuses_bad_signatures() {
    let optional = signing(SigningMode::Optional, Some("r2"));
    let parsed = read_on(TOPIC, event().to_string().as_bytes(), &optional);
    assert_eq!(parsed.signature, Signature::Unsigned);
    assert!(parsed.result.is_ok());
    let bad = sealed(&event().to_string(), "another-key-of-32-characters-long");
    assert_eq!(
        reason(&read_on(TOPIC, &bad, &optional)),
        "signature mismatch"
    );
}

#[test]
fn with_signing_off_an_envelope_is_unwrapped_and_nothing_is_checked() {
    let parsed = read_on(
        TOPIC,
        &sealed(&event().to_string(), "whatever-key-the-register-has"),
        &Signing::default(),
    );
    assert_eq!(parsed.signature, Signature::Unchecked);
    assert_eq!(parsed.result.expect("accepted").amount, Some(1280));
}

#[test]
fn a_broken_envelope_says_what_an_envelope_must_be() {
    let parsed = read_on(
        TOPIC,
        br#"{"event": [1], "sig": "hmac-sha256=00"}"#,
        &signing(SigningMode::Required, Some("r2")),
    );
    assert!(
        reason(&parsed).contains("must be a JSON object"),
        "{}",
        reason(&parsed)
    );
}

#[test]
fn register_text_cannot_write_a_line_or_a_colour_into_the_log() {
    let forged = "void\n2026-12-01T00:00:00Z INFO tillmark: Balanced.\u{1b}[2J";
    let why = reason(&read_plain(
        TOPIC,
        &json!({"id": "a", "type": forged, "at": "2026-11-21T09:42:07Z\r\nforged"}),
    ));
    assert!(
        !why.contains('\n') && !why.contains('\r') && !why.contains('\u{1b}'),
        "{why}"
    );
    assert!(why.contains("void\\u{a}2026-12-01"), "{why}");
    assert!(why.contains("07Z\\u{d}\\u{a}forged"), "{why}");
}

#[test]
fn the_content_digest_ignores_key_order_and_notices_any_changed_field() {
    let a = parse(br#"{"id":"a","type":"void","at":"2026-11-21T09:42:07Z","store":"s","register":"r","attributes":{"x":1,"y":2}}"#);
    let b = parse(br#"{"attributes":{"y":2,"x":1},"register":"r","store":"s","at":"2026-11-21T09:42:07Z","type":"void","id":"a"}"#);
    let c = parse(br#"{"id":"a","type":"void","at":"2026-11-21T09:42:07Z","store":"s","register":"r","attributes":{"x":1,"y":3}}"#);
    let digest = |p: Parsed| content_digest(&p.result.expect("accepted"));
    let (a, b, c) = (digest(a), digest(b), digest(c));
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[test]
fn sent_at_is_read_with_its_offset_when_present_and_absent_when_missing_or_null() {
    let mut e = event();
    e["sent_at"] = json!("2026-11-21T18:42:07.950+09:00");
    let event_read = read_plain(TOPIC, &e).result.expect("valid");
    assert_eq!(event_read.sent_at_ms(), Some(ARRIVED_MS - 360));
    assert_eq!(
        event_read.sent_at.unwrap().offset().local_minus_utc(),
        9 * 3600
    );
    for missing in [event(), {
        let mut e = event();
        e["sent_at"] = Value::Null;
        e
    }] {
        assert_eq!(
            read_plain(TOPIC, &missing).result.expect("valid").sent_at,
            None
        );
    }
}

#[test]
fn a_bad_sent_at_is_a_contract_error_named_like_a_bad_at() {
    for (sent_at, rule) in [
        (
            json!("2026-11-21T18:42:07"),
            "sent_at: \"2026-11-21T18:42:07\" has no UTC offset",
        ),
        (
            json!("yesterday"),
            "sent_at: \"yesterday\" is not an RFC 3339 time",
        ),
        (
            json!(1_795_254_128),
            "sent_at: must be a string, found a number",
        ),
        (
            json!("2026-11-23T09:42:09Z"),
            "sent_at: 2026-11-23T09:42:09+00:00 is more than 1 day after it arrived",
        ),
    ] {
        let mut e = event();
        e["sent_at"] = sent_at;
        let why = reason(&read_plain(TOPIC, &e));
        assert!(why.starts_with(rule), "{why}");
    }
}

#[test]
fn a_resend_with_a_new_sent_at_is_the_same_event_not_an_id_used_again() {
    let mut first = event();
    first["sent_at"] = json!("2026-11-21T18:42:07.400+09:00");
    let mut again = event();
    again["sent_at"] = json!("2026-11-21T18:47:00.000+09:00");
    let digest = |v: &Value| content_digest(&read_plain(TOPIC, v).result.expect("valid"));
    assert_eq!(digest(&first), digest(&again));
    assert_eq!(digest(&first), digest(&event()));
}
