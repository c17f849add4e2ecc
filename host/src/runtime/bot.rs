//! A compiled, checked bot ([`LoadedBot`]) and running it: every call gets a
//! fresh instance from the pre-instantiated component, its own memory cap,
//! a wall-clock deadline and captured stdout/stderr; failures come back as a
//! [`Failure`] that says in plain words what happened.
//!
//! The deadline holds two ways: the epoch deadline traps wasm that keeps
//! running (a busy loop never yields its fiber), and the whole call runs
//! as a future under `tokio::time::timeout`, which abandons a bot that is
//! waiting in WASI (a sleep) at its limit. Calls stay blocking for their
//! callers: each thread drives its calls on a current-thread tokio runtime
//! of its own, so they must not come from inside an async task (plain
//! threads and `spawn_blocking` are fine).

use std::fmt;
use std::future::Future;
use std::time::{Duration, Instant};

use wasmtime::component::ResourceTable;
use wasmtime::{Store, Trap};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;

use super::bindings::{Contract, Event, Exports, Level, Manifest, Prepared, Reply};
use super::engine::BotEngine;
use super::state::{BotPolicy, BotState, MemoryLimiter, Session};

/// Most bytes of stdout (and of stderr) kept per call.
const MAX_OUTPUT: usize = 1024 * 1024;

thread_local! {
    /// The executor of the calls made on this thread: built once per thread,
    /// with timers for WASI clocks and the per-call timeout.
    static EXECUTOR: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("cannot build the bot call executor");
}

/// Runs `future` to completion on this thread's executor.
fn block_on<F: Future>(future: F) -> F::Output {
    EXECUTOR.with(|executor| executor.block_on(future))
}

/// Where a call failed before it could return.
enum Stopped {
    /// Creating the instance failed.
    Instantiating(wasmtime::Error),
    /// The export trapped.
    Calling(wasmtime::Error),
    /// The time limit passed while the bot was waiting.
    TimedOut,
}

/// A bot ready to run.
pub struct LoadedBot {
    engine: BotEngine,
    pre: Prepared,
    pub(super) manifest: Manifest,
}

/// What a bot says about itself, in the host's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub name: String,
    pub version: String,
    pub description: String,
    /// The contract it was built against (`interlink:bot@0.2.0`).
    pub contract: &'static str,
    /// Its manifest's subscriptions, in words (`hl7 ADT^A04 from in`).
    pub subscriptions: Vec<String>,
}

/// Why a call did not produce a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The bot ran past its wall-clock limit.
    TimedOut(Duration),
    /// The bot tried to grow its memory past the cap.
    OutOfMemory(usize),
    /// The bot panicked; the panic message.
    Panicked(String),
    /// Any other trap.
    Trapped(String),
    /// The bot returned an error.
    Bot { message: String, retryable: bool },
    /// The host could not run the bot.
    Host(String),
    /// The reply broke a host rule (unknown destination, not HL7).
    Refused(String),
    /// The host gave up on the event without a result (its worker kept
    /// dying on it); not retried. The text says why.
    Abandoned(String),
}

impl Failure {
    /// Worth running the event again later.
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            Failure::Bot {
                retryable: true,
                ..
            } | Failure::Host(_)
        )
    }
}

impl Failure {
    /// The failure as the host log shows it: the bot's own text (its panic
    /// message or error, or why its reply was refused, which quotes what
    /// it sent) only with `[log] phi = true`, as it is often built from the
    /// message it was handling.
    pub fn logged(&self) -> Logged<'_> {
        Logged(self)
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>, guard_bot_text: bool) -> fmt::Result {
        let bot_text = |t: &str| match guard_bot_text {
            true => crate::phi::text(t).to_string(),
            false => t.to_string(),
        };
        match self {
            Failure::TimedOut(d) => write!(f, "timed out after {} ms", d.as_millis()),
            Failure::OutOfMemory(bytes) => {
                write!(f, "exceeded its {} MiB memory limit", bytes / (1024 * 1024))
            }
            Failure::Panicked(msg) => write!(f, "panicked: {}", bot_text(msg)),
            Failure::Trapped(msg) => write!(f, "trapped: {msg}"),
            Failure::Bot { message, .. } => write!(f, "failed: {}", bot_text(message)),
            Failure::Host(msg) => write!(f, "could not run: {msg}"),
            Failure::Refused(msg) => write!(f, "reply refused: {}", bot_text(msg)),
            Failure::Abandoned(msg) => f.write_str(msg),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.describe(f, false)
    }
}

