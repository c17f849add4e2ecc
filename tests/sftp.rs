//! End-to-end tests of SFTP sources and destinations against a real
//! OpenSSH `sshd` (internal-sftp) on 127.0.0.1: batch files split into
//! messages, `after` = move/delete/keep with the ledger, growing files left
//! alone, host-key and login refusals, a server that is down for a while,
//! and SIGKILLs between the journal commit and the remote move.

use std::path::Path;
use std::time::Duration;

use interlink_tests::{Host, SshServer, adt_a04, config, wait_until};

const WAIT: Duration = Duration::from_secs(20);

/// An `[[sftp]]` source named `lab` polling `remote(in)` every second
/// (plus `source_extra` lines), then `extra` (which starts a new table).
fn sftp_config(server: &SshServer, source_extra: &str, extra: &str) -> String {
    let source = server.source_table("lab", "in", "user_key", "known_hosts");
    config(&format!("\n{source}{source_extra}\n{extra}"))
}

/// The log filter of these tests: info, plus each SFTP poll at debug (the
/// signal to wait on before asserting that more polls changed nothing).
const POLLS: &str = "info,interlink::triggers::sftp=debug";

/// A host on `config` logging every poll.
fn sftp_host(config: &str) -> Host {
    Host::new(config).with_log_filter(POLLS)
}

/// Waits until source `name` has polled `n` more times (successfully, or
/// failing again the way it failed before).
fn wait_polls(host: &Host, name: &str, n: usize) {
    let field = format!("source={name}");
    let is_poll = |l: &str| {
        (l.contains(" polled ") || l.contains(" poll failed"))
            && l.split_whitespace().any(|w| w == field)
    };
    host.wait_log_lines(&is_poll, n, WAIT);
}

/// adt-router sending to destination `to`.
fn router_to(to: &str) -> String {
    format!("[bots.adt-router]\nsettings = {{ destination = {to:?} }}\n")
}

