//! Test harness for the end-to-end tests: runs the real `interlink` binary
//! in a throwaway directory with real `.wasm` bots, and reads what users
//! would look at (files that arrive, the journal, the log).
//!
//! The binary and the bots are built by `scripts/test` before the tests
//! run: `target/debug/interlink` (or `$INTERLINK_BIN`) and
//! `target/test-bots/*.wasm`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

pub mod browser;
pub mod crash;

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// The `interlink` binary under test.
pub fn interlink_bin() -> PathBuf {
    let bin = std::env::var_os("INTERLINK_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/debug/interlink"));
    assert!(
        bin.exists(),
        "{} is missing: run scripts/test, which builds it",
        bin.display()
    );
    bin
}

/// A bot built for the tests, e.g. `adt_router`, `probe_v1`, `probe_v2`.
pub fn bot_wasm(name: &str) -> PathBuf {
    let p = root().join("target/test-bots").join(format!("{name}.wasm"));
    assert!(
        p.exists(),
        "{} is missing: run scripts/test, which builds the bots",
        p.display()
    );
    p
}

/// Polls `f` every 20 ms until it is true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// An ADT^A04 with the given control id and patient id.
pub fn adt_a04(control_id: &str, mrn: &str) -> String {
    format!(
        "MSH|^~\\&|REG|CLINIC|INTERLINK|BF|20260101120000||ADT^A04^ADT_A01|{control_id}|P|2.5.1\r\
         EVN|A04|20260101120000\r\
         PID|1||{mrn}^^^CLINIC^MR||DOE^JANE||19800101|F\r"
    )
}

/// The journal and plugin part of a test config, with short limits so
/// failures show quickly; `extra` is appended. The journal is the run's
/// [`journal_backend`] (see [`with_journal_backend`]), also in a config a
/// test writes over the host's own (a reload).
pub fn base_config(extra: &str) -> String {
    with_journal_backend(&format!(
        r#"
[journal]
path = "data/interlink.db"

[plugins]
dir = "plugins"
timeout_ms = 500
memory_mb = 32
max_attempts = 3
retry_backoff_ms = 100
{extra}
"#
    ))
}

/// A config for tests: [`base_config`] plus drop folder `inbox` (moved to
/// `done`) and folder destination `out`. `extra` is appended.
pub fn config(extra: &str) -> String {
    base_config(&format!(
        r#"
[[folder]]
name = "inbox"
dir = "inbox"
pattern = "*.hl7"
after = "move:done"
settle_ms = 50
poll_ms = 200

[[destination]]
name = "out"
kind = "folder"
dir = "out"
{extra}"#
    ))
}

/// Drop folder `inbox` (files deleted once taken, polled every 100 ms), to
/// put in a config's `format!` as `{INBOX}`.
pub const INBOX: &str = r#"[[folder]]
name = "inbox"
dir = "inbox"
pattern = "*.hl7"
after = "delete"
settle_ms = 20
poll_ms = 100
"#;

/// A fixture of the example bot `plugin`: `plugins/<plugin>/fixtures/<name>`.
pub fn plugin_fixture(plugin: &str, name: &str) -> PathBuf {
    root()
        .join("plugins")
        .join(plugin)
        .join("fixtures")
        .join(name)
}

/// What `interlink test --json` made of a bot's inputs.
pub struct BotTest {
    /// The exit code: 0 all ok, 1 some event failed, 2 no run at all.
    pub code: Option<i32>,
    pub outcomes: Vec<serde_json::Value>,
    pub stderr: String,
}

