//! `interlink test BOT.wasm INPUT...`: runs a bot offline on fixtures (HL7
//! and other files, HTTP requests, cron ticks: see [`super::fixtures`]),
//! with in-memory state carried from one event to the next and a test
//! clock, and prints what it would do. Each event goes through the
//! worker's own path ([`process`]): a refused reply fails the event and its
//! state writes are dropped, exactly as in the host. `GET`/`HEAD` requests
//! are answered as queries, read-only.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use base64::Engine as _;
use serde::Serialize;

use super::fixtures::{self, Fixture};
use crate::config::Config;
use crate::journal::{HttpAnswer, HttpOptions, Payload, Queued};
use crate::runtime::engine::Limits;
use crate::runtime::http;
use crate::runtime::policy_for;
use crate::runtime::process::process;
use crate::runtime::state::{BotPolicy, NoState, Session};

/// What `interlink test` is asked to do.
pub struct TestRun<'a> {
    pub bot: &'a Path,
    pub inputs: &'a [PathBuf],
    pub config: Option<&'a Path>,
    /// Source name HL7 and file events appear to come from.
    pub source: &'a str,
    /// Where the test clock starts (RFC 3339); default: now.
    pub now: Option<&'a str>,
    pub json: bool,
}

#[derive(Serialize)]
struct Outcome {
    input: String,
    event: u64,
    kind: &'static str,
    ok: bool,
    error: Option<String>,
    ack: Option<String>,
    send: Vec<Sent>,
    http: Option<Answer>,
    logs: Vec<Log>,
    duration_us: u64,
}

/// A message the bot queued: HL7 `message`, or bytes as `text` (when they
/// are UTF-8) or `base64`.
#[derive(Serialize)]
struct Sent {
    destination: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    base64: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    not_before_ms: Option<i64>,
    /// Method, path and headers for an http destination.
    #[serde(skip_serializing_if = "Option::is_none")]
    http: Option<HttpOptions>,
}

impl From<Queued> for Sent {
    fn from(q: Queued) -> Self {
        let mut sent = Sent {
            destination: q.destination,
            message: None,
            text: None,
            base64: None,
            name: None,
            content_type: None,
            not_before_ms: (q.not_before_ms > 0).then_some(q.not_before_ms),
            http: None,
        };
        match q.payload {
            Payload::Hl7(text) => sent.message = Some(text),
            Payload::Bytes {
                data,
                name,
                content_type,
                http,
            } => {
                (sent.text, sent.base64) = text_or_base64(data);
                (sent.name, sent.content_type, sent.http) = (name, content_type, http);
            }
        }
        sent
    }
}

/// The bot's answer to an HTTP request, its body as `text` or `base64`.
#[derive(Serialize)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    base64: Option<String>,
}

impl From<HttpAnswer> for Answer {
    fn from(a: HttpAnswer) -> Self {
        let (text, base64) = text_or_base64(a.body);
        Answer {
            status: a.status,
            headers: a.headers,
            text,
            base64,
        }
    }
}

fn text_or_base64(bytes: Vec<u8>) -> (Option<String>, Option<String>) {
    match String::from_utf8(bytes) {
        Ok(text) => (Some(text), None),
        Err(e) => (
            None,
            Some(base64::engine::general_purpose::STANDARD.encode(e.into_bytes())),
        ),
    }
}

#[derive(Serialize)]
struct Log {
    level: String,
    message: String,
}

