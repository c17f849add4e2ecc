//! One event through one bot, the same wherever the host does it (a bot's
//! worker, `interlink test`): the journaled event becomes the bot's WIT
//! event, runs on a fresh instance, the reply is checked against what the
//! configuration allows the bot, and the event's state writes are kept in
//! the session only when all of that succeeded.

use std::time::Duration;

use super::bot::{Failure, LoadedBot};
use super::state::{BotPolicy, Session};
use super::{event, http};
use crate::journal::{HttpAnswer, Queued, StoredEvent};

/// What one event came to.
pub struct Processed {
    /// The messages to queue, or why the event failed.
    pub result: Result<Vec<Queued>, Failure>,
    /// The bot's own ACK, when it gave one and the event succeeded.
    pub ack: Option<String>,
    /// For an `http` event that succeeded: the bot's answer (204 when it
    /// gave no `http-response`).
    pub http: Option<HttpAnswer>,
    pub duration: Duration,
}

impl Processed {
    /// An event that could not even be run.
    pub fn failed(failure: Failure) -> Self {
        Processed {
            result: Err(failure),
            ack: None,
            http: None,
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
    let is_http = event.kind == http::KIND;
    let wit = match event::to_wit(event) {
        Ok(e) => e,
        Err(why) => return (Processed::failed(Failure::Host(why)), session),
    };
    let run = bot.handle(&wit, session);
    let mut session = run.session;
    let (result, ack, http) = match run.result {
        Ok(reply) => {
            let answer = match is_http {
                true => http::answer_of(reply.http).map(Some),
                false => Ok(None),
            };
            match (policy.accept(reply.send, session.now_ms()), answer) {
                (Ok(send), Ok(answer)) => (Ok(send), reply.ack, answer),
                (Err(refused), _) | (_, Err(refused)) => (Err(refused), None, None),
            }
        }
        Err(failure) => (Err(failure), None, None),
    };
    match result {
        Ok(_) => session.keep_event(),
        Err(_) => session.drop_event(),
    }
    let processed = Processed {
        result,
        ack,
        http,
        duration: run.duration,
    };
    (processed, session)
}
