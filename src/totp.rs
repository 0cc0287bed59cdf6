//! The optional second factor: time-based one-time codes from an authenticator app (RFC 6238 with the
//! parameters every app accepts: HMAC-SHA-1, 6 digits, a new code every 30 seconds).
//!
//! What a reader must not break:
//! - A code signs in once. The store keeps the last time step a code was accepted for, and a code is taken
//!   only for a step after it, even inside the drift window: a code read over a shoulder or from a proxy's
//!   log is worth nothing once its owner has used it.
//! - The secret is shown once, by `tillmark user totp`, and otherwise lives only in its database column:
//!   [`TotpSecret`] prints as `**REDACTED**`, so no log line, page or audit entry can carry it by accident.

use std::fmt;

use subtle::ConstantTimeEq;
use totp_rs::{Algorithm, Secret, TOTP};

/// Digits in a code.
pub const DIGITS: usize = 6;
/// Seconds a code lasts.
pub const STEP_S: i64 = 30;
/// Steps either side of the server's a code may be from: a phone's clock a little off, or a code typed just
/// as it changed. One step is what RFC 6238 recommends at most.
pub const DRIFT_STEPS: i64 = 1;
/// The issuer authenticator apps show beside the person's name.
pub const ISSUER: &str = "tillmark";
/// 160 bits, the length RFC 4226 recommends.
const SECRET_BYTES: usize = 20;

/// A person's TOTP key.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpSecret(Vec<u8>);

impl TotpSecret {
    /// A new random key.
    pub fn generate() -> Self {
        TotpSecret(rand::random::<[u8; SECRET_BYTES]>().to_vec())
    }

    /// A key as stored: base32 without padding.
    pub fn from_base32(text: &str) -> Result<Self, String> {
        let bytes = Secret::Encoded(text.to_string())
            .to_bytes()
            .map_err(|_| "the TOTP key is not base32".to_string())?;
        if bytes.len() < 16 {
            return Err("the TOTP key is shorter than 128 bits".into());
        }
        Ok(TotpSecret(bytes))
    }

    /// The key in base32 without padding: how it is stored, put in the otpauth URI and typed into an app.
    pub fn expose_base32(&self) -> String {
        match Secret::Raw(self.0.clone()).to_encoded() {
            Secret::Encoded(text) => text,
            Secret::Raw(_) => unreachable!("to_encoded returns an encoded secret"),
        }
    }

    /// The `otpauth://` URI an authenticator app reads (from a QR code or pasted), for `account`. The
    /// algorithm, digits and period are spelt out although they are the defaults: some apps ask for them.
    pub fn otpauth_uri(&self, account: &str) -> String {
        let account: String = url::form_urlencoded::byte_serialize(account.as_bytes()).collect();
        format!(
            "otpauth://totp/{ISSUER}:{account}?secret={}&issuer={ISSUER}&algorithm=SHA1&digits={DIGITS}&period={STEP_S}",
            self.expose_base32()
        )
    }

    fn totp(&self) -> TOTP {
        // Six digits and at least 128 bits of key, which `new` checks, hold by construction.
        TOTP::new_unchecked(Algorithm::SHA1, DIGITS, 0, STEP_S as u64, self.0.clone())
    }

    /// The code for a time step.
    pub fn code_at_step(&self, step: i64) -> String {
        self.totp().generate((step.max(0) * STEP_S) as u64)
    }
}

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("**REDACTED**")
    }
}

impl fmt::Display for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("**REDACTED**")
    }
}

/// The time step a moment (seconds since the epoch) falls in.
pub fn step_at(unix_s: i64) -> i64 {
    unix_s.div_euclid(STEP_S)
}

