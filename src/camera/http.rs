//! HTTP plumbing shared by adapters: a client per camera system (its CA, its time limit), and the reading of
//! what a failed exchange means: was the request sent, and when may we come back.

use std::time::Duration;

use super::Delivery;
use crate::config::CameraSystemConfig;

/// Redirects followed within a camera system's origin before giving up.
const MAX_REDIRECTS: usize = 5;

pub fn client(system: &CameraSystemConfig, timeout: Duration) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .user_agent(concat!("tillmark/", env!("CARGO_PKG_VERSION")))
        // A request carries the system's credentials, in headers reqwest cannot know are secret (`x-api-key`,
        // a token in the body): it follows a redirect only within the origin it was sent to. A redirect
        // elsewhere comes back as the answer, and the bookmark fails saying where it pointed.
        .redirect(reqwest::redirect::Policy::custom(|attempt| {
            let same_origin = attempt
                .previous()
                .first()
                .is_some_and(|first| first.origin() == attempt.url().origin());
            if attempt.previous().len() > MAX_REDIRECTS {
                attempt.error("more than 5 redirects")
            } else if same_origin {
                attempt.follow()
            } else {
                attempt.stop()
            }
        }));
    if let Some(ca) = &system.tls_ca {
        let pem =
            std::fs::read(ca).map_err(|e| format!("cannot read tls_ca {}: {e}", ca.display()))?;
        let cert = reqwest::Certificate::from_pem(&pem)
            .map_err(|e| format!("tls_ca {} is not a PEM certificate: {e}", ca.display()))?;
        builder = builder.add_root_certificate(cert);
    }
    if system.tls_insecure {
        tracing::warn!(system = %system.id, "TLS certificate checks are off for this camera system (tls_insecure).");
        builder = builder.danger_accept_invalid_certs(true);
    }
    builder
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))
}

/// A transport failure: a connect error never reached the server; anything later might have.
pub fn transport_error(what: &str, e: &reqwest::Error, maybe_created: bool) -> Delivery {
    let sent = !e.is_connect();
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "failed"
    };
    // The URL is left out of the message: a query string may carry a token.
    let mut cause = String::from("request error");
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        cause = s.to_string();
        source = s.source();
    }
    Delivery::Retry {
        error: format!("{what} {kind}: {cause}"),
        retry_after: None,
        maybe_created: maybe_created || sent,
    }
}

/// Where a redirect the client did not follow points: the origin of its `Location`, never the whole address
/// (its query may hold a token). None for an answer that is no redirect.
pub fn redirected_to(
    status: reqwest::StatusCode,
    headers: &reqwest::header::HeaderMap,
) -> Option<String> {
    if !status.is_redirection() {
        return None;
    }
    let location = headers.get(reqwest::header::LOCATION)?.to_str().ok()?;
    let origin = url::Url::parse(location)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_else(|_| "an address it did not name in full".into());
    Some(origin)
}

/// `Retry-After` in seconds or as an HTTP date.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let delta = when.timestamp_millis() - chrono::Utc::now().timestamp_millis();
    Some(Duration::from_millis(delta.max(0) as u64))
}

/// The vendor's own words from an error body: a JSON `errorString`/`message`/`error` field, or the text. An
/// OAuth2 error (RFC 6749 section 5.2) keeps its `error_description`, which says why the code was given.
pub fn vendor_message(body: &str) -> String {
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(body) {
        if let (Some(code), Some(why)) = (
            v.get("error").and_then(|x| x.as_str()),
            v.get("error_description").and_then(|x| x.as_str()),
        ) && !why.is_empty()
        {
            return format!("{code}: {why}");
        }
        for key in ["errorString", "errorMsg", "message", "error", "detail"] {
            if let Some(s) = v.get(key).and_then(|x| x.as_str())
                && !s.is_empty()
            {
                return s.to_string();
            }
        }
    }
    let text: String = body.trim().chars().take(300).collect();
    if text.is_empty() {
        "no details given".into()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::vendor_message;

    #[test]
    fn vendor_words_come_from_the_usual_fields_and_an_oauth2_error_keeps_its_description() {
        assert_eq!(
            vendor_message(r#"{"error":"invalid_grant","error_description":"Token expired."}"#),
            "invalid_grant: Token expired."
        );
        assert_eq!(
            vendor_message(r#"{"error":"invalid_grant","error_description":""}"#),
            "invalid_grant"
        );
        assert_eq!(
            vendor_message(r#"{"errorString":"Wrong password.","error":"11"}"#),
            "Wrong password."
        );
        assert_eq!(
            vendor_message("  Service Unavailable \n"),
            "Service Unavailable"
        );
        assert_eq!(vendor_message(""), "no details given");
    }
}
