//! Bots over HTTP against the real binary, with the probe bot (its HTTP
//! routes are listed in `tests/bots/probe/src/lib.rs`): queries read
//! committed state and cannot write, commands are journaled and answered
//! after their effects are committed, `Idempotency-Key` makes a repeat
//! harmless, roles decide who may call, and bad requests get JSON errors.

use std::time::Duration;

use interlink_tests::*;

const WAIT: Duration = Duration::from_secs(20);

/// A started host with the probe, an `[http]` server on a free port and
/// `extra` appended to the config; returns the host and the port.
fn probe_host(http_extra: &str, extra: &str) -> (Host, u16) {
    let port = free_port();
    let http = http_config(port).replace("[http]\n", &format!("[http]\n{http_extra}\n"));
    let mut host = Host::new(&config(&format!("{http}\n{extra}")));
    host.install_bot("probe_v1", "probe.wasm");
    host.start();
    (host, port)
}

fn get(port: u16, path: &str, token: Option<&str>) -> HttpResponse {
    http(port, "GET", path, token, &[], b"")
}

fn post(port: u16, path: &str, token: Option<&str>, body: &str) -> HttpResponse {
    http(port, "POST", path, token, &[], body.as_bytes())
}

fn events(host: &Host) -> i64 {
    host.query("SELECT COUNT(*) FROM events WHERE kind = 'http'")
}

