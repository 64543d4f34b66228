//! The REST API: `POST /api/v1/backtest/run`, `GET` and `DELETE /api/v1/backtest/{id}`,
//! `GET /api/v1/backtests`. Every error is JSON: `{"error": "...", "field": "..."}`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::App;
use crate::access::{self, Action};
use crate::data;
use crate::error::ApiError;
use crate::request::parse_request;
use crate::runs::{CancelError, DataSource, StartError};

/// `Retry-After` of a 429: a default run takes about 15 s.
const RETRY_AFTER_SECS: u64 = 5;

/// `POST /api/v1/backtest/run`.
pub async fn start_run(
    State(app): State<App>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let caller = access::authorize(&app, &headers, Action::Start)?;
    let mut spec = parse_request(&body, app.settings.max_run)?;
    if let DataSource::Csv { path, file, .. } = &mut spec.data {
        let Some(dir) = app.settings.data_dir.clone() else {
            return Err(data::disabled());
        };
        let requested = path.to_string_lossy().into_owned();
        // Opening can block (network file systems): off the runtime's threads.
        let opened = tokio::task::spawn_blocking(move || dir.open(&requested))
            .await
            .map_err(data::internal)??;
        *file = Some(opened);
    }
    let id = spec.id.as_str().to_owned();
    match app.runs.start(spec, caller.owner()) {
        Ok(()) => Ok((
            StatusCode::ACCEPTED,
            Json(json!({ "backtest_id": id, "status": "running" })),
        )
            .into_response()),
        Err(e @ StartError::Duplicate(_)) => {
            Err(ApiError::new(StatusCode::CONFLICT, e.to_string()).about("backtest_id"))
        }
        Err(e @ StartError::Busy { .. }) => {
            Err(ApiError::new(StatusCode::TOO_MANY_REQUESTS, e.to_string())
                .retry_after(RETRY_AFTER_SECS))
        }
        Err(e @ StartError::Thread(_)) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            e.to_string(),
        )
        .retry_after(RETRY_AFTER_SECS)),
    }
}

/// `GET /api/v1/backtest/{id}`: 403 for a run the caller's token does not grant.
pub async fn get_run(
    State(app): State<App>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    access::authorize(&app, &headers, Action::View(&id))?;
    match app.runs.get(&id) {
        Some(detail) => Ok(Json(detail).into_response()),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no backtest with id `{id}`"),
        )),
    }
}

/// `DELETE /api/v1/backtest/{id}`: cancels a running run (202); 404 for an unknown id,
/// 409 for a run that has finished; 403 without scope `cancel` or for a run the token
/// does not grant.
pub async fn cancel_run(
    State(app): State<App>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    access::authorize(&app, &headers, Action::Cancel(&id))?;
    match app.runs.cancel(&id) {
        Ok(()) => Ok((
            StatusCode::ACCEPTED,
            Json(json!({ "backtest_id": id, "status": "cancelling" })),
        )
            .into_response()),
        Err(e @ CancelError::NotFound(_)) => {
            Err(ApiError::new(StatusCode::NOT_FOUND, e.to_string()))
        }
        Err(e @ CancelError::Finished { .. }) => {
            Err(ApiError::new(StatusCode::CONFLICT, e.to_string()))
        }
    }
}

/// `GET /api/v1/backtests`: the runs the caller may see.
pub async fn list_runs(
    State(app): State<App>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let caller = access::authorize(&app, &headers, Action::List)?;
    Ok(Json(app.runs.list(|id| caller.sees_id(id))))
}

/// Any other path.
pub async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no such path")
}

/// A known path with another method.
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed on this path",
    )
}
