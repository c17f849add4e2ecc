//! End-to-end tests of the spine: files in, bots run in their sandbox,
//! files out; hot reload; hostile bots; crash safety.

use std::time::Duration;

use interlink_tests::{Host, adt_a04, base_config, config, wait_until};

const T: Duration = Duration::from_secs(20);

fn probe_host(extra: &str) -> Host {
    let mut host = Host::new(&config(extra));
    host.install_bot("probe_v1", "probe.wasm");
    host.start();
    host.wait_log("loaded from", T);
    host
}

#[test]
fn hl7_file_becomes_outbound_file_and_state() {
    let mut host = Host::new(&config(
        r#"
[bots.adt-router]
settings = { receiving_application = "EPIC", receiving_facility = "MAIN", destination = "out" }
"#,
    ));
    host.install_bot("adt_router", "adt_router.wasm");
    host.install_bot("patient_counter", "patient_counter.wasm");
    host.start();

    // Two messages in one file, \n-terminated as editors write them; a
    // third file with an ORU nobody subscribes to.
    let a08 = adt_a04("M2", "MRN7").replace("ADT^A04^ADT_A01", "ADT^A08^ADT_A01");
    host.drop_file(
        "batch.hl7",
        &format!("{}{}", adt_a04("M1", "MRN7"), a08).replace('\r', "\n"),
    );
    host.drop_file(
        "oru.hl7",
        "MSH|^~\\&|LAB|X|Y|Z|20260101||ORU^R01|R1|P|2.5\rOBX|1|TX|||hi\r",
    );

    let out = host.wait_outputs(1, T);
    assert_eq!(
        out,
        vec![(
            "0000000001.hl7".to_string(),
            "MSH|^~\\&|REG|CLINIC|EPIC|MAIN|20260101120000||ADT^A04^ADT_A01|M1|P|2.5.1\r\
             EVN|A04|20260101120000\r\
             PID|1||MRN7^^^CLINIC^MR||DOE^JANE||19800101|F\r"
                .to_string()
        )]
    );
    // The counter saw both ADTs of the patient, committed with the events.
    host.wait_query("SELECT COUNT(*) FROM runs WHERE status = 'done'", 3, T);
    let visits: Vec<u8> =
        host.query("SELECT value FROM kv WHERE bot = 'patient-counter' AND key = 'visits/MRN7'");
    assert_eq!(visits, b"2");
    // Inputs were moved away only after they were journaled.
    assert!(wait_until(T, || host.path("done/batch.hl7").exists()
        && host.path("done/oru.hl7").exists()));
    assert!(!host.path("inbox/batch.hl7").exists());
    // The ORU is journaled and shown as unrouted, not dropped.
    let unrouted = host.cli(&["events", "--unrouted"]);
    let text = String::from_utf8_lossy(&unrouted.stdout);
    assert!(
        text.contains("ORU^R01") && text.contains("unrouted"),
        "{text}"
    );
    assert_eq!(host.query::<i64>("SELECT COUNT(*) FROM events"), 3);
    // One log line per event processed, naming bot, event and outcome.
    let log = host.log();
    assert!(
        log.contains("processed bot=adt-router event=1 outcome=\"done\" sent=1"),
        "{log}"
    );
}

#[test]
fn hot_reload_upgrades_unloads_and_reports_garbage() {
    let host = probe_host("");
    host.drop_file("a.hl7", &adt_a04("A1", "P1"));
    let out = host.wait_outputs(1, T);
    assert!(out[0].1.contains("ZPR|v1|1"), "{out:?}");

    // Upgrade in place: the next event runs the new build, state carries on.
    host.install_bot("probe_v2", "probe.wasm");
    host.wait_log("upgraded 1.0.0 -> 2.0.0", T);
    host.drop_file("b.hl7", &adt_a04("A2", "P1"));
    let out = host.wait_outputs(2, T);
    assert!(out[1].1.contains("ZPR|v2|2"), "{out:?}");

    // Garbage is reported once by name; the live bot is untouched.
    std::fs::write(host.path("plugins/x.wasm"), b"this is not wasm").unwrap();
    host.wait_log("file=x.wasm", T);
    host.drop_file("c.hl7", &adt_a04("A3", "P1"));
    let out = host.wait_outputs(3, T);
    assert!(out[2].1.contains("ZPR|v2|3"));
    assert_eq!(
        host.log().matches("file=x.wasm").count(),
        1,
        "{}",
        host.log()
    );
    assert!(host.log().contains("not a valid WebAssembly component"));

    // Delete: the bot is gone and new events are unrouted, not lost.
    std::fs::remove_file(host.path("plugins/probe.wasm")).unwrap();
    host.wait_log("unloaded", T);
    host.drop_file("d.hl7", &adt_a04("A4", "P1"));
    host.wait_query(
        "SELECT COUNT(*) FROM events WHERE control_id = 'A4' AND routed = 0",
        1,
        T,
    );
    // Routes are journaled with the event: no run, so no output, ever.
    assert_eq!(
        host.query::<i64>(
            "SELECT COUNT(*) FROM runs r JOIN events e ON e.id = r.event_id WHERE e.control_id = 'A4'"
        ),
        0
    );
    assert_eq!(host.outputs().len(), 3);
}

