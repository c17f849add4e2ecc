//! Shadow runs: a candidate version of a bot replayed on the events the
//! live bot handled, compared with what the live bot did. Read-only: the
//! journal is read in one snapshot on a read-only connection, the
//! candidate's state writes stay in memory, nothing is sent.
//!
//! [`select`] picks the events, [`state`] gives the candidate the live
//! bot's state as it was at the window's start, each event runs through
//! [`process`] (the workers' own path, with `now-ms` answering the event's
//! original time), [`compare`] (with [`diff`] for HL7) judges it, and
//! [`report`] sums it up. `interlink shadow` and `POST
//! /api/v1/bots/{name}/shadow` both call [`run`].

pub mod compare;
pub mod diff;
pub mod report;
pub mod select;
pub mod state;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::instant::rfc3339;
use crate::journal::{Reader, StoredEvent};
use crate::runtime::bot::LoadedBot;
use crate::runtime::process::process;
use crate::runtime::state::{BotPolicy, Session};
use compare::Verdict;
use diff::IgnorePath;
use report::{Candidate, EventDifference, Report, Summary};
use select::{Events, Selection};

/// Differing events listed in full unless asked otherwise.
pub const DEFAULT_DETAILS: usize = 20;

/// A shadow run's options as a user gives them (command line or query
/// string); [`Options::parse`] checks them, naming the option at fault.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// A duration back from now (`24h`); the default when `from` is absent.
    pub since: Option<String>,
    /// RFC 3339 or ms since the epoch.
    pub from: Option<String>,
    /// RFC 3339 or ms since the epoch; default now.
    pub to: Option<String>,
    pub source: Option<String>,
    pub message_type: Option<String>,
    pub limit: Option<usize>,
    /// More paths to ignore (besides MSH-7 and MSH-10), each possibly a
    /// comma-separated list.
    pub ignore: Vec<String>,
    /// Differing events listed in full (default [`DEFAULT_DETAILS`]).
    pub details: Option<usize>,
}

/// Checked options.
pub struct Plan {
    pub selection: Selection,
    pub ignore: Vec<IgnorePath>,
    pub details: usize,
}

/// A time option: RFC 3339 or ms since the epoch.
fn time(name: &str, text: &str) -> Result<i64> {
    crate::instant::parse(text).ok_or_else(|| {
        anyhow::anyhow!(
            "{name}: {text:?} is not an RFC 3339 time (2026-11-24T09:00:00Z) or ms since the epoch"
        )
    })
}

impl Options {
    /// The plan these options ask for, with `now` as the current time.
    pub fn parse(&self, now: i64) -> Result<Plan> {
        let given = |v: &Option<String>| v.clone().filter(|v| !v.trim().is_empty());
        let (since, from, to) = (given(&self.since), given(&self.from), given(&self.to));
        if since.is_some() && from.is_some() {
            bail!("since: give either since or from, not both");
        }
        let to_ms = to.map(|t| time("to", &t)).transpose()?.unwrap_or(now + 1);
        let from_ms = match (since, from) {
            (_, Some(f)) => time("from", &f)?,
            (s, None) => {
                let back = select::parse_duration(s.as_deref().unwrap_or("24h"))
                    .map_err(|e| anyhow::anyhow!("since: {e}"))?;
                now - back
            }
        };
        if from_ms >= to_ms {
            bail!("from: the window must start before it ends");
        }
        let mut ignore = IgnorePath::defaults();
        for path in self.ignore.iter().flat_map(|p| p.split(',')) {
            let path = path.trim();
            if !path.is_empty() {
                ignore.push(path.parse().map_err(|e| anyhow::anyhow!("ignore: {e}"))?);
            }
        }
        if self.limit == Some(0) {
            bail!("limit: must be at least 1");
        }
        Ok(Plan {
            selection: Selection {
                from_ms,
                to_ms,
                source: given(&self.source),
                message_type: given(&self.message_type),
                limit: self.limit,
            },
            ignore,
            details: self.details.unwrap_or(DEFAULT_DETAILS),
        })
    }
}

/// What `now-ms` answers while replaying `e`: when it was received (for a
/// cron tick, the time it was scheduled for).
fn clock_of(e: &StoredEvent) -> i64 {
    match e.kind.as_str() {
        "tick" => std::str::from_utf8(&e.body)
            .ok()
            .and_then(|t| t.parse().ok())
            .unwrap_or(e.received_at_ms),
        _ => e.received_at_ms,
    }
}

/// Why a shadow run was not made: the candidate refuses the settings the
/// configuration gives the live bot (the API answers 422 for it).
#[derive(Debug, thiserror::Error)]
#[error("the candidate refuses the settings of [bots.{bot}]: {why}")]
pub struct RefusedSettings {
    pub bot: String,
    pub why: String,
}

