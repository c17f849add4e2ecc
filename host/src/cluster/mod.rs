//! Which host runs what, when several hosts share one PostgreSQL journal.
//!
//! Every host takes input (listeners, HTTP, DICOM) and journals it. The
//! rest is owned: each bot's runs and each destination's queue by one
//! live host at a time, so a bot sees its events in order with its own
//! key-value state and sequences, and a destination gets its messages in
//! queue order; the singletons (SFTP sources, drop folders, cron, the
//! purge) run on the one leader. [`coordinator`] decides what this host
//! owns (a fair share, taken and handed over through advisory locks on the
//! host's lease session) and fences the host when it loses the journal.
//!
//! [`Cluster`] is what the rest of the host asks: a bot's worker and a
//! destination's queue take a [`Turn`] before working, and do nothing
//! without one; singletons wait for [`Cluster::leading`]. On SQLite (one
//! host), [`Cluster::alone`] owns everything and leads from the start.

pub mod coordinator;
pub mod view;

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedRwLockReadGuard, RwLock, watch};

pub use coordinator::{Workload, join, serve};

/// What this host runs, as the rest of the host sees it; cheap to clone.
#[derive(Clone)]
pub struct Cluster {
    shared: Arc<Shared>,
}

struct Shared {
    bots: Claims,
    destinations: Claims,
    leader: watch::Sender<bool>,
    /// What there is to share out, once the host has said.
    workload: coordinator::WorkloadCell,
}

impl Cluster {
    /// The only host of its journal: owns every bot and destination and
    /// leads.
    pub fn alone() -> Cluster {
        Cluster::new(true)
    }

    fn new(alone: bool) -> Cluster {
        Cluster {
            shared: Arc::new(Shared {
                bots: Claims::new(alone),
                destinations: Claims::new(alone),
                leader: watch::Sender::new(alone),
                workload: coordinator::WorkloadCell::new(),
            }),
        }
    }

    /// Whether other hosts may share the journal (it is on PostgreSQL).
    pub fn shares_journal(&self) -> bool {
        !self.shared.bots.alone
    }

    /// Leave to run `bot`'s events, while this host owns the bot.
    pub fn bot_turn(&self, bot: &str) -> Option<Turn> {
        self.shared.bots.claim(bot).turn()
    }

    /// Leave to deliver `destination`'s queue, while this host owns it.
    pub fn destination_turn(&self, destination: &str) -> Option<Turn> {
        self.shared.destinations.claim(destination).turn()
    }

    /// Resolves once this host leads (it then leads until it stops).
    pub async fn leading(&self) {
        let mut leader = self.shared.leader.subscribe();
        let _ = leader.wait_for(|leads| *leads).await;
    }

    /// Runs `work` once this host leads: the singletons (drop folders,
    /// SFTP sources, cron, the purge) run on one of the hosts sharing a
    /// journal (the only one, on SQLite).
    pub async fn when_leading<T>(self, work: impl Future<Output = T>) -> T {
        self.leading().await;
        work.await
    }

    fn leads(&self) -> bool {
        *self.shared.leader.borrow()
    }
}

/// `<hostname>:<pid>`: unique among live hosts.
fn host_id() -> String {
    let mut name = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at
    // most that many bytes.
    let ok = unsafe { libc::gethostname(name.as_mut_ptr().cast(), name.len()) } == 0;
    let end = name.iter().position(|b| *b == 0).unwrap_or(name.len());
    let host = match std::str::from_utf8(&name[..end]) {
        Ok(h) if ok && !h.is_empty() => h.to_string(),
        _ => "host".to_string(),
    };
    format!("{host}:{}", std::process::id())
}

/// The claims of one kind of thing (bots, or destinations), by name.
struct Claims {
    /// Every claim is owned from the start and for good (one host).
    alone: bool,
    by_name: Mutex<HashMap<String, Arc<Claim>>>,
}

impl Claims {
    fn new(alone: bool) -> Claims {
        Claims {
            alone,
            by_name: Mutex::default(),
        }
    }

    fn claim(&self, name: &str) -> Arc<Claim> {
        let mut by_name = self.by_name.lock().expect("claims lock");
        if let Some(claim) = by_name.get(name) {
            return claim.clone();
        }
        by_name
            .entry(name.to_string())
            .or_insert_with(|| {
                Arc::new(Claim {
                    owned: AtomicBool::new(self.alone),
                    work: Arc::new(RwLock::new(())),
                })
            })
            .clone()
    }

    /// The names owned, in order.
    fn owned(&self) -> Vec<String> {
        let by_name = self.by_name.lock().expect("claims lock");
        let mut names: Vec<String> = by_name
            .iter()
            .filter(|(_, c)| c.is_owned())
            .map(|(n, _)| n.clone())
            .collect();
        names.sort();
        names
    }
}

/// This host's hold on one bot or destination. Work on it happens under a
/// read lock of `work`; handing it over first clears `owned` (no new
/// work starts), then takes `work` for writing, which it gets once the work
/// under way has finished.
struct Claim {
    owned: AtomicBool,
    work: Arc<RwLock<()>>,
}

impl Claim {
    fn is_owned(&self) -> bool {
        self.owned.load(Ordering::SeqCst)
    }

    fn set_owned(&self, owned: bool) {
        self.owned.store(owned, Ordering::SeqCst);
    }

    /// Held while no work is under way, and none can start.
    fn idle(&self) -> Option<tokio::sync::OwnedRwLockWriteGuard<()>> {
        self.work.clone().try_write_owned().ok()
    }

    fn turn(self: Arc<Self>) -> Option<Turn> {
        let guard = self.work.clone().try_read_owned().ok()?;
        // Checked once the guard is held: a handover that cleared `owned`
        // before then either waits for this guard or is seen here.
        self.is_owned().then_some(Turn {
            _guard: guard,
            claim: self,
        })
    }
}

/// Leave to work on a bot or destination this host owns: a handover waits
/// until it is dropped.
pub struct Turn {
    _guard: OwnedRwLockReadGuard<()>,
    claim: Arc<Claim>,
}

impl Turn {
    /// Whether the thing is still this host's: when not, the holder
    /// finishes what it started and drops the turn.
    pub fn still_owned(&self) -> bool {
        self.claim.is_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alone_owns_everything_and_leads() {
        let cluster = Cluster::alone();
        assert!(cluster.bot_turn("a").is_some());
        assert!(cluster.destination_turn("out").is_some());
        assert!(cluster.leads());
    }

    #[test]
    fn a_claim_not_owned_gives_no_turn_and_a_handover_waits_for_the_turn() {
        let cluster = Cluster::new(false);
        assert!(cluster.bot_turn("a").is_none());
        let claim = cluster.shared.bots.claim("a");
        claim.set_owned(true);
        let turn = cluster.bot_turn("a").expect("owned");
        assert_eq!(cluster.shared.bots.owned(), ["a"]);
        // A handover: no new turn, and the write lock waits for this one.
        claim.set_owned(false);
        assert!(!turn.still_owned());
        assert!(cluster.bot_turn("a").is_none());
        assert!(claim.idle().is_none());
        drop(turn);
        assert!(claim.idle().is_some());
    }
}
