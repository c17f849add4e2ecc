//! visit-stamp: the test bot of the shadow-run tests. Each HL7 message is
//! forwarded to `out` with a `ZVS` segment: the patient's visit count
//! (KV `visits/<PID-3.1>`, patient-counter style) and `host::now_ms`. A file
//! event is counted in sequence `files` and written to `out` as bytes
//! (`<name>,<n>`).
//!
//! Builds (cargo features): the default is v1; `v2` upper-cases the given
//! name (PID-5.2) of ADT^A08 messages and changes nothing else; `panic`
//! panics on the message whose MSH-10 ends in `077`.

use interlink_sdk::prelude::*;

struct VisitStamp;

impl Bot for VisitStamp {
    fn manifest() -> Manifest {
        let version = match (cfg!(feature = "v2"), cfg!(feature = "panic")) {
            (true, _) => "2.0.0",
            (_, true) => "1.0.1-panic",
            _ => "1.0.0",
        };
        Manifest::new("visit-stamp", version)
            .description("stamps visits")
            .subscribe(Subscription::hl7(["*"]))
            .subscribe(Subscription::Files("inbox".into()))
    }

    fn handle(event: Event) -> Result<Reply, BotError> {
        let input = match event {
            Event::Hl7(input) => input,
            Event::File(file) => {
                let n = host::next_sequence("files");
                let line = format!("{},{n}\n", file.name);
                let out = Outbound::bytes("out", line).named(&format!("file-{n}.csv"));
                return Ok(Reply::default().push(out));
            }
            _ => return Ok(Reply::default()),
        };
        let mut msg = Message::parse(&input.raw)?;
        let id = msg.control_id().into_owned();
        if cfg!(feature = "panic") && id.ends_with("077") {
            panic!("visit-stamp panicked on purpose on {id}");
        }
        let patient = msg.get("PID-3.1").unwrap_or_default().into_owned();
        let key = format!("visits/{patient}");
        let visits = host::kv::get_string(&key)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
            + 1;
        host::kv::set(&key, visits.to_string());
        if cfg!(feature = "v2") && msg.message_type().starts_with("ADT^A08") {
            let given = msg.get("PID-5.2").unwrap_or_default().to_uppercase();
            msg.set("PID-5.2", &given)?;
        }
        msg.append_segment(&format!("ZVS|{visits}|{}", host::now_ms()));
        Ok(Reply::default().send("out", msg.encode()))
    }
}

export_bot!(VisitStamp);
