//! encounter-worklist: an ADT feed builds a worklist of open encounters,
//! each with a current accession number, which modalities read over HTTP
//! (`GET /bots/encounter-worklist/worklist`).
//!
//! How the SDK is used here:
//! - `check_settings` reads and checks every setting ([`settings`]); the
//!   host holds the bot's events until they pass.
//! - HL7 events ([`adt`]) change encounters ([`encounter`]) kept in the
//!   key-value store ([`store`]); accession numbers come from a durable
//!   sequence ([`accession`]). Everything an event writes is committed
//!   with it, or nothing is.
//! - A cron tick every minute replaces accession numbers older than
//!   `accession_period_min` and forgets stale encounters ([`maintenance`]),
//!   so that the HTTP queries ([`worklist`]) only ever read.
//! - Log lines name message ids and counts, never patient data.

mod accession;
mod adt;
mod encounter;
mod maintenance;
mod settings;
mod store;
mod worklist;

use interlink_sdk::prelude::*;

use adt::Adt;
use encounter::Encounter;
use settings::Settings;

/// How often the maintenance tick runs (`sec min hour day month weekday`).
const TICK: &str = "0 * * * * *";

struct EncounterWorklist;

impl Bot for EncounterWorklist {
    fn manifest() -> Manifest {
        Manifest::new("encounter-worklist", env!("CARGO_PKG_VERSION"))
            .description("Worklist of open encounters from ADT, with accession numbers")
            .subscribe(Subscription::hl7([
                "ADT^A01", "ADT^A02", "ADT^A03", "ADT^A04", "ADT^A05", "ADT^A08", "ADT^A11",
                "ADT^A13", "ADT^A40",
            ]))
            .subscribe(Subscription::Cron(TICK.into()))
            .subscribe(Subscription::http("/worklist"))
    }

    fn check_settings() -> Result<(), String> {
        Settings::load().map(|_| ())
    }

    fn handle(event: Event) -> Result<Reply, BotError> {
        // The host only runs events once the settings passed the check.
        let settings = Settings::load().map_err(BotError::fatal)?;
        match event {
            Event::Hl7(input) => adt_message(&input, &settings),
            Event::Tick(_) => {
                maintenance::run(&settings)?;
                Ok(Reply::default())
            }
            Event::Http(req) => Ok(Reply::default().http(worklist::answer(&req, &settings))),
            Event::File(_) => Ok(Reply::default()),
        }
    }
}

/// Applies one ADT message to the encounters it is about.
fn adt_message(input: &Hl7Message, settings: &Settings) -> Result<Reply, BotError> {
    let msg = Message::parse(&input.raw)?;
    let now = host::now_ms() as i64;
    let received_at_ms = input.received_at_ms as i64;
    let outcome = match Adt::read(
        &msg,
        &settings.timezone,
        received_at_ms,
        &store::survivor_of,
    )? {
        Adt::Encounter(event) => {
            let before = store::load(&event.key);
            let mut e = before.clone().unwrap_or_else(|| Encounter::new(&event.key));
            e.apply(&event);
            // The first accession number comes with the opening, if that
            // puts it on the worklist (not a replay of an old admit); later
            // ones, once the number is `accession_period_min` old, with the
            // tick.
            if e.accession.is_none() && e.on_worklist(now, settings.max_open_ms) {
                maintenance::issue_accession(&mut e, settings, now)?;
            }
            store::save(before.as_ref(), &e);
            format!("encounter {:?}", e.status).to_lowercase()
        }
        Adt::Merge(merges) => {
            let moved: usize = merges.iter().map(merge).sum();
            format!("{moved} encounter(s) moved to the surviving patient")
        }
    };
    host::info(&format!(
        "{} {}: {outcome}",
        msg.message_type(),
        msg.control_id()
    ));
    Ok(Reply::default())
}

/// A40: moves the encounters of the prior patient id to the surviving one
/// (applying the message's patient details where they are not stale), and
/// notes the merge so that later messages for the prior id reach the
/// survivor; returns how many moved. An encounter keyed by patient id and
/// admit time gets the surviving id in its key too; where the survivor
/// has that encounter already, the two records become one.
fn merge(merge: &adt::Merge) -> usize {
    let survivor = merge.details.patient_id.clone().unwrap_or_default();
    store::record_merge(&merge.prior_id, &survivor);
    let encounters = store::of_patient(&merge.prior_id);
    let fallback = adt::patient_key(&merge.prior_id, "");
    for stored in &encounters {
        let mut e = stored.clone();
        e.apply_details(&merge.details, merge.at_ms);
        e.patient_id.clone_from(&survivor);
        let Some(admit) = stored.key.strip_prefix(&fallback) else {
            store::save(Some(stored), &e);
            continue;
        };
        store::remove(stored);
        e.key = adt::patient_key(&survivor, admit);
        let existing = store::load(&e.key);
        if let Some(existing) = &existing {
            let mut both = existing.clone();
            both.absorb(&e);
            e = both;
        }
        store::save(existing.as_ref(), &e);
    }
    encounters.len()
}

export_bot!(EncounterWorklist);
