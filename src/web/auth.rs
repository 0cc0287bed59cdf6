//! Who is asking, and what they may see. Every page and API route but `/healthz`, `/login` and the stylesheet
//! takes a [`Signed`] extractor: a request without a session cookie or an API token never reaches a handler,
//! and one whose role lacks the access answers 403. Store scopes are not checked here but handed to the store
//! ([`Viewer::scope`]), which applies them in its queries.
//!
//! Sessions: a random cookie (HttpOnly, SameSite=Lax, Secure when served over TLS), stored only as its digest,
//! ended after `[web] session_idle` unused. Each session has a CSRF token that every form carries back
//! ([`Viewer::check_csrf`]). API tokens (`Authorization: Bearer tm_...`) sign a script in as their user; they
//! carry no CSRF token because a browser never sends them on its own.

use std::marker::PhantomData;
use std::net::SocketAddr;
use subtle::ConstantTimeEq;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;

use super::AppState;
use super::format::Zone;
use super::pages::render;
use crate::accounts::{Role, User, token_digest};
use crate::clock::now_ms;
use crate::config::{Config, StoreConfig};
use crate::store::{NewAuditEntry, StoreScope};

pub const SESSION_COOKIE: &str = "tillmark_session";

/// A signed-in person (or script) and where the request came from.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub user: User,
    /// The session's CSRF token; `None` for an API token.
    pub csrf: Option<String>,
    /// The client's address, for the audit log.
    pub address: String,
}

impl Viewer {
    /// The stores whose events this person may see: all for an owner, their own for a manager or an
    /// investigator, none for an integrator.
    pub fn scope(&self) -> StoreScope {
        match self.user.role {
            Role::Owner => StoreScope::All,
            Role::Manager | Role::Investigator => StoreScope::Only(self.user.stores.clone()),
            Role::Integrator => StoreScope::Only(Vec::new()),
        }
    }

    /// The configured stores this person may see, for the pages' store pickers.
    pub fn stores<'c>(&self, config: &'c Config) -> Vec<&'c StoreConfig> {
        let scope = self.scope();
        config
            .stores
            .iter()
            .filter(|s| scope.allows(&s.id))
            .collect()
    }

    /// The zone this person reads times in where no store names one (the audit log, the integrations and
    /// dead-letter pages, the footer): the one they chose, else the one their stores share (all stores' for an
    /// owner or an integrator, whose work is not one store's), else UTC.
    pub fn zone(&self, config: &Config) -> Zone {
        Zone::of_person(
            self.user.timezone.as_deref(),
            self.zone_stores(config).into_iter(),
        )
    }

    /// The zone this person gets when they choose none.
    pub fn stores_zone(&self, config: &Config) -> Zone {
        Zone::of_person(None, self.zone_stores(config).into_iter())
    }

    fn zone_stores<'c>(&self, config: &'c Config) -> Vec<&'c StoreConfig> {
        match self.user.role {
            Role::Owner | Role::Integrator => config.stores.iter().collect(),
            Role::Manager | Role::Investigator => self.stores(config),
        }
    }

    pub fn may(&self, access: Access) -> bool {
        access.roles().contains(&self.user.role)
    }

    /// A form's token must be the session's; an API token needs none (no browser sends it unasked).
    pub fn check_csrf(&self, sent: &str) -> Result<(), Refusal> {
        match &self.csrf {
            Some(token) if !constant_time_eq(token.as_bytes(), sent.as_bytes()) => {
                Err(Refusal::BadForm)
            }
            _ => Ok(()),
        }
    }

    /// Writes an entry of the audit log in this person's name. A log that cannot be written is logged, but
    /// does not refuse the person what they came for.
    pub async fn audit(
        &self,
        state: &AppState,
        action: &str,
        target: Option<String>,
        detail: Option<String>,
    ) {
        let entry = NewAuditEntry {
            at_ms: now_ms(),
            actor: Some(self.user.name.clone()),
            address: Some(self.address.clone()),
            action: action.to_string(),
            target,
            detail,
        };
        if let Err(e) = state.store.record(&entry).await {
            tracing::error!(error = %e, action, "An audit log entry could not be written.");
        }
    }
}

