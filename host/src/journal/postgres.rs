//! PostgreSQL connections for the journal: opened (plain, or TLS with
//! rustls) from `[journal]`, pooled for reads, and callable from any
//! thread.
//!
//! The connections' I/O runs on one thread of its own (`journal-pg`, a
//! small tokio runtime). A call is a message to that task and a wait for
//! its answer, so the host's threads (the writer, bots' workers inside
//! their own runtimes, tokio's blocking pool) make calls and block on them
//! the way they do on SQLite, without entering a runtime.

use std::future::Future;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::task::{Context, Poll, Wake, Waker};

use tokio_postgres::NoTls;

use super::db::{DbError, DbResult, Param, StatementCache, as_postgres, postgres_sql};

/// The runtime that drives every PostgreSQL connection of the process.
fn io() -> &'static tokio::runtime::Runtime {
    static IO: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    IO.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("journal-pg")
            .enable_all()
            .build()
            .expect("cannot start the journal's PostgreSQL thread")
    })
}

/// Runs `f` on the I/O thread and waits for its output.
fn on_io<T: Send + 'static>(f: impl Future<Output = T> + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    io().spawn(async move {
        let _ = tx.send(f.await);
    });
    rx.recv().expect("the journal's PostgreSQL thread stopped")
}

/// Polls `f` on this thread until it is ready. For a client's calls, which
/// only exchange messages with the connection task on the I/O thread.
fn wait<F: Future>(f: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let Poll::Ready(out) = f.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
}

/// How to open a connection: the server, TLS, and the settings each new
/// session gets.
#[derive(Clone)]
pub struct Connector {
    config: tokio_postgres::Config,
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
    statement_timeout_ms: u64,
    /// A session of a host cut off in the middle of a transaction would
    /// keep that transaction's locks (rows, duplicate keys) for as long as
    /// its socket stays open: PostgreSQL ends it after this long instead.
    idle_in_transaction_ms: u64,
}

impl Connector {
    /// `url` is a libpq connection URL or key=value string; with `tls`,
    /// the server's certificate must chain to its CA (and `sslmode` in the
    /// URL decides whether TLS is required). Sessions get
    /// `statement_timeout_ms` as their statement and lock timeouts, and
    /// `idle_in_transaction_ms` (the cluster's `takeover_s`) as their
    /// idle-in-transaction timeout.
    pub fn new(
        url: &str,
        tls: Option<Arc<tokio_rustls::rustls::ClientConfig>>,
        statement_timeout_ms: u64,
        idle_in_transaction_ms: u64,
    ) -> DbResult<Connector> {
        let config: tokio_postgres::Config = url.parse()?;
        Ok(Connector {
            config,
            tls: tls.map(|c| tokio_postgres_rustls::MakeRustlsConnect::new((*c).clone())),
            statement_timeout_ms,
            idle_in_transaction_ms,
        })
    }

    /// Where it connects, for logs (no user or password).
    pub fn describe(&self) -> String {
        use tokio_postgres::config::Host;
        let host = match self.config.get_hosts().first() {
            Some(Host::Tcp(h)) => h.clone(),
            Some(Host::Unix(p)) => p.display().to_string(),
            None => "localhost".into(),
        };
        let port = self.config.get_ports().first().copied().unwrap_or(5432);
        let db = self.config.get_dbname().unwrap_or("(default)");
        format!("postgresql://{host}:{port}/{db}")
    }

    /// A new session.
    pub fn connect(&self) -> DbResult<Session> {
        let (config, tls) = (self.config.clone(), self.tls.clone());
        let client = on_io(async move {
            match tls {
                Some(tls) => {
                    let (client, connection) = config.connect(tls).await?;
                    tokio::spawn(drive(connection));
                    Ok::<_, DbError>(client)
                }
                None => {
                    let (client, connection) = config.connect(NoTls).await?;
                    tokio::spawn(drive(connection));
                    Ok(client)
                }
            }
        })?;
        let session = Session {
            client,
            statements: StatementCache::default(),
        };
        session.batch(&format!(
            "SET statement_timeout = {0}; SET lock_timeout = {0}; \
             SET idle_in_transaction_session_timeout = {1}",
            self.statement_timeout_ms, self.idle_in_transaction_ms
        ))?;
        Ok(session)
    }
}

