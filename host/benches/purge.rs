//! Purge benchmark; prints a table, asserts nothing.
//!
//! `cargo bench -p interlink --bench purge` (`PURGE_BENCH_EVENTS=N` changes
//! the 1,000,000).
//!
//! Builds a journal holding N old, finished events the way MLLP traffic
//! leaves them (event, receipt, one done run, one sent outbox message
//! each), written with SQL in one transaction into the schema the host
//! creates. Then runs the release host on copies of it, with one client
//! (this process) sending ADTs one at a time and timing each ACK:
//! - purge: `retention_days = 7`, so the purge that runs at start deletes
//!   all N while the client sends, until the host logs "purged";
//! - no purge: the same journal with a retention that keeps everything,
//!   for as long as the purge took.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{load, pct, start_host};
use rusqlite::params;

/// Writes `n` old finished events into a new journal at `path`.
fn build_journal(path: &Path, n: i64) {
    common::fill_journal(path, |tx| {
        let mut event = tx
            .prepare(
                "INSERT INTO events (id, kind, source, message_type, control_id, body, received_at_ms, routed)
                 VALUES (?1, 'hl7', 'in', 'ADT^A04', ?2, ?3, ?4, 1)",
            )
            .unwrap();
        let mut receipt = tx
            .prepare(
                "INSERT INTO received (event_id, listener, sender, control_id, ack, at_ms)
                 VALUES (?1, 'in', 'REG^CLINIC', ?2, ?3, ?4)",
            )
            .unwrap();
        let mut run = tx
            .prepare(
                "INSERT INTO runs (event_id, bot, status, attempts, bot_version, duration_us, updated_ms)
                 VALUES (?1, 'adt-router', 'done', 1, '0.1.0', 20, ?2)",
            )
            .unwrap();
        let mut outbox = tx
            .prepare(
                "INSERT INTO outbox (event_id, bot, destination, message, status, attempts, created_ms, sent_ms)
                 VALUES (?1, 'adt-router', 'out', ?2, 'sent', 1, ?3, ?3)",
            )
            .unwrap();
        for id in 1..=n {
            let control_id = format!("OLD{id}");
            let body = common::adt(&control_id);
            // 1970: older than any retention.
            let at = 1_000_000 + id;
            let ack = format!(
                "MSH|^~\\&|INTERLINK|BF|REG|CLINIC|20260101||ACK^A04|A{id}|P|2.5.1\rMSA|AA|{control_id}\r"
            );
            event.execute(params![id, control_id, body, at]).unwrap();
            receipt.execute(params![id, control_id, ack, at]).unwrap();
            run.execute(params![id, at]).unwrap();
            outbox.execute(params![id, body, at]).unwrap();
        }
    });
}

/// ACK latencies of one client against a host on a copy of `journal`, until
/// `done` says so (given the host's log and the time since the start).
fn measure(
    rt: &tokio::runtime::Runtime,
    journal: &Path,
    retention_days: u32,
    done: impl Fn(&str, Duration) -> bool,
) -> (Vec<Duration>, Duration) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    std::fs::copy(journal, dir.path().join("data/j.db")).unwrap();
    let port = interlink_tests::free_port();
    let started = Instant::now();
    let _host = start_host(
        dir.path(),
        &format!(
            "[journal]\npath = \"data/j.db\"\nretention_days = {retention_days}\n\
             [[listener]]\nname = \"in\"\nlisten = \"127.0.0.1:{port}\"\n"
        ),
    );
    let mut latencies = Vec::new();
    for batch in 0.. {
        let l = rt.block_on(load(port, 1, 50, &format!("R{retention_days}b{batch}c")));
        latencies.extend(l.ack_latencies);
        let log = std::fs::read_to_string(dir.path().join("host.log")).unwrap_or_default();
        if done(&log, started.elapsed()) {
            break;
        }
    }
    latencies.sort();
    (latencies, started.elapsed())
}

fn report(name: &str, latencies: &[Duration], elapsed: Duration) {
    println!(
        "{name:<10} {:>8.1} {:>7} {:>8.2} {:>8.2} {:>8.2}",
        elapsed.as_secs_f64(),
        latencies.len(),
        pct(latencies, 0.5),
        pct(latencies, 0.99),
        pct(latencies, 1.0),
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let n: i64 = std::env::var("PURGE_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("template.db");
    let t = Instant::now();
    build_journal(&journal, n);
    let mb = std::fs::metadata(&journal).unwrap().len() / (1 << 20);
    println!(
        "journal: {n} old finished events, {mb} MiB, built in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    println!(
        "{:<10} {:>8} {:>7} {:>8} {:>8} {:>8}",
        "", "s", "acks", "ack p50", "ack p99", "ack max"
    );
    let (purge, took) = measure(&rt, &journal, 7, |log, _| log.contains("purged "));
    report("purge", &purge, took);
    let (steady, took) = measure(&rt, &journal, 36_500, |_, t| t >= took);
    report("no purge", &steady, took);
}
