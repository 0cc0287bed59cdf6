//! The web index: server-rendered pages for people and a JSON API for scripts. It only reads the store, on its
//! own connections, so a slow page never holds up ingest or delivery.

mod api;
mod cashiers;
mod error;
mod format;
mod pages;
mod thumbnail;
mod timeline;
mod view;

pub use view::iso_utc;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::store::Store;

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub config: Arc<Config>,
    /// Whether events are arriving from the broker, for `/healthz`.
    pub intake: crate::ingest::Status,
    /// Vendor definitions, for their footage links.
    pub integrations: crate::camera::Integrations,
    /// The camera systems, for the thumbnails they serve.
    pub cameras: crate::camera::Cameras,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(api::healthz))
        .route("/api/events", get(api::events))
        .route("/api/events/{seq}", get(api::event))
        .route("/api/dead-letters", get(api::dead_letters))
        .route(
            "/events/{seq}/bookmarks/{id}/thumbnail",
            get(thumbnail::bookmark_thumbnail),
        )
        .merge(pages::routes())
        .with_state(state)
}

/// Serves until `cancel`, then finishes requests in progress.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    let app = router(state);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move { cancel.cancelled().await })
    .await
}
