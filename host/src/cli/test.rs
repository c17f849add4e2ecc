//! `interlink test BOT.wasm INPUT...`: runs a bot offline, one event per
//! HL7 message (or per non-HL7 file), with in-memory state carried from one
//! event to the next, and prints what it would do. Each event goes through
//! the worker's own path ([`process`]): a refused reply fails the event
//! and its state writes are dropped, exactly as in the host.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::config::Config;
use crate::journal::StoredEvent;
use crate::runtime::engine::Limits;
use crate::runtime::policy_for;
use crate::runtime::process::process;
use crate::runtime::state::{BotPolicy, NoState, Session};

#[derive(Serialize)]
struct Outcome {
    input: String,
    event: u64,
    ok: bool,
    error: Option<String>,
    ack: Option<String>,
    send: Vec<Sent>,
    logs: Vec<Log>,
    duration_us: u64,
}

#[derive(Serialize)]
struct Sent {
    destination: String,
    message: String,
}

#[derive(Serialize)]
struct Log {
    level: String,
    message: String,
}

/// The events an input file stands for, as the journal would hold them: one
/// `hl7` event per message, or one `file` event for anything else.
fn events_of(path: &Path, source: &str, first_id: i64) -> Result<Vec<StoredEvent>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let event = |id, kind: &str, body| StoredEvent {
        id,
        kind: kind.to_string(),
        source: source.to_string(),
        name: Some(name.clone()),
        body,
        received_at_ms: crate::journal::now_ms(),
    };
    let messages = std::str::from_utf8(&bytes)
        .map(interlink_sdk::hl7::split_messages)
        .unwrap_or_default();
    if messages.is_empty() {
        return Ok(vec![event(first_id, "file", bytes.clone())]);
    }
    Ok(messages
        .into_iter()
        .zip(first_id..)
        .map(|(m, id)| event(id, "hl7", m.as_bytes().to_vec()))
        .collect())
}

pub fn test(
    bot_path: &Path,
    inputs: &[std::path::PathBuf],
    config: Option<&Path>,
    source: &str,
    json: bool,
) -> Result<ExitCode> {
    let cfg = match config {
        Some(p) => Some(Config::load(p)?),
        None => None,
    };
    let limits = cfg
        .as_ref()
        .map(|c| Limits::new(c.plugins.memory_mb, c.plugins.timeout_ms))
        .unwrap_or(Limits::new(64, 1000));
    let bot = super::check::load(bot_path, limits)
        .with_context(|| format!("{}: invalid bot", bot_path.display()))?;
    // Without a config there are no destinations to check the bot's
    // messages against: any name is shown as sent.
    let policy = Arc::new(match &cfg {
        Some(c) => policy_for(c, bot.name()),
        None => BotPolicy::open(),
    });
    let mut session = Session::new(bot.name(), policy.clone(), Box::new(NoState));
    let mut outcomes = Vec::new();
    let mut next_id = 1;
    for input in inputs {
        for event in events_of(input, source, next_id)? {
            let id = event.id;
            next_id = id + 1;
            let (processed, continued) = process(&bot, &policy, event, session);
            session = continued;
            let logs = session
                .logs
                .drain(..)
                .map(|(level, message)| Log {
                    level: level.as_str().to_ascii_lowercase(),
                    message,
                })
                .collect();
            let (send, error) = match processed.result {
                Ok(send) => (send, None),
                Err(failure) => (Vec::new(), Some(failure.to_string())),
            };
            outcomes.push(Outcome {
                input: input.display().to_string(),
                event: id as u64,
                ok: error.is_none(),
                error,
                ack: processed.ack,
                send: send
                    .into_iter()
                    .map(|q| Sent {
                        destination: q.destination,
                        message: q.message,
                    })
                    .collect(),
                logs,
                duration_us: processed.duration.as_micros() as u64,
            });
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&outcomes)?);
    } else {
        for o in &outcomes {
            print_text(o);
        }
    }
    let failed = outcomes.iter().filter(|o| !o.ok).count();
    if !json {
        println!(
            "{} events, {} ok, {} failed",
            outcomes.len(),
            outcomes.len() - failed,
            failed
        );
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn print_text(o: &Outcome) {
    println!("== {} event {} ({} us)", o.input, o.event, o.duration_us);
    for l in &o.logs {
        println!("   log {:5} {}", l.level, l.message);
    }
    match &o.error {
        Some(e) => println!("   FAILED: {e}"),
        None => println!("   ok"),
    }
    if let Some(ack) = &o.ack {
        println!("   ack:");
        for seg in ack.split(['\r', '\n']).filter(|s| !s.is_empty()) {
            println!("     {seg}");
        }
    }
    for s in &o.send {
        println!("   send to {}:", s.destination);
        for seg in s.message.split(['\r', '\n']).filter(|s| !s.is_empty()) {
            println!("     {seg}");
        }
    }
}
