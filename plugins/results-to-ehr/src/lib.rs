//! results-to-ehr: a finalized exam becomes an ORU^R01 at up to three EHRs,
//! and the exam's file (a DICOM or PDF the modality sent along) goes to
//! the PACS a configurable delay later.
//!
//! Two HTTP commands (journaled before they are answered, so what they
//! queue is durable when the caller hears back):
//!
//! - `POST /bots/results-to-ehr/exams` with the exam as JSON (see
//!   [`exam::parse`]): stores it and queues one ORU per EHR that should
//!   have it (`post_exam`);
//! - `POST /bots/results-to-ehr/exams/{accession}/send?destination=NAME`:
//!   sends the stored exam's latest ORU to that one EHR again
//!   (`resend`).
//!
//! Modules: [`settings`] (checked at load and reload), [`exam`] (the input
//! and what is kept of it), [`lifecycle`] (which status may follow which),
//! [`oru`] (the message), [`added`] (when each EHR joined).

pub mod added;
pub mod exam;
pub mod lifecycle;
pub mod oru;
pub mod settings;

use interlink_sdk::prelude::*;
use serde_json::{Value, json};

use exam::Exam;
use lifecycle::Step;
use settings::{Ehr, Settings};

struct ResultsToEhr;

impl Bot for ResultsToEhr {
    fn manifest() -> Manifest {
        Manifest::new("results-to-ehr", env!("CARGO_PKG_VERSION"))
            .description(
                "Sends finalized exams to up to three EHRs as ORU^R01, and their files to the PACS",
            )
            .subscribe(Subscription::http("/exams"))
    }

    fn check_settings() -> Result<(), String> {
        Settings::load().map(|_| ())
    }

    fn handle(event: Event) -> Result<Reply, BotError> {
        let Event::Http(request) = event else {
            return Ok(Reply::default());
        };
        // check_settings passed before the host let this event through.
        let settings = Settings::load().map_err(BotError::fatal)?;
        let route = request.route().trim_end_matches('/');
        let parts: Vec<&str> = route.split('/').skip(1).collect();
        match (request.method.as_str(), parts.as_slice()) {
            ("POST", ["exams"]) => post_exam(&settings, &request.body),
            ("POST", ["exams", accession, "send"]) => {
                let destination = request.query_param("destination");
                resend(&settings, accession, destination.as_deref())
            }
            (_, ["exams"] | ["exams", _, "send"]) => Ok(Reply::default().http(
                HttpResponse::json(405, json!({"error": "use POST"}).to_string())
                    .header("allow", "POST"),
            )),
            _ => Ok(answer(404, json!({"error": "no such endpoint"}))),
        }
    }
}

export_bot!(ResultsToEhr);

