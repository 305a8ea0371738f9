//! `odradek`: a Kafka-compatible streaming storage node. The binary is thin: it parses the
//! command line, sets up logging, and hands over to the `odradek_node` library.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use odradek_node::config::ServeArgs;
use odradek_node::{serve, tune};

#[derive(Debug, Parser)]
#[command(
    name = "odradek",
    version,
    about = "A Kafka-compatible streaming storage node, thread-per-core on io_uring"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once per process: the size of the serve flags does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    /// Run a node. Every flag is optional; settings can also come from ODRADEK_* environment
    /// variables and a TOML file given by --config.
    Serve(ServeArgs),
    /// Check the host for settings that hurt a storage node and say how to fix each; --apply
    /// fixes what it can (as root), --script writes the fixes as a shell script. `tune iotune`
    /// measures the data device for the node's defaults.
    Tune(tune::TuneArgs),
    /// The Kafka command line (topic, produce, consume, group, cluster): `odradek-cli`, which
    /// speaks only Kafka to any Kafka-compatible broker.
    #[command(flatten)]
    Kafka(odradek_cli::Command),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // openraft logs every election with its whole state at info; its warnings are enough
    // unless the filter names it.
    // The CLI commands log warnings only, so stdout and stderr stay theirs.
    let default = if matches!(cli.command, Command::Kafka(_)) { "warn" } else { "info" };
    let mut filter = std::env::var("ODRADEK_LOG").unwrap_or_else(|_| default.to_owned());
    if !filter.contains("openraft") {
        filter.push_str(",openraft=warn");
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&filter)
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::Serve(args) => match serve::run(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("odradek: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Tune(args) => tune::run(&args),
        Command::Kafka(cmd) => odradek_cli::run(cmd),
    }
}
