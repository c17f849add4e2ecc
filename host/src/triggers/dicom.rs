//! DICOM Modality Worklist SCP (`[[dicom]]`): modalities open an
//! association (called AE title `ae_title`, calling AE title among
//! `allowed_callers`; others are rejected with A-ASSOCIATE-RJ naming the
//! reason), verify it with C-ECHO and ask for their worklist with C-FIND.
//!
//! A C-FIND becomes a read-only query of the configured bot, exactly like
//! an HTTP `GET` of its worklist (`Runtime::query`, one of its
//! `MAX_QUERIES` places, on tokio's blocking pool): the query string holds
//! the prefilters the bot understands, and the host does the DICOM
//! matching of the items it returns ([`crate::dicom::worklist`]). Each
//! match is a pending response (0xFF00), then success; a C-CANCEL that
//! arrives before the last match stops the answer with 0xFE00. A bot
//! failure is a failure status (0xC000) with the reason in ErrorComment,
//! and the association stays usable.
//!
//! Associations run as async tasks (`dicom-ul`'s async API), at most
//! `max_associations` at once; further connections are closed. Bad input
//! (garbage or oversized PDUs, malformed command sets, fragments out of
//! order) aborts the association with a log line; an unreadable identifier
//! or an unknown command gets a failure status. An association idle for
//! `idle_timeout_s` is aborted.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use dicom_ul::association::server::AccessControl;
use dicom_ul::association::{Association, AsyncServerAssociation, Error as UlError};
use dicom_ul::pdu::{
    AssociationRJServiceUserReason, PDataValue, PresentationContextResultReason, UserIdentity,
};
use dicom_ul::{Pdu, ServerAssociationOptions};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::config::DicomConfig;
use crate::dicom::command::{self, Command, status};
use crate::dicom::message::{self, Assembler, Message};
use crate::dicom::worklist::{Item, Query, Site, parse_items};
use crate::dicom::{self as protocol, chain, read_data_set, write_data_set};
use crate::runtime::Runtime;
use crate::runtime::http::Request;
use crate::server::Server;
use crate::status::{ListenerStatus, registry};

/// Largest C-FIND identifier accepted.
const MAX_IDENTIFIER: usize = 1024 * 1024;

/// How long an association may take to be negotiated, and a response to
/// be written.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

type Stream = AsyncServerAssociation<TcpStream>;

/// Who may associate: the called AE title must be ours, the calling one
/// among `allowed` unless that is empty.
struct Callers {
    allowed: Vec<String>,
}

impl AccessControl for Callers {
    fn check_access(
        &self,
        this_ae_title: &str,
        calling_ae_title: &str,
        called_ae_title: &str,
        _user_identity: Option<&UserIdentity>,
    ) -> Result<(), AssociationRJServiceUserReason> {
        if called_ae_title.trim() != this_ae_title.trim() {
            return Err(AssociationRJServiceUserReason::CalledAETitleNotRecognized);
        }
        let calling = calling_ae_title.trim();
        if !self.allowed.is_empty() && !self.allowed.iter().any(|a| a.trim() == calling) {
            return Err(AssociationRJServiceUserReason::CallingAETitleNotRecognized);
        }
        Ok(())
    }
}

/// One SCP: its configuration, the bot runtime it asks and how it accepts
/// associations.
struct Scp {
    cfg: DicomConfig,
    /// Bound, open associations and messages, for `/ready` and
    /// `GET /api/v1/sources`.
    status: Arc<ListenerStatus>,
    site: Site,
    runtime: Arc<Runtime>,
    options: ServerAssociationOptions<
        'static,
        Callers,
        dicom_ul::association::server::DefaultNegotiation,
    >,
}

/// Binds the SCP; the returned future serves it until it is dropped (which
/// also ends its associations).
pub async fn bind(
    cfg: DicomConfig,
    runtime: Arc<Runtime>,
) -> Result<impl std::future::Future<Output = ()>> {
    let server = Server::bind(&cfg.name, &cfg.listen, None, cfg.max_associations)
        .await?
        .limit_key("max_associations");
    let status = registry().listener(&cfg.name, &server.local_addr()?.to_string());
    status.set_bound();
    tracing::info!(
        dicom = %cfg.name,
        ae_title = %cfg.ae_title,
        bot = %cfg.bot,
        max_associations = cfg.max_associations,
        "worklist SCP listening on {}",
        server.local_addr()?
    );
    let options = ServerAssociationOptions::new()
        .ae_access_control(Callers {
            allowed: cfg.allowed_callers.clone(),
        })
        .ae_title(cfg.ae_title.clone())
        .with_abstract_syntax(protocol::VERIFICATION)
        .with_abstract_syntax(protocol::MODALITY_WORKLIST_FIND)
        .with_transfer_syntax(protocol::IMPLICIT_VR_LE)
        .with_transfer_syntax(protocol::EXPLICIT_VR_LE)
        .max_pdu_length(cfg.max_pdu)
        .strict(true)
        .read_timeout(Duration::from_secs(cfg.idle_timeout_s))
        .write_timeout(HANDSHAKE_TIMEOUT);
    let scp = Arc::new(Scp {
        status,
        site: Site::new(&cfg),
        cfg,
        runtime,
        options,
    });
    Ok(server.serve_tcp(move |stream, peer| {
        let scp = scp.clone();
        let open = scp.status.connected();
        async move {
            let _open = open;
            scp.associate(stream, peer).await;
        }
    }))
}