/// Replays `plan`'s events of the live bot `bot` from the journal
/// `reader` reads through `candidate` (granted `policy`: the live bot's
/// settings and destinations) and reports how they compare. Fails with
/// [`RefusedSettings`] when the candidate refuses those settings.
pub fn run(
    mut reader: Reader,
    bot: &str,
    candidate: &LoadedBot,
    policy: Arc<BotPolicy>,
    plan: Plan,
) -> Result<Report> {
    if let Err(why) = candidate.check_settings(policy.clone()) {
        return Err(RefusedSettings {
            bot: bot.to_string(),
            why: why.to_string(),
        }
        .into());
    }
    let started = Instant::now();
    reader.begin_snapshot()?;
    let reader = Arc::new(Mutex::new(reader));
    let mut events = Events::new(reader.clone(), bot, plan.selection.clone())?.peekable();
    let before = match events.peek() {
        Some(Ok(first)) => reader
            .lock()
            .expect("reader lock")
            .state_before(bot, first.handled.event.id)
            .context("cannot read the bot's state history (state_undo)")?,
        _ => Default::default(),
    };
    let base = state::WindowState {
        reader: reader.clone(),
        before,
    };
    let mut session = Session::new(bot, policy.clone(), Box::new(base));
    let mut summary = Summary::default();
    let mut differences = Vec::new();
    let mut more = 0;
    for recorded in events {
        let recorded = recorded?;
        let h = recorded.handled;
        session.clock = Some(clock_of(&h.event));
        let (event_id, kind, source, received_at_ms) = (
            h.event.id,
            h.event.kind.clone(),
            h.event.source.clone(),
            h.event.received_at_ms,
        );
        let (processed, continued) = process(candidate, &policy, h.event, session);
        session = continued;
        session.logs.clear();
        if !recorded.compared {
            continue;
        }
        let (verdict, candidate_error, live_error, messages) = match (h.outcome, processed.result) {
            (Ok(()), Ok(sent)) => {
                let changes = compare::messages(&recorded.live, &sent, &plan.ignore);
                match changes.is_empty() {
                    true => (Verdict::Same, None, None, changes),
                    false => (Verdict::Different, None, None, changes),
                }
            }
            (Ok(()), Err(failure)) => (
                Verdict::NewFailure,
                Some(failure.to_string()),
                None,
                Vec::new(),
            ),
            (Err(why), Ok(_)) => (Verdict::FixedFailure, None, Some(why), Vec::new()),
            (Err(_), Err(_)) => (Verdict::Same, None, None, Vec::new()),
        };
        summary.count(verdict);
        if verdict == Verdict::Same {
            continue;
        }
        if differences.len() >= plan.details {
            more += 1;
            continue;
        }
        differences.push(EventDifference {
            event_id,
            kind,
            source,
            message_type: h.message_type,
            control_id: h.control_id,
            received_at: rfc3339(received_at_ms),
            verdict,
            live_error,
            candidate_error,
            messages,
        });
    }
    Ok(Report {
        bot: bot.to_string(),
        candidate: Candidate {
            name: candidate.name().to_string(),
            version: candidate.version().to_string(),
        },
        from: rfc3339(plan.selection.from_ms),
        to: rfc3339(plan.selection.to_ms),
        ignored: plan.ignore.iter().map(ToString::to_string).collect(),
        summary,
        differences,
        more_differences: more,
        duration_ms: started.elapsed().as_millis() as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_default_to_the_last_day_and_name_what_is_wrong() {
        let now = 1_000_000_000_000;
        let plan = Options::default().parse(now).unwrap();
        assert_eq!(plan.selection.from_ms, now - 86_400_000);
        assert_eq!(plan.selection.to_ms, now + 1);
        assert_eq!(plan.ignore.len(), 2);
        let opts = Options {
            from: Some("2026-11-24T09:00:00Z".into()),
            to: Some("2026-11-24T10:00:00Z".into()),
            ignore: vec!["PID-5.2,ZPR".into()],
            ..Options::default()
        };
        let plan = opts.parse(now).unwrap();
        assert_eq!(plan.selection.to_ms - plan.selection.from_ms, 3_600_000);
        assert_eq!(plan.ignore.len(), 4);
        let err = |o: Options| o.parse(now).err().unwrap().to_string();
        let bad_since = Options {
            since: Some("yesterday".into()),
            ..Options::default()
        };
        assert!(err(bad_since).starts_with("since:"));
        let both = Options {
            since: Some("1h".into()),
            from: Some("0".into()),
            ..Options::default()
        };
        assert!(err(both).starts_with("since:"));
        let bad_ignore = Options {
            ignore: vec!["pid".into()],
            ..Options::default()
        };
        assert!(err(bad_ignore).starts_with("ignore:"));
        let backwards = Options {
            from: Some("2026-11-24T10:00:00Z".into()),
            to: Some("2026-11-24T09:00:00Z".into()),
            ..Options::default()
        };
        assert!(err(backwards).starts_with("from:"));
    }
}
