//! MLLP listeners (`[[listener]]`): accept connections (plain or TLS, with
//! optional client certificates), read framed messages, and answer each
//! with an ACK only once the message is durably journaled (`ack =
//! "commit"`) or once its bot has run (`ack = "application"`). Bad input is
//! answered with AR and an ERR segment, never with silence or a crash; a
//! resend of a message already received gets the original ACK again.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use interlink_sdk::hl7::{self, AckCode, AckError, AckMode, Charset, Message, charset};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::config::{AckWhen, ListenerConfig};
use crate::intake::{Hl7Item, Inbound, Intake, Provenance};
use crate::journal::{self, Reader, Receipt};
use crate::mllp::{Frame, FrameReader, frame};
use crate::runtime::Runtime;
use crate::runtime::replies::AppReply;

/// Longest a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

struct Listener {
    cfg: ListenerConfig,
    intake: Intake,
    runtime: Arc<Runtime>,
    reader: Mutex<Reader>,
}

/// Binds the listener; the returned future serves it until the process
/// ends.
pub async fn bind(
    cfg: ListenerConfig,
    intake: Intake,
    runtime: Arc<Runtime>,
) -> Result<impl std::future::Future<Output = ()>> {
    let tls = match &cfg.tls {
        Some(t) => Some(tokio_rustls::TlsAcceptor::from(
            crate::tls::server_config(t)
                .with_context(|| format!("listener {:?}: tls", cfg.name))?,
        )),
        None => None,
    };
    let socket = TcpListener::bind(&cfg.listen)
        .await
        .with_context(|| format!("listener {:?}: cannot listen on {}", cfg.name, cfg.listen))?;
    tracing::info!(
        listener = %cfg.name,
        tls = tls.is_some(),
        mutual_tls = cfg.tls.as_ref().is_some_and(|t| t.client_ca.is_some()),
        ack = ?cfg.ack,
        "listening on {}",
        socket.local_addr()?
    );
    let reader = Mutex::new(intake.journal().reader()?);
    let listener = Arc::new(Listener {
        cfg,
        intake,
        runtime,
        reader,
    });
    Ok(async move {
        loop {
            let (stream, peer) = match socket.accept().await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(listener = %listener.cfg.name, "accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let listener = listener.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                match tls {
                    None => listener.serve(stream, peer).await,
                    Some(acceptor) => {
                        match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
                        {
                            Ok(Ok(s)) => listener.serve(s, peer).await,
                            Ok(Err(e)) => {
                                tracing::warn!(listener = %listener.cfg.name, %peer, "TLS handshake refused: {e}")
                            }
                            Err(_) => {
                                tracing::warn!(listener = %listener.cfg.name, %peer, "TLS handshake timed out")
                            }
                        }
                    }
                }
            });
        }
    })
}

/// The ACK as bytes in the message's character set (characters it cannot
/// carry become `?`: an ACK must always go out).
fn ack_bytes(ack: &Message, charset: Charset) -> Vec<u8> {
    charset
        .encode(ack.as_str())
        .map(|b| b.into_owned())
        .unwrap_or_else(|_| {
            ack.as_str()
                .chars()
                .map(|c| if c.is_ascii() { c as u8 } else { b'?' })
                .collect()
        })
}

