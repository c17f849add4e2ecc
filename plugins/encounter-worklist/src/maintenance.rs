//! What the cron tick does, so that queries never have to write: replace
//! accession numbers once they are `accession_period_min` old, and forget
//! encounters nothing happened to for `max_open_hours` (an open one has
//! dropped off the worklist by then).

use interlink_sdk::prelude::*;

use crate::encounter::{Accession, Encounter};
use crate::settings::Settings;
use crate::store;

/// The durable sequence accession numbers are drawn from.
const SEQUENCE: &str = "accession";

/// One maintenance pass over every stored encounter.
pub fn run(settings: &Settings) -> Result<(), BotError> {
    let now = host::now_ms() as i64;
    let (mut rotated, mut dropped) = (0, 0);
    for mut e in store::all() {
        if e.is_stale(now, settings.max_open_ms) {
            store::remove(&e);
            dropped += 1;
        } else if e.accession_due(now, settings.period_ms) {
            let before = e.clone();
            issue_accession(&mut e, settings, now)?;
            store::save(Some(&before), &e);
            rotated += 1;
        }
    }
    if rotated + dropped > 0 {
        host::info(&format!(
            "tick: {rotated} accession number(s) replaced, {dropped} stale encounter(s) dropped"
        ));
    }
    Ok(())
}

/// Gives `e` the next accession number, issued at `now`.
pub fn issue_accession(e: &mut Encounter, settings: &Settings, now: i64) -> Result<(), BotError> {
    let n = host::next_sequence(SEQUENCE);
    let number = settings.accession.format(n).ok_or_else(|| {
        BotError::fatal(format!(
            "accession numbers are used up at {n}: raise accession_digits or change accession_prefix"
        ))
    })?;
    e.accession = Some(Accession {
        number,
        issued_ms: now,
    });
    Ok(())
}
