//! A bot's worker: a thread that takes the bot's due runs from the journal in
//! event order, runs each on a fresh instance, and commits the batch's
//! results (run status, key-value and sequence writes, outbound messages)
//! in one journal transaction. A crash before that commit leaves the runs
//! pending, so they run again: in effect, each event is processed once.
//!
//! [`supervise`] keeps the worker alive: a worker that panics is logged as
//! an error naming its bot and restarted after a growing pause; the runs it
//! had not committed are still pending and are taken up again. A run the
//! worker dies on [`DEATHS_PER_EVENT`] times in a row is failed with the
//! reason, so one message the host cannot handle does not stall the bot.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::bot::Failure;
use super::http::{self, failure_answer};
use super::process::{Processed, process};
use super::replies::AppReply;
use super::state::{Session, SharedReader};
use super::{LiveBot, Runtime};
use crate::journal::{self, PendingRun, RunLog, RunRecord, RunStatus, StateWrites};

/// Most runs taken into one batch (and one commit).
const BATCH: usize = 64;
/// Longest a worker sleeps without looking at the journal; this is how a
/// replay queued by another process is noticed.
const IDLE_POLL: Duration = Duration::from_millis(500);
/// Longest delay between retries of a failing event.
const MAX_BACKOFF_MS: i64 = 300_000;
/// Pause before restarting a worker that died, doubled per death in a row.
const RESTART_FIRST_MS: u64 = 100;
/// Longest pause before restarting a worker.
const RESTART_MAX_MS: i64 = 30_000;
/// A worker that ran this long before dying starts the pauses afresh.
const HEALTHY_RUN: Duration = Duration::from_secs(60);
/// Deaths in a row on one event after which its run is failed.
const DEATHS_PER_EVENT: u32 = 3;

/// Runs the worker of `bot` until it stops on its own (the bot was
/// unloaded), restarting it whenever it dies.
pub fn supervise(rt: Arc<Runtime>, bot: String, wake: Receiver<()>) {
    let mut deaths = 0;
    // The event being run (0: none), and the deaths in a row on it.
    let in_flight = AtomicI64::new(0);
    let mut fatal = (0, 0);
    loop {
        let started = Instant::now();
        let worker = AssertUnwindSafe(|| run(&rt, &bot, &wake, &in_flight));
        let died = match std::panic::catch_unwind(worker) {
            Ok(()) => return,
            Err(panic) => panic,
        };
        let event = in_flight.swap(0, Ordering::SeqCst);
        fatal = match fatal {
            (e, n) if e == event && event != 0 => (e, n + 1),
            _ => (event, 1),
        };
        if fatal.1 >= DEATHS_PER_EVENT {
            give_up(&rt, &bot, event, panic_text(&*died));
            fatal = (0, 0);
        }
        if started.elapsed() >= HEALTHY_RUN {
            deaths = 0;
        }
        deaths += 1;
        let pause = crate::backoff::delay_ms(RESTART_FIRST_MS, deaths, RESTART_MAX_MS);
        tracing::error!(bot = %bot, "worker died: {}; restarting it in {pause} ms", panic_text(&*died));
        std::thread::sleep(Duration::from_millis(pause as u64));
        tracing::info!(bot = %bot, "worker restarted");
    }
}

/// Fails the run of `event`, which the worker died on again and again
/// (unless the bot went to another host meanwhile: its run is that host's).
fn give_up(rt: &Runtime, bot: &str, event: i64, panic: &str) {
    let Some(_turn) = rt.cluster().bot_turn(bot) else {
        return;
    };
    let failure = Failure::Abandoned(format!(
        "the host's worker died {DEATHS_PER_EVENT} times running this event ({panic}); not retried"
    ));
    let error = failure.to_string();
    tracing::error!(bot = %bot, event, outcome = "failed", "{error}");
    let record = RunRecord {
        event_id: event,
        bot: bot.to_string(),
        bot_version: rt
            .bot(bot)
            .map(|b| b.code.version().to_string())
            .unwrap_or_default(),
        status: RunStatus::Failed,
        attempts: i64::from(DEATHS_PER_EVENT),
        next_attempt_ms: 0,
        error: Some(error.clone()),
        duration_us: 0,
        send: Vec::new(),
        // Recorded only where a listener's application ACK waits on it.
        reply: Some(AppReply::Failed(error.clone())),
        logs: Vec::new(),
        // Recorded only where an HTTP command's caller may ask again.
        http: Some(failure_answer(&failure, Some(event))),
    };
    let state = StateWrites {
        bot: bot.to_string(),
        ..StateWrites::default()
    };
    match rt
        .journal
        .complete(vec![record.clone()], state)
        .blocking_recv()
    {
        Ok(Ok(())) => {
            crate::telemetry::bot_run(bot, "failed", None);
            rt.stats.count(bot, 0, 1);
            if let Some(answer) = record.http {
                rt.http_replies.deliver(event, answer);
            }
            rt.replies.deliver(event, AppReply::Failed(error));
        }
        Ok(Err(e)) => tracing::error!(bot = %bot, event, "cannot record the failed run: {e}"),
        Err(_) => {
            tracing::error!(bot = %bot, event, "cannot record the failed run: journal closed")
        }
    }
}