/// `interlink test --json` of the test bot `bot` (see [`bot_wasm`]) on
/// `inputs`, with `config` (TOML text) and, when given, `--now now`, run
/// in a directory of its own.
pub fn bot_test(bot: &str, config: &str, now: Option<&str>, inputs: &[PathBuf]) -> BotTest {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("interlink.toml"), config).unwrap();
    let out = Command::new(interlink_bin())
        .arg("test")
        .arg(bot_wasm(bot))
        .args(["--json", "--config", "interlink.toml"])
        .args(now.iter().flat_map(|t| ["--now", *t]))
        .args(inputs)
        .current_dir(dir.path())
        .output()
        .expect("run interlink test");
    BotTest {
        code: out.status.code(),
        outcomes: serde_json::from_slice(&out.stdout).unwrap_or_default(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A free TCP port on 127.0.0.1 (free when asked; good enough for tests).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whose MLLP implementation a peer uses.
#[derive(Debug, Clone, Copy)]
pub enum Peer {
    /// python-hl7's asyncio `hl7.mllp` (`tests/peers/hl7_peer.py`).
    Python,
    /// `@medplum/hl7` (`tests/peers/medplum_peer.mjs`).
    Medplum,
}

impl Peer {
    fn command(self) -> Command {
        let mut c = match self {
            Peer::Python => Command::new("python3"),
            Peer::Medplum => Command::new("node"),
        };
        c.arg(root().join(match self {
            Peer::Python => "tests/peers/hl7_peer.py",
            Peer::Medplum => "tests/peers/medplum_peer.mjs",
        }));
        c
    }
}

/// A peer's server process that says `ready` on its stdout once it
/// listens and logs what it receives as JSON lines; killed when dropped.
struct PeerProcess {
    child: Child,
    log: PathBuf,
}

impl PeerProcess {
    /// Starts `command` and waits for its `ready` line; `what` names the
    /// peer in the panic if it does not come.
    fn start(command: &mut Command, log: &Path, what: &str) -> PeerProcess {
        use std::io::BufRead;
        let mut child = command
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {what} (scripts/setup installs it): {e}"));
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "{what} did not start");
        PeerProcess {
            child,
            log: log.to_path_buf(),
        }
    }

    /// Every line of the log, parsed (but one still being written).
    fn entries(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .split_inclusive('\n')
            .filter(|l| l.ends_with('\n'))
            .map(|l| serde_json::from_str(l).expect("peer log line"))
            .collect()
    }
}

impl Drop for PeerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An MLLP server of another implementation, stopped when dropped.
pub struct PeerServer {
    process: PeerProcess,
    pub port: u16,
}

impl PeerServer {
    /// Starts a server answering per `mode` (`aa`, `ae`, `ar`, `silent`,
    /// and for python `late:SECONDS`), logging messages to `log`.
    pub fn start(peer: Peer, port: u16, mode: &str, log: &Path) -> PeerServer {
        let mut command = peer.command();
        command.args(["server", &port.to_string(), mode, log.to_str().unwrap()]);
        PeerServer {
            process: PeerProcess::start(&mut command, log, &format!("the {peer:?} MLLP server")),
            port,
        }
    }

    fn entries(&self) -> Vec<serde_json::Value> {
        self.process.entries()
    }

    /// (control id, message text) of every message received, in order.
    pub fn received(&self) -> Vec<(String, String)> {
        self.entries()
            .iter()
            .filter_map(|v| {
                Some((
                    v["control_id"].as_str()?.to_string(),
                    v["text"].as_str()?.to_string(),
                ))
            })
            .collect()
    }
}

impl PeerServer {
    /// How many different connections messages arrived on (python only).
    pub fn connections(&self) -> usize {
        let ids: std::collections::HashSet<i64> = self
            .entries()
            .iter()
            .filter_map(|v| v["connection"].as_i64())
            .collect();
        ids.len()
    }

    /// How many connections are open now: accepted and not yet seen to end
    /// (python only). After the sender died, 0 means the peer has read
    /// everything it was sent.
    pub fn open_connections(&self) -> usize {
        let entries = self.entries();
        let count = |key: &str| entries.iter().filter(|v| v.get(key).is_some()).count();
        count("opened") - count("closed")
    }
}

/// Sends each file with the peer's client; returns "MSA-1 MSA-2" per ACK.
pub fn peer_send(peer: Peer, port: u16, files: &[PathBuf]) -> Vec<String> {
    let out = peer
        .command()
        .args(["client", "127.0.0.1", &port.to_string()])
        .args(files)
        .output()
        .expect("run the peer");
    assert!(
        out.status.success(),
        "{peer:?} client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// What the host logs once it is running (`interlink::cli::run`).
const READY: &str = " ready bots=";

/// A host process in a temporary directory.
pub struct Host {
    pub dir: tempfile::TempDir,
    child: Option<Child>,
    runs: usize,
    bin: Option<PathBuf>,
    log_filter: String,
    /// Extra environment variables for the host process.
    envs: Vec<(String, String)>,
    journal: Journal,
}

impl Host {
    /// Prepares a directory with `interlink.toml` and an empty `plugins/`.
    /// The config is made to use the run's [`journal_backend`] (see
    /// [`with_journal_backend`]); on PostgreSQL the host gets a fresh
    /// database of the shared [`PgServer`], dropped with the `Host`.
    pub fn new(config: &str) -> Host {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("plugins")).unwrap();
        std::fs::create_dir_all(dir.path().join("inbox")).unwrap();
        std::fs::write(
            dir.path().join("interlink.toml"),
            with_journal_backend(config),
        )
        .unwrap();
        let journal = match journal_backend() {
            Backend::Sqlite => Journal::Sqlite,
            Backend::Postgres => {
                let server = PgServer::shared();
                let db = server.create_database();
                Journal::postgres(server.url(&db), Some(db))
            }
        };
        Host {
            dir,
            child: None,
            runs: 0,
            bin: None,
            log_filter: "info".into(),
            envs: Vec::new(),
            journal,
        }
    }

    /// Keeps this host's journal in the PostgreSQL database at `url` (e.g.
    /// [`PgServer::url`] of a private server, or a database another host
    /// uses too), whatever the run's backend: its config's `[journal]` is
    /// put on PostgreSQL (see [`postgres_journal`]), the host process gets
    /// `url` as `INTERLINK_PG_URL` and the journal queries read it. The
    /// database is not dropped.
    pub fn with_journal_url(mut self, url: &str) -> Host {
        let config = self.path("interlink.toml");
        let text = std::fs::read_to_string(&config).unwrap();
        std::fs::write(&config, postgres_journal(&text)).unwrap();
        self.journal.drop_own_database();
        self.journal = Journal::postgres(url.to_string(), None);
        self
    }

    /// Runs `bin` instead of [`interlink_bin`] (benchmarks use release).
    pub fn with_binary(mut self, bin: &Path) -> Host {
        self.bin = Some(bin.to_path_buf());
        self
    }

    /// Logs with this `INTERLINK_LOG` filter instead of `info`.
    pub fn with_log_filter(mut self, filter: &str) -> Host {
        self.log_filter = filter.to_string();
        self
    }

    /// Starts the host with the environment variable `key` set to `value`.
    pub fn with_env(mut self, key: &str, value: &str) -> Host {
        self.envs.push((key.to_string(), value.to_string()));
        self
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Copies a test bot into `plugins/` as `file`.
    pub fn install_bot(&self, bot: &str, file: &str) {
        let tmp = self.path(&format!("plugins/.{file}.tmp"));
        std::fs::copy(bot_wasm(bot), &tmp).unwrap();
        std::fs::rename(tmp, self.path(&format!("plugins/{file}"))).unwrap();
    }

    /// Starts `interlink run` and waits until it says it is ready.
    pub fn start(&mut self) {
        self.start_until(READY);
    }

    /// Starts `interlink run` and waits until its log (of this run) holds
    /// `needle`: e.g. the message of a host that refuses its configuration.
    pub fn start_until(&mut self, needle: &str) {
        assert!(self.child.is_none(), "host already running");
        self.runs += 1;
        let log = std::fs::File::create(self.path(&format!("host-{}.log", self.runs))).unwrap();
        let bin = self.bin.clone().unwrap_or_else(interlink_bin);
        let child = Command::new(bin)
            .args(["run", "--config", "interlink.toml"])
            .current_dir(self.dir.path())
            .env("INTERLINK_LOG", &self.log_filter)
            .env("NO_COLOR", "1")
            .env("INTERLINK_TEST_WRITE_TOKEN", WRITE_TOKEN)
            .env("INTERLINK_TEST_READ_TOKEN", READ_TOKEN)
            .envs(self.journal.env())
            .envs(self.envs.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start interlink");
        self.child = Some(child);
        // This run's own log: an earlier run's "ready" does not count.
        let log = self.path(&format!("host-{}.log", self.runs));
        let ready = wait_until(Duration::from_secs(30), || {
            std::fs::read_to_string(&log).is_ok_and(|l| l.contains(needle))
        });
        assert!(ready, "host never logged {needle:?}; log:\n{}", self.log());
    }

    /// Sends the running host a signal (`HUP`, `TERM`, ...).
    pub fn signal(&self, name: &str) {
        let pid = self.child.as_ref().expect("host running").id();
        let ok = Command::new("kill")
            .args([&format!("-{name}"), &pid.to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -{name} {pid} failed");
    }

    /// Waits up to `timeout` for the host process to exit by itself; its
    /// exit status, or `None` while it still runs.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let child = self.child.as_mut().expect("host started");
        let mut status = None;
        wait_until(timeout, || {
            status = child.try_wait().ok().flatten();
            status.is_some()
        });
        status
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Everything the host has logged, across restarts.
    pub fn log(&self) -> String {
        (1..=self.runs)
            .map(|i| {
                std::fs::read_to_string(self.path(&format!("host-{i}.log"))).unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("")
    }

    /// Waits for `needle` in the log; panics with the log if it never comes.
    pub fn wait_log(&self, needle: &str, timeout: Duration) {
        if !wait_until(timeout, || self.log().contains(needle)) {
            panic!("host never logged {needle:?}; log:\n{}", self.log());
        }
    }

    /// How many lines of the log `matches` picks.
    pub fn log_lines(&self, matches: &dyn Fn(&str) -> bool) -> usize {
        self.log().lines().filter(|l| matches(l)).count()
    }

    /// Waits until `more` lines that `matches` picks have been logged after
    /// the call, e.g. two more polls of a source: the positive signal to
    /// wait on before asserting that something did not happen.
    pub fn wait_log_lines(&self, matches: &dyn Fn(&str) -> bool, more: usize, timeout: Duration) {
        let want = self.log_lines(matches) + more;
        if !wait_until(timeout, || self.log_lines(matches) >= want) {
            panic!(
                "host never logged {more} more of the lines waited for; log:\n{}",
                self.log()
            );
        }
    }

    /// Drops a file into the inbox atomically (write elsewhere, rename in).
    pub fn drop_file(&self, name: &str, content: &str) {
        let tmp = self.path(&format!(".{name}.tmp"));
        std::fs::write(&tmp, content).unwrap();
        std::fs::rename(tmp, self.path(&format!("inbox/{name}"))).unwrap();
    }

    /// Files in `out/`, sorted, with their contents.
    pub fn outputs(&self) -> Vec<(String, String)> {
        let Ok(dir) = std::fs::read_dir(self.path("out")) else {
            return Vec::new();
        };
        let mut files: Vec<(String, String)> = dir
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .map(|n| {
                let text =
                    std::fs::read_to_string(self.path(&format!("out/{n}"))).unwrap_or_default();
                (n, text)
            })
            .collect();
        files.sort();
        files
    }

    /// Waits until `out/` holds `n` files and returns them.
    pub fn wait_outputs(&self, n: usize, timeout: Duration) -> Vec<(String, String)> {
        if !wait_until(timeout, || self.outputs().len() >= n) {
            panic!(
                "expected {n} output files, have {:?}; log:\n{}",
                self.outputs(),
                self.log()
            );
        }
        self.outputs()
    }

    /// Every row `sql` returns from the journal, on either backend (keep
    /// the SQL portable: no SQLite-only functions). Any SQL error fails
    /// the test with the SQL.
    pub fn query_rows(&self, sql: &str) -> Vec<Vec<DbValue>> {
        match &self.journal {
            Journal::Sqlite => sqlite_rows(&self.path("data/interlink.db"), sql),
            Journal::Postgres { url, client, .. } => postgres_rows(url, client, sql),
        }
    }

    /// The first column of every row `sql` returns from the journal.
    pub fn query_col<T: FromValue>(&self, sql: &str) -> Vec<T> {
        self.query_rows(sql)
            .iter()
            .map(|row| column_value(row, sql))
            .collect()
    }

    /// One value from the journal (the type's default, 0 or empty, when
    /// there is no row). Any SQL error fails the test with the SQL.
    pub fn query<T: FromValue + Default>(&self, sql: &str) -> T {
        match self.query_rows(sql).first() {
            Some(row) => column_value(row, sql),
            None => T::default(),
        }
    }

    /// Waits until `sql` returns `want`.
    pub fn wait_query(&self, sql: &str, want: i64, timeout: Duration) {
        if !wait_until(timeout, || self.query::<i64>(sql) == want) {
            panic!(
                "{sql} never became {want} (is {}); log:\n{}",
                self.query::<i64>(sql),
                self.log()
            );
        }
    }

    /// Runs an `interlink` subcommand against this host's config.
    pub fn cli(&self, args: &[&str]) -> Output {
        let mut args = args.to_vec();
        args.extend(["--config", "interlink.toml"]);
        self.command(&args).output().expect("run interlink")
    }

    /// `interlink` with `args`, in this host's directory and environment
    /// (its journal's, e.g. `INTERLINK_PG_URL`), not yet started.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(interlink_bin());
        command
            .args(args)
            .current_dir(self.dir.path())
            .env("INTERLINK_TEST_WRITE_TOKEN", WRITE_TOKEN)
            .env("INTERLINK_TEST_READ_TOKEN", READ_TOKEN)
            .envs(self.journal.env())
            .envs(self.envs.iter().map(|(k, v)| (k, v)));
        command
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.kill();
        self.journal.drop_own_database();
    }
}

/// Which journal backend the hosts of a test run use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `data/interlink.db` in each host's directory (the default).
    Sqlite,
    /// A fresh database per host on the test process's [`PgServer`].
    Postgres,
}

/// The environment variable that picks the [`Backend`]: `postgres`, or
/// `sqlite` (the default when unset).
pub const BACKEND_ENV: &str = "INTERLINK_TEST_JOURNAL";

/// The environment variable a host on PostgreSQL reads its database URL
/// from (`url_env` of its `[journal]`).
pub const PG_URL_ENV: &str = "INTERLINK_PG_URL";

/// The journal backend of this test run, per [`BACKEND_ENV`].
pub fn journal_backend() -> Backend {
    match std::env::var(BACKEND_ENV).as_deref() {
        Err(_) | Ok("" | "sqlite") => Backend::Sqlite,
        Ok("postgres") => Backend::Postgres,
        Ok(other) => panic!("{BACKEND_ENV}={other}: expected postgres or sqlite"),
    }
}

/// True, after printing a note, when the run's journal is not SQLite: for
/// a test that only makes sense on SQLite (it opens the `.db` file, checks
/// file sizes, `max_size_mb`), which then returns at once:
/// `if skip_unless_sqlite("it fills a 1 MB journal file") { return; }`.
pub fn skip_unless_sqlite(why: &str) -> bool {
    let skip = journal_backend() != Backend::Sqlite;
    if skip {
        let thread = std::thread::current();
        let test = thread.name().unwrap_or("this test");
        println!("{test}: skipped on PostgreSQL ({BACKEND_ENV}=postgres): {why}");
    }
    skip
}

/// `config` (TOML text) made to use the run's [`journal_backend`]: on
/// SQLite as it is, on PostgreSQL as [`postgres_journal`] makes it.
pub fn with_journal_backend(config: &str) -> String {
    match journal_backend() {
        Backend::Sqlite => config.to_string(),
        Backend::Postgres => postgres_journal(config),
    }
}

/// `config` (TOML text) with its journal on PostgreSQL: the `[journal]`
/// section's `path` gives way to `backend = "postgres"` and `url_env =
/// "INTERLINK_PG_URL"` (other keys are kept), a config without one gets
/// one, and a section that names its `backend` already is left alone.
pub fn postgres_journal(config: &str) -> String {
    let postgres = format!("backend = \"postgres\"\nurl_env = \"{PG_URL_ENV}\"");
    let lines: Vec<&str> = config.split('\n').collect();
    let Some(start) = lines.iter().position(|l| l.trim() == "[journal]") else {
        return format!("{config}\n[journal]\n{postgres}\n");
    };
    let end = lines[start + 1..]
        .iter()
        .position(|l| l.trim_start().starts_with('['))
        .map_or(lines.len(), |n| start + 1 + n);
    let section = &lines[start + 1..end];
    if section.iter().any(|l| toml_key(l) == Some("backend")) {
        return config.to_string();
    }
    let kept = section.iter().filter(|l| toml_key(l) != Some("path"));
    lines[..=start]
        .iter()
        .copied()
        .chain([postgres.as_str()])
        .chain(kept.copied())
        .chain(lines[end..].iter().copied())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The key of a `key = value` line of TOML.
fn toml_key(line: &str) -> Option<&str> {
    line.split_once('=').map(|(key, _)| key.trim())
}

/// Where a [`Host`]'s journal lives, and how the test reads it.
enum Journal {
    /// `data/interlink.db` in the host's directory.
    Sqlite,
    /// A PostgreSQL database, read over one connection kept open.
    Postgres {
        url: String,
        /// The database on the shared [`PgServer`] that the host made for
        /// itself and drops when it goes.
        own: Option<String>,
        client: Mutex<Option<Box<postgres::Client>>>,
    },
}

impl Journal {
    /// The journal in the PostgreSQL database at `url`.
    fn postgres(url: String, own: Option<String>) -> Journal {
        Journal::Postgres {
            url,
            own,
            client: Mutex::new(None),
        }
    }

    /// The environment the host process needs to reach its journal.
    fn env(&self) -> Vec<(&str, &str)> {
        match self {
            Journal::Sqlite => Vec::new(),
            Journal::Postgres { url, .. } => vec![(PG_URL_ENV, url.as_str())],
        }
    }

    /// Closes the connection and drops the database made for the host, if
    /// it made one.
    fn drop_own_database(&mut self) {
        if let Journal::Postgres { own, client, .. } = self {
            client.get_mut().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(db) = own.take() {
                PgServer::shared().drop_database(&db);
            }
        }
    }
}

/// A value read from the journal, whichever the backend. PostgreSQL's
/// `BOOLEAN` reads as `Int` 0 or 1, as SQLite stores it.
#[derive(Debug, Clone, PartialEq)]
pub enum DbValue {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl DbValue {
    /// The value as a `T`; panics, showing it, if it is not one.
    pub fn get<T: FromValue>(&self) -> T {
        T::from_value(self).unwrap_or_else(|| {
            panic!(
                "journal value {self:?} is not a {}",
                std::any::type_name::<T>()
            )
        })
    }
}

/// As SQL's `||` shows a value: NULL empty, a blob in upper-case hex (as
/// SQLite's `hex()`).
impl std::fmt::Display for DbValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DbValue::Null => Ok(()),
            DbValue::Int(i) => write!(f, "{i}"),
            DbValue::Real(r) => write!(f, "{r}"),
            DbValue::Text(s) => f.write_str(s),
            DbValue::Blob(b) => b.iter().try_for_each(|byte| write!(f, "{byte:02X}")),
        }
    }
}

impl From<rusqlite::types::ValueRef<'_>> for DbValue {
    fn from(v: rusqlite::types::ValueRef<'_>) -> DbValue {
        use rusqlite::types::ValueRef;
        match v {
            ValueRef::Null => DbValue::Null,
            ValueRef::Integer(i) => DbValue::Int(i),
            ValueRef::Real(r) => DbValue::Real(r),
            ValueRef::Text(t) => DbValue::Text(String::from_utf8_lossy(t).into_owned()),
            ValueRef::Blob(b) => DbValue::Blob(b.to_vec()),
        }
    }
}

/// A Rust type a journal [`DbValue`] converts to, as [`Host::query`] and
/// [`DbValue::get`] return it.
pub trait FromValue: Sized {
    /// `None` when `v` is not one of these.
    fn from_value(v: &DbValue) -> Option<Self>;
}

impl FromValue for i64 {
    fn from_value(v: &DbValue) -> Option<i64> {
        match v {
            DbValue::Int(i) => Some(*i),
            _ => None,
        }
    }
}

impl FromValue for bool {
    fn from_value(v: &DbValue) -> Option<bool> {
        i64::from_value(v).map(|i| i != 0)
    }
}

/// Text, or a blob of UTF-8 (a journaled body, read without a cast).
impl FromValue for String {
    fn from_value(v: &DbValue) -> Option<String> {
        match v {
            DbValue::Text(s) => Some(s.clone()),
            DbValue::Blob(b) => String::from_utf8(b.clone()).ok(),
            _ => None,
        }
    }
}

/// A blob, or the bytes of text.
impl FromValue for Vec<u8> {
    fn from_value(v: &DbValue) -> Option<Vec<u8>> {
        match v {
            DbValue::Blob(b) => Some(b.clone()),
            DbValue::Text(s) => Some(s.clone().into_bytes()),
            _ => None,
        }
    }
}

/// `None` for NULL.
impl<T: FromValue> FromValue for Option<T> {
    fn from_value(v: &DbValue) -> Option<Option<T>> {
        match v {
            DbValue::Null => Some(None),
            _ => T::from_value(v).map(Some),
        }
    }
}

/// The first value of `row`, a row of `sql`, as a `T`; panics, showing
/// both, if it is not one.
fn column_value<T: FromValue>(row: &[DbValue], sql: &str) -> T {
    T::from_value(&row[0]).unwrap_or_else(|| {
        panic!(
            "{sql}: journal value {:?} is not a {}",
            row[0],
            std::any::type_name::<T>()
        )
    })
}

/// The rows of `sql` in the SQLite journal at `path`, opened read-only.
fn sqlite_rows(path: &Path, sql: &str) -> Vec<Vec<DbValue>> {
    let rows = || -> rusqlite::Result<Vec<Vec<DbValue>>> {
        let db = rusqlite::Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )?;
        db.busy_timeout(Duration::from_secs(5))?;
        let mut q = db.prepare(sql)?;
        let n = q.column_count();
        q.query_map([], |row| {
            (0..n).map(|i| Ok(DbValue::from(row.get_ref(i)?))).collect()
        })?
        .collect()
    };
    rows().unwrap_or_else(|e| panic!("journal query failed: {sql}: {e}"))
}

/// The rows of `sql` in the PostgreSQL journal at `url`, over `client`,
/// connected on first use and again after the server closed it (a test
/// restarted the server).
fn postgres_rows(
    url: &str,
    client: &Mutex<Option<Box<postgres::Client>>>,
    sql: &str,
) -> Vec<Vec<DbValue>> {
    let mut client = client.lock().unwrap_or_else(|e| e.into_inner());
    for retry in [true, false] {
        let conn = match client.as_mut() {
            Some(c) if !c.is_closed() => c,
            _ => client.insert(Box::new(pg_connect(url))),
        };
        match conn.query(sql, &[]) {
            Ok(rows) => {
                return rows
                    .iter()
                    .map(|row| (0..row.len()).map(|i| pg_value(row, i)).collect())
                    .collect();
            }
            Err(_) if retry && conn.is_closed() => continue,
            Err(e) => panic!("journal query failed: {sql}: {}", pg_error(&e)),
        }
    }
    unreachable!("the second try returns or panics")
}

/// Column `i` of a PostgreSQL row as a [`DbValue`]; panics on a type the
/// journal does not use (cast it: `CAST(SUM(x) AS BIGINT)`).
fn pg_value(row: &postgres::Row, i: usize) -> DbValue {
    fn or_null<T>(v: Option<T>, f: impl FnOnce(T) -> DbValue) -> DbValue {
        v.map_or(DbValue::Null, f)
    }
    let column = &row.columns()[i];
    match column.type_().name() {
        "int8" => or_null(row.get(i), DbValue::Int),
        "int4" => or_null(row.get::<_, Option<i32>>(i), |v| DbValue::Int(v.into())),
        "int2" => or_null(row.get::<_, Option<i16>>(i), |v| DbValue::Int(v.into())),
        "bool" => or_null(row.get::<_, Option<bool>>(i), |v| DbValue::Int(v.into())),
        "float8" => or_null(row.get(i), DbValue::Real),
        "float4" => or_null(row.get::<_, Option<f32>>(i), |v| DbValue::Real(v.into())),
        "text" | "varchar" | "bpchar" | "name" => or_null(row.get(i), DbValue::Text),
        "bytea" => or_null(row.get(i), DbValue::Blob),
        other => panic!(
            "journal column {} is of type {other}: cast it to BIGINT or TEXT",
            column.name()
        ),
    }
}

/// A PostgreSQL error with the server's message, when there is one.
fn pg_error(e: &postgres::Error) -> String {
    e.as_db_error()
        .map_or_else(|| e.to_string(), |db| db.to_string())
}

/// A connection to the PostgreSQL database at `url` (no TLS: loopback).
fn pg_connect(url: &str) -> postgres::Client {
    postgres::Client::connect(url, postgres::NoTls)
        .unwrap_or_else(|e| panic!("connect to {url}: {}", pg_error(&e)))
}

/// A real PostgreSQL server on a free port of 127.0.0.1, its cluster in a
/// temporary directory (trust authentication, superuser `interlink`, UTF-8,
/// locale C, `fsync` on), run as the `postgres` user when the tests run as
/// root. [`PgServer::shared`] is the test process's own, stopped when the
/// process exits; [`PgServer::start`] makes a private one, stopped on drop.
pub struct PgServer {
    /// `data/` (the cluster), `server.log`, and the Unix socket.
    dir: tempfile::TempDir,
    /// The directory of `initdb` and `pg_ctl`.
    bin: PathBuf,
    pub port: u16,
}

/// The test process's shared server, started by [`PgServer::shared`].
static SHARED_PG: OnceLock<PgServer> = OnceLock::new();

impl PgServer {
    /// The test process's shared server, started on first use and stopped
    /// (`-m immediate`, its directory removed) when the process exits.
    pub fn shared() -> &'static PgServer {
        SHARED_PG.get_or_init(|| {
            let server = PgServer::start();
            // SAFETY: registers a plain `extern "C" fn` with no arguments.
            let registered = unsafe { libc::atexit(stop_shared_pg) } == 0;
            assert!(registered, "atexit refused the PostgreSQL stop hook");
            server
        })
    }

    /// A private server (a cluster of its own, on a port of its own),
    /// running when this returns; stopped (`-m fast`) when dropped.
    pub fn start() -> PgServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let server = PgServer {
            dir,
            bin: pg_bindir(),
            port: free_port(),
        };
        if running_as_root() {
            let owned = Command::new("chown")
                .arg("postgres:")
                .arg(server.dir.path())
                .status()
                .is_ok_and(|s| s.success());
            assert!(
                owned,
                "chown postgres: failed (is the postgres user there?)"
            );
        }
        let out = server
            .command("initdb")
            .arg("-D")
            .arg(server.data())
            .args([
                "--auth=trust",
                "-U",
                "interlink",
                "--encoding=UTF8",
                "--locale=C",
            ])
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        server.resume();
        server
    }

    /// The URL of database `db`: `postgresql://interlink@127.0.0.1:PORT/db`.
    pub fn url(&self, db: &str) -> String {
        format!("postgresql://interlink@127.0.0.1:{}/{db}", self.port)
    }

    /// A connection to database `db` (`postgres` always exists).
    pub fn connect(&self, db: &str) -> postgres::Client {
        pg_connect(&self.url(db))
    }

    /// Creates a fresh, empty database (`t_<n>`) and returns its name.
    pub fn create_database(&self) -> String {
        static NEXT: AtomicUsize = AtomicUsize::new(1);
        let db = format!("t_{}", NEXT.fetch_add(1, Ordering::Relaxed));
        self.connect("postgres")
            .batch_execute(&format!("CREATE DATABASE {db}"))
            .unwrap_or_else(|e| panic!("CREATE DATABASE {db}: {}", pg_error(&e)));
        db
    }

    /// Drops database `db`, closing its connections; errors are ignored
    /// (the server may have been stopped).
    pub fn drop_database(&self, db: &str) {
        if let Ok(mut c) = postgres::Client::connect(&self.url("postgres"), postgres::NoTls) {
            let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"));
        }
    }

    /// Starts the (stopped) server again on its port and waits until it
    /// accepts connections.
    pub fn resume(&self) {
        let options = format!(
            "-h 127.0.0.1 -p {} -k {}",
            self.port,
            self.dir.path().display()
        );
        let out = self
            .pg_ctl("start", &["-w", "-t", "60", "-o", &options, "-l"])
            .arg(self.dir.path().join("server.log"))
            .output()
            .expect("run pg_ctl");
        let ready = out.status.success()
            && wait_until(Duration::from_secs(30), || {
                postgres::Client::connect(&self.url("postgres"), postgres::NoTls).is_ok()
            });
        if !ready {
            self.kill();
            panic!(
                "PostgreSQL did not start: {}; its log:\n{}",
                String::from_utf8_lossy(&out.stderr),
                self.log()
            );
        }
    }

    /// Stops the server cleanly (`pg_ctl stop -m fast`).
    pub fn stop(&self) {
        self.halt("fast");
    }

    /// Stops the server as a crash would (`pg_ctl stop -m immediate`: no
    /// shutdown checkpoint; the next start recovers from the WAL).
    pub fn kill(&self) {
        self.halt("immediate");
    }

    /// What the server has logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// `pg_ctl stop -m mode`, waiting until the server is gone; a server
    /// that is not running is left so.
    fn halt(&self, mode: &str) {
        let _ = self
            .pg_ctl("stop", &["-w", "-m", mode])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    /// The cluster's data directory.
    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// `pg_ctl action -D data args…`.
    fn pg_ctl(&self, action: &str, args: &[&str]) -> Command {
        let mut c = self.command("pg_ctl");
        c.arg(action).arg("-D").arg(self.data()).args(args);
        c
    }

    /// A PostgreSQL program of [`pg_bindir`], run as the `postgres` user
    /// when we are root (PostgreSQL refuses to run as root), in the
    /// server's directory.
    fn command(&self, program: &str) -> Command {
        let program = self.bin.join(program);
        let mut c = if running_as_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        };
        c.current_dir(self.dir.path());
        c
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The `atexit` hook of [`PgServer::shared`]: the test harness never drops
/// statics, so this stops the shared server and removes its directory.
extern "C" fn stop_shared_pg() {
    if let Some(server) = SHARED_PG.get() {
        server.kill();
        let _ = std::fs::remove_dir_all(server.dir.path());
    }
}

/// Whether this process runs as root.
fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The directory of PostgreSQL's `initdb` and `pg_ctl`: Debian's
/// `/usr/lib/postgresql/<version>/bin` of the highest version, else
/// `pg_config --bindir`, else the `PATH`.
fn pg_bindir() -> PathBuf {
    let has_initdb = |dir: &PathBuf| dir.join("initdb").is_file();
    let debian = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version: u32 = e.file_name().to_str()?.parse().ok()?;
            Some((version, e.path().join("bin")))
        })
        .filter(|(_, bin)| has_initdb(bin))
        .max_by_key(|(version, _)| *version)
        .map(|(_, bin)| bin);
    let pg_config = || {
        let out = Command::new("pg_config").arg("--bindir").output().ok()?;
        Some(PathBuf::from(String::from_utf8(out.stdout).ok()?.trim())).filter(has_initdb)
    };
    let path = || std::env::split_paths(&std::env::var_os("PATH")?).find(has_initdb);
    debian
        .or_else(pg_config)
        .or_else(path)
        .expect("PostgreSQL's initdb is missing: run scripts/setup, which installs postgresql")
}

/// A real OpenSSH `sshd` on 127.0.0.1 serving SFTP (`internal-sftp`), with
/// a host key and a user key generated for it, logging in the user running
/// the tests. Its files live under [`SshServer::remote`]; it is stopped
/// (with every session it forked) when dropped.
pub struct SshServer {
    pub dir: tempfile::TempDir,
    pub port: u16,
    child: Option<Child>,
}

impl SshServer {
    /// Generates keys and config, and starts the server.
    pub fn start() -> SshServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path();
        for key in ["host_key", "user_key", "other_key"] {
            keygen(&d.join(key));
        }
        std::fs::copy(d.join("user_key.pub"), d.join("authorized_keys")).unwrap();
        std::fs::create_dir_all(d.join("files")).unwrap();
        let port = free_port();
        let host_pub = std::fs::read_to_string(d.join("host_key.pub")).unwrap();
        std::fs::write(
            d.join("known_hosts"),
            format!("[127.0.0.1]:{port} {host_pub}"),
        )
        .unwrap();
        let other_pub = std::fs::read_to_string(d.join("other_key.pub")).unwrap();
        std::fs::write(
            d.join("wrong_known_hosts"),
            format!("[127.0.0.1]:{port} {other_pub}"),
        )
        .unwrap();
        let p = |name: &str| d.join(name).display().to_string();
        std::fs::write(
            d.join("sshd_config"),
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nPidFile {}\n\
                 AuthorizedKeysFile {}\nPubkeyAuthentication yes\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nPermitRootLogin yes\nStrictModes no\n\
                 UsePAM no\nSubsystem sftp internal-sftp\nLogLevel VERBOSE\n",
                p("host_key"),
                p("sshd.pid"),
                p("authorized_keys"),
            ),
        )
        .unwrap();
        // sshd started as root wants its privilege separation directory.
        let _ = std::fs::create_dir_all("/run/sshd");
        let mut server = SshServer {
            dir,
            port,
            child: None,
        };
        server.resume();
        server
    }

    /// (Re)starts the server on its port.
    pub fn resume(&mut self) {
        use std::os::unix::process::CommandExt;
        assert!(self.child.is_none(), "sshd already running");
        let sshd = ["/usr/sbin/sshd", "/usr/local/sbin/sshd"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("sshd is missing: run scripts/test, which installs openssh-server");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("sshd.log"))
            .unwrap();
        let child = Command::new(sshd)
            .args(["-D", "-e", "-f"])
            .arg(self.dir.path().join("sshd_config"))
            .stdout(Stdio::null())
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("start sshd");
        self.child = Some(child);
        let up = wait_until(Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
        });
        assert!(up, "sshd did not start: {}", self.log());
    }

    /// Stops the server and the sessions it forked.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", c.id())])
                .status();
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    /// The local path of remote path `rel` (the server shares this machine's
    /// filesystem), e.g. `remote("in")`.
    pub fn remote(&self, rel: &str) -> PathBuf {
        self.dir.path().join("files").join(rel)
    }

    /// A key or known_hosts file made for this server: `user_key`,
    /// `other_key` (not authorized), `known_hosts`, `wrong_known_hosts`.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The user sshd logs in: whoever runs the tests.
    pub fn user() -> String {
        let out = Command::new("id").arg("-un").output().expect("id -un");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// An `[[sftp]]` source named `name` polling `remote(dir)` every second,
    /// logging in as [`SshServer::ssh_table`] does; more keys may follow.
    pub fn source_table(&self, name: &str, dir: &str, key: &str, known_hosts: &str) -> String {
        format!(
            "[[sftp]]\nname = {name:?}\nhost = \"127.0.0.1\"\nport = {}\ndir = {:?}\n\
             schedule = \"* * * * * *\"\n{}\n",
            self.port,
            self.remote(dir).display().to_string(),
            self.ssh_table(key, known_hosts)
        )
    }

    /// The `ssh = { … }` table that logs in with `key` and checks the host
    /// key against `known_hosts` (both names from [`SshServer::file`]).
    pub fn ssh_table(&self, key: &str, known_hosts: &str) -> String {
        format!(
            "ssh = {{ user = {:?}, private_key = {:?}, known_hosts = {:?}, timeout_s = 5 }}",
            SshServer::user(),
            self.file(key).display().to_string(),
            self.file(known_hosts).display().to_string(),
        )
    }
}

