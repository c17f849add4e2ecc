//! Who is calling: bearer tokens from `[[http.token]]`, the dashboard's
//! session cookies with their CSRF tokens, the extractors handlers use to
//! require a role, and the audit line every write action leaves.
//!
//! Tokens are compared in constant time: the presented token and every
//! configured one are hashed (SHA-256) and all digests are compared with
//! `subtle`, so neither the length nor the first differing byte of a token
//! shows in the response time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use anyhow::Result;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{Method, header};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::AppState;
use super::error::ApiError;
use crate::config::{HttpConfig, Role};

/// Name of the dashboard's session cookie.
pub const SESSION_COOKIE: &str = "interlink_session";
/// Header carrying the session's CSRF token on requests that change state.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// A configured token.
struct Token {
    name: String,
    role: Role,
    digest: [u8; 32],
}

/// The configured tokens.
pub struct Tokens(Vec<Token>);

fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

impl Tokens {
    /// Reads every token's secret.
    pub fn from_config(cfg: &HttpConfig) -> Result<Tokens> {
        let tokens = cfg
            .tokens
            .iter()
            .map(|t| {
                Ok(Token {
                    name: t.name.clone(),
                    role: t.role,
                    digest: digest(&t.secret()?),
                })
            })
            .collect::<Result<_>>()?;
        Ok(Tokens(tokens))
    }

    /// The token `presented` is, compared in constant time.
    fn find(&self, presented: &str) -> Option<&Token> {
        let presented = digest(presented);
        let mut found = None;
        for t in &self.0 {
            if bool::from(t.digest.ct_eq(&presented)) {
                found = Some(t);
            }
        }
        found
    }

    /// The role of the token a session was opened with, if it is still
    /// configured with the same secret (a rotated secret ends its sessions).
    fn role_of(&self, session: &Session) -> Option<Role> {
        self.0
            .iter()
            .find(|t| t.name == session.token && t.digest == session.digest)
            .map(|t| t.role)
    }
}

/// A dashboard sign-in.
#[derive(Clone)]
pub struct Session {
    /// The token signed in with.
    pub token: String,
    /// Must accompany every request of this session that changes state.
    pub csrf: String,
    /// The digest of the token's secret at sign-in.
    digest: [u8; 32],
    expires: Instant,
}

impl Session {
    /// Whether `sent` is this session's CSRF token (compared in constant
    /// time).
    pub fn csrf_ok(&self, sent: &str) -> bool {
        bool::from(sent.as_bytes().ct_eq(self.csrf.as_bytes()))
    }
}

/// The answer to a request whose CSRF token is missing or wrong.
pub fn csrf_refused() -> ApiError {
    ApiError::forbidden("missing or wrong CSRF token")
}

/// Tokens and sessions; the tokens are replaced when the configuration is
/// reloaded, and sessions of a token that is gone, or whose secret has
/// changed, stop working.
pub struct Auth {
    tokens: RwLock<Arc<Tokens>>,
    sessions: Mutex<HashMap<String, Session>>,
    session_lifetime: Duration,
}

/// A random identifier: 32 bytes, hex.
pub fn random_id() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random source");
    hex::encode(bytes)
}

impl Auth {
    pub fn new(tokens: Tokens, session_lifetime: Duration) -> Auth {
        Auth {
            tokens: RwLock::new(Arc::new(tokens)),
            sessions: Mutex::default(),
            session_lifetime,
        }
    }

    /// Puts `tokens` in place of the current ones.
    pub fn replace_tokens(&self, tokens: Tokens) {
        *self.tokens.write().expect("tokens lock") = Arc::new(tokens);
    }

    fn tokens(&self) -> Arc<Tokens> {
        self.tokens.read().expect("tokens lock").clone()
    }

    /// Checks a bearer token.
    pub fn bearer(&self, presented: &str) -> Option<Caller> {
        let tokens = self.tokens();
        let token = tokens.find(presented)?;
        Some(Caller {
            name: token.name.clone(),
            role: token.role,
            session: None,
        })
    }

    /// Signs in with `presented`: the new session's id, or `None` if the
    /// token is wrong.
    pub fn sign_in(&self, presented: &str) -> Option<(String, Session)> {
        let tokens = self.tokens();
        let token = tokens.find(presented)?;
        let session = Session {
            token: token.name.clone(),
            csrf: random_id(),
            digest: token.digest,
            expires: Instant::now() + self.session_lifetime,
        };
        let id = random_id();
        let mut sessions = self.sessions.lock().expect("sessions lock");
        let now = Instant::now();
        sessions.retain(|_, s| s.expires > now);
        sessions.insert(id.clone(), session.clone());
        Some((id, session))
    }

    pub fn sign_out(&self, session_id: &str) {
        self.sessions
            .lock()
            .expect("sessions lock")
            .remove(session_id);
    }

    /// The caller signed in as session `id`, with the session.
    pub fn session(&self, id: &str) -> Option<(Caller, Session)> {
        let session = self
            .sessions
            .lock()
            .expect("sessions lock")
            .get(id)
            .filter(|s| s.expires > Instant::now())
            .cloned()?;
        let role = self.tokens().role_of(&session)?;
        let caller = Caller {
            name: session.token.clone(),
            role,
            session: Some(id.to_string()),
        };
        Some((caller, session))
    }

