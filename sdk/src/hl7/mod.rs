//! The HL7 v2 model shared by the host and bots.
//!
//! A [`Message`] keeps the message text as one string plus an index of where
//! each segment starts and ends; fields, repetitions, components and
//! subcomponents are located on demand, and escape sequences are decoded only
//! when a value is read. Paths name what to read or write:
//! `PID-3`, `PID-3[2].1`, `OBX[3]-5.1.2`, `MSH-9.2`.

mod ack;
mod batch;
mod builder;
pub mod charset;
mod delimiters;
mod error;
mod escape;
mod message;
mod path;
mod time;

pub use ack::{AckCode, AckCondition, AckError, AckMode, Severity, ack, reject};
pub use batch::{Batch, BatchGroup, split_messages};
pub use builder::{MessageBuilder, new_control_id};
pub use charset::Charset;
pub use delimiters::Delimiters;
pub use error::Error;
pub use escape::{escape, plain_text, unescape};
pub use message::{FieldTree, Message, Segment};
pub use path::Path;
#[cfg(feature = "tz")]
pub use time::is_time_zone;
pub use time::{Precision, Timestamp, format_timestamp, now_timestamp};
