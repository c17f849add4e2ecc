//! # interlink-sdk
//!
//! Everything a bot author needs to write an Interlink bot, and the HL7 v2
//! model the host shares with bots.
//!
//! ```ignore
//! use interlink_sdk::prelude::*;
//!
//! struct Echo;
//!
//! impl Bot for Echo {
//!     fn manifest() -> Manifest {
//!         Manifest::new("echo", "0.1.0").subscribe(Subscription::hl7(["ADT^A04"]))
//!     }
//!
//!     fn handle(event: Event) -> Result<Reply, BotError> {
//!         let Event::Hl7(msg) = event else { return Ok(Reply::default()) };
//!         Ok(Reply::default().send("outbox", msg.raw))
//!     }
//! }
//!
//! export_bot!(Echo);
//! ```
//!
//! The `guest` feature (on by default) provides the bindings to the host;
//! the host itself depends on this crate without it, for [`hl7`] only.

// Lets the generated bindings name this crate the way bots do.
extern crate self as interlink_sdk;

pub mod file_name;
pub mod hl7;
pub mod query;

#[cfg(feature = "guest")]
mod guest;
#[cfg(feature = "guest")]
pub use guest::*;