#[test]
fn queries_read_committed_state_and_commands_commit_before_answering() {
    let (host, port) = probe_host("", "");
    let r = get(port, "/bots/probe/p/kv/a", Some(READ_TOKEN));
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(r.json()["error"], "no such key");

    let r = post(port, "/bots/probe/p/kv/a", Some(WRITE_TOKEN), "hello");
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["seq"], 1);
    assert_eq!(r.header("x-probe"), Some("v1"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    // Answered after the commit: the value, the run and the message are
    // all there already.
    let r = get(port, "/bots/probe/p/kv/a", Some(READ_TOKEN));
    assert_eq!((r.status, r.text().as_str()), (200, "hello"));
    assert_eq!(
        host.query::<String>(
            "SELECT kind || ' ' || source || ' ' || message_type || ' ' || name FROM events"
        ),
        "http probe POST /p/kv/a"
    );
    assert_eq!(
        host.query::<i64>("SELECT COUNT(*) FROM runs WHERE status = 'done'"),
        1
    );
    assert_eq!(host.query::<i64>("SELECT COUNT(*) FROM outbox"), 1);
    let out = host.wait_outputs(1, WAIT);
    assert!(out[0].1.contains("|HTTP1|") && out[0].1.contains("ZPR|v1|a"));
    let r = http(
        port,
        "HEAD",
        "/bots/probe/p/kv/a",
        Some(READ_TOKEN),
        &[],
        b"",
    );
    assert_eq!((r.status, r.body.len()), (200, 0));

    // A query may read but not write, and may not send.
    let r = get(port, "/bots/probe/p/write", Some(READ_TOKEN));
    assert_eq!(r.status, 500);
    let error = r.json()["error"].as_str().unwrap().to_string();
    assert_eq!(
        error,
        "trapped: kv-set is not allowed while answering a query (GET/HEAD)"
    );
    assert_eq!(
        get(port, "/bots/probe/p/kv/written", Some(READ_TOKEN)).status,
        404
    );
    let r = get(port, "/bots/probe/p/send", Some(READ_TOKEN));
    assert_eq!(r.status, 500);
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("a query (GET/HEAD) cannot send messages"),
        "{}",
        r.text()
    );
    // Queries are not journaled.
    assert_eq!(events(&host), 1);
    assert_eq!(host.query::<i64>("SELECT COUNT(*) FROM outbox"), 1);

    // The bot gets the path below its mount point with the query string,
    // and never the caller's credentials.
    let r = http(
        port,
        "GET",
        "/bots/probe/p/echo?date=2026-11-24",
        Some(READ_TOKEN),
        &[
            ("Cookie", "interlink_session=x"),
            ("Proxy-Authorization", "Basic eDp4"),
            ("X-Trace", "7"),
        ],
        b"",
    );
    // A cookie beside a bearer token: the token decides.
    assert_eq!(r.status, 200, "{}", r.text());
    // Bots answer on the dashboard's origin: no cookies, no active content.
    assert_eq!(r.header("x-probe"), Some("v1"));
    assert_eq!(r.header("set-cookie"), None);
    assert_eq!(r.header("content-security-policy"), Some("sandbox"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    let echo = r.text();
    assert!(
        echo.starts_with("GET /p/echo?date=2026-11-24 headers="),
        "{echo}"
    );
    assert!(echo.contains("x-trace"), "{echo}");
    assert!(
        !echo.contains("authorization") && !echo.contains("cookie"),
        "{echo}"
    );
    let journaled: String = host.query("SELECT body FROM events");
    assert!(!journaled.contains(WRITE_TOKEN), "{journaled}");
    // The audit line names the subscription, not the path (a patient id,
    // perhaps), unless `[log] phi = true`.
    host.wait_log("audit: ops http-command probe POST /p", WAIT);
    assert_eq!(host.log_lines(&|l| l.contains("/p/kv/a")), 0);
}

#[test]
fn a_repeated_idempotency_key_gets_the_first_answer_and_is_processed_once() {
    let (mut host, port) = probe_host("", "");
    let send = |key: &str| {
        http(
            port,
            "POST",
            "/bots/probe/p/kv/k",
            Some(WRITE_TOKEN),
            &[("Idempotency-Key", key)],
            b"v",
        )
    };
    let first = send("order-1");
    assert_eq!((first.status, first.json()["seq"].as_i64()), (201, Some(1)));
    let again = send("order-1");
    assert_eq!(
        (again.status, again.body.clone()),
        (201, first.body.clone())
    );
    assert_eq!(again.header("x-probe"), Some("v1"));

    // Eight copies at once: one event, one message, one answer for all.
    let copies: Vec<_> = (0..8)
        .map(|_| std::thread::spawn(move || send_key(port, "order-2")))
        .collect();
    let answers: Vec<(u16, Vec<u8>)> = copies.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
    assert_eq!(answers[0].0, 201);
    assert_eq!(events(&host), 2);
    assert_eq!(host.wait_outputs(2, WAIT).len(), 2);

    // After a restart the key is still known.
    host.kill();
    host.start();
    let after = send("order-2");
    assert_eq!((after.status, after.body), answers[0].clone());
    let other = send("order-3");
    assert_eq!(other.json()["seq"], 3);
    assert_eq!(events(&host), 3);
    host.wait_outputs(3, WAIT);
    assert_eq!(host.query::<i64>("SELECT COUNT(*) FROM outbox"), 3);

    // The same key with another body is refused, and nothing is journaled.
    let reused = http(
        port,
        "POST",
        "/bots/probe/p/kv/k",
        Some(WRITE_TOKEN),
        &[("Idempotency-Key", "order-3")],
        b"another value",
    );
    assert_eq!(reused.status, 422);
    assert!(
        reused.json()["error"]
            .as_str()
            .unwrap()
            .contains("different request"),
        "{}",
        reused.text()
    );
    assert_eq!(events(&host), 3);

    let r = http(
        port,
        "POST",
        "/bots/probe/p/kv/k",
        Some(WRITE_TOKEN),
        &[("Idempotency-Key", &"x".repeat(300))],
        b"v",
    );
    assert_eq!(r.status, 400);
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("Idempotency-Key")
    );
}

/// One POST with `Idempotency-Key: key`: its status and body.
fn send_key(port: u16, key: &str) -> (u16, Vec<u8>) {
    let r = http(
        port,
        "POST",
        "/bots/probe/p/kv/k",
        Some(WRITE_TOKEN),
        &[("Idempotency-Key", key)],
        b"v",
    );
    (r.status, r.body)
}

#[test]
fn the_bots_http_role_decides_who_may_call() {
    // Default: any token for queries, `write` for commands.
    let (host, port) = probe_host("", "");
    assert_eq!(get(port, "/bots/probe/p/kv/a", None).status, 401);
    assert_eq!(
        get(port, "/bots/probe/p/kv/a", Some("wrong-token-0123456789")).status,
        401
    );
    let r = post(port, "/bots/probe/p/kv/a", Some(READ_TOKEN), "x");
    assert_eq!(r.status, 403);
    assert!(r.json()["error"].as_str().unwrap().contains("write"));
    assert_eq!(post(port, "/bots/probe/p/kv/a", None, "x").status, 401);
    assert_eq!(events(&host), 0);
    drop(host);

    // Public: no token needed, and the command is logged without a name.
    let (host, port) = probe_host("", "[bots.probe]\nhttp_role = \"public\"\n");
    assert_eq!(post(port, "/bots/probe/p/kv/a", None, "x").status, 201);
    assert_eq!(get(port, "/bots/probe/p/kv/a", None).text(), "x");
    host.wait_log("HTTP command from a public caller: probe POST /p", WAIT);
    // Credentials are not even looked at: a browser's session cookie
    // without the CSRF header (here a stale one) is no reason to refuse.
    let r = http(
        port,
        "POST",
        "/bots/probe/p/kv/b",
        None,
        &[("Cookie", "interlink_session=stale")],
        b"y",
    );
    assert_eq!(r.status, 201, "{}", r.text());
    // Errors carry the same headers as answers.
    let r = get(port, "/bots/probe/q", None);
    assert_eq!(r.status, 404);
    assert_eq!(r.header("content-security-policy"), Some("sandbox"));
    drop(host);

    // Write: even queries need a write token.
    let (_host, port) = probe_host("", "[bots.probe]\nhttp_role = \"write\"\n");
    assert_eq!(
        get(port, "/bots/probe/p/kv/a", Some(READ_TOKEN)).status,
        403
    );
    assert_eq!(
        get(port, "/bots/probe/p/kv/a", Some(WRITE_TOKEN)).status,
        404
    );
}

#[test]
fn bad_requests_get_json_errors() {
    let (host, port) = probe_host("max_body_kb = 1", "");
    let status_and_error = |r: HttpResponse| {
        let error = r.json()["error"].as_str().unwrap_or_default().to_string();
        (r.status, error)
    };
    let (status, error) = status_and_error(get(port, "/bots/nobody/p", Some(READ_TOKEN)));
    assert_eq!((status, error.as_str()), (404, "no bot named \"nobody\""));
    let (status, error) = status_and_error(get(port, "/bots/probe/q/1", Some(READ_TOKEN)));
    assert_eq!(status, 404);
    assert!(error.contains("no HTTP endpoint"), "{error}");
    // `/px` is not below the mount `/p`.
    assert_eq!(get(port, "/bots/probe/px", Some(READ_TOKEN)).status, 404);
    for climb in [
        "/bots/probe/p/../../../etc/passwd",
        "/bots/probe/p/%2e%2e/x",
        "/bots/probe/p/%2E%2e%2fx",
        "/bots/probe/p/.",
        "/bots/probe/p/a%5cb",
        "/bots/probe/p/a%00",
    ] {
        let (status, error) = status_and_error(get(port, climb, Some(READ_TOKEN)));
        assert_eq!(status, 400, "{climb}");
        assert!(error.contains("'..'"), "{climb}: {error}");
    }
    let big = vec![b'x'; 4096];
    let r = http(
        port,
        "POST",
        "/bots/probe/p/kv/a",
        Some(WRITE_TOKEN),
        &[],
        &big,
    );
    let (status, error) = status_and_error(r);
    assert_eq!(status, 413);
    assert!(error.contains("max_body_kb"), "{error}");
    assert_eq!(events(&host), 0);
    drop(host);

    // A disabled bot has no endpoints.
    let (_host, port) = probe_host("", "[bots.probe]\nenabled = false\n");
    assert_eq!(
        get(port, "/bots/probe/p/kv/a", Some(READ_TOKEN)).status,
        404
    );
}

#[test]
fn failed_and_slow_commands() {
    let (host, port) = probe_host("", "[bots.probe.settings]\nslow_ms = \"450\"\n");
    let r = post(port, "/bots/probe/p/fail", Some(WRITE_TOKEN), "");
    assert_eq!(r.status, 500);
    let body = r.json();
    assert_eq!(body["error"], "failed: probe refuses this command");
    let failed = body["event_id"].as_i64().unwrap();
    assert_eq!(
        host.query::<String>(&format!(
            "SELECT status FROM runs WHERE event_id = {failed}"
        )),
        "failed"
    );

    // Five slow commands at once take one worker 2.25 s, longer than the
    // 500 ms limit and the margin anyone waits: the last ones are
    // accepted with their event id, and done later.
    let slow: Vec<_> = (0..5)
        .map(|_| {
            std::thread::spawn(move || post(port, "/bots/probe/p/slow", Some(WRITE_TOKEN), ""))
        })
        .collect();
    let answers: Vec<HttpResponse> = slow.into_iter().map(|t| t.join().unwrap()).collect();
    let accepted: Vec<i64> = answers
        .iter()
        .filter(|r| r.status == 202)
        .map(|r| {
            assert_eq!(r.json()["status"], "accepted");
            r.json()["event_id"].as_i64().unwrap()
        })
        .collect();
    assert!(!accepted.is_empty(), "{answers:?}");
    assert!(
        answers
            .iter()
            .all(|r| r.status == 202 || r.text() == "slow done")
    );
    for id in accepted {
        host.wait_query(
            &format!("SELECT COUNT(*) FROM runs WHERE event_id = {id} AND status = 'done'"),
            1,
            WAIT,
        );
    }
}
