//! The SIU the partner gets for each change: the message as it came, same
//! trigger event, with MSH-3 set to `sending_application` and our facility
//! codes replaced by the partner's (setting `facility_map`) wherever a
//! facility appears: MSH-4 (sending facility), AIL-3.4 (the location's
//! facility, every AIL segment) and PV1-3.4 (the patient location's).
//! A code the map does not name passes unchanged, with a warning.
//!
//! The host applies the destination's own `sending_facility` /
//! `receiving_facility` (MSH-4 / MSH-6) on delivery, when it has them.

use interlink_sdk::prelude::*;

use crate::settings::Settings;

/// The SIU for the partner, built from the message `msg` that came in.
pub fn republish(settings: &Settings, msg: &Message) -> Result<Outbound, BotError> {
    let mut out = msg.clone();
    out.set("MSH-3", &settings.sending_application)?;
    let locations = msg.segments().filter(|s| s.id == "AIL").count();
    let facilities = ["MSH-4.1".to_string(), "PV1-3.4.1".to_string()]
        .into_iter()
        .chain((1..=locations).map(|n| format!("AIL[{n}]-3.4.1")));
    for path in facilities {
        let Some(ours) = msg.get(&path).filter(|f| !f.is_empty()) else {
            continue;
        };
        match settings.facility_map.partner_code(&ours) {
            Some(theirs) => out.set(&path, theirs)?,
            // A facility code is not patient data.
            None => host::warn(&format!(
                "{path} facility {ours:?} is not in facility_map: sent unchanged"
            )),
        }
    }
    Ok(Outbound::hl7(&settings.partner_destination, out.encode()))
}
