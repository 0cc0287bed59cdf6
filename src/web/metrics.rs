//! `/metrics` for Prometheus ([`crate::metrics`] writes it): on a listener of its own (`[metrics] listen`), or
//! on the index's port behind the bearer token of `[metrics] token_env`. Never behind a person's sign-in: a
//! scraper has no session, and a person's API token would let it read every event too.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio_util::sync::CancellationToken;

use super::AppState;
use crate::metrics::{CONTENT_TYPE, ScrapeError};
use crate::secret::Secret;

pub async fn scrape(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(token) = state.config.metrics.token()
        && !bearer_matches(&headers, token)
    {
        let mut refused = (
            StatusCode::UNAUTHORIZED,
            "send the [metrics] token as Authorization: Bearer <token>\n",
        )
            .into_response();
        refused
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return refused;
    }
    let systems: Vec<String> = state
        .config
        .camera_systems
        .iter()
        .map(|s| s.id.clone())
        .collect();
    let scraped = state
        .metrics
        .render(
            &*state.store,
            (&state.lanes, &state.health),
            state.intake.receiving(),
            &systems,
        )
        .await;
    match scraped {
        Ok(text) => {
            state.health.answered("metrics");
            ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response()
        }
        Err(e) => {
            if let ScrapeError::Store(e) = &e {
                state.health.failed("metrics", e);
            }
            tracing::warn!(error = %e, "Could not answer a metrics scrape.");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "the database is not available right now\n",
            )
                .into_response()
        }
    }
}

/// Whether the request carries `token` as its bearer token. The digests, not the tokens, are compared, in
/// constant time: they are of equal length, so neither the token's bytes nor its length show in the timing.
fn bearer_matches(headers: &HeaderMap, token: &Secret) -> bool {
    let Some(sent) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    Sha256::digest(sent.trim().as_bytes())
        .ct_eq(&Sha256::digest(token.expose().as_bytes()))
        .into()
}

/// Serves `/metrics` alone on `listener` until `cancel`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", axum::routing::get(scrape))
        .with_state(state);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { cancel.cancelled().await })
        .await
}
