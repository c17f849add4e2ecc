//! Intake: where triggers hand over what they received. Each item is routed
//! to the bots that want it, journaled durably with those routes, and only
//! then are the bots woken and the trigger told it may acknowledge.

use std::collections::BTreeSet;
use std::sync::Arc;

use anyhow::Result;
use interlink_sdk::hl7::Message;

use crate::journal::{self, Ingest, Journal, LedgerEntry, NewEvent, Receipt, Received};
use crate::runtime::routing::RouteKey;

/// What the intake (and the triggers, through it) need of the bots: which
/// live bots want an event, waking them, and the cron schedules they
/// subscribe to. The runtime implements it; triggers never see more of it.
pub trait Router: Send + Sync {
    /// Bots that want an event, in name order.
    fn route(&self, key: RouteKey<'_>) -> Vec<String>;
    /// Tells the bot's worker there may be work.
    fn wake(&self, bot: &str);
    /// The cron schedules live bots subscribe to.
    fn cron_schedules(&self) -> BTreeSet<String>;
}

/// An item received by a trigger.
#[derive(Debug, Clone)]
pub enum Inbound {
    /// One HL7 message; see [`Hl7Item`].
    Hl7(Hl7Item),
    /// A firing of a cron schedule, for the bots that subscribe to it
    /// except those still busy with its previous tick.
    Tick {
        schedule: String,
        at_ms: i64,
        except: Vec<String>,
    },
    /// A file that is not HL7.
    File { name: String, contents: Vec<u8> },
}

/// One HL7 message, decoded to text, with the bytes as received when they
/// are not the UTF-8 of the text, and its MSH-9/MSH-10/PID-3.1 read once.
#[derive(Debug, Clone)]
pub struct Hl7Item {
    text: String,
    raw: Option<Vec<u8>>,
    origin_file: Option<String>,
    /// Its header, or why the text is not HL7.
    header: Result<Header, String>,
}

impl Hl7Item {
    /// Parses `text` for its header; text that is not HL7 is still taken
    /// (and journaled unrouted).
    pub fn new(text: String, raw: Option<Vec<u8>>, origin_file: Option<String>) -> Self {
        let header = match Message::parse(&text) {
            Ok(m) => Ok(header_of(&m)),
            Err(e) => Err(e.to_string()),
        };
        Hl7Item {
            text,
            raw,
            origin_file,
            header,
        }
    }

    /// Why the text is not HL7, if it is not.
    pub fn not_hl7(&self) -> Option<&str> {
        self.header.as_ref().err().map(String::as_str)
    }

    /// For a caller that has already parsed `text` into `message`.
    pub fn parsed(message: &Message, text: String, raw: Option<Vec<u8>>) -> Self {
        Hl7Item {
            text,
            raw,
            origin_file: None,
            header: Ok(header_of(message)),
        }
    }
}

/// The bots `ingest` routes events to, each once.
fn routed_bots(ingest: &Ingest) -> Vec<String> {
    let mut bots: Vec<String> = ingest
        .events
        .iter()
        .flat_map(|e| e.routes.iter().cloned())
        .collect();
    bots.sort();
    bots.dedup();
    bots
}

/// What is journaled beside an HL7 message's text, for routing and search.
#[derive(Debug, Clone)]
struct Header {
    /// MSH-9.
    message_type: String,
    /// MSH-10.
    control_id: String,
    /// PID-3.1, when there is one.
    patient_id: Option<String>,
}

fn header_of(m: &Message) -> Header {
    Header {
        message_type: m.message_type().to_string(),
        control_id: m.control_id().into_owned(),
        patient_id: m
            .get("PID-3.1")
            .filter(|p| !p.is_empty())
            .map(|p| p.into_owned()),
    }
}

/// Where a submission came from, journaled with it.
#[derive(Debug, Clone)]
pub enum Provenance {
    /// A file: its ledger entry, so it is never taken twice.
    File(LedgerEntry),
    /// The cron scheduler: which firing this is, for catch-up.
    Tick { schedule: String, at_ms: i64 },
}

/// The front door of the journal.
#[derive(Clone)]
pub struct Intake {
    journal: Journal,
    router: Arc<dyn Router>,
}

impl Intake {
    pub fn new(journal: Journal, router: Arc<dyn Router>) -> Self {
        Intake { journal, router }
    }

    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    pub fn router(&self) -> &dyn Router {
        &*self.router
    }

