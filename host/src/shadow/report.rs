//! A shadow run's report: the summary counts, the first differences in
//! full, as JSON (`--json`, the HTTP API) or as text for a terminal.

use std::fmt::Write as _;

use serde::Serialize;

use super::compare::{Change, MessageChange, Verdict};

/// What a shadow run found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The live bot the candidate was compared with.
    pub bot: String,
    pub candidate: Candidate,
    /// RFC 3339.
    pub from: String,
    pub to: String,
    /// Paths left out of the comparison.
    pub ignored: Vec<String>,
    pub summary: Summary,
    /// The first differing events, in event order.
    pub differences: Vec<EventDifference>,
    /// Differing events beyond those listed.
    pub more_differences: u64,
    pub duration_ms: u64,
}

/// The candidate bot's manifest name and version.
#[derive(Debug, Clone, Serialize)]
pub struct Candidate {
    pub name: String,
    pub version: String,
}

/// How many events came out which way; `compared` is the sum of the rest.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub compared: u64,
    pub same: u64,
    pub differing: u64,
    pub new_failures: u64,
    pub fixed_failures: u64,
}

impl Summary {
    pub fn count(&mut self, verdict: Verdict) {
        self.compared += 1;
        *match verdict {
            Verdict::Same => &mut self.same,
            Verdict::Different => &mut self.differing,
            Verdict::NewFailure => &mut self.new_failures,
            Verdict::FixedFailure => &mut self.fixed_failures,
        } += 1;
    }
}

/// One event that did not come out the same.
#[derive(Debug, Clone, Serialize)]
pub struct EventDifference {
    pub event_id: i64,
    /// `hl7`, `file`, `tick` or `http`.
    pub kind: String,
    pub source: String,
    /// MSH-9.
    #[serde(rename = "type")]
    pub message_type: Option<String>,
    /// MSH-10.
    pub control_id: Option<String>,
    /// RFC 3339.
    pub received_at: String,
    pub verdict: Verdict,
    /// Why the live bot's run failed (a fixed failure).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub live_error: Option<String>,
    /// Why the candidate failed (a new failure).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub candidate_error: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<MessageChange>,
}

impl Report {
    /// Whether any event came out differently (exit code 1).
    pub fn differs(&self) -> bool {
        self.summary.compared != self.summary.same
    }

    /// The report for a terminal.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let s = &self.summary;
        let _ = writeln!(
            out,
            "shadow of {} by candidate {} {} over {} .. {} (ignoring {})",
            self.bot,
            self.candidate.name,
            self.candidate.version,
            self.from,
            self.to,
            self.ignored.join(", ")
        );
        for d in &self.differences {
            let what = d
                .message_type
                .iter()
                .chain(&d.control_id)
                .cloned()
                .collect::<Vec<_>>()
                .join(" ");
            let verdict = match d.verdict {
                Verdict::Same => "same",
                Verdict::Different => "different",
                Verdict::NewFailure => "NEW FAILURE",
                Verdict::FixedFailure => "fixed failure",
            };
            let _ = writeln!(
                out,
                "== event {} ({} from {}{}{}, {}): {verdict}",
                d.event_id,
                d.kind,
                d.source,
                if what.is_empty() { "" } else { ", " },
                what,
                d.received_at
            );
            if let Some(e) = &d.live_error {
                let _ = writeln!(out, "   live bot: {e}");
            }
            if let Some(e) = &d.candidate_error {
                let _ = writeln!(out, "   candidate: {e}");
            }
            for m in &d.messages {
                let change = match m.change {
                    Change::Different => "different",
                    Change::Missing => "missing (the candidate does not send it)",
                    Change::Extra => "extra (only the candidate sends it)",
                };
                let _ = writeln!(
                    out,
                    "   message {} to {}: {change}",
                    m.index + 1,
                    m.destination
                );
                for f in &m.fields {
                    let show = |v: &Option<String>| match v {
                        Some(v) => format!("{v:?}"),
                        None => "(none)".into(),
                    };
                    let _ = writeln!(
                        out,
                        "     {:<12} {} -> {}",
                        f.path,
                        show(&f.old),
                        show(&f.new)
                    );
                }
            }
        }
        if self.more_differences > 0 {
            let _ = writeln!(
                out,
                "... and {} more differing events",
                self.more_differences
            );
        }
        let _ = writeln!(
            out,
            "{} events compared: {} same, {} differing, {} new failures, {} fixed failures ({} ms)",
            s.compared, s.same, s.differing, s.new_failures, s.fixed_failures, self.duration_ms
        );
        out
    }
}
