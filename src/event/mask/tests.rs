//! Masking as a user meets it: what stays of a card number in each spelling, what is left alone.

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

#[test]
fn separator_runs_between_groups_do_not_hide_a_card_number() {
    for (text, masked) in [
        ("4111  1111  1111  1111", "4111  11**  ****  1111"),
        ("4111\t1111\t1111\t1111", "4111\t11**\t****\t1111"),
        ("4111.1111.1111.1111", "4111.11**.****.1111"),
        ("4111/1111/1111/1111", "4111/11**/****/1111"),
        ("4111 - 1111 - 1111 - 1111", "4111 - 11** - **** - 1111"),
        (
            "4111\u{3000}1111\u{a0}1111\u{200b}1111",
            "4111\u{3000}11**\u{a0}****\u{200b}1111",
        ),
        ("4111－1111－1111－1111", "4111－11**－****－1111"),
    ] {
        assert_eq!(mask_card_numbers(text), masked, "{text:?}");
    }
}

#[test]
fn digits_of_any_script_are_read_as_digits_and_the_kept_ones_stay_as_written() {
    assert_eq!(
        mask_card_numbers("カード ４０１２ ８８８８ ８８８８ １８８１"),
        "カード ４０１２ ８８** **** １８８１"
    );
    // Arabic-Indic and Devanagari, and ASCII mixed with full-width.
    assert_eq!(mask_card_numbers("٤١١١١١١١١١١١١١١١"), "٤١١١١١******١١١١");
    assert_eq!(
        mask_card_numbers("४१११ ११११ ११११ ११११"),
        "४१११ ११** **** ११११"
    );
    assert_eq!(
        mask_card_numbers("4111１１１１1111１１１１"),
        "4111１１******１１１１"
    );
}

#[test]
fn json_escaped_digits_in_a_broken_payload_are_masked() {
    let payload = r#"{"reason": "\u0034111\u00201111\u00201111\u00201111", "x": "#;
    let masked = mask_text_payload(payload);
    assert_eq!(
        masked,
        r#"{"reason": "\u0034111\u002011**\u0020****\u00201111", "x": "#
    );
    assert!(!contains_card_number(&masked));
    // Plain text masking takes `\u0034` as written: a backslash, a `u` and the digits 0034.
    assert!(matches!(mask_card_numbers(payload), Cow::Borrowed(_)));
    // A body escaped twice, as when a JSON body is kept inside a JSON string.
    assert_eq!(
        mask_text_payload(r"\\u0034111111111111111"),
        r"\\u003411111******1111"
    );
}

#[test]
fn track_data_is_removed_whole_with_or_without_sentinels() {
    for (text, kept) in [
        (
            "%B4111111111111111^DOE/JOHN^2512101000000000000000000?",
            "[track data removed]",
        ),
        (
            "SWIPE ;4111111111111111=25121010000000000000? OK",
            "SWIPE [track data removed] OK",
        ),
        (
            "4111111111111111=25121010000000000000",
            "[track data removed]",
        ),
        (
            "B4111 1111 1111 1111^DOE/JOHN MR^25121010000000 next",
            "[track data removed] next",
        ),
        (
            "；４１１１１１１１１１１１１１１１＝２５１２１０１０００００？",
            "[track data removed]",
        ),
        (
            "57: 4111111111111111D25121010000000000F",
            "57: [track data removed]",
        ),
    ] {
        assert_eq!(mask_card_numbers(text), kept, "{text:?}");
    }
}

#[test]
fn a_card_number_followed_by_an_equals_sign_and_no_expiry_is_only_masked() {
    assert_eq!(
        mask_card_numbers("4111111111111111=OK"),
        "411111******1111=OK"
    );
}

