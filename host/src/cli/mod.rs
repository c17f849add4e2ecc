//! The `interlink` command line: parses arguments and runs one command.

mod check;
mod cluster;
mod events;
mod fixtures;
mod inspect;
mod new;
mod run;
mod send;
mod shadow;
mod test;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "interlink",
    version,
    about = "HL7 v2 integration host running sandboxed WebAssembly bots"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the host.
    Run {
        /// Configuration file; the embedded default when absent.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Check that a .wasm file is a valid bot, print its manifest and
    /// contract version, and check its settings.
    Check {
        bot: PathBuf,
        /// Check the settings this configuration's [bots.NAME] gives it.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Create a new bot crate.
    New {
        /// Bot (and crate) name.
        name: String,
        /// Directory to create the crate in (default: the current one).
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// The SDK's source (the `sdk/` folder of an Interlink checkout);
        /// default: the checkout the crate is created in, else the one this
        /// binary was built from.
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
    /// Run a bot offline on input files and show what it would do.
    Test {
        bot: PathBuf,
        /// Fixtures, in order: HL7 files (one or more messages each),
        /// `*.http` requests, `*.tick` cron ticks, or other files.
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
        /// Settings and destinations from this configuration's [bots.NAME].
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Source name the events appear to come from.
        #[arg(long, default_value = "test")]
        source: String,
        /// Where the test clock (`now-ms`) starts, e.g.
        /// 2026-11-24T09:00:00Z (default: now); tick fixtures move it.
        #[arg(long)]
        now: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Replay the events a live bot handled through a candidate version and
    /// show what it would have done differently (exit 0: nothing, 1: some
    /// differences, 2: error). Reads the journal only; sends nothing.
    Shadow {
        candidate: PathBuf,
        /// The live bot it would replace (default: the candidate's name).
        #[arg(long)]
        bot: Option<String>,
        /// Events received this long ago or later: 30m, 24h, 7d (default 24h).
        #[arg(long, conflicts_with = "from")]
        since: Option<String>,
        /// Events received at or after this time (RFC 3339).
        #[arg(long)]
        from: Option<String>,
        /// Events received before this time (RFC 3339; default now).
        #[arg(long)]
        to: Option<String>,
        /// Only compare events from this source (the others still run, for the state).
        #[arg(long)]
        source: Option<String>,
        /// Only compare HL7 messages of this type (MSH-9 pattern, e.g. ADT^A0*).
        #[arg(long = "type")]
        message_type: Option<String>,
        /// Compare at most this many events.
        #[arg(long)]
        limit: Option<usize>,
        /// Also ignore this HL7 path (MSH-7 and MSH-10 always are); repeatable.
        #[arg(long)]
        ignore: Vec<String>,
        /// Differing events shown in full.
        #[arg(long, default_value_t = crate::shadow::DEFAULT_DETAILS)]
        details: usize,
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Print an HL7 message (or each message of a batch) as a tree.
    Inspect {
        /// A file, or - for standard input.
        input: PathBuf,
        /// Character set when MSH-18 is empty.
        #[arg(long, default_value = "utf-8")]
        charset: String,
        /// One JSON object per message instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Send HL7 messages over MLLP and print each ACK.
    Send {
        /// HOST:PORT of the receiver.
        #[arg(long)]
        to: String,
        /// Files with one or more messages each, or - for standard input.
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
        /// Seconds to wait for the connection and for each ACK.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
        /// Use TLS, trusting this CA certificate (PEM).
        #[arg(long)]
        tls_ca: Option<PathBuf>,
        /// Client certificate (PEM) for mutual TLS.
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Name to verify the server certificate against (default: HOST).
        #[arg(long)]
        server_name: Option<String>,
    },
    /// List journaled events, newest first.
    Events {
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Only events with a failed run.
        #[arg(long, conflicts_with = "unrouted")]
        failed: bool,
        /// Only events no bot subscribed to.
        #[arg(long)]
        unrouted: bool,
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// List undelivered outbound messages (or only dead letters).
    Outbox {
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Only the dead-letter list.
        #[arg(long)]
        dead: bool,
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// Show the hosts sharing the configured PostgreSQL journal: which are
    /// live, their last heartbeat, the leader, and the bots and
    /// destinations each runs.
    Cluster {
        #[arg(long, short)]
        config: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Put a dead-lettered message back in its destination's queue.
    Resend {
        outbox_id: i64,
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Queue an event's failed runs (or one bot's run) again.
    Replay {
        event_id: i64,
        /// Re-run this bot, whatever its run's state (even if it had none).
        #[arg(long)]
        bot: Option<String>,
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("INTERLINK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run { config } => {
            init_logging();
            run::run(config)
        }
        Command::Check { bot, config } => check::check(&bot, config.as_deref()),
        Command::New { name, dir, sdk } => new::scaffold(&name, &dir, sdk.as_deref()),
        Command::Test {
            bot,
            inputs,
            config,
            source,
            now,
            json,
        } => test::test(test::TestRun {
            bot: &bot,
            inputs: &inputs,
            config: config.as_deref(),
            source: &source,
            now: now.as_deref(),
            json,
        }),
        Command::Shadow {
            candidate,
            bot,
            since,
            from,
            to,
            source,
            message_type,
            limit,
            ignore,
            details,
            config,
            json,
        } => Ok(shadow::shadow(shadow::ShadowArgs {
            candidate: &candidate,
            config: config.as_deref(),
            bot,
            options: crate::shadow::Options {
                since,
                from,
                to,
                source,
                message_type,
                limit,
                ignore,
                details: Some(details),
            },
            json,
        })),
        Command::Inspect {
            input,
            charset,
            json,
        } => inspect::inspect(&input, &charset, json),
        Command::Send {
            to,
            inputs,
            timeout,
            tls_ca,
            tls_cert,
            tls_key,
            server_name,
        } => {
            let tls = tls_ca.map(|ca| crate::config::ClientTls {
                ca: Some(ca),
                cert: tls_cert,
                key: tls_key,
                server_name,
            });
            send::send(send::SendArgs {
                to,
                inputs,
                timeout_s: timeout,
                tls,
            })
        }
        Command::Events {
            config,
            failed,
            unrouted,
            limit,
            json,
        } => events::list(config.as_deref(), failed, unrouted, limit, json),
        Command::Outbox {
            config,
            dead,
            limit,
            json,
        } => events::outbox(config.as_deref(), dead, limit, json),
        Command::Cluster { config, json } => cluster::show(config.as_deref(), json),
        Command::Resend { outbox_id, config } => events::resend(config.as_deref(), outbox_id),
        Command::Replay {
            event_id,
            bot,
            config,
        } => events::replay(config.as_deref(), event_id, bot),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("interlink: {e:#}");
            ExitCode::FAILURE
        }
    }
}
