//! `interlink events` and `interlink replay`: read the journal and re-queue
//! failed work, also while the host is running (the host notices a replay
//! within a second).

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;

use crate::config::{Config, JournalBackend};
use crate::journal::{self, EventFilter, Journal, Reader};

/// A read connection to the configured journal.
fn reader(config: Option<&Path>) -> Result<Reader> {
    journal::open_reader(&Config::load_or_default(config)?.journal)
}

/// Runs one write against the configured journal (which must exist) and
/// waits for its commit.
fn write<T>(
    config: Option<&Path>,
    op: impl FnOnce(&Journal) -> tokio::sync::oneshot::Receiver<crate::journal::Result<T>>,
) -> Result<T> {
    let cfg = Config::load_or_default(config)?.journal;
    if cfg.backend == JournalBackend::Sqlite {
        anyhow::ensure!(cfg.path.exists(), "no journal at {}", cfg.path.display());
    }
    let journal = journal::open_configured(&cfg)?;
    Ok(op(&journal)
        .blocking_recv()
        .map_err(|_| anyhow::anyhow!("journal writer stopped"))??)
}

pub fn list(
    config: Option<&Path>,
    failed: bool,
    unrouted: bool,
    limit: usize,
    json: bool,
) -> Result<ExitCode> {
    let reader = reader(config)?;
    let filter = match (failed, unrouted) {
        (true, _) => EventFilter::Failed,
        (_, true) => EventFilter::Unrouted,
        _ => EventFilter::All,
    };
    let events = reader.events(filter, limit)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&events)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:>8}  {:<19}  {:<4}  {:<10}  {:<16}  {:<20}  runs",
        "id", "received (UTC)", "kind", "source", "type", "control id / file"
    );
    for e in &events {
        let runs = if e.runs.is_empty() {
            "unrouted".to_string()
        } else {
            e.runs
                .iter()
                .map(|r| match &r.error {
                    Some(err) => {
                        format!("{}: {} ({} attempts): {err}", r.bot, r.status, r.attempts)
                    }
                    None => format!("{}: {}", r.bot, r.status),
                })
                .collect::<Vec<_>>()
                .join("; ")
        };
        let ts = interlink_sdk::hl7::format_timestamp(e.received_at_ms as u64);
        let when = format!(
            "{}-{}-{} {}:{}:{}",
            &ts[..4],
            &ts[4..6],
            &ts[6..8],
            &ts[8..10],
            &ts[10..12],
            &ts[12..14]
        );
        let what = e.control_id.clone().or(e.name.clone()).unwrap_or_default();
        println!(
            "{:>8}  {:<19}  {:<4}  {:<10}  {:<16}  {:<20}  {runs}",
            e.id,
            when,
            e.kind,
            e.source,
            e.message_type.as_deref().unwrap_or("-"),
            what
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn outbox(config: Option<&Path>, dead: bool, limit: usize, json: bool) -> Result<ExitCode> {
    let reader = reader(config)?;
    let rows = reader.outbox(dead, limit)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:>8}  {:>8}  {:<16}  {:<12}  {:<7}  {:>8}  last error",
        "id", "event", "bot", "destination", "status", "attempts"
    );
    for r in &rows {
        println!(
            "{:>8}  {:>8}  {:<16}  {:<12}  {:<7}  {:>8}  {}",
            r.id,
            r.event_id,
            r.bot,
            r.destination,
            r.status,
            r.attempts,
            match (r.not_before_ms, &r.last_error) {
                (_, Some(error)) => error.clone(),
                (Some(t), None) if r.status == "pending" => {
                    format!(
                        "(not before {})",
                        interlink_sdk::hl7::format_timestamp(t as u64)
                    )
                }
                _ => String::new(),
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn resend(config: Option<&Path>, id: i64) -> Result<ExitCode> {
    let n = write(config, |j| j.outbox_requeue(id))?;
    if n == 0 {
        eprintln!("outbox message {id} is not in the dead-letter list");
        return Ok(ExitCode::FAILURE);
    }
    println!("outbox message {id} is queued for delivery again");
    Ok(ExitCode::SUCCESS)
}

pub fn replay(config: Option<&Path>, event_id: i64, bot: Option<String>) -> Result<ExitCode> {
    let n = write(config, |j| j.replay(event_id, bot.clone()))?;
    if n == 0 {
        match bot {
            Some(_) => eprintln!("event {event_id} does not exist"),
            None => eprintln!(
                "event {event_id} has no failed runs (use --bot NAME to re-run a bot anyway)"
            ),
        }
        return Ok(ExitCode::FAILURE);
    }
    println!("queued {n} run(s) of event {event_id} again");
    Ok(ExitCode::SUCCESS)
}
