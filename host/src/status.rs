//! The live status of sources and destinations, in memory, for the admin
//! API, the dashboard and `GET /ready`: the triggers and delivery update it
//! as they work (atomics on the hot paths), handlers read it. One registry
//! per process ([`registry`]), like the metrics recorder; entries appear
//! when their source or destination starts.
//!
//! It also carries the one control that lives here rather than in the
//! journal's tables alone: whether a destination is paused, which its
//! delivery lanes wait on (the journal keeps it across restarts).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex, RwLock};

use serde::Serialize;
use tokio::sync::watch;

use crate::journal::now_ms;

/// Every source and destination of the process.
#[derive(Default)]
pub struct Registry {
    listeners: RwLock<BTreeMap<String, Arc<ListenerStatus>>>,
    folders: RwLock<BTreeMap<String, Arc<PollStatus>>>,
    sftp: RwLock<BTreeMap<String, Arc<PollStatus>>>,
    cron: Mutex<Vec<CronStatus>>,
    destinations: RwLock<BTreeMap<String, Arc<DestinationStatus>>>,
    bots_loaded: AtomicBool,
}

static REGISTRY: LazyLock<Registry> = LazyLock::new(Registry::default);

/// The process's registry.
pub fn registry() -> &'static Registry {
    &REGISTRY
}

/// The entry of `name` in `map`, made with `make` if there is none.
fn entry<T>(
    map: &RwLock<BTreeMap<String, Arc<T>>>,
    name: &str,
    make: impl FnOnce() -> T,
) -> Arc<T> {
    if let Some(e) = map.read().expect("status lock").get(name) {
        return e.clone();
    }
    map.write()
        .expect("status lock")
        .entry(name.to_string())
        .or_insert_with(|| Arc::new(make()))
        .clone()
}

