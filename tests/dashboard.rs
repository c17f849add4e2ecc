//! The web dashboard in a real headless Chromium against the real binary:
//! signing in, finding a message by MSH-10 and reading its fields, resending
//! a dead letter to a real MLLP peer (python-hl7), and what a `read` user
//! and a wrong token get. Screenshots of the overview and a message page
//! are saved under `target/screenshots/`.

use std::time::Duration;

use interlink_tests::browser::{Browser, Driver};
use interlink_tests::*;

const T: Duration = Duration::from_secs(20);

/// A host with the probe bot, drop folder `inbox` and MLLP destination
/// `out` to `peer_port`; the dashboard on the returned port.
fn host(peer_port: u16) -> (Host, u16) {
    let port = free_port();
    let cfg = base_config(&format!(
        r#"
[[folder]]
name = "inbox"
dir = "inbox"
pattern = "*.hl7"
after = "delete"
settle_ms = 50
poll_ms = 200

[[destination]]
name = "out"
kind = "mllp"
host = "127.0.0.1"
port = {peer_port}
ack_timeout_s = 1
connect_timeout_s = 1
retry = {{ initial_backoff_ms = 100, max_backoff_s = 1 }}
{}"#,
        http_config(port)
    ));
    let mut host = Host::new(&cfg);
    host.install_bot("probe_v1", "probe.wasm");
    host.start();
    host.wait_log("loaded from", T);
    (host, port)
}

/// Two messages whose copies a peer answering AR dead-letters.
fn two_dead_letters(host: &Host, peer_port: u16) {
    let _peer = PeerServer::start(Peer::Python, peer_port, "ar", &host.path("peer-ar.log"));
    host.drop_file("a.hl7", &adt_a04("DASH-1", "MRN-1"));
    host.drop_file("b.hl7", &adt_a04("DASH-2", "MRN-2"));
    host.wait_query("SELECT COUNT(*) FROM outbox WHERE status = 'dead'", 2, T);
}

fn sign_in(b: &Browser, token: &str) {
    b.goto("/");
    assert_eq!(b.path(), "/signin");
    b.fill("#token", token);
    b.click("form.signin button");
    b.wait_path("/");
    assert_eq!(b.text("h1"), "Overview");
}

#[test]
fn write_user_finds_a_message_and_resends_a_dead_letter() {
    let peer_port = free_port();
    let (host, port) = host(peer_port);
    two_dead_letters(&host, peer_port);
    let driver = Driver::start();
    let b = driver.browser(port);

    sign_in(&b, WRITE_TOKEN);
    assert!(b.text("header").contains("ops (write)"));
    assert!(b.text("#live").contains("probe"), "{}", b.text("#live"));
    b.screenshot("dashboard-overview");

    // Find DASH-2 by its control id with the search form, and open it.
    b.click("nav a[href='/messages']");
    b.fill("#control_id", "DASH-2");
    b.click("form.search button");
    b.wait_path("/messages?control_id=DASH-2&patient=&type=&source=&status=&since=&until=");
    assert_eq!(b.count("#results tbody tr"), 1);
    let id: i64 = host.query("SELECT id FROM events WHERE control_id = 'DASH-2'");
    b.click(&format!("#results a[href='/messages/{id}']"));
    b.wait_path(&format!("/messages/{id}"));
    assert_eq!(b.title(), format!("Event {id} · Interlink"));
    let fields = b.text("#fields");
    assert!(
        fields.contains("MSH-10 Message Control ID DASH-2"),
        "{fields}"
    );
    assert!(fields.contains("PID-5 Patient Name DOE^JANE"), "{fields}");
    assert!(fields.contains("PID-5.2 JANE"), "{fields}");
    assert!(
        b.text("#outbound").contains("out dead"),
        "{}",
        b.text("#outbound")
    );
    b.screenshot("dashboard-message");

    // Resend DASH-1's dead letter to a peer that now accepts it.
    let peer = PeerServer::start(Peer::Python, peer_port, "aa", &host.path("peer-aa.log"));
    let dead: i64 = host.query(
        "SELECT o.id FROM outbox o JOIN events e ON e.id = o.event_id WHERE e.control_id = 'DASH-1'",
    );
    b.click("nav a[href='/outbox?state=dead']");
    b.wait_path("/outbox?state=dead");
    assert_eq!(b.count("#outbox a.resend"), 2);
    b.click(&format!("#outbox a[href='/outbox/{dead}/resend']"));
    b.wait_path(&format!("/outbox/{dead}/resend"));
    assert!(b.text("main p").contains(&format!("outbox message {dead}")));
    b.click("#confirm");
    b.wait_path("/outbox?state=dead");
    assert!(wait_until(T, || peer.received().len() == 1));
    assert_eq!(peer.received()[0].0, "DASH-1");
    host.wait_query("SELECT COUNT(*) FROM outbox WHERE status = 'sent'", 1, T);
    b.goto("/outbox?state=dead");
    assert_eq!(b.count("#outbox a.resend"), 1);
    let first: i64 = host.query("SELECT id FROM events WHERE control_id = 'DASH-1'");
    b.goto(&format!("/messages/{first}"));
    assert!(
        b.text("#outbound").contains("out sent"),
        "{}",
        b.text("#outbound")
    );
    assert!(
        host.log()
            .contains(&format!("audit: ops resend outbox {dead}"))
    );

    // Pause and resume the destination from the overview.
    b.goto("/");
    b.click("#destinations a.pause");
    b.wait_path("/destinations/out/pause");
    b.click("#confirm");
    b.wait_path("/");
    assert!(
        b.text("#destinations").contains("paused"),
        "{}",
        b.text("#destinations")
    );
    b.click("#destinations a.resume");
    b.click("#confirm");
    b.wait_path("/");
    assert_eq!(b.count("#destinations a.pause"), 1);
    assert!(host.log().contains("audit: ops resume destination out"));

    // The overview refreshes itself (htmx, every 5 s): a new delivery shows
    // up without reloading the page.
    let sent_cell = "#destinations tbody tr td:nth-child(6)";
    assert_eq!(b.text(sent_cell), "1");
    host.drop_file("c.hl7", &adt_a04("DASH-3", "MRN-3"));
    assert!(wait_until(T, || peer.received().len() == 2));
    assert!(b.wait_text(sent_cell, "2"), "the overview did not refresh");
    assert_eq!(b.path(), "/");
}

