//! Reading an ADT message into what the worklist needs: which encounter it
//! is about, what it does to it, when it happened, and the patient and
//! visit details it carries.

use interlink_sdk::hl7::{Message, Timestamp};
use interlink_sdk::prelude::BotError;

/// What an ADT trigger event does to an encounter.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Change {
    /// A01 admit, A04 register, A05 pre-admit: the encounter is open.
    Open,
    /// A08 update patient information, A02 transfer: details only.
    Update,
    /// A03 discharge: closed.
    Discharge,
    /// A13 cancel discharge: open again.
    CancelDischarge,
    /// A11 cancel admit: removed from the worklist.
    CancelAdmit,
}

/// One ADT message about one encounter.
#[derive(Debug)]
pub struct AdtEvent {
    pub key: String,
    pub change: Change,
    /// When it happened (EVN-2, else MSH-7), in ms since the Unix epoch.
    pub at_ms: i64,
    pub details: Details,
}

/// One A40 merge: the encounters of `prior_id` belong to `patient`.
#[derive(Debug)]
pub struct Merge {
    pub prior_id: String,
    pub at_ms: i64,
    pub details: Details,
}

/// What a message says about the patient and the visit. `None`: the message
/// leaves the value as it is (the field is empty); `Some("")`: it deletes
/// it (the field is HL7's null `""`).
#[derive(Debug, Default, Clone)]
pub struct Details {
    pub patient_id: Option<String>,
    /// XPN family^given^middle, which is also DICOM's PN.
    pub patient_name: Option<String>,
    pub birth_date: Option<String>,
    pub sex: Option<String>,
    pub visit_number: Option<String>,
    /// PV1-3 point of care^room^bed.
    pub location: Option<String>,
    /// PV1-7 family^given.
    pub attending_doctor: Option<String>,
    /// PV1-44 admit time, ms since the Unix epoch.
    pub admit_ms: Option<i64>,
}

/// What an ADT message is about: one encounter, or A40 merges of patients.
pub enum Adt {
    Encounter(AdtEvent),
    Merge(Vec<Merge>),
}

