//! SFTP sources (`[[sftp]]`): a remote directory polled on a cron schedule.
//! Each source runs on a thread of its own (ssh2 blocks), keeping its SSH
//! session between polls, so a slow or dead server delays nobody else.
//!
//! A file is taken once it is settled (`min_age_s`, and with `size_stable`
//! the same size and mtime on two polls in a row): downloaded, journaled
//! with its ledger entry (name, size, mtime, SHA-256) in one commit, and
//! only then deleted, moved or kept on the server. The ledger means a file
//! is never processed twice: not when it is kept, and not when the host
//! died between the commit and the remote move. A file that cannot be
//! downloaded or that starts like HL7 but is not goes to `error_dir`, or
//! stays: one that cannot be read as HL7 until it changes, one that cannot
//! be downloaded until the next poll.
//!
//! A listing reads at most `max_list_entries` directory entries and, with
//! `recursive`, goes at most `max_depth` directories down; a poll that hits
//! either cap works with what it has listed, and the cap is logged once
//! (again only after a poll that did not hit it).

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Mutex;
use std::sync::mpsc;
use std::time::Instant;

use anyhow::{Context, Result, anyhow};
use chrono::Utc;
use chrono_tz::Tz;
use cron::Schedule;
use tokio::runtime::Handle;

use super::files::{self, Prepared};
use crate::config::{After, SftpConfig};
use crate::intake::Intake;
use crate::journal::Reader;
use crate::phi;
use crate::ssh::{Endpoint, SftpSession};

/// Starts polling `cfg` on a thread of its own, until the returned sender
/// is dropped (the poller then stops at its next wait, after any poll under
/// way).
pub fn start(cfg: SftpConfig, timezone: &str, intake: Intake) -> Result<mpsc::Sender<()>> {
    let tz = Tz::from_str(timezone).map_err(|e| anyhow!("cron.timezone: {e}"))?;
    let schedule = Schedule::from_str(&cfg.schedule)?;
    let poller = Poller {
        endpoint: Endpoint::new(
            &format!("sftp source {:?}", cfg.name),
            cfg.host.clone(),
            cfg.port,
            cfg.ssh.clone(),
            cfg.connect_timeout_s,
        ),
        pattern: glob::Pattern::new(&cfg.pattern)?,
        reader: Mutex::new(intake.journal().reader()?),
        intake,
        runtime: Handle::current(),
        session: None,
        last_seen: HashMap::new(),
        passed: HashSet::new(),
        complaints: HashMap::new(),
        cut: None,
        cfg,
    };
    let (stop, stopped) = mpsc::channel();
    std::thread::Builder::new()
        .name(format!("sftp-{}", poller.cfg.name))
        .spawn(move || poller.run(schedule, tz, stopped))?;
    Ok(stop)
}

/// A file in the listing.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Remote {
    path: PathBuf,
    /// Path relative to the polled dir: the name journaled and in the ledger.
    name: String,
    size: u64,
    mtime_s: u64,
}

/// What one poll did.
#[derive(Default)]
struct PollStats {
    listed: usize,
    taken: usize,
}

struct Poller {
    cfg: SftpConfig,
    endpoint: Endpoint,
    pattern: glob::Pattern,
    intake: Intake,
    reader: Mutex<Reader>,
    runtime: Handle,
    session: Option<SftpSession>,
    /// Size and mtime of each file at the previous poll.
    last_seen: HashMap<PathBuf, (u64, u64)>,
    /// Files dealt with that stay on the server (kept, or left because they
    /// are not HL7), so they are not downloaded again.
    passed: HashSet<Remote>,
    /// The last error of each file (as listed) that failed, so it is
    /// logged once, not at every poll.
    complaints: HashMap<Remote, String>,
    /// What the listing caps left out at the latest poll, as logged.
    cut: Option<String>,
}

/// A remote directory listing.
struct Listing {
    files: Vec<Remote>,
    /// Which caps (`max_list_entries`, `max_depth`) left entries out.
    cut: Option<String>,
}

