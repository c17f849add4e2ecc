//! The SIU feed: each appointment change is applied to what the bot keeps
//! and, when it changed something, republished to the partner. A message
//! that arrives twice or late (its MSH-7 older than the last change kept)
//! is acknowledged and left alone, as is a booking or modification of an
//! appointment already cancelled, deleted or marked no-show.

use interlink_sdk::prelude::*;

use crate::appointment::{Change, Details, Outcome, Update};
use crate::clock::hl7_instant;
use crate::settings::Settings;
use crate::{partner, store};

/// Handles one SIU message.
pub fn on_siu(settings: &Settings, input: &Hl7Message) -> Result<Reply, BotError> {
    let msg = Message::parse(&input.raw)?;
    let trigger = msg.get("MSH-9.2").unwrap_or_default();
    let change = Change::from_trigger(&trigger).ok_or_else(|| {
        BotError::fatal(format!(
            "MSH-9 {:?} is not an SIU change this bot handles (S12, S13, S14, S15, S17, S26)",
            msg.message_type()
        ))
    })?;
    let details = Details::read(&msg, settings.timezone)?;
    let known = store::find(details.placer_id.as_deref(), details.filler_id.as_deref())?;
    let control_id = msg.control_id();
    let update = Update {
        change,
        details,
        sent_at_ms: msg
            .get("MSH-7.1")
            .and_then(|t| hl7_instant(&t, settings.timezone)),
        received_at_ms: input.received_at_ms as i64,
        control_id: &control_id,
    };
    // Only ids of messages in the log: appointment and patient data stay out.
    let about = format!("{} {control_id}", msg.message_type());
    let why = match update.apply(known)? {
        Outcome::Applied(appointment) => {
            store::save(&appointment);
            host::info(&format!(
                "{about}: appointment {}, republished to {}",
                change.verb(),
                settings.partner_destination
            ));
            return Ok(Reply::default().push(partner::republish(settings, &msg)?));
        }
        Outcome::Repeat => "already applied".to_string(),
        Outcome::Stale => "older than the appointment's last change".to_string(),
        Outcome::Closed(status) => format!("the appointment is {} already", status.word()),
    };
    host::info(&format!("{about}: {why}, ignored"));
    Ok(Reply::default())
}