/// The message a panic was raised with.
fn panic_text(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("panicked")
}

fn run(rt: &Arc<Runtime>, bot: &str, wake: &Receiver<()>, in_flight: &AtomicI64) {
    let reader: SharedReader = loop {
        match rt.journal.reader() {
            Ok(r) => break Arc::new(Mutex::new(r)),
            Err(e) => {
                tracing::error!(bot = %bot, "cannot read the journal: {e}");
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    };
    let lock = rt.batch_lock(bot);
    let mut wait = Duration::ZERO;
    loop {
        match wake.recv_timeout(wait) {
            Ok(()) | Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        let Some(live) = rt.bot(bot) else { return };
        // Refused settings: the runs wait for a configuration that passes
        // (a reload wakes the worker).
        if live.settings.is_err() {
            wait = IDLE_POLL;
            continue;
        }
        // Another host sharing the journal runs this bot: its events wait
        // for this host to own it (the coordinator wakes the worker then).
        let Some(turn) = rt.cluster().bot_turn(bot) else {
            wait = IDLE_POLL;
            continue;
        };
        // A worker that died holding the lock poisoned it; what it guards
        // is only the turn to run, so the restarted worker takes it anyway.
        let guard = lock.lock().unwrap_or_else(PoisonError::into_inner);
        while turn.still_owned() {
            let due =
                reader
                    .lock()
                    .expect("reader lock")
                    .pending_runs(bot, journal::now_ms(), BATCH);
            let due = match due {
                Ok(d) if d.is_empty() => break,
                Ok(d) => d,
                Err(e) => {
                    tracing::error!(bot = %bot, "cannot read pending runs: {e}");
                    break;
                }
            };
            if !run_batch(rt, &live, &reader, &due, in_flight) {
                std::thread::sleep(Duration::from_secs(1));
                break;
            }
        }
        drop(guard);
        drop(turn);
        wait = next_wait(&reader, bot);
    }
}

/// How long to sleep: until the next retry is due, at most [`IDLE_POLL`].
fn next_wait(reader: &SharedReader, bot: &str) -> Duration {
    match reader.lock().expect("reader lock").next_due(bot) {
        Ok(Some(at)) => {
            let ms = (at - journal::now_ms()).clamp(1, IDLE_POLL.as_millis() as i64);
            Duration::from_millis(ms as u64)
        }
        _ => IDLE_POLL,
    }
}

/// Runs one batch and commits it; false if the commit failed (the runs stay
/// pending and will run again).
fn run_batch(
    rt: &Runtime,
    live: &LiveBot,
    reader: &SharedReader,
    due: &[PendingRun],
    in_flight: &AtomicI64,
) -> bool {
    let name = live.code.name().to_string();
    let mut session = Session::new(&name, live.policy.clone(), Box::new(reader.clone()));
    let mut records = Vec::with_capacity(due.len());
    // Outcomes listeners with `ack = "application"` wait for.
    let mut replies = Vec::new();
    // (outcome, duration) per run, counted once the batch is committed.
    let mut outcomes = Vec::with_capacity(due.len());
    // Answers HTTP commands wait for.
    let mut answers = Vec::new();
    let mut sends = 0;
    for run in due {
        let stored = match reader.lock().expect("reader lock").event(run.event_id) {
            Ok(Some(e)) => Ok(e),
            Ok(None) => Err("the event is no longer in the journal".to_string()),
            Err(e) => Err(format!("cannot read the event: {e}")),
        };
        let awaited = stored.as_ref().is_ok_and(|e| rt.acks_after_bot(&e.source));
        let command = stored.as_ref().is_ok_and(|e| e.kind == http::KIND);
        let Processed {
            result,
            ack,
            http,
            duration,
        } = match stored {
            Ok(event) => {
                in_flight.store(run.event_id, Ordering::SeqCst);
                super::fault::before_event(&name, run.event_id);
                let (processed, continued) = process(&live.code, &live.policy, event, session);
                in_flight.store(0, Ordering::SeqCst);
                session = continued;
                processed
            }
            Err(why) => Processed::failed(Failure::Host(why)),
        };
        let logs = emit_logs(&name, run.event_id, &mut session);
        let attempts = run.attempts + 1;
        let micros = duration.as_micros() as u64;
        let mut record = RunRecord {
            event_id: run.event_id,
            bot: name.clone(),
            bot_version: live.code.version().to_string(),
            status: RunStatus::Done,
            attempts,
            next_attempt_ms: 0,
            error: None,
            duration_us: micros as i64,
            send: Vec::new(),
            reply: None,
            logs,
            http: None,
        };
        let reply = awaited.then(|| match &result {
            Ok(_) => AppReply::Ack(ack),
            Err(f) => AppReply::Failed(f.to_string()),
        });
        let answer = command.then(|| match &result {
            Ok(_) => http.unwrap_or_else(http::no_content),
            Err(f) => failure_answer(f, Some(run.event_id)),
        });
        match result {
            Ok(send) => {
                sends += send.len();
                tracing::info!(bot = %name, event = run.event_id, outcome = "done", sent = send.len(), duration_us = micros, "processed");
                record.send = send;
            }
            Err(failure) => {
                let retry =
                    failure.retryable() && attempts < rt.config().plugins.max_attempts as i64;
                record.error = Some(failure.to_string());
                if retry {
                    let backoff = crate::backoff::delay_ms(
                        rt.config().plugins.retry_backoff_ms,
                        attempts,
                        MAX_BACKOFF_MS,
                    );
                    record.status = RunStatus::Pending;
                    record.next_attempt_ms = journal::now_ms() + backoff;
                    tracing::warn!(bot = %name, event = run.event_id, outcome = "retry", attempt = attempts, duration_us = micros, "{}; retrying in {backoff} ms", failure.logged());
                } else {
                    record.status = RunStatus::Failed;
                    tracing::error!(bot = %name, event = run.event_id, outcome = "failed", attempt = attempts, duration_us = micros, "{}", failure.logged());
                }
            }
        }
        let outcome = match record.status {
            RunStatus::Done => "done",
            RunStatus::Pending => "retry",
            RunStatus::Failed => "failed",
        };
        outcomes.push((outcome, duration));
        // A listener's application ACK answers with the run's final outcome
        // only: while a retry is due, a resend is told to come back later.
        if let Some(reply) = reply.filter(|_| record.status != RunStatus::Pending) {
            record.reply = Some(reply.clone());
            replies.push((run.event_id, reply));
        }
        // So does an HTTP command's caller.
        if let Some(answer) = answer.filter(|_| record.status != RunStatus::Pending) {
            record.http = Some(answer.clone());
            answers.push((run.event_id, answer));
        }
        records.push(record);
    }
    let finished = |s| records.iter().filter(|r| r.status == s).count() as u64;
    let (done, failed) = (finished(RunStatus::Done), finished(RunStatus::Failed));
    let committed = match rt
        .journal
        .complete(records, session.take_writes())
        .blocking_recv()
    {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            tracing::error!(bot = %name, "cannot record results, will run the batch again: {e}");
            false
        }
        Err(_) => false,
    };
    if committed && sends > 0 {
        rt.outbox.ring();
    }
    if committed {
        rt.stats.count(&name, done, failed);
        for (outcome, took) in outcomes {
            crate::telemetry::bot_run(&name, outcome, Some(took));
        }
        for (event_id, reply) in replies {
            rt.replies.deliver(event_id, reply);
        }
        for (event_id, answer) in answers {
            rt.http_replies.deliver(event_id, answer);
        }
    }
    committed
}

/// Writes the bot's log lines (and captured stdout/stderr) to the host log,
/// and returns them (capped) to be journaled with the run.
pub fn emit_logs(bot: &str, event: i64, session: &mut Session) -> Vec<RunLog> {
    let mut lines = Vec::with_capacity(session.logs.len());
    for (level, line) in session.logs.drain(..) {
        match level {
            tracing::Level::TRACE => tracing::trace!(bot, event, "{line}"),
            tracing::Level::DEBUG => tracing::debug!(bot, event, "{line}"),
            tracing::Level::INFO => tracing::info!(bot, event, "{line}"),
            tracing::Level::WARN => tracing::warn!(bot, event, "{line}"),
            tracing::Level::ERROR => tracing::error!(bot, event, "{line}"),
        }
        lines.push(RunLog {
            level: level.as_str().to_ascii_lowercase(),
            message: line,
        });
    }
    RunLog::capped(lines)
}
