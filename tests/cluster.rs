//! Several hosts on one PostgreSQL journal: one is active, the others wait
//! as standbys and take over when it dies, without losing anything it
//! acknowledged. Each test starts its own PostgreSQL server.

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use interlink_tests::{
    Host, Peer, PeerServer, PgServer, adt_a04, base_config, free_port, peer_send, wait_until,
};

/// A host of the cluster (its journal is put on PostgreSQL by
/// [`Host::with_journal_url`]): listener `in` on `port`, the probe bot
/// sending every message on to `out`, python-hl7's server on `peer_port`.
fn config(port: u16, peer_port: u16) -> String {
    base_config(&format!(
        r#"
[[listener]]
name = "in"
listen = "127.0.0.1:{port}"

[[destination]]
name = "out"
kind = "mllp"
host = "127.0.0.1"
port = {peer_port}
connect_timeout_s = 1
retry = {{ initial_backoff_ms = 50, max_backoff_s = 1 }}
"#
    ))
}

/// Writes messages `first..first+n` (patients P0-P2 in turn) as files of
/// `host` and sends them with python-hl7's client to `port`; returns their
/// control ids, each asserted ACKed AA.
fn send(host: &Host, port: u16, first: usize, n: usize) -> Vec<String> {
    let ids: Vec<String> = (first..first + n).map(|i| format!("F{i:04}")).collect();
    let files: Vec<PathBuf> = ids
        .iter()
        .enumerate()
        .map(|(k, id)| {
            let file = host.path(&format!("{id}.hl7"));
            std::fs::write(&file, adt_a04(id, &format!("P{}", (first + k) % 3))).unwrap();
            file
        })
        .collect();
    let acks = peer_send(Peer::Python, port, &files);
    let want: Vec<String> = ids.iter().map(|id| format!("AA {id}")).collect();
    assert_eq!(acks, want);
    ids
}

#[test]
fn a_standby_takes_over_from_a_killed_host_and_delivers_all_it_acked_in_order() {
    let pg = PgServer::start();
    let url = pg.url(&pg.create_database());
    let peer_port = free_port();
    let (port_a, port_b) = (free_port(), free_port());
    let mut a = Host::new(&config(port_a, peer_port)).with_journal_url(&url);
    let mut b = Host::new(&config(port_b, peer_port)).with_journal_url(&url);
    for host in [&a, &b] {
        host.install_bot("probe_v1", "probe.wasm");
    }
    let peer = PeerServer::start(Peer::Python, peer_port, "aa", &a.path("peer.log"));
    a.start();
    b.start_until("standby: another host is active on this journal");
    // The standby serves nothing: its listener is not up.
    assert!(TcpStream::connect(("127.0.0.1", port_b)).is_err());

    let mut acked = send(&a, port_a, 0, 30);
    a.kill();
    let killed = Instant::now();
    b.wait_log(" ready bots=", Duration::from_secs(30));
    eprintln!(
        "the standby was ready {:?} after the kill",
        killed.elapsed()
    );
    acked.extend(send(&b, port_b, 30, 10));

    let all = wait_until(Duration::from_secs(30), || {
        let got: Vec<String> = peer.received().into_iter().map(|(c, _)| c).collect();
        acked.iter().all(|id| got.contains(id))
    });
    assert!(
        all,
        "not all ACKed messages arrived; log of b:\n{}",
        b.log()
    );
    // Per patient, first arrivals in the order they were sent; a second
    // copy is allowed only of what the killed host sent (it may have died
    // before recording the delivery), never a third.
    let mut per_patient: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    let mut copies: BTreeMap<String, usize> = BTreeMap::new();
    for (id, _) in peer.received() {
        let n = copies.entry(id.clone()).or_default();
        *n += 1;
        if *n == 1 {
            let number: usize = id[1..].parse().unwrap();
            per_patient.entry(number % 3).or_default().push(id);
        }
    }
    for (id, n) in &copies {
        assert!(
            *n == 1 || (*n == 2 && acked[..30].contains(id)),
            "{id} arrived {n} times"
        );
    }
    for (patient, ids) in &per_patient {
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, &sorted, "patient P{patient} out of order");
    }
    assert_eq!(
        b.query::<i64>("SELECT COUNT(*) FROM outbox WHERE status <> 'sent'"),
        0
    );
    assert_eq!(b.query::<i64>("SELECT COUNT(*) FROM events"), 40);
}

#[test]
fn an_active_host_whose_database_goes_away_stops_itself() {
    let pg = PgServer::start();
    let url = pg.url(&pg.create_database());
    let peer_port = free_port();
    let mut a = Host::new(&config(free_port(), peer_port)).with_journal_url(&url);
    a.install_bot("probe_v1", "probe.wasm");
    a.start();
    // The server goes away under the active host (as a cut network does,
    // from the host's side): it must stop working rather than go on alone.
    pg.kill();
    let lost = Instant::now();
    a.wait_log("lost the hold on the journal", Duration::from_secs(10));
    let status = a.wait_exit(Duration::from_secs(10));
    // Before a standby could have the lock (after takeover_s, 10 s).
    assert!(
        lost.elapsed() < Duration::from_secs(10),
        "{:?}",
        lost.elapsed()
    );
    // 75 (EX_TEMPFAIL): fenced, for a supervisor to restart as a standby.
    assert_eq!(status.and_then(|s| s.code()), Some(75), "log:\n{}", a.log());
}
