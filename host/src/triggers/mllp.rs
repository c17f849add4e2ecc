//! MLLP listeners (`[[listener]]`): on each connection that the server side
//! of MLLP accepts ([`crate::server`]: plain or TLS, at most
//! `max_connections` at once), read framed messages and answer each with an
//! ACK only once the message is durably journaled (`ack = "commit"`) or once its bot has run (`ack =
//! "application"`). Bad input is answered with AR and an ERR segment, never
//! with silence or a crash; a resend of a message already received gets the
//! original ACK again (the journal's writer decides what is a resend, so
//! copies arriving at once are journaled once). What a frame is and the
//! ACKs built from it are worked out in [`answer`], without the journal.

mod answer;

use answer::{Accepted, Reading, Screened, ack_code, reject, screen};

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use interlink_sdk::hl7::{AckCode, AckError};
use tokio::io::AsyncWriteExt;

use crate::config::{AckWhen, ListenerConfig};
use crate::intake::{Hl7Item, Inbound, Intake};
use crate::journal::{self, Receipt, Received};
use crate::mllp::{Frame, FrameReader, Stream, frame};
use crate::runtime::replies::{AppReply, Replies};
use crate::server::Server;
use crate::status::ListenerStatus;

struct Listener {
    cfg: ListenerConfig,
    reading: Reading,
    intake: Intake,
    /// Where bots' outcomes arrive, with `ack = "application"`.
    replies: Arc<Replies>,
    /// How long an application ACK waits for the bot.
    application_timeout: Duration,
    /// Its live counts, for the admin API.
    status: Arc<ListenerStatus>,
}

/// Binds the listener; the returned future serves it until the process
/// ends. `bot_timeout_ms` is the bots' time limit, which an application
/// ACK waits a second longer than unless `application_timeout_ms` is set.
pub async fn bind(
    cfg: ListenerConfig,
    intake: Intake,
    replies: Arc<Replies>,
    bot_timeout_ms: u64,
) -> Result<impl std::future::Future<Output = ()>> {
    let server = Server::bind(
        &cfg.name,
        &cfg.listen,
        cfg.tls.as_ref(),
        cfg.max_connections,
    )
    .await?;
    tracing::info!(
        listener = %cfg.name,
        tls = cfg.tls.is_some(),
        mutual_tls = cfg.tls.as_ref().is_some_and(|t| t.client_ca.is_some()),
        ack = ?cfg.ack,
        max_connections = cfg.max_connections,
        "listening on {}",
        server.local_addr()?
    );
    let status = crate::status::registry().listener(&cfg.name, &server.local_addr()?.to_string());
    status.set_bound();
    let listener = Arc::new(Listener {
        reading: Reading {
            encoding: cfg.encoding,
            enhanced_mode: cfg.enhanced_mode,
        },
        application_timeout: Duration::from_millis(
            cfg.application_timeout_ms.unwrap_or(bot_timeout_ms + 1000),
        ),
        cfg,
        intake,
        replies,
        status,
    });
    Ok(server.serve(move |stream, peer| {
        let listener = listener.clone();
        async move { listener.serve(stream, peer).await }
    }))
}

