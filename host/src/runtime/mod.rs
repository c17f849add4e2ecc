//! The bot runtime: compiling and running sandboxed bots ([`engine`],
//! [`bot`]), what bots can reach ([`state`]), which bots get which events
//! ([`routing`]), the live set of bots and their workers ([`Runtime`]), the
//! plugins-directory watcher ([`watcher`]) and the per-bot worker that turns
//! journaled events into committed results ([`worker`]).

mod bindings;
pub mod bot;
pub mod cache;
pub mod engine;
pub mod event;
mod fault;
pub mod http;
pub mod process;
mod remote;
pub mod replies;
pub mod routing;
pub mod state;
pub mod stats;
pub mod watcher;
mod worker;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, Mutex, RwLock};

use anyhow::{Result, bail};

use crate::cluster::{Cluster, Workload};
use crate::config::Config;
use crate::delivery::OutboxSignal;
use crate::intake::Router;
use crate::journal::Journal;
use bindings::{DestinationInfo, Subscription};
use bot::LoadedBot;
use routing::RouteKey;
use state::{BotPolicy, OrderingKey};

/// A bot that is live: its code and what the configuration makes of it.
pub struct LiveBot {
    pub code: Arc<LoadedBot>,
    pub subscriptions: Vec<Subscription>,
    pub policy: Arc<BotPolicy>,
    /// What the bot's `check-settings` said of its settings. While it
    /// refuses them, its events are routed and journaled but wait.
    pub settings: Result<(), String>,
}

/// The live bots and their workers.
pub struct Runtime {
    engine: engine::BotEngine,
    journal: Journal,
    /// Replaced when the configuration is reloaded.
    config: RwLock<Arc<Config>>,
    bots: RwLock<HashMap<String, Arc<LiveBot>>>,
    /// Held by `reconfigure` and `install` while they build live bots
    /// (which runs their `check-settings`), so the two never interleave,
    /// while `bots` is only write-locked for the swap: intake, which reads
    /// `bots` for every event, never waits on a bot's settings check.
    rebuilding: Mutex<()>,
    /// Which bot each plugin file provides.
    files: Mutex<HashMap<PathBuf, String>>,
    workers: Mutex<HashMap<String, SyncSender<()>>>,
    /// Held by a bot's worker while it runs a batch, so a worker started
    /// for a reloaded bot never overlaps the one it replaces.
    batch_locks: Mutex<HashMap<String, Arc<Mutex<()>>>>,
    /// Rung whenever bots queue messages for delivery.
    outbox: OutboxSignal,
    /// Outcomes awaited by listeners with `ack = "application"`.
    replies: Arc<replies::Replies>,
    /// Runs each bot finished since the host started.
    pub stats: stats::RunStats,
    /// Answers awaited by HTTP commands.
    http_replies: replies::Replies<http::HttpAnswer>,
    /// Idle journal readers for HTTP queries.
    readers: Mutex<Vec<state::SharedReader>>,
    /// Places of the HTTP queries running at once.
    query_slots: http::QuerySlots,
    /// Which bots this host runs (all, unless it shares the journal).
    cluster: Cluster,
    /// Fetches outcomes other hosts committed (when it shares the journal).
    remote: std::sync::OnceLock<remote::Outcomes>,
}

/// What the configuration grants the bot `name`.
pub fn policy_for(config: &Config, name: &str) -> BotPolicy {
    let bot = config.bots.get(name);
    let allowed = |d: &str| {
        bot.and_then(|b| b.destinations.as_ref())
            .is_none_or(|l| l.iter().any(|x| x == d))
    };
    BotPolicy {
        any_destination: false,
        settings: bot.map(|b| b.settings.clone()).unwrap_or_default(),
        destinations: config
            .destinations
            .iter()
            .filter(|d| allowed(&d.name))
            .map(|d| {
                let info = DestinationInfo {
                    name: d.name.clone(),
                    kind: d.kind_name().to_string(),
                    encoding: d.encoding.name().to_string(),
                    timezone: d.timezone.clone(),
                    sending_facility: d.sending_facility.clone(),
                    receiving_facility: d.receiving_facility.clone(),
                };
                (d.name.clone(), info)
            })
            .collect(),
        ordering_keys: config
            .destinations
            .iter()
            .filter(|d| allowed(&d.name))
            .filter_map(|d| {
                let key = OrderingKey {
                    hl7: d.ordering_key().and_then(|k| k.parse().ok()),
                    header: d.ordering_header().map(str::to_ascii_lowercase),
                };
                let lanes = key.hl7.is_some() || key.header.is_some();
                lanes.then(|| (d.name.clone(), key))
            })
            .collect(),
    }
}