/// libssh2's `LIBSSH2_ERROR_FILE`: what reading a directory handle returns
/// after its last entry.
const END_OF_DIRECTORY: ssh2::ErrorCode = ssh2::ErrorCode::Session(-16);

impl Poller {
    fn run(mut self, schedule: Schedule, tz: Tz, stopped: mpsc::Receiver<()>) {
        let source = self.cfg.name.clone();
        tracing::info!(%source, "polling sftp://{}{} for {} on {:?}", self.endpoint.address(), self.cfg.dir, self.cfg.pattern, self.cfg.schedule);
        let mut last_error: Option<String> = None;
        let status = crate::status::registry().sftp(&source);
        loop {
            let now = Utc::now().with_timezone(&tz);
            let Some(next) = schedule.after(&now).next() else {
                tracing::error!(%source, "schedule {:?} never fires again", self.cfg.schedule);
                return;
            };
            let wait = (next - now).to_std().unwrap_or_default();
            if stopped.recv_timeout(wait) != Err(mpsc::RecvTimeoutError::Timeout) {
                tracing::info!(%source, "stopped polling");
                return;
            }
            let started = Instant::now();
            match self.poll() {
                Ok(stats) => {
                    crate::telemetry::sftp_poll(&source, true);
                    status.taken(stats.taken);
                    status.polled(None);
                    if last_error.take().is_some() {
                        tracing::info!(%source, "{} reachable again", self.endpoint.address());
                    }
                    let us = started.elapsed().as_micros() as u64;
                    if stats.taken > 0 {
                        tracing::info!(%source, listed = stats.listed, taken = stats.taken, us, "polled");
                    } else {
                        tracing::debug!(%source, listed = stats.listed, us, "polled");
                    }
                }
                Err(e) => {
                    self.session = None;
                    let text = format!("{e:#}");
                    crate::telemetry::sftp_poll(&source, false);
                    status.polled(Some(text.clone()));
                    // Once per distinct failure, not once per poll.
                    if last_error.as_deref() != Some(&text) {
                        tracing::error!(%source, "poll failed, will retry: {text}");
                    } else {
                        tracing::debug!(%source, "poll failed again, as logged before");
                    }
                    last_error = Some(text);
                }
            }
        }
    }

    /// Lists, then takes every settled file (up to `max_files_per_poll`).
    fn poll(&mut self) -> Result<PollStats> {
        let listing = match self.session.take() {
            // A kept session may have been closed by the server meanwhile.
            Some(s) => match self.list(&s) {
                Ok(l) => {
                    self.session = Some(s);
                    l
                }
                Err(_) => self.list_fresh()?,
            },
            None => self.list_fresh()?,
        };
        let session = self.session.take().expect("listed with a session");
        if listing.cut != self.cut {
            if let Some(cut) = &listing.cut {
                tracing::warn!(source = %self.cfg.name, "{cut}; each poll takes what it listed");
            }
            self.cut = listing.cut;
        }
        let result = self.take_settled(&session, listing.files);
        self.session = Some(session);
        result
    }

    fn list_fresh(&mut self) -> Result<Listing> {
        let session = self.endpoint.open()?;
        let listing = self.list(&session)?;
        self.session = Some(session);
        Ok(listing)
    }