impl Listener {
    async fn serve(self: &Arc<Self>, stream: Stream, peer: SocketAddr) {
        let name = &self.cfg.name;
        tracing::debug!(listener = %name, %peer, "connected");
        let _open = self.status.connected();
        let (rd, mut wr) = tokio::io::split(stream);
        let mut frames = FrameReader::new(rd, self.cfg.max_message_kb * 1024);
        loop {
            let limit = if frames.mid_frame() {
                self.cfg.frame_timeout_s
            } else {
                self.cfg.idle_timeout_s
            };
            let next = tokio::time::timeout(Duration::from_secs(limit), frames.next()).await;
            let ignored = frames.take_ignored();
            if ignored > 0 {
                tracing::warn!(listener = %name, %peer, bytes = ignored, "ignored bytes outside MLLP frames");
            }
            let reply = match next {
                Err(_) => {
                    let what = if frames.mid_frame() {
                        "an unfinished frame"
                    } else {
                        "an idle connection"
                    };
                    tracing::info!(listener = %name, %peer, "closing {what} after {limit} s");
                    return;
                }
                Ok(Err(e)) => {
                    tracing::debug!(listener = %name, %peer, "connection error: {e}");
                    return;
                }
                Ok(Ok(None)) => {
                    tracing::debug!(listener = %name, %peer, "disconnected");
                    return;
                }
                Ok(Ok(Some(Frame::TooLarge { limit }))) => {
                    let why = format!("message larger than max_message_kb = {} KiB", limit / 1024);
                    tracing::warn!(listener = %name, %peer, "rejected (AR): {why}; closing the connection");
                    let ack = reject(b"", 207, why);
                    self.sent(&ack);
                    let _ = wr.write_all(&frame(&ack)).await;
                    return;
                }
                Ok(Ok(Some(Frame::Message(bytes)))) => {
                    self.status.message();
                    self.handle(bytes, peer).await
                }
            };
            let Some(ack) = reply else { continue };
            self.sent(&ack);
            if let Err(e) = wr.write_all(&frame(&ack)).await {
                tracing::warn!(listener = %name, %peer, "cannot send the ACK: {e}");
                return;
            }
        }
    }

    /// Counts an ACK about to be sent, by its code.
    fn sent(&self, ack: &[u8]) {
        let code = ack_code(ack).unwrap_or("other");
        crate::telemetry::ack_sent(&self.cfg.name, code);
        self.status.ack(code);
    }

    /// Journals one message and returns the ACK to send, if any.
    async fn handle(self: &Arc<Self>, bytes: Vec<u8>, peer: SocketAddr) -> Option<Vec<u8>> {
        let name = &self.cfg.name;
        let mut accepted = match screen(bytes, self.reading) {
            Screened::Refused { ack, why } => {
                tracing::warn!(listener = %name, %peer, "rejected (AR): {why}");
                return Some(ack);
            }
            Screened::Accepted(a) => a,
        };
        // With application ACKs the ACK is known (and stored) only later.
        let application = self.cfg.ack == AckWhen::Application;
        let commit_ack = if application {
            None
        } else {
            accepted.answer(AckCode::AA, None)
        };
        let window_ms = (self.cfg.duplicate_window_s as i64) * 1000;
        let receipt = Receipt {
            listener: name.clone(),
            sender: accepted.sender.clone(),
            control_id: accepted.control_id.clone(),
            ack: commit_ack.clone(),
            duplicate_since_ms: (window_ms > 0).then(|| journal::now_ms() - window_ms),
        };
        let text = std::mem::take(&mut accepted.text);
        let item = Inbound::Hl7(Hl7Item::parsed(
            &accepted.message,
            text,
            accepted.raw.take(),
        ));
        let control_id = &accepted.control_id;
        let (event_id, routed) = match self.intake.submit_received(name, item, receipt).await {
            Ok((Received::New(id), routed)) => (id, routed),
            Ok((
                Received::Duplicate {
                    event_id,
                    ack,
                    reply,
                    ..
                },
                routed,
            )) => {
                tracing::info!(listener = %name, %peer, control_id = %control_id, event = event_id, "duplicate: answered with the original ACK, not processed again");
                return match (ack, reply) {
                    (Some(ack), _) => Some(ack),
                    // The bot's outcome was committed but its ACK was not
                    // recorded (the host stopped in between): answer from it.
                    (None, Some(reply)) if application => {
                        Some(self.record_ack(event_id, &accepted, reply).await)
                    }
                    (None, None) if application => {
                        self.application_ack(event_id, accepted, routed).await
                    }
                    (None, _) => accepted.answer(AckCode::AA, None),
                };
            }
            Err(e) => {
                tracing::error!(listener = %name, %peer, control_id = %control_id, "not journaled, sender must resend: {e:#}");
                let why = format!("message not stored ({e}); resend it");
                return accepted.answer(AckCode::AR, Some(&AckError::new(207, why)));
            }
        };
        tracing::debug!(listener = %name, %peer, control_id = %control_id, event = event_id, "journaled");
        if application {
            self.application_ack(event_id, accepted, routed).await
        } else {
            commit_ack
        }
    }