impl Connector {
    /// Keeps a session listening on `channel` for as long as the process
    /// runs, calling `notified` for each notification, and once after each
    /// (re)connection for whatever was sent while it was not listening. A
    /// lost session is opened again after a second.
    pub fn listen(&self, channel: &'static str, notified: Arc<dyn Fn() + Send + Sync>) {
        let (config, tls) = (self.config.clone(), self.tls.clone());
        io().spawn(async move {
            loop {
                let listened = match &tls {
                    Some(tls) => match config.connect(tls.clone()).await {
                        Ok((client, connection)) => {
                            listen_on(client, connection, channel, &notified).await
                        }
                        Err(e) => Err(e),
                    },
                    None => match config.connect(NoTls).await {
                        Ok((client, connection)) => {
                            listen_on(client, connection, channel, &notified).await
                        }
                        Err(e) => Err(e),
                    },
                };
                if let Err(e) = listened {
                    tracing::warn!("journal: not listening for other hosts' commits: {e}");
                }
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        });
    }
}

/// Listens on `channel` until the connection closes.
async fn listen_on<S, T>(
    client: tokio_postgres::Client,
    mut connection: tokio_postgres::Connection<S, T>,
    channel: &str,
    notified: &Arc<dyn Fn() + Send + Sync>,
) -> Result<(), tokio_postgres::Error>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let messages = {
        let notified = notified.clone();
        tokio::spawn(async move {
            while let Some(message) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                if let tokio_postgres::AsyncMessage::Notification(_) = message? {
                    notified();
                }
            }
            Ok(())
        })
    };
    client.batch_execute(&format!("LISTEN {channel}")).await?;
    notified();
    let closed = messages.await;
    drop(client);
    closed.unwrap_or(Ok(()))
}

/// A connection's I/O, until it closes.
async fn drive<S, T>(connection: tokio_postgres::Connection<S, T>)
where
    tokio_postgres::Connection<S, T>: Future<Output = Result<(), tokio_postgres::Error>>,
{
    if let Err(e) = connection.await {
        tracing::warn!("journal: PostgreSQL connection closed: {e}");
    }
}

/// One connection, with its prepared statements.
pub struct Session {
    client: tokio_postgres::Client,
    statements: StatementCache,
}

impl Session {
    fn prepared(&self, sql: &str) -> DbResult<tokio_postgres::Statement> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement);
        }
        let statement = wait(self.client.prepare(&postgres_sql(sql)))?;
        self.statements.put(sql, statement.clone());
        Ok(statement)
    }

    /// Statements without parameters, in one round trip.
    pub fn batch(&self, sql: &str) -> DbResult<()> {
        Ok(wait(self.client.batch_execute(sql))?)
    }

    pub fn execute(&self, sql: &str, params: &[Param]) -> DbResult<usize> {
        let statement = self.prepared(sql)?;
        Ok(wait(self.client.execute(&statement, &as_postgres(params)))? as usize)
    }

    pub fn query(&self, sql: &str, params: &[Param]) -> DbResult<Vec<tokio_postgres::Row>> {
        let statement = self.prepared(sql)?;
        Ok(wait(self.client.query(&statement, &as_postgres(params)))?)
    }

    /// The connection is gone (the server closed it, or the network did).
    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }
}

/// Sessions for reads, at most `size` open at once; a caller beyond that
/// waits for one to come back.
pub struct Pool {
    connector: Connector,
    size: usize,
    idle: Mutex<(Vec<Session>, usize)>,
    returned: Condvar,
}

impl Pool {
    pub fn new(connector: Connector, size: usize) -> Arc<Pool> {
        Arc::new(Pool {
            connector,
            size: size.max(1),
            idle: Mutex::new((Vec::new(), 0)),
            returned: Condvar::new(),
        })
    }

    pub fn connector(&self) -> &Connector {
        &self.connector
    }

    /// An idle session, or a new one while fewer than `size` are open.
    pub fn get(self: &Arc<Self>) -> DbResult<Pooled> {
        let mut idle = self.idle.lock().expect("pool lock");
        loop {
            while let Some(session) = idle.0.pop() {
                if !session.is_closed() {
                    return Ok(Pooled {
                        session: Some(session),
                        pool: self.clone(),
                    });
                }
                idle.1 -= 1;
            }
            if idle.1 < self.size {
                idle.1 += 1;
                drop(idle);
                return match self.connector.connect() {
                    Ok(session) => Ok(Pooled {
                        session: Some(session),
                        pool: self.clone(),
                    }),
                    Err(e) => {
                        self.idle.lock().expect("pool lock").1 -= 1;
                        self.returned.notify_one();
                        Err(e)
                    }
                };
            }
            idle = self.returned.wait(idle).expect("pool lock");
        }
    }
}

/// A session borrowed from the [`Pool`]; goes back to it when dropped.
pub struct Pooled {
    session: Option<Session>,
    pool: Arc<Pool>,
}

impl std::ops::Deref for Pooled {
    type Target = Session;
    fn deref(&self) -> &Session {
        self.session.as_ref().expect("held until drop")
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        let Some(session) = self.session.take() else {
            return;
        };
        let mut idle = self.pool.idle.lock().expect("pool lock");
        if session.is_closed() {
            idle.1 -= 1;
        } else {
            idle.0.push(session);
        }
        self.pool.returned.notify_one();
    }
}
