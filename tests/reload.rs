//! Reloading the configuration of a running host, through the admin API
//! and on SIGHUP: a valid file is put in force without a restart (a new
//! destination, a new listener, a bot's settings); an invalid one is
//! refused with a message naming the key while the host keeps running on
//! the old one.

use std::net::TcpStream;
use std::path::PathBuf;
use std::time::Duration;

use interlink_tests::*;

const T: Duration = Duration::from_secs(20);

/// A config whose adt-router sends to `destination`, with `extra` added.
fn host_config(http: u16, destination: &str, extra: &str) -> String {
    config(&format!(
        r#"{extra}
[bots.adt-router]
settings = {{ destination = "{destination}" }}
{}"#,
        http_config(http)
    ))
}

/// Files in the host's folder `dir`.
fn files_in(host: &Host, dir: &str) -> usize {
    std::fs::read_dir(host.path(dir)).map_or(0, |d| d.count())
}

fn mllp_send(host: &Host, port: u16, control_id: &str) -> Vec<String> {
    let file: PathBuf = host.path(&format!("{control_id}.hl7"));
    std::fs::write(&file, adt_a04(control_id, "MRN1")).unwrap();
    peer_send(Peer::Python, port, &[file])
}

/// The destinations `/api/v1/destinations` lists.
fn destination_names(http: u16) -> Vec<String> {
    let (status, body) = http_get_json(http, "/api/v1/destinations", READ_TOKEN);
    assert_eq!(status, 200, "{body}");
    let mut names: Vec<String> = body["destinations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

#[test]
fn reload_puts_a_valid_config_in_force_and_refuses_an_invalid_one() {
    let (http, mllp2) = (free_port(), free_port());
    let mut host = Host::new(&host_config(http, "out", ""));
    host.install_bot("adt_router", "adt_router.wasm");
    host.start();
    host.wait_log("loaded from", T);
    host.drop_file("a.hl7", &adt_a04("R1", "MRN1"));
    host.wait_outputs(1, T);

    // A second destination the bot now sends to, and a second listener.
    let added = format!(
        r#"
[[destination]]
name = "out2"
kind = "folder"
dir = "out2"

[[listener]]
name = "mllp2"
listen = "127.0.0.1:{mllp2}"
"#
    );
    let good = host_config(http, "out2", &added);
    std::fs::write(host.path("interlink.toml"), &good).unwrap();
    let (status, body) = http_post_json(http, "/api/v1/config/reload", READ_TOKEN, "");
    assert_eq!((status, body["error"].is_string()), (403, true), "{body}");
    let (status, body) = http_post_json(http, "/api/v1/config/reload", WRITE_TOKEN, "");
    assert_eq!(status, 200, "{body}");
    let changes = body["changes"].to_string();
    assert!(
        changes.contains(r#"destination \"out2\" started"#),
        "{changes}"
    );
    assert!(
        changes.contains(r#"listener \"mllp2\" started"#),
        "{changes}"
    );
    assert!(
        host.log()
            .contains("audit: ops config-reload configuration")
    );
    assert_eq!(destination_names(http), ["out", "out2"]);
    assert_eq!(mllp_send(&host, mllp2, "R2"), ["AA R2"]);
    assert!(wait_until(T, || files_in(&host, "out2") == 1));

    // A bot naming a destination that does not exist: refused, naming
    // the key; the host keeps running on the config before.
    let bad = good.replace(
        "[bots.adt-router]",
        "[bots.adt-router]\ndestinations = [\"nowhere\"]",
    );
    std::fs::write(host.path("interlink.toml"), &bad).unwrap();
    let (status, body) = http_post_json(http, "/api/v1/config/reload", WRITE_TOKEN, "");
    assert_eq!(status, 422, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(error.contains("bots.adt-router.destinations"), "{error}");
    assert!(error.contains("still running on the old one"), "{error}");
    assert_eq!(mllp_send(&host, mllp2, "R3"), ["AA R3"]);
    assert!(wait_until(T, || files_in(&host, "out2") == 2));

    // SIGHUP puts the first config back: the listener is gone and the bot
    // sends to `out` again.
    std::fs::write(host.path("interlink.toml"), host_config(http, "out", "")).unwrap();
    host.signal("HUP");
    host.wait_log(r#"listener \"mllp2\" stopped"#, T);
    assert!(TcpStream::connect(("127.0.0.1", mllp2)).is_err());
    assert_eq!(destination_names(http), ["out"]);
    let (_, sources) = http_get_json(http, "/api/v1/sources", READ_TOKEN);
    assert_eq!(sources["listeners"], serde_json::json!([]), "{sources}");
    host.drop_file("b.hl7", &adt_a04("R4", "MRN1"));
    host.wait_outputs(2, T);
    assert_eq!(files_in(&host, "out2"), 2);
}

#[test]
fn reload_reports_keys_that_need_a_restart() {
    let http = free_port();
    let mut host = Host::new(&host_config(http, "out", ""));
    host.start();
    let changed = host_config(http, "out", "").replace("timeout_ms = 500", "timeout_ms = 700");
    std::fs::write(host.path("interlink.toml"), changed).unwrap();
    let (status, body) = http_post_json(http, "/api/v1/config/reload", WRITE_TOKEN, "");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["restart_needed"], serde_json::json!(["plugins"]));
}

#[test]
fn a_listener_that_cannot_bind_fails_the_reload_but_the_rest_is_in_force() {
    let http = free_port();
    let mut host = Host::new(&host_config(http, "out", ""));
    host.install_bot("adt_router", "adt_router.wasm");
    host.start();
    host.wait_log("loaded from", T);
    // The HTTP server's own port is taken: the new listener cannot bind.
    let added = format!(
        "[[destination]]\nname = \"out2\"\nkind = \"folder\"\ndir = \"out2\"\n\
         [[listener]]\nname = \"taken\"\nlisten = \"127.0.0.1:{http}\"\n"
    );
    std::fs::write(
        host.path("interlink.toml"),
        host_config(http, "out2", &added),
    )
    .unwrap();
    let (status, body) = http_post_json(http, "/api/v1/config/reload", WRITE_TOKEN, "");
    assert_eq!(status, 500, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains("could not start") && error.contains("taken"),
        "{error}"
    );
    // The destination and the bot's new setting are in force.
    host.drop_file("a.hl7", &adt_a04("P1", "MRN1"));
    assert!(wait_until(T, || files_in(&host, "out2") == 1));
    assert_eq!(destination_names(http), ["out", "out2"]);
}
