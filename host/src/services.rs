//! The running parts a configuration asks for: MLLP listeners, drop
//! folders, SFTP pollers, DICOM worklist SCPs, the cron scheduler and the destinations' delivery
//! tasks. [`Services::start`] starts them; [`Services::apply`] brings them in
//! line with a reloaded configuration, stopping what was removed or
//! changed, starting what was added or changed, and leaving the rest
//! running untouched.
//!
//! Drop folders, SFTP pollers and cron run only on the host that leads the
//! hosts sharing a journal (`crate::cluster`); the others start them when
//! they take the lead.
//!
//! Stopping a listener or a drop folder ends its connections or its poll at
//! once; an SFTP poller (a thread) finishes the poll under way and stops at
//! its next wait. Anything a source had journaled stays journaled, and
//! anything it had not acknowledged is sent again by the peer (or taken
//! again from the folder or the server). Stopping a
//! destination leaves its queue in the journal; a message being sent is
//! sent again by the destination's next tasks (at least once).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use anyhow::{Context, Result};

use crate::cluster::Cluster;
use crate::config::{
    Config, CronConfig, DestinationConfig, DicomConfig, FolderConfig, ListenerConfig, SftpConfig,
};
use crate::delivery::{self, OutboxSignal};
use crate::intake::Intake;
use crate::journal::Journal;
use crate::runtime::Runtime;
use crate::runtime::replies::Replies;
use crate::triggers;

/// A running part (a task on the async runtime): stopped by
/// [`Running::stop`], or when dropped.
struct Running(tokio::task::JoinHandle<()>);

impl Running {
    /// Stops it; it is gone (its sockets closed) when this returns.
    async fn stop(mut self) {
        self.0.abort();
        let _ = (&mut self.0).await;
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Starts `work` to run once this host leads ([`Cluster::when_leading`]).
fn when_leading(cluster: &Cluster, work: impl Future<Output = ()> + Send + 'static) -> Running {
    Running(tokio::spawn(cluster.clone().when_leading(work)))
}

/// A source as configured.
#[derive(Clone, PartialEq)]
enum Source {
    Listener(Box<ListenerConfig>),
    Folder(Box<FolderConfig>),
    Sftp(Box<SftpConfig>),
    Dicom(Box<DicomConfig>),
}

impl Source {
    fn kind(&self) -> &'static str {
        match self {
            Source::Listener(_) => "listener",
            Source::Folder(_) => "folder",
            Source::Sftp(_) => "sftp source",
            Source::Dicom(_) => "dicom worklist",
        }
    }
}

/// Every source of `config`, by name (names are unique among sources).
fn sources(config: &Config) -> HashMap<String, Source> {
    let listeners = config
        .listeners
        .iter()
        .map(|l| (l.name.clone(), Source::Listener(Box::new(l.clone()))));
    let folders = config
        .folders
        .iter()
        .map(|f| (f.name.clone(), Source::Folder(Box::new(f.clone()))));
    let sftp = config
        .sftp_sources
        .iter()
        .map(|s| (s.name.clone(), Source::Sftp(Box::new(s.clone()))));
    let dicom = config
        .dicom
        .iter()
        .map(|d| (d.name.clone(), Source::Dicom(Box::new(d.clone()))));
    listeners.chain(folders).chain(sftp).chain(dicom).collect()
}

/// The running sources, scheduler and destinations.
pub struct Services {
    intake: Intake,
    journal: Journal,
    replies: Arc<Replies>,
    outbox: OutboxSignal,
    /// What DICOM worklist SCPs query their bots through.
    runtime: Arc<Runtime>,
    /// The bots' time limit, which application ACKs wait on.
    bot_timeout_ms: u64,
    sources: HashMap<String, (Source, Running)>,
    destinations: HashMap<String, (DestinationConfig, Vec<Running>)>,
    cron: (CronConfig, Running),
}

impl Services {
    /// Starts every source, the scheduler and every destination of `config`.
    pub async fn start(
        config: &Config,
        intake: Intake,
        replies: Arc<Replies>,
        outbox: OutboxSignal,
        runtime: Arc<Runtime>,
    ) -> Result<Services> {
        let cron = (
            config.cron.clone(),
            spawn_cron(&config.cron, &intake, runtime.cluster()),
        );
        let mut services = Services {
            journal: intake.journal().clone(),
            intake,
            replies,
            outbox,
            runtime,
            bot_timeout_ms: config.plugins.timeout_ms,
            sources: HashMap::new(),
            destinations: HashMap::new(),
            cron,
        };
        for d in &config.destinations {
            services.start_destination(d)?;
        }
        let mut all: Vec<_> = sources(config).into_iter().collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, source) in all {
            services
                .start_source(name, source, &config.cron.timezone)
                .await?;
        }
        Ok(services)
    }