    fn take_settled(&mut self, session: &SftpSession, listing: Vec<Remote>) -> Result<PollStats> {
        let mut stats = PollStats {
            listed: listing.len(),
            taken: 0,
        };
        let now_s = Utc::now().timestamp().max(0) as u64;
        let mut settled = Vec::new();
        for file in &listing {
            let stable = !self.cfg.size_stable
                || self.last_seen.get(&file.path) == Some(&(file.size, file.mtime_s));
            let old = now_s.saturating_sub(file.mtime_s) >= self.cfg.min_age_s;
            if stable && old && !self.passed.contains(file) {
                settled.push(file.clone());
            }
        }
        self.last_seen = listing
            .into_iter()
            .map(|f| (f.path, (f.size, f.mtime_s)))
            .collect();
        self.passed.retain(|f| self.last_seen.contains_key(&f.path));
        settled.sort_by(|a, b| (a.mtime_s, &a.name).cmp(&(b.mtime_s, &b.name)));
        settled.truncate(self.cfg.max_files_per_poll);
        self.complaints
            .retain(|f, _| self.last_seen.get(&f.path) == Some(&(f.size, f.mtime_s)));
        for file in settled {
            match self.take(session, &file) {
                Ok(true) => {
                    stats.taken += 1;
                    self.complaints.remove(&file);
                }
                Ok(false) => {}
                // A dead connection fails the poll; anything else is this
                // file's problem and must not hold up the others.
                Err(e) if session.sftp.stat(Path::new(&self.cfg.dir)).is_ok() => {
                    self.complain(&file, format!("{e:#}; tried again at the next poll"));
                }
                Err(e) => return Err(e),
            }
        }
        Ok(stats)
    }

