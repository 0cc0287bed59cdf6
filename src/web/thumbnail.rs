//! Thumbnails: a still of the camera at a bookmark's moment, fetched from the vendor with the camera system's
//! credentials, which never reach the browser; the page only ever loads images from tillmark itself.

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::auth::{Events, Signed};
use crate::store::Job;

pub async fn bookmark_thumbnail(
    State(state): State<AppState>,
    Signed(viewer, _): Signed<Events>,
    Path((seq, id)): Path<(String, String)>,
) -> Response {
    let (Ok(seq), Ok(id)) = (seq.parse::<i64>(), id.parse::<i64>()) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let event = match state.store.event(seq, &viewer.scope()).await {
        Ok(Some(event)) => event,
        Ok(None) => return StatusCode::NOT_FOUND.into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "Cannot read an event for its thumbnail.");
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    };
    let Some(bookmark) = event.bookmarks.iter().find(|b| b.id == id).cloned() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let Some(system) = state.cameras.get(&bookmark.system) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let job = Job {
        bookmark,
        maybe_created: false,
        event,
    };
    match system.thumbnail(&job).await {
        Ok(Some(image)) => (
            [
                (header::CONTENT_TYPE, image.content_type),
                // The moment is in the past: its still never changes. Private: it shows a shop's floor.
                (header::CACHE_CONTROL, "private, max-age=86400".to_string()),
            ],
            image.bytes,
        )
            .into_response(),
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Err(e) => {
            tracing::warn!(system = %job.bookmark.system, error = %e, "Thumbnail not available.");
            StatusCode::BAD_GATEWAY.into_response()
        }
    }
}
