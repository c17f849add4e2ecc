//! `GET /api/v1/sources`: every configured source with its live status —
//! MLLP listeners (bound, open connections, messages, NACKs, last message),
//! drop folders and SFTP sources (last poll, last error, files taken) and
//! the cron schedules bots subscribe to (next firing), and the DICOM
//! worklist SCPs (bound, open associations, DIMSE messages).

use axum::Json;
use axum::extract::State;
use serde::Serialize;

use crate::http::auth::Caller;
use crate::http::{AppState, Shared};
use crate::status::{CronStatus, ListenerView, PollView, registry};

/// Every source.
#[derive(Debug, Clone, Serialize)]
pub struct Sources {
    pub listeners: Vec<ListenerView>,
    pub folders: Vec<FolderView>,
    pub sftp: Vec<SftpView>,
    pub cron: Vec<CronStatus>,
    pub dicom: Vec<DicomView>,
}

/// A DICOM worklist SCP: its AE title and bot, and its socket's status.
#[derive(Debug, Clone, Serialize)]
pub struct DicomView {
    pub name: String,
    pub listen: String,
    pub ae_title: String,
    pub bot: String,
    pub bound: bool,
    pub open_associations: usize,
    /// DIMSE messages (C-ECHO, C-FIND, ...) received since the host started.
    pub messages: u64,
    /// When the latest arrived (ms since the epoch).
    pub last_message_ms: Option<i64>,
}

/// A drop folder: where it is, and how its scans go.
#[derive(Debug, Clone, Serialize)]
pub struct FolderView {
    pub dir: String,
    pub pattern: String,
    #[serde(flatten)]
    pub status: PollView,
}

/// An SFTP source: which server and directory, its schedule, and how its
/// polls go.
#[derive(Debug, Clone, Serialize)]
pub struct SftpView {
    pub host: String,
    pub port: u16,
    pub dir: String,
    pub schedule: String,
    #[serde(flatten)]
    pub status: PollView,
}

/// The configured sources with their live status (a source not started
/// yet shows no polls and, for a listener, `bound: false`).
pub fn sources(shared: &Shared) -> Sources {
    let cfg = shared.runtime.config();
    let reg = registry();
    let listeners = cfg
        .listeners
        .iter()
        .map(|l| reg.listener_view(&l.name, &l.listen))
        .collect();
    let folders = cfg
        .folders
        .iter()
        .map(|f| FolderView {
            dir: f.dir.display().to_string(),
            pattern: f.pattern.clone(),
            status: reg.folder(&f.name).view(&f.name),
        })
        .collect();
    let sftp = cfg
        .sftp_sources
        .iter()
        .map(|s| SftpView {
            host: s.host.clone(),
            port: s.port,
            dir: s.dir.clone(),
            schedule: s.schedule.clone(),
            status: reg.sftp(&s.name).view(&s.name),
        })
        .collect();
    let dicom = cfg
        .dicom
        .iter()
        .map(|d| {
            let status = reg.listener_view(&d.name, &d.listen);
            DicomView {
                name: d.name.clone(),
                listen: status.listen,
                ae_title: d.ae_title.clone(),
                bot: d.bot.clone(),
                bound: status.bound,
                open_associations: status.open_connections,
                messages: status.messages,
                last_message_ms: status.last_message_ms,
            }
        })
        .collect();
    Sources {
        listeners,
        folders,
        sftp,
        cron: reg.cron(),
        dicom,
    }
}

/// `GET /api/v1/sources` (any role).
pub async fn get(_: Caller, State(state): State<AppState>) -> Json<Sources> {
    Json(sources(&state))
}