pub fn test(run: TestRun<'_>) -> Result<ExitCode> {
    let cfg = match run.config {
        Some(p) => Some(Config::load(p)?),
        None => None,
    };
    let limits = cfg
        .as_ref()
        .map(|c| Limits::new(c.plugins.memory_mb, c.plugins.timeout_ms))
        .unwrap_or(Limits::new(64, 1000));
    let bot = super::check::load(run.bot, limits)
        .with_context(|| format!("{}: invalid bot", run.bot.display()))?;
    // Without a config there are no destinations to check the bot's
    // messages against: any name is shown as sent.
    let policy = Arc::new(match &cfg {
        Some(c) => policy_for(c, bot.name()),
        None => BotPolicy::open(),
    });
    if let Err(why) = bot.check_settings(policy.clone()) {
        eprintln!("{}: settings refused: {why}", bot.name());
        return Ok(ExitCode::FAILURE);
    }
    let fixtures = run
        .inputs
        .iter()
        .map(|input| Ok((input, fixtures::read(input)?)))
        .collect::<Result<Vec<_>>>()?;
    let mut clock = match run.now {
        Some(t) => fixtures::parse_time(t)?,
        None => crate::journal::now_ms(),
    };
    let schedule = bot
        .cron_schedules(cfg.as_ref().and_then(|c| c.bots.get(bot.name())))
        .into_iter()
        .next()
        .unwrap_or_else(|| "test".into());
    let mut session = Session::new(bot.name(), policy.clone(), Box::new(NoState));
    let mut outcomes = Vec::new();
    let mut id = 0;
    for (input, fixtures) in fixtures {
        let name = input
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        for fixture in fixtures {
            id += 1;
            if let Fixture::Tick { at_ms, .. } = fixture {
                clock = at_ms;
            }
            session.clock = Some(clock);
            let query = matches!(&fixture, Fixture::Http(r) if http::is_query(&r.method));
            session.set_query(query);
            let event = fixture.to_event(id, clock, run.source, &name, &schedule);
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
            let ack = processed.ack.clone();
            let duration_us = processed.duration.as_micros() as u64;
            let (send, http, error) = if query {
                match http::query_answer(processed) {
                    Ok(answer) => (Vec::new(), Some(answer), None),
                    Err(failure) => (Vec::new(), None, Some(failure.to_string())),
                }
            } else {
                match processed.result {
                    Ok(send) => (send, processed.http, None),
                    Err(failure) => (Vec::new(), None, Some(failure.to_string())),
                }
            };
            outcomes.push(Outcome {
                input: input.display().to_string(),
                event: id as u64,
                kind: fixture.kind(),
                ok: error.is_none(),
                error,
                ack,
                send: send.into_iter().map(Sent::from).collect(),
                http: http.map(Answer::from),
                logs,
                duration_us,
            });
        }
    }
    if run.json {
        println!("{}", serde_json::to_string_pretty(&outcomes)?);
    } else {
        for o in &outcomes {
            print_text(o);
        }
    }
    let failed = outcomes.iter().filter(|o| !o.ok).count();
    if !run.json {
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
    println!(
        "== {} event {} ({}, {} us)",
        o.input, o.event, o.kind, o.duration_us
    );
    for l in &o.logs {
        println!("   log {:5} {}", l.level, l.message);
    }
    match &o.error {
        Some(e) => println!("   FAILED: {e}"),
        None => println!("   ok"),
    }
    let lines = |text: &str| {
        for seg in text.split(['\r', '\n']).filter(|s| !s.is_empty()) {
            println!("     {seg}");
        }
    };
    if let Some(ack) = &o.ack {
        println!("   ack:");
        lines(ack);
    }
    for s in &o.send {
        let mut about = Vec::new();
        if let Some(n) = &s.name {
            about.push(format!("file {n}"));
        }
        if let Some(t) = s.not_before_ms {
            about.push(format!("not before {t}"));
        }
        if let Some(h) = &s.http {
            let method = h.method.as_deref().unwrap_or("the destination's method");
            about.push(
                format!("{method} {}", h.path.as_deref().unwrap_or(""))
                    .trim_end()
                    .to_string(),
            );
            about.extend(h.headers.iter().map(|(k, v)| format!("{k}: {v}")));
        }
        let about = match about.is_empty() {
            true => String::new(),
            false => format!(" ({})", about.join(", ")),
        };
        println!("   send to {}{about}:", s.destination);
        match (&s.message, &s.text, &s.base64) {
            (Some(text), _, _) | (_, Some(text), _) => lines(text),
            (_, _, Some(b64)) => println!("     (base64) {b64}"),
            _ => {}
        }
    }
    if let Some(a) = &o.http {
        println!("   http {}:", a.status);
        for (k, v) in &a.headers {
            println!("     {k}: {v}");
        }
        match (&a.text, &a.base64) {
            (Some(text), _) => lines(text),
            (_, Some(b64)) => println!("     (base64) {b64}"),
            _ => {}
        }
    }
}
