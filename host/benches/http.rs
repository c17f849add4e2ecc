//! HTTP load benchmark for bots' endpoints; prints a table, asserts
//! nothing.
//!
//! `cargo bench -p interlink --bench http` after `scripts/setup` (which
//! builds the probe test bot into `target/test-bots/`).
//!
//! The release binary runs the probe bot; 16 clients (this process, tokio),
//! each on a kept-alive HTTP/1.1 connection with one request in flight,
//! send for ~5 s each, timing every response, one scenario after the other:
//! - `GET /health`: the server alone, the baseline;
//! - query: `GET /bots/probe/p/kv/a`, the bot run on a fresh instance
//!   reading committed KV (not journaled);
//! - command: `POST /bots/probe/p/kv/b`, journaled (fsync'd), run by the
//!   bot's worker, which sets KV, takes a sequence number and queues a
//!   message to a folder destination; answered after the commit.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Proc, pct, start_host};
use interlink_tests::{free_port, root};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CLIENTS: usize = 16;
const RUN_FOR: Duration = Duration::from_secs(5);
const TOKEN: &str = "bench-write-token-0123456789";

/// One request on a kept-alive connection: sends it, reads the response
/// (by `Content-Length`) and returns its status.
async fn exchange(stream: &mut TcpStream, request: &[u8], buf: &mut Vec<u8>) -> u16 {
    stream.write_all(request).await.unwrap();
    buf.clear();
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let status = head[9..12].parse().unwrap();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            while buf.len() < end + 4 + length {
                read_more(stream, buf).await;
            }
            return status;
        }
        read_more(stream, buf).await;
    }
}

async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) {
    let mut chunk = [0u8; 8192];
    let n = stream.read(&mut chunk).await.unwrap();
    assert!(n > 0, "the server closed the connection");
    buf.extend_from_slice(&chunk[..n]);
}

/// `CLIENTS` clients sending `request` for [`RUN_FOR`]; every response
/// must have status `want`. Returns the requests per second and the
/// sorted latencies.
async fn load(port: u16, request: String, want: u16) -> (f64, Vec<Duration>) {
    let started = Instant::now();
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let request = request.clone();
            tokio::spawn(async move {
                let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
                stream.set_nodelay(true).unwrap();
                let (mut latencies, mut buf) = (Vec::new(), Vec::new());
                while started.elapsed() < RUN_FOR {
                    let t = Instant::now();
                    let status = exchange(&mut stream, request.as_bytes(), &mut buf).await;
                    assert_eq!(status, want, "{}", String::from_utf8_lossy(&buf));
                    latencies.push(t.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let elapsed = started.elapsed();
    all.sort();
    (all.len() as f64 / elapsed.as_secs_f64(), all)
}

fn request(method: &str, path: &str, body: &str) -> String {
    format!(
        "{method} {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn start_interlink(dir: &Path, port: u16) -> Proc {
    std::fs::create_dir_all(dir.join("plugins")).unwrap();
    std::fs::copy(
        root().join("target/test-bots/probe_v1.wasm"),
        dir.join("plugins/probe.wasm"),
    )
    .expect("target/test-bots/probe_v1.wasm: run scripts/setup first");
    std::fs::write(dir.join("token"), TOKEN).unwrap();
    start_host(
        dir,
        &format!(
            "[journal]\npath = \"data/j.db\"\n[plugins]\ndir = \"plugins\"\n\
             [[destination]]\nname = \"out\"\nkind = \"folder\"\ndir = \"out\"\n\
             [http]\nlisten = \"127.0.0.1:{port}\"\n\
             [[http.token]]\nname = \"bench\"\nrole = \"write\"\ntoken_file = \"token\"\n"
        ),
    )
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _host = start_interlink(dir.path(), port);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut seed = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let put = request("POST", "/bots/probe/p/kv/a", "hello");
        assert_eq!(
            exchange(&mut seed, put.as_bytes(), &mut Vec::new()).await,
            201
        );
        println!("{CLIENTS} clients, kept-alive connections, {RUN_FOR:?} each");
        println!(
            "{:<34} {:>9} {:>10} {:>8} {:>8}",
            "scenario", "requests", "req/s", "p50 ms", "p99 ms"
        );
        let scenarios = [
            ("GET /health (baseline)", request("GET", "/health", ""), 200),
            (
                "query GET /bots/probe/p/kv/a",
                request("GET", "/bots/probe/p/kv/a", ""),
                200,
            ),
            (
                "command POST /bots/probe/p/kv/b",
                request("POST", "/bots/probe/p/kv/b", "value"),
                201,
            ),
        ];
        for (name, req, want) in scenarios {
            let (rate, lat) = load(port, req, want).await;
            println!(
                "{name:<34} {:>9} {rate:>10.0} {:>8.2} {:>8.2}",
                lat.len(),
                pct(&lat, 0.5),
                pct(&lat, 0.99)
            );
        }
    });
}
