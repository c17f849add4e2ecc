//! `interlink cluster`: the hosts sharing the configured PostgreSQL
//! journal, their heartbeats and what each owns.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;

use crate::cluster::view;
use crate::config::{Config, JournalBackend};
use crate::journal;

pub fn show(config: Option<&Path>, json: bool) -> Result<ExitCode> {
    let cfg = Config::load_or_default(config)?.journal;
    let cluster = view::view(&journal::open_reader(&cfg)?)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&cluster)?);
        return Ok(ExitCode::SUCCESS);
    }
    if cfg.backend == JournalBackend::Sqlite {
        println!("the journal is SQLite: one host, no cluster");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<28}  {:<5}  {:<6}  {:<24}  {:<30}  destinations",
        "host", "live", "leader", "heartbeat (UTC)", "bots"
    );
    for h in &cluster.hosts {
        println!(
            "{:<28}  {:<5}  {:<6}  {:<24}  {:<30}  {}",
            h.id,
            if h.live { "yes" } else { "no" },
            if h.leader { "yes" } else { "" },
            crate::instant::rfc3339(h.heartbeat_ms),
            h.bots.join(","),
            h.destinations.join(",")
        );
    }
    Ok(ExitCode::SUCCESS)
}
