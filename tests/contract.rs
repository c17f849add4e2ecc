//! The bot contract across versions, end to end: a bot built against
//! 0.1.0 keeps loading and working, and what 0.2.0 added works through the
//! real host: delayed delivery (`not-before-ms`), bytes payloads, and
//! `check-settings` holding a bot's events until its settings pass.

use std::time::{Duration, Instant};

use interlink_tests::*;

const WAIT: Duration = Duration::from_secs(20);

/// A host with the probe bot (`bot`, e.g. `probe_v1`) and `extra` config.
fn probe_host(bot: &str, extra: &str) -> Host {
    let mut host = Host::new(&config(extra));
    host.install_bot(bot, "probe.wasm");
    host.start();
    host
}

/// A message the probe handles by what its MSH-10 says.
fn probe_message(control_id: &str) -> String {
    adt_a04(control_id, "P1")
}

#[test]
fn a_bot_built_against_0_1_0_loads_and_works_unchanged() {
    let port = free_port();
    let host = probe_host("probe_0_1_0", &http_config(port));
    host.drop_file("a.hl7", &probe_message("M1"));
    let out = host.wait_outputs(1, WAIT);
    assert!(
        out[0].1.contains("|M1|") && out[0].1.contains("ZPR|v1|1"),
        "{out:?}"
    );

    let check = host.cli(&["check", "plugins/probe.wasm"]);
    let text = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{check:?}");
    assert!(text.contains("contract:    interlink:bot@0.1.0"), "{text}");
    assert!(text.contains("settings: ok"), "{text}");

    let (status, bots) = http_get_json(port, "/api/v1/bots", READ_TOKEN);
    assert_eq!(status, 200);
    assert_eq!(bots["bots"][0]["contract"], "interlink:bot@0.1.0");
    // Its HTTP endpoints work as before.
    let r = http(
        port,
        "POST",
        "/bots/probe/p/kv/k",
        Some(WRITE_TOKEN),
        &[],
        b"v",
    );
    assert_eq!((r.status, r.json()["seq"].as_i64()), (201, Some(1)));
}

#[test]
fn a_delayed_message_waits_without_holding_up_the_queue_and_survives_a_kill() {
    let mut host = probe_host("probe_v1", "");
    let sent = Instant::now();
    host.drop_file("a.hl7", &probe_message("DELAY4000"));
    host.wait_query(
        "SELECT COUNT(*) FROM outbox WHERE status = 'pending' AND not_before_ms > 0",
        1,
        WAIT,
    );
    // Queued behind it, due at once: delivered first.
    host.drop_file("b.hl7", &probe_message("M2"));
    let out = host.wait_outputs(1, WAIT);
    assert!(out[0].1.contains("|M2|"), "{out:?}");
    assert!(
        sent.elapsed() < Duration::from_millis(4000),
        "the test machine is too slow to tell the delay apart"
    );

    // Killed while the message waits: it is still delivered, not early.
    host.kill();
    host.start();
    let out = host.wait_outputs(2, WAIT);
    assert!(sent.elapsed() >= Duration::from_millis(4000));
    assert!(
        out.iter().any(|(_, text)| text.contains("|DELAY4000|")),
        "{out:?}"
    );
    host.wait_query(
        "SELECT COUNT(*) FROM outbox WHERE status = 'sent' AND sent_ms >= not_before_ms
            AND not_before_ms > created_ms",
        1,
        WAIT,
    );
}

#[test]
fn bytes_go_to_a_folder_under_the_bots_name_and_mllp_refuses_them() {
    let files = r#"
[[destination]]
name = "files"
kind = "folder"
dir = "files"
"#;
    let host = probe_host("probe_v1", files);
    host.drop_file("a.hl7", &probe_message("BYTES1"));
    let csv = host.path("files/BYTES1.csv");
    assert!(wait_until(WAIT, || csv.exists()), "{}", host.log());
    assert_eq!(std::fs::read_to_string(&csv).unwrap(), "BYTES1,P1\n");

    let mllp = format!(
        r#"
[[destination]]
name = "files"
kind = "mllp"
host = "127.0.0.1"
port = {}
"#,
        free_port()
    );
    let host = probe_host("probe_v1", &mllp);
    host.drop_file("a.hl7", &probe_message("BYTES2"));
    host.wait_query("SELECT COUNT(*) FROM runs WHERE status = 'failed'", 1, WAIT);
    let error: String = host.query("SELECT error FROM runs");
    assert_eq!(
        error,
        "reply refused: destination \"files\" is mllp, which takes HL7 text only; bytes go to \
         a folder, SFTP, http or DICOM destination"
    );
    assert_eq!(host.query::<i64>("SELECT COUNT(*) FROM outbox"), 0);
}

#[test]
fn refused_settings_hold_the_bots_events_until_a_reload_fixes_them() {
    let port = free_port();
    let with = |refuse: bool| {
        config(&format!(
            "{}\n[bots.probe]\nsettings = {{ refuse = \"{refuse}\" }}\n",
            http_config(port)
        ))
    };
    let mut host = Host::new(&with(true));
    host.install_bot("probe_v1", "probe.wasm");
    host.start();
    host.wait_log(
        "settings refused: setting refuse: the probe refuses to start",
        WAIT,
    );
    host.drop_file("a.hl7", &probe_message("M1"));
    host.wait_query(
        "SELECT COUNT(*) FROM runs WHERE status = 'pending'",
        1,
        WAIT,
    );

    let check = host.cli(&["check", "plugins/probe.wasm"]);
    assert!(!check.status.success());
    assert!(
        String::from_utf8_lossy(&check.stdout)
            .contains("settings: refused: setting refuse: the probe refuses to start"),
        "{check:?}"
    );
    let (_, bots) = http_get_json(port, "/api/v1/bots", READ_TOKEN);
    let shown = bots["bots"][0]["settings_error"]
        .as_str()
        .unwrap_or_default();
    assert!(shown.starts_with("setting refuse:"), "{bots}");
    // HTTP calls are answered, not journaled.
    let r = http(
        port,
        "POST",
        "/bots/probe/p/kv/k",
        Some(WRITE_TOKEN),
        &[],
        b"v",
    );
    assert_eq!(r.status, 503);
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("settings are refused")
    );
    assert_eq!(host.query::<i64>("SELECT COUNT(*) FROM events"), 1);
    // All that answered after the event was routed: it still waits.
    assert_eq!(
        host.query::<i64>("SELECT COUNT(*) FROM runs WHERE status = 'pending'"),
        1
    );
    assert!(host.outputs().is_empty());

    std::fs::write(host.path("interlink.toml"), with(false)).unwrap();
    let (status, body) = http_post_json(port, "/api/v1/config/reload", WRITE_TOKEN, "");
    assert_eq!(status, 200, "{body}");
    let out = host.wait_outputs(1, WAIT);
    assert!(out[0].1.contains("|M1|"), "{out:?}");
    let (_, bots) = http_get_json(port, "/api/v1/bots", READ_TOKEN);
    assert!(bots["bots"][0]["settings_error"].is_null(), "{bots}");
}
