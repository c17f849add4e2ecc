//! What `interlink cluster` and `GET /api/v1/cluster` show: the hosts
//! sharing the journal, whether each is alive, its last heartbeat, and
//! what it owns (as it last reported).

use serde::Serialize;

use crate::journal::{ClusterHost, Reader};

/// The hosts of a journal.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterView {
    /// `sqlite` (one host, no cluster: `hosts` is empty) or `postgres`.
    pub backend: &'static str,
    /// Live hosts first, then those gone within the last day.
    pub hosts: Vec<HostView>,
}

/// One host.
#[derive(Debug, Clone, Serialize)]
pub struct HostView {
    /// `<hostname>:<pid>`.
    pub id: String,
    pub pid: i64,
    /// RFC 3339.
    pub started: String,
    /// RFC 3339: its latest heartbeat (every tenth of `takeover_s`).
    pub heartbeat: String,
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

impl From<ClusterHost> for HostView {
    fn from(h: ClusterHost) -> Self {
        HostView {
            id: h.id,
            pid: h.pid,
            started: crate::instant::rfc3339(h.started_ms),
            heartbeat: crate::instant::rfc3339(h.heartbeat_ms),
            live: h.live,
            leader: h.leader,
            bots: h.bots,
            destinations: h.destinations,
        }
    }
}

/// The hosts of the journal `reader` reads.
pub fn view(reader: &Reader) -> crate::journal::Result<ClusterView> {
    Ok(ClusterView {
        backend: reader.backend(),
        hosts: reader
            .cluster_hosts()?
            .into_iter()
            .map(HostView::from)
            .collect(),
    })
}
