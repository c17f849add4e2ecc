//! An appointment as the bot keeps it, what an SIU message says about one,
//! and how a change is applied to what the bot already knows, including
//! messages that arrive late or twice.

use chrono::NaiveDate;
use chrono_tz::Tz;
use interlink_sdk::BotError;
use interlink_sdk::hl7::Message;
use serde::{Deserialize, Serialize};

use crate::clock::hl7_instant;

/// Where an appointment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Booked,
    Cancelled,
    Deleted,
    NoShow,
}

impl Status {
    /// Cancelled, deleted and no-show appointments are closed: no later
    /// booking or modification of the same id reopens them.
    pub fn is_closed(self) -> bool {
        self != Status::Booked
    }

    /// For the log.
    pub fn word(self) -> &'static str {
        match self {
            Status::Booked => "booked",
            Status::Cancelled => "cancelled",
            Status::Deleted => "deleted",
            Status::NoShow => "a no-show",
        }
    }
}

/// The SIU trigger events the bot handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// S12: a new appointment.
    Book,
    /// S13: moved to another time.
    Reschedule,
    /// S14: other details changed.
    Modify,
    /// S15: cancelled.
    Cancel,
    /// S17: deleted.
    Delete,
    /// S26: the patient did not come.
    NoShow,
}

impl Change {
    /// The change an SIU trigger event (MSH-9.2) stands for.
    pub fn from_trigger(trigger: &str) -> Option<Change> {
        Some(match trigger {
            "S12" => Change::Book,
            "S13" => Change::Reschedule,
            "S14" => Change::Modify,
            "S15" => Change::Cancel,
            "S17" => Change::Delete,
            "S26" => Change::NoShow,
            _ => return None,
        })
    }

    /// The status an appointment has after this change.
    pub fn status(self) -> Status {
        match self {
            Change::Book | Change::Reschedule | Change::Modify => Status::Booked,
            Change::Cancel => Status::Cancelled,
            Change::Delete => Status::Deleted,
            Change::NoShow => Status::NoShow,
        }
    }

    /// For the log: what happened to the appointment.
    pub fn verb(self) -> &'static str {
        match self {
            Change::Book => "booked",
            Change::Reschedule => "rescheduled",
            Change::Modify => "modified",
            Change::Cancel => "cancelled",
            Change::Delete => "deleted",
            Change::NoShow => "marked no-show",
        }
    }
}

/// What one SIU message says about its appointment; `None` where it says
/// nothing (a cancellation often carries the ids only). An [`Appointment`]
/// keeps what its messages said together.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Details {
    /// SCH-1.1, the placer's appointment id.
    pub placer_id: Option<String>,
    /// SCH-2.1, the filler's (scheduling system's) appointment id.
    pub filler_id: Option<String>,
    /// SCH-11.4 (TQ start), else AIS-4.
    pub start_ms: Option<i64>,
    /// SCH-9 in SCH-10 units, else AIS-7 in AIS-8 units, in minutes.
    pub duration_min: Option<u32>,
    /// PID-3.1.
    pub patient_id: Option<String>,
    /// PID-5 as `FAMILY, GIVEN`.
    pub patient_name: Option<String>,
    /// PID-13: its first component, else area code and local number.
    pub phone: Option<String>,
    /// AIL-3.1, AIP-3 (name) and AIG-3 (text), those present, joined by ` / `.
    pub resource: Option<String>,
}

/// `a, b`, or whichever of the two is there.
fn joined(parts: &[Option<String>], separator: &str) -> Option<String> {
    let present: Vec<&str> = parts.iter().flatten().map(String::as_str).collect();
    (!present.is_empty()).then(|| present.join(separator))
}

impl Details {
    /// What `self` says, and what `older` said where `self` says nothing.
    pub fn or(self, older: Details) -> Details {
        Details {
            placer_id: self.placer_id.or(older.placer_id),
            filler_id: self.filler_id.or(older.filler_id),
            start_ms: self.start_ms.or(older.start_ms),
            duration_min: self.duration_min.or(older.duration_min),
            patient_id: self.patient_id.or(older.patient_id),
            patient_name: self.patient_name.or(older.patient_name),
            phone: self.phone.or(older.phone),
            resource: self.resource.or(older.resource),
        }
    }