/// What a route gives access to; each names the roles that have it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Any signed-in person: their own account.
    Account,
    /// Events, their footage, the timeline and the cashier comparison (of the person's stores).
    Events,
    /// Opening, noting and closing cases.
    Cases,
    /// Camera systems and how their bookmarks stand.
    Integrations,
    /// Rejected messages (excerpts of masked payloads of any store), and dismissing them: for whoever fixes
    /// what sends them.
    DeadLetters,
    Audit,
    /// Everyone's API tokens, and revoking them.
    Tokens,
    /// The people who sign in: adding, their role and stores, password resets, removing.
    People,
}

impl Access {
    pub fn roles(self) -> &'static [Role] {
        use Role::*;
        match self {
            Access::Account => &[Owner, Manager, Investigator, Integrator],
            Access::Events => &[Owner, Manager, Investigator],
            Access::Cases => &[Owner, Investigator],
            Access::Integrations | Access::DeadLetters => &[Owner, Integrator],
            Access::Audit | Access::Tokens | Access::People => &[Owner],
        }
    }
}

/// The access a handler needs, as a type: `Signed<Events>`.
pub trait Need: Send + Sync + 'static {
    const ACCESS: Access;
}

macro_rules! needs {
    ($($name:ident),*) => {$(
        #[derive(Debug)]
        pub struct $name;
        impl Need for $name {
            const ACCESS: Access = Access::$name;
        }
    )*};
}
needs!(
    Account,
    Events,
    Cases,
    Integrations,
    DeadLetters,
    Audit,
    Tokens,
    People
);

/// A signed-in viewer who has the access `N`.
#[derive(Debug)]
pub struct Signed<N: Need>(pub Viewer, pub PhantomData<N>);

impl<N: Need> FromRequestParts<AppState> for Signed<N> {
    type Rejection = Refusal;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Refusal> {
        let api = parts.uri.path().starts_with("/api/");
        let Some(viewer) = viewer(parts, state).await? else {
            return Err(if api {
                Refusal::ApiSignIn
            } else {
                Refusal::SignIn {
                    next: parts
                        .uri
                        .path_and_query()
                        .map(|p| p.as_str().to_string())
                        .unwrap_or_else(|| "/".into()),
                }
            });
        };
        if !viewer.may(N::ACCESS) {
            return Err(Refusal::Forbidden {
                api,
                viewer: Box::new(viewer),
            });
        }
        Ok(Signed(viewer, PhantomData))
    }
}

/// The viewer a request's token or session cookie names, if any.
async fn viewer(parts: &Parts, state: &AppState) -> Result<Option<Viewer>, Refusal> {
    let unavailable = |_| Refusal::Unavailable {
        api: parts.uri.path().starts_with("/api/"),
    };
    let address = client_address(parts, &state.config.web);
    if let Some(token) = bearer(&parts.headers) {
        let user = state
            .store
            .token_user(&token_digest(token), now_ms())
            .await
            .map_err(unavailable)?;
        // A token given but not known is refused outright, never taken for "signed out".
        return match user {
            Some(user) => Ok(Some(Viewer {
                user,
                csrf: None,
                address,
            })),
            None => Err(Refusal::BadToken),
        };
    }
    let Some(cookie) = cookie(
        &parts.headers,
        &cookie_name(&state.config, SESSION_COOKIE, "/"),
    ) else {
        return Ok(None);
    };
    let session = state
        .store
        .session(
            &token_digest(cookie),
            now_ms(),
            state.config.web.session_idle.0,
        )
        .await
        .map_err(unavailable)?;
    Ok(session.map(|s| Viewer {
        user: s.user,
        csrf: Some(s.csrf),
        address,
    }))
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// One cookie's value from the request's `Cookie` headers.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The client's address, as an extractor for the routes that come before sign-in.
pub struct ClientAddress(pub String);

impl FromRequestParts<AppState> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(ClientAddress(client_address(parts, &state.config.web)))
    }
}