    /// Waits for the bot's outcome of `event_id` (for the first copy of a
    /// message and for its resends alike) and answers with the ACK recorded
    /// for it. When the bot takes longer than the listener waits, the
    /// answer is AE "resend later" and the wait goes on in the background,
    /// so the bot's ACK is still recorded for the resend. A message no bot
    /// subscribes to (`routed` false) is answered AE at once.
    async fn application_ack(
        self: &Arc<Self>,
        event_id: i64,
        accepted: Accepted,
        routed: bool,
    ) -> Option<Vec<u8>> {
        if !routed {
            // The host's own answer, not a bot's: it goes to the sender as is.
            let why = AckError::new(207, "no bot subscribes to this message");
            let ack = accepted.application(AckCode::AE, Some(&why));
            return Some(self.record(event_id, ack).await);
        }
        let limit = self.application_timeout;
        let mut outcome = self.replies.wait(event_id);
        if let Ok(Ok(reply)) = tokio::time::timeout(limit, &mut outcome).await {
            return Some(self.record_ack(event_id, &accepted, reply).await);
        }
        let why = format!(
            "no bot answered within {} ms; still processing as event {event_id}, resend later",
            limit.as_millis()
        );
        tracing::warn!(listener = %self.cfg.name, event = event_id, "application ACK AE: {why}");
        let ack = accepted.application(AckCode::AE, Some(&AckError::new(207, why)));
        // Resends are recognised for `duplicate_window_s`: keep waiting that
        // long for the ACK they will get.
        let window = Duration::from_secs(self.cfg.duplicate_window_s);
        let this = self.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(window, outcome).await {
                Ok(Ok(reply)) => {
                    this.record_ack(event_id, &accepted, reply).await;
                }
                _ => this.replies.forget(event_id),
            }
        });
        Some(ack)
    }

    /// Turns the bot's outcome into the ACK and records it for resends.
    /// Returns the ACK recorded: the first recorded for the event, so every
    /// copy of a message gets the same bytes.
    async fn record_ack(&self, event_id: i64, accepted: &Accepted, reply: AppReply) -> Vec<u8> {
        let ack = match reply {
            AppReply::Ack(Some(text)) => accepted.encode_text(&text),
            AppReply::Ack(None) => accepted.application(AckCode::AA, None),
            AppReply::Failed(reason) => {
                // The reason may quote patient data: it goes to the sender
                // only when the listener opts in.
                let generic = format!("processing failed (event {event_id})");
                tracing::warn!(listener = %self.cfg.name, event = event_id, "application ACK AE: {generic}");
                let text = if self.cfg.detailed_errors {
                    reason
                } else {
                    generic
                };
                accepted.application(AckCode::AE, Some(&AckError::new(207, text)))
            }
        };
        self.record(event_id, ack).await
    }

    /// Records `ack` as the answer to `event_id` for resends; returns the
    /// one recorded first, so every copy of a message gets the same bytes.
    async fn record(&self, event_id: i64, ack: Vec<u8>) -> Vec<u8> {
        match self
            .intake
            .journal()
            .receipt_ack(event_id, ack.clone())
            .await
        {
            Ok(Ok(recorded)) => recorded,
            Ok(Err(e)) => {
                tracing::warn!(listener = %self.cfg.name, event = event_id, "cannot record the application ACK: {e}");
                ack
            }
            Err(_) => ack,
        }
    }
}