    /// Routes and journals `items` from `source` in one commit, with their
    /// provenance. Returns their event ids once they are durable.
    pub async fn submit(
        &self,
        source: &str,
        items: Vec<Inbound>,
        provenance: Option<Provenance>,
    ) -> Result<Vec<i64>> {
        let mut ingest = self.route(source, items);
        // Ticks are the scheduler's, not messages received.
        let messages = !matches!(provenance, Some(Provenance::Tick { .. }));
        match provenance {
            Some(Provenance::File(l)) => ingest.ledger = Some(l),
            Some(Provenance::Tick { schedule, at_ms }) => ingest.tick = Some((schedule, at_ms)),
            None => {}
        }
        let woken = routed_bots(&ingest);
        let ids = self.journal.ingest(ingest).await??;
        if messages {
            crate::telemetry::received(source, ids.len());
        }
        self.wake(&woken);
        Ok(ids)
    }

    /// Routes and journals one message a listener received, with its
    /// receipt, unless the journal finds it is a resend of an earlier one
    /// within the duplicate window (then nothing is journaled and no bot
    /// is woken). Also says whether any bot subscribes to the message.
    pub async fn submit_received(
        &self,
        source: &str,
        item: Inbound,
        receipt: Receipt,
    ) -> Result<(Received, bool)> {
        let ingest = self.route(source, vec![item]);
        let woken = routed_bots(&ingest);
        let received = self.journal.ingest_received(ingest, receipt).await??;
        // A resend is routed as its first copy was, whatever bots are live now.
        let routed = match &received {
            Received::New(_) => {
                crate::telemetry::received(source, 1);
                self.wake(&woken);
                !woken.is_empty()
            }
            Received::Duplicate { routed, .. } => *routed,
        };
        Ok((received, routed))
    }

    /// The commit for `items`: each as an event with the bots it goes to.
    fn route(&self, source: &str, items: Vec<Inbound>) -> Ingest {
        let received_at_ms = journal::now_ms();
        let events = items
            .into_iter()
            .map(|item| self.to_event(source, item, received_at_ms))
            .collect();
        Ingest {
            events,
            ..Ingest::default()
        }
    }

    /// Wakes `bots` (after their events are journaled).
    fn wake(&self, bots: &[String]) {
        for bot in bots {
            self.router.wake(bot);
        }
    }

    fn to_event(&self, source: &str, item: Inbound, received_at_ms: i64) -> NewEvent {
        match item {
            Inbound::Hl7(Hl7Item {
                text,
                raw,
                origin_file,
                header,
            }) => {
                let (message_type, control_id, patient_id) = match header {
                    Ok(h) => (Some(h.message_type), Some(h.control_id), h.patient_id),
                    Err(e) => {
                        let file = origin_file
                            .as_deref()
                            .map(|f| tracing::field::display(crate::phi::file(f)));
                        tracing::warn!(source, file, "journaled unrouted: not HL7: {e}");
                        (None, None, None)
                    }
                };
                let routes = self.router.route(RouteKey::Hl7 {
                    source,
                    message_type: message_type.as_deref(),
                });
                NewEvent {
                    kind: "hl7",
                    source: source.to_string(),
                    name: origin_file,
                    message_type,
                    control_id,
                    patient_id,
                    body: text.into_bytes(),
                    raw,
                    received_at_ms,
                    routes,
                }
            }
            Inbound::Tick {
                schedule,
                at_ms,
                except,
            } => {
                let mut routes = self.router.route(RouteKey::Tick {
                    schedule: &schedule,
                });
                routes.retain(|b| !except.contains(b));
                NewEvent {
                    kind: "tick",
                    body: at_ms.to_string().into_bytes(),
                    source: schedule,
                    routes,
                    name: None,
                    message_type: None,
                    control_id: None,
                    patient_id: None,
                    raw: None,
                    received_at_ms,
                }
            }
            Inbound::File { name, contents } => NewEvent {
                kind: "file",
                source: source.to_string(),
                routes: self.router.route(RouteKey::File { source }),
                name: Some(name),
                message_type: None,
                control_id: None,
                patient_id: None,
                body: contents,
                raw: None,
                received_at_ms,
            },
        }
    }
}