    /// Brings the running parts in line with `config`; what changed is
    /// described in the returned lines. On an error (a port that cannot be
    /// bound), the parts before it have been changed and the rest not.
    pub async fn apply(&mut self, config: &Config) -> Result<Vec<String>> {
        let mut changes = Vec::new();
        if self.cron.0 != config.cron {
            let old = std::mem::replace(
                &mut self.cron,
                (
                    config.cron.clone(),
                    spawn_cron(&config.cron, &self.intake, self.runtime.cluster()),
                ),
            );
            old.1.stop().await;
            changes.push("cron restarted".to_string());
        }
        let gone: Vec<String> = self
            .destinations
            .iter()
            .filter(|(name, (cfg, _))| {
                !config
                    .destinations
                    .iter()
                    .any(|d| d.name == **name && d == cfg)
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in gone {
            if let Some((_, tasks)) = self.destinations.remove(&name) {
                for task in tasks {
                    task.stop().await;
                }
            }
            crate::status::registry().forget_destination(&name);
            changes.push(format!("destination {name:?} stopped"));
        }
        for d in &config.destinations {
            if !self.destinations.contains_key(&d.name) {
                self.start_destination(d)?;
                changes.push(format!("destination {:?} started", d.name));
            }
        }
        let mut wanted: Vec<_> = sources(config).into_iter().collect();
        wanted.sort_by(|a, b| a.0.cmp(&b.0));
        let gone: Vec<String> = self
            .sources
            .iter()
            .filter(|(name, (source, _))| !wanted.iter().any(|(n, s)| n == *name && s == source))
            .map(|(name, _)| name.clone())
            .collect();
        for name in gone {
            if let Some((source, running)) = self.sources.remove(&name) {
                running.stop().await;
                crate::status::registry().forget_source(&name);
                changes.push(format!("{} {name:?} stopped", source.kind()));
            }
        }
        for (name, source) in wanted {
            if !self.sources.contains_key(&name) {
                let line = format!("{} {name:?} started", source.kind());
                self.start_source(name, source, &config.cron.timezone)
                    .await?;
                changes.push(line);
            }
        }
        Ok(changes)
    }

    fn start_destination(&mut self, cfg: &DestinationConfig) -> Result<()> {
        let tasks = delivery::spawn(cfg, &self.journal, &self.outbox, self.runtime.cluster())
            .with_context(|| format!("destination {:?}", cfg.name))?;
        let running = tasks.into_iter().map(Running).collect();
        self.destinations
            .insert(cfg.name.clone(), (cfg.clone(), running));
        // Its queue may hold messages from before.
        self.outbox.ring();
        Ok(())
    }

    async fn start_source(&mut self, name: String, source: Source, timezone: &str) -> Result<()> {
        let cluster = self.runtime.cluster();
        let running = match &source {
            Source::Listener(l) => {
                let serve = triggers::mllp::bind(
                    (**l).clone(),
                    self.intake.clone(),
                    self.replies.clone(),
                    self.bot_timeout_ms,
                )
                .await?;
                Running(tokio::spawn(serve))
            }
            Source::Folder(f) => {
                let (folder, intake) = ((**f).clone(), self.intake.clone());
                when_leading(cluster, async move {
                    let name = folder.name.clone();
                    if let Err(e) = triggers::folder::run(folder, intake).await {
                        tracing::error!(source = %name, "folder stopped: {e:#}");
                    }
                })
            }
            Source::Dicom(d) => {
                let serve = triggers::dicom::bind((**d).clone(), self.runtime.clone()).await?;
                Running(tokio::spawn(serve))
            }
            Source::Sftp(s) => {
                let (sftp, timezone, intake) =
                    ((**s).clone(), timezone.to_string(), self.intake.clone());
                when_leading(cluster, async move {
                    let name = sftp.name.clone();
                    // The poller is a thread; it stops at its next wait once
                    // `_stop` is dropped, with this task.
                    match triggers::sftp::start(sftp, &timezone, intake) {
                        Ok(_stop) => std::future::pending::<()>().await,
                        Err(e) => {
                            tracing::error!(source = %name, "sftp source cannot start: {e:#}")
                        }
                    }
                })
            }
        };
        self.sources.insert(name, (source, running));
        Ok(())
    }
}

fn spawn_cron(cfg: &CronConfig, intake: &Intake, cluster: &Cluster) -> Running {
    let (cfg, intake) = (cfg.clone(), intake.clone());
    when_leading(cluster, async move {
        if let Err(e) = triggers::cron::run(cfg, intake).await {
            tracing::error!("cron scheduler stopped: {e:#}");
        }
    })
}