/// A [`Failure`] as the host log shows it (see [`Failure::logged`]).
pub struct Logged<'a>(&'a Failure);

impl fmt::Display for Logged<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.describe(f, true)
    }
}

/// What one call produced.
pub struct Invocation<T> {
    pub result: Result<T, Failure>,
    /// The session, with the call's writes pending and its log lines.
    pub session: Session,
    pub duration: Duration,
}

impl LoadedBot {
    pub(super) fn new(engine: BotEngine, pre: Prepared) -> anyhow::Result<Self> {
        let mut bot = LoadedBot {
            engine,
            pre,
            manifest: Manifest {
                name: String::new(),
                version: String::new(),
                description: String::new(),
                subscribe: Vec::new(),
            },
        };
        let call = bot.call(
            Session::loading(Default::default()),
            async |b: &Exports, s: &mut Store<BotState>| b.manifest(s).await,
        );
        let manifest = call.result.map_err(|f| anyhow::anyhow!("`manifest` {f}"))?;
        check_manifest(&manifest)?;
        bot.manifest = manifest;
        Ok(bot)
    }

    pub fn name(&self) -> &str {
        &self.manifest.name
    }

    pub fn version(&self) -> &str {
        &self.manifest.version
    }

    /// The contract version it was built against.
    pub fn contract(&self) -> Contract {
        self.pre.contract()
    }

    /// Runs `check-settings` with the settings of `policy`: `Err` names
    /// what is wrong (the bot's own words, or how the call failed).
    pub fn check_settings(&self, policy: std::sync::Arc<BotPolicy>) -> Result<(), String> {
        let call = self.call(
            Session::loading(policy),
            async |b: &Exports, s: &mut Store<BotState>| b.check_settings(s).await,
        );
        match call.result {
            Ok(verdict) => verdict,
            Err(f) => Err(format!("`check-settings` {f}")),
        }
    }

    /// Its cron schedules, with its subscriptions as `config` (its
    /// `[bots.NAME]`) makes them.
    pub fn cron_schedules(&self, config: Option<&crate::config::BotConfig>) -> Vec<String> {
        super::routing::effective(&self.manifest.subscribe, config)
            .iter()
            .filter_map(|s| super::routing::cron_schedule(s).map(str::to_string))
            .collect()
    }

    /// Its manifest, in the host's terms.
    pub fn summary(&self) -> Summary {
        Summary {
            name: self.manifest.name.clone(),
            version: self.manifest.version.clone(),
            description: self.manifest.description.clone(),
            contract: self.contract().package(),
            subscriptions: self
                .manifest
                .subscribe
                .iter()
                .map(super::routing::describe)
                .collect(),
        }
    }

    /// Runs `handle` on a fresh instance.
    pub fn handle(&self, event: &Event, session: Session) -> Invocation<Reply> {
        let Invocation {
            result,
            session,
            duration,
        } = self.call(session, async |b: &Exports, s: &mut Store<BotState>| {
            b.handle(s, event).await
        });
        let result = match result {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(e)) => Err(Failure::Bot {
                message: e.message,
                retryable: e.retryable,
            }),
            Err(f) => Err(f),
        };
        Invocation {
            result,
            session,
            duration,
        }
    }

    fn call<R>(
        &self,
        session: Session,
        f: impl AsyncFnOnce(&Exports, &mut Store<BotState>) -> wasmtime::Result<R>,
    ) -> Invocation<R> {
        let limits = self.engine.limits();
        let stdout = MemoryOutputPipe::new(MAX_OUTPUT);
        let stderr = MemoryOutputPipe::new(MAX_OUTPUT);
        let wasi = WasiCtxBuilder::new()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let state = BotState {
            wasi,
            table: ResourceTable::new(),
            limiter: MemoryLimiter {
                cap: limits.memory_bytes,
                exceeded: false,
            },
            session,
        };
        let mut store = Store::new(self.engine.engine(), state);
        store.limiter(|s| &mut s.limiter);
        store.set_epoch_deadline(limits.deadline_ticks());
        store.epoch_deadline_trap();
        let started = Instant::now();
        let run = async {
            let bot = self
                .pre
                .instantiate(&mut store)
                .await
                .map_err(Stopped::Instantiating)?;
            f(&bot, &mut store).await.map_err(Stopped::Calling)
        };
        let outcome = block_on(async {
            tokio::time::timeout(limits.timeout, run)
                .await
                .unwrap_or(Err(Stopped::TimedOut))
        });
        let duration = started.elapsed();
        let outcome = outcome.map_err(|stopped| match stopped {
            Stopped::Instantiating(e) => instantiate_failure(e, &store, limits),
            Stopped::Calling(e) => classify(e, &store, &stderr.contents(), limits),
            Stopped::TimedOut => Failure::TimedOut(limits.timeout),
        });
        let mut state = store.into_data();
        for (level, pipe) in [(Level::Info, &stdout), (Level::Warn, &stderr)] {
            let output = String::from_utf8_lossy(&pipe.contents()).into_owned();
            // The panic report carries the panic message: kept in the run's
            // error (journal), logged only with `[log] phi = true`.
            let output = match crate::phi::shown() {
                true => &output[..],
                false => before_panic_report(&output),
            };
            for line in output.lines() {
                if !line.trim().is_empty() {
                    state.push_log(level, line.to_string());
                }
            }
        }
        Invocation {
            result: outcome,
            session: state.session,
            duration,
        }
    }
}

