//! adt-router: the smallest useful bot. Every ADT^A04 (register a patient)
//! is re-addressed to the EHR, MSH-5/MSH-6 taken from the bot's settings,
//! and sent to the destination named by the `destination` setting
//! (default `outbox`).

use interlink_sdk::prelude::*;

struct AdtRouter;

impl Bot for AdtRouter {
    fn manifest() -> Manifest {
        Manifest::new("adt-router", env!("CARGO_PKG_VERSION"))
            .description("Forwards ADT^A04 to the EHR with MSH-5/MSH-6 rewritten")
            .subscribe(Subscription::hl7(["ADT^A04"]))
    }

    fn handle(event: Event) -> Result<Reply, BotError> {
        let Event::Hl7(input) = event else {
            return Ok(Reply::default());
        };
        let mut msg = Message::parse(&input.raw)?;
        let application = host::config("receiving_application").unwrap_or_else(|| "EHR".into());
        let facility = host::config("receiving_facility").unwrap_or_else(|| "HOSPITAL".into());
        msg.set("MSH-5", &application)?;
        msg.set("MSH-6", &facility)?;
        let destination = host::config("destination").unwrap_or_else(|| "outbox".into());
        // Ids that are not patient data only: the host log is not the chart.
        host::info(&format!(
            "routing {} {} to {destination}",
            msg.message_type(),
            msg.control_id()
        ));
        Ok(Reply::default().send(&destination, msg.encode()))
    }
}

export_bot!(AdtRouter);