#[test]
fn a_bot_copied_slowly_loads_without_a_spurious_error() {
    let mut host = Host::new(&config(""));
    host.start();
    let bytes = std::fs::read(interlink_tests::bot_wasm("probe_v1")).unwrap();
    let third = bytes.len() / 3;
    let path = host.path("plugins/probe.wasm");
    let mut f = std::fs::File::create(&path).unwrap();
    for chunk in bytes.chunks(third) {
        std::io::Write::write_all(&mut f, chunk).unwrap();
        f.sync_all().unwrap();
        std::thread::sleep(Duration::from_millis(150));
    }
    drop(f);
    host.wait_log("loaded from", T);
    host.drop_file("a.hl7", &adt_a04("S1", "P1"));
    host.wait_outputs(1, T);
    assert!(!host.log().contains("rejected"), "{}", host.log());
}

#[test]
fn hostile_bots_are_stopped_and_others_keep_working() {
    let host = probe_host("");
    let cases = [
        ("LOOP1", "timed out after 500 ms"),
        ("OOM1", "exceeded its 32 MiB memory limit"),
        ("PANIC1", "panicked: probe panicked on purpose"),
        ("READ1", "file read denied"),
        ("NET1", "network denied"),
    ];
    for (i, (id, reason)) in cases.iter().enumerate() {
        host.drop_file(&format!("{id}.hl7"), &adt_a04(id, "P1"));
        let sql = format!(
            "SELECT COUNT(*) FROM runs r JOIN events e ON e.id = r.event_id WHERE e.control_id = '{id}' AND r.status = 'failed'"
        );
        host.wait_query(&sql, 1, T);
        let error: String = host.query(&format!("SELECT r.error FROM runs r JOIN events e ON e.id = r.event_id WHERE e.control_id = '{id}'"));
        assert!(error.contains(reason), "{id}: {error}");
        // A well-behaved event right after is processed normally.
        let ok = format!("OK{i}");
        host.drop_file(&format!("{ok}.hl7"), &adt_a04(&ok, "P1"));
        let out = host.wait_outputs(i + 1, T);
        assert!(out[i].1.contains(&format!("|{ok}|")), "{out:?}");
    }
    // The infinite loop was stopped at its limit: not before it, and not
    // anywhere near forever (the bound leaves room for a loaded machine,
    // where the 5 ms epoch ticker can fall behind).
    let loop_us: i64 = host.query("SELECT r.duration_us FROM runs r JOIN events e ON e.id = r.event_id WHERE e.control_id = 'LOOP1'");
    assert!(
        (500_000..5_000_000).contains(&loop_us),
        "loop ran {loop_us} us"
    );
    // Failures were not retried; the bot's stdout reached the log.
    assert_eq!(host.query::<i64>("SELECT MAX(attempts) FROM runs"), 1);
    assert!(
        host.log().contains("probe v1 handled OK0"),
        "{}",
        host.log()
    );
    // The failed list shows them.
    let failed = host.cli(&["events", "--failed"]);
    let text = String::from_utf8_lossy(&failed.stdout);
    assert!(
        text.contains("LOOP1") && text.contains("timed out"),
        "{text}"
    );
}

#[test]
fn retryable_errors_back_off_then_fail_and_replay_after_fix() {
    let host = probe_host("");
    host.drop_file("r.hl7", &adt_a04("RETRY1", "P1"));
    host.wait_query(
        "SELECT COUNT(*) FROM runs WHERE status = 'failed' AND attempts = 3",
        1,
        T,
    );
    let error: String = host.query("SELECT error FROM runs");
    assert_eq!(error, "failed: dependency unavailable");

    // A bug only the old build has: fails, fix is deployed, operator replays.
    host.drop_file("v.hl7", &adt_a04("V1PANIC", "P1"));
    let sql = "SELECT COUNT(*) FROM runs r JOIN events e ON e.id = r.event_id WHERE e.control_id = 'V1PANIC' AND r.status = 'failed'";
    host.wait_query(sql, 1, T);
    host.install_bot("probe_v2", "probe.wasm");
    host.wait_log("upgraded", T);
    let id: i64 = host.query("SELECT id FROM events WHERE control_id = 'V1PANIC'");
    let replay = host.cli(&["replay", &id.to_string()]);
    assert!(replay.status.success(), "{replay:?}");
    let out = host.wait_outputs(1, T);
    assert!(
        out[0].1.contains("|V1PANIC|") && out[0].1.contains("ZPR|v2|1"),
        "{out:?}"
    );
    // Nothing left to replay for that event.
    let again = host.cli(&["replay", &id.to_string()]);
    assert!(!again.status.success());
}

