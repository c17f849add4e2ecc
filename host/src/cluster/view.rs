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
    pub hosts: Vec<ClusterHost>,
}

/// The hosts of the journal `reader` reads.
pub fn view(reader: &Reader) -> crate::journal::Result<ClusterView> {
    Ok(ClusterView {
        backend: reader.backend(),
        hosts: reader.cluster_hosts()?,
    })
}
