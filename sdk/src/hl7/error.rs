//! The one error type of the HL7 module.

use std::fmt;

/// Why text could not be read as HL7 or a path could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The text does not start with an `MSH` segment (after an optional BOM).
    NoMsh,
    /// MSH is too short to carry its delimiters, or they repeat.
    BadDelimiters(String),
    /// A path such as `PID-3[2].1` that does not follow the grammar.
    BadPath(String),
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
        }
    }
}

impl std::error::Error for Error {}
