//! `interlink send --to HOST:PORT FILE...|-`: sends HL7 messages over MLLP
//! (optionally TLS), one connection, one message in flight, and prints each
//! ACK. Exits non-zero if any ACK is not AA/CA or does not arrive in time.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use interlink_sdk::hl7::{Charset, Message, charset, split_messages};

use crate::config::ClientTls;
use crate::mllp::client::Endpoint;

pub struct SendArgs {
    pub to: String,
    pub inputs: Vec<PathBuf>,
    pub timeout_s: u64,
    pub tls: Option<ClientTls>,
}

/// The messages in an input, each as bytes in its own character set.
fn messages(bytes: &[u8]) -> Result<Vec<(Vec<u8>, String)>> {
    let (cs, text) = charset::decode_declared(bytes, Charset::Utf8)?;
    let parts = split_messages(&text);
    anyhow::ensure!(!parts.is_empty(), "no HL7 message (no MSH segment)");
    parts
        .into_iter()
        .map(|part| {
            let msg = Message::parse(part)?;
            Ok((
                cs.encode(msg.as_str())?.into_owned(),
                msg.control_id().into_owned(),
            ))
        })
        .collect()
}

pub fn send(args: SendArgs) -> Result<ExitCode> {
    let (host, port) = args
        .to
        .rsplit_once(':')
        .and_then(|(h, p)| {
            Some((
                h.trim_matches(['[', ']']).to_string(),
                p.parse::<u16>().ok()?,
            ))
        })
        .with_context(|| format!("--to {:?}: expected HOST:PORT", args.to))?;
    let mut all = Vec::new();
    for input in &args.inputs {
        let bytes = if input.as_os_str() == "-" {
            let mut b = Vec::new();
            std::io::stdin().read_to_end(&mut b)?;
            b
        } else {
            std::fs::read(input).with_context(|| format!("cannot read {}", input.display()))?
        };
        all.extend(messages(&bytes).with_context(|| input.display().to_string())?);
    }
    let endpoint = Endpoint::new(&host, port, args.tls.as_ref())?;
    let timeout = Duration::from_secs(args.timeout_s);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut conn = match endpoint.connect(timeout).await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("{e}");
                return Ok(ExitCode::FAILURE);
            }
        };
        let mut failed = 0;
        for (bytes, control_id) in &all {
            match conn.exchange(bytes, control_id, timeout).await {
                Ok(report) => {
                    let ok = report.code.is_positive();
                    failed += usize::from(!ok);
                    let text = if report.text.is_empty() {
                        String::new()
                    } else {
                        format!(" {}", report.text)
                    };
                    println!("{control_id}: {}{text}", report.code.as_str());
                }
                Err(e) => {
                    println!("{control_id}: no ACK: {e}");
                    failed += 1;
                    break;
                }
            }
        }
        Ok(if failed == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    })
}