impl Adt {
    /// Reads an ADT message; `zone` is where times without an offset are
    /// local. `current_id` maps a patient id (PID-3.1 of an encounter
    /// event) to the id it was merged into, if any, so that a message for
    /// a merged-away id reaches the surviving patient's encounters.
    pub fn read(
        msg: &Message,
        zone: &str,
        received_at_ms: i64,
        current_id: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Adt, BotError> {
        let trigger = msg
            .get("MSH-9.2")
            .filter(|t| !t.is_empty())
            .or_else(|| msg.get("EVN-1"))
            .unwrap_or_default();
        let at_ms = ["EVN-2.1", "MSH-7.1"]
            .iter()
            .find_map(|path| time(msg, path, zone).transpose())
            .transpose()?
            .unwrap_or(received_at_ms);
        let change = match trigger.as_ref() {
            "A01" | "A04" | "A05" => Change::Open,
            "A02" | "A08" => Change::Update,
            "A03" => Change::Discharge,
            "A13" => Change::CancelDischarge,
            "A11" => Change::CancelAdmit,
            "A40" => return Ok(Adt::Merge(merges(msg, zone, at_ms)?)),
            other => return Err(BotError::fatal(format!("ADT^{other} is not handled"))),
        };
        let mut details = details(msg, 1, zone)?;
        let given_id = details.patient_id.as_deref().filter(|id| !id.is_empty());
        if let Some(survivor) = given_id.and_then(current_id) {
            details.patient_id = Some(survivor);
        }
        Ok(Adt::Encounter(AdtEvent {
            key: encounter_key(msg, &details)?,
            change,
            at_ms,
            details,
        }))
    }
}

/// PV1-19 (the visit number), else the patient id (PID-3.1, as `details`
/// has it: merges followed) with PV1-44 (the admit time).
fn encounter_key(msg: &Message, details: &Details) -> Result<String, BotError> {
    if let Some(visit) = msg.value("PV1-19.1") {
        return Ok(format!("visit:{visit}"));
    }
    match (details.patient_id.as_deref(), msg.value("PV1-44.1")) {
        (Some(patient), Some(admit)) if !patient.is_empty() && details.admit_ms.is_some() => {
            Ok(patient_key(patient, &admit))
        }
        _ => Err(BotError::fatal(
            "no encounter key: neither PV1-19 (visit number) nor PID-3.1 with PV1-44 (admit time)",
        )),
    }
}

/// The key of an encounter without a visit number: the patient id and the
/// admit time (PV1-44 as written).
pub fn patient_key(patient_id: &str, admit: &str) -> String {
    format!("patient:{patient_id}@{admit}")
}

/// Every PID/MRG pair of an A40 (a message may merge several patients).
fn merges(msg: &Message, zone: &str, at_ms: i64) -> Result<Vec<Merge>, BotError> {
    let mut merges = Vec::new();
    for n in 1.. {
        let Some(prior_id) = msg.value(&format!("MRG[{n}]-1.1")) else {
            break;
        };
        // Patient details only: a merge says nothing about the visits.
        let details = Details {
            visit_number: None,
            location: None,
            attending_doctor: None,
            admit_ms: None,
            ..details(msg, n, zone)?
        };
        if details.patient_id.as_deref().is_none_or(str::is_empty) {
            return Err(BotError::fatal(format!(
                "A40: PID[{n}]-3.1 (surviving id) is empty"
            )));
        }
        merges.push(Merge {
            prior_id,
            at_ms,
            details,
        });
    }
    if merges.is_empty() {
        return Err(BotError::fatal("A40 without MRG-1 (prior patient id)"));
    }
    Ok(merges)
}

/// The details of the `n`th PID (and the PV1, when there is one).
fn details(msg: &Message, n: usize, zone: &str) -> Result<Details, BotError> {
    let pid = |field: &str| given(msg, &format!("PID[{n}]-{field}"));
    Ok(Details {
        patient_id: pid("3.1"),
        patient_name: joined(msg, &format!("PID[{n}]-5"), &["1.1", "2", "3"]),
        birth_date: pid("7.1"),
        sex: pid("8"),
        visit_number: given(msg, "PV1-19.1"),
        location: joined(msg, "PV1-3", &["1", "2", "3"]),
        attending_doctor: joined(msg, "PV1-7", &["2.1", "3"]),
        admit_ms: time(msg, "PV1-44.1", zone)?,
    })
}

/// What the message says about `path`: `None` (empty: keep), `""` (null:
/// delete) or the value.
fn given(msg: &Message, path: &str) -> Option<String> {
    if msg.is_null(path) {
        return Some(String::new());
    }
    msg.value(path)
}

/// The `parts` (`1.1`, `2`, ...) of a composite `field` joined with `^`,
/// trailing empty ones dropped: `None` when all are empty (the field is left
/// as it is), `""` when the field is HL7's null `""` (delete).
fn joined(msg: &Message, field: &str, parts: &[&str]) -> Option<String> {
    if msg.is_null(field) {
        return Some(String::new());
    }
    let parts: Vec<String> = parts
        .iter()
        .map(|p| given(msg, &format!("{field}.{p}")).unwrap_or_default())
        .collect();
    let text = parts.join("^");
    let text = text.trim_end_matches('^');
    (!text.is_empty()).then(|| text.to_string())
}

fn time(msg: &Message, path: &str, zone: &str) -> Result<Option<i64>, BotError> {
    let Some(text) = msg.value(path) else {
        return Ok(None);
    };
    let ts: Timestamp = text
        .parse()
        .map_err(|_| BotError::fatal(format!("{path} is not an HL7 timestamp")))?;
    Ok(Some(ts.instant_ms(zone)?))
}
