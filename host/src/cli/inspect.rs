//! `interlink inspect FILE|-`: a message (or each message of a batch) as a
//! readable tree, or as JSON: `{"segments":[{"id":"PID","fields":[…]}]}`
//! where each field is a list of repetitions, each a list of components,
//! each a list of subcomponents, values unescaped. One JSON object per
//! message, one per line.

use std::io::Read;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use interlink_sdk::hl7::{Charset, Message, Segment, charset, split_messages};
use serde::Serialize;

use super::field_names::{field_name, segment_name};

#[derive(Serialize)]
struct JsonMessage<'a> {
    segments: Vec<JsonSegment<'a>>,
}

#[derive(Serialize)]
struct JsonSegment<'a> {
    id: &'a str,
    fields: Vec<interlink_sdk::hl7::FieldTree>,
}

/// The messages in `bytes`, or the first problem with its position.
fn messages(bytes: &[u8], fallback: Charset) -> Result<Vec<Message>, String> {
    let (_, text) = charset::decode_declared(bytes, fallback).map_err(|e| match e {
        interlink_sdk::hl7::Error::UnsupportedCharset(_) => format!("position 0: {e}"),
        e => e.to_string(),
    })?;
    let parts = split_messages(&text);
    if parts.is_empty() {
        return Err("position 0: no MSH segment: this is not HL7".into());
    }
    parts
        .into_iter()
        .map(|part| {
            let at = part.as_ptr() as usize - text.as_ptr() as usize;
            Message::parse(part).map_err(|e| format!("position {at}: {e}"))
        })
        .collect()
}

fn print_segment(seg: &Segment<'_>) {
    match segment_name(seg.id) {
        Some(name) => println!("{}  {name}", seg.id),
        None => println!("{}", seg.id),
    }
    let d = seg.tree();
    for (i, (raw, tree)) in seg.fields().into_iter().zip(d).enumerate() {
        let n = i + 1;
        if raw.is_empty() {
            continue;
        }
        let name = field_name(seg.id, n).unwrap_or("");
        let label = format!("{}-{n}", seg.id);
        let leaf = tree.len() == 1 && tree[0].len() == 1 && tree[0][0].len() == 1;
        if leaf {
            println!("  {label:<10} {name:<36} {}", tree[0][0][0]);
            continue;
        }
        println!("  {label:<10} {name:<36} {raw}");
        for (r, rep) in tree.iter().enumerate() {
            let rep_label = if tree.len() > 1 {
                format!("{label}[{}]", r + 1)
            } else {
                label.clone()
            };
            for (c, comp) in rep.iter().enumerate() {
                for (s, sub) in comp.iter().enumerate() {
                    if sub.is_empty() {
                        continue;
                    }
                    let path = if comp.len() > 1 {
                        format!("{rep_label}.{}.{}", c + 1, s + 1)
                    } else {
                        format!("{rep_label}.{}", c + 1)
                    };
                    println!("    {path:<44} {sub}");
                }
            }
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
    let messages = match messages(&bytes, fallback) {
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
