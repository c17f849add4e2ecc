//! The coordinator: on a shared PostgreSQL journal, a thread that every
//! tenth of `takeover` takes this host's fair share of the bots and
//! destinations, hands over what is beyond it, tries for the lead and
//! reports itself (the heartbeat `interlink cluster` shows), all on the
//! host's lease session (`journal/lease.rs`).
//!
//! A fair share is the number of things divided by the live hosts,
//! rounded up: a host joining makes the others hand some over, a host
//! dying (its locks released at once) makes the survivors take its share
//! at their next tick. Handing over waits for the work under way (a bot's
//! batch, a destination's messages in flight and their "sent" marks).
//!
//! Fencing: a second thread stops the process (exit status 75) once the
//! lease has not been confirmed for half of `takeover`, while PostgreSQL
//! ends a silent session, releasing its locks, only after the whole of
//! `takeover`; so a host cut off from the database stops working before
//! any other host can take its share, and two hosts never run one bot or
//! deliver one destination at once.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::{Claim, Claims, Cluster};
use crate::journal::{Held, Holdings, Journal, Lease};

/// Exit status of a host that lost its hold on the journal (EX_TEMPFAIL:
/// a supervisor restarts it, and it joins again).
const FENCED_EXIT: i32 = 75;

/// What the coordinator shares out, and how it tells the host there is
/// work.
pub trait Workload: Send + Sync {
    /// The bots to share out: the live ones.
    fn bots(&self) -> Vec<String>;
    /// The destinations to share out: the configured ones.
    fn destinations(&self) -> Vec<String>;
    /// There may be work: this host took something, or some host committed
    /// to the journal. Called on the journal's I/O thread: must not block.
    fn wake_all(&self);
}

/// Joins the hosts sharing `journal` (at once on SQLite: [`Cluster::alone`])
/// and starts coordinating; the host owns nothing until [`serve`] says
/// what there is to own, but its lease is kept (and fenced) from now on.
pub fn join(journal: &Journal, takeover: Duration) -> Result<Cluster> {
    let id = super::host_id();
    let Some(lease) = journal
        .join_cluster(&id, takeover)
        .context("journal: cannot join the hosts sharing it")?
    else {
        return Ok(Cluster::alone());
    };
    let live = lease
        .live_hosts()
        .context("journal: cannot count its hosts")?;
    tracing::info!(
        takeover_s = takeover.as_secs(),
        "cluster: joined as {id}; {live} host(s) live"
    );
    let cluster = Cluster::new(false);
    let confirmed = Arc::new(Mutex::new(Instant::now()));
    let mut coordinator = Coordinator {
        lease,
        cluster: cluster.clone(),
        releasing: Vec::new(),
    };
    let last = confirmed.clone();
    let tick = (takeover / 10).max(Duration::from_millis(100));
    std::thread::Builder::new()
        .name("cluster".into())
        .spawn(move || {
            loop {
                if let Err(e) = coordinator.step() {
                    fence(&format!("its session failed: {e}"));
                }
                *last.lock().expect("lease clock") = Instant::now();
                std::thread::sleep(tick);
            }
        })
        .context("cannot start the cluster thread")?;
    std::thread::Builder::new()
        .name("cluster-fence".into())
        .spawn(move || {
            loop {
                std::thread::sleep(Duration::from_millis(50));
                let silent = confirmed.lock().expect("lease clock").elapsed();
                if silent > takeover / 2 {
                    fence(&format!("PostgreSQL has not answered for {silent:?}"));
                }
            }
        })
        .context("cannot start the cluster fence thread")?;
    Ok(cluster)
}

/// Gives the coordinator of `cluster` the bots and destinations to share
/// out, and has `journal`'s commits (by any host) wake the host.
pub fn serve(cluster: &Cluster, journal: &Journal, workload: Arc<dyn Workload>) {
    if cluster.shared.workload.set(workload.clone()).is_ok() {
        journal.on_commit(Arc::new(move || workload.wake_all()));
    }
}

