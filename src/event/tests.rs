//! The event contract (EVENTS.md, version 1) as a bridge author meets it: what is accepted, what comes back for
//! each kind of bad message, and that no card number survives into what tillmark keeps.

use serde_json::{Value, json};

use super::*;

/// The example message of EVENTS.md, verbatim.
const EXAMPLE: &str = r#"{
  "id": "7c0e6a9e-3f7b-4f7e-9a55-0d2c1b7a4e10",
  "type": "void",
  "at": "2026-11-21T18:42:07.310+09:00",
  "store": "shibuya-01",
  "register": "r2",
  "cashier": "c117",
  "transaction": "T-000981",
  "amount": 1280,
  "currency": "JPY",
  "reason": "customer changed mind",
  "lines": ["ONIGIRI SALMON      180", "GREEN TEA 500ML     150", "*** VOID ***"]
}"#;

/// A Luhn-valid test card number (Visa's) and how it must look once masked.
const CARD: &str = "4111111111111111";
const CARD_MASKED: &str = "411111******1111";

fn example() -> Value {
    serde_json::from_str(EXAMPLE).expect("the EVENTS.md example is JSON")
}

/// The example with one field replaced.
fn with(key: &str, value: Value) -> Value {
    let mut e = example();
    e[key] = value;
    e
}

/// The example with one field removed.
fn without(key: &str) -> Value {
    let mut e = example();
    e.as_object_mut().expect("an object").remove(key);
    e
}

fn accept(message: &Value) -> Event {
    let parsed = parse(message.to_string().as_bytes());
    match parsed.result {
        Ok(event) => event,
        Err(rejected) => panic!("rejected: {}", rejected.reason()),
    }
}

fn reject_bytes(payload: &[u8]) -> Rejected {
    match parse(payload).result {
        Ok(event) => panic!("accepted: {event:?}"),
        Err(rejected) => rejected,
    }
}

fn reject(message: &Value) -> Rejected {
    reject_bytes(message.to_string().as_bytes())
}

/// Asserts the rejection has exactly one problem, for `field`, whose rule contains `rule`.
fn assert_one_problem(rejected: &Rejected, field: Option<&str>, rule: &str) {
    assert_eq!(
        rejected.problems.len(),
        1,
        "expected one problem, got: {}",
        rejected.reason()
    );
    let problem = &rejected.problems[0];
    assert_eq!(problem.field.as_deref(), field, "{}", rejected.reason());
    assert!(
        problem.rule.contains(rule),
        "rule {:?} does not contain {rule:?}",
        problem.rule
    );
}

// ---- What is accepted ----

#[test]
fn the_events_md_example_parses_into_an_event_with_every_field() {
    let event = accept(&example());
    assert_eq!(event.id, "7c0e6a9e-3f7b-4f7e-9a55-0d2c1b7a4e10");
    assert_eq!(event.kind, EventType::Void);
    assert_eq!(event.at.to_rfc3339(), "2026-11-21T18:42:07.310+09:00");
    assert_eq!(event.at.offset().local_minus_utc(), 9 * 3600);
    assert_eq!(event.store, "shibuya-01");
    assert_eq!(event.register, "r2");
    assert_eq!(event.cashier.as_deref(), Some("c117"));
    assert_eq!(event.transaction.as_deref(), Some("T-000981"));
    assert_eq!(event.amount, Some(1280));
    assert_eq!(event.currency.as_deref(), Some("JPY"));
    assert_eq!(event.reason.as_deref(), Some("customer changed mind"));
    assert_eq!(
        event.lines,
        [
            "ONIGIRI SALMON      180",
            "GREEN TEA 500ML     150",
            "*** VOID ***"
        ]
    );
    assert!(event.attributes.is_empty());
}

#[test]
fn the_example_payload_is_kept_as_raw_text_unchanged() {
    let parsed = parse(EXAMPLE.as_bytes());
    assert!(parsed.result.is_ok());
    assert_eq!(parsed.raw, EXAMPLE);
}

#[test]
fn the_example_time_is_1795254127310_milliseconds_since_the_epoch() {
    // 2026-11-21T18:42:07.310+09:00 is 09:42:07.310 UTC; checked independently with
    // `date -u -d 2026-11-21T09:42:07Z +%s` = 1795254127.
    let event = accept(&example());
    assert_eq!(event.at_ms(), 1_795_254_127_310);
}

#[test]
fn a_utc_time_written_with_z_is_the_same_instant_as_its_offset_form() {
    let event = accept(&with("at", json!("2026-11-21T09:42:07.310Z")));
    assert_eq!(event.at_ms(), 1_795_254_127_310);
    assert_eq!(event.at.offset().local_minus_utc(), 0);
}

