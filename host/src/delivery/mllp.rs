//! MLLP destinations: one kept-alive connection (plain or TLS) per
//! destination, one message in flight. A message counts as delivered only
//! when an ACK whose MSA-2 matches its MSH-10 says AA or CA; AR/CR (and
//! AE/CE with `on_ae = "dead-letter"`) are final refusals; a timeout or a
//! broken connection drops the connection and leaves the message to be
//! retried.

use std::time::Duration;

use interlink_sdk::hl7::{AckCode, Charset, Message, charset};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;

use super::DeliveryError;
use crate::config::{MllpDestination, OnAe};
use crate::mllp::{Frame, FrameReader, frame};

/// Largest ACK accepted.
const MAX_ACK: usize = 1024 * 1024;

/// A stream MLLP can run over.
pub trait AsyncReadWrite: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> AsyncReadWrite for T {}

/// Reads ACK frames from a connection.
pub type AckReader = FrameReader<ReadHalf<Box<dyn AsyncReadWrite>>>;
/// Writes message frames to a connection.
pub type MessageWriter = WriteHalf<Box<dyn AsyncReadWrite>>;

struct Connection {
    acks: AckReader,
    out: MessageWriter,
}

/// Opens a connection to `host:port` (TLS when `tls` is given), within
/// `timeout`.
pub async fn connect(
    host: &str,
    port: u16,
    tls: Option<&(
        tokio_rustls::TlsConnector,
        rustls_pki_types::ServerName<'static>,
    )>,
    timeout: Duration,
) -> Result<(AckReader, MessageWriter), String> {
    let open = async {
        let tcp = TcpStream::connect((host, port))
            .await
            .map_err(|e| e.to_string())?;
        let _ = tcp.set_nodelay(true);
        let stream: Box<dyn AsyncReadWrite> = match tls {
            Some((connector, name)) => Box::new(
                connector
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(|e| format!("TLS: {e}"))?,
            ),
            None => Box::new(tcp),
        };
        Ok::<_, String>(stream)
    };
    let stream = tokio::time::timeout(timeout, open)
        .await
        .map_err(|_| {
            format!(
                "no connection to {host}:{port} within {} s",
                timeout.as_secs()
            )
        })?
        .map_err(|e| format!("cannot connect to {host}:{port}: {e}"))?;
    let (rd, wr) = tokio::io::split(stream);
    Ok((FrameReader::new(rd, MAX_ACK), wr))
}

/// What an ACK said about a message.
#[derive(Debug, PartialEq, Eq)]
pub struct AckReport {
    pub code: AckCode,
    /// MSA-3 or ERR-8, whichever explains more.
    pub text: String,
    /// The ACK as text.
    pub raw: String,
}

/// Sends one framed message and waits for the ACK that names it (MSA-2 =
/// `control_id`); ACKs for other messages are skipped.
pub async fn exchange<R, W>(
    acks: &mut FrameReader<R>,
    out: &mut W,
    message: &[u8],
    control_id: &str,
    timeout: Duration,
) -> Result<AckReport, String>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    out.write_all(&frame(message))
        .await
        .map_err(|e| format!("send failed: {e}"))?;
    out.flush().await.map_err(|e| format!("send failed: {e}"))?;
    let wait = async {
        loop {
            match acks.next().await {
                Ok(Some(Frame::Message(bytes))) => {
                    let text = match charset::decode_declared(&bytes, Charset::Utf8) {
                        Ok((_, t)) => t.into_owned(),
                        Err(_) => String::from_utf8_lossy(&bytes).into_owned(),
                    };
                    let Ok(ack) = Message::parse(&text) else {
                        return Err(format!(
                            "unreadable ACK: {:?}",
                            text.chars().take(80).collect::<String>()
                        ));
                    };
                    if ack.get("MSA-2").as_deref() != Some(control_id) {
                        tracing::warn!(
                            "skipping an ACK for another message (MSA-2 {:?})",
                            ack.get_raw("MSA-2").unwrap_or("")
                        );
                        continue;
                    }
                    let Some(code) = ack.get("MSA-1").and_then(|c| AckCode::parse(&c)) else {
                        return Err(format!(
                            "ACK without a valid MSA-1: {:?}",
                            ack.get_raw("MSA-1").unwrap_or("")
                        ));
                    };
                    let explanation = ack
                        .get("ERR-8")
                        .or_else(|| ack.get("MSA-3"))
                        .unwrap_or_default()
                        .into_owned();
                    return Ok(AckReport {
                        code,
                        text: explanation,
                        raw: text,
                    });
                }
                Ok(Some(Frame::TooLarge { .. })) => return Err("ACK too large".into()),
                Ok(None) => return Err("connection closed before the ACK".into()),
                Err(e) => return Err(format!("reading the ACK failed: {e}")),
            }
        }
    };
    tokio::time::timeout(timeout, wait)
        .await
        .map_err(|_| format!("no ACK within {} s", timeout.as_secs()))?
}

pub struct MllpSink {
    host: String,
    port: u16,
    connect_timeout: Duration,
    ack_timeout: Duration,
    on_ae: OnAe,
    tls: Option<(
        tokio_rustls::TlsConnector,
        rustls_pki_types::ServerName<'static>,
    )>,
    conn: Option<Connection>,
}

impl MllpSink {
    pub fn new(name: &str, cfg: &MllpDestination) -> anyhow::Result<Self> {
        let host = cfg.host.clone();
        let tls = match &cfg.tls {
            Some(t) => {
                let config = crate::tls::client_config(t)?;
                let server = t.server_name.clone().unwrap_or_else(|| host.clone());
                let server = rustls_pki_types::ServerName::try_from(server).map_err(|e| {
                    anyhow::anyhow!("destination {name:?}: bad TLS server name: {e}")
                })?;
                Some((tokio_rustls::TlsConnector::from(config), server))
            }
            None => None,
        };
        Ok(MllpSink {
            host,
            port: cfg.port,
            connect_timeout: Duration::from_secs(cfg.connect_timeout_s),
            ack_timeout: Duration::from_secs(cfg.ack_timeout_s),
            on_ae: cfg.on_ae,
            tls,
            conn: None,
        })
    }

    pub async fn deliver(&mut self, bytes: &[u8], control_id: &str) -> Result<(), DeliveryError> {
        if self.conn.is_none() {
            let (acks, out) = connect(
                &self.host,
                self.port,
                self.tls.as_ref(),
                self.connect_timeout,
            )
            .await
            .map_err(DeliveryError::Transient)?;
            self.conn = Some(Connection { acks, out });
        }
        let conn = self.conn.as_mut().expect("connected");
        let report = match exchange(
            &mut conn.acks,
            &mut conn.out,
            bytes,
            control_id,
            self.ack_timeout,
        )
        .await
        {
            Ok(r) => r,
            Err(why) => {
                // A late ACK on this connection would be ambiguous: start over.
                self.conn = None;
                return Err(DeliveryError::Transient(why));
            }
        };
        let said = |r: &AckReport| format!("{}: {}", r.code.as_str(), r.text);
        match report.code {
            AckCode::AA | AckCode::CA => Ok(()),
            AckCode::AR | AckCode::CR => Err(DeliveryError::Permanent(said(&report))),
            AckCode::AE | AckCode::CE => match self.on_ae {
                OnAe::Retry => Err(DeliveryError::Transient(said(&report))),
                OnAe::DeadLetter => Err(DeliveryError::Permanent(said(&report))),
            },
        }
    }
}