impl Drop for SshServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn keygen(path: &Path) {
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .status()
        .expect("ssh-keygen (openssh-client)")
        .success();
    assert!(ok, "ssh-keygen failed for {}", path.display());
}

/// The `write` token tests' hosts accept (see [`http_config`]).
pub const WRITE_TOKEN: &str = "test-write-token-0123456789";
/// The `read` token tests' hosts accept.
pub const READ_TOKEN: &str = "test-read-token-0123456789";

/// An `[http]` section on `port` with a `write` token named `ops` and a
/// `read` token named `viewer`, read from the environment [`Host`] sets.
pub fn http_config(port: u16) -> String {
    format!(
        r#"
[http]
listen = "127.0.0.1:{port}"

[[http.token]]
name = "ops"
role = "write"
token_env = "INTERLINK_TEST_WRITE_TOKEN"

[[http.token]]
name = "viewer"
role = "read"
token_env = "INTERLINK_TEST_READ_TOKEN"
"#
    )
}

/// An HTTP response as a test sees it.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON (panics, showing it, if it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.text()))
    }
}

/// One HTTP/1.1 request to 127.0.0.1:`port`, sent byte for byte as given
/// (the path is not normalised), on a connection of its own. `token` is
/// sent as a bearer token.
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect to the host");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read the response");
    parse_http_response(&raw)
}