    /// Reads the appointment out of an SIU message; HL7 times without an
    /// offset are local to `zone`. An error names the field at fault.
    pub fn read(msg: &Message, zone: Tz) -> Result<Details, BotError> {
        let start_ms = match ["SCH-11.4.1", "AIS-4.1"]
            .into_iter()
            .find_map(|path| msg.value(path).map(|text| (path, text)))
        {
            Some((path, text)) => Some(hl7_instant(&text, zone).ok_or_else(|| {
                BotError::fatal(format!("{path} {text:?} is not an HL7 timestamp"))
            })?),
            None => None,
        };
        let duration_min = match duration(msg, "SCH-9", "SCH-10.1")? {
            Some(minutes) => Some(minutes),
            None => duration(msg, "AIS-7", "AIS-8.1")?,
        };
        let personnel = joined(&[msg.value("AIP-3.2.1"), msg.value("AIP-3.3")], ", ")
            .or_else(|| msg.value("AIP-3.1"));
        let general = msg.value("AIG-3.2").or_else(|| msg.value("AIG-3.1"));
        let phone = msg
            .value("PID-13.1")
            .or_else(|| joined(&[msg.value("PID-13.6"), msg.value("PID-13.7")], " "));
        Ok(Details {
            placer_id: msg.value("SCH-1.1"),
            filler_id: msg.value("SCH-2.1"),
            start_ms,
            duration_min,
            patient_id: msg.value("PID-3.1"),
            patient_name: joined(&[msg.value("PID-5.1.1"), msg.value("PID-5.2")], ", "),
            phone,
            resource: joined(&[msg.value("AIL-3.1"), personnel, general], " / "),
        })
    }
}

/// A duration field in minutes, its unit (ISO+ `MIN`, `S`, `H`, `D`;
/// minutes when blank) read from `unit_path`.
fn duration(msg: &Message, path: &str, unit_path: &str) -> Result<Option<u32>, BotError> {
    let Some(text) = msg.value(path) else {
        return Ok(None);
    };
    let amount: u32 = text
        .parse()
        .map_err(|_| BotError::fatal(format!("{path} {text:?} is not a whole number")))?;
    let unit = msg
        .value(unit_path)
        .unwrap_or_default()
        .to_ascii_uppercase();
    let minutes = match unit.as_str() {
        "" | "MIN" | "M" | "MINUTES" => amount,
        "S" | "SEC" | "SECONDS" => amount.div_ceil(60),
        "H" | "HR" | "HOURS" => amount.saturating_mul(60),
        "D" | "DAYS" => amount.saturating_mul(24 * 60),
        _ => {
            return Err(BotError::fatal(format!(
                "{unit_path} {unit:?} is not a duration unit (MIN, S, H or D)"
            )));
        }
    };
    Ok(Some(minutes))
}

/// An appointment as kept in the key-value store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Appointment {
    /// The id it is known by here: the first message's filler id, or its
    /// placer id when it had none.
    pub id: String,
    /// What its messages said, stored next to `id` (the keys of the JSON
    /// are those of [`Details`]).
    #[serde(flatten)]
    pub details: Details,
    pub status: Status,
    /// MSH-7 of the last message applied, when it had a valid one.
    pub changed_at_ms: Option<i64>,
    /// MSH-10 of the last message applied.
    pub last_control_id: String,
    /// When the host received the last message applied: what dates the
    /// appointment for forgetting it when it has neither start nor MSH-7.
    #[serde(default)]
    pub received_at_ms: i64,
    /// The day whose reminder CSV listed it (never twice for one day; a
    /// move to another day lists it again).
    #[serde(default)]
    pub listed_for: Option<NaiveDate>,
}

/// What applying a message did.
#[derive(Debug)]
pub enum Outcome {
    /// The appointment changed: keep it and tell the partner.
    Applied(Box<Appointment>),
    /// The message was applied already (same MSH-10).
    Repeat,
    /// The appointment changed after this message was sent (MSH-7 older
    /// than the last change applied): it arrived late.
    Stale,
    /// A booking or modification of an appointment already closed.
    Closed(Status),
}

