//! Webhooks: a JSON POST, signed as Stripe signs its webhooks, with an idempotency key that every attempt of
//! one outbox row repeats.

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::Failure;
use crate::secret::{Secret, redact};

/// The client every webhook goes through: a time limit, and no redirects, since a receiver that moved should
/// be configured where it is rather than followed to wherever it points (with the body and its signature).
pub(super) fn client(timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .user_agent(concat!("tillmark/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| e.to_string())
}

/// The `Tillmark-Signature` value for `body` sent at `t` (unix seconds): `t=<t>,v1=<hex HMAC-SHA256 of
/// "<t>.<body>" under the secret>`.
pub fn signature(secret: &str, t: i64, body: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(format!("{t}.{body}").as_bytes());
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// The most of a refusing receiver's answer kept in the outbox and the log.
const ANSWER_KEPT: usize = 200;

pub(super) async fn send(
    http: &reqwest::Client,
    url: &url::Url,
    secret: Option<&Secret>,
    key: &str,
    body: &str,
) -> Result<(), Failure> {
    let mut request = http
        .post(url.clone())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("Idempotency-Key", key)
        .body(body.to_string());
    if let Some(secret) = secret {
        request = request.header(
            "Tillmark-Signature",
            // The wall clock's, whatever the alerter was told: the receiver checks it against its own.
            signature(
                secret.expose(),
                crate::clock::now_ms().div_euclid(1000),
                body,
            ),
        );
    }
    let response = request.send().await.map_err(|e| {
        // The URL is left out: Slack's and Teams' webhook URLs are themselves secrets.
        let e = e.without_url();
        let what = if e.is_timeout() {
            "timed out"
        } else if e.is_connect() {
            "could not connect"
        } else {
            "failed"
        };
        Failure::Retry {
            error: format!("the webhook {what}: {e}"),
            retry_after: None,
        }
    })?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let retry_after = crate::camera::retry_after(response.headers());
    let answer = response.text().await.unwrap_or_default();
    // A receiver may echo its own address, and a Slack or Teams webhook's address is a secret.
    let mut secrets: Vec<&str> = vec![url.as_str(), url.path()];
    secrets.extend(secret.map(Secret::expose));
    let mut answer = redact(answer.trim(), &secrets);
    if let Some((end, _)) = answer.char_indices().nth(ANSWER_KEPT) {
        answer.truncate(end);
    }
    let error = format!("the webhook answered HTTP {}: {answer}", status.as_u16());
    if status.is_server_error() || status.as_u16() == 408 || status.as_u16() == 429 {
        Err(Failure::Retry { error, retry_after })
    } else {
        Err(Failure::Refused(error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_hmac_of_the_time_a_dot_and_the_body() {
        // Computed independently: printf '%s' '1700000000.{"a":1}' | openssl dgst -sha256 -hmac whsec-test
        assert_eq!(
            signature("whsec-test", 1_700_000_000, r#"{"a":1}"#),
            "t=1700000000,v1=fed7a1a6c799a6367d73724d76bc70c16678908a32a879cd1ded6565ac05cece"
        );
    }
}
