//! `interlink check BOT.wasm`: load a bot the way the host would and print
//! its manifest.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;

use crate::runtime::bindings::{Manifest, Subscription};
use crate::runtime::engine::{BotEngine, Limits};

/// Loads `path` as a bot with default limits and no cache.
pub fn load(path: &Path, limits: Limits) -> Result<crate::runtime::bot::LoadedBot> {
    let bytes =
        std::fs::read(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let engine = BotEngine::new(limits, None)?;
    let origin = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    engine.load(&bytes, &origin)
}

pub fn describe(s: &Subscription) -> String {
    match s {
        Subscription::Hl7(f) => {
            let types = if f.message_types.is_empty() {
                "*".to_string()
            } else {
                f.message_types.join(", ")
            };
            match &f.source {
                Some(src) => format!("hl7 {types} from {src}"),
                None => format!("hl7 {types}"),
            }
        }
        Subscription::Files(s) => format!("files from {s}"),
        Subscription::Cron(c) => format!("cron {c}"),
        Subscription::Http(p) => format!("http {p}"),
    }
}

fn print(m: &Manifest) {
    println!("name:        {}", m.name);
    println!("version:     {}", m.version);
    println!("description: {}", m.description);
    println!("subscribes:");
    for s in &m.subscribe {
        println!("  - {}", describe(s));
    }
}

pub fn check(path: &Path) -> Result<ExitCode> {
    match load(path, Limits::new(64, 1000)) {
        Ok(bot) => {
            print(&bot.manifest);
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{}: invalid bot: {e:#}", path.display());
            Ok(ExitCode::FAILURE)
        }
    }
}
