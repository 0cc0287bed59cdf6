//! The web index: server-rendered pages for people and a JSON API for scripts. It only reads the store, on its
//! own connections, so a slow page never holds up ingest or delivery.

mod api;
mod audit;
pub mod auth;
mod cases;
mod cashiers;
mod dead_letters;
mod error;
mod evidence;
mod exceptions;
mod footage;
mod format;
pub mod i18n;
mod local_path;
pub mod metrics;
mod openapi;
mod pages;
mod people;
mod signin;
mod thumbnail;
mod timeline;
mod tokens;
mod view;

pub use view::iso_utc;
// What an evidence package shows as the index does: the event, its footage, the register's timeline.
pub(crate) use footage::target as audit_target;
pub(crate) use timeline::{Span as TimelineSpan, span_csv as timeline_csv};
pub(crate) use view::{camera_name, event_view};

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
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
    /// Each camera system's delivery lane, for its concurrency and latency.
    pub lanes: crate::delivery::Lanes,
    /// What the database is failing, if anything, for `/healthz`.
    pub health: crate::store::StoreHealth,
    /// What `/metrics` reports.
    pub metrics: crate::metrics::Metrics,
}

/// Declares every route once: the router is built from this list, and [`ROUTES`] lists it, so a test can walk
/// every route (sign-in, roles, store scopes) and a new one cannot be left out.
macro_rules! index {
    ($($method:ident $path:literal => $handler:expr,)*) => {
        /// Every route of the index, as `(method, path)`.
        pub const ROUTES: &[(&str, &str)] = &[$((stringify!($method), $path)),*];

        fn routes() -> Router<AppState> {
            Router::new()$(.route($path, axum::routing::$method($handler)))*
        }
    };
}

index! {
    get "/healthz" => api::healthz,
    get "/static/style.css" => pages::style,
    get "/login" => signin::form,
    get "/lang" => i18n::switch,
    post "/login" => signin::sign_in,
    post "/login/code" => signin::sign_in_code,
    post "/logout" => signin::sign_out,
    get "/account/password" => signin::password_form,
    post "/account/password" => signin::change_password,
    post "/account/timezone" => signin::change_timezone,
    get "/" => pages::events,
    get "/events/{seq}" => pages::event,
    post "/events/{seq}/case" => cases::change_case,
    post "/events/{seq}/evidence" => evidence::download,
    get "/events/{seq}/footage/{n}" => footage::open,
    get "/events/{seq}/bookmarks/{id}/thumbnail" => thumbnail::bookmark_thumbnail,
    get "/timeline" => timeline::page,
    get "/timeline.csv" => timeline::csv,
    get "/cashiers" => cashiers::page,
    get "/exceptions" => exceptions::page,
    get "/dead-letters" => dead_letters::page,
    post "/dead-letters/dismiss" => dead_letters::dismiss,
    get "/integrations" => pages::integrations,
    get "/audit" => audit::page,
    get "/people" => people::page,
    post "/people/add" => people::add,
    post "/people/access" => people::change_access,
    post "/people/password" => people::reset_password,
    post "/people/remove" => people::remove,
    get "/tokens" => tokens::page,
    post "/tokens/revoke" => tokens::revoke,
    get "/api/events" => api::events,
    get "/api/events/{seq}" => api::event,
    get "/api/dead-letters" => api::dead_letters,
    get "/api/exceptions" => api::exceptions,
    get "/api/openapi.json" => openapi::document,
}

/// The routes a signed-out visitor may reach: health for monitoring, the sign-in form and its second step (the
/// authenticator code), its stylesheet, the language switch, and the API's description (the document in the
/// repository, no data).
pub const PUBLIC_ROUTES: &[&str] = &[
    "/healthz",
    "/static/style.css",
    "/login",
    "/login/code",
    "/lang",
    "/api/openapi.json",
];

pub fn router(state: AppState) -> Router {
    // `/metrics` is none of the index's routes: it is there only when `[metrics]` puts it on this port, and it
    // takes its own bearer token, not a person's sign-in.
    let routes = match state.config.metrics {
        crate::config::MetricsConfig::WebPort { .. } => {
            routes().route("/metrics", axum::routing::get(metrics::scrape))
        }
        _ => routes(),
    };
    routes
        .layer(axum::middleware::map_response_with_state(
            state.clone(),
            pages::security_headers,
        ))
        .layer(axum::middleware::from_fn(i18n::locale))
        .with_state(state)
}

/// Serves until `cancel`, then finishes requests in progress; over HTTPS when `tls` is given.
pub async fn serve(
    listener: tokio::net::TcpListener,
    tls: Option<axum_server::tls_rustls::RustlsConfig>,
    state: AppState,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    let Some(tls) = tls else {
        return axum::serve(listener, app)
            .with_graceful_shutdown(async move { cancel.cancelled().await })
            .await;
    };
    let handle = axum_server::Handle::new();
    tokio::spawn({
        let handle = handle.clone();
        async move {
            cancel.cancelled().await;
            handle.graceful_shutdown(None);
        }
    });
    axum_server::from_tcp_rustls(listener.into_std()?, tls)?
        .handle(handle)
        .serve(app)
        .await
}