fn all<T>(map: &RwLock<BTreeMap<String, Arc<T>>>) -> Vec<(String, Arc<T>)> {
    map.read()
        .expect("status lock")
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

impl Registry {
    /// The listener `name`, bound to `listen`.
    pub fn listener(&self, name: &str, listen: &str) -> Arc<ListenerStatus> {
        entry(&self.listeners, name, || ListenerStatus {
            listen: listen.to_string(),
            ..ListenerStatus::default()
        })
    }

    /// The drop folder `name`.
    pub fn folder(&self, name: &str) -> Arc<PollStatus> {
        entry(&self.folders, name, PollStatus::default)
    }

    /// The SFTP source `name`.
    pub fn sftp(&self, name: &str) -> Arc<PollStatus> {
        entry(&self.sftp, name, PollStatus::default)
    }

    /// The destination `name` of kind `kind`, paused or not as the journal
    /// says when it is first registered.
    pub fn destination(&self, name: &str, kind: &str, paused: bool) -> Arc<DestinationStatus> {
        entry(&self.destinations, name, || DestinationStatus {
            kind: kind.to_string(),
            paused: watch::Sender::new(paused),
            connections: AtomicUsize::new(0),
            failing: AtomicBool::new(false),
            last_error: Mutex::new(None),
            sent: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        })
    }

    /// Drops the entry of the source `name`: it was stopped by a reload.
    pub fn forget_source(&self, name: &str) {
        self.listeners.write().expect("status lock").remove(name);
        for map in [&self.folders, &self.sftp] {
            map.write().expect("status lock").remove(name);
        }
    }

    /// Drops the entry of the destination `name`: it was stopped by a
    /// reload.
    pub fn forget_destination(&self, name: &str) {
        self.destinations.write().expect("status lock").remove(name);
    }

    /// The destination `name`, if delivery runs it.
    pub fn find_destination(&self, name: &str) -> Option<Arc<DestinationStatus>> {
        self.destinations
            .read()
            .expect("status lock")
            .get(name)
            .cloned()
    }

    /// The listener `name` as the admin API shows it; one that has not
    /// started shows as not bound to its configured `listen`.
    pub fn listener_view(&self, name: &str, listen: &str) -> ListenerView {
        let live = self
            .listeners
            .read()
            .expect("status lock")
            .get(name)
            .cloned();
        match live {
            Some(l) => l.view(name),
            None => ListenerStatus {
                listen: listen.to_string(),
                ..ListenerStatus::default()
            }
            .view(name),
        }
    }

    /// The listeners of `names` that are not bound (yet).
    pub fn unbound_listeners<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> Vec<String> {
        let live = self.listeners.read().expect("status lock");
        names
            .into_iter()
            .filter(|n| !live.get(*n).is_some_and(|l| l.bound()))
            .map(str::to_string)
            .collect()
    }

    /// Every destination delivery runs, by name.
    pub fn destinations(&self) -> Vec<(String, Arc<DestinationStatus>)> {
        all(&self.destinations)
    }

    /// The cron scheduler's schedules and their next firings, as it last
    /// published them.
    pub fn cron(&self) -> Vec<CronStatus> {
        self.cron.lock().expect("status lock").clone()
    }

    /// Publishes the cron schedules (replacing what was there).
    pub fn set_cron(&self, mut schedules: Vec<CronStatus>) {
        schedules.sort_by(|a, b| a.schedule.cmp(&b.schedule));
        *self.cron.lock().expect("status lock") = schedules;
    }

    /// The plugins directory's first scan is done: the bots in it are live.
    pub fn set_bots_loaded(&self) {
        self.bots_loaded.store(true, Ordering::SeqCst);
    }

    pub fn bots_loaded(&self) -> bool {
        self.bots_loaded.load(Ordering::SeqCst)
    }
}

/// An MLLP listener.
#[derive(Default)]
pub struct ListenerStatus {
    pub listen: String,
    bound: AtomicBool,
    open: AtomicUsize,
    messages: AtomicU64,
    last_message_ms: AtomicI64,
    /// ACKs with AE or CE.
    errors: AtomicU64,
    /// ACKs with AR or CR.
    rejects: AtomicU64,
}

/// Holds one of a listener's open connections; dropping it closes the count.
pub struct OpenConnection(Arc<ListenerStatus>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl ListenerStatus {
    /// The listener's socket is bound.
    pub fn set_bound(&self) {
        self.bound.store(true, Ordering::SeqCst);
    }

    pub fn bound(&self) -> bool {
        self.bound.load(Ordering::SeqCst)
    }

    /// A connection opened; it counts as open until the guard is dropped.
    pub fn connected(self: &Arc<Self>) -> OpenConnection {
        self.open.fetch_add(1, Ordering::Relaxed);
        OpenConnection(self.clone())
    }

    /// A frame arrived.
    pub fn message(&self) {
        self.messages.fetch_add(1, Ordering::Relaxed);
        self.last_message_ms.store(now_ms(), Ordering::Relaxed);
    }

    /// An ACK with MSA-1 `code` was sent.
    pub fn ack(&self, code: &str) {
        match code {
            "AE" | "CE" => self.errors.fetch_add(1, Ordering::Relaxed),
            "AR" | "CR" => self.rejects.fetch_add(1, Ordering::Relaxed),
            _ => 0,
        };
    }

    /// What the admin API shows.
    pub fn view(&self, name: &str) -> ListenerView {
        ListenerView {
            name: name.to_string(),
            listen: self.listen.clone(),
            bound: self.bound(),
            open_connections: self.open.load(Ordering::Relaxed),
            messages: self.messages.load(Ordering::Relaxed),
            last_message_ms: non_zero(self.last_message_ms.load(Ordering::Relaxed)),
            nacks_ae: self.errors.load(Ordering::Relaxed),
            nacks_ar: self.rejects.load(Ordering::Relaxed),
        }
    }
}

fn non_zero(ms: i64) -> Option<i64> {
    (ms != 0).then_some(ms)
}

/// A listener as the admin API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ListenerView {
    pub name: String,
    pub listen: String,
    pub bound: bool,
    pub open_connections: usize,
    /// Frames received since the host started.
    pub messages: u64,
    /// When the latest frame arrived (ms since the epoch).
    pub last_message_ms: Option<i64>,
    /// ACKs sent with AE or CE.
    pub nacks_ae: u64,
    /// ACKs sent with AR or CR.
    pub nacks_ar: u64,
}

/// A polled source: a drop folder or an SFTP source.
#[derive(Default)]
pub struct PollStatus {
    last_poll_ms: AtomicI64,
    files_taken: AtomicU64,
    /// The latest poll's error, cleared by a poll that works.
    last_error: Mutex<Option<String>>,
}

impl PollStatus {
    /// A poll ended, with its error if it failed.
    pub fn polled(&self, error: Option<String>) {
        self.last_poll_ms.store(now_ms(), Ordering::Relaxed);
        *self.last_error.lock().expect("status lock") = error;
    }

    /// A file was journaled.
    pub fn taken(&self, files: usize) {
        self.files_taken.fetch_add(files as u64, Ordering::Relaxed);
    }

    pub fn view(&self, name: &str) -> PollView {
        PollView {
            name: name.to_string(),
            last_poll_ms: non_zero(self.last_poll_ms.load(Ordering::Relaxed)),
            last_error: self.last_error.lock().expect("status lock").clone(),
            files_taken: self.files_taken.load(Ordering::Relaxed),
        }
    }
}

/// A drop folder or SFTP source as the admin API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct PollView {
    pub name: String,
    /// When the latest poll (or scan) ended (ms since the epoch).
    pub last_poll_ms: Option<i64>,
    /// Why the latest poll failed; `None` if it worked.
    pub last_error: Option<String>,
    /// Files journaled since the host started.
    pub files_taken: u64,
}