    /// The matching files under `dir` (and its subdirectories with
    /// `recursive`, down to `max_depth`), without dotfiles and without the
    /// move and error dirs, from at most `max_list_entries` entries read.
    fn list(&self, session: &SftpSession) -> Result<Listing> {
        let root = Path::new(&self.cfg.dir);
        let skip: Vec<&Path> = [
            match &self.cfg.after {
                After::Move(d) => Some(d.as_path()),
                _ => None,
            },
            self.cfg.error_dir.as_deref().map(Path::new),
        ]
        .into_iter()
        .flatten()
        .collect();
        let mut out = Vec::new();
        let mut budget = self.cfg.max_list_entries;
        let (mut entries_cut, mut depth_cut) = (false, false);
        let mut dirs = vec![(root.to_path_buf(), 0)];
        'dirs: while let Some((dir, depth)) = dirs.pop() {
            let mut handle = session
                .sftp
                .opendir(&dir)
                .with_context(|| format!("cannot list {}", dir.display()))?;
            loop {
                let (entry, stat) = match handle.readdir() {
                    Ok(e) => e,
                    Err(e) if e.code() == END_OF_DIRECTORY => break,
                    Err(e) => {
                        return Err(e).with_context(|| format!("cannot list {}", dir.display()));
                    }
                };
                if entry == Path::new(".") || entry == Path::new("..") {
                    continue;
                }
                if budget == 0 {
                    entries_cut = true;
                    break 'dirs;
                }
                budget -= 1;
                let Some(file_name) = entry.to_str() else {
                    continue;
                };
                if file_name.starts_with('.') {
                    continue;
                }
                let path = dir.join(file_name);
                if stat.is_dir() {
                    if self.cfg.recursive && !skip.contains(&path.as_path()) {
                        if depth < self.cfg.max_depth {
                            dirs.push((path, depth + 1));
                        } else {
                            depth_cut = true;
                        }
                    }
                    continue;
                }
                if !stat.is_file() || !self.pattern.matches(file_name) {
                    continue;
                }
                let name = path
                    .strip_prefix(root)
                    .unwrap_or(&path)
                    .to_string_lossy()
                    .into_owned();
                out.push(Remote {
                    name,
                    size: stat.size.unwrap_or(0),
                    mtime_s: stat.mtime.unwrap_or(0),
                    path,
                });
            }
        }
        let cut = [
            entries_cut.then(|| {
                format!(
                    "listing stopped at max_list_entries = {}",
                    self.cfg.max_list_entries
                )
            }),
            depth_cut.then(|| {
                format!(
                    "subdirectories below max_depth = {} not listed",
                    self.cfg.max_depth
                )
            }),
        ]
        .into_iter()
        .flatten()
        .reduce(|a, b| format!("{a}; {b}"));
        Ok(Listing { files: out, cut })
    }

    /// Takes one file; returns whether it was journaled or disposed of.
    fn take(&mut self, session: &SftpSession, file: &Remote) -> Result<bool> {
        let source = self.cfg.name.clone();
        let max = self.cfg.max_file_mb * 1024 * 1024;
        if file.size > max {
            let why = format!("{} bytes is over max_file_mb", file.size);
            return self.reject(session, file, &why, true);
        }
        let bytes = match download(session, file, max) {
            Ok(Some(bytes)) => bytes,
            // Changed since it was listed: not settled after all.
            Ok(None) => return Ok(false),
            Err(e) => return self.reject(session, file, &format!("cannot download: {e:#}"), false),
        };
        let taken = files::TakenFile {
            source: &source,
            name: &file.name,
            bytes,
            mtime_ms: file.mtime_s as i64 * 1000,
        };
        match files::prepare(&self.reader, taken, self.cfg.encoding)? {
            Prepared::New(ready) => self.runtime.block_on(files::submit(&self.intake, ready))?,
            // Logged once, not at every poll while its disposal fails.
            Prepared::Before if !self.complaints.contains_key(file) => {
                tracing::info!(%source, file = %phi::file(&file.name), "already journaled; finishing its disposal");
            }
            Prepared::Before => {}
            Prepared::NotHl7(why) => {
                return self.reject(session, file, &format!("not HL7: {why}"), true);
            }
        }
        match &self.cfg.after {
            After::Keep => {
                self.passed.insert(file.clone());
            }
            After::Delete => session
                .sftp
                .unlink(&file.path)
                .context("journaled, but cannot delete it")?,
            After::Move(dir) => move_into(session, file, dir).context("journaled, but")?,
        }
        Ok(true)
    }

    /// Deals with a file that cannot be taken: into `error_dir`, or left
    /// (until it changes when `until_changed`, else until the next poll)
    /// and logged once.
    fn reject(
        &mut self,
        session: &SftpSession,
        file: &Remote,
        why: &str,
        until_changed: bool,
    ) -> Result<bool> {
        let source = &self.cfg.name;
        match &self.cfg.error_dir {
            Some(dir) => {
                tracing::error!(%source, file = %phi::file(&file.name), "{why}; moved to {dir}");
                move_into(session, file, Path::new(dir))?;
                Ok(true)
            }
            None => {
                let until = if until_changed {
                    self.passed.insert(file.clone());
                    "until it changes"
                } else {
                    "and tried again at the next poll"
                };
                self.complain(file, format!("{why}; left on the server {until}"));
                Ok(false)
            }
        }
    }

    /// Logs a file's problem, once until it changes.
    fn complain(&mut self, file: &Remote, text: String) {
        if self.complaints.get(file) != Some(&text) {
            tracing::error!(source = %self.cfg.name, file = %phi::file(&file.name), "{text}");
            self.complaints.insert(file.clone(), text);
        }
    }
}

/// The file's bytes, or `None` if its size is no longer the listed one.
fn download(session: &SftpSession, file: &Remote, max: u64) -> Result<Option<Vec<u8>>> {
    let mut remote = session.sftp.open(&file.path)?;
    let mut bytes = Vec::with_capacity(file.size as usize);
    remote.by_ref().take(max + 1).read_to_end(&mut bytes)?;
    Ok((bytes.len() as u64 == file.size).then_some(bytes))
}

/// Moves a remote file to the same relative path under `dir`, never over a
/// file already there.
fn move_into(session: &SftpSession, file: &Remote, dir: &Path) -> Result<()> {
    let target = dir.join(&file.name);
    let parent = target.parent().unwrap_or(dir);
    session.create_dir_all(parent)?;
    if session.sftp.rename(&file.path, &target, None).is_ok() {
        return Ok(());
    }
    let name = target.file_name().unwrap_or_default().to_string_lossy();
    let target = parent.join(format!("{name}.{}", crate::journal::now_ms()));
    session
        .sftp
        .rename(&file.path, &target, None)
        .with_context(|| format!("cannot move into {}", dir.display()))
}