/// The client's address: the connection's peer, or for a request through a trusted proxy the address the
/// proxy appended last to `X-Forwarded-For` (earlier entries are whatever the client chose to send). Any other
/// peer's `X-Forwarded-For` is ignored.
fn client_address(parts: &Parts, web: &crate::config::WebConfig) -> String {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    if peer.is_some_and(|p| web.trusts_proxy(p))
        && let Some(forwarded) = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .rfind(|a| !a.is_empty())
    {
        return forwarded.to_string();
    }
    peer.map(|p| p.to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// A `Set-Cookie` value for one of tillmark's cookies: never readable by script, never sent by another
/// site's forms, only over TLS when the index is served over TLS. `max_age` 0 removes it.
pub fn set_cookie(
    config: &Config,
    name: &str,
    value: &str,
    path: &str,
    max_age_s: Option<i64>,
) -> HeaderValue {
    let name = cookie_name(config, name, path);
    let mut text = format!("{name}={value}; Path={path}; HttpOnly; SameSite=Lax");
    if let Some(age) = max_age_s {
        text.push_str(&format!("; Max-Age={age}"));
    }
    if config.web.served_over_tls() {
        text.push_str("; Secure");
    }
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// One of tillmark's cookies' names as browsers hold it. Over TLS it carries a prefix browsers enforce, so a
/// plain-HTTP page or another subdomain can neither set nor overwrite it: `__Host-` for a cookie of the whole
/// site (the session), `__Secure-` for one bound to a path (the sign-in form's).
pub fn cookie_name(config: &Config, name: &str, path: &str) -> String {
    match (config.web.served_over_tls(), path) {
        (false, _) => name.to_string(),
        (true, "/") => format!("__Host-{name}"),
        (true, _) => format!("__Secure-{name}"),
    }
}

/// Whether two tokens are equal, in a time that does not depend on where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// Why a request was not let through.
#[derive(Debug)]
pub enum Refusal {
    /// A page asked for while signed out: to the sign-in page, then back to `next`.
    SignIn {
        next: String,
    },
    ApiSignIn,
    BadToken,
    /// The viewer is boxed: a refusal travels in every handler's `Result`, and a person is large.
    Forbidden {
        api: bool,
        viewer: Box<Viewer>,
    },
    /// A form without this session's CSRF token: from another site, or from before a sign-out.
    BadForm,
    Unavailable {
        api: bool,
    },
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let json = |status: StatusCode, message: &str| {
            let mut r =
                (status, axum::Json(serde_json::json!({ "error": message }))).into_response();
            if status == StatusCode::UNAUTHORIZED {
                r.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            r
        };
        match self {
            Refusal::SignIn { next } => {
                let mut query = url::form_urlencoded::Serializer::new(String::new());
                query.append_pair("next", &next);
                Redirect::to(&format!("/login?{}", query.finish())).into_response()
            }
            Refusal::ApiSignIn => json(
                StatusCode::UNAUTHORIZED,
                "sign in first: send a personal API token as Authorization: Bearer <token> (tillmark token create NAME)",
            ),
            Refusal::BadToken => json(
                StatusCode::UNAUTHORIZED,
                "this API token is not known: it was never made, or its user was removed",
            ),
            Refusal::Forbidden { api: true, viewer } => json(
                StatusCode::FORBIDDEN,
                &format!(
                    "the {} role does not give access to this; ask an owner",
                    viewer.user.role.as_str()
                ),
            ),
            Refusal::Forbidden { api: false, viewer } => render(
                StatusCode::FORBIDDEN,
                "error.html",
                context! { page => "error", problem => "forbidden", detail => viewer.user.role.as_str(), nav => () },
            ),
            Refusal::BadForm => render(
                StatusCode::FORBIDDEN,
                "error.html",
                context! { page => "error", problem => "bad_form", detail => (), nav => () },
            ),
            Refusal::Unavailable { api: true } => json(
                StatusCode::SERVICE_UNAVAILABLE,
                "the database is not available right now",
            ),
            Refusal::Unavailable { api: false } => render(
                StatusCode::SERVICE_UNAVAILABLE,
                "error.html",
                context! { page => "error", problem => "unavailable", detail => (), nav => () },
            ),
        }
    }
}
