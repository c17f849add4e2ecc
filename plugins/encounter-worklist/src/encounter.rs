//! An encounter as the bot keeps it, and how ADT events change it.
//!
//! Feeds deliver late and twice, so every change is stamped with its
//! message's time and applied only if it is not older than what the
//! encounter already reflects. There are two stamps: one for the status
//! (open, discharged, cancelled) and one for the details (name, location,
//! ...). A late A08 is a details change only: it can never reopen a
//! discharged encounter, and an A08 older than the newest details is
//! ignored. Repeating a message changes nothing, because applying the same
//! stamp twice gives the same result. Among status changes with the same
//! time, the later step of the workflow wins (open < discharge < cancel
//! discharge < cancel admit), whatever order they arrive in.

use serde::{Deserialize, Serialize};

use crate::adt::{AdtEvent, Change, Details};

/// Where an encounter stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    /// Only details were seen so far (an A08 before its A01).
    Unknown,
    /// On the worklist.
    Open,
    Discharged,
    Cancelled,
}

/// An accession number and when it was issued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accession {
    pub number: String,
    pub issued_ms: i64,
}

/// The stored record of one encounter (JSON under `enc/<key>`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Encounter {
    pub key: String,
    pub status: Status,
    /// Time and kind of the status change the status reflects.
    pub status_stamp: Option<(i64, Change)>,
    /// Time of the newest details applied.
    pub details_ms: Option<i64>,
    /// When it was last opened (the message's time).
    pub opened_ms: Option<i64>,
    pub patient_id: String,
    pub patient_name: String,
    pub birth_date: String,
    pub sex: String,
    pub visit_number: String,
    pub location: String,
    pub attending_doctor: String,
    pub admit_ms: Option<i64>,
    pub accession: Option<Accession>,
}

impl Encounter {
    /// An encounter nothing is known of yet.
    pub fn new(key: &str) -> Encounter {
        Encounter {
            key: key.to_string(),
            status: Status::Unknown,
            status_stamp: None,
            details_ms: None,
            opened_ms: None,
            patient_id: String::new(),
            patient_name: String::new(),
            birth_date: String::new(),
            sex: String::new(),
            visit_number: String::new(),
            location: String::new(),
            attending_doctor: String::new(),
            admit_ms: None,
            accession: None,
        }
    }

    /// Applies `event`'s status change and details, each only if it is not
    /// stale.
    pub fn apply(&mut self, event: &AdtEvent) {
        self.apply_details(&event.details, event.at_ms);
        if event.change == Change::Update {
            return;
        }
        let stamp = (event.at_ms, event.change);
        if self.status_stamp.is_some_and(|newest| stamp < newest) {
            return;
        }
        self.status_stamp = Some(stamp);
        self.status = match (event.change, self.status) {
            (Change::Open, _) => {
                self.opened_ms = Some(event.at_ms);
                Status::Open
            }
            (Change::Discharge, Status::Cancelled) => Status::Cancelled,
            (Change::Discharge, _) => Status::Discharged,
            // Cancelling a discharge that has not arrived yet keeps the
            // encounter open and makes that discharge stale.
            (Change::CancelDischarge, Status::Discharged | Status::Unknown | Status::Open) => {
                self.opened_ms.get_or_insert(event.at_ms);
                Status::Open
            }
            (Change::CancelDischarge, Status::Cancelled) => Status::Cancelled,
            (Change::CancelAdmit, _) => Status::Cancelled,
            (Change::Update, status) => status,
        };
    }

    /// Applies what `details` gives, if it is not older than the newest
    /// details applied.
    pub fn apply_details(&mut self, details: &Details, at_ms: i64) {
        if self.details_ms.is_some_and(|newest| at_ms < newest) {
            return;
        }
        self.details_ms = Some(at_ms);
        let fields = [
            (&mut self.patient_id, &details.patient_id),
            (&mut self.patient_name, &details.patient_name),
            (&mut self.birth_date, &details.birth_date),
            (&mut self.sex, &details.sex),
            (&mut self.visit_number, &details.visit_number),
            (&mut self.location, &details.location),
            (&mut self.attending_doctor, &details.attending_doctor),
        ];
        for (field, given) in fields {
            if let Some(value) = given {
                field.clone_from(value);
            }
        }
        if details.admit_ms.is_some() {
            self.admit_ms = details.admit_ms;
        }
    }

    /// Takes in `other`, a record of the same encounter (two patient ids
    /// that turned out to be one): the newer status and the newer details
    /// win, each by its stamp; the accession number goes with the status
    /// (or is whichever there is).
    pub fn absorb(&mut self, other: &Encounter) {
        if other.status_stamp > self.status_stamp {
            self.status = other.status;
            self.status_stamp = other.status_stamp;
            self.opened_ms = other.opened_ms;
            self.accession = other.accession.clone().or(self.accession.take());
        } else if self.accession.is_none() {
            self.accession.clone_from(&other.accession);
        }
        if let Some(at_ms) = other.details_ms {
            self.apply_details(&other.details(), at_ms);
        }
    }

