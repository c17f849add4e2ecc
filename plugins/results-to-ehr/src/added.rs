//! When each EHR was added, so that a newly configured EHR is not sent
//! exams that were finalized before it joined.
//!
//! A bot cannot see a config reload happen: it sees the configuration each
//! time it runs. So when an EHR shows up in `ehr_destinations` that it has
//! not seen before, it records the time of that command as the EHR's
//! `added/<name>`. An exam's final (or corrected) result goes to it
//! automatically only if the exam became final at or after that time (a
//! one-off resend still can send older ones). The EHRs configured at the
//! bot's very first command (it keeps `last-run-ms` to know) count as
//! there from the start (0). An EHR taken out of the list is forgotten, so
//! adding it back counts as new.

use std::collections::BTreeMap;

use interlink_sdk::host::{self, kv};

use crate::settings::Settings;

const LAST_RUN: &str = "last-run-ms";
const ADDED: &str = "added/";

/// Brings the records up to date with `settings` at `now_ms`; returns, per
/// EHR, when it was added (exams finalized since then are sent to it).
pub fn update(settings: &Settings, now_ms: u64) -> BTreeMap<String, u64> {
    let ran_before = kv::get(LAST_RUN).is_some();
    for key in kv::list(ADDED) {
        if settings.ehr(&key[ADDED.len()..]).is_none() {
            kv::delete(&key);
        }
    }
    let mut added = BTreeMap::new();
    for ehr in &settings.ehrs {
        let key = format!("{ADDED}{}", ehr.name);
        let since = match kv::get_string(&key).and_then(|t| t.parse().ok()) {
            Some(since) => since,
            None => {
                let since = if ran_before { now_ms } else { 0 };
                kv::set(&key, since.to_string());
                host::info(&format!(
                    "EHR {} is new: exams finalized from {since} ms on go to it",
                    ehr.name
                ));
                since
            }
        };
        added.insert(ehr.name.clone(), since);
    }
    kv::set(LAST_RUN, now_ms.to_string());
    added
}
