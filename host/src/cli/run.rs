//! `interlink run`: wires the stages together and runs until stopped.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::config::Config;
use crate::intake::Intake;
use crate::journal::{self, Journal};
use crate::runtime::cache::CompileCache;
use crate::runtime::engine::{BotEngine, Limits};
use crate::runtime::replies::Replies;
use crate::runtime::{Runtime, watcher};
use crate::{delivery, triggers};

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
    runtime.block_on(serve(cfg))?;
    Ok(ExitCode::SUCCESS)
}

async fn serve(cfg: Arc<Config>) -> Result<()> {
    crate::telemetry::install()?;
    let max_bytes = cfg.journal.max_size_mb.map(|mb| mb * 1024 * 1024);
    let journal = Journal::open_capped(&cfg.journal.path, max_bytes)
        .with_context(|| format!("cannot open journal {}", cfg.journal.path.display()))?;
    let limits = Limits::new(cfg.plugins.memory_mb, cfg.plugins.timeout_ms);
    let cache = CompileCache::open(&cfg.cache_dir(), &cfg.cache_key_path())?;
    let engine = BotEngine::new(limits, Some(cache))?;
    tracing::info!(
        journal = %cfg.journal.path.display(),
        pooling = engine.pooled(),
        memory_mb = cfg.plugins.memory_mb,
        timeout_ms = cfg.plugins.timeout_ms,
        "starting"
    );
    let outbox = delivery::start(&cfg.destinations, &journal)?;
    let replies = Arc::new(Replies::default());
    let rt = Runtime::new(
        engine,
        journal.clone(),
        cfg.clone(),
        outbox,
        replies.clone(),
    );
    // Bots first, so that nothing a trigger takes is routed before they are.
    watcher::start(rt.clone()).await?;
    let intake = Intake::new(journal.clone(), rt.clone());
    for listener in cfg.listeners.clone() {
        let bot_timeout_ms = cfg.plugins.timeout_ms;
        let serve =
            triggers::mllp::bind(listener, intake.clone(), replies.clone(), bot_timeout_ms).await?;
        tokio::spawn(serve);
    }
    let (cron, cron_intake) = (cfg.cron.clone(), intake.clone());
    tokio::spawn(async move {
        if let Err(e) = triggers::cron::run(cron, cron_intake).await {
            tracing::error!("cron scheduler stopped: {e:#}");
        }
    });
    for folder in cfg.folders.clone() {
        let intake = intake.clone();
        let name = folder.name.clone();
        tokio::spawn(async move {
            if let Err(e) = triggers::folder::run(folder, intake).await {
                tracing::error!(source = %name, "folder stopped: {e:#}");
            }
        });
    }
    for source in cfg.sftp_sources.clone() {
        let name = source.name.clone();
        triggers::sftp::start(source, &cfg.cron.timezone, intake.clone())
            .with_context(|| format!("sftp source {name:?}"))?;
    }
    if let Some(http) = &cfg.http {
        let tokens = crate::http::auth::Tokens::from_config(http).context("http")?;
        let auth = crate::http::auth::Auth::new(
            tokens,
            Duration::from_secs(http.session_hours * 3600),
        );
        let state = crate::http::AppState::new(crate::http::Shared {
            journal: journal.clone(),
            runtime: rt.clone(),
            intake: intake.clone(),
            auth,
            max_body: http.max_body_kb * 1024,
        });
        tokio::spawn(crate::http::bind(http, state).await?);
    }
    tokio::spawn(purge_old_events(journal, cfg.journal.retention_days));
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
