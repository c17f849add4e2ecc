//! End-to-end tests of the sandbox's hardening: the time limit holds for a
//! bot that sleeps, a worker that dies is restarted, and the compile cache
//! (native code) is only trusted when its directory is private and its
//! entries verify.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use interlink_tests::{Host, adt_a04, config, free_port, interlink_bin, wait_until};

const T: Duration = Duration::from_secs(20);
/// How long the probe sleeps on a `SLEEP` message; everything asserted
/// about a sleeping bot must happen well before it.
const PROBE_SLEEP: Duration = Duration::from_secs(30);

/// A started host running `cfg` with the probe bot loaded.
fn probe_host(cfg: &str) -> Host {
    let mut host = Host::new(cfg);
    host.install_bot("probe_v1", "probe.wasm");
    host.start();
    host.wait_log("loaded from", T);
    host
}

/// The journal's error for the run of the event with this control id,
/// once that run has failed.
fn failed_run_error(host: &Host, control_id: &str) -> String {
    let sql = format!(
        "SELECT COUNT(*) FROM runs r JOIN events e ON e.id = r.event_id \
         WHERE e.control_id = '{control_id}' AND r.status = 'failed'"
    );
    host.wait_query(&sql, 1, T);
    host.query(&format!(
        "SELECT r.error FROM runs r JOIN events e ON e.id = r.event_id WHERE e.control_id = '{control_id}'"
    ))
}

#[test]
fn a_sleeping_bot_is_stopped_at_its_time_limit_and_the_next_event_runs() {
    let host = probe_host(&config(""));
    let started = Instant::now();
    host.drop_file("sleep.hl7", &adt_a04("SLEEP1", "P1"));
    host.wait_query(
        "SELECT COUNT(*) FROM events WHERE control_id = 'SLEEP1'",
        1,
        T,
    );
    host.drop_file("ok.hl7", &adt_a04("OK1", "P1"));
    // The event after the sleeper is processed: the worker was not held.
    let out = host.wait_outputs(1, T);
    assert!(out[0].1.contains("|OK1|"), "{out:?}");
    assert!(
        started.elapsed() < PROBE_SLEEP / 3,
        "{:?}",
        started.elapsed()
    );
    assert_eq!(failed_run_error(&host, "SLEEP1"), "timed out after 500 ms");
    let slept_us: i64 = host.query("SELECT r.duration_us FROM runs r JOIN events e ON e.id = r.event_id WHERE e.control_id = 'SLEEP1'");
    // Stopped at its limit, not after the 30 s sleep (the bound leaves room
    // for a loaded machine).
    assert!(
        (500_000..5_000_000).contains(&slept_us),
        "slept {slept_us} us"
    );
    let log = host.log();
    assert!(
        log.contains("timed out after 500 ms bot=probe event=1 outcome=\"failed\""),
        "{log}"
    );

    // A busy loop is still stopped, and the bot carries on after it.
    host.drop_file("loop.hl7", &adt_a04("LOOP1", "P1"));
    assert_eq!(failed_run_error(&host, "LOOP1"), "timed out after 500 ms");
    host.drop_file("ok2.hl7", &adt_a04("OK2", "P1"));
    let out = host.wait_outputs(2, T);
    assert!(out[1].1.contains("|OK2|"), "{out:?}");
}

#[test]
fn an_application_ack_for_a_sleeping_bot_is_ae_at_the_time_limit() {
    let port = free_port();
    let host = probe_host(&config(&format!(
        "[[listener]]\nname = \"app\"\nlisten = \"127.0.0.1:{port}\"\nack = \"application\"\ndetailed_errors = true\n"
    )));
    std::fs::write(host.path("sleep.hl7"), adt_a04("SLEEP2", "P1")).unwrap();
    let started = Instant::now();
    let sent = Command::new(interlink_bin())
        .args(["send", "--to", &format!("127.0.0.1:{port}"), "sleep.hl7"])
        .current_dir(host.dir.path())
        .output()
        .expect("run interlink send");
    let acks = String::from_utf8_lossy(&sent.stdout);
    assert!(
        acks.contains("SLEEP2: AE") && acks.contains("timed out after 500 ms"),
        "{acks}\n{}",
        host.log()
    );
    assert!(
        started.elapsed() < PROBE_SLEEP / 3,
        "{:?}",
        started.elapsed()
    );
}

/// A host whose probe worker has the fault `spec` injected, after one
/// event processed normally.
fn probe_with_fault(spec: &str) -> Host {
    let mut host = Host::new(&config("")).with_env("INTERLINK_FAULT", spec);
    host.install_bot("probe_v1", "probe.wasm");
    host.start();
    host.wait_log("loaded from", T);
    host.drop_file("a.hl7", &adt_a04("A1", "P1"));
    host.wait_outputs(1, T);
    host
}