#[test]
fn a_negative_offset_is_honoured() {
    let event = accept(&with("at", json!("2026-11-21T04:42:07.310-05:00")));
    assert_eq!(event.at_ms(), 1_795_254_127_310);
}

#[test]
fn a_time_without_fraction_is_a_whole_second() {
    let event = accept(&with("at", json!("2026-11-21T18:42:07+09:00")));
    assert_eq!(event.at_ms(), 1_795_254_127_000);
}

#[test]
fn sub_millisecond_precision_is_cut_to_the_millisecond_not_rounded() {
    let micro = accept(&with("at", json!("2026-11-21T18:42:07.310999+09:00")));
    assert_eq!(micro.at_ms(), 1_795_254_127_310);
    let nano = accept(&with("at", json!("2026-11-21T09:42:07.310999999Z")));
    assert_eq!(nano.at_ms(), 1_795_254_127_310);
}

#[test]
fn optional_fields_given_as_null_are_absent() {
    let mut message = example();
    for key in [
        "cashier",
        "transaction",
        "amount",
        "currency",
        "reason",
        "lines",
        "attributes",
    ] {
        message[key] = Value::Null;
    }
    let event = accept(&message);
    assert_eq!(event.cashier, None);
    assert_eq!(event.transaction, None);
    assert_eq!(event.amount, None);
    assert_eq!(event.currency, None);
    assert_eq!(event.reason, None);
    assert!(event.lines.is_empty());
    assert!(event.attributes.is_empty());
}

#[test]
fn only_the_five_required_fields_make_a_valid_event() {
    let event = accept(&json!({
        "id": "e-1",
        "type": "no_sale",
        "at": "2026-11-21T18:42:07.310+09:00",
        "store": "shibuya-01",
        "register": "r1"
    }));
    assert_eq!(event.kind, EventType::NoSale);
    assert_eq!(event.cashier, None);
    assert_eq!(event.amount, None);
    assert!(event.lines.is_empty());
}