impl Listener {
    async fn serve<S: AsyncRead + AsyncWrite + Unpin>(&self, stream: S, peer: SocketAddr) {
        let name = &self.cfg.name;
        tracing::debug!(listener = %name, %peer, "connected");
        let (rd, mut wr) = tokio::io::split(stream);
        let mut frames = FrameReader::new(rd, self.cfg.max_message_kb * 1024);
        loop {
            let limit = if frames.mid_frame() {
                self.cfg.frame_timeout_s
            } else {
                self.cfg.idle_timeout_s
            };
            let next = tokio::time::timeout(Duration::from_secs(limit), frames.next()).await;
            if frames.ignored > 0 {
                tracing::warn!(listener = %name, %peer, bytes = frames.ignored, "ignored bytes outside MLLP frames");
                frames.ignored = 0;
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
                    let ack = hl7::reject(
                        "",
                        AckCode::AR,
                        &AckError::new(207, why),
                        &hl7::new_control_id(),
                    );
                    let _ = wr.write_all(&frame(ack.as_str().as_bytes())).await;
                    return;
                }
                Ok(Ok(Some(Frame::Message(bytes)))) => self.handle(bytes, peer).await,
            };
            if let Some(ack) = reply
                && let Err(e) = wr.write_all(&frame(&ack)).await
            {
                tracing::warn!(listener = %name, %peer, "cannot send the ACK: {e}");
                return;
            }
        }
    }

    /// A negative ACK for bytes that are not a usable message.
    fn refuse(&self, bytes: &[u8], peer: SocketAddr, code: u16, why: String) -> Option<Vec<u8>> {
        tracing::warn!(listener = %self.cfg.name, %peer, "rejected (AR): {why}");
        let text = String::from_utf8_lossy(bytes);
        let ack = hl7::reject(
            &text,
            AckCode::AR,
            &AckError::new(code, why),
            &hl7::new_control_id(),
        );
        Some(ack.as_str().as_bytes().to_vec())
    }

    /// Journals one message and returns the ACK to send, if any.
    async fn handle(&self, bytes: Vec<u8>, peer: SocketAddr) -> Option<Vec<u8>> {
        let cs = match charset::charset_of(&bytes, self.cfg.encoding) {
            Ok(cs) => cs,
            Err(e) => return self.refuse(&bytes, peer, 207, e.to_string()),
        };
        let text = match cs.decode(&bytes) {
            Ok(t) => t.into_owned(),
            Err(e) => return self.refuse(&bytes, peer, 102, e.to_string()),
        };
        let msg = match Message::parse(&text) {
            Ok(m) => m,
            Err(e) => return self.refuse(&bytes, peer, 100, e.to_string()),
        };
        // In enhanced mode the listener's ACK is the accept ACK (CA/CE/CR),
        // sent only when MSH-15 asks for it.
        let accept = match self.cfg.enhanced_mode.then(|| AckMode::of(&msg)) {
            Some(AckMode::Enhanced { accept, .. }) => Some(accept),
            _ => None,
        };
        let answer = |code: AckCode, error: Option<AckError>| -> Option<Vec<u8>> {
            let code = if accept.is_some() {
                code.to_commit()
            } else {
                code
            };
            let wanted = accept.is_none_or(|a| a.wants(code));
            wanted.then(|| {
                ack_bytes(
                    &hl7::ack(&msg, code, error.as_ref(), &hl7::new_control_id()),
                    cs,
                )
            })
        };
        let sender = format!(
            "{}^{}",
            msg.get_raw("MSH-3").unwrap_or(""),
            msg.get_raw("MSH-4").unwrap_or("")
        );
        let control_id = msg.control_id().into_owned();
        let name = &self.cfg.name;

        if let Some(previous) = self.duplicate_of(&sender, &control_id) {
            tracing::info!(listener = %name, %peer, control_id = %control_id, event = previous.0, "duplicate: answered with the original ACK, not processed again");
            return match previous.1 {
                Some(ack) => Some(ack),
                None => answer(AckCode::AA, None),
            };
        }

        // With application ACKs the ACK is known (and stored) only later.
        let application = self.cfg.ack == AckWhen::Application;
        let commit_ack = if application {
            None
        } else {
            answer(AckCode::AA, None)
        };
        let receipt = Receipt {
            listener: name.clone(),
            sender,
            control_id: control_id.clone(),
            ack: commit_ack.clone(),
        };
        let raw = (bytes != text.as_bytes()).then_some(bytes);
        let item = Inbound::Hl7(Hl7Item::parsed(&msg, text, raw));
        let event_id = match self
            .intake
            .submit(name, vec![item], Some(Provenance::Listener(receipt)))
            .await
        {
            Ok(ids) => ids[0],
            Err(e) => {
                tracing::error!(listener = %name, %peer, control_id = %control_id, "not journaled, sender must resend: {e:#}");
                return answer(
                    AckCode::AR,
                    Some(AckError::new(
                        207,
                        format!("message not stored ({e}); resend it"),
                    )),
                );
            }
        };
        tracing::debug!(listener = %name, %peer, control_id = %control_id, event = event_id, "journaled");
        if !application {
            return commit_ack;
        }
        let reply = self.application_ack(event_id, &msg, cs).await;
        if let Some(ack) = &reply {
            let _ = self
                .intake
                .journal()
                .receipt_ack(event_id, ack.clone())
                .await;
        }
        reply
    }

    /// Waits for the bot and turns its outcome into the ACK.
    async fn application_ack(&self, event_id: i64, msg: &Message, cs: Charset) -> Option<Vec<u8>> {
        let limit = Duration::from_millis(
            self.cfg
                .application_timeout_ms
                .unwrap_or(self.runtime.config().plugins.timeout_ms + 1000),
        );
        let reply = tokio::time::timeout(limit, self.runtime.replies.wait(event_id)).await;
        let (code, error) = match reply {
            Ok(Ok(AppReply::Ack(Some(text)))) => {
                return Some(
                    cs.encode(&text)
                        .map(|b| b.into_owned())
                        .unwrap_or_else(|_| text.into_bytes()),
                );
            }
            Ok(Ok(AppReply::Ack(None))) => (AckCode::AA, None),
            Ok(Ok(AppReply::Failed(why))) => (AckCode::AE, Some(AckError::new(207, why))),
            Ok(Err(_)) | Err(_) => {
                self.runtime.replies.forget(event_id);
                let why = format!(
                    "no bot answered within {} ms; the message is journaled as event {event_id}",
                    limit.as_millis()
                );
                (AckCode::AE, Some(AckError::new(207, why)))
            }
        };
        if let Some(e) = &error {
            tracing::warn!(listener = %self.cfg.name, event = event_id, "application ACK AE: {}", e.text);
        }
        Some(ack_bytes(
            &hl7::ack(msg, code, error.as_ref(), &hl7::new_control_id()),
            cs,
        ))
    }

    /// The event and ACK of an earlier copy of this message within the
    /// duplicate window.
    fn duplicate_of(&self, sender: &str, control_id: &str) -> Option<(i64, Option<Vec<u8>>)> {
        let window = self.cfg.duplicate_window_s;
        if window == 0 || control_id.is_empty() {
            return None;
        }
        let since = journal::now_ms() - (window as i64) * 1000;
        let found = self.reader.lock().expect("reader lock").receipt(
            &self.cfg.name,
            sender,
            control_id,
            since,
        );
        found.unwrap_or_else(|e| {
            tracing::warn!(listener = %self.cfg.name, "duplicate check failed: {e}");
            None
        })
    }
}
