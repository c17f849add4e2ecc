//! patient-counter: keeps, per patient (PID-3.1), how many ADT events the
//! host has seen, in the bot's durable key-value store under
//! `visits/<patient id>`. The count is committed with the event, so a crash
//! or a retry never counts one message twice.

use interlink_sdk::prelude::*;

struct PatientCounter;

impl Bot for PatientCounter {
    fn manifest() -> Manifest {
        Manifest::new("patient-counter", env!("CARGO_PKG_VERSION"))
            .description("Counts ADT events per patient")
            .subscribe(Subscription::hl7(["ADT^*"]))
    }

    fn handle(event: Event) -> Result<Reply, BotError> {
        let Event::Hl7(input) = event else {
            return Ok(Reply::default());
        };
        let msg = Message::parse(&input.raw)?;
        let patient = msg
            .get("PID-3.1")
            .filter(|p| !p.is_empty())
            .ok_or_else(|| BotError::fatal("message has no PID-3.1 patient id"))?;
        let key = format!("visits/{patient}");
        let count = host::kv::get_string(&key)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
            + 1;
        host::kv::set(&key, count.to_string());
        // The patient id stays out of the log (it is in the KV key only).
        host::info(&format!(
            "{} {}: visit {count} of its patient counted",
            msg.message_type(),
            msg.control_id()
        ));
        Ok(Reply::default())
    }
}

export_bot!(PatientCounter);
