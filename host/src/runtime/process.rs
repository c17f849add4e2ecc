//! One event through one bot, the same wherever the host does it (a bot's
//! worker, `interlink test`): the journaled event becomes the bot's WIT
//! event, runs on a fresh instance, the reply is checked against what the
//! configuration allows the bot, and the event's state writes are kept in
//! the session only when all of that succeeded.

use std::time::Duration;

use super::bot::{Failure, LoadedBot};
use super::event;
use super::state::{BotPolicy, Session};
use crate::journal::{Queued, StoredEvent};

/// What one event came to.
pub struct Processed {
    /// The messages to queue, or why the event failed.
    pub result: Result<Vec<Queued>, Failure>,
    /// The bot's own ACK, when it gave one and the event succeeded.
    pub ack: Option<String>,
    pub duration: Duration,
}

impl Processed {
    /// An event that could not even be run.
    pub fn failed(failure: Failure) -> Self {
        Processed {
            result: Err(failure),
            ack: None,
            duration: Duration::ZERO,
        }
    }
}

/// Runs `bot` on `event` under `policy`, continuing `session`.
pub fn process(
    bot: &LoadedBot,
    policy: &BotPolicy,
    event: StoredEvent,
    session: Session,
) -> (Processed, Session) {
    let wit = match event::to_wit(event) {
        Ok(e) => e,
        Err(why) => return (Processed::failed(Failure::Host(why)), session),
    };
    let run = bot.handle(&wit, session);
    let mut session = run.session;
    let (result, ack) = match run.result {
        Ok(reply) => match policy.accept(reply.send) {
            Ok(send) => (Ok(send), reply.ack),
            Err(refused) => (Err(refused), None),
        },
        Err(failure) => (Err(failure), None),
    };
    match result {
        Ok(_) => session.keep_event(),
        Err(_) => session.drop_event(),
    }
    let processed = Processed {
        result,
        ack,
        duration: run.duration,
    };
    (processed, session)
}
