//! The client side of MLLP, shared by MLLP destinations and `interlink
//! send`: where the receiver is and how to reach it (plain or TLS, with an
//! optional client certificate; HTTP destinations reach theirs the same
//! way), a connection, and one exchange on it: send
//! a framed message and wait for the ACK whose MSA-2 names it (ACKs for
//! other messages are skipped).

use std::time::Duration;

use anyhow::Context;
use interlink_sdk::hl7::{AckCode, Charset, Message, charset};
use tokio::io::{AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;

use super::{Frame, FrameReader, Stream, frame};
use crate::config::ClientTls;

/// Largest ACK accepted.
const MAX_ACK: usize = 1024 * 1024;

/// A receiver: `host:port`, and the TLS settings to reach it with.
pub struct Endpoint {
    host: String,
    port: u16,
    tls: Option<(
        tokio_rustls::TlsConnector,
        rustls_pki_types::ServerName<'static>,
    )>,
}

/// An open connection to an [`Endpoint`].
pub struct Connection {
    acks: FrameReader<ReadHalf<Stream>>,
    out: WriteHalf<Stream>,
}

/// What an ACK said about a message.
#[derive(Debug, PartialEq, Eq)]
pub struct AckReport {
    pub code: AckCode,
    /// ERR-8 or MSA-3, whichever explains more.
    pub text: String,
}

impl Endpoint {
    /// `host:port`, over TLS when `tls` is given (its `server_name`, or
    /// `host`, is what the certificate must name).
    pub fn new(host: &str, port: u16, tls: Option<&ClientTls>) -> anyhow::Result<Self> {
        let tls = match tls {
            Some(t) => {
                let config = crate::tls::client_config(t)?;
                let server = t.server_name.clone().unwrap_or_else(|| host.to_string());
                let server = rustls_pki_types::ServerName::try_from(server)
                    .context("bad TLS server name")?;
                Some((tokio_rustls::TlsConnector::from(config), server))
            }
            None => None,
        };
        Ok(Endpoint {
            host: host.to_string(),
            port,
            tls,
        })
    }

    /// Opens an MLLP connection within `timeout`.
    pub async fn connect(&self, timeout: Duration) -> Result<Connection, String> {
        let (rd, out) = tokio::io::split(self.open(timeout).await?);
        Ok(Connection {
            acks: FrameReader::new(rd, MAX_ACK),
            out,
        })
    }

    /// Opens a stream (TCP, TLS over it when configured) within `timeout`;
    /// HTTP destinations speak HTTP/1.1 over it.
    pub async fn open(&self, timeout: Duration) -> Result<Stream, String> {
        let (host, port) = (&self.host, self.port);
        let open = async {
            let tcp = TcpStream::connect((host.as_str(), port))
                .await
                .map_err(|e| e.to_string())?;
            let _ = tcp.set_nodelay(true);
            let stream: Stream = match &self.tls {
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
        tokio::time::timeout(timeout, open)
            .await
            .map_err(|_| {
                format!(
                    "no connection to {host}:{port} within {} s",
                    timeout.as_secs()
                )
            })?
            .map_err(|e| format!("cannot connect to {host}:{port}: {e}"))
    }
}

impl Connection {
    /// Sends `message` (unframed bytes) and waits up to `timeout` for the
    /// ACK that names it (MSA-2 = `control_id`). After an error the
    /// connection should be dropped: a late ACK on it would be ambiguous.
    pub async fn exchange(
        &mut self,
        message: &[u8],
        control_id: &str,
        timeout: Duration,
    ) -> Result<AckReport, String> {
        let out = &mut self.out;
        out.write_all(&frame(message))
            .await
            .map_err(|e| format!("send failed: {e}"))?;
        out.flush().await.map_err(|e| format!("send failed: {e}"))?;
        let acks = &mut self.acks;
        let wait = async {
            loop {
                match acks.next().await {
                    Ok(Some(Frame::Message(bytes))) => {
                        if let Some(report) = read_ack(&bytes, control_id)? {
                            return Ok(report);
                        }
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
}

/// What an ACK frame says about the message `control_id`; `None` for an
/// ACK of another message.
fn read_ack(bytes: &[u8], control_id: &str) -> Result<Option<AckReport>, String> {
    let text = match charset::decode_declared(bytes, Charset::Utf8) {
        Ok((_, t)) => t.into_owned(),
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    };
    let Ok(ack) = Message::parse(&text) else {
        return Err(format!("unreadable ACK of {} bytes", bytes.len()));
    };
    if ack.get("MSA-2").as_deref() != Some(control_id) {
        tracing::warn!(
            "skipping an ACK for another message (MSA-2 {:?})",
            ack.get_raw("MSA-2").unwrap_or("")
        );
        return Ok(None);
    }
    let Some(code) = ack.get("MSA-1").and_then(|c| AckCode::parse(&c)) else {
        return Err(format!(
            "ACK without a valid MSA-1: {:?}",
            ack.get_raw("MSA-1").unwrap_or("")
        ));
    };
    let text = ack
        .get("ERR-8")
        .or_else(|| ack.get("MSA-3"))
        .unwrap_or_default()
        .into_owned();
    Ok(Some(AckReport { code, text }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_are_matched_by_msa_2_and_explained() {
        let ack = |msa: &str, err: &str| {
            format!("MSH|^~\\&|R|F|S|F|2026||ACK|9|P|2.5\rMSA|{msa}\r{err}").into_bytes()
        };
        assert_eq!(read_ack(&ack("AA|M1", ""), "M2"), Ok(None));
        assert_eq!(
            read_ack(&ack("AE|M1|short", "ERR|||207|E||||full reason\r"), "M1"),
            Ok(Some(AckReport {
                code: AckCode::AE,
                text: "full reason".into()
            }))
        );
        assert!(
            read_ack(&ack("ZZ|M1", ""), "M1")
                .unwrap_err()
                .contains("MSA-1")
        );
        assert!(
            read_ack(b"garbage", "M1")
                .unwrap_err()
                .contains("unreadable ACK")
        );
    }
}