fn instantiate_failure(
    e: wasmtime::Error,
    store: &Store<BotState>,
    limits: super::engine::Limits,
) -> Failure {
    if store.data().limiter.exceeded {
        Failure::OutOfMemory(limits.memory_bytes)
    } else {
        Failure::Host(format!("cannot instantiate: {e:#}"))
    }
}

/// Turns a trap into words, using the limiter's flag and the guest's stderr.
fn classify(
    e: wasmtime::Error,
    store: &Store<BotState>,
    stderr: &[u8],
    limits: super::engine::Limits,
) -> Failure {
    if e.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
        return Failure::TimedOut(limits.timeout);
    }
    if store.data().limiter.exceeded {
        return Failure::OutOfMemory(limits.memory_bytes);
    }
    let stderr = String::from_utf8_lossy(stderr);
    if let Some(msg) = panic_message(&stderr) {
        return Failure::Panicked(msg);
    }
    match e.downcast_ref::<Trap>() {
        Some(trap) => Failure::Trapped(trap.to_string()),
        // A host function refused the call: its reason, without the wasm
        // backtrace wrapped around it.
        None => Failure::Trapped(e.root_cause().to_string()),
    }
}

/// `output` up to the line where Rust's panic report starts.
fn before_panic_report(output: &str) -> &str {
    match output.find("panicked at ") {
        Some(at) => &output[..output[..at].rfind('\n').map_or(0, |nl| nl + 1)],
        None => output,
    }
}

/// Extracts the message from Rust's panic output
/// (`thread '…' panicked at src/lib.rs:1:2:\nmessage\nnote: …`).
fn panic_message(stderr: &str) -> Option<String> {
    let after = &stderr[stderr.find("panicked at ")? + "panicked at ".len()..];
    let (location, rest) = after.split_once('\n').unwrap_or((after, ""));
    let message: Vec<&str> = rest
        .lines()
        .take_while(|l| !l.starts_with("note: "))
        .collect();
    let message = message.join("\n");
    let location = location.trim_end_matches(':');
    Some(if message.is_empty() {
        location.to_string()
    } else {
        format!("{message} (at {location})")
    })
}

fn check_manifest(m: &Manifest) -> anyhow::Result<()> {
    let ok = !m.name.is_empty()
        && m.name.len() <= 64
        && m.name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !ok {
        anyhow::bail!(
            "manifest name {:?} must be 1-64 letters, digits, '-' or '_'",
            m.name
        );
    }
    for s in &m.subscribe {
        if let super::bindings::Subscription::Cron(c) = s
            && let Err(e) = c.parse::<cron::Schedule>()
        {
            anyhow::bail!(
                "manifest cron schedule {c:?} is not valid ({e}); use sec min hour day month weekday"
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_panic_messages() {
        let out = "thread '<unnamed>' panicked at src/lib.rs:12:9:\nboom: bad PID\nnote: run with `RUST_BACKTRACE=1`\n";
        assert_eq!(
            panic_message(out).unwrap(),
            "boom: bad PID (at src/lib.rs:12:9)"
        );
        assert_eq!(panic_message("nothing"), None);
        let before = "checking\nthread '<unnamed>' panicked at src/lib.rs:1:1:\nDOE^JANE\n";
        assert_eq!(before_panic_report(before), "checking\n");
        assert_eq!(before_panic_report("fine\n"), "fine\n");
    }

    #[test]
    fn failures_read_as_plain_words() {
        assert_eq!(
            Failure::TimedOut(Duration::from_millis(1000)).to_string(),
            "timed out after 1000 ms"
        );
        assert_eq!(
            Failure::OutOfMemory(64 << 20).to_string(),
            "exceeded its 64 MiB memory limit"
        );
    }
}