/// Writes a remote file the way an uploader finishing a file would.
fn put(server: &SshServer, rel: &str, content: &str) {
    let path = server.remote(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let tmp = path.with_file_name(format!(".{}.part", rel.replace('/', "_")));
    std::fs::write(&tmp, content).unwrap();
    std::fs::rename(tmp, path).unwrap();
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// (file name, number of events) for every file journaled from `lab`.
fn events_per_file(host: &Host) -> Vec<(String, i64)> {
    host.query_rows(
        "SELECT name, COUNT(*) FROM events WHERE source = 'lab' GROUP BY name ORDER BY name",
    )
    .iter()
    .map(|r| (r[0].get(), r[1].get()))
    .collect()
}

fn batch(ids: &[&str]) -> String {
    let body: String = ids
        .iter()
        .map(|id| adt_a04(id, &format!("P{id}")))
        .collect();
    format!(
        "FHS|^~\\&|LAB|H\rBHS|^~\\&|LAB|H\r{body}BTS|{}\rFTS|1\r",
        ids.len()
    )
}

#[test]
fn a_batch_file_is_split_processed_once_and_moved() {
    let server = SshServer::start();
    let done = server.remote("done");
    let extra = format!("after = \"move:{}\"\npattern = \"*.hl7\"", done.display());
    let mut host = sftp_host(&sftp_config(&server, &extra, &router_to("out")));
    host.install_bot("adt_router", "adt-router.wasm");
    put(&server, "in/readme.txt", "not for us");
    put(&server, "in/batch.hl7", &batch(&["B1", "B2", "B3"]));
    put(&server, "in/single.hl7", &adt_a04("S1", "P9"));
    host.start();

    let out = host.wait_outputs(4, WAIT);
    for id in ["B1", "B2", "B3", "S1"] {
        assert!(
            out.iter().any(|(_, m)| m.contains(&format!("|{id}|P|"))),
            "{id} not delivered: {out:?}"
        );
    }
    assert!(wait_until(WAIT, || names_in(&done) == ["batch.hl7", "single.hl7"]));
    assert_eq!(names_in(&server.remote("in")), ["readme.txt"]);
    // More polls change nothing.
    wait_polls(&host, "lab", 2);
    assert_eq!(
        events_per_file(&host),
        [("batch.hl7".to_string(), 3), ("single.hl7".to_string(), 1)]
    );
    assert_eq!(host.query::<i64>("SELECT COUNT(*) FROM files"), 2);
    let origin: String = host.query("SELECT name FROM events WHERE control_id = 'B2'");
    assert_eq!(origin, "batch.hl7");
}

#[test]
fn recursive_polls_subdirectories_but_not_the_move_dir_inside() {
    let server = SshServer::start();
    let done = server.remote("in/done");
    let extra = format!("after = \"move:{}\"\nrecursive = true", done.display());
    let mut host = sftp_host(&sftp_config(&server, &extra, ""));
    put(&server, "in/top.hl7", &adt_a04("R1", "P1"));
    put(&server, "in/ward/a/deep.hl7", &adt_a04("R2", "P2"));
    host.start();
    // Moved to the same relative path under the move dir.
    assert!(
        wait_until(WAIT, || names_in(&done) == ["top.hl7", "ward"]
            && done.join("ward/a/deep.hl7").exists()),
        "{}",
        host.log()
    );
    wait_polls(&host, "lab", 2);
    assert_eq!(
        events_per_file(&host),
        [
            ("top.hl7".to_string(), 1),
            ("ward/a/deep.hl7".to_string(), 1)
        ]
    );
}

#[test]
fn recursive_listing_stops_at_max_depth_and_says_so_once() {
    let server = SshServer::start();
    let extra = "after = \"keep\"\nrecursive = true\nmax_depth = 1";
    let mut host = Host::new(&sftp_config(&server, extra, ""));
    put(&server, "in/top.hl7", &adt_a04("D0", "P1"));
    put(&server, "in/a/one.hl7", &adt_a04("D1", "P1"));
    put(&server, "in/a/b/two.hl7", &adt_a04("D2", "P1"));
    host.start();
    host.wait_query("SELECT COUNT(*) FROM events", 2, WAIT);
    // A file put now is taken by later polls, which list the same tree.
    put(&server, "in/later.hl7", &adt_a04("D3", "P1"));
    host.wait_query("SELECT COUNT(*) FROM events", 3, WAIT);
    let names: Vec<String> = events_per_file(&host).into_iter().map(|e| e.0).collect();
    assert_eq!(names, ["a/one.hl7", "later.hl7", "top.hl7"]);
    let log = host.log();
    assert_eq!(
        log.matches("subdirectories below max_depth = 1 not listed")
            .count(),
        1,
        "{log}"
    );
}

#[test]
fn a_listing_stops_at_max_list_entries_and_the_poll_takes_what_it_listed() {
    let server = SshServer::start();
    let extra = "after = \"delete\"\nmax_list_entries = 3";
    let mut host = Host::new(&sftp_config(&server, extra, ""));
    for i in 1..=5 {
        put(
            &server,
            &format!("in/f{i}.hl7"),
            &adt_a04(&format!("E{i}"), "P1"),
        );
    }
    host.start();
    // Polls that listed 3 of the 5 took those; once they were deleted, the
    // rest fitted in a listing and were taken too.
    host.wait_query("SELECT COUNT(*) FROM events", 5, WAIT);
    assert!(wait_until(WAIT, || names_in(&server.remote("in")).is_empty()));
    let log = host.log();
    assert_eq!(
        log.matches("listing stopped at max_list_entries = 3")
            .count(),
        1,
        "{log}"
    );
}

#[test]
fn delete_and_an_sftp_destination() {
    let server = SshServer::start();
    let outbound = server.remote("outbound");
    // This destination does not check the host key (and says so).
    let destination = format!(
        "[[destination]]\nname = \"ehr-drop\"\nkind = \"sftp\"\nhost = \"127.0.0.1\"\nport = {}\ndir = {:?}\n\
         ssh = {{ user = {:?}, private_key = {:?}, insecure_accept_any_host_key = true }}\n",
        server.port,
        outbound.display().to_string(),
        SshServer::user(),
        server.file("user_key").display().to_string(),
    );
    let extra = format!("{destination}{}", router_to("ehr-drop"));
    let mut host = sftp_host(&sftp_config(&server, "after = \"delete\"", &extra));
    host.install_bot("adt_router", "adt-router.wasm");
    put(&server, "in/a04.hl7", &adt_a04("D1", "P1"));
    host.start();

    // The file is written under a temporary dot-name, then renamed.
    let delivered = || -> Vec<String> {
        names_in(&outbound)
            .into_iter()
            .filter(|n| !n.starts_with('.'))
            .collect()
    };
    assert!(
        wait_until(WAIT, || delivered().len() == 1),
        "{}",
        host.log()
    );
    let name = &delivered()[0];
    assert!(name.ends_with(".hl7"), "{name}");
    let sent = std::fs::read_to_string(outbound.join(name)).unwrap();
    assert!(
        sent.starts_with("MSH|^~\\&|REG|CLINIC|EHR|HOSPITAL|"),
        "{sent}"
    );
    assert!(sent.contains("|D1|P|") && sent.contains("PID|1||P1^^^CLINIC^MR"));
    assert!(wait_until(WAIT, || names_in(&server.remote("in")).is_empty()));
    host.wait_query(
        "SELECT COUNT(*) FROM outbox WHERE destination = 'ehr-drop' AND status = 'sent'",
        1,
        WAIT,
    );
    let log = host.log();
    assert!(
        log.contains(
            "destination \"ehr-drop\": insecure_accept_any_host_key = true: the server's identity is NOT checked"
        ),
        "{log}"
    );
}

#[test]
fn kept_files_are_processed_once_across_polls_and_restarts() {
    let server = SshServer::start();
    let mut host = sftp_host(&sftp_config(&server, "after = \"keep\"", ""));
    put(&server, "in/kept.hl7", &adt_a04("K1", "P1"));
    host.start();
    host.wait_query("SELECT COUNT(*) FROM events WHERE source = 'lab'", 1, WAIT);
    wait_polls(&host, "lab", 2);
    host.kill();
    host.start();
    // The restarted host downloads it again, finds it in the ledger and
    // leaves it.
    host.wait_log("already journaled", WAIT);
    wait_polls(&host, "lab", 2);
    assert_eq!(events_per_file(&host), [("kept.hl7".to_string(), 1)]);
    assert_eq!(names_in(&server.remote("in")), ["kept.hl7"]);
    // A new version of the file is new input.
    put(&server, "in/kept.hl7", &adt_a04("K2", "P1"));
    host.wait_query("SELECT COUNT(*) FROM events WHERE source = 'lab'", 2, WAIT);
}

#[test]
fn a_file_still_growing_is_not_taken_early() {
    let server = SshServer::start();
    let mut host = sftp_host(&sftp_config(&server, "after = \"delete\"", ""));
    host.start();
    let path = server.remote("in/growing.hl7");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut text = adt_a04("G1", "P1");
    std::fs::write(&path, &text).unwrap();
    // Every poll sees it bigger than the one before.
    for i in 1..=4 {
        wait_polls(&host, "lab", 1);
        assert_eq!(
            host.query::<i64>("SELECT COUNT(*) FROM events WHERE source = 'lab'"),
            0,
            "taken while still growing"
        );
        text.push_str(&format!("OBX|{i}|TX|||line {i}\r"));
        std::fs::write(&path, &text).unwrap();
    }
    host.wait_query("SELECT COUNT(*) FROM events WHERE source = 'lab'", 1, WAIT);
    let body: String = host.query("SELECT body FROM events WHERE source = 'lab'");
    assert!(body.contains("OBX|4|TX|||line 4"), "{body}");
}

#[test]
fn bad_host_keys_and_logins_are_refused_and_a_silent_server_delays_nobody() {
    let server = SshServer::start();
    std::fs::write(server.file("empty_known_hosts"), "").unwrap();
    let source =
        |name: &str, dir: &str, key: &str, known: &str| server.source_table(name, dir, key, known);
    std::fs::write(server.file("password"), "not-the-password\n").unwrap();
    let password = |name: &str, dir: &str, how: &str| {
        source(name, dir, "user_key", "known_hosts").replace(
            &format!(
                "private_key = {:?}",
                server.file("user_key").display().to_string()
            ),
            how,
        )
    };
    // A server that accepts connections and never says a word.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let silent_source = |name: &str, timeout_s: u32| {
        source(name, "s", "user_key", "known_hosts")
            .replace(
                &format!("port = {}", server.port),
                &format!("port = {silent_port}"),
            )
            .replace("timeout_s = 5", &format!("timeout_s = {timeout_s}"))
    };
    let sources = [
        source("good", "ok", "user_key", "known_hosts"),
        silent_source("silent", 2),
        silent_source("hung", 120),
        source("impostor", "a", "user_key", "wrong_known_hosts"),
        source("unknown", "b", "user_key", "empty_known_hosts"),
        source("badkey", "c", "other_key", "known_hosts"),
        password("noenv", "d", "password_env = \"INTERLINK_TEST_UNSET\""),
        password(
            "badpass",
            "e",
            &format!(
                "password_file = {:?}",
                server.file("password").display().to_string()
            ),
        ),
    ]
    .concat();
    let mut host = sftp_host(&config(&sources));
    for dir in ["ok", "a", "b", "c", "d", "e"] {
        put(&server, &format!("{dir}/x.hl7"), &adt_a04("X", "P"));
    }
    host.start();
    // Failing and silent servers hold up nobody else: `hung` waits 120 s.
    host.wait_query(
        "SELECT COUNT(*) FROM events WHERE source = 'good'",
        1,
        Duration::from_secs(15),
    );
    host.wait_log("does not match the one in", WAIT);
    host.wait_log("is not in", WAIT);
    host.wait_log("other_key not accepted", WAIT);
    host.wait_log("environment variable INTERLINK_TEST_UNSET is not set", WAIT);
    host.wait_log("password not accepted", WAIT);
    let log = host.log();
    assert!(log.contains("refusing to connect"), "{log}");
    assert!(log.contains("login to 127.0.0.1"), "{log}");
    // Logged once per failure, not once per poll.
    wait_polls(&host, "impostor", 2);
    assert_eq!(host.log().matches("does not match the one in").count(), 1);
    // The silent server is given up on after `timeout_s`.
    assert!(
        wait_until(WAIT, || host
            .log()
            .lines()
            .any(|l| l.contains(&format!(
                "SSH handshake with 127.0.0.1:{silent_port} failed"
            )) && l.contains("source=silent"))),
        "{}",
        host.log()
    );
    assert_eq!(host.query::<i64>("SELECT COUNT(*) FROM events"), 1);
    for dir in ["a", "b", "c", "d", "e"] {
        assert_eq!(names_in(&server.remote(dir)), ["x.hl7"]);
    }
}

#[test]
fn a_server_down_for_a_while_is_polled_again() {
    let mut server = SshServer::start();
    server.stop();
    let mut host = sftp_host(&sftp_config(&server, "after = \"delete\"", ""));
    put(&server, "in/late.hl7", &adt_a04("L1", "P1"));
    host.start();
    host.wait_log("cannot connect to 127.0.0.1", WAIT);
    server.resume();
    host.wait_query("SELECT COUNT(*) FROM events WHERE source = 'lab'", 1, WAIT);
    host.wait_log("reachable again", WAIT);
    assert!(wait_until(WAIT, || names_in(&server.remote("in")).is_empty()));
}

#[test]
fn killed_between_commit_and_remote_move_nothing_is_processed_twice() {
    let server = SshServer::start();
    let done = server.remote("done");
    // `done` is a file, so the move after the commit fails: the state a
    // SIGKILL right after the commit leaves behind.
    std::fs::write(&done, "in the way").unwrap();
    let extra = format!("after = \"move:{}\"", done.display());
    let mut host = sftp_host(&sftp_config(&server, &extra, ""));
    put(&server, "in/one.hl7", &adt_a04("M1", "P1"));
    put(&server, "in/two.hl7", &batch(&["M2", "M3"]));
    host.start();
    host.wait_query("SELECT COUNT(*) FROM events WHERE source = 'lab'", 3, WAIT);
    host.wait_log("journaled, but", WAIT);
    host.kill();
    assert_eq!(names_in(&server.remote("in")), ["one.hl7", "two.hl7"]);

    std::fs::remove_file(&done).unwrap();
    host.start();
    assert!(
        wait_until(WAIT, || names_in(&done) == ["one.hl7", "two.hl7"]),
        "{}",
        host.log()
    );
    host.wait_log("finishing its disposal", WAIT);
    assert_eq!(
        events_per_file(&host),
        [("one.hl7".to_string(), 1), ("two.hl7".to_string(), 2)]
    );
}

#[test]
fn sigkill_while_taking_many_files_takes_each_exactly_once() {
    let server = SshServer::start();
    let extra = "after = \"delete\"\nsize_stable = false\nmax_files_per_poll = 10";
    let mut host = sftp_host(&sftp_config(&server, extra, ""));
    let n = 60;
    for i in 0..n {
        put(
            &server,
            &format!("in/f{i:03}.hl7"),
            &adt_a04(&format!("F{i}"), "P"),
        );
    }
    host.start();
    for at_least in [10, 30] {
        assert!(wait_until(WAIT, || host.query::<i64>(
            "SELECT COUNT(*) FROM events WHERE source = 'lab'"
        ) >= at_least));
        host.kill();
        host.start();
    }
    assert!(
        wait_until(Duration::from_secs(40), || names_in(&server.remote("in"))
            .is_empty()),
        "{}",
        host.log()
    );
    let per_file = events_per_file(&host);
    assert_eq!(per_file.len(), n, "{per_file:?}");
    assert!(per_file.iter().all(|(_, c)| *c == 1), "{per_file:?}");
}

#[test]
fn broken_hl7_goes_to_error_dir_and_other_files_become_file_events() {
    let server = SshServer::start();
    let errors = server.remote("errors");
    let extra = format!(
        "after = \"delete\"\nerror_dir = {:?}",
        errors.display().to_string()
    );
    // A second source without error_dir leaves it, logged once.
    let keeper = server.source_table("lab2", "in2", "user_key", "known_hosts");
    let probe = "[bots.probe]\nsubscribe_also = [{ files = \"lab\" }]\n[log]\nphi = true\n";
    let mut host = sftp_host(&sftp_config(&server, &extra, &format!("{probe}{keeper}")));
    host.install_bot("probe_v1", "probe.wasm");
    put(&server, "in2/bad.hl7", "MSH|^~|X|Y\rPID|1\r");
    put(&server, "in/bad.hl7", "MSH|^~|X|Y\rPID|1\r");
    put(&server, "in/census.csv", "mrn,name\n1,DOE\n");
    put(&server, "in/good.hl7", &adt_a04("OK1", "P1"));
    host.start();
    assert!(
        wait_until(WAIT, || names_in(&errors) == ["bad.hl7"]),
        "{}",
        host.log()
    );
    host.wait_query("SELECT COUNT(*) FROM events WHERE source = 'lab'", 2, WAIT);
    let kind: String = host.query("SELECT kind FROM events WHERE name = 'census.csv'");
    assert_eq!(kind, "file");
    // ... delivered to the bot that subscribes to the source's files.
    host.wait_query(
        "SELECT COUNT(*) FROM kv WHERE bot = 'probe' AND key = 'file/lab/census.csv'",
        1,
        WAIT,
    );
    let size: String =
        host.query("SELECT value FROM kv WHERE bot = 'probe' AND key = 'file/lab/census.csv'");
    assert_eq!(size, "15");
    let kind: String = host.query("SELECT kind FROM events WHERE name = 'good.hl7'");
    assert_eq!(kind, "hl7");
    host.wait_log("moved to", WAIT);
    let log = host.log();
    assert!(
        log.contains("file=bad.hl7") && log.contains("not HL7: message 1: bad MSH delimiters"),
        "{log}"
    );
    assert!(wait_until(WAIT, || names_in(&server.remote("in")).is_empty()));
    wait_polls(&host, "lab2", 2);
    assert_eq!(names_in(&server.remote("in2")), ["bad.hl7"]);
    let log = host.log();
    let left: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("source=lab2") && l.contains("bad.hl7"))
        .collect();
    assert_eq!(left.len(), 1, "{log}");
    assert!(
        left[0].contains("left on the server until it changes"),
        "{log}"
    );
}
