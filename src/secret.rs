//! A value that must not be shown: passwords, API keys, signing keys. Its `Debug` and `Display` print a
//! placeholder, so no log line or error message can carry it by accident.

use std::fmt;

#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("**REDACTED**")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("**REDACTED**")
    }
}

/// What stands in a text for a secret that was there.
pub const REDACTED: &str = "[redacted]";

/// `text` with every form of each of `secrets` a vendor might echo replaced by [`REDACTED`]: as it is, URL- and
/// form-encoded, base64 (standard and URL-safe, padded or not), and escaped as in JSON. Longer forms go first,
/// so a secret inside another is not half replaced. Values shorter than four characters are left alone: they
/// would blank ordinary words.
pub fn redact(text: &str, secrets: &[&str]) -> String {
    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let mut forms: Vec<String> = Vec::new();
    for secret in secrets.iter().filter(|s| s.chars().count() >= 4) {
        let form: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
        let json = serde_json::Value::from(*secret).to_string();
        // Percent-encoders differ in what they leave as it is: RFC 3986's unreserved characters (Python,
        // Go), JavaScript's encodeURIComponent, or nothing but letters and digits; in upper or lower hex.
        for keep in ["-._~", "-_.!~*'()", ""] {
            for lower in [false, true] {
                forms.push(percent_encoded(secret, keep, lower));
            }
        }
        forms.extend([
            secret.to_string(),
            form.replace('+', "%20"),
            form,
            STANDARD.encode(secret),
            STANDARD_NO_PAD.encode(secret),
            URL_SAFE.encode(secret),
            URL_SAFE_NO_PAD.encode(secret),
            json[1..json.len() - 1].to_string(),
        ]);
    }
    forms.retain(|f| f.len() >= 4);
    forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
    forms.dedup();
    let mut out = text.to_string();
    for form in &forms {
        if out.contains(form.as_str()) {
            out = out.replace(form.as_str(), REDACTED);
        }
    }
    out
}

/// `text` percent-encoded, every byte but ASCII letters, digits and `keep` as `%XX`.
fn percent_encoded(text: &str, keep: &str, lower: bool) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || keep.as_bytes().contains(&b) {
            out.push(char::from(b));
        } else if lower {
            out.push_str(&format!("%{b:02x}"));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

    use super::*;

    const KEY: &str = "s3cr+t/key=&\"x\" ü~";

    #[test]
    fn every_form_a_vendor_echoes_a_secret_in_is_redacted() {
        let form: String = url::form_urlencoded::byte_serialize(KEY.as_bytes()).collect();
        let json = serde_json::Value::from(KEY).to_string();
        let echoes = [
            format!("invalid key {KEY} given"),
            format!("GET /api?key={form}"),
            format!("GET /api?key={}", form.replace('+', "%20")),
            // Python's quote leaves `~` as it is; some encoders write lower-case hex.
            "key s3cr%2Bt%2Fkey%3D%26%22x%22%20%C3%BC~ given".to_string(),
            "key s3cr%2bt%2fkey%3d%26%22x%22%20%c3%bc~ given".to_string(),
            format!("Authorization: Basic {}", STANDARD.encode(KEY)),
            format!("token {} rejected", URL_SAFE_NO_PAD.encode(KEY)),
            format!(r#"{{"error":"bad key","key":{json}}}"#),
        ];
        for echo in echoes {
            let shown = redact(&echo, &[KEY]);
            assert!(shown.contains(REDACTED), "{echo} -> {shown}");
            for secret_form in [
                KEY,
                form.as_str(),
                &STANDARD.encode(KEY),
                &json[1..json.len() - 1],
            ] {
                assert!(!shown.contains(secret_form), "{echo} -> {shown}");
            }
        }
    }

    #[test]
    fn short_values_and_text_without_secrets_stay_as_they_are() {
        let text = "HTTP 400: camera 7 unknown (code abc)";
        assert_eq!(redact(text, &["abc", "secret-token"]), text);
    }
}
