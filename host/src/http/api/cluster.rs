//! `GET /api/v1/cluster`: the hosts sharing the journal, their heartbeats
//! and what each owns (`hosts` is empty on SQLite, which has one host).

use axum::Json;
use axum::extract::State;

use crate::cluster::view::{ClusterView, view};
use crate::http::AppState;
use crate::http::auth::Caller;
use crate::http::error::ApiError;

pub async fn get(_: Caller, State(state): State<AppState>) -> Result<Json<ClusterView>, ApiError> {
    let journal = state.journal.clone();
    let cluster = crate::blocking::run(move || Ok(view(&journal.reader()?)?)).await?;
    Ok(Json(cluster))
}
