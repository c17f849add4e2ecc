//! The HTTP server against the real binary: authentication and JSON errors.
//! (Bots over HTTP, the admin API, metrics and the dashboard have their own
//! test files.)

use interlink_tests::*;

#[test]
fn health_needs_no_token_and_unknown_routes_are_json_404() {
    let port = free_port();
    let mut host = Host::new(&config(&http_config(port)));
    host.start();
    let r = http(port, "GET", "/health", None, &[], b"");
    assert_eq!((r.status, r.text().trim()), (200, "ok"));
    let r = http(port, "GET", "/no/such/route", Some(READ_TOKEN), &[], b"");
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"], "no such route");
    let r = http(port, "DELETE", "/health", None, &[], b"");
    assert_eq!(r.status, 405);
    assert!(r.json()["error"].is_string());
}
