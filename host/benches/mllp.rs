//! MLLP load benchmark; prints a table, asserts nothing.
//!
//! `cargo bench -p interlink --bench mllp` after `scripts/setup` (which
//! builds the bots and installs @medplum/hl7 under tests/peers).
//!
//! Senders (this process, tokio) stream ADT^A04 messages over 1 and 16
//! connections, one message in flight per connection, and time each ACK.
//! A sink (this process) answers AA to whatever is forwarded to it and
//! notes when each message arrives, which gives the end-to-end latency.
//! Side by side, in one run:
//! - interlink: the release binary, journal fsync'd (`synchronous = FULL`),
//!   commit ACKs, the adt-router bot forwarding each message to the sink
//!   through an MLLP destination;
//! - bare echo: an in-process MLLP server that ACKs without doing anything
//!   (the ceiling of this machine and this load generator);
//! - medplum: @medplum/hl7's Hl7Server whose handler ACKs, rewrites
//!   MSH-5/MSH-6 and forwards to the sink with Hl7Client (no journal).

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::{Arrivals, Load, Proc, ack_server, end_to_end, load, pct, start_router_host};
use interlink_tests::{free_port, root};
use tokio::net::TcpListener;

fn report(name: &str, connections: usize, load: &mut Load, e2e: Option<Vec<Duration>>) {
    load.ack_latencies.sort();
    let n = load.ack_latencies.len();
    let e2e = match e2e {
        Some(v) => format!("{:>8.2} {:>8.2}", pct(&v, 0.5), pct(&v, 0.99)),
        None => format!("{:>8} {:>8}", "-", "-"),
    };
    println!(
        "{name:<12} {connections:>5} {n:>7} {:>10.0} {:>8.2} {:>8.2} {e2e}",
        n as f64 / load.elapsed.as_secs_f64(),
        pct(&load.ack_latencies, 0.5),
        pct(&load.ack_latencies, 0.99),
    );
}

fn start_interlink(dir: &Path, port: u16, sink: u16) -> Proc {
    start_router_host(
        dir,
        port,
        &format!(
            "[[destination]]\nname = \"out\"\nkind = \"mllp\"\nhost = \"127.0.0.1\"\nport = {sink}\n"
        ),
    )
}

fn wait_for_line(child: &mut Child, what: &str) {
    use std::io::BufRead;
    let out = child.stdout.take().unwrap();
    let mut line = String::new();
    std::io::BufReader::new(out).read_line(&mut line).unwrap();
    assert_eq!(line.trim(), what);
}

/// `-- interlink`, `-- echo` or `-- medplum` runs only that contender.
fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let wants = |name: &str| only.is_empty() || only.iter().any(|a| a == name);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let runs = [(1usize, 3000usize), (16, 600)];
    let runs: Vec<(usize, usize)> = match std::env::var("MLLP_BENCH_SCALE") {
        Ok(f) => runs
            .iter()
            .map(|(c, n)| (*c, n * f.parse::<usize>().unwrap_or(1)))
            .collect(),
        Err(_) => runs.to_vec(),
    };
    println!(
        "{:<12} {:>5} {:>7} {:>10} {:>8} {:>8} {:>8} {:>8}",
        "", "conns", "msgs", "msg/s", "ack p50", "ack p99", "e2e p50", "e2e p99"
    );
    println!(
        "{:<12} {:>5} {:>7} {:>10} {:>8} {:>8} {:>8} {:>8}",
        "", "", "", "", "ms", "ms", "ms", "ms"
    );

    // The sink every forwarder sends to.
    let arrivals: Arrivals = Arc::default();
    let sink_port = free_port();
    let sink = rt
        .block_on(TcpListener::bind(("127.0.0.1", sink_port)))
        .unwrap();
    rt.spawn(ack_server(sink, Some(arrivals.clone())));

    // (a) interlink
    if wants("interlink") {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let host = start_interlink(dir.path(), port, sink_port);
        for (i, (conns, per)) in runs.iter().enumerate() {
            let mut l = rt.block_on(load(port, *conns, *per, &format!("I{i}c")));
            let e2e = rt.block_on(end_to_end(&l, &arrivals));
            report("interlink", *conns, &mut l, e2e);
        }
        drop(host);
    }

    // (b) bare echo
    if wants("echo") {
        let echo_port = free_port();
        let echo = rt
            .block_on(TcpListener::bind(("127.0.0.1", echo_port)))
            .unwrap();
        rt.spawn(ack_server(echo, None));
        for (i, (conns, per)) in runs.iter().enumerate() {
            let mut l = rt.block_on(load(echo_port, *conns, *per, &format!("E{i}c")));
            report("bare echo", *conns, &mut l, None);
        }
    }
    if !wants("medplum") {
        return;
    }

    // (c) @medplum/hl7
    let med_port = free_port();
    let mut child = Command::new("node")
        .arg(root().join("tests/peers/medplum_peer.mjs"))
        .args(["forward", &med_port.to_string(), &sink_port.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("node (scripts/setup installs @medplum/hl7)");
    wait_for_line(&mut child, "ready");
    let _medplum = Proc(child);
    for (i, (conns, per)) in runs.iter().enumerate() {
        let mut l = rt.block_on(load(med_port, *conns, *per, &format!("M{i}c")));
        let e2e = rt.block_on(end_to_end(&l, &arrivals));
        report("medplum", *conns, &mut l, e2e);
    }
}
