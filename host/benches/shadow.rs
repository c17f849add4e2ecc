//! Shadow-run benchmark; prints a table, asserts nothing.
//!
//! `cargo bench -p interlink --bench shadow` (`SHADOW_BENCH_EVENTS=N`
//! changes the 100,000). Needs `target/test-bots/visit_stamp_*.wasm`
//! (`scripts/setup`).
//!
//! Builds a journal holding N HL7 events (ADT^A04, ADT^A08, ORU^R01 in
//! turn, 1,000 patients) that `visit-stamp` 1.0.0 handled, written with SQL
//! into the schema the host creates, as the writer leaves them: a done run,
//! the message it queued (the event with `ZVS|<visit count>|<time>`), the
//! patients' visit counts in `kv` and one `state_undo` row per event. Then
//! runs the release `interlink shadow --json` over all of it, each candidate
//! in a process of its own: v1 (every event the same) and v2 (a third of
//! them differ in PID-5.2, `Jane` -> `JANE`). Prints the events compared per second of the
//! run (the report's `duration_ms`: journal reads, the runs, the diffs),
//! the whole command's wall time (with loading and compiling the
//! candidate) and the process's peak RSS.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use rusqlite::params;

const BOT: &str = "visit-stamp";
const PATIENTS: i64 = 1_000;

/// Event `id`'s message type and message: one of three types, for
/// patient `P<id % 1000>`.
fn message(id: i64) -> (&'static str, String) {
    let kind = ["ADT^A04^ADT_A01", "ADT^A08^ADT_A01", "ORU^R01^ORU_R01"][id as usize % 3];
    let message = format!(
        "MSH|^~\\&|REG|CLINIC|INTERLINK|BF|20260101120000||{kind}|B{id}|P|2.5.1\r\
         EVN|A04|20260101120000\r\
         PID|1||P{}^^^CLINIC^MR||DOE^Jane^Q||19800101|F|||1 MAIN ST^^SPRINGFIELD^IL^62701\r\
         PV1|1|O|CLINIC^^^BF||||1234^WELBY^MARCUS\r",
        id % PATIENTS
    );
    (kind, message)
}

/// Writes `n` events `visit-stamp` handled into a new journal at `path`,
/// received one ms apart from `start_ms`.
fn build_journal(path: &Path, n: i64, start_ms: i64) {
    common::fill_journal(path, |tx| {
        let mut event = tx
            .prepare(
                "INSERT INTO events (id, kind, source, message_type, control_id, body, received_at_ms, routed)
                 VALUES (?1, 'hl7', 'in', ?2, ?3, ?4, ?5, 1)",
            )
            .unwrap();
        let mut run = tx
            .prepare(
                "INSERT INTO runs (event_id, bot, status, attempts, bot_version, duration_us, updated_ms)
                 VALUES (?1, ?2, 'done', 1, '1.0.0', 30, ?3)",
            )
            .unwrap();
        let mut outbox = tx
            .prepare(
                "INSERT INTO outbox (event_id, bot, destination, message, status, attempts, created_ms, sent_ms)
                 VALUES (?1, ?2, 'out', ?3, 'sent', 1, ?4, ?4)",
            )
            .unwrap();
        let mut undo = tx
            .prepare(
                "INSERT INTO state_undo (bot, last_event, kind, key, value)
                 VALUES (?1, ?2, 'kv', ?3, ?4)",
            )
            .unwrap();
        let mut kv = tx
            .prepare("INSERT OR REPLACE INTO kv (bot, key, value) VALUES (?1, ?2, ?3)")
            .unwrap();
        for id in 1..=n {
            let (kind, body) = message(id);
            let at = start_ms + id;
            let visits = (id - 1) / PATIENTS + 1;
            let key = format!("visits/P{}", id % PATIENTS);
            let before = (visits > 1).then(|| (visits - 1).to_string().into_bytes());
            event
                .execute(params![id, kind, format!("B{id}"), body.as_bytes(), at])
                .unwrap();
            run.execute(params![id, BOT, at]).unwrap();
            let sent = format!("{body}ZVS|{visits}|{at}\r");
            outbox.execute(params![id, BOT, sent, at]).unwrap();
            undo.execute(params![BOT, id, key, before]).unwrap();
            kv.execute(params![BOT, key, visits.to_string().into_bytes()])
                .unwrap();
        }
    });
}

/// What one `interlink shadow` process reported and cost.
struct Measured {
    report: serde_json::Value,
    wall_s: f64,
    peak_rss_mib: f64,
}

/// Runs `interlink shadow CANDIDATE --from 0 --json` in `dir` and waits for
/// it with `wait4`, which gives the process's own peak RSS.
fn shadow(dir: &Path, candidate: &Path) -> Measured {
    let out = std::fs::File::create(dir.join("report.json")).unwrap();
    let started = Instant::now();
    #[allow(clippy::zombie_processes, reason = "reaped by wait4 below")]
    let child = Command::new(env!("CARGO_BIN_EXE_interlink"))
        .arg("shadow")
        .arg(candidate)
        .args([
            "--bot",
            BOT,
            "--from",
            "0",
            "--json",
            "--config",
            "interlink.toml",
        ])
        .current_dir(dir)
        .stdout(out)
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child, with valid pointers to locals.
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    let wall_s = started.elapsed().as_secs_f64();
    assert_eq!(pid, child.id() as i32, "wait4 failed");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) < 2,
        "interlink shadow failed: status {status}"
    );
    let report = std::fs::read(dir.join("report.json")).unwrap();
    Measured {
        report: serde_json::from_slice(&report).unwrap(),
        wall_s,
        // Linux gives ru_maxrss in KiB.
        peak_rss_mib: usage.ru_maxrss as f64 / 1024.0,
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let n: i64 = std::env::var("SHADOW_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    std::fs::write(
        dir.path().join("interlink.toml"),
        "[journal]\npath = \"data/j.db\"\n\n\
         [[destination]]\nname = \"out\"\nkind = \"folder\"\ndir = \"out\"\n",
    )
    .unwrap();
    let t = Instant::now();
    build_journal(&dir.path().join("data/j.db"), n, 1_700_000_000_000);
    let mb = std::fs::metadata(dir.path().join("data/j.db"))
        .unwrap()
        .len()
        >> 20;
    println!(
        "journal: {n} handled events, {mb} MiB, built in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    println!(
        "{:<10} {:>9} {:>9} {:>9} {:>10} {:>8} {:>9}",
        "candidate", "compared", "same", "differing", "events/s", "wall s", "peak RSS"
    );
    for candidate in ["visit_stamp_v1", "visit_stamp_v2"] {
        let m = shadow(dir.path(), &interlink_tests::bot_wasm(candidate));
        let s = &m.report["summary"];
        let compared = s["compared"].as_u64().unwrap();
        let run_s = m.report["duration_ms"].as_u64().unwrap() as f64 / 1000.0;
        println!(
            "{:<10} {:>9} {:>9} {:>9} {:>10.0} {:>8.2} {:>5.0} MiB",
            &candidate["visit_stamp_".len()..],
            compared,
            s["same"].as_u64().unwrap(),
            s["differing"].as_u64().unwrap(),
            compared as f64 / run_s,
            m.wall_s,
            m.peak_rss_mib,
        );
    }
}
