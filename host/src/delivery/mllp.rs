//! MLLP destinations: one kept-alive connection (plain or TLS) per
//! destination, one message in flight. A message counts as delivered only
//! when an ACK whose MSA-2 matches its MSH-10 says AA or CA; AR/CR (and
//! AE/CE with `on_ae = "dead-letter"`) are final refusals; a timeout or a
//! broken connection drops the connection and leaves the message to be
//! retried.

use std::time::Duration;

use interlink_sdk::hl7::AckCode;

use super::{DeliveryError, Reason};
use crate::config::{MllpDestination, OnAe};
use crate::mllp::client::{AckReport, Connection, Endpoint};

pub struct MllpSink {
    endpoint: Endpoint,
    connect_timeout: Duration,
    ack_timeout: Duration,
    on_ae: OnAe,
    conn: Option<Connection>,
}

impl MllpSink {
    pub fn new(name: &str, cfg: &MllpDestination) -> anyhow::Result<Self> {
        Ok(MllpSink {
            endpoint: Endpoint::new(&cfg.host, cfg.port, cfg.tls.as_ref())
                .map_err(|e| anyhow::anyhow!("destination {name:?}: {e:#}"))?,
            connect_timeout: Duration::from_secs(cfg.connect_timeout_s),
            ack_timeout: Duration::from_secs(cfg.ack_timeout_s),
            on_ae: cfg.on_ae,
            conn: None,
        })
    }

    /// Whether a connection is open.
    pub fn connected(&self) -> bool {
        self.conn.is_some()
    }

    pub async fn deliver(&mut self, bytes: &[u8], control_id: &str) -> Result<(), DeliveryError> {
        let conn = match &mut self.conn {
            Some(conn) => conn,
            None => {
                let opened = self.endpoint.connect(self.connect_timeout).await;
                self.conn
                    .insert(opened.map_err(|why| DeliveryError::Transient(why.into()))?)
            }
        };
        let report = match conn.exchange(bytes, control_id, self.ack_timeout).await {
            Ok(r) => r,
            Err(why) => {
                // A late ACK on this connection would be ambiguous: start over.
                self.conn = None;
                return Err(DeliveryError::Transient(why.into()));
            }
        };
        // The receiver's text may name the patient: a quote (see `Reason`).
        let said = |r: &AckReport| Reason {
            text: r.code.as_str().to_string(),
            quote: Some(r.text.clone()),
        };
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