/// One SIU message, ready to apply.
pub struct Update<'a> {
    pub change: Change,
    pub details: Details,
    /// MSH-7 as an instant.
    pub sent_at_ms: Option<i64>,
    /// When the host received the message.
    pub received_at_ms: i64,
    pub control_id: &'a str,
}

impl Update<'_> {
    /// Applies the message to `known` (what the bot kept about the same
    /// appointment, if anything). A cancellation of an appointment never
    /// seen is kept too, so that a booking arriving after it stays closed.
    pub fn apply(self, known: Option<Appointment>) -> Result<Outcome, BotError> {
        if let Some(known) = &known {
            if known.last_control_id == self.control_id {
                return Ok(Outcome::Repeat);
            }
            if let (Some(sent), Some(changed)) = (self.sent_at_ms, known.changed_at_ms)
                && sent < changed
            {
                return Ok(Outcome::Stale);
            }
            if known.status.is_closed() && !self.change.status().is_closed() {
                return Ok(Outcome::Closed(known.status));
            }
        }
        let d = self.details;
        let id = match &known {
            Some(k) => k.id.clone(),
            None => d.filler_id.clone().or(d.placer_id.clone()).ok_or_else(|| {
                BotError::fatal("SCH-1 and SCH-2 are empty: the appointment has no id")
            })?,
        };
        let mut a = known.unwrap_or(Appointment {
            id,
            details: Details::default(),
            status: Status::Booked,
            changed_at_ms: None,
            last_control_id: String::new(),
            received_at_ms: self.received_at_ms,
            listed_for: None,
        });
        // What the message says replaces what was known; what it leaves
        // out stays.
        a.details = d.or(a.details);
        a.status = self.change.status();
        a.changed_at_ms = self.sent_at_ms.or(a.changed_at_ms);
        a.received_at_ms = self.received_at_ms;
        a.last_control_id = self.control_id.to_string();
        if a.status == Status::Booked && a.details.start_ms.is_none() {
            return Err(BotError::fatal(
                "SCH-11.4 and AIS-4 are empty: the appointment has no start time",
            ));
        }
        Ok(Outcome::Applied(Box::new(a)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// An appointment as the bot has stored it since `received_at_ms` and
    /// `listed_for` were added: the keys of the details sit next to `id`.
    const STORED: &str = r#"{"id":"F100","placer_id":"P100","filler_id":"F100","start_ms":1795590000000,"duration_min":30,"patient_id":"MRN1","patient_name":"DOE, JO","phone":"555-0100","resource":"US1 / SMITH, JOHN","status":"booked","changed_at_ms":1795500000000,"last_control_id":"S12-1001","received_at_ms":1795500001000,"listed_for":"2026-11-25"}"#;

    #[test]
    fn stored_json_loads_and_is_written_back_unchanged() {
        let a: Appointment = serde_json::from_str(STORED).unwrap();
        assert_eq!(a.id, "F100");
        assert_eq!(a.status, Status::Booked);
        assert_eq!(a.listed_for, NaiveDate::from_ymd_opt(2026, 11, 25));
        assert_eq!(serde_json::to_string(&a).unwrap(), STORED);
    }

    #[test]
    fn stored_json_with_nulls_and_without_later_keys_loads() {
        let old = r#"{"id":"P7","placer_id":"P7","filler_id":null,"start_ms":null,"duration_min":null,"patient_id":null,"patient_name":null,"phone":null,"resource":null,"status":"cancelled","changed_at_ms":null,"last_control_id":"S15-1"}"#;
        let a: Appointment = serde_json::from_str(old).unwrap();
        assert_eq!((a.id.as_str(), a.status), ("P7", Status::Cancelled));
        assert_eq!((a.received_at_ms, a.listed_for), (0, None));
        let again: Value = serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
        let mut want: Value = serde_json::from_str(old).unwrap();
        want["received_at_ms"] = 0.into();
        want["listed_for"] = Value::Null;
        assert_eq!(again, want);
    }
}