#[test]
fn read_user_sees_no_resend_and_a_wrong_token_is_refused() {
    let peer_port = free_port();
    let (host, port) = host(peer_port);
    two_dead_letters(&host, peer_port);
    let driver = Driver::start();

    let b = driver.browser(port);
    b.goto("/messages");
    assert_eq!(b.path(), "/signin");
    b.fill("#token", "not-the-token-0123456789");
    b.click("form.signin button");
    assert_eq!(b.text("[role=alert]"), "That token is not valid.");
    assert_eq!(b.path(), "/signin");
    assert!(
        host.log()
            .contains("dashboard sign-in refused: wrong token")
    );
    b.goto("/");
    assert_eq!(b.path(), "/signin");

    sign_in(&b, READ_TOKEN);
    assert!(b.text("header").contains("viewer (read)"));
    b.click("nav a[href='/outbox?state=dead']");
    b.wait_path("/outbox?state=dead");
    assert_eq!(b.text("h1"), "Dead letters");
    assert!(b.text("#outbox").contains("peer says AR"));
    assert_eq!(b.count("#outbox a.resend"), 0);
    b.goto("/");
    assert_eq!(b.count("#destinations a.pause"), 0);

    // Search results come a page at a time, newest first.
    let newest: i64 = host.query("SELECT id FROM events WHERE control_id = 'DASH-2'");
    b.goto("/messages?limit=1");
    assert!(b.text("#results tbody").contains("DASH-2"));
    b.click("a[rel=next]");
    b.wait_path(&format!("/messages?before={newest}&limit=1"));
    assert!(b.text("#results tbody").contains("DASH-1"));
    assert_eq!(b.count("#results tbody tr"), 1);
    // The API refuses the action anyway.
    let dead: i64 = host.query("SELECT MIN(id) FROM outbox WHERE status = 'dead'");
    b.goto(&format!("/outbox/{dead}/resend"));
    assert!(
        b.text("body").contains("has the read role"),
        "{}",
        b.text("body")
    );
}

/// The session's CSRF token, from a page's sign-out form.
fn csrf_of(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a CSRF field") + 19;
    page[at..at + 64].to_string()
}

const FORM: (&str, &str) = ("Content-Type", "application/x-www-form-urlencoded");

