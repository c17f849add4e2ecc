//! `interlink check BOT.wasm`: load a bot the way the host would and print
//! its manifest.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;

use crate::runtime::bot::{LoadedBot, Summary};
use crate::runtime::engine::{BotEngine, Limits};

/// Loads `path` as a bot with default limits and no cache.
pub fn load(path: &Path, limits: Limits) -> Result<LoadedBot> {
    let bytes =
        std::fs::read(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    BotEngine::new(limits, None)?.load(&bytes)
}

fn print(bot: &Summary) {
    println!("name:        {}", bot.name);
    println!("version:     {}", bot.version);
    println!("description: {}", bot.description);
    println!("subscribes:");
    for s in &bot.subscriptions {
        println!("  - {s}");
    }
}

pub fn check(path: &Path) -> Result<ExitCode> {
    match load(path, Limits::new(64, 1000)) {
        Ok(bot) => {
            print(&bot.summary());
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{}: invalid bot: {e:#}", path.display());
            Ok(ExitCode::FAILURE)
        }
    }
}