    /// Who made the request, if anyone: `Ok(None)` when it carries no
    /// credentials, an error when they are wrong. A request from a session
    /// that changes state must carry the session's CSRF token in
    /// [`CSRF_HEADER`] (the dashboard's forms check their own field).
    pub fn identify(&self, parts: &Parts) -> Result<Option<Caller>, ApiError> {
        if let Some(value) = parts.headers.get(header::AUTHORIZATION) {
            let presented = value
                .to_str()
                .ok()
                .and_then(|v| v.strip_prefix("Bearer "))
                .ok_or_else(ApiError::unauthorized)?;
            return self
                .bearer(presented.trim())
                .map(Some)
                .ok_or_else(ApiError::unauthorized);
        }
        let Some(id) = session_cookie(parts) else {
            return Ok(None);
        };
        let (caller, session) = self.session(id).ok_or_else(ApiError::unauthorized)?;
        let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
        let sent = parts.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
        if !safe && !sent.is_some_and(|s| session.csrf_ok(s)) {
            return Err(csrf_refused());
        }
        Ok(Some(caller))
    }
}

/// The session id in the request's cookie, if any.
pub fn session_cookie(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(SESSION_COOKIE)?.strip_prefix('='))
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The token's name.
    pub name: String,
    pub role: Role,
    /// The dashboard session, when signed in through it.
    pub session: Option<String>,
}

impl Caller {
    pub fn can_write(&self) -> bool {
        self.role == Role::Write
    }

    /// Fails with 403 unless the caller may write.
    pub fn require_write(&self) -> Result<(), ApiError> {
        if self.can_write() {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "token {:?} has the read role; this needs write",
                self.name
            )))
        }
    }

    /// Logs a write action: who, what, on which object (an id or a name,
    /// never message content).
    pub fn audit(&self, action: &str, object: &str) {
        tracing::info!(
            target: "audit",
            token = %self.name,
            action,
            object,
            "audit: {} {action} {object}",
            self.name
        );
    }
}

/// Any authenticated caller (401 otherwise).
impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        state
            .auth
            .identify(parts)?
            .ok_or_else(ApiError::unauthorized)
    }
}

/// A caller with the `write` role (401 without credentials, 403 with a
/// `read` token).
pub struct Writer(pub Caller);

impl FromRequestParts<AppState> for Writer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        caller.require_write()?;
        Ok(Writer(caller))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(name: &str, role: Role, secret: &str) -> Token {
        Token {
            name: name.into(),
            role,
            digest: digest(secret),
        }
    }

    fn auth() -> Auth {
        Auth::new(
            Tokens(vec![
                token("ops", Role::Write, "write-token-0123456789"),
                token("viewer", Role::Read, "read-token-0123456789"),
            ]),
            Duration::from_secs(60),
        )
    }

    fn parts(method: Method, headers: &[(&str, &str)]) -> Parts {
        let mut b = axum::http::Request::builder().method(method).uri("/x");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn bearer_tokens_map_to_their_role() {
        let a = auth();
        let who = |h: &str| {
            a.identify(&parts(Method::GET, &[("authorization", h)]))
                .map(|c| c.map(|c| (c.name, c.role)))
                .map_err(|e| e.status.as_u16())
        };
        assert_eq!(
            who("Bearer write-token-0123456789"),
            Ok(Some(("ops".into(), Role::Write)))
        );
        assert_eq!(
            who("Bearer read-token-0123456789"),
            Ok(Some(("viewer".into(), Role::Read)))
        );
        assert_eq!(who("Bearer nope"), Err(401));
        assert_eq!(who("Basic b3BzOm9wcw=="), Err(401));
        assert!(matches!(a.identify(&parts(Method::GET, &[])), Ok(None)));
    }

    #[test]
    fn sessions_need_their_csrf_token_to_change_state() {
        let a = auth();
        let (id, session) = a.sign_in("write-token-0123456789").unwrap();
        let cookie = format!("theme=dark; {SESSION_COOKIE}={id}");
        let get = parts(Method::GET, &[("cookie", &cookie)]);
        assert_eq!(a.identify(&get).unwrap().unwrap().name, "ops");
        let post = parts(Method::POST, &[("cookie", &cookie)]);
        assert_eq!(a.identify(&post).unwrap_err().status.as_u16(), 403);
        let post = parts(
            Method::POST,
            &[("cookie", &cookie), (CSRF_HEADER, &session.csrf)],
        );
        assert!(a.identify(&post).unwrap().is_some());
        a.replace_tokens(Tokens(Vec::new()));
        assert_eq!(a.identify(&get).unwrap_err().status.as_u16(), 401);
        assert!(a.sign_in("nope").is_none());
    }

    #[test]
    fn a_rotated_secret_ends_the_sessions_signed_in_with_the_old_one() {
        let a = auth();
        let (old, _) = a.sign_in("write-token-0123456789").unwrap();
        let (viewer, _) = a.sign_in("read-token-0123456789").unwrap();
        a.replace_tokens(Tokens(vec![
            token("ops", Role::Write, "rotated-token-0123456789"),
            token("viewer", Role::Read, "read-token-0123456789"),
        ]));
        assert!(a.session(&old).is_none());
        assert_eq!(a.session(&viewer).unwrap().0.name, "viewer");
        let (new, _) = a.sign_in("rotated-token-0123456789").unwrap();
        assert_eq!(a.session(&new).unwrap().0.role, Role::Write);
    }
}
