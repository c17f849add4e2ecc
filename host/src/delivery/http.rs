//! HTTP destinations: each message is one HTTP/1.1 request on a kept-alive
//! connection (plain or TLS, reached like an MLLP receiver), one request in
//! flight per lane. A message is delivered only on a 2xx answer; 408, 429,
//! 5xx, a timeout or a broken connection leave it to be retried, not before
//! the answer's `Retry-After`; any other answer dead-letters it with the
//! status and the first KiB of the body. Every request carries the outbox
//! id as `Idempotency-Key` and `X-Request-Id`, so a receiver can recognise
//! a message sent again after a crash.

use std::time::Duration;

use anyhow::Context;
use base64::Engine;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

use super::{DeliveryError, Reason};
use crate::config::HttpDestination;
use crate::journal::{OutboxRow, Payload};
use crate::mllp::client::Endpoint;

/// How much of a refusal's body the dead letter quotes.
const QUOTED_BODY: usize = 1024;
/// Media type of HL7 text sent to an HTTP destination.
const HL7_MEDIA_TYPE: &str = "x-application/hl7-v2+er7";

pub struct HttpSink {
    endpoint: Endpoint,
    /// The `Host` header: the url's host and port as written.
    authority: HeaderValue,
    /// The url's path, which a message's path goes below.
    base_path: String,
    method: Method,
    /// The configured headers, `Authorization` and `User-Agent`.
    headers: HeaderMap,
    /// `Content-Type` of HL7 text, in the destination's character set.
    hl7_type: HeaderValue,
    connect_timeout: Duration,
    timeout: Duration,
    conn: Option<SendRequest<Full<Bytes>>>,
}

impl HttpSink {
    /// The sink of a checked configuration; credentials are read from the
    /// environment now, and an error names the key.
    pub fn new(name: &str, cfg: &HttpDestination, charset: &str) -> anyhow::Result<Self> {
        let fail = |e: anyhow::Error| anyhow::anyhow!("destination {name:?}: {e:#}");
        let url: http::Uri = cfg.url.parse().context("url").map_err(fail)?;
        let (host, https) = (
            url.host().unwrap_or_default(),
            url.scheme_str() == Some("https"),
        );
        let port = url.port_u16().unwrap_or(if https { 443 } else { 80 });
        let mut headers = HeaderMap::new();
        for (k, v) in &cfg.headers {
            headers.append(HeaderName::try_from(k)?, HeaderValue::try_from(v)?);
        }
        headers.insert(header::USER_AGENT, HeaderValue::from_static(USER_AGENT));
        if let Some(auth) = authorization(cfg).map_err(fail)? {
            headers.insert(header::AUTHORIZATION, auth);
        }
        Ok(HttpSink {
            endpoint: Endpoint::new(host.trim_matches(['[', ']']), port, cfg.tls.as_ref())
                .map_err(fail)?,
            authority: HeaderValue::try_from(url.authority().map_or(host, |a| a.as_str()))?,
            base_path: url.path().to_string(),
            method: Method::from_bytes(cfg.method.as_bytes())?,
            headers,
            hl7_type: HeaderValue::try_from(format!("{HL7_MEDIA_TYPE}; charset={charset}"))?,
            connect_timeout: Duration::from_secs(cfg.connect_timeout_s),
            timeout: Duration::from_secs(cfg.timeout_s),
            conn: None,
        })
    }

    /// Whether a connection is open.
    pub fn connected(&self) -> bool {
        self.conn.as_ref().is_some_and(|c| !c.is_closed())
    }

    pub async fn deliver(&mut self, row: &OutboxRow, bytes: &[u8]) -> Result<(), DeliveryError> {
        let request = self.request(row, bytes)?;
        // `timeout_s` runs from sending the request; connecting has
        // `connect_timeout_s`.
        let timeout = self.timeout;
        let sender = self
            .ready()
            .await
            .map_err(|why| DeliveryError::Transient(why.into()))?;
        let answer = tokio::time::timeout(timeout, exchange(sender, request)).await;
        let (status, retry_after, body) = match answer {
            Ok(Ok(answer)) => answer,
            Ok(Err(why)) => {
                self.conn = None;
                return Err(DeliveryError::Transient(why.into()));
            }
            Err(_) => {
                // A late answer on this connection would be ambiguous.
                self.conn = None;
                let why = format!("no answer within timeout_s = {}", timeout.as_secs());
                return Err(DeliveryError::Transient(why.into()));
            }
        };
        // The receiver's body may name the patient: a quote (see `Reason`).
        let said = Reason {
            text: format!("HTTP {status}"),
            quote: (!body.is_empty()).then(|| String::from_utf8_lossy(&body).into_owned()),
        };
        match status.as_u16() {
            200..=299 => Ok(()),
            408 | 429 | 500..=599 => {
                Err(DeliveryError::Later(said, retry_after.unwrap_or_default()))
            }
            _ => Err(DeliveryError::Permanent(said)),
        }
    }

