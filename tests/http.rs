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

#[test]
fn tokens_are_checked_and_read_tokens_cannot_write() {
    let port = free_port();
    let mut host = Host::new(&config(&http_config(port)));
    host.start();
    let reload = |token: Option<&str>| http(port, "POST", "/api/v1/config/reload", token, &[], b"");
    let r = reload(None);
    assert_eq!(
        (r.status, r.header("www-authenticate")),
        (401, Some("Bearer"))
    );
    assert!(r.json()["error"].as_str().unwrap().contains("Bearer"));
    assert_eq!(reload(Some("not-a-token")).status, 401);
    let r = reload(Some(READ_TOKEN));
    assert_eq!(r.status, 403);
    assert!(r.json()["error"].as_str().unwrap().contains("viewer"));
    assert_eq!(reload(Some(WRITE_TOKEN)).status, 200);
    let r = http(
        port,
        "POST",
        "/api/v1/config/reload",
        None,
        &[("Authorization", "Basic b3BzOm9wcw==")],
        b"",
    );
    assert_eq!(r.status, 401);
}

#[test]
fn serves_https_when_tls_is_configured() {
    let port = free_port();
    let pki = tempfile::tempdir().unwrap();
    test_pki(pki.path());
    let tls = format!(
        "tls = {{ cert = \"{}\", key = \"{}\" }}\n",
        pki.path().join("server.pem").display(),
        pki.path().join("server.key").display()
    );
    let cfg = http_config(port).replace("[http]\n", &format!("[http]\n{tls}"));
    let mut host = Host::new(&config(&cfg));
    host.start();
    // Python's HTTPS client, verifying the server against the test CA.
    let fetch = |path: &str, token: &str| {
        let script = "import ssl,sys,urllib.request as u\n\
            ctx=ssl.create_default_context(cafile=sys.argv[1])\n\
            req=u.Request(sys.argv[2],headers={'Authorization':'Bearer '+sys.argv[3]},method='POST')\n\
            print(u.urlopen(req,context=ctx).read().decode())";
        std::process::Command::new("python3")
            .args(["-c", script])
            .arg(pki.path().join("ca.pem"))
            .arg(format!("https://localhost:{port}{path}"))
            .arg(token)
            .output()
            .unwrap()
    };
    let out = fetch("/api/v1/config/reload", WRITE_TOKEN);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("restart_needed"));
    // Plain HTTP to the TLS port gets no HTTP answer.
    let plain = std::panic::catch_unwind(|| http(port, "GET", "/health", None, &[], b""));
    assert!(plain.is_err() || plain.unwrap().status != 200);
}
