//! Appointments in the bot's durable key-value store, as JSON under
//! `appointment/<id>`, with `placer/<SCH-1>` and `filler/<SCH-2>` pointing
//! to the id, so that a message naming an appointment by either id finds
//! it. Writes are committed with the event that made them, or not at all.

use interlink_sdk::BotError;
use interlink_sdk::host::kv;

use crate::appointment::Appointment;

const APPOINTMENT: &str = "appointment/";

/// The appointment a message names by its placer or filler id.
pub fn find(
    placer_id: Option<&str>,
    filler_id: Option<&str>,
) -> Result<Option<Appointment>, BotError> {
    let id = filler_id
        .and_then(|f| kv::get_string(&format!("filler/{f}")))
        .or_else(|| placer_id.and_then(|p| kv::get_string(&format!("placer/{p}"))));
    match id {
        Some(id) => load(&format!("{APPOINTMENT}{id}")),
        None => Ok(None),
    }
}

/// Every appointment kept, in id order.
pub fn all() -> Result<Vec<Appointment>, BotError> {
    kv::list(APPOINTMENT)
        .iter()
        .filter_map(|key| load(key).transpose())
        .collect()
}

fn load(key: &str) -> Result<Option<Appointment>, BotError> {
    let Some(json) = kv::get(key) else {
        return Ok(None);
    };
    serde_json::from_slice(&json)
        .map(Some)
        .map_err(|e| BotError::fatal(format!("stored {key} is not an appointment: {e}")))
}

/// Keeps `a` and its ids.
pub fn save(a: &Appointment) {
    let json = serde_json::to_vec(a).expect("an appointment serializes");
    kv::set(&format!("{APPOINTMENT}{}", a.id), json);
    if let Some(p) = &a.details.placer_id {
        kv::set(&format!("placer/{p}"), &a.id);
    }
    if let Some(f) = &a.details.filler_id {
        kv::set(&format!("filler/{f}"), &a.id);
    }
}

/// Forgets `a` and its ids.
pub fn remove(a: &Appointment) {
    kv::delete(&format!("{APPOINTMENT}{}", a.id));
    if let Some(p) = &a.details.placer_id {
        kv::delete(&format!("placer/{p}"));
    }
    if let Some(f) = &a.details.filler_id {
        kv::delete(&format!("filler/{f}"));
    }
}
