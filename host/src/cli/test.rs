//! `interlink test BOT.wasm INPUT...`: runs a bot offline, one event per
//! HL7 message (or per non-HL7 file), with in-memory state carried from one
//! event to the next, and prints what it would do.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::config::Config;
use crate::journal::Queued;
use crate::runtime::bindings::{Event, File, Hl7Message, Level};
use crate::runtime::engine::Limits;
use crate::runtime::policy_for;
use crate::runtime::state::{NoState, Session};

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
    level: &'static str,
    message: String,
}

fn level_name(l: Level) -> &'static str {
    match l {
        Level::Trace => "trace",
        Level::Debug => "debug",
        Level::Info => "info",
        Level::Warn => "warn",
        Level::Error => "error",
    }
}

/// The events an input file stands for.
fn events_of(path: &Path, source: &str, first_id: u64) -> Result<Vec<Event>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let messages = std::str::from_utf8(&bytes)
        .map(interlink_sdk::hl7::split_messages)
        .unwrap_or_default();
    if messages.is_empty() {
        return Ok(vec![Event::File(File {
            id: first_id,
            source: source.to_string(),
            name,
            contents: bytes,
            received_at_ms: crate::journal::now_ms() as u64,
        })]);
    }
    Ok(messages
        .into_iter()
        .zip(first_id..)
        .map(|(m, id)| {
            Event::Hl7(Hl7Message {
                id,
                source: source.to_string(),
                raw: m.to_string(),
                received_at_ms: crate::journal::now_ms() as u64,
                origin_file: Some(name.clone()),
            })
        })
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
    let policy = Arc::new(
        cfg.as_ref()
            .map(|c| policy_for(c, bot.name()))
            .unwrap_or_default(),
    );
    let mut session = Session::new(bot.name(), policy.clone(), Box::new(NoState));
    let mut outcomes = Vec::new();
    let mut next_id = 1;
    for input in inputs {
        for event in events_of(input, source, next_id)? {
            next_id += 1;
            let inv = bot.handle(&event, session);
            session = inv.session;
            let logs = session
                .logs
                .drain(..)
                .map(|(l, m)| Log {
                    level: level_name(l),
                    message: m,
                })
                .collect();
            let mut outcome = Outcome {
                input: input.display().to_string(),
                event: next_id - 1,
                ok: false,
                error: None,
                ack: None,
                send: Vec::new(),
                logs,
                duration_us: inv.duration.as_micros() as u64,
            };
            match inv.result {
                Ok(reply) => {
                    session.keep_event();
                    outcome.ok = true;
                    outcome.ack = reply.ack;
                    // Without a config there are no destinations to check
                    // against: show what the bot sends.
                    let accepted = match cfg {
                        Some(_) => policy.accept(reply.send),
                        None => Ok(reply
                            .send
                            .into_iter()
                            .map(|o| Queued {
                                destination: o.destination,
                                message: o.message,
                                order_hash: 0,
                            })
                            .collect()),
                    };
                    match accepted {
                        Ok(send) => {
                            outcome.send = send
                                .into_iter()
                                .map(|q| Sent {
                                    destination: q.destination,
                                    message: q.message,
                                })
                                .collect()
                        }
                        Err(refused) => {
                            outcome.ok = false;
                            outcome.error = Some(refused.to_string());
                        }
                    }
                }
                Err(f) => {
                    session.drop_event();
                    outcome.error = Some(f.to_string());
                }
            }
            outcomes.push(outcome);
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
