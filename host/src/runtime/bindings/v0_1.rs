//! Contract `interlink:bot@0.1.0` (`wit/archive/bot-0.1.0.wit`), adapted to
//! the current one: its `host` imports are served by the current
//! implementation, its exports' types are converted both ways. A 0.1.0 bot
//! sends HL7 text only, without a delay, and has no `check-settings`.

use wasmtime::Result;

use super::current::interlink::bot::{host as now, types as t};
use crate::runtime::state::BotState;

wasmtime::component::bindgen!({
    world: "bot",
    path: "../wit/archive/bot-0.1.0.wit",
    imports: { default: trappable },
    exports: { default: async },
});

use self::interlink::bot::{host as old, types as o};

impl From<t::Event> for o::Event {
    fn from(event: t::Event) -> Self {
        match event {
            t::Event::Hl7(m) => o::Event::Hl7(o::Hl7Message {
                id: m.id,
                source: m.source,
                raw: m.raw,
                received_at_ms: m.received_at_ms,
                origin_file: m.origin_file,
            }),
            t::Event::File(f) => o::Event::File(o::File {
                id: f.id,
                source: f.source,
                name: f.name,
                contents: f.contents,
                received_at_ms: f.received_at_ms,
            }),
            t::Event::Tick(k) => o::Event::Tick(o::Tick {
                id: k.id,
                schedule: k.schedule,
                scheduled_at_ms: k.scheduled_at_ms,
            }),
            t::Event::Http(r) => o::Event::Http(o::HttpRequest {
                id: r.id,
                method: r.method,
                path: r.path,
                headers: r.headers,
                body: r.body,
            }),
        }
    }
}

impl From<o::Manifest> for t::Manifest {
    fn from(m: o::Manifest) -> Self {
        t::Manifest {
            name: m.name,
            version: m.version,
            description: m.description,
            subscribe: m.subscribe.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<o::Subscription> for t::Subscription {
    fn from(s: o::Subscription) -> Self {
        match s {
            o::Subscription::Hl7(f) => t::Subscription::Hl7(t::Hl7Filter {
                source: f.source,
                message_types: f.message_types,
            }),
            o::Subscription::Files(source) => t::Subscription::Files(source),
            o::Subscription::Cron(schedule) => t::Subscription::Cron(schedule),
            o::Subscription::Http(prefix) => t::Subscription::Http(prefix),
        }
    }
}

impl From<o::Reply> for t::Reply {
    fn from(r: o::Reply) -> Self {
        t::Reply {
            ack: r.ack,
            send: r
                .send
                .into_iter()
                .map(|out| t::Outbound {
                    destination: out.destination,
                    payload: t::Payload::Hl7(out.message),
                    not_before_ms: None,
                })
                .collect(),
            http: r.http.map(|h| t::HttpResponse {
                status: h.status,
                headers: h.headers,
                body: h.body,
            }),
        }
    }
}

impl From<o::BotError> for t::BotError {
    fn from(e: o::BotError) -> Self {
        t::BotError {
            message: e.message,
            retryable: e.retryable,
        }
    }
}

impl o::Host for BotState {}

impl old::Host for BotState {
    fn log(&mut self, level: old::Level, message: String) -> Result<()> {
        let level = match level {
            old::Level::Trace => now::Level::Trace,
            old::Level::Debug => now::Level::Debug,
            old::Level::Info => now::Level::Info,
            old::Level::Warn => now::Level::Warn,
            old::Level::Error => now::Level::Error,
        };
        now::Host::log(self, level, message)
    }

    fn config(&mut self, key: String) -> Result<Option<String>> {
        now::Host::config(self, key)
    }

    fn destination(&mut self, name: String) -> Result<Option<o::DestinationInfo>> {
        Ok(
            now::Host::destination(self, name)?.map(|d| o::DestinationInfo {
                name: d.name,
                kind: d.kind,
                encoding: d.encoding,
                timezone: d.timezone,
                sending_facility: d.sending_facility,
                receiving_facility: d.receiving_facility,
            }),
        )
    }

    fn kv_get(&mut self, key: String) -> Result<Option<Vec<u8>>> {
        now::Host::kv_get(self, key)
    }

    fn kv_set(&mut self, key: String, value: Vec<u8>) -> Result<()> {
        now::Host::kv_set(self, key, value)
    }

    fn kv_delete(&mut self, key: String) -> Result<()> {
        now::Host::kv_delete(self, key)
    }

    fn kv_list(&mut self, prefix: String) -> Result<Vec<String>> {
        now::Host::kv_list(self, prefix)
    }

    fn next_sequence(&mut self, name: String) -> Result<u64> {
        now::Host::next_sequence(self, name)
    }

    fn now_ms(&mut self) -> Result<u64> {
        now::Host::now_ms(self)
    }
}