/// A cron schedule and its next firing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CronStatus {
    pub schedule: String,
    /// ms since the epoch.
    pub next_firing_ms: i64,
}

/// A destination: how its delivery is going, and whether it is paused.
pub struct DestinationStatus {
    pub kind: String,
    paused: watch::Sender<bool>,
    /// Lanes with an open connection (MLLP).
    connections: AtomicUsize,
    /// The latest attempt failed.
    failing: AtomicBool,
    /// The host's words for the latest failure (never the receiver's).
    last_error: Mutex<Option<String>>,
    sent: AtomicU64,
    failed: AtomicU64,
}

impl DestinationStatus {
    pub fn is_paused(&self) -> bool {
        *self.paused.borrow()
    }

    /// Pauses or resumes delivery; lanes waiting to resume are woken.
    pub fn set_paused(&self, paused: bool) {
        self.paused.send_replace(paused);
    }

    /// Returns once the destination is not paused (at once if it is not).
    pub async fn unpaused(&self) {
        let mut rx = self.paused.subscribe();
        // The sender lives as long as `self`: this cannot fail.
        let _ = rx.wait_for(|paused| !paused).await;
    }

    /// A lane's connection opened (`true`) or closed.
    pub fn connection(&self, open: bool) {
        if open {
            self.connections.fetch_add(1, Ordering::Relaxed);
        } else {
            self.connections.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// A delivery attempt worked (`None`) or failed for `error`.
    pub fn attempted(&self, error: Option<&str>) {
        match error {
            None => {
                self.sent.fetch_add(1, Ordering::Relaxed);
                self.failing.store(false, Ordering::Relaxed);
            }
            Some(why) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                self.failing.store(true, Ordering::Relaxed);
                *self.last_error.lock().expect("status lock") = Some(why.to_string());
            }
        }
    }

    /// `paused`, `failing` (the latest attempt failed), `connected` (a
    /// connection is open) or `idle`.
    pub fn state(&self) -> &'static str {
        if self.is_paused() {
            "paused"
        } else if self.failing.load(Ordering::Relaxed) {
            "failing"
        } else if self.connections.load(Ordering::Relaxed) > 0 {
            "connected"
        } else {
            "idle"
        }
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().expect("status lock").clone()
    }

    /// Messages delivered since the host started.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Failed attempts (retried or dead-lettered) since the host started.
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_destination_state_follows_its_attempts_and_pause() {
        let d = Registry::default().destination("out", "mllp", false);
        assert_eq!(d.state(), "idle");
        d.connection(true);
        assert_eq!(d.state(), "connected");
        d.attempted(Some("connection refused"));
        assert_eq!((d.state(), d.failed()), ("failing", 1));
        assert_eq!(d.last_error().as_deref(), Some("connection refused"));
        d.attempted(None);
        assert_eq!((d.state(), d.sent()), ("connected", 1));
        d.set_paused(true);
        assert_eq!(d.state(), "paused");
    }

    #[tokio::test]
    async fn a_paused_destination_wakes_its_waiters_on_resume() {
        let d = Registry::default().destination("out", "folder", true);
        let waiter = tokio::spawn({
            let d = d.clone();
            async move { d.unpaused().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        d.set_paused(false);
        waiter.await.unwrap();
    }

    #[test]
    fn readiness_names_the_listeners_not_bound() {
        let r = Registry::default();
        r.listener("adt", "127.0.0.1:2575").set_bound();
        r.listener("lab", "127.0.0.1:2576");
        assert_eq!(
            r.unbound_listeners(["adt", "lab", "orders"]),
            ["lab", "orders"]
        );
        assert_eq!(r.listener_view("orders", "0.0.0.0:1").listen, "0.0.0.0:1");
        assert!(!r.bots_loaded());
    }

    #[test]
    fn listener_counts_nacks_by_kind() {
        let l = Arc::new(ListenerStatus::default());
        let open = l.connected();
        l.message();
        for code in ["AA", "AE", "CE", "AR"] {
            l.ack(code);
        }
        let v = l.view("adt");
        assert_eq!(
            (v.open_connections, v.messages, v.nacks_ae, v.nacks_ar),
            (1, 1, 2, 1)
        );
        drop(open);
        assert_eq!(l.view("adt").open_connections, 0);
    }
}