#[test]
fn card_numbers_sent_as_json_integers_or_floats_become_masked_strings() {
    let mut v = serde_json::json!({
        "int": 4917610000000000_u64,
        "float": 4.91761e15,
        "negative": -4.5e14,
        "amount": 1280,
        "price": 12.5,
        "id": 123456789012_u64,
    });
    mask_json(&mut v);
    assert_eq!(v["int"], "491761******0000");
    assert_eq!(v["float"], "491761******0000");
    assert_eq!(v["negative"], "-450000*****0000");
    assert_eq!(v["amount"], 1280);
    assert_eq!(v["price"], 12.5);
    assert_eq!(v["id"], 123456789012_u64);
}

#[test]
fn a_card_sized_number_in_exponent_notation_in_text_becomes_stars() {
    assert_eq!(
        mask_text_payload(r#"{"pan": 4.91761e15}"#),
        r#"{"pan": ****************}"#
    );
    assert_eq!(mask_card_numbers("PAN 4.91761E+15"), "PAN ****************");
    // Hex ids and small numbers keep their shape.
    for text in ["id 7c0e-1e12-ab", "3.5e2", "1.0e-3", "deadbeef1e15"] {
        assert_eq!(mask_card_numbers(text), text);
    }
}

#[test]
fn text_without_card_numbers_is_borrowed_unchanged() {
    for text in [
        "2026-11-21T18:42:07.310+09:00",
        "¥1,280 税込 ONIGIRI SALMON      180",
        "T-000981 2026/11/21 18:42 TEL 03-1234-5678",
        "合計　１，２８０円　お預り　２，０００円",
        "",
        "\\",
        "\\u00",
    ] {
        assert!(
            matches!(mask_card_numbers(text), Cow::Borrowed(_)),
            "{text:?}"
        );
        assert!(!contains_card_number(text), "{text:?}");
    }
}

#[test]
fn digits_left_beside_a_masked_card_never_form_a_new_card_number() {
    // After masking, "1111" (the card's last four) and the digits after it are a new run; whatever they form
    // is masked in the same pass, so masking again changes nothing.
    for text in [
        "4111111111111111 123456789 12 5",
        "1234 5678 9012 4111111111111111",
        "QTY 6 4111 1111 1111 1111 12/28",
    ] {
        let once = mask_card_numbers(text).into_owned();
        assert_eq!(mask_card_numbers(&once), once, "{text:?}");
        assert!(!contains_card_number(&once), "{once:?}");
    }
}

#[test]
fn a_topic_level_with_a_card_number_is_detected() {
    assert!(contains_card_number(
        "pos/shibuya-01/4111111111111111/events"
    ));
    assert!(!contains_card_number("pos/shibuya-01/r2/events"));
}

#[test]
fn digits_left_beside_a_masked_card_never_form_an_exponent_number_either() {
    // Masking the card leaves "1111e+10", itself a card-sized number in exponent notation: it becomes stars too.
    let once = mask_card_numbers("4111111111111111e+10 x");
    assert_eq!(once, "411111******************** x");
    assert_eq!(mask_card_numbers(&once), once);
}

#[test]
fn every_decimal_digit_of_the_table_is_numeric_and_other_numerals_are_not_digits() {
    use super::chars::digit_value;
    for zero in [
        '0',
        '\u{660}',
        '\u{966}',
        '\u{FF10}',
        '\u{1D7CE}',
        '\u{1E5F1}',
        '\u{1FBF0}',
    ] {
        for value in 0..10u8 {
            let c = char::from_u32(u32::from(zero) + u32::from(value)).expect("a char");
            assert!(c.is_numeric(), "{c:?}");
            assert_eq!(digit_value(c), Some(value), "{c:?}");
        }
    }
    let digits: Vec<char> = (0..=0x10FFFF)
        .filter_map(char::from_u32)
        .filter(|&c| digit_value(c).is_some())
        .collect();
    assert_eq!(digits.len(), 750);
    assert!(digits.iter().all(|c| c.is_numeric()));
    for c in ['½', 'Ⅳ', '②', '五', '²', 'a', '\u{1FBFA}', '\u{10FFFF}'] {
        assert_eq!(digit_value(c), None, "{c:?}");
    }
}
