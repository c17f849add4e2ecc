//! `interlink inspect FILE|-`: a message (or each message of a batch) as a
//! readable tree, or as JSON: `{"segments":[{"id":"PID","fields":[…]}]}`
//! where each field is a list of repetitions, each a list of components,
//! each a list of subcomponents, values unescaped. One JSON object per
//! message, one per line.

use std::io::Read;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use interlink_sdk::hl7::{Charset, Segment};
use serde::Serialize;

use crate::hl7view;

#[derive(Serialize)]
struct JsonMessage<'a> {
    segments: Vec<JsonSegment<'a>>,
}

#[derive(Serialize)]
struct JsonSegment<'a> {
    id: &'a str,
    fields: Vec<interlink_sdk::hl7::FieldTree>,
}

fn print_segment(seg: &Segment<'_>) {
    let view = hl7view::segment(seg);
    match view.name {
        Some(name) => println!("{}  {name}", view.id),
        None => println!("{}", view.id),
    }
    for f in &view.fields {
        println!("  {:<10} {:<36} {}", f.label, f.name, f.value);
        for p in &f.parts {
            println!("    {:<44} {}", p.path, p.value);
        }
    }
}

pub fn inspect(input: &Path, fallback: &str, json: bool) -> Result<ExitCode> {
    let fallback = Charset::from_name(fallback)
        .with_context(|| format!("--charset {fallback:?} is not a supported character set"))?;
    let name = input.display().to_string();
    let bytes = if name == "-" {
        let mut b = Vec::new();
        std::io::stdin().read_to_end(&mut b)?;
        b
    } else {
        std::fs::read(input).with_context(|| format!("cannot read {name}"))?
    };
    let messages = match hl7view::messages(&bytes, fallback) {
        Ok(m) => m,
        Err(why) => {
            eprintln!("{name}: {why}");
            return Ok(ExitCode::FAILURE);
        }
    };
    for (i, msg) in messages.iter().enumerate() {
        if json {
            let doc = JsonMessage {
                segments: msg
                    .segments()
                    .map(|s| JsonSegment {
                        id: s.id,
                        fields: s.tree(),
                    })
                    .collect(),
            };
            println!("{}", serde_json::to_string(&doc)?);
            continue;
        }
        if messages.len() > 1 {
            println!("── message {} of {} ──", i + 1, messages.len());
        }
        for seg in msg.segments() {
            print_segment(&seg);
        }
    }
    Ok(ExitCode::SUCCESS)
}