/// GET with a bearer token; the JSON body.
pub fn http_get_json(port: u16, path: &str, token: &str) -> (u16, serde_json::Value) {
    let r = http(port, "GET", path, Some(token), &[], b"");
    (r.status, r.json())
}

/// POST of a JSON body with a bearer token; the status and JSON body.
pub fn http_post_json(port: u16, path: &str, token: &str, body: &str) -> (u16, serde_json::Value) {
    let r = http(
        port,
        "POST",
        path,
        Some(token),
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    );
    (r.status, r.json())
}

fn parse_http_response(raw: &[u8]) -> HttpResponse {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..end]);
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    HttpResponse {
        status,
        headers,
        body,
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = data.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size = std::str::from_utf8(&data[..eol])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next()?.trim(), 16).ok())
            .unwrap_or(0);
        if size == 0 {
            return out;
        }
        data = &data[eol + 2..];
        out.extend_from_slice(&data[..size.min(data.len())]);
        data = data.get(size + 2..).unwrap_or(&[]);
    }
}

/// A test PKI in `dir`: `ca.pem`, a server certificate for `localhost`
/// (`server.pem`, `server.key`) and a client certificate for `modality`
/// (`client.pem`, `client.key`), both issued by the CA.
pub fn test_pki(dir: &Path) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    // Subject names that differ from the CA's, or OpenSSL-based clients
    // take the certificates for self-signed ones.
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Interlink test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issue = |names: Vec<String>, file: &str| {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(names.clone()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, names[0].as_str());
        let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
        std::fs::write(dir.join(format!("{file}.pem")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{file}.key")), key.serialize_pem()).unwrap();
    };
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    issue(vec!["localhost".into()], "server");
    issue(vec!["modality".into()], "client");
}

/// The scripted HTTP receiver of `tests/peers/http_peer.py`, stopped when
/// dropped.
pub struct HttpPeer {
    process: PeerProcess,
    /// Holds the log of the requests, until the peer is dropped.
    _log_dir: tempfile::TempDir,
}

impl HttpPeer {
    /// Starts the peer on `port`, answering per `script` (see the script's
    /// header).
    pub fn start(port: u16, script: &str) -> HttpPeer {
        Self::start_with(port, script, None)
    }

    /// [`HttpPeer::start`] over HTTPS with the [`test_pki`] in `tls`,
    /// requiring a client certificate.
    pub fn start_with(port: u16, script: &str, tls: Option<&Path>) -> HttpPeer {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("requests.jsonl");
        let mut command = Command::new("python3");
        command
            .arg(root().join("tests/peers/http_peer.py"))
            .args([&port.to_string(), script, log.to_str().unwrap()])
            .args(tls);
        HttpPeer {
            process: PeerProcess::start(&mut command, &log, "the HTTP peer (python3)"),
            _log_dir: dir,
        }
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<serde_json::Value> {
        self.process.entries()
    }

    /// Waits until `n` requests have arrived and returns them.
    pub fn wait_requests(&self, n: usize, host: &Host) -> Vec<serde_json::Value> {
        if !wait_until(Duration::from_secs(20), || self.requests().len() >= n) {
            panic!(
                "expected {n} requests, have {:#?}; log:\n{}",
                self.requests(),
                host.log()
            );
        }
        self.requests()
    }
}

/// A header of a request an [`HttpPeer`] logged.
pub fn request_header<'a>(request: &'a serde_json::Value, name: &str) -> &'a str {
    request["headers"][name].as_str().unwrap_or_default()
}