#[test]
fn session_cookie_csrf_checks_and_assets_over_plain_http() {
    let (_host, port) = host(free_port());

    // Assets need no session and are cached; pages send you to sign in.
    let r = http(port, "GET", "/assets/htmx.min.js", None, &[], b"");
    assert_eq!(r.status, 200);
    assert!(r.text().contains("htmx"));
    assert_eq!(r.header("cache-control"), Some("public, max-age=604800"));
    assert_eq!(
        http(port, "GET", "/assets/../Cargo.toml", None, &[], b"").status,
        404
    );
    let r = http(port, "GET", "/messages", None, &[], b"");
    assert_eq!((r.status, r.header("location")), (303, Some("/signin")));
    let htmx = [("HX-Request", "true")];
    let r = http(port, "GET", "/overview/live", None, &htmx, b"");
    assert_eq!((r.status, r.header("hx-redirect")), (401, Some("/signin")));

    // A bad sign-in form is a JSON 400; a good one sets the session cookie.
    let r = http(port, "POST", "/signin", None, &[FORM], b"tok=x");
    assert_eq!(r.status, 400);
    assert!(r.json()["error"].as_str().unwrap().contains("token"));
    let body = format!("token={WRITE_TOKEN}");
    let r = http(port, "POST", "/signin", None, &[FORM], body.as_bytes());
    assert_eq!((r.status, r.header("location")), (303, Some("/")));
    let set = r.header("set-cookie").unwrap();
    assert!(
        set.ends_with("; HttpOnly; SameSite=Strict; Path=/"),
        "{set}"
    );
    let cookie = set.split(';').next().unwrap().to_string();
    let with_cookie = [("Cookie", cookie.as_str()), FORM];
    let page = http(port, "GET", "/", None, &with_cookie, b"");
    assert_eq!(page.status, 200);
    let csrf = csrf_of(&page.text());

    // State changes need the session's CSRF token in the form.
    let r = http(port, "POST", "/signout", None, &with_cookie, b"csrf=wrong");
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["error"], "missing or wrong CSRF token");
    let r = http(port, "POST", "/outbox/1/resend", None, &with_cookie, b"");
    assert_eq!(r.status, 403);
    let r = http(port, "GET", "/messages/abc", None, &with_cookie, b"");
    assert_eq!(r.status, 400);
    assert!(r.json()["error"].is_string());
    let r = http(port, "GET", "/messages/999", None, &with_cookie, b"");
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (404, Some("no event 999"))
    );

    // Signing out ends the session.
    let body = format!("csrf={csrf}");
    let r = http(
        port,
        "POST",
        "/signout",
        None,
        &with_cookie,
        body.as_bytes(),
    );
    assert_eq!((r.status, r.header("location")), (303, Some("/signin")));
    assert!(r.header("set-cookie").unwrap().contains("Max-Age=0"));
    let r = http(port, "GET", "/", None, &with_cookie, b"");
    assert_eq!((r.status, r.header("location")), (303, Some("/signin")));
}

#[test]
fn write_user_replays_a_failed_run_once_the_bot_is_fixed() {
    let peer_port = free_port();
    let (host, port) = host(peer_port);
    let peer = PeerServer::start(Peer::Python, peer_port, "aa", &host.path("peer.log"));
    // probe 1.0.0 panics on V1PANIC messages; 2.0.0 forwards them.
    host.drop_file("p.hl7", &adt_a04("V1PANIC-1", "MRN-9"));
    host.wait_query("SELECT COUNT(*) FROM runs WHERE status = 'failed'", 1, T);
    let id: i64 = host.query("SELECT id FROM events WHERE control_id = 'V1PANIC-1'");
    let driver = Driver::start();
    let b = driver.browser(port);
    sign_in(&b, WRITE_TOKEN);

    b.click("nav a[href='/failed']");
    b.wait_path("/failed");
    assert!(
        b.text("#failed").contains("V1PANIC-1 probe"),
        "{}",
        b.text("#failed")
    );
    b.goto(&format!("/messages/{id}"));
    assert_eq!(b.count("#run-probe a.replay"), 1);
    b.goto("/failed");
    b.click(&format!(
        "#failed a[href='/messages/{id}/replay?bot=probe']"
    ));
    assert_eq!(
        b.text("main p"),
        format!("Run the work of bot probe on event {id} again?")
    );

    host.install_bot("probe_v2", "probe.wasm");
    host.wait_log("upgraded 1.0.0 -> 2.0.0", T);
    b.click("#confirm");
    b.wait_path(&format!("/messages/{id}"));
    assert!(wait_until(T, || peer.received().len() == 1));
    assert_eq!(peer.received()[0].0, "V1PANIC-1");
    host.wait_query("SELECT COUNT(*) FROM runs WHERE status = 'done'", 1, T);
    b.goto(&format!("/messages/{id}"));
    assert!(
        b.text("#run-probe h3").ends_with("done"),
        "{}",
        b.text("#run-probe")
    );
    // A done run is not offered again: it would send its messages twice.
    assert_eq!(b.count("#run-probe a.replay"), 0);
    assert!(
        host.log()
            .contains(&format!("audit: ops replay event {id} bot probe"))
    );
    b.goto("/failed");
    assert_eq!(b.text("#failed tbody"), "No failed runs.");
}
