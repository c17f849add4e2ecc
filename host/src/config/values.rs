//! Value types and checks that several sections share: what happens to a
//! file after it is taken, character sets by name, names and `host:port`.

use std::path::PathBuf;

use anyhow::{Result, bail};
use interlink_sdk::hl7::Charset;
use serde::Deserialize;

/// What happens to a file once it is safely in the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum After {
    Delete,
    Keep,
    Move(PathBuf),
}

impl<'de> Deserialize<'de> for After {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.as_str() {
            "delete" => Ok(After::Delete),
            "keep" => Ok(After::Keep),
            _ => match s.strip_prefix("move:") {
                Some(dir) if !dir.is_empty() => Ok(After::Move(dir.into())),
                _ => Err(serde::de::Error::custom(format!(
                    "after = {s:?}: expected \"delete\", \"keep\" or \"move:<dir>\""
                ))),
            },
        }
    }
}

pub(super) fn default_after() -> After {
    After::Delete
}

/// Reads a character set by name (`utf-8`, `iso-8859-1`, `8859/15`, …).
pub(super) fn charset<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Charset, D::Error> {
    let s = String::deserialize(d)?;
    Charset::from_name(&s).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "encoding = {s:?}: not a supported character set \
             (e.g. \"utf-8\", \"iso-8859-1\", \"8859/15\", \"gb18030\")"
        ))
    })
}

pub(super) fn default_encoding() -> Charset {
    Charset::Utf8
}

pub(super) fn default_pattern() -> String {
    "*".into()
}

pub(super) fn default_connect_timeout_s() -> u64 {
    10
}

/// Files larger than this are not read (folders) or downloaded (SFTP).
pub(super) fn default_max_file_mb() -> u64 {
    64
}

pub(super) fn yes() -> bool {
    true
}

/// `host:port` with a numeric port.
pub(super) fn is_host_port(s: &str) -> bool {
    s.rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
}

/// What a server listens on: `listen` is `host:port` (`example` shows
/// one), and the connections it serves at once (`limit`, the key
/// `limit_key`) are 1 to `max`.
pub(super) fn check_server(
    key: &str,
    listen: &str,
    example: &str,
    (limit_key, limit): (&str, usize),
    max: usize,
) -> Result<()> {
    if !is_host_port(listen) {
        bail!("{key}.listen = {listen:?}: expected host:port, e.g. \"{example}\"");
    }
    if !(1..=max).contains(&limit) {
        bail!("{key}.{limit_key} must be 1 to {max}");
    }
    Ok(())
}

/// A source, destination or bot name: 1-64 letters, digits, `-` or `_`.
pub(super) fn check_name(name: &str, key: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !ok {
        bail!("{key} = {name:?}: use 1-64 letters, digits, '-' or '_'");
    }
    Ok(())
}

/// An IANA time zone, or a message naming `key`.
pub(super) fn check_time_zone(tz: &str, key: &str) -> Result<()> {
    if !interlink_sdk::hl7::is_time_zone(tz) {
        bail!("{key} = {tz:?}: not an IANA time zone (e.g. \"America/Chicago\")");
    }
    Ok(())
}

/// A cron schedule (with seconds), or a message naming `key`.
pub(super) fn check_schedule(schedule: &str, key: &str) -> Result<()> {
    if let Err(e) = schedule.parse::<cron::Schedule>() {
        bail!("{key} = {schedule:?} is not a schedule ({e}); use sec min hour day month weekday");
    }
    Ok(())
}

/// A glob pattern, or a message naming `key`.
pub(super) fn check_glob(pattern: &str, key: &str) -> Result<()> {
    if glob::Pattern::new(pattern).is_err() {
        bail!("{key} = {pattern:?} is not a valid glob");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_are_checked_under_their_own_limit_key() {
        let err = |r: Result<()>| r.unwrap_err().to_string();
        let ex = "127.0.0.1:2575";
        assert_eq!(
            err(check_server(
                "listener[0]",
                "2575",
                ex,
                ("max_connections", 1),
                65_536
            )),
            "listener[0].listen = \"2575\": expected host:port, e.g. \"127.0.0.1:2575\""
        );
        assert_eq!(
            err(check_server("http", ex, ex, ("max_connections", 0), 65_536)),
            "http.max_connections must be 1 to 65536"
        );
        assert_eq!(
            err(check_server(
                "dicom[0]",
                ex,
                ex,
                ("max_associations", 1025),
                1024
            )),
            "dicom[0].max_associations must be 1 to 1024"
        );
        assert!(check_server("dicom[0]", ex, ex, ("max_associations", 1024), 1024).is_ok());
        assert!(check_server("http", ex, ex, ("max_connections", 65_536), 65_536).is_ok());
    }
}
