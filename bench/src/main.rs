//! `odradek-bench`: load generators and latency harnesses for Odradek.
//!
//! Subcommands:
//! - `storage`: drives one partition [`odradek_storage::Log`] directly (no network) with
//!   concurrent producers and reports throughput and append(+sync) latency.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

mod counting;
mod storage;
mod units;

/// Benchmarks for Odradek, a Kafka-compatible storage node.
#[derive(Debug, Parser)]
#[command(name = "odradek-bench", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Storage-engine benchmark: concurrent producers append prebuilt RecordBatch v2 batches to
    /// one partition log (optionally with an fdatasync per append, i.e. acks=all) and the
    /// throughput and append(+sync) latency percentiles are reported.
    Storage(storage::StorageArgs),
}

fn main() -> ExitCode {
    // The log reports opening and closing at INFO; keep the benchmark's output to warnings
    // unless RUST_LOG asks for more.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();

    let cli = Cli::parse();
    let result = match cli.command {
        Command::Storage(args) => storage::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("odradek-bench: error: {e}");
            ExitCode::FAILURE
        }
    }
}