/// `code` as `config` makes it live: runs its `check-settings`, so call it
/// off the async executor.
fn live_bot(config: &Config, code: Arc<LoadedBot>) -> LiveBot {
    let policy = Arc::new(policy_for(config, code.name()));
    let settings = code.check_settings(policy.clone());
    if let Err(why) = &settings {
        tracing::error!(
            bot = %code.name(),
            "settings refused: {why}; its events wait until the configuration is fixed"
        );
    }
    LiveBot {
        subscriptions: routing::effective(&code.manifest.subscribe, config.bots.get(code.name())),
        policy,
        settings,
        code,
    }
}

impl Runtime {
    /// The journal its workers commit to.
    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// The runtime of `config`'s bots: their workers commit to `journal`,
    /// ring `outbox` when they queued messages, and hand application-ACK
    /// outcomes to `replies`.
    pub fn new(
        engine: engine::BotEngine,
        journal: Journal,
        config: Arc<Config>,
        outbox: OutboxSignal,
        replies: Arc<replies::Replies>,
        cluster: Cluster,
    ) -> Arc<Self> {
        let rt = Arc::new(Runtime {
            engine,
            journal,
            config: RwLock::new(config),
            bots: RwLock::default(),
            rebuilding: Mutex::default(),
            files: Mutex::default(),
            workers: Mutex::default(),
            batch_locks: Mutex::default(),
            outbox,
            replies,
            stats: stats::RunStats::default(),
            http_replies: replies::Replies::default(),
            readers: Mutex::default(),
            query_slots: http::QuerySlots::new(http::MAX_QUERIES),
            cluster,
            remote: std::sync::OnceLock::new(),
        });
        if rt.cluster.shares_journal() {
            let _ = rt.remote.set(remote::Outcomes::start(&rt));
        }
        rt
    }

