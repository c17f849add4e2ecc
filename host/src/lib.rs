//! Interlink: an HL7 v2 integration host that runs user-written bots as
//! sandboxed WebAssembly components.
//!
//! Data flows through the modules in this order: [`triggers`] receive
//! events and hand them to the [`intake`], which journals them durably in
//! the [`journal`]; the [`runtime`] runs the bots that subscribe to each
//! event and commits their results; [`delivery`] drains the outbox to the
//! destinations. [`config`] describes all of it; [`cli`] is the `interlink`
//! command.

pub mod backoff;
pub mod blocking;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod delivery;
pub mod dicom;
pub mod fswatch;
pub mod hl7view;
pub mod http;
pub mod instant;
pub mod intake;
pub mod journal;
pub mod mllp;
pub mod phi;
pub mod reload;
pub mod runtime;
pub mod secret;
pub mod server;
pub mod services;
pub mod shadow;
pub mod ssh;
pub mod status;
pub mod telemetry;
pub mod tls;
pub mod triggers;
pub mod wildcard;
