//! The one error type of the HL7 module.

use std::fmt;

use super::Charset;

/// Why bytes or text could not be read as HL7, or a value not written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The text does not start with an `MSH` segment (after an optional BOM).
    NoMsh,
    /// MSH is too short to carry its delimiters, or they repeat.
    BadDelimiters(String),
    /// A path such as `PID-3[2].1` that does not follow the grammar.
    BadPath(String),
    /// MSH-18 names a character set this build cannot convert.
    UnsupportedCharset(String),
    /// A byte sequence that is not valid in the message's character set.
    Undecodable { charset: Charset, position: usize },
    /// A character the target character set cannot represent.
    Unencodable {
        charset: Charset,
        position: usize,
        ch: char,
    },
    /// The message is larger than the configured maximum.
    TooLarge { size: usize, max: usize },
    /// A batch whose trailer count disagrees with its content.
    BadBatch(String),
    /// A timestamp that is not `YYYY[MM[DD[HH[MM[SS[.S…]]]]]][+/-ZZZZ]`.
    BadTimestamp(String),
    /// A time zone name that is not in the IANA database.
    UnknownTimeZone(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NoMsh => write!(f, "message does not start with an MSH segment"),
            Error::BadDelimiters(why) => write!(f, "bad MSH delimiters: {why}"),
            Error::BadPath(p) => write!(
                f,
                "bad HL7 path {p:?}: expected SEG[n]-field[rep].component.subcomponent"
            ),
            Error::UnsupportedCharset(v) => write!(f, "unsupported character set {v:?} in MSH-18"),
            Error::Undecodable { charset, position } => {
                write!(f, "byte {position} is not valid {charset}")
            }
            Error::Unencodable {
                charset,
                position,
                ch,
            } => write!(
                f,
                "character {ch:?} at byte {position} cannot be written in {charset}"
            ),
            Error::TooLarge { size, max } => {
                write!(f, "message of {size} bytes is over the {max}-byte limit")
            }
            Error::BadBatch(why) => write!(f, "bad batch: {why}"),
            Error::BadTimestamp(v) => write!(f, "bad HL7 timestamp {v:?}"),
            Error::UnknownTimeZone(v) => write!(f, "unknown time zone {v:?}"),
        }
    }
}

impl std::error::Error for Error {}
