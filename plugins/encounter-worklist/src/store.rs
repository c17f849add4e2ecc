//! Encounters in the bot's key-value store, with two indexes kept in step:
//!
//! | key | value |
//! |---|---|
//! | `enc/<key>` | the encounter, JSON ([`Encounter`]) |
//! | `pat/<patient id>/<key>` | empty: the patient's encounters (A40 merges, the `patient_id` filter) |
//! | `acc/<accession number>` | the encounter key, while it is on the worklist |
//! | `merged/<patient id>` | the id an A40 merged it into |
//!
//! Parts of keys are escaped (`%` and `/`), so a visit number holding a
//! `/` cannot reach into another key. Writes are committed with the event
//! (or not at all), so the indexes never disagree with the records.

use interlink_sdk::host::kv;

use crate::encounter::{Encounter, Status};

const ENCOUNTERS: &str = "enc/";

fn escape(part: &str) -> String {
    part.replace('%', "%25").replace('/', "%2F")
}

fn record_key(key: &str) -> String {
    format!("{ENCOUNTERS}{}", escape(key))
}

fn patient_prefix(patient_id: &str) -> String {
    format!("pat/{}/", escape(patient_id))
}

fn accession_key(number: &str) -> String {
    format!("acc/{}", escape(number))
}

/// The encounter stored under `key`.
pub fn load(key: &str) -> Option<Encounter> {
    load_record(&record_key(key))
}

fn load_record(record: &str) -> Option<Encounter> {
    serde_json::from_slice(&kv::get(record)?).ok()
}

/// Every stored encounter, in key order.
pub fn all() -> impl Iterator<Item = Encounter> {
    kv::list(ENCOUNTERS)
        .into_iter()
        .filter_map(|record| load_record(&record))
}

/// `patient_id`'s encounters, in key order.
pub fn of_patient(patient_id: &str) -> Vec<Encounter> {
    let prefix = patient_prefix(patient_id);
    kv::list(&prefix)
        .iter()
        .filter_map(|k| load_record(&format!("{ENCOUNTERS}{}", &k[prefix.len()..])))
        .collect()
}

/// The encounter whose current accession number is `number`, while it is
/// open.
pub fn by_accession(number: &str) -> Option<Encounter> {
    load(&kv::get_string(&accession_key(number))?)
}

/// Stores `after`, moving its index entries from `before`: what is stored
/// under its key now, as the caller loaded it (`None` for a new one).
pub fn save(before: Option<&Encounter>, after: &Encounter) {
    if let Some(before) = before {
        unindex(before);
    }
    let record = serde_json::to_vec(after).expect("an encounter serialises");
    kv::set(&record_key(&after.key), record);
    kv::set(
        &format!(
            "{}{}",
            patient_prefix(&after.patient_id),
            escape(&after.key)
        ),
        "",
    );
    if let (Status::Open, Some(a)) = (after.status, &after.accession) {
        kv::set(&accession_key(&a.number), &after.key);
    }
}

/// Forgets `encounter` and its index entries.
pub fn remove(encounter: &Encounter) {
    unindex(encounter);
    kv::delete(&record_key(&encounter.key));
}

fn unindex(encounter: &Encounter) {
    kv::delete(&format!(
        "{}{}",
        patient_prefix(&encounter.patient_id),
        escape(&encounter.key)
    ));
    if let Some(a) = &encounter.accession {
        kv::delete(&accession_key(&a.number));
    }
}

/// Notes that A40 merged `prior_id` into `survivor`. A survivor has no
/// onward merge (one an earlier A40 may have noted the other way round is
/// forgotten), so following merges never goes round in a circle.
pub fn record_merge(prior_id: &str, survivor: &str) {
    if prior_id == survivor {
        return;
    }
    kv::delete(&merged_key(survivor));
    kv::set(&merged_key(prior_id), survivor);
}

/// The id `patient_id` was merged into, following merges of merges;
/// `None` if it was never merged.
pub fn survivor_of(patient_id: &str) -> Option<String> {
    let mut current = kv::get_string(&merged_key(patient_id))?;
    // Acyclic (see `record_merge`); the bound is a guard, not a rule.
    for _ in 0..MAX_MERGE_CHAIN {
        match kv::get_string(&merged_key(&current)) {
            Some(next) => current = next,
            None => break,
        }
    }
    Some(current)
}

/// How many merges of merges `survivor_of` follows at the most.
const MAX_MERGE_CHAIN: usize = 64;

fn merged_key(patient_id: &str) -> String {
    format!("merged/{}", escape(patient_id))
}