/// The coordinator's state between ticks.
struct Coordinator {
    lease: Lease,
    cluster: Cluster,
    /// Things being handed over: no longer owned, their lock still held
    /// until the work under way on them ends.
    releasing: Vec<(Held, String, Arc<Claim>)>,
}

impl Coordinator {
    /// One tick: the lead, the shares, the handovers, the heartbeat.
    fn step(&mut self) -> crate::journal::Result<()> {
        let shared = self.cluster.shared.clone();
        if !self.cluster.leads() && self.lease.try_take(Held::Leader, "")? {
            shared.leader.send_replace(true);
            tracing::info!(
                "cluster: leading: SFTP sources, drop folders, cron and the purge run on this host"
            );
        }
        if let Some(workload) = shared.workload.get() {
            let live = self.lease.live_hosts()?.max(1);
            let took_bots = self.share(&shared.bots, Held::Bot, workload.bots(), live)?;
            let took_destinations = self.share(
                &shared.destinations,
                Held::Destination,
                workload.destinations(),
                live,
            )?;
            if took_bots || took_destinations {
                workload.wake_all();
            }
        }
        self.finish_handovers()?;
        self.lease.beat(&Holdings {
            leader: self.cluster.leads(),
            bots: shared.bots.owned(),
            destinations: shared.destinations.owned(),
        })?;
        Ok(())
    }

    /// Brings what this host owns of one kind to its fair share of
    /// `wanted` among `live` hosts; true if it took anything.
    fn share(
        &mut self,
        claims: &Claims,
        what: Held,
        mut wanted: Vec<String>,
        live: usize,
    ) -> crate::journal::Result<bool> {
        wanted.sort();
        wanted.dedup();
        let fair = wanted.len().div_ceil(live);
        let mut kept = 0;
        for name in claims.owned() {
            if kept < fair && wanted.contains(&name) {
                kept += 1;
            } else {
                self.hand_over(claims, what, name);
            }
        }
        let mut took = false;
        for name in wanted {
            if kept >= fair {
                break;
            }
            let claim = claims.claim(&name);
            let handing_over = self
                .releasing
                .iter()
                .any(|(w, n, _)| *w == what && *n == name);
            if claim.is_owned() || handing_over {
                continue;
            }
            if self.lease.try_take(what, &name)? {
                claim.set_owned(true);
                kept += 1;
                took = true;
                tracing::info!("cluster: took {} {name:?}", noun(what));
            }
        }
        Ok(took)
    }

    /// Stops starting work on `name`; its lock goes once the work under way
    /// has ended ([`Self::finish_handovers`]).
    fn hand_over(&mut self, claims: &Claims, what: Held, name: String) {
        let claim = claims.claim(&name);
        claim.set_owned(false);
        self.releasing.push((what, name, claim));
    }

    /// Releases the locks of the things handed over whose work has ended.
    fn finish_handovers(&mut self) -> crate::journal::Result<()> {
        let mut still = Vec::new();
        for (what, name, claim) in std::mem::take(&mut self.releasing) {
            match claim.idle() {
                Some(_idle) => {
                    self.lease.release(what, &name)?;
                    tracing::info!("cluster: handed over {} {name:?}", noun(what));
                }
                None => still.push((what, name, claim)),
            }
        }
        self.releasing = still;
        Ok(())
    }
}

fn noun(what: Held) -> &'static str {
    match what {
        Held::Bot => "bot",
        Held::Destination => "destination",
        Held::Host => "host",
        Held::Leader => "lead",
    }
}

fn fence(why: &str) -> ! {
    tracing::error!(
        "lost the hold on the journal ({why}): stopping, so that the other hosts take over \
         and two hosts never run the same work at once"
    );
    std::process::exit(FENCED_EXIT)
}

/// Where [`serve`]'s workload is kept.
pub(super) type WorkloadCell = OnceLock<Arc<dyn Workload>>;
