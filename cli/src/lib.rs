//! The Kafka command line of Odradek: `odradek topic|produce|consume|group|cluster|quota`, in the
//! spirit of Redpanda's `rpk` and Kafka's scripts.
//!
//! # What it is
//! Clap argument types ([`Command`], flattened into the `odradek` binary's subcommands) and
//! one [`run`] that executes a command and returns the process's exit code ([`Exit`]). Every
//! request goes through `odradek-client`: the sans-I/O builders and readers of
//! `odradek_client::requests` and `odradek_client::admin`, over its blocking transport, with
//! versions negotiated by ApiVersions (`Versions::pick`).
//!
//! # Invariants
//! - It speaks only Kafka: it works against any Kafka-compatible broker, and never links the
//!   node's internals (it does not depend on `odradek-node`).
//! - Every wait is bounded: socket reads and writes by the client's timeouts, retries by
//!   `Retry`, fetch long polls by [`consume::FETCH_MAX_WAIT_MS`], joins by the group member's.
//! - An error is one line on stderr, `odradek: <subject>: <KAFKA_ERROR_NAME>: <what to do>`,
//!   and an exit code from [`Exit`]; nothing derived from input or from a broker's answer is
//!   unwrapped.
//!
//! # What it does not know
//! Odradek itself: no broker-specific API, no shortcut around the protocol.
#![forbid(unsafe_code)]

pub mod cluster;
pub mod consume;
mod error;
pub mod format;
pub mod group;
mod output;
pub mod produce;
pub mod quota;
mod session;
pub mod topic;

use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};

pub use error::{CliError, Exit};

/// The client id every request of the CLI sends.
pub const CLIENT_ID: &str = "odradek-cli";
/// The bootstrap broker when neither `--brokers` nor `ODRADEK_BROKERS` names one.
pub const DEFAULT_BROKERS: &str = "127.0.0.1:9092";

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Output {
    /// Aligned columns for people.
    #[default]
    Table,
    /// One JSON document (for `consume`, one JSON object per record and line).
    Json,
}

/// The flags every CLI command takes.
#[derive(Debug, Clone, Args)]
pub struct Global {
    /// Bootstrap brokers, comma-separated HOST:PORTs.
    #[arg(long, global = true, env = "ODRADEK_BROKERS", default_value = DEFAULT_BROKERS)]
    pub brokers: String,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// The CLI's subcommands, flattened into the `odradek` binary's.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create, list, describe, alter, grow and delete topics.
    Topic(topic::TopicArgs),
    /// Produce lines of stdin (or of a file) as records.
    Produce(produce::ProduceArgs),
    /// Consume records and print them with a format string.
    Consume(consume::ConsumeArgs),
    /// List, describe, seek and delete consumer groups.
    Group(group::GroupArgs),
    /// The cluster's brokers, controller and id; `health` checks every partition.
    Cluster(cluster::ClusterArgs),
    /// Client quotas: bytes per second per user and client id, request time.
    Quota(quota::QuotaArgs),
}

/// A flag that SIGINT and SIGTERM set, for a command to finish cleanly (flush, commit, leave);
/// a second signal while it is set ends the process at once with exit code 130.
pub(crate) fn stop_flag() -> Result<std::sync::Arc<std::sync::atomic::AtomicBool>, CliError> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for sig in [SIGINT, SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(sig, 130, std::sync::Arc::clone(&stop))
            .and_then(|_| signal_hook::flag::register(sig, std::sync::Arc::clone(&stop)))
            .map_err(|e| CliError::usage(format!("installing a signal handler: {e}")))?;
    }
    Ok(stop)
}

/// Runs `cmd`; errors are printed as one line on stderr.
pub fn run(cmd: Command) -> ExitCode {
    let result = match cmd {
        Command::Topic(a) => topic::run(&a),
        Command::Produce(a) => produce::run(&a),
        Command::Consume(a) => consume::run(&a),
        Command::Group(a) => group::run(&a),
        Command::Cluster(a) => cluster::run(&a),
        Command::Quota(a) => quota::run(&a),
    };
    match result {
        Ok(exit) => exit.into(),
        Err(e) => {
            eprintln!("odradek: {e}");
            e.exit.into()
        }
    }
}
