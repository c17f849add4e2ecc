//! Triggers: where events come from. Each hands what it receives to the
//! [`Intake`](crate::intake::Intake) and acts on it (acknowledges, moves a
//! file) only once it is journaled.

pub mod cron;
pub mod dicom;
mod files;
pub mod folder;
pub mod mllp;
pub mod sftp;