/// The step `code` is accepted for at `now_s`: a step within [`DRIFT_STEPS`] of now whose code it is, and after
/// `last_step`, the last one accepted. Spaces are ignored (apps show `123 456`). When a code matches two steps
/// (one chance in a million) the later is taken, so the replay bar only ever rises.
pub fn accepted_step(
    secret: &TotpSecret,
    code: &str,
    now_s: i64,
    last_step: Option<i64>,
) -> Option<i64> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let now = step_at(now_s);
    let mut accepted = None;
    // Every step in the window is computed and compared whatever matched, so the time taken tells nothing.
    for step in now - DRIFT_STEPS..=now + DRIFT_STEPS {
        let matches: bool = secret
            .code_at_step(step)
            .as_bytes()
            .ct_eq(code.as_bytes())
            .into();
        if matches && last_step.is_none_or(|last| step > last) {
            accepted = Some(step);
        }
    }
    accepted
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238's SHA-1 key, "12345678901234567890".
    fn rfc_key() -> TotpSecret {
        TotpSecret(b"12345678901234567890".to_vec())
    }

    #[test]
    fn codes_are_those_of_rfc_6238_appendix_b_in_six_digits() {
        // The appendix gives eight digits; an app shows their last six.
        for (time, eight) in [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
        ] {
            assert_eq!(rfc_key().code_at_step(step_at(time)), eight[2..], "{time}");
        }
    }

    #[test]
    fn the_current_step_and_one_either_side_are_accepted_and_no_further() {
        let key = rfc_key();
        let now = 1_234_567_890;
        let step = step_at(now);
        for drift in [-1, 0, 1] {
            let code = key.code_at_step(step + drift);
            assert_eq!(
                accepted_step(&key, &code, now, None),
                Some(step + drift),
                "{drift}"
            );
        }
        for drift in [-3, -2, 2, 3] {
            let code = key.code_at_step(step + drift);
            assert_eq!(accepted_step(&key, &code, now, None), None, "{drift}");
        }
    }

    #[test]
    fn a_code_is_refused_for_a_step_at_or_before_the_last_one_accepted() {
        let key = rfc_key();
        let now = 1_234_567_890;
        let step = step_at(now);
        let current = key.code_at_step(step);
        assert_eq!(
            accepted_step(&key, &current, now, Some(step - 1)),
            Some(step)
        );
        assert_eq!(
            accepted_step(&key, &current, now, Some(step)),
            None,
            "replayed"
        );
        // Still refused half a minute later, when its step is the previous one and inside the window.
        assert_eq!(accepted_step(&key, &current, now + 30, Some(step)), None);
        // An earlier code, within the window, once a later one was used: refused too.
        let earlier = key.code_at_step(step - 1);
        assert_eq!(accepted_step(&key, &earlier, now, Some(step)), None);
        // The next code is still good.
        let next = key.code_at_step(step + 1);
        assert_eq!(accepted_step(&key, &next, now, Some(step)), Some(step + 1));
    }

    #[test]
    fn spaces_are_ignored_and_anything_but_six_digits_is_refused() {
        let key = rfc_key();
        let now = 59;
        assert_eq!(accepted_step(&key, "287 082", now, None), Some(1));
        for wrong in [
            "", "28708", "2870820", "28708a", "94287082", "287O82", "000000",
        ] {
            assert_eq!(accepted_step(&key, wrong, now, None), None, "{wrong}");
        }
    }

    #[test]
    fn the_key_is_20_random_bytes_in_base32_and_never_printed() {
        let (a, b) = (TotpSecret::generate(), TotpSecret::generate());
        assert_ne!(a, b);
        let text = a.expose_base32();
        assert_eq!(text.len(), 32, "160 bits in base32: {text}");
        assert_eq!(TotpSecret::from_base32(&text).unwrap(), a);
        assert_eq!(format!("{a} {a:?}"), "**REDACTED** **REDACTED**");
        assert!(TotpSecret::from_base32("not base32!").is_err());
        assert!(TotpSecret::from_base32("GEZDGNBV").is_err(), "40 bits");
    }

    #[test]
    fn the_otpauth_uri_names_the_issuer_and_person_and_spells_out_the_parameters() {
        assert_eq!(
            rfc_key().otpauth_uri("aiko.sato@shibuya"),
            "otpauth://totp/tillmark:aiko.sato%40shibuya?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
             &issuer=tillmark&algorithm=SHA1&digits=6&period=30"
        );
    }
}