/// A TCP proxy on a free port of 127.0.0.1 to `127.0.0.1:target`, which a
/// test can cut like a pulled cable: after [`TcpProxy::cut`] nothing is
/// forwarded either way (what was on its way is lost), yet every socket
/// stays open, and new connections are accepted and lead nowhere; so
/// neither side sees a reset, only silence. Stopped, closing everything,
/// when dropped. Threads: one accepting, two per connection.
pub struct TcpProxy {
    port: u16,
    state: std::sync::Arc<ProxyState>,
    accept: Option<std::thread::JoinHandle<()>>,
}

/// What a [`TcpProxy`]'s threads share.
#[derive(Default)]
struct ProxyState {
    cut: std::sync::atomic::AtomicBool,
    stop: std::sync::atomic::AtomicBool,
    /// The forwarding threads, joined on drop.
    pumps: Mutex<Vec<std::thread::JoinHandle<()>>>,
    /// Connections accepted after the cut, held open until drop.
    held: Mutex<Vec<std::net::TcpStream>>,
}

impl TcpProxy {
    /// Starts forwarding connections to `127.0.0.1:target`.
    pub fn start(target: u16) -> TcpProxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let state = std::sync::Arc::new(ProxyState::default());
        let shared = state.clone();
        let accept = std::thread::spawn(move || {
            while !shared.stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => proxy_connection(&shared, client, target),
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        TcpProxy {
            port,
            state,
            accept: Some(accept),
        }
    }

    /// The port to connect to instead of the target's.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// From now on forwards nothing, closes nothing (see [`TcpProxy`]).
    pub fn cut(&self) {
        self.state.cut.store(true, Ordering::SeqCst);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        let pumps = std::mem::take(&mut *self.state.pumps.lock().unwrap());
        for t in pumps {
            let _ = t.join();
        }
        self.state.held.lock().unwrap().clear();
    }
}

/// Connects `client` to the target and starts a thread for each direction;
/// after the cut, only holds `client` open.
fn proxy_connection(state: &std::sync::Arc<ProxyState>, client: std::net::TcpStream, target: u16) {
    let _ = client.set_nonblocking(false);
    if state.cut.load(Ordering::SeqCst) {
        state.held.lock().unwrap().push(client);
        return;
    }
    let Ok(server) = std::net::TcpStream::connect(("127.0.0.1", target)) else {
        return;
    };
    let (Ok(client2), Ok(server2)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let mut pumps = state.pumps.lock().unwrap();
    for (from, to) in [(client, server), (server2, client2)] {
        let state = state.clone();
        pumps.push(std::thread::spawn(move || pump(&state, from, to)));
    }
}

/// Copies `from` to `to` until either ends or the proxy stops; while the
/// proxy is cut, reads nothing and drops what was read, keeping both open.
fn pump(state: &ProxyState, mut from: std::net::TcpStream, mut to: std::net::TcpStream) {
    use std::io::{Read, Write};
    let tick = Duration::from_millis(50);
    let _ = from.set_read_timeout(Some(tick));
    let mut buf = [0u8; 16384];
    while !state.stop.load(Ordering::SeqCst) {
        if state.cut.load(Ordering::SeqCst) {
            std::thread::sleep(tick);
            continue;
        }
        match from.read(&mut buf) {
            Ok(0) => {
                let _ = to.shutdown(std::net::Shutdown::Write);
                return;
            }
            Ok(n) => {
                if !state.cut.load(Ordering::SeqCst) && to.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
    }
}

/// A message an MLLP [`PeerServer`] (python) received: on which of its
/// connections, and when (ms since the epoch, as the peer logs them).
#[derive(Debug, Clone)]
pub struct Arrival {
    pub control_id: String,
    pub connection: i64,
    pub at_ms: i64,
    /// When the connection it came on was opened.
    pub connection_opened_ms: i64,
}

impl PeerServer {
    /// Every message received, in order, with its connection (python only).
    pub fn arrivals(&self) -> Vec<Arrival> {
        let entries = self.entries();
        let opened: std::collections::HashMap<i64, i64> = entries
            .iter()
            .filter_map(|v| Some((v["opened"].as_i64()?, v["ms"].as_i64()?)))
            .collect();
        entries
            .iter()
            .filter_map(|v| {
                let connection = v["connection"].as_i64()?;
                Some(Arrival {
                    control_id: v["control_id"].as_str()?.to_string(),
                    connection,
                    at_ms: v["ms"].as_i64()?,
                    connection_opened_ms: *opened.get(&connection)?,
                })
            })
            .collect()
    }
}

impl Host {
    /// The process id of the running host, if it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

/// Milliseconds since the epoch, as the host and the peers stamp times.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Reads one MLLP-framed ACK from `stream`; returns (MSA-1, MSA-2).
pub fn read_msa(stream: &mut impl std::io::Read) -> std::io::Result<(String, String)> {
    let mut bytes = Vec::new();
    let mut buf = [0u8; 1024];
    while !bytes.ends_with(b"\x1c\r") {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        bytes.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&bytes);
    let msa = text
        .split(['\r', '\x0b', '\x1c'])
        .find(|s| s.starts_with("MSA|"))
        .ok_or(std::io::ErrorKind::InvalidData)?;
    let mut fields = msa.split('|').skip(1);
    let code = fields.next().unwrap_or("").to_string();
    let id = fields.next().unwrap_or("").to_string();
    Ok((code, id))
}
