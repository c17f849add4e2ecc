//! PV1 → a FHIR R4 `Encounter` about the patient, sent as a conditional
//! update on its visit number (`PUT Encounter?identifier=system|value`).
//! A01 admit makes it `in-progress`, A04 register `arrived`, A03
//! discharge `finished` (with the discharge time); A08 changes details and
//! keeps the status. Like the Patient, the last Encounter sent is kept
//! (key-value `encounter/<system>|<value>`) so that a sparse A03 or A08
//! keeps what it does not mention.

use interlink_sdk::hl7::Message;
use serde_json::{Value, json};

use crate::fhir::{Change, Id, date_time, last_sent, remember, text};
use crate::settings::Settings;

/// What the last Encounter sent is kept under.
const KIND: &str = "encounter";

/// What the event does to the encounter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Admit,
    Register,
    Update,
    Discharge,
}

/// The visit the message is about (PV1-19.1), if it names one, in the
/// `visit_system`.
pub fn visit_id(msg: &Message, settings: &Settings) -> Option<Id> {
    Some(Id {
        system: settings.visit_system.clone(),
        value: text(msg, "PV1-19.1")?,
    })
}

/// The Encounter for `msg`, merged with the last one sent for `visit`; it
/// is kept as the new last one.
pub fn build(msg: &Message, settings: &Settings, event: Event, visit: &Id, patient: &Id) -> Value {
    let mut encounter = last_sent(KIND, visit);
    encounter["resourceType"] = json!("Encounter");
    encounter["identifier"] = json!([visit.to_json()]);
    let status = match event {
        Event::Admit => "in-progress",
        Event::Register => "arrived",
        Event::Discharge => "finished",
        // An update says nothing about the status: keep it.
        Event::Update => encounter["status"].as_str().unwrap_or("unknown"),
    };
    encounter["status"] = json!(status);
    // `class` is required: keep the last one when PV1-2 is empty.
    match text(msg, "PV1-2").map(|c| class(&c)) {
        Some(c) => encounter["class"] = c,
        None if encounter.get("class").is_none() => encounter["class"] = class(""),
        None => {}
    }
    encounter["subject"] = patient.reference("Patient");
    let mut period = encounter
        .get("period")
        .cloned()
        .unwrap_or_else(|| json!({}));
    // PV1-44 admit and PV1-45 discharge date/time.
    let time = |field: &str| {
        Change::of(msg, field, || {
            text(msg, &format!("{field}.1"))
                .and_then(|t| date_time(&t, settings))
                .map(Value::from)
        })
    };
    time("PV1-44").apply(&mut period, "start");
    time("PV1-45").apply(&mut period, "end");
    match period.as_object().is_some_and(|p| !p.is_empty()) {
        true => encounter["period"] = period,
        false => Change::Clear.apply(&mut encounter, "period"),
    }
    Change::of(msg, "PV1-3", || location(msg)).apply(&mut encounter, "location");
    remember(KIND, visit, &encounter);
    encounter
}

/// HL7 table 0004 (patient class) → a v3 `ActCode` coding; ambulatory
/// when unknown.
fn class(code: &str) -> Value {
    let (code, display) = match code {
        "I" | "B" => ("IMP", "inpatient encounter"),
        "E" => ("EMER", "emergency"),
        "P" => ("PRENC", "pre-admission"),
        _ => ("AMB", "ambulatory"),
    };
    json!({
        "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
        "code": code,
        "display": display,
    })
}

/// PV1-3 (point of care, room, bed) as the encounter's location, by
/// name: `ICU 3 A`.
fn location(msg: &Message) -> Option<Value> {
    let parts: Vec<String> = ["1", "2", "3"]
        .iter()
        .filter_map(|c| text(msg, &format!("PV1-3.{c}")))
        .collect();
    (!parts.is_empty()).then(|| json!([{"location": {"display": parts.join(" ")}}]))
}
