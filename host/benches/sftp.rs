//! SFTP polling benchmark; prints numbers, asserts nothing.
//!
//! `cargo bench -p interlink --bench sftp` after `scripts/setup` (which
//! installs openssh-server and builds the bots).
//!
//! A real OpenSSH `sshd` on 127.0.0.1 serves a directory of 1,000 small
//! HL7 files (`SFTP_BENCH_FILES` to change); the release `interlink`
//! polls it every second (`size_stable = false`, `after = "delete"`,
//! all files in one poll) with the adt-router bot forwarding each message
//! to a folder destination, journal fsync'd. Reported: the poll that takes
//! the files (download + journal commit + remote delete, per file), the
//! time until every bot run is done, and the time of a poll of the then
//! empty directory.

use std::time::{Duration, Instant};

use interlink_tests::{Host, SshServer, adt_a04, base_config, wait_until};

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let n: usize = std::env::var("SFTP_BENCH_FILES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let server = SshServer::start();
    let inbox = server.remote("in");
    std::fs::create_dir_all(&inbox).unwrap();
    for i in 0..n {
        let id = format!("F{i:05}");
        std::fs::write(
            inbox.join(format!("{id}.hl7")),
            adt_a04(&id, &format!("P{i}")),
        )
        .unwrap();
    }
    let config = base_config(&format!(
        r#"
{source}size_stable = false
after = "delete"
max_files_per_poll = {n}

[[destination]]
name = "out"
kind = "folder"
dir = "out"

[bots.adt-router]
settings = {{ destination = "out" }}
"#,
        source = server.source_table("lab", "in", "user_key", "known_hosts"),
    ));
    let mut host = Host::new(&config)
        .with_binary(env!("CARGO_BIN_EXE_interlink").as_ref())
        .with_log_filter("info,interlink::triggers::sftp=debug");
    host.install_bot("adt_router", "adt-router.wasm");
    let started = Instant::now();
    host.start();
    let all_done = wait_until(Duration::from_secs(600), || {
        host.query::<i64>("SELECT COUNT(*) FROM runs WHERE status = 'done'") == n as i64
    });
    let end_to_end = started.elapsed();
    assert!(all_done, "not every file was processed:\n{}", host.log());
    // Five polls of the now empty directory.
    let empty = || {
        host.log()
            .lines()
            .filter(|l| l.contains("listed=0"))
            .count()
    };
    wait_until(Duration::from_secs(10), || empty() >= 5);
    let log = host.log();
    let field = |line: &str, key: &str| -> Option<u64> {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .and_then(|v| v.parse().ok())
    };
    let taking: Vec<(u64, u64)> = log
        .lines()
        .filter(|l| l.contains("polled") && !l.contains("listed=0"))
        .filter_map(|l| Some((field(l, "taken=")?, field(l, "us=")?)))
        .collect();
    let mut empty_us: Vec<u64> = log
        .lines()
        .filter(|l| l.contains("listed=0"))
        .filter_map(|l| field(l, "us="))
        .collect();
    empty_us.sort();
    let (taken, us): (u64, u64) = taking
        .iter()
        .fold((0, 0), |(t, m), (ti, mi)| (t + ti, m + mi));
    println!(
        "SFTP source, {n} files of {} bytes, one sshd on loopback:",
        adt_a04("F00000", "P0").len()
    );
    println!(
        "  taking polls: {taken} files in {:.0} ms over {} poll(s) = {:.0} files/s",
        us as f64 / 1000.0,
        taking.len(),
        taken as f64 * 1e6 / us.max(1) as f64
    );
    println!(
        "  host start to all {n} bot runs done: {:.2} s",
        end_to_end.as_secs_f64()
    );
    println!(
        "  empty-directory poll (session kept): median {:.2} ms, max {:.2} ms ({} polls)",
        empty_us.get(empty_us.len() / 2).copied().unwrap_or(0) as f64 / 1000.0,
        empty_us.last().copied().unwrap_or(0) as f64 / 1000.0,
        empty_us.len()
    );
}
