//! Journaled events as the WIT `event` a bot receives.

use super::bindings::{Event, File, Hl7Message, Tick};
use super::http;
use crate::journal::StoredEvent;

/// The WIT event for a journal row, or why there is none.
pub fn to_wit(e: StoredEvent) -> Result<Event, String> {
    let id = e.id as u64;
    let received_at_ms = e.received_at_ms as u64;
    match e.kind.as_str() {
        "hl7" => Ok(Event::Hl7(Hl7Message {
            id,
            source: e.source,
            raw: String::from_utf8(e.body).map_err(|_| "journaled HL7 text is not UTF-8")?,
            received_at_ms,
            origin_file: e.name,
        })),
        "file" => Ok(Event::File(File {
            id,
            source: e.source,
            name: e.name.unwrap_or_default(),
            contents: e.body,
            received_at_ms,
        })),
        "tick" => Ok(Event::Tick(Tick {
            id,
            scheduled_at_ms: String::from_utf8_lossy(&e.body)
                .parse()
                .map_err(|_| "bad tick time")?,
            schedule: e.source,
        })),
        http::KIND => Ok(Event::Http(http::to_wit(id, &e.body)?)),
        other => Err(format!(
            "events of kind {other:?} are not supported by this host"
        )),
    }
}
