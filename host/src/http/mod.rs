//! The HTTP surface, beside the data flow: one server (`[http]`) for bots'
//! endpoints, the admin API, the dashboard, metrics and health. Every
//! request is authenticated ([`auth`]) except `GET /health`, the
//! dashboard's `/assets/*` and `/signin` (GET and POST), and the endpoints
//! of bots with `http_role = "public"`; every API error is JSON
//! ([`error`]).

pub mod api;
pub mod auth;
pub mod bots;
pub mod dashboard;
pub mod error;
pub mod metrics;

use std::future::Future;
use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use axum::Router;
use axum::routing::get;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;

use crate::config::HttpConfig;
use crate::journal::Journal;
use crate::runtime::Runtime;
use crate::server::Server;

/// What every handler can reach.
pub struct Shared {
    pub journal: Journal,
    pub runtime: Arc<Runtime>,
    pub auth: Arc<auth::Auth>,
    /// Largest request body accepted, in bytes.
    pub max_body: usize,
    /// Puts a re-read configuration in force.
    pub reloader: Arc<crate::reload::Reloader>,
    /// Wakes delivery after a resend.
    pub outbox: crate::delivery::OutboxSignal,
}

/// The handlers' state: cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
    pub fn new(shared: Shared) -> Self {
        AppState(Arc::new(shared))
    }
}

/// Every route.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics::metrics))
        .route("/ready", get(metrics::ready))
        .nest("/api/v1", api::router())
        .merge(dashboard::routes())
        .merge(bots::routes())
        .fallback(error::no_route)
        .method_not_allowed_fallback(error::wrong_method)
        .with_state(state)
}

/// `GET /health`: the process is up (no authentication).
async fn health() -> &'static str {
    "ok\n"
}

/// Binds `[http] listen`; the returned future serves until the process ends.
pub async fn bind(cfg: &HttpConfig, state: AppState) -> Result<impl Future<Output = ()> + use<>> {
    let server = Server::bind("http", &cfg.listen, cfg.tls.as_ref(), cfg.max_connections)
        .await
        .context("http")?;
    tracing::info!(listen = %server.local_addr()?, tls = cfg.tls.is_some(), "HTTP server listening");
    let app = router(state);
    Ok(server.serve(move |stream, peer: SocketAddr| {
        let app = app.clone();
        async move {
            let service = TowerToHyperService::new(app);
            let served = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(30))
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(e) = served {
                tracing::debug!(%peer, "HTTP connection ended: {e}");
            }
        }
    }))
}