#[test]
fn unknown_top_level_fields_are_accepted_and_kept_in_the_raw_payload() {
    let message = with("loyalty_tier", json!("gold"));
    let parsed = parse(message.to_string().as_bytes());
    let event = parsed.result.expect("accepted");
    assert_eq!(event.id, "7c0e6a9e-3f7b-4f7e-9a55-0d2c1b7a4e10");
    assert!(
        parsed.raw.contains(r#""loyalty_tier":"gold""#),
        "{}",
        parsed.raw
    );
}

#[test]
fn attributes_of_strings_numbers_and_booleans_are_kept() {
    let event = accept(&with(
        "attributes",
        json!({"manager_override": "m004", "tender": "cash", "till_float": 30000, "training": false}),
    ));
    assert_eq!(event.attributes["manager_override"], "m004");
    assert_eq!(event.attributes["till_float"], 30000);
    assert_eq!(event.attributes["training"], false);
}

#[test]
fn a_negative_amount_is_accepted() {
    let event = accept(&with("amount", json!(-1280)));
    assert_eq!(event.amount, Some(-1280));
}

#[test]
fn japanese_text_is_counted_in_characters_not_bytes() {
    // 500 characters of three UTF-8 bytes each: 1500 bytes, still within the 500-character limit.
    let line = "売".repeat(500);
    let event = accept(&with("lines", json!([line])));
    assert_eq!(event.lines[0].chars().count(), 500);
    let reason = "返品".repeat(250);
    assert_eq!(
        accept(&with("reason", json!(reason))).reason.as_deref(),
        Some(reason.as_str())
    );
    let cashier = "山".repeat(128);
    assert!(accept(&with("cashier", json!(cashier))).cashier.is_some());
}

#[test]
fn values_exactly_at_each_limit_are_accepted() {
    let mut message = example();
    message["id"] = json!("i".repeat(128));
    message["store"] = json!("s".repeat(64));
    message["register"] = json!("R.2_a-b");
    message["cashier"] = json!("c".repeat(128));
    message["transaction"] = json!("t".repeat(128));
    message["reason"] = json!("r".repeat(500));
    // 200 lines, the first of 500 characters (all 200 at 500 would pass the 64 KiB payload limit).
    let mut lines = vec!["x".to_string(); 200];
    lines[0] = "x".repeat(500);
    message["lines"] = json!(lines);
    let event = accept(&message);
    assert_eq!(event.lines.len(), 200);
    assert_eq!(event.lines[0].len(), 500);
}

// ---- What is rejected, and the reason a bridge author reads ----

#[test]
fn a_payload_that_is_not_json_is_rejected_as_such() {
    let rejected = reject_bytes(b"{\"id\": \"e-1\", \"type\": ");
    assert_one_problem(&rejected, None, "payload is not valid JSON");
    let rejected = reject_bytes(b"void at 18:42");
    assert!(
        rejected.reason().starts_with("payload is not valid JSON: "),
        "{}",
        rejected.reason()
    );
}

#[test]
fn an_empty_payload_is_rejected_as_not_json() {
    assert_one_problem(&reject_bytes(b""), None, "payload is not valid JSON");
}

#[test]
fn a_json_array_or_string_is_rejected_because_the_payload_must_be_an_object() {
    assert_eq!(
        reject_bytes(b"[1,2,3]").reason(),
        "payload must be a JSON object, found an array"
    );
    assert_eq!(
        reject(&json!([example()])).reason(),
        "payload must be a JSON object, found an array"
    );
    assert_eq!(
        reject_bytes(br#""void""#).reason(),
        "payload must be a JSON object, found a string"
    );
    assert_eq!(
        reject_bytes(b"null").reason(),
        "payload must be a JSON object, found null"
    );
}

#[test]
fn each_missing_required_field_is_named_as_required() {
    for field in ["id", "type", "at", "store", "register"] {
        let rejected = reject(&without(field));
        assert_eq!(rejected.reason(), format!("{field}: is required"));
    }
}

#[test]
fn a_required_field_given_as_null_is_missing() {
    assert_eq!(reject(&with("id", Value::Null)).reason(), "id: is required");
}

#[test]
fn an_empty_id_is_rejected() {
    assert_eq!(
        reject(&with("id", json!(""))).reason(),
        "id: must not be empty"
    );
}

#[test]
fn an_amount_sent_as_a_string_is_rejected_as_not_an_integer() {
    assert_eq!(
        reject(&with("amount", json!("1280"))).reason(),
        "amount: must be an integer, found a string"
    );
}

#[test]
fn an_amount_with_a_fraction_is_rejected_and_the_minor_unit_is_explained() {
    assert_eq!(
        reject(&with("amount", json!(12.5))).reason(),
        "amount: must be an integer in the currency's minor unit (yen, cents), found 12.5"
    );
}

#[test]
fn lines_that_are_not_an_array_are_rejected() {
    assert_eq!(
        reject(&with("lines", json!("ONIGIRI SALMON 180"))).reason(),
        "lines: must be an array of strings, found a string"
    );
}

#[test]
fn a_line_that_is_a_number_is_rejected_with_its_index() {
    assert_eq!(
        reject(&with("lines", json!(["ONIGIRI SALMON 180", 150]))).reason(),
        "lines[1]: must be a string, found a number"
    );
}

#[test]
fn an_attribute_whose_value_is_an_object_is_rejected_with_its_key() {
    assert_eq!(
        reject(&with(
            "attributes",
            json!({"tender": "card", "override": {"by": "m004"}})
        ))
        .reason(),
        "attributes.override: must be a string, number or boolean, found an object"
    );
}

#[test]
fn attributes_that_are_not_an_object_are_rejected() {
    assert_eq!(
        reject(&with("attributes", json!(["tender", "cash"]))).reason(),
        "attributes: must be an object, found an array"
    );
}

#[test]
fn a_cashier_sent_as_a_number_is_rejected() {
    assert_eq!(
        reject(&with("cashier", json!(117))).reason(),
        "cashier: must be a string, found a number"
    );
}

#[test]
fn a_type_that_is_not_a_string_is_rejected() {
    assert_eq!(
        reject(&with("type", json!(3))).reason(),
        "type: must be a string, found a number"
    );
}

#[test]
fn an_id_of_129_characters_is_too_long() {
    assert_eq!(
        reject(&with("id", json!("a".repeat(129)))).reason(),
        "id: must be at most 128 characters, found 129"
    );
}

#[test]
fn a_cashier_of_129_characters_is_too_long() {
    assert_eq!(
        reject(&with("cashier", json!("c".repeat(129)))).reason(),
        "cashier: must be at most 128 characters, found 129"
    );
}

#[test]
fn a_transaction_of_129_characters_is_too_long() {
    assert_eq!(
        reject(&with("transaction", json!("t".repeat(129)))).reason(),
        "transaction: must be at most 128 characters, found 129"
    );
}

#[test]
fn a_reason_of_501_characters_is_too_long() {
    assert_eq!(
        reject(&with("reason", json!("r".repeat(501)))).reason(),
        "reason: must be at most 500 characters, found 501"
    );
}

#[test]
fn a_reason_of_501_japanese_characters_is_too_long() {
    assert_eq!(
        reject(&with("reason", json!("返".repeat(501)))).reason(),
        "reason: must be at most 500 characters, found 501"
    );
}

#[test]
fn more_than_200_lines_are_rejected() {
    let rejected = reject(&with("lines", json!(vec!["ONIGIRI 180"; 201])));
    assert_eq!(
        rejected.reason(),
        "lines: must have at most 200 lines, found 201"
    );
}

#[test]
fn a_line_of_501_characters_is_rejected_with_its_index() {
    let rejected = reject(&with("lines", json!(["ok", "x".repeat(501)])));
    assert_eq!(
        rejected.reason(),
        "lines[1]: must be at most 500 characters, found 501"
    );
    let rejected = reject(&with("lines", json!(["売".repeat(501)])));
    assert_eq!(
        rejected.reason(),
        "lines[0]: must be at most 500 characters, found 501"
    );
}

#[test]
fn an_unknown_type_is_rejected_and_the_known_types_are_listed() {
    let rejected = reject(&with("type", json!("voided")));
    assert_one_problem(&rejected, Some("type"), "unknown type \"voided\"");
    assert!(
        rejected.reason().ends_with(
            "expected one of void, item_void, correction, refund, no_sale, drawer_open, drawer_close, \
             discount, sale, paid_in, paid_out, sign_on, sign_off"
        ),
        "{}",
        rejected.reason()
    );
}

#[test]
fn type_names_are_case_sensitive() {
    assert_one_problem(
        &reject(&with("type", json!("VOID"))),
        Some("type"),
        "unknown type \"VOID\"",
    );
}

#[test]
fn a_local_time_without_offset_is_rejected_naming_the_at_field() {
    let rejected = reject(&with("at", json!("2026-11-21T18:42:07.310")));
    assert_eq!(
        rejected.reason(),
        "at: \"2026-11-21T18:42:07.310\" has no UTC offset: add one, e.g. \
         \"2026-11-21T18:42:07.310+09:00\" or \"2026-11-21T18:42:07.310Z\""
    );
}

#[test]
fn a_local_time_with_a_space_and_no_fraction_is_also_named_as_missing_its_offset() {
    for local in ["2026-11-21T18:42:07", "2026-11-21 18:42:07"] {
        let rejected = reject(&with("at", json!(local)));
        assert_one_problem(&rejected, Some("at"), "has no UTC offset");
    }
}

#[test]
fn a_garbage_time_is_rejected_with_an_example_of_rfc_3339() {
    for garbage in [
        "yesterday",
        "1795254127310",
        "21/11/2026 18:42",
        "2026-13-21T18:42:07+09:00",
    ] {
        let rejected = reject(&with("at", json!(garbage)));
        assert_eq!(
            rejected.reason(),
            format!(
                "at: \"{garbage}\" is not an RFC 3339 time such as 2026-11-21T18:42:07.310+09:00"
            )
        );
    }
}

#[test]
fn a_time_given_as_a_number_is_rejected_as_not_a_string() {
    assert_eq!(
        reject(&with("at", json!(1_795_254_127_310_i64))).reason(),
        "at: must be a string, found a number"
    );
}

#[test]
fn a_store_with_a_space_or_a_slash_is_rejected_with_the_allowed_alphabet() {
    for store in ["shibuya 01", "shibuya/01"] {
        assert_eq!(
            reject(&with("store", json!(store))).reason(),
            "store: must use only A-Z a-z 0-9 . _ - (1 to 64 characters)"
        );
    }
}

#[test]
fn a_register_with_characters_outside_the_alphabet_is_rejected() {
    assert_eq!(
        reject(&with("register", json!("レジ1"))).reason(),
        "register: must use only A-Z a-z 0-9 . _ - (1 to 64 characters)"
    );
}

#[test]
fn a_store_id_of_65_characters_is_too_long() {
    assert_one_problem(
        &reject(&with("store", json!("s".repeat(65)))),
        Some("store"),
        "must be at most 64 characters, found 65",
    );
}

#[test]
fn a_lowercase_currency_is_rejected_with_an_iso_4217_example() {
    assert_eq!(
        reject(&with("currency", json!("yen"))).reason(),
        "currency: must be an ISO 4217 code such as JPY, found \"yen\""
    );
}

#[test]
fn a_currency_longer_than_three_letters_is_rejected() {
    assert_one_problem(
        &reject(&with("currency", json!("JPYEN"))),
        Some("currency"),
        "at most 3 characters",
    );
}

#[test]
fn a_payload_over_64_kib_is_rejected_with_its_size() {
    // Valid JSON, but too big: 200 lines of 400 characters is about 80 KiB.
    let message = with("lines", json!(vec!["x".repeat(400); 200])).to_string();
    assert!(message.len() > MAX_PAYLOAD);
    let rejected = reject_bytes(message.as_bytes());
    assert_eq!(
        rejected.reason(),
        format!("payload is {} bytes; the limit is 65536", message.len())
    );
}

#[test]
fn a_payload_of_exactly_64_kib_is_accepted_and_one_byte_more_is_not() {
    let base = example().to_string();
    let head = &base[..base.len() - 1]; // without the closing brace
    let padded = |n: usize| format!("{head},\"pad\":\"{}\"}}", "x".repeat(n));
    let n = MAX_PAYLOAD - padded(0).len();
    let at_limit = padded(n);
    assert_eq!(at_limit.len(), MAX_PAYLOAD);
    assert!(parse(at_limit.as_bytes()).result.is_ok());
    assert_eq!(
        reject_bytes(padded(n + 1).as_bytes()).reason(),
        "payload is 65537 bytes; the limit is 65536"
    );
}

#[test]
fn a_payload_that_is_not_utf8_is_rejected_with_the_offset_of_the_bad_byte() {
    let mut payload = br#"{"id":"e-1","reason":""#.to_vec();
    payload.extend_from_slice(&[0xff, 0xfe]);
    payload.extend_from_slice(br#""}"#);
    let rejected = reject_bytes(&payload);
    assert_eq!(
        rejected.reason(),
        "payload is not UTF-8 (invalid byte at offset 22)"
    );
    // What is kept is still text, with the bad bytes replaced.
    assert!(parse(&payload).raw.contains('\u{fffd}'));
}

#[test]
fn a_shift_jis_payload_is_rejected_as_not_utf8() {
    // "売上" in Shift_JIS, as an old register might send it.
    let mut payload = br#"{"reason":""#.to_vec();
    payload.extend_from_slice(&[0x94, 0x84, 0x8f, 0xe3]);
    payload.extend_from_slice(br#""}"#);
    assert_one_problem(&reject_bytes(&payload), None, "payload is not UTF-8");
}

#[test]
fn every_problem_in_one_message_is_listed_in_field_order() {
    let mut message = without("id");
    message["at"] = json!("2026-11-21 18:42:07");
    message["store"] = json!("shibuya 01");
    message["amount"] = json!("1280");
    message["currency"] = json!("yen");
    message["lines"] = json!(["ok", 7]);
    let rejected = reject(&message);
    let fields: Vec<Option<&str>> = rejected
        .problems
        .iter()
        .map(|p| p.field.as_deref())
        .collect();
    assert_eq!(
        fields,
        [
            Some("id"),
            Some("at"),
            Some("store"),
            Some("amount"),
            Some("currency"),
            Some("lines[1]")
        ]
    );
    let reason = rejected.reason();
    assert!(
        reason.starts_with("id: is required; at: \"2026-11-21 18:42:07\" has no UTC offset"),
        "{reason}"
    );
    assert!(
        reason.ends_with("; lines[1]: must be a string, found a number"),
        "{reason}"
    );
    assert_eq!(reason.matches("; ").count(), 5, "{reason}");
}

#[test]
fn an_empty_object_lists_all_five_required_fields() {
    assert_eq!(
        reject_bytes(b"{}").reason(),
        "id: is required; type: is required; at: is required; store: is required; register: is required"
    );
}

#[test]
fn a_problem_displays_as_field_colon_rule() {
    let problem = Problem {
        field: Some("lines[3]".into()),
        rule: "must be a string, found a number".into(),
    };
    assert_eq!(
        problem.to_string(),
        "lines[3]: must be a string, found a number"
    );
    let whole = Problem {
        field: None,
        rule: "payload is not valid JSON".into(),
    };
    assert_eq!(whole.to_string(), "payload is not valid JSON");
}

#[test]
fn parse_never_panics_on_odd_input() {
    let deep = "[".repeat(10_000);
    let odd: [&[u8]; 9] = [
        b"",
        b" ",
        b"{",
        b"}",
        b"\x00",
        b"{\"id\":1e999}",
        b"{\"amount\":99999999999999999999999}",
        deep.as_bytes(),
        b"{\"lines\":[[[[]]]]}",
    ];
    for payload in odd {
        assert!(parse(payload).result.is_err());
    }
}

// ---- Card numbers ----

/// Asserts no form of the test card's digits survives in `text`.
fn assert_no_card(text: &str) {
    for form in [
        CARD,
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "111111111",
    ] {
        assert!(!text.contains(form), "{form:?} survives in: {text}");
    }
}

/// Parses `message`, and checks neither the kept text nor the event (in any form) has the card.
fn parse_masked(payload: &[u8]) -> Parsed {
    let parsed = parse(payload);
    assert_no_card(&parsed.raw);
    match &parsed.result {
        Ok(event) => {
            assert_no_card(&format!("{event:?}"));
            assert_no_card(&serde_json::to_string(event).expect("serializes"));
        }
        Err(rejected) => assert_no_card(&rejected.reason()),
    }
    parsed
}

#[test]
fn a_card_number_in_a_receipt_line_is_masked_in_the_raw_payload_and_the_event() {
    let message = with(
        "lines",
        json!(["VISA 4111111111111111", "ONIGIRI SALMON      180"]),
    );
    let parsed = parse_masked(message.to_string().as_bytes());
    let event = parsed.result.expect("accepted");
    assert_eq!(event.lines[0], format!("VISA {CARD_MASKED}"));
    assert_eq!(event.lines[1], "ONIGIRI SALMON      180");
    assert!(parsed.raw.contains(&format!("VISA {CARD_MASKED}")));
}

#[test]
fn spaces_and_dashes_in_a_card_number_are_kept_when_it_is_masked() {
    let message = with(
        "lines",
        json!(["CARD 4111 1111 1111 1111", "CARD 5500-0000-0000-0004"]),
    );
    let event = parse_masked(message.to_string().as_bytes())
        .result
        .expect("accepted");
    assert_eq!(event.lines[0], "CARD 4111 11** **** 1111");
    assert_eq!(event.lines[1], "CARD 5500-00**-****-0004");
}

#[test]
fn a_card_number_in_the_reason_is_masked() {
    let message = with("reason", json!(format!("refund to card {CARD}")));
    let event = parse_masked(message.to_string().as_bytes())
        .result
        .expect("accepted");
    assert_eq!(
        event.reason.as_deref(),
        Some(format!("refund to card {CARD_MASKED}").as_str())
    );
}

#[test]
fn a_card_number_in_the_cashier_field_is_masked() {
    let message = with("cashier", json!(CARD));
    let event = parse_masked(message.to_string().as_bytes())
        .result
        .expect("accepted");
    assert_eq!(event.cashier.as_deref(), Some(CARD_MASKED));
}

#[test]
fn a_card_number_in_an_attribute_string_is_masked() {
    let message = with("attributes", json!({"pan": CARD, "tender": "credit"}));
    let event = parse_masked(message.to_string().as_bytes())
        .result
        .expect("accepted");
    assert_eq!(event.attributes["pan"], CARD_MASKED);
    assert_eq!(event.attributes["tender"], "credit");
}

#[test]
fn a_card_number_sent_as_a_json_number_becomes_a_masked_string() {
    let payload = EXAMPLE.replace(
        "\"reason\"",
        &format!("\"attributes\": {{\"pan\": {CARD}}},\n  \"reason\""),
    );
    let parsed = parse_masked(payload.as_bytes());
    let event = parsed.result.expect("accepted");
    assert_eq!(event.attributes["pan"], Value::String(CARD_MASKED.into()));
    // What is kept is the masked value re-serialised: the number became a masked string there too.
    assert!(
        parsed.raw.contains(&format!("\"pan\":\"{CARD_MASKED}\"")),
        "{}",
        parsed.raw
    );
}

#[test]
fn a_card_number_in_an_attribute_key_is_masked() {
    let message = with("attributes", json!({ CARD: true }));
    let event = parse_masked(message.to_string().as_bytes())
        .result
        .expect("accepted");
    assert_eq!(event.attributes[CARD_MASKED], true);
}

#[test]
fn a_card_number_in_an_unknown_top_level_field_is_masked_in_the_raw_payload() {
    let message = with("card_number", json!(CARD));
    let parsed = parse_masked(message.to_string().as_bytes());
    assert!(parsed.result.is_ok());
    assert!(
        parsed
            .raw
            .contains(&format!(r#""card_number":"{CARD_MASKED}""#)),
        "{}",
        parsed.raw
    );
}

#[test]
fn a_card_number_in_a_payload_that_is_not_json_is_masked_in_what_is_kept() {
    let payload = format!("VOID r2 card={CARD} amount=1280");
    let parsed = parse_masked(payload.as_bytes());
    assert!(parsed.result.is_err());
    assert_eq!(
        parsed.raw,
        format!("VOID r2 card={CARD_MASKED} amount=1280")
    );
}

#[test]
fn a_card_number_in_a_rejected_message_is_masked_in_what_is_kept() {
    let mut message = with("lines", json!([format!("VISA {CARD}")]));
    message["type"] = json!("voided");
    let parsed = parse_masked(message.to_string().as_bytes());
    assert!(parsed.result.is_err());
    assert!(parsed.raw.contains(CARD_MASKED), "{}", parsed.raw);
}

#[test]
fn a_card_number_in_an_oversized_or_non_utf8_payload_is_masked_in_what_is_kept() {
    let big = with(
        "lines",
        json!(vec![format!("VISA {CARD} {}", "x".repeat(400)); 200]),
    );
    let parsed = parse_masked(big.to_string().as_bytes());
    assert!(parsed.result.is_err());
    let mut bad = format!(r#"{{"reason":"{CARD} "#).into_bytes();
    bad.extend_from_slice(&[0xff, b'"', b'}']);
    let parsed = parse_masked(&bad);
    assert!(parsed.result.is_err());
    assert!(parsed.raw.contains(CARD_MASKED), "{}", parsed.raw);
}

#[test]
fn a_card_number_as_the_whole_value_of_a_text_field_is_masked_wherever_it_is() {
    // Mastercard, Amex (15 digits), Discover and a 19-digit number: all Luhn-valid.
    for (card, masked) in [
        ("5555555555554444", "555555******4444"),
        ("378282246310005", "378282*****0005"),
        ("6011111111111117", "601111******1117"),
        ("6304000000000000000", "630400*********0000"),
    ] {
        let message = with("lines", json!([card]));
        let parsed = parse(message.to_string().as_bytes());
        assert!(!parsed.raw.contains(card), "{}", parsed.raw);
        assert_eq!(parsed.result.expect("accepted").lines[0], masked);
    }
}

#[test]
fn a_card_number_printed_next_to_other_numbers_is_masked() {
    // One space or dash joins digit groups into one run, so the card shares its run with an expiry date, an
    // amount, a quantity or a second card: the card part is still found and masked.
    for (line, masked) in [
        ("VISA 4111111111111111 12/28", "VISA 411111******1111 12/28"),
        (
            "VISA 4111 1111 1111 1111 12/28",
            "VISA 4111 11** **** 1111 12/28",
        ),
        ("1280 4111111111111111", "1280 411111******1111"),
        ("QTY 1 4111-1111-1111-1111", "QTY 1 4111-11**-****-1111"),
        // "6 4111 1111 1111" is itself 13 Luhn-valid digits: both candidates are masked, so the card's
        // middle digits are covered even though another candidate starts before it.
        ("QTY 6 4111 1111 1111 1111", "QTY 6 4111 1*** **** 1111"),
        (
            "4111111111111111 5555555555554444",
            "411111******1111 555555******4444",
        ),
    ] {
        let parsed = parse_masked(with("lines", json!([line])).to_string().as_bytes());
        assert!(parsed.raw.contains(masked), "{}", parsed.raw);
        assert_eq!(parsed.result.expect("accepted").lines[0], masked);
    }
}

#[test]
fn a_long_run_of_short_digit_groups_is_read_in_one_pass() {
    // 30 000 one-digit groups joined by spaces: each group is a candidate start, so the search must stay
    // bounded by the 19-digit maximum rather than the run's length.
    let run = vec!["1"; 30_000].join(" ");
    let started = std::time::Instant::now();
    let parsed = parse(with("reason", json!(run)).to_string().as_bytes());
    assert!(parsed.result.is_err());
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn a_16_digit_number_that_fails_luhn_is_not_masked() {
    let message = with("lines", json!(["REF 4111111111111112"]));
    let parsed = parse(message.to_string().as_bytes());
    assert_eq!(
        parsed.result.expect("accepted").lines[0],
        "REF 4111111111111112"
    );
    assert!(parsed.raw.contains("4111111111111112"));
}

#[test]
fn a_12_digit_number_is_not_masked_even_when_it_passes_luhn() {
    // 123456789015 passes the Luhn check but is too short to be a card number.
    let message = with("transaction", json!("123456789015"));
    let event = accept(&message);
    assert_eq!(event.transaction.as_deref(), Some("123456789015"));
}

#[test]
fn ordinary_receipt_text_times_and_amounts_are_not_masked() {
    let parsed = parse(EXAMPLE.as_bytes());
    assert_eq!(parsed.raw, EXAMPLE);
    let event = accept(&with(
        "lines",
        json!(["TEL 03-1234-5678", "JAN 4901234567890", "2026-11-21 18:42"]),
    ));
    assert_eq!(
        event.lines,
        ["TEL 03-1234-5678", "JAN 4901234567890", "2026-11-21 18:42"]
    );
}

// ---- Event keys and types ----

#[test]
fn the_event_key_of_a_store_and_id_never_changes() {
    // A literal (checked with Python's uuid.uuid5 on the same namespace and "store\0id"): if this changes,
    // every bookmark tillmark ever made loses its tag.
    assert_eq!(
        event_key("shibuya-01", "7c0e6a9e-3f7b-4f7e-9a55-0d2c1b7a4e10"),
        "tm-04749cda37d25a4195fedba40e14e492"
    );
    assert_eq!(
        event_key("shibuya-01", "e-1"),
        event_key("shibuya-01", "e-1")
    );
}

#[test]
fn the_event_key_differs_for_another_store_or_another_id() {
    let key = event_key("shibuya-01", "e-1");
    assert_ne!(key, event_key("shibuya-02", "e-1"));
    assert_ne!(key, event_key("shibuya-01", "e-2"));
    // The separator keeps store "a" + id "bc" apart from store "ab" + id "c".
    assert_ne!(event_key("a", "bc"), event_key("ab", "c"));
}

#[test]
fn an_event_key_is_tm_and_32_hex_digits() {
    let key = event_key("shibuya-01", "e-1");
    let hex = key.strip_prefix("tm-").expect("starts with tm-");
    assert_eq!(hex.len(), 32);
    assert!(
        hex.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    );
}

#[test]
fn every_type_name_parses_back_to_its_type() {
    let names = [
        "void",
        "item_void",
        "correction",
        "refund",
        "no_sale",
        "drawer_open",
        "drawer_close",
        "discount",
        "sale",
        "paid_in",
        "paid_out",
        "sign_on",
        "sign_off",
    ];
    assert_eq!(EventType::names(), names);
    for name in names {
        let kind = EventType::parse(name).expect(name);
        assert_eq!(kind.as_str(), name);
        assert_eq!(kind.to_string(), name);
        assert_eq!(
            serde_json::to_value(kind).expect("serializes"),
            Value::from(name)
        );
    }
    for kind in EventType::ALL {
        assert_eq!(EventType::parse(kind.as_str()), Some(kind));
    }
    assert_eq!(EventType::parse("VOID"), None);
    assert_eq!(EventType::parse("void "), None);
    assert_eq!(EventType::parse(""), None);
}

#[test]
fn the_default_bookmarked_types_are_exactly_those_of_events_md() {
    let bookmarked: Vec<&str> = EventType::ALL
        .into_iter()
        .filter(|t| t.bookmarked_by_default())
        .map(EventType::as_str)
        .collect();
    assert_eq!(
        bookmarked,
        [
            "void",
            "item_void",
            "correction",
            "refund",
            "no_sale",
            "drawer_open",
        ]
    );
}

#[test]
fn severity_is_high_for_void_refund_no_sale_and_an_unexplained_drawer_open_medium_for_item_void_and_correction()
 {
    let of = |t: EventType| t.severity();
    for t in [
        EventType::Void,
        EventType::Refund,
        EventType::NoSale,
        EventType::DrawerOpen,
    ] {
        assert_eq!(of(t), Severity::High, "{t}");
    }
    assert_eq!(of(EventType::ItemVoid), Severity::Medium);
    assert_eq!(of(EventType::Correction), Severity::Medium);
    for t in [
        EventType::Sale,
        EventType::PaidOut,
        EventType::PaidIn,
        EventType::Discount,
        EventType::DrawerClose,
    ] {
        assert_eq!(of(t), Severity::Low, "{t}");
    }
    // A drawer open a sale explained is not flagged, and no more than low.
    assert_eq!(Severity::of("drawer_open", true), Severity::High);
    assert_eq!(Severity::of("drawer_open", false), Severity::Low);
    assert_eq!(Severity::of("void", false), Severity::High);
    assert_eq!(Severity::of("something_newer", true), Severity::Low);
}

#[test]
fn a_type_reads_in_capitals_on_a_camera_timeline() {
    assert_eq!(EventType::Void.label(), "VOID");
    assert_eq!(EventType::NoSale.label(), "NO SALE");
    assert_eq!(EventType::ItemVoid.label(), "ITEM VOID");
}
