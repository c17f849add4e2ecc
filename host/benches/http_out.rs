//! HTTP destination benchmark, against the MLLP destination on the same bot
//! output; prints a table, asserts nothing.
//!
//! `cargo bench -p interlink --bench http_out` after `scripts/setup`
//! (which builds the adt-router bot into `target/test-bots/`).
//!
//! The release binary takes ADT^A04s on an MLLP listener (commit ACKs) and
//! the adt-router bot forwards each to destination `out`: an HTTP
//! destination posting it to a server in this process that answers 201 at
//! once, or an MLLP destination to a sink in this process that answers AA
//! at once; each with 1 and with 4 lanes (`connections = 4`, `ordering_key
//! = "PID-3.1"`). Two measures per row:
//! - drain: `out` is paused (admin API) while `HTTP_OUT_BENCH_QUEUED`
//!   messages (default 4,000) are taken in and queued, then resumed: the
//!   destination's own rate, from the resume to the last arrival;
//! - live: 4 senders, one message in flight each, 500 messages each, with
//!   the destination running: the end-to-end latency from sending a
//!   message to its arrival at the server (p50, p99).

mod common;

use std::convert::Infallible;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{Arrivals, Proc, ack_server, end_to_end, load, pct, start_router_host};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use interlink_sdk::hl7::Message;
use interlink_tests::{free_port, http};
use tokio::net::TcpListener;

const TOKEN: &str = "bench-write-token-0123456789";

/// An HTTP/1.1 server that answers 201 to every request at once, noting
/// when the HL7 message in each body (its MSH-10) arrived.
async fn http_server(listener: TcpListener, arrivals: Arrivals) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let arrivals = arrivals.clone();
        let service = service_fn(move |req: Request<hyper::body::Incoming>| {
            let arrivals = arrivals.clone();
            async move {
                let body = req.into_body().collect().await.unwrap().to_bytes();
                let now = Instant::now();
                let msg = Message::parse(std::str::from_utf8(&body).unwrap()).unwrap();
                arrivals
                    .lock()
                    .unwrap()
                    .insert(msg.control_id().into_owned(), now);
                let created = Response::builder()
                    .status(201)
                    .body(Full::new(Bytes::new()));
                Ok::<_, Infallible>(created.unwrap())
            }
        });
        tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// The host: listener `in`, the admin API, adt-router forwarding to `out`
/// (the `destination` table's keys).
fn start(dir: &Path, port: u16, api: u16, destination: &str) -> Proc {
    std::fs::write(dir.join("token"), TOKEN).unwrap();
    start_router_host(
        dir,
        port,
        &format!(
            "[http]\nlisten = \"127.0.0.1:{api}\"\n\
             [[http.token]]\nname = \"ops\"\nrole = \"write\"\ntoken_file = \"token\"\n\
             [[destination]]\nname = \"out\"\n{destination}\n"
        ),
    )
}

/// Pauses or resumes `out` through the admin API.
fn set_paused(api: u16, paused: bool) {
    let action = if paused { "pause" } else { "resume" };
    let path = format!("/api/v1/destinations/out/{action}");
    let r = http(api, "POST", &path, Some(TOKEN), &[], b"");
    assert!(r.status < 300, "{action}: {} {}", r.status, r.text());
}

/// Pending messages in the outbox.
fn pending(dir: &Path) -> i64 {
    let db = rusqlite::Connection::open(dir.join("data/j.db")).unwrap();
    db.busy_timeout(Duration::from_secs(5)).unwrap();
    db.query_row(
        "SELECT COUNT(*) FROM outbox WHERE status = 'pending'",
        [],
        |r| r.get(0),
    )
    .unwrap()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let queued: usize = std::env::var("HTTP_OUT_BENCH_QUEUED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let arrivals: Arrivals = Default::default();
    let (http_port, mllp_port) = (free_port(), free_port());
    let listener = rt
        .block_on(TcpListener::bind(("127.0.0.1", http_port)))
        .unwrap();
    rt.spawn(http_server(listener, arrivals.clone()));
    let listener = rt
        .block_on(TcpListener::bind(("127.0.0.1", mllp_port)))
        .unwrap();
    rt.spawn(ack_server(listener, Some(arrivals.clone())));

    println!(
        "{:<6} {:>5} {:>7} {:>10} {:>7} {:>8} {:>8}",
        "", "lanes", "queued", "drain", "live", "e2e p50", "e2e p99"
    );
    println!(
        "{:<6} {:>5} {:>7} {:>10} {:>7} {:>8} {:>8}",
        "", "", "", "msg/s", "msgs", "ms", "ms"
    );
    for (run, (kind, lanes)) in [("http", 1), ("mllp", 1), ("http", 4), ("mllp", 4)]
        .into_iter()
        .enumerate()
    {
        let mut destination = match kind {
            "http" => format!("kind = \"http\"\nurl = \"http://127.0.0.1:{http_port}/hl7\""),
            _ => format!("kind = \"mllp\"\nhost = \"127.0.0.1\"\nport = {mllp_port}"),
        };
        if lanes > 1 {
            destination.push_str(&format!(
                "\nconnections = {lanes}\nordering_key = \"PID-3.1\""
            ));
        }
        let dir = tempfile::tempdir().unwrap();
        let (port, api) = (free_port(), free_port());
        let host = start(dir.path(), port, api, &destination);

        // Drain: queue while paused, then time the destination alone.
        set_paused(api, true);
        let queue = rt.block_on(load(port, 8, queued / 8, &format!("D{run}c")));
        while pending(dir.path()) < queue.sent_at.len() as i64 {
            std::thread::sleep(Duration::from_millis(20));
        }
        let resumed = Instant::now();
        set_paused(api, false);
        rt.block_on(end_to_end(&queue, &arrivals))
            .expect("every queued message arrives");
        let last = {
            let a = arrivals.lock().unwrap();
            queue.sent_at.keys().map(|k| a[k]).max().unwrap()
        };
        let drain = queue.sent_at.len() as f64 / last.duration_since(resumed).as_secs_f64();

        // Live: end-to-end latency with the destination running.
        let live = rt.block_on(load(port, 4, 500, &format!("L{run}c")));
        let e2e = rt
            .block_on(end_to_end(&live, &arrivals))
            .expect("every message arrives");
        println!(
            "{kind:<6} {lanes:>5} {:>7} {drain:>10.0} {:>7} {:>8.2} {:>8.2}",
            queue.sent_at.len(),
            live.sent_at.len(),
            pct(&e2e, 0.5),
            pct(&e2e, 0.99)
        );
        drop(host);
    }
}
