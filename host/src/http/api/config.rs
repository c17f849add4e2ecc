//! `POST /api/v1/config/reload` (write): re-read the configuration and put
//! it in force; an invalid file is answered 422 naming the key (the old
//! configuration stays), a part that cannot start (a port in use) 500.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use crate::http::AppState;
use crate::http::auth::Writer;
use crate::http::error::ApiError;
use crate::reload::{ReloadError, Reloaded};

pub async fn reload(
    State(state): State<AppState>,
    Writer(caller): Writer,
) -> Result<Json<Reloaded>, ApiError> {
    caller.audit("config-reload", "configuration");
    state.reloader.reload().await.map(Json).map_err(|e| {
        let status = match e {
            ReloadError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ReloadError::Partial(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string())
    })
}