impl Scp {
    /// Negotiates an association and serves it until it ends.
    async fn associate(&self, stream: TcpStream, peer: SocketAddr) {
        let name = &self.cfg.name;
        let negotiated =
            tokio::time::timeout(HANDSHAKE_TIMEOUT, self.options.establish_async(stream)).await;
        let Ok(negotiated) = negotiated else {
            tracing::warn!(dicom = %name, %peer, "association failed: no A-ASSOCIATE-RQ within {} s", HANDSHAKE_TIMEOUT.as_secs());
            return;
        };
        let assoc = match negotiated {
            Ok(a) => a,
            Err(e @ UlError::Rejected { .. }) => {
                tracing::warn!(dicom = %name, %peer, "association {}", chain(&e));
                return;
            }
            Err(e) => {
                tracing::warn!(dicom = %name, %peer, "association failed: {}", chain(&e));
                return;
            }
        };
        tracing::debug!(dicom = %name, %peer, calling = assoc.peer_ae_title(), "association accepted");
        self.run(assoc, peer).await;
    }

    async fn run(&self, mut assoc: Stream, peer: SocketAddr) {
        let name = &self.cfg.name;
        let mut assembler = Assembler::new(MAX_IDENTIFIER);
        loop {
            let outcome = match assoc.receive().await {
                Ok(Pdu::PData { data }) => self.take(&mut assoc, &mut assembler, data).await,
                Ok(Pdu::ReleaseRQ) => {
                    let _ = assoc.send(&Pdu::ReleaseRP).await;
                    let _ = assoc.inner_stream().shutdown().await;
                    tracing::debug!(dicom = %name, %peer, "association released");
                    return;
                }
                Ok(Pdu::AbortRQ { .. }) => {
                    tracing::debug!(dicom = %name, %peer, "association aborted by the peer");
                    return;
                }
                Ok(other) => Err(format!("unexpected {}", other.short_description())),
                Err(UlError::ConnectionClosed { .. }) => {
                    tracing::debug!(dicom = %name, %peer, "connection closed");
                    return;
                }
                Err(UlError::Timeout { .. }) => {
                    tracing::info!(dicom = %name, %peer, "aborting an association idle for {} s", self.cfg.idle_timeout_s);
                    break;
                }
                Err(e) => Err(chain(&e)),
            };
            if let Err(why) = outcome {
                tracing::warn!(dicom = %name, %peer, "aborting the association: {why}");
                break;
            }
        }
        let _ = assoc.abort().await;
    }

    /// Takes a P-DATA PDU's fragments and answers each message they
    /// complete; an error aborts the association.
    async fn take(
        &self,
        assoc: &mut Stream,
        assembler: &mut Assembler,
        data: Vec<PDataValue>,
    ) -> Result<(), String> {
        for pdv in data {
            if let Some(message) = assembler.push(pdv)? {
                self.answer(assoc, assembler, message).await?;
            }
        }
        Ok(())
    }

    async fn answer(
        &self,
        assoc: &mut Stream,
        assembler: &mut Assembler,
        msg: Message,
    ) -> Result<(), String> {
        self.status.message();
        let context = assoc
            .presentation_contexts()
            .iter()
            .find(|pc| {
                pc.id == msg.context_id && pc.reason == PresentationContextResultReason::Acceptance
            })
            .ok_or_else(|| {
                format!(
                    "message on presentation context {}, which was not accepted",
                    msg.context_id
                )
            })?;
        let (ts, abstract_syntax) = (
            context.transfer_syntax.clone(),
            context.abstract_syntax.clone(),
        );
        let rq = &msg.command;
        match rq.field {
            command::C_ECHO_RQ => {
                message::send(
                    assoc,
                    msg.context_id,
                    &command::response(rq, status::SUCCESS, false, None),
                    None,
                )
                .await
            }
            command::C_FIND_RQ if abstract_syntax == protocol::MODALITY_WORKLIST_FIND => {
                self.find(assoc, assembler, &msg, &ts).await
            }
            // Nothing to cancel: the answer it meant is complete.
            command::C_CANCEL_RQ => Ok(()),
            field if rq.is_request() => {
                let (code, why) = match field {
                    command::C_FIND_RQ => (
                        status::SOP_CLASS_NOT_SUPPORTED,
                        "only the Modality Worklist is served",
                    ),
                    _ => (
                        status::UNRECOGNIZED_OPERATION,
                        "only C-ECHO, C-FIND and C-CANCEL are served",
                    ),
                };
                tracing::warn!(dicom = %self.cfg.name, "refused command 0x{field:04X}: {why}");
                let rsp = command::response(rq, code, false, Some(why));
                message::send(assoc, msg.context_id, &rsp, None).await
            }
            field => Err(format!("unexpected response 0x{field:04X} from the peer")),
        }
    }