    /// What this host runs of the work of the journal it shares.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    pub fn engine(&self) -> &engine::BotEngine {
        &self.engine
    }

    /// The configuration in force.
    pub fn config(&self) -> Arc<Config> {
        self.config.read().expect("config lock").clone()
    }

    /// Whether `source` is a listener that answers with the bot's ACK.
    pub fn acks_after_bot(&self, source: &str) -> bool {
        self.config()
            .listeners
            .iter()
            .any(|l| l.name == source && l.ack == crate::config::AckWhen::Application)
    }

    /// Puts `config` in force: each live bot's settings (checked again),
    /// destinations and subscriptions are worked out again from it (its
    /// code and its worker stay), and its worker is woken in case it now
    /// has work. Runs the bots' `check-settings`: call it off the async
    /// executor.
    pub fn reconfigure(&self, config: Arc<Config>) {
        let _rebuilding = self.rebuilding.lock().expect("rebuilding lock");
        let current: Vec<Arc<LiveBot>> = self
            .bots
            .read()
            .expect("bots lock")
            .values()
            .cloned()
            .collect();
        let rebuilt: Vec<LiveBot> = current
            .iter()
            .map(|live| live_bot(&config, live.code.clone()))
            .collect();
        *self.config.write().expect("config lock") = config;
        let mut bots = self.bots.write().expect("bots lock");
        for live in rebuilt {
            // Unless it was unloaded meanwhile.
            if let Some(slot) = bots.get_mut(live.code.name()) {
                *slot = Arc::new(live);
            }
        }
        let names: Vec<String> = bots.keys().cloned().collect();
        drop(bots);
        for name in names {
            self.wake(&name);
        }
    }

    /// The live bot called `name`.
    pub fn bot(&self, name: &str) -> Option<Arc<LiveBot>> {
        self.bots.read().expect("bots lock").get(name).cloned()
    }

    /// Names of the live bots.
    pub fn bot_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .bots
            .read()
            .expect("bots lock")
            .keys()
            .cloned()
            .collect();
        names.sort();
        names
    }

    /// Makes `code`, loaded from `file`, live: a new bot, an upgrade of the
    /// bot the file provided before, or a refusal if another file already
    /// provides a bot of that name. Runs the bot's `check-settings`: call
    /// it off the async executor.
    pub fn install(self: &Arc<Self>, file: &Path, code: LoadedBot) -> Result<()> {
        let name = code.name().to_string();
        // Built (its settings checked, which runs the bot) under the
        // rebuilding lock only, so a reload cannot swap the configuration
        // between the build and the insert while `files` and `bots` stay
        // free for the API and intake meanwhile.
        let _rebuilding = self.rebuilding.lock().expect("rebuilding lock");
        let live = Arc::new(live_bot(&self.config(), Arc::new(code)));
        let mut files = self.files.lock().expect("files lock");
        if let Some((other, _)) = files
            .iter()
            .find(|(f, n)| **n == name && f.as_path() != file)
        {
            bail!(
                "bot name {name:?} is already provided by {}",
                other.display()
            );
        }
        let previous_name = files.insert(file.to_path_buf(), name.clone());
        let mut bots = self.bots.write().expect("bots lock");
        let old = bots.insert(name.clone(), live.clone());
        if let Some(prev) = previous_name.filter(|p| *p != name) {
            bots.remove(&prev);
            self.workers.lock().expect("workers lock").remove(&prev);
        }
        drop(bots);
        drop(files);
        match old {
            Some(old) => tracing::info!(
                bot = %name,
                "upgraded {} -> {} from {}",
                old.code.version(),
                live.code.version(),
                file.display()
            ),
            None => {
                tracing::info!(bot = %name, version = live.code.version(), "loaded from {}", file.display())
            }
        }
        self.ensure_worker(&name);
        self.wake(&name);
        Ok(())
    }

    /// Unloads the bot `file` provided, if any.
    pub fn uninstall(&self, file: &Path) -> Option<String> {
        let name = self.files.lock().expect("files lock").remove(file)?;
        self.bots.write().expect("bots lock").remove(&name);
        // Dropping the sender stops the worker after its current batch.
        self.workers.lock().expect("workers lock").remove(&name);
        tracing::info!(bot = %name, "unloaded: {} was removed", file.display());
        Some(name)
    }

    /// The bot a plugin file provides.
    pub fn bot_for_file(&self, file: &Path) -> Option<String> {
        self.files.lock().expect("files lock").get(file).cloned()
    }

    /// The plugin file that provides the bot `name`.
    pub fn file_of(&self, name: &str) -> Option<PathBuf> {
        let files = self.files.lock().expect("files lock");
        files
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(f, _)| f.clone())
    }

    fn batch_lock(&self, bot: &str) -> Arc<Mutex<()>> {
        self.batch_locks
            .lock()
            .expect("batch locks")
            .entry(bot.to_string())
            .or_default()
            .clone()
    }

    fn ensure_worker(self: &Arc<Self>, name: &str) {
        let mut workers = self.workers.lock().expect("workers lock");
        if workers.contains_key(name) {
            return;
        }
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let rt = self.clone();
        let bot = name.to_string();
        let spawned = std::thread::Builder::new()
            .name(format!("bot-{name}"))
            .spawn(move || worker::supervise(rt, bot, rx));
        match spawned {
            Ok(_) => {
                workers.insert(name.to_string(), tx);
            }
            Err(e) => tracing::error!(bot = %name, "cannot start worker thread: {e}"),
        }
    }
}

impl Router for Runtime {
    /// Bots that want an event, in name order.
    fn route(&self, key: RouteKey<'_>) -> Vec<String> {
        let bots = self.bots.read().expect("bots lock");
        let mut names: Vec<String> = bots
            .iter()
            .filter(|(_, b)| routing::wants(&b.subscriptions, key))
            .map(|(n, _)| n.clone())
            .collect();
        names.sort();
        names
    }

    /// The cron schedules live bots subscribe to.
    fn cron_schedules(&self) -> BTreeSet<String> {
        let bots = self.bots.read().expect("bots lock");
        bots.values()
            .flat_map(|b| b.subscriptions.iter())
            .filter_map(|s| routing::cron_schedule(s).map(str::to_string))
            .collect()
    }

    /// Tells the bot's worker there may be work.
    fn wake(&self, bot: &str) {
        if let Some(tx) = self.workers.lock().expect("workers lock").get(bot) {
            match tx.try_send(()) {
                Ok(()) | Err(TrySendError::Full(())) => {}
                Err(TrySendError::Disconnected(())) => {}
            }
        }
    }
}

impl Workload for Runtime {
    fn bots(&self) -> Vec<String> {
        self.bot_names()
    }

    fn destinations(&self) -> Vec<String> {
        let config = self.config();
        config.destinations.iter().map(|d| d.name.clone()).collect()
    }

    /// Wakes every worker and delivery queue; each does nothing more unless
    /// this host owns its bot or destination.
    fn wake_all(&self) {
        for tx in self.workers.lock().expect("workers lock").values() {
            let _ = tx.try_send(());
        }
        self.outbox.ring();
        if let Some(remote) = self.remote.get() {
            remote.wake();
        }
    }
}
