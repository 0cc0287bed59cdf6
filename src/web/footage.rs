//! `/events/{seq}/footage/{n}`: opens the n-th footage link of an event, after noting in the audit log who
//! opened which footage. The pages link here rather than to the camera system, so no opening goes unrecorded.

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::auth::{Events, Signed};
use super::view::event_footage;
use crate::store::EventRecord;

/// How the audit log names an event: enough to find it again, even after the event page is gone.
pub(crate) fn target(event: &EventRecord) -> String {
    format!(
        "event {}: {} at {}/{}, {}",
        event.seq, event.kind, event.store, event.register, event.at
    )
}

pub async fn open(
    State(state): State<AppState>,
    Signed(viewer, _): Signed<Events>,
    Path((seq, n)): Path<(String, String)>,
) -> Response {
    let (Ok(seq), Ok(n)) = (seq.parse::<i64>(), n.parse::<usize>()) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let event = match state.store.event(seq, &viewer.scope()).await {
        Ok(Some(event)) => event,
        Ok(None) => return StatusCode::NOT_FOUND.into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "Cannot read an event for its footage link.");
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    };
    let Some(link) = event_footage(&state.config, &state.integrations, &event)
        .into_iter()
        .nth(n)
    else {
        return StatusCode::NOT_FOUND.into_response();
    };
    // A footage link opens a camera system's viewer or app, never a script: whatever a definition or a config
    // template made of it, only these schemes leave here.
    let safe = crate::camera::FOOTAGE_SCHEMES
        .iter()
        .any(|s| link.url.starts_with(s));
    let (true, Ok(location)) = (safe, HeaderValue::from_str(&link.url)) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    viewer
        .audit(
            &state,
            "footage_opened",
            Some(target(&event)),
            Some(link.label),
        )
        .await;
    (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response()
}
