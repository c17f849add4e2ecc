//! `interlink run`: wires the stages together and runs until stopped.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::cluster;
use crate::config::Config;
use crate::delivery::OutboxSignal;
use crate::http::auth::{Auth, Tokens};
use crate::intake::Intake;
use crate::journal::{self, Journal};
use crate::reload::Reloader;
use crate::runtime::cache::CompileCache;
use crate::runtime::engine::{BotEngine, Limits};
use crate::runtime::replies::Replies;
use crate::runtime::{Runtime, watcher};
use crate::services::Services;

/// How often old, finished events are purged.
const PURGE_EVERY: Duration = Duration::from_secs(3600);

pub fn run(config: Option<PathBuf>) -> Result<ExitCode> {
    let cfg = Arc::new(Config::load_or_default(config.as_deref())?);
    match &config {
        Some(p) => tracing::info!("configuration {}", p.display()),
        None => tracing::info!("no --config given: using the embedded default configuration"),
    }
    crate::phi::show(cfg.log.phi);
    if cfg.log.phi {
        tracing::warn!(
            "log.phi = true: file names and bots' error texts are logged and may carry patient data"
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(cfg, config))?;
    Ok(ExitCode::SUCCESS)
}

async fn serve(cfg: Arc<Config>, config: Option<PathBuf>) -> Result<()> {
    crate::telemetry::install()?;
    let journal = crate::journal::open_configured(&cfg.journal)?;
    let takeover = Duration::from_secs(cfg.journal.takeover_s);
    let joining = journal.clone();
    let cluster = tokio::task::spawn_blocking(move || cluster::join(&joining, takeover)).await??;
    let limits = Limits::new(cfg.plugins.memory_mb, cfg.plugins.timeout_ms);
    let cache = CompileCache::open(&cfg.cache_dir(), &cfg.cache_key_path())?;
    let engine = BotEngine::new(limits, Some(cache))?;
    tracing::info!(
        journal = %journal.describe(),
        pooling = engine.pooled(),
        memory_mb = cfg.plugins.memory_mb,
        timeout_ms = cfg.plugins.timeout_ms,
        "starting"
    );
    let outbox = OutboxSignal::default();
    let replies = Arc::new(Replies::default());
    let rt = Runtime::new(
        engine,
        journal.clone(),
        cfg.clone(),
        outbox.clone(),
        replies.clone(),
        cluster.clone(),
    );
    // Bots first, so that nothing a trigger takes is routed before they are.
    watcher::start(rt.clone()).await?;
    cluster::serve(&cluster, &journal, rt.clone());
    let intake = Intake::new(journal.clone(), rt.clone());
    let services = Services::start(&cfg, intake, replies, outbox.clone(), rt.clone()).await?;
    let auth = match &cfg.http {
        Some(http) => Some(Arc::new(Auth::new(
            Tokens::from_config(http).context("http")?,
            Duration::from_secs(http.session_hours * 3600),
        ))),
        None => None,
    };
    let reloader = Arc::new(Reloader::new(config, rt.clone(), services, auth.clone()));
    if let (Some(http), Some(auth)) = (&cfg.http, auth) {
        let state = crate::http::AppState::new(crate::http::Shared {
            journal: journal.clone(),
            runtime: rt.clone(),
            auth,
            max_body: http.max_body_kb * 1024,
            reloader: reloader.clone(),
            outbox: outbox.clone(),
        });
        tokio::spawn(crate::http::bind(http, state).await?);
    }
    tokio::spawn(reload_on_sighup(reloader));
    tokio::spawn(cluster.when_leading(purge_old_events(journal, cfg.journal.retention_days)));
    tracing::info!(bots = ?rt.bot_names(), "ready");
    shutdown_signal().await;
    tracing::info!("stopping");
    Ok(())
}

async fn purge_old_events(journal: Journal, retention_days: u32) {
    loop {
        let cutoff = journal::now_ms() - i64::from(retention_days) * 86_400_000;
        match journal.purge(cutoff).await {
            Ok(n) if n > 0 => {
                tracing::info!("purged {n} events older than {retention_days} days")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("purge failed: {e}"),
        }
        tokio::time::sleep(PURGE_EVERY).await;
    }
}

/// Reloads the configuration on each SIGHUP, logging what happened.
async fn reload_on_sighup(reloader: Arc<Reloader>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("cannot handle SIGHUP (no reload on it): {e}");
                return;
            }
        };
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading the configuration");
            let _ = reloader.reload().await;
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
