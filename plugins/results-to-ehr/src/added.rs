//! When each EHR was added, so that a newly configured EHR is not sent
//! exams that were done before it joined.
//!
//! A bot cannot see a config reload happen: it sees the configuration each
//! time it runs. So at every command it records the time (`last-run-ms`),
//! and when an EHR shows up in `ehr_destinations` that it has not seen
//! before, it records the previous command's time as that EHR's
//! `added/<name>`: the EHR was added after then. Exams whose `exam_time`
//! is not later than that are not sent to it automatically (a one-off
//! resend still can). The EHRs configured at the bot's very first command
//! count as there from the start (0). An EHR taken out of the list is
//! forgotten, so adding it back counts as new.

use std::collections::BTreeMap;

use interlink_sdk::host::{self, kv};

use crate::settings::Settings;

const LAST_RUN: &str = "last-run-ms";
const ADDED: &str = "added/";

/// Brings the records up to date with `settings` at `now_ms`; returns, per
/// EHR, the time after which its exams are sent.
pub fn update(settings: &Settings, now_ms: u64) -> BTreeMap<String, u64> {
    let last_run = kv::get_string(LAST_RUN).and_then(|t| t.parse::<u64>().ok());
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
                let since = last_run.unwrap_or(0);
                kv::set(&key, since.to_string());
                host::info(&format!(
                    "EHR {} is new: exams done after {since} ms go to it",
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
