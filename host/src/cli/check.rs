//! `interlink check BOT.wasm [--config FILE]`: load a bot the way the host
//! would, print its manifest and the contract version it was built
//! against, and run its `check-settings` on the settings `FILE` gives it.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;

use crate::config::Config;
use crate::runtime::bot::{LoadedBot, Summary};
use crate::runtime::engine::{BotEngine, Limits};
use crate::runtime::policy_for;

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
    println!("contract:    {}", bot.contract);
    println!("subscribes:");
    for s in &bot.subscriptions {
        println!("  - {s}");
    }
}

pub fn check(path: &Path, config: Option<&Path>) -> Result<ExitCode> {
    let config = config.map(Config::load).transpose()?;
    match load(path, Limits::new(64, 1000)) {
        Ok(bot) => {
            print(&bot.summary());
            // Without a configuration, the bot's defaults are checked.
            let policy = config
                .as_ref()
                .map(|c| policy_for(c, bot.name()))
                .unwrap_or_default();
            let given = if config.is_some() {
                ""
            } else {
                " (none given)"
            };
            match bot.check_settings(Arc::new(policy)) {
                Ok(()) => println!("settings{given}: ok"),
                Err(why) => {
                    println!("settings{given}: refused: {why}");
                    if config.is_some() {
                        return Ok(ExitCode::FAILURE);
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{}: invalid bot: {e:#}", path.display());
            Ok(ExitCode::FAILURE)
        }
    }
}
