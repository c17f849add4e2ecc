//! A TCP server, as MLLP listeners, the HTTP server and DICOM SCPs use it: a bound
//! socket that accepts connections, plain or TLS (with client certificates
//! for mutual TLS), at most `max_connections` at once, and hands each one to
//! a connection handler. Connections over the limit are accepted and closed
//! at once, and logged without flooding the log.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::config::ListenerTls;
use tokio::io::{AsyncRead, AsyncWrite};

/// A stream a protocol can run over: plain TCP or TLS.
pub trait AsyncReadWrite: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> AsyncReadWrite for T {}

/// A connection, plain or TLS.
pub type Stream = Box<dyn AsyncReadWrite>;

/// Longest a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Refused connections are logged at most this often, with a count.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(1);

/// A listening socket and how it accepts connections.
pub struct Server {
    /// The listener's name (`http` for the HTTP server), for the log.
    name: String,
    socket: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    max_connections: usize,
    /// The config key of `max_connections`, for the log.
    limit_key: &'static str,
}

impl Server {
    /// Binds `listen` (`host:port`), with TLS when `tls` is given.
    pub async fn bind(
        name: &str,
        listen: &str,
        tls: Option<&ListenerTls>,
        max_connections: usize,
    ) -> Result<Server> {
        let tls = match tls {
            Some(t) => Some(tokio_rustls::TlsAcceptor::from(
                crate::tls::server_config(t).with_context(|| format!("listener {name:?}: tls"))?,
            )),
            None => None,
        };
        let socket = TcpListener::bind(listen)
            .await
            .with_context(|| format!("listener {name:?}: cannot listen on {listen}"))?;
        Ok(Server {
            name: name.to_string(),
            socket,
            tls,
            max_connections,
            limit_key: "max_connections",
        })
    }

    /// Names the limit's config key in the log (default `max_connections`).
    pub fn limit_key(self, limit_key: &'static str) -> Server {
        Server { limit_key, ..self }
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Accepts connections until the process ends or the returned future is
    /// dropped, running `handle` on each (after the TLS handshake, if any)
    /// in a task of its own; dropping the future also ends the connections.
    pub async fn serve<F, Fut>(self, handle: F)
    where
        F: Fn(Stream, SocketAddr) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let handle = Arc::new(handle);
        let (tls, name) = (self.tls.clone(), self.name.clone());
        self.serve_tcp(move |stream, peer| {
            let (handle, tls, name) = (handle.clone(), tls.clone(), name.clone());
            async move {
                let Some(acceptor) = tls else {
                    return handle(Box::new(stream), peer).await;
                };
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(s)) => handle(Box::new(s), peer).await,
                    Ok(Err(e)) => {
                        tracing::warn!(listener = %name, %peer, "TLS handshake refused: {e}")
                    }
                    Err(_) => tracing::warn!(listener = %name, %peer, "TLS handshake timed out"),
                }
            }
        })
        .await
    }

    /// As [`Server::serve`], for a protocol that needs the TCP socket
    /// itself (DICOM's upper layer): `handle` gets each connection as it
    /// was accepted, without TLS.
    pub async fn serve_tcp<F, Fut>(self, handle: F)
    where
        F: Fn(TcpStream, SocketAddr) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let slots = Arc::new(Semaphore::new(self.max_connections));
        let mut refusals = Refusals::default();
        let mut connections = tokio::task::JoinSet::new();
        loop {
            let accepted = tokio::select! {
                accepted = self.socket.accept() => accepted,
                () = refusals.due() => {
                    refusals.log(&self);
                    continue;
                }
                Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            };
            let (stream, peer) = match accepted {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(listener = %self.name, "accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                drop(stream);
                refusals.refused(&self);
                continue;
            };
            let _ = stream.set_nodelay(true);
            let connection = handle(stream, peer);
            connections.spawn(async move {
                let _slot = slot;
                connection.await
            });
        }
    }
}

/// Connections closed at once because `max_connections` were open: logged
/// when the first comes, then at most once per [`REFUSAL_LOG_EVERY`] with
/// how many there were, so a flood does not flood the log.
#[derive(Default)]
struct Refusals {
    unlogged: u64,
    logged_at: Option<Instant>,
}

impl Refusals {
    fn refused(&mut self, server: &Server) {
        self.unlogged += 1;
        if self
            .logged_at
            .is_none_or(|at| at.elapsed() >= REFUSAL_LOG_EVERY)
        {
            self.log(server);
        }
    }

    /// Resolves when refusals not yet logged are due to be.
    async fn due(&self) {
        match self.logged_at {
            Some(at) if self.unlogged > 0 => {
                tokio::time::sleep_until((at + REFUSAL_LOG_EVERY).into()).await
            }
            _ => std::future::pending().await,
        }
    }

    fn log(&mut self, server: &Server) {
        tracing::warn!(
            listener = %server.name,
            refused = self.unlogged,
            "refused {} connection(s): {} = {} are open",
            self.unlogged,
            server.limit_key,
            server.max_connections
        );
        self.unlogged = 0;
        self.logged_at = Some(Instant::now());
    }
}