#[test]
fn a_worker_that_dies_is_restarted_and_takes_up_its_runs() {
    // The probe's worker panics once, just before its second event.
    let host = probe_with_fault("worker-panic:probe:2");

    host.drop_file("b.hl7", &adt_a04("B1", "P1"));
    host.wait_log("worker restarted", T);
    let log = host.log();
    assert!(
        log.contains(
            "worker died: INTERLINK_FAULT: worker-panic injected before event 2; \
             restarting it in 100 ms bot=probe"
        ),
        "{log}"
    );
    // The event in flight when the worker died, and the next one.
    let out = host.wait_outputs(2, T);
    assert!(out[1].1.contains("|B1|"), "{out:?}");
    host.drop_file("c.hl7", &adt_a04("C1", "P1"));
    let out = host.wait_outputs(3, T);
    assert!(
        out[2].1.contains("|C1|") && out[2].1.contains("ZPR|v1|3"),
        "{out:?}"
    );
    host.wait_query("SELECT COUNT(*) FROM runs WHERE status = 'done'", 3, T);
}

#[test]
fn a_run_that_kills_its_worker_again_and_again_is_failed_and_the_bot_goes_on() {
    // The probe's worker panics before its second event every time it is
    // tried: after three deaths the run is failed and the next event runs.
    let host = probe_with_fault("worker-poison:probe:2");
    host.drop_file("b.hl7", &adt_a04("B1", "P1"));
    assert_eq!(
        failed_run_error(&host, "B1"),
        "the host's worker died 3 times running this event \
         (INTERLINK_FAULT: worker-panic injected before event 2); not retried"
    );
    host.drop_file("c.hl7", &adt_a04("C1", "P1"));
    let out = host.wait_outputs(2, T);
    assert!(out[1].1.contains("|C1|"), "{out:?}");
    assert_eq!(
        host.log().matches("worker died: INTERLINK_FAULT").count(),
        3
    );
}

/// The compile cache entries (`.cwasm` files) the host wrote.
fn cache_entries(host: &Host) -> Vec<PathBuf> {
    std::fs::read_dir(host.path("data/cache"))
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "cwasm"))
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until the log (across restarts) shows `n` bot loads.
fn wait_loads(host: &Host, n: usize) {
    if !wait_until(T, || host.log().matches("loaded from").count() >= n) {
        panic!("expected {n} bot loads; log:\n{}", host.log());
    }
}

#[test]
fn a_tampered_compile_cache_entry_is_not_loaded_and_the_bot_is_recompiled() {
    let mut host = probe_host(&config(""));
    let entries = cache_entries(&host);
    assert_eq!(entries.len(), 1, "{entries:?}");
    let entry = &entries[0];
    let mode = std::fs::metadata(host.path("data/cache"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
    let key_mode = std::fs::metadata(host.path("data/cache.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(key_mode & 0o777, 0o600);
    host.kill();

    // Someone with write access changes the compiled code.
    let mut bytes = std::fs::read(entry).unwrap();
    let middle = bytes.len() / 2;
    for b in &mut bytes[middle..middle + 16] {
        *b ^= 0xff;
    }
    std::fs::write(entry, &bytes).unwrap();

    host.start();
    let name = entry.file_name().unwrap().to_string_lossy().into_owned();
    let warning = format!("{name} failed authentication");
    host.wait_log(&warning, T);
    wait_loads(&host, 2);
    // The bot was compiled again and runs correctly.
    host.drop_file("a.hl7", &adt_a04("A1", "P1"));
    let out = host.wait_outputs(1, T);
    assert!(
        out[0].1.contains("|A1|") && out[0].1.contains("ZPR|v1|1"),
        "{out:?}"
    );
    // ... and its entry was rewritten: the next start loads it silently.
    assert_ne!(std::fs::read(entry).unwrap(), bytes);
    host.kill();
    host.start();
    wait_loads(&host, 3);
    assert_eq!(host.log().matches(&warning).count(), 1, "{}", host.log());
}

#[test]
fn a_compile_cache_directory_others_can_write_is_refused() {
    let host = Host::new(&config(""));
    // Named as the configuration names it (relative to the config file).
    let cache = host.path("data/cache");
    std::fs::create_dir_all(&cache).unwrap();
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o777)).unwrap();
    let mut child = host
        .command(&["run", "--config", "interlink.toml"])
        .stderr(std::fs::File::create(host.path("refused.log")).unwrap())
        .spawn()
        .expect("start interlink");
    let exited = wait_until(T, || child.try_wait().unwrap().is_some());
    if !exited {
        let _ = child.kill();
    }
    let status = child.wait().unwrap();
    let err = std::fs::read_to_string(host.path("refused.log")).unwrap();
    assert!(exited && !status.success(), "{status:?}: {err}");
    assert!(
        err.contains("compile cache directory data/cache")
            && err.contains("is writable by group or others (mode 777)"),
        "{err}"
    );
}