/// Stores a posted exam and queues its ORU for every EHR that should get
/// it now; answers 201 for a new accession number, 200 for an update,
/// with what was queued and what was not (and why); 409 for a status that
/// may not follow the stored one.
fn post_exam(settings: &Settings, body: &[u8]) -> Result<Reply, BotError> {
    let now = host::now_ms();
    let posted = match exam::parse(body, now) {
        Ok(posted) => posted,
        Err(why) => return Ok(answer(400, json!({"error": why}))),
    };
    if posted.payload.is_some() && settings.pacs.is_none() {
        return Ok(answer(
            400,
            json!({"error": "payload_base64: this bot has no pacs_destination to send it to"}),
        ));
    }
    let mut exam = posted.exam;
    let previous = exam::load(&exam.accession);
    match lifecycle::follow(previous.as_ref(), &mut exam) {
        Ok(Step::Change) => {}
        Ok(Step::Repeat) => {
            // A client's retry: the stored exam says the same, and its ORUs
            // and file were queued when it was first posted.
            host::info(&format!(
                "exam {} (repeated): nothing queued again",
                exam.status.as_str()
            ));
            let body = json!({
                "accession": exam.accession,
                "status": exam.status,
                "queued": [],
                "skipped": [],
                "pacs": null,
                "repeat": true,
            });
            return Ok(answer(200, body));
        }
        Err(why) => {
            host::warn(&format!("exam refused: {why}"));
            return Ok(answer(409, json!({"error": why})));
        }
    }
    let stored = match exam::encode(&exam) {
        Ok(stored) => stored,
        Err(why) => return Ok(answer(400, json!({"error": why}))),
    };
    let added = added::update(settings, now);
    exam::store(&exam.accession, stored);

    let mut reply = Reply::default();
    let (mut queued, mut skipped) = (Vec::new(), Vec::new());
    for ehr in &settings.ehrs {
        let Some(status) = exam.status.result_status(ehr.preliminary) else {
            skipped
                .push(json!({"destination": ehr.name, "reason": "takes no preliminary results"}));
            continue;
        };
        if exam.finalized_ms.is_some_and(|at| at < added[&ehr.name]) {
            skipped.push(
                json!({"destination": ehr.name, "reason": "added after the exam was finalized"}),
            );
            continue;
        }
        let (oru, control_id) = oru_for(&exam, settings, ehr, status, now)?;
        reply = reply.send(&ehr.name, oru);
        queued.push(
            json!({"destination": ehr.name, "result_status": status, "control_id": control_id}),
        );
    }

    let mut pacs = Value::Null;
    if let (Some(file), Some(push)) = (posted.payload, &settings.pacs) {
        let not_before_ms = now + push.delay_ms;
        pacs = json!({"destination": push.destination, "name": file.name, "not_before_ms": not_before_ms});
        reply = reply.push(
            Outbound::bytes(&push.destination, file.data)
                .named(&file.name)
                .content_type(&file.content_type)
                .not_before_ms(not_before_ms),
        );
    }

    let control_ids: Vec<&str> = queued
        .iter()
        .filter_map(|q| q["control_id"].as_str())
        .collect();
    host::info(&format!(
        "exam {}: ORU queued [{}], {} skipped{}",
        exam.status.as_str(),
        control_ids.join(", "),
        skipped.len(),
        if pacs.is_null() {
            ""
        } else {
            ", file for the PACS"
        },
    ));
    let body = json!({
        "accession": exam.accession,
        "status": exam.status,
        "queued": queued,
        "skipped": skipped,
        "pacs": pacs,
    });
    let status = if previous.is_none() { 201 } else { 200 };
    Ok(reply.http(HttpResponse::json(status, body.to_string())))
}

/// Sends the stored exam's latest ORU to one EHR again, whenever it joined.
fn resend(
    settings: &Settings,
    accession: &str,
    destination: Option<&str>,
) -> Result<Reply, BotError> {
    let now = host::now_ms();
    added::update(settings, now);
    let Some(exam) = exam::is_accession(accession)
        .then(|| exam::load(accession))
        .flatten()
    else {
        return Ok(answer(
            404,
            json!({"error": format!("no exam with accession {accession}")}),
        ));
    };
    let Some(name) = destination else {
        return Ok(answer(
            400,
            json!({"error": "destination: add ?destination=NAME"}),
        ));
    };
    let Some(ehr) = settings.ehr(name) else {
        return Ok(answer(
            400,
            json!({"error": format!("destination: {name} is not one of ehr_destinations")}),
        ));
    };
    let Some(status) = exam.status.result_status(ehr.preliminary) else {
        return Ok(answer(
            409,
            json!({"error": format!(
                "exam {accession} is waiting for attestation and {name} takes no preliminary results"
            )}),
        ));
    };
    let (oru, control_id) = oru_for(&exam, settings, ehr, status, now)?;
    host::info(&format!("ORU {control_id} sent again to {name}"));
    let body = json!({
        "accession": accession,
        "destination": name,
        "result_status": status,
        "control_id": control_id,
    });
    Ok(Reply::default()
        .send(name, oru)
        .http(HttpResponse::json(200, body.to_string())))
}

/// The ORU for one EHR with a fresh MSH-10 from a durable sequence (unique
/// for the bot's lifetime), and that control id.
fn oru_for(
    exam: &Exam,
    settings: &Settings,
    ehr: &Ehr,
    result_status: &str,
    now_ms: u64,
) -> Result<(String, String), BotError> {
    let control_id = format!("RTE{:09}", host::next_sequence("control-id"));
    let to = oru::Addressing {
        ehr,
        result_status,
        control_id: &control_id,
        now_ms,
    };
    Ok((oru::build(exam, settings, &to)?, control_id))
}

/// A JSON answer.
fn answer(status: u16, body: Value) -> Reply {
    Reply::default().http(HttpResponse::json(status, body.to_string()))
}
