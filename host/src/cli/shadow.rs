//! `interlink shadow CANDIDATE.wasm`: replays the events a live bot handled
//! through a candidate version and reports the differences (see
//! [`crate::shadow`]). Exit code 0: no difference; 1: differences; 2: the
//! run could not be made.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};

use crate::config::Config;
use crate::runtime::engine::Limits;
use crate::runtime::policy_for;
use crate::shadow::{self, Options};

/// What `interlink shadow` is asked to do.
pub struct ShadowArgs<'a> {
    pub candidate: &'a Path,
    pub config: Option<&'a Path>,
    /// The live bot; default: the candidate's manifest name.
    pub bot: Option<String>,
    pub options: Options,
    pub json: bool,
}

pub fn shadow(args: ShadowArgs<'_>) -> ExitCode {
    match report(args) {
        Ok(differs) => ExitCode::from(u8::from(differs)),
        Err(e) => {
            eprintln!("interlink shadow: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Runs the shadow and prints the report; whether anything differed.
fn report(args: ShadowArgs<'_>) -> Result<bool> {
    let config = Config::load_or_default(args.config)?;
    let plan = args.options.parse(crate::journal::now_ms())?;
    let limits = Limits::new(config.plugins.memory_mb, config.plugins.timeout_ms);
    let candidate = super::check::load(args.candidate, limits)
        .with_context(|| format!("{}: invalid bot", args.candidate.display()))?;
    let bot = args.bot.unwrap_or_else(|| candidate.name().to_string());
    let policy = Arc::new(policy_for(&config, &bot));
    let report = shadow::run(
        crate::journal::open_reader(&config.journal)?,
        &bot,
        &candidate,
        policy,
        plan,
    )?;
    match args.json {
        true => println!("{}", serde_json::to_string_pretty(&report)?),
        false => print!("{}", report.text()),
    }
    Ok(report.differs())
}
