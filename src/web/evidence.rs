//! `POST /events/{seq}/evidence`: the evidence package of an event's case, as a download, for the people who
//! work cases (owners, and investigators of the event's store). It is made on request (stills and clips are
//! fetched from the camera systems then) and recorded in the audit log with its manifest's SHA-256 before it
//! is sent; see [`crate::evidence`] for what is in it.

use std::io::{Seek, SeekFrom};

use axum::body::Body;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokio_util::io::ReaderStream;

use super::AppState;
use super::auth::{Cases as CasesAccess, Refusal, Signed};
use super::cases::CaseForm;
use super::pages::{PageError, event_response};
use crate::clock::now_ms;
use crate::evidence::{EvidenceError, Sources, export};
use crate::retention::Actor;

/// A file for the package while it is made and sent: in the system's temporary folder, its name removed at
/// once, so it goes when the download ends (or fails) and nobody else can open it meanwhile.
fn scratch_file() -> std::io::Result<std::fs::File> {
    let path = std::env::temp_dir().join(format!("tillmark-evidence-{}.zip", uuid::Uuid::new_v4()));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)?;
    std::fs::remove_file(&path)?;
    Ok(file)
}

#[derive(Debug, Deserialize)]
pub struct EvidenceParams {
    #[serde(default)]
    csrf: String,
}

pub async fn download(
    State(state): State<AppState>,
    Signed(viewer, _): Signed<CasesAccess>,
    Path(seq): Path<String>,
    form: Result<Form<EvidenceParams>, FormRejection>,
) -> Result<Response, Response> {
    let Ok(Form(params)) = form else {
        return Err(Refusal::BadForm.into_response());
    };
    viewer
        .check_csrf(&params.csrf)
        .map_err(IntoResponse::into_response)?;
    let page = async |status: StatusCode, case_form: Option<CaseForm>| {
        event_response(&state, &viewer, &seq, status, case_form)
            .await
            .into_response()
    };
    let Ok(number) = seq.parse::<i64>() else {
        return Err(page(StatusCode::NOT_FOUND, None).await);
    };
    let file = match scratch_file() {
        Ok(file) => file,
        Err(e) => {
            tracing::error!(error = %e, "No scratch file for an evidence package.");
            return Err(PageError::unavailable().into_response());
        }
    };
    let sources = Sources {
        store: &*state.store,
        config: &state.config,
        integrations: &state.integrations,
        cameras: &state.cameras,
    };
    let actor = Actor {
        name: viewer.user.name.clone(),
        address: Some(viewer.address.clone()),
    };
    match export(&sources, number, &viewer.scope(), &actor, now_ms(), file).await {
        Ok(mut package) => {
            if let Err(e) = package.out.seek(SeekFrom::Start(0)) {
                tracing::error!(error = %e, "An evidence package could not be read back.");
                return Err(PageError::unavailable().into_response());
            }
            let body = Body::from_stream(ReaderStream::new(tokio::fs::File::from_std(package.out)));
            Ok((
                [
                    (header::CONTENT_TYPE, "application/zip".to_string()),
                    (
                        header::CONTENT_DISPOSITION,
                        format!("attachment; filename=\"{}\"", package.name),
                    ),
                    // It shows a shop's floor and a person's work: never kept by a cache on the way.
                    (header::CACHE_CONTROL, "no-store".to_string()),
                ],
                body,
            )
                .into_response())
        }
        // Another store's event is "not found", exactly as one that does not exist.
        Err(EvidenceError::NoEvent(_)) => Err(page(StatusCode::NOT_FOUND, None).await),
        Err(EvidenceError::NoCase(_)) => {
            let form = CaseForm {
                action: "evidence".into(),
                outcome: None,
                text: String::new(),
                problem: "no_case",
            };
            Err(page(StatusCode::CONFLICT, Some(form)).await)
        }
        Err(EvidenceError::Store(e)) => Err(PageError::from(e).into_response()),
        Err(e) => {
            tracing::error!(error = %e, event = number, "An evidence package could not be made.");
            Err(PageError::unavailable().into_response())
        }
    }
}