    /// Everything known of the patient and the visit, as a message would
    /// give it.
    fn details(&self) -> Details {
        Details {
            patient_id: Some(self.patient_id.clone()),
            patient_name: Some(self.patient_name.clone()),
            birth_date: Some(self.birth_date.clone()),
            sex: Some(self.sex.clone()),
            visit_number: Some(self.visit_number.clone()),
            location: Some(self.location.clone()),
            attending_doctor: Some(self.attending_doctor.clone()),
            admit_ms: self.admit_ms,
        }
    }

    /// Open, and opened less than `max_open_ms` before `now_ms`.
    pub fn on_worklist(&self, now_ms: i64, max_open_ms: i64) -> bool {
        self.status == Status::Open && self.opened_ms.is_some_and(|t| now_ms - t < max_open_ms)
    }

    /// Nothing has happened to it for `max_open_ms`: it can be forgotten
    /// (an open one has dropped off the worklist).
    pub fn is_stale(&self, now_ms: i64, max_open_ms: i64) -> bool {
        let last = match self.status {
            Status::Open => self.opened_ms,
            _ => self.status_stamp.map(|(t, _)| t).max(self.details_ms),
        };
        last.is_none_or(|t| now_ms - t >= max_open_ms)
    }

    /// Whether it needs a new accession number at `now_ms`: it is open and
    /// has none, or one issued `period_ms` or more ago.
    pub fn accession_due(&self, now_ms: i64, period_ms: i64) -> bool {
        self.status == Status::Open
            && self
                .accession
                .as_ref()
                .is_none_or(|a| now_ms - a.issued_ms >= period_ms)
    }

    /// When the modality should see it: the admit time (PV1-44), else when
    /// it was opened.
    pub fn scheduled_ms(&self) -> i64 {
        self.admit_ms.or(self.opened_ms).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(change: Change, at_ms: i64, location: &str) -> AdtEvent {
        AdtEvent {
            key: "visit:V1".into(),
            change,
            at_ms,
            details: Details {
                location: Some(location.into()),
                ..Details::default()
            },
        }
    }

    fn replay(events: &[AdtEvent]) -> Encounter {
        let mut e = Encounter::new("visit:V1");
        for ev in events {
            e.apply(ev);
        }
        e
    }

    #[test]
    fn a_late_update_does_not_reopen_or_overwrite() {
        let e = replay(&[
            event(Change::Open, 1, "ER"),
            event(Change::Discharge, 3, "WARD"),
            event(Change::Update, 2, "ICU"),
        ]);
        assert_eq!(
            (e.status, e.location.as_str()),
            (Status::Discharged, "WARD")
        );
    }

    #[test]
    fn an_update_before_its_admit_keeps_the_newer_details() {
        let e = replay(&[
            event(Change::Update, 2, "ICU"),
            event(Change::Open, 1, "ER"),
        ]);
        assert_eq!((e.status, e.location.as_str()), (Status::Open, "ICU"));
    }

    #[test]
    fn status_changes_in_any_order_end_the_same() {
        let in_order = [
            event(Change::Open, 1, "ER"),
            event(Change::Discharge, 2, "ER"),
            event(Change::CancelDischarge, 3, "ER"),
        ];
        for order in [[0, 1, 2], [0, 2, 1], [2, 1, 0], [1, 2, 0], [2, 0, 1]] {
            let e = replay(&order.map(|i| event(in_order[i].change, in_order[i].at_ms, "ER")));
            assert_eq!(e.status, Status::Open, "{order:?}");
        }
        let cancelled = replay(&[
            event(Change::CancelAdmit, 2, "ER"),
            event(Change::Open, 1, "ER"),
        ]);
        assert_eq!(cancelled.status, Status::Cancelled);
        // Same time: the later workflow step wins, whatever arrives last.
        let tie = replay(&[
            event(Change::Discharge, 5, "ER"),
            event(Change::Open, 5, "ER"),
        ]);
        assert_eq!(tie.status, Status::Discharged);
    }

    #[test]
    fn repeats_change_nothing() {
        let once = replay(&[
            event(Change::Open, 1, "ER"),
            event(Change::Discharge, 2, "ER"),
        ]);
        let twice = replay(&[
            event(Change::Open, 1, "ER"),
            event(Change::Discharge, 2, "ER"),
            event(Change::Open, 1, "ER"),
            event(Change::Discharge, 2, "ER"),
        ]);
        assert_eq!(once.status, twice.status);
        assert_eq!(once.status_stamp, twice.status_stamp);
    }
}