    /// Answers a C-FIND: a pending response per matching item, then
    /// success; or canceled, or a failure status.
    async fn find(
        &self,
        assoc: &mut Stream,
        assembler: &mut Assembler,
        msg: &Message,
        ts: &str,
    ) -> Result<(), String> {
        let (name, rq, started) = (&self.cfg.name, &msg.command, Instant::now());
        let fail = |code: u16, why: &str| command::response(rq, code, false, Some(why));
        let identifier = match msg.data_set.as_deref() {
            Some(data) => read_data_set(data, ts),
            None => Err("C-FIND without an identifier".to_string()),
        };
        let identifier = match identifier {
            Ok(obj) => obj,
            Err(why) => {
                tracing::warn!(dicom = %name, "C-FIND refused: {why}");
                let rsp = fail(status::IDENTIFIER_MISMATCH, &why);
                return message::send(assoc, msg.context_id, &rsp, None).await;
            }
        };
        let query = Query::new(identifier);
        let items = match self.worklist(&query).await {
            Ok(items) => items,
            Err((code, why)) => {
                tracing::warn!(dicom = %name, status = format!("0x{code:04X}"), "C-FIND failed: {}", crate::phi::text(&why));
                let rsp = fail(code, &why);
                return message::send(assoc, msg.context_id, &rsp, None).await;
            }
        };
        let mut matches = 0;
        for item in &items {
            let start = self.site.start(item);
            if !query.matches(item, &start, &self.site) {
                continue;
            }
            if self.cancelled(assoc, assembler, rq).await? {
                tracing::debug!(dicom = %name, matches, "C-FIND canceled");
                let rsp = command::response(rq, status::CANCELED, false, None);
                return message::send(assoc, msg.context_id, &rsp, None).await;
            }
            let data = write_data_set(&query.answer(item, &start, &self.site), ts)?;
            let rsp = command::response(rq, status::PENDING, true, None);
            message::send(assoc, msg.context_id, &rsp, Some(&data)).await?;
            matches += 1;
        }
        let rsp = command::response(rq, status::SUCCESS, false, None);
        message::send(assoc, msg.context_id, &rsp, None).await?;
        tracing::debug!(dicom = %name, matches, ms = started.elapsed().as_millis() as u64, "C-FIND answered");
        Ok(())
    }

    /// The bot's worklist for `query` (prefiltered), or the failure
    /// status and why.
    async fn worklist(&self, query: &Query) -> Result<Vec<Item>, (u16, String)> {
        let filter = query.prefilter();
        let path = match filter.is_empty() {
            true => self.cfg.path.clone(),
            false => format!("{}?{filter}", self.cfg.path),
        };
        let request = Request {
            method: "GET".into(),
            path,
            headers: Vec::new(),
            body: Vec::new(),
        };
        let slot = self.runtime.query_slot().map_err(|_| {
            let why = "too many worklist queries at once; try again".to_string();
            (status::OUT_OF_RESOURCES, why)
        })?;
        let (runtime, bot) = (self.runtime.clone(), self.cfg.bot.clone());
        let answer = crate::blocking::run(move || Ok(runtime.query(slot, &bot, &request)))
            .await
            .map_err(|e| (status::UNABLE_TO_PROCESS, format!("{e:#}")))?;
        if answer.status != 200 {
            let said = serde_json::from_slice::<serde_json::Value>(&answer.body)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_string))
                .unwrap_or_else(|| format!("HTTP status {}", answer.status));
            return Err((status::UNABLE_TO_PROCESS, format!("worklist bot: {said}")));
        }
        parse_items(&answer.body).map_err(|why| (status::UNABLE_TO_PROCESS, why))
    }

    /// Whether a C-CANCEL of `rq` has arrived, without waiting for one.
    /// Anything else the peer sends meanwhile is a protocol error.
    async fn cancelled(
        &self,
        assoc: &mut Stream,
        assembler: &mut Assembler,
        rq: &Command,
    ) -> Result<bool, String> {
        // Polled once: a timer, even of zero, would wait for its tick.
        let polled = tokio::select! {
            biased;
            received = assoc.receive() => Some(received),
            () = std::future::ready(()) => None,
        };
        let pdu = match polled {
            None => return Ok(false),
            Some(Ok(pdu)) => pdu,
            Some(Err(e)) => return Err(chain(&e)),
        };
        let Pdu::PData { data } = pdu else {
            return Err(format!("{} during a C-FIND", pdu.short_description()));
        };
        let mut cancelled = false;
        for pdv in data {
            match assembler.push(pdv)? {
                Some(m) if m.command.field == command::C_CANCEL_RQ => {
                    cancelled |= m.command.responded_to == rq.message_id;
                }
                Some(m) => {
                    return Err(format!("command 0x{:04X} during a C-FIND", m.command.field));
                }
                None => {}
            }
        }
        Ok(cancelled)
    }
}
