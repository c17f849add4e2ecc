//! `POST /api/v1/config/reload` (write): re-read the configuration and put
//! it in force, or answer 422 naming the key and keep the old one.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use crate::http::AppState;
use crate::http::auth::Writer;
use crate::http::error::ApiError;
use crate::reload::Reloaded;

pub async fn reload(
    State(state): State<AppState>,
    Writer(caller): Writer,
) -> Result<Json<Reloaded>, ApiError> {
    caller.audit("config-reload", "configuration");
    state.reloader.reload().await.map(Json).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("configuration not reloaded, still running on the old one: {e:#}"),
        )
    })
}
