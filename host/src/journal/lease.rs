//! A host's hold on a shared PostgreSQL journal: the SQL of the cluster
//! (the policy, who takes what and when, is in `crate::cluster`).
//!
//! Each host keeps one session of its own, the lease, and holds on it a
//! session advisory lock per thing it runs alone: one for itself (so the
//! others can count the live hosts), one per bot and destination it owns,
//! and the leader's. PostgreSQL releases them when the session ends: at
//! once when the host dies (its connection closes), and when the network
//! between them is cut, after `takeover` without a word from the host (the
//! session's `idle_session_timeout`; a live host speaks several times a
//! second). Locks are two-key advisory locks: the kind, and `hashtext` of
//! the name.

use rusqlite::params;

use super::Connector;
use super::db::{Db, DbResult};
use super::postgres::Session;

/// What a lock stands for; the first key of its advisory lock ("IL" and a
/// number, clear of the other users of advisory locks in the journal,
/// which use one-key locks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Held {
    /// A host, by id: held while it lives.
    Host,
    /// Running a bot's events.
    Bot,
    /// Delivering a destination's queue.
    Destination,
    /// Running the singletons (pollers, cron, purge).
    Leader,
}

impl Held {
    fn key(self) -> i64 {
        0x494c_0000
            + match self {
                Held::Host => 1,
                Held::Bot => 2,
                Held::Destination => 3,
                Held::Leader => 4,
            }
    }
}

/// What a host reports of itself with each heartbeat.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Holdings {
    pub leader: bool,
    pub bots: Vec<String>,
    pub destinations: Vec<String>,
}

/// A host of the cluster as last reported (what `interlink cluster` and
/// `GET /api/v1/cluster` show).
#[derive(Debug, Clone, serde::Serialize)]
pub struct ClusterHost {
    /// `<hostname>:<pid>`.
    pub id: String,
    pub pid: i64,
    /// When it started (RFC 3339 in JSON).
    #[serde(
        rename = "started",
        serialize_with = "crate::instant::serialize_rfc3339"
    )]
    pub started_ms: i64,
    /// Its latest heartbeat, every tenth of `takeover_s` (RFC 3339 in JSON).
    #[serde(
        rename = "heartbeat",
        serialize_with = "crate::instant::serialize_rfc3339"
    )]
    pub heartbeat_ms: i64,
    /// Whether it is running (its lock on the journal is held).
    pub live: bool,
    /// Whether it runs the singletons: SFTP sources, drop folders, cron,
    /// the purge.
    pub leader: bool,
    /// The bots whose events it runs.
    pub bots: Vec<String>,
    /// The destinations whose queues it delivers.
    pub destinations: Vec<String>,
}

/// Rows of hosts gone for longer than this are removed when a host joins.
const FORGET_AFTER_MS: i64 = 86_400_000;

/// This host's session on the journal and the locks it holds.
pub struct Lease {
    session: Session,
    id: String,
}

impl Lease {
    /// Opens the lease session of host `id`, which PostgreSQL ends after
    /// `takeover_ms` without a word, takes the host's lock and registers
    /// it.
    pub fn join(connector: &Connector, id: &str, takeover_ms: u128) -> DbResult<Lease> {
        let session = connector.connect()?;
        session.batch(&format!("SET idle_session_timeout = {takeover_ms}"))?;
        let lease = Lease {
            session,
            id: id.to_string(),
        };
        if !lease.try_take(Held::Host, id)? {
            return Err(super::db::DbError::Value(format!(
                "another live host calls itself {id}"
            )));
        }
        let now = super::now_ms();
        let db = lease.db();
        db.execute(
            "DELETE FROM cluster_hosts WHERE id = ?1 OR heartbeat_ms < ?2",
            params![id, now - FORGET_AFTER_MS],
        )?;
        db.execute(
            "INSERT INTO cluster_hosts (id, pid, backend_pid, started_ms, heartbeat_ms)
             VALUES (?1, ?2, pg_backend_pid(), ?3, ?3)",
            params![id, i64::from(std::process::id()), now],
        )?;
        Ok(lease)
    }

    fn db(&self) -> Db<'_> {
        Db::Postgres(&self.session)
    }

    /// Takes the lock on `name` unless another host holds it.
    pub fn try_take(&self, what: Held, name: &str) -> DbResult<bool> {
        self.db().query_row(
            "SELECT pg_try_advisory_lock(?1, hashtext(?2))",
            params![what.key(), name],
            |r| r.get(0),
        )
    }

    /// Lets go of the lock on `name`.
    pub fn release(&self, what: Held, name: &str) -> DbResult<()> {
        self.db().query_row(
            "SELECT pg_advisory_unlock(?1, hashtext(?2))",
            params![what.key(), name],
            |r| r.get::<bool>(0),
        )?;
        Ok(())
    }

    /// The hosts alive on this journal (this one included).
    pub fn live_hosts(&self) -> DbResult<usize> {
        let n: i64 = self.db().query_row(
            "SELECT COUNT(*) FROM pg_locks
             WHERE locktype = 'advisory' AND granted AND objsubid = 2
               AND classid::bigint = ?1
               AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            params![Held::Host.key()],
            |r| r.get(0),
        )?;
        Ok(n as usize)
    }

    /// Confirms the session is alive and reports what this host holds.
    pub fn beat(&self, holdings: &Holdings) -> DbResult<()> {
        let list = |names: &[String]| serde_json::to_string(names).expect("names are JSON");
        self.db().execute(
            "UPDATE cluster_hosts SET heartbeat_ms = ?2, leader = ?3, bots = ?4, destinations = ?5
             WHERE id = ?1",
            params![
                self.id,
                super::now_ms(),
                holdings.leader,
                list(&holdings.bots),
                list(&holdings.destinations)
            ],
        )?;
        Ok(())
    }
}

/// The hosts of the cluster on `db`, live ones first, by id.
pub fn cluster_hosts(db: Db) -> DbResult<Vec<ClusterHost>> {
    let list = |text: String| serde_json::from_str::<Vec<String>>(&text).unwrap_or_default();
    db.query_map(
        "SELECT h.id, h.pid, h.started_ms, h.heartbeat_ms,
                EXISTS (SELECT 1 FROM pg_locks l
                        WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
                          AND l.pid = h.backend_pid AND l.classid::bigint = ?1),
                h.leader, h.bots, h.destinations
         FROM cluster_hosts h",
        params![Held::Host.key()],
        |r| {
            let live: bool = r.get(4)?;
            Ok(ClusterHost {
                id: r.get(0)?,
                pid: r.get(1)?,
                started_ms: r.get(2)?,
                heartbeat_ms: r.get(3)?,
                live,
                leader: live && r.get(5)?,
                bots: if live { list(r.get(6)?) } else { Vec::new() },
                destinations: if live { list(r.get(7)?) } else { Vec::new() },
            })
        },
    )
    .map(|mut hosts| {
        hosts.sort_by(|a, b| b.live.cmp(&a.live).then_with(|| a.id.cmp(&b.id)));
        hosts
    })
}