#[test]
fn crash_between_commit_and_processing_is_processed_once() {
    // The probe works 3 s on a SLOW message, within a 10 s limit.
    let cfg = config("\n[bots.probe]\nsettings = { slow_ms = \"3000\" }\n")
        .replace("timeout_ms = 500", "timeout_ms = 10000");
    let mut host = Host::new(&cfg);
    host.install_bot("probe_v1", "probe.wasm");
    host.start();
    host.drop_file("slow.hl7", &adt_a04("SLOW1", "P1"));
    // Journaled and acknowledged (moved to done), bot still working: kill.
    host.wait_query("SELECT COUNT(*) FROM runs WHERE status = 'pending'", 1, T);
    assert!(wait_until(T, || host.path("done/slow.hl7").exists()));
    // Give the worker time to start the 3 s run, so the kill most likely
    // lands inside it. The checks below hold either way (killed before or
    // during the run); they would fail, not pass, if it had finished.
    std::thread::sleep(Duration::from_millis(500));
    host.kill();
    assert!(host.outputs().is_empty());
    assert_eq!(
        host.query::<i64>("SELECT COUNT(*) FROM runs WHERE status = 'pending'"),
        1
    );

    host.start();
    let out = host.wait_outputs(1, Duration::from_secs(30));
    assert!(
        out[0].1.contains("|SLOW1|") && out[0].1.contains("ZPR|v1|1"),
        "{out:?}"
    );
    host.wait_query("SELECT COUNT(*) FROM runs WHERE status = 'done'", 1, T);
    // Exactly once in effect: one output, one outbox row, the count is 1.
    // The run's outbox rows and KV writes were committed with its status,
    // and the row is delivered once it is marked sent.
    assert_eq!(host.query::<i64>("SELECT COUNT(*) FROM runs"), 1);
    assert_eq!(host.query::<i64>("SELECT COUNT(*) FROM outbox"), 1);
    let count: Vec<u8> = host.query("SELECT value FROM kv WHERE key = 'count'");
    assert_eq!(count, b"1");
    host.wait_query("SELECT COUNT(*) FROM outbox WHERE status = 'sent'", 1, T);
    assert_eq!(host.outputs().len(), 1);
}

#[test]
fn broken_hl7_files_go_to_error_dir_or_stay_logged_once() {
    let folder = |name: &str, extra: &str| {
        format!(
            "[[folder]]\nname = \"{name}\"\ndir = \"{name}\"\nsettle_ms = 50\npoll_ms = 100\n{extra}\n"
        )
    };
    // File names may carry patient data: logged only with phi = true.
    let mut host = Host::new(&base_config(&format!(
        "{}{}[log]\nphi = true\n",
        folder("a", "error_dir = \"errors\""),
        folder("b", "")
    )));
    for dir in ["a", "b"] {
        std::fs::create_dir_all(host.path(dir)).unwrap();
        std::fs::write(host.path(&format!("{dir}/bad.hl7")), "MSH|^~|X|Y\rPID|1\r").unwrap();
        std::fs::write(host.path(&format!("{dir}/good.hl7")), adt_a04("G", "P")).unwrap();
    }
    host.start();
    assert!(
        wait_until(T, || host.path("errors/bad.hl7").exists()),
        "{}",
        host.log()
    );
    host.wait_query("SELECT COUNT(*) FROM events", 2, T);
    // Without error_dir it stays, named in the log once, not at every scan:
    // two more files taken from `b` are two more scans that saw it.
    for (i, id) in ["G2", "G3"].into_iter().enumerate() {
        std::fs::write(host.path(&format!("b/more{i}.hl7")), adt_a04(id, "P")).unwrap();
        host.wait_query("SELECT COUNT(*) FROM events", 3 + i as i64, T);
    }
    assert!(host.path("b/bad.hl7").exists());
    let log = host.log();
    assert_eq!(log.matches("source=b file=bad.hl7").count(), 1, "{log}");
    assert!(
        log.contains("not HL7: message 1: bad MSH delimiters"),
        "{log}"
    );
}

#[test]
fn a_file_over_max_file_mb_is_left_unread_and_logged_once() {
    let mut host = Host::new(&base_config(
        "[[folder]]\nname = \"inbox\"\ndir = \"inbox\"\nsettle_ms = 50\npoll_ms = 100\nmax_file_mb = 1\n\
         [[destination]]\nname = \"out\"\nkind = \"folder\"\ndir = \"out\"\n",
    ));
    host.install_bot("probe_v1", "probe.wasm");
    host.start();
    host.wait_log("loaded from", T);
    let big = format!("{}NTE|1||{}\r", adt_a04("BIG1", "P1"), "x".repeat(1 << 20));
    host.drop_file("big.hl7", &big);
    host.drop_file("small1.hl7", &adt_a04("SMALL1", "P1"));
    host.wait_outputs(1, T);
    host.wait_log("bytes is over max_file_mb = 1; left until it changes", T);
    // Scans after that one take new files and leave the large one alone,
    // without logging it again.
    host.drop_file("small2.hl7", &adt_a04("SMALL2", "P1"));
    host.wait_outputs(2, T);
    assert!(host.path("inbox/big.hl7").exists());
    let sql = "SELECT COUNT(*) FROM events WHERE control_id = 'BIG1'";
    assert_eq!(host.query::<i64>(sql), 0);
    assert_eq!(
        host.log().matches("over max_file_mb").count(),
        1,
        "{}",
        host.log()
    );
}