    /// The request for an outbox row whose wire bytes are `bytes`.
    fn request(
        &self,
        row: &OutboxRow,
        bytes: &[u8],
    ) -> Result<Request<Full<Bytes>>, DeliveryError> {
        let refused = |why: String| DeliveryError::Permanent(why.into());
        let mut headers = self.headers.clone();
        let (mut method, mut target) = (self.method.clone(), self.base_path.clone());
        match &row.payload {
            Payload::Hl7(_) => {
                headers.insert(header::CONTENT_TYPE, self.hl7_type.clone());
            }
            Payload::Bytes {
                content_type, http, ..
            } => {
                if let Some(t) = content_type {
                    let t = HeaderValue::try_from(t)
                        .map_err(|e| refused(format!("content type: {e}")))?;
                    headers.insert(header::CONTENT_TYPE, t);
                }
                if let Some(http) = http {
                    if let Some(m) = &http.method {
                        method = Method::from_bytes(m.as_bytes())
                            .map_err(|e| refused(format!("method {m:?}: {e}")))?;
                    }
                    if let Some(path) = &http.path {
                        target = format!("{}/{}", target.trim_end_matches('/'), encode_path(path));
                    }
                    // A message's header replaces the destination's of that name.
                    let own: Vec<(HeaderName, HeaderValue)> = http
                        .headers
                        .iter()
                        .map(|(k, v)| Ok((HeaderName::try_from(k)?, HeaderValue::try_from(v)?)))
                        .collect::<Result<_, http::Error>>()
                        .map_err(|e| refused(format!("header: {e}")))?;
                    for (k, _) in &own {
                        headers.remove(k);
                    }
                    for (k, v) in own {
                        headers.append(k, v);
                    }
                }
            }
        }
        let id = HeaderValue::from(row.id);
        headers.insert(header::HOST, self.authority.clone());
        headers.insert(HeaderName::from_static("idempotency-key"), id.clone());
        headers.insert(HeaderName::from_static("x-request-id"), id);
        let mut request = Request::builder()
            .method(method)
            .uri(if target.is_empty() {
                "/".into()
            } else {
                target
            })
            .body(Full::new(Bytes::copy_from_slice(bytes)))
            .map_err(|e| refused(format!("cannot make the request: {e}")))?;
        *request.headers_mut() = headers;
        Ok(request)
    }

    /// The connection, ready for a request: the kept-alive one unless the
    /// receiver closed it, else a new one.
    async fn ready(&mut self) -> Result<&mut SendRequest<Full<Bytes>>, String> {
        let alive = match &mut self.conn {
            Some(conn) => conn.ready().await.is_ok(),
            None => false,
        };
        if alive {
            return Ok(self.conn.as_mut().expect("checked above"));
        }
        self.conn = None;
        let stream = self.endpoint.open(self.connect_timeout).await?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("HTTP handshake failed: {e}"))?;
        // Ends when the receiver closes the connection or the sink drops it.
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("HTTP connection closed: {e}");
            }
        });
        Ok(self.conn.insert(sender))
    }
}

/// Sends `request` on `sender` and reads the answer: its status,
/// `Retry-After` and the start of its body.
async fn exchange(
    sender: &mut SendRequest<Full<Bytes>>,
    request: Request<Full<Bytes>>,
) -> Result<(StatusCode, Option<Duration>, Vec<u8>), String> {
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("request failed: {e}"))?;
    let retry_after = response
        .headers()
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| retry_after(v, chrono::Utc::now()));
    let status = response.status();
    let mut body = response.into_body();
    let mut start = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("answer cut short: {e}"))?;
        if let Some(data) = frame.data_ref() {
            let room = QUOTED_BODY.saturating_sub(start.len());
            start.extend_from_slice(&data[..room.min(data.len())]);
        }
    }
    Ok((status, retry_after, start))
}

const USER_AGENT: &str = concat!("interlink/", env!("CARGO_PKG_VERSION"));

/// The `Authorization` header `auth` asks for, from the environment.
fn authorization(cfg: &HttpDestination) -> anyhow::Result<Option<HeaderValue>> {
    let Some(auth) = &cfg.auth else {
        return Ok(None);
    };
    let value = match (&auth.bearer_env, &auth.basic_user, &auth.basic_password_env) {
        (Some(var), _, _) => {
            let token = crate::secret::from_env(var).context("auth.bearer_env")?;
            format!("Bearer {token}")
        }
        (None, Some(user), Some(var)) => {
            let password = crate::secret::from_env(var).context("auth.basic_password_env")?;
            let pair =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            format!("Basic {pair}")
        }
        _ => anyhow::bail!("auth: set bearer_env, or basic_user and basic_password_env"),
    };
    let mut value = HeaderValue::try_from(value).context("auth: not usable in a header")?;
    value.set_sensitive(true);
    Ok(Some(value))
}

/// `path` with every byte a request target may not hold percent-encoded
/// (`|` in a FHIR search becomes `%7C`); `%` is kept, so a path the bot
/// encoded itself goes as it is.
fn encode_path(path: &str) -> String {
    const KEPT: &[u8] = b"-._~!$&'()*+,;=:@/?%";
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || KEPT.contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// How long a `Retry-After` value (seconds, or an HTTP date) asks to wait
/// from `now`.
fn retry_after(value: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    if let Ok(seconds) = value.trim().parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value.trim()).ok()?;
    Some(
        (at.with_timezone(&chrono::Utc) - now)
            .to_std()
            .unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_encoded_for_the_request_line() {
        assert_eq!(
            encode_path("Patient?identifier=http://h.org/mrn|12 3"),
            "Patient?identifier=http://h.org/mrn%7C12%203"
        );
        assert_eq!(encode_path("Müller%7C"), "M%C3%BCller%7C");
    }

    #[test]
    fn retry_after_takes_seconds_or_a_date() {
        let now = chrono::DateTime::parse_from_rfc2822("Wed, 21 Oct 2026 07:28:00 GMT")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(
            retry_after("Wed, 21 Oct 2026 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            retry_after("Wed, 21 Oct 2026 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after("soon", now), None);
    }
}
