//! `odradek-bench`: a load generator and latency harness for Kafka-compatible brokers (its own
//! Kafka client, `odradek-client`: it links no broker internals), and the storage-engine
//! benchmark (built with the `storage` feature).
//!
//! Subcommands:
//! - `produce`, `consume`, `e2e`: workloads against any Kafka-compatible broker ([`load`]);
//!   closed loop, or open loop at `--rate` with coordinated-omission-corrected latency.
//! - `run WORKLOAD.toml`: the same parameters from a file ([`workload`]).
//! - `plot`, `compare`: percentile plots and ratios of saved JSON summaries ([`report`]).
//! - `encode`: the RecordBatch encoder alone (`odradek_records::BatchBuilder`), records/s.
//! - `storage` (feature `storage`): drives one partition `odradek_storage::Log` directly (no
//!   network) with concurrent producers and reports throughput and append(+sync) latency.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

mod breakdown;
mod codec_arg;
#[cfg(feature = "storage")]
mod counting;
mod dist;
mod encode;
#[cfg(test)]
mod fake_broker;
mod latency;
mod load;
mod report;
#[cfg(feature = "storage")]
mod storage;
mod units;
mod workload;

/// Load generator and latency harness for Kafka-compatible brokers (Odradek, Tansu, Redpanda,
/// Kafka), plus Odradek's storage-engine benchmark.
#[derive(Debug, Parser)]
#[command(name = "odradek-bench", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Produce records and measure throughput and acknowledgement latency.
    Produce(load::LoadArgs),
    /// Consume a topic (from earliest or tailing) and measure throughput.
    Consume(load::LoadArgs),
    /// Producers and consumers together; end-to-end latency from the timestamp each producer
    /// embeds in the record to its arrival at a consumer. Checks every acknowledged record
    /// arrives.
    E2e(load::LoadArgs),
    /// Run a workload file (TOML: `workload = "produce|consume|e2e"` plus any flag as a key).
    Run {
        file: PathBuf,
        /// Flags that override the file (e.g. `-- --brokers 127.0.0.1:9093 --json out.json`).
        #[arg(last = true)]
        overrides: Vec<String>,
    },
    /// Draw the latency percentile plot (SVG) of one or more JSON summaries, overlaid.
    Plot {
        files: Vec<PathBuf>,
        /// Output SVG file.
        #[arg(short, long)]
        output: PathBuf,
        /// Only this histogram (`produce` or `e2e`); default all.
        #[arg(long)]
        latency: Option<String>,
        #[arg(long, default_value = "latency by percentile")]
        title: String,
    },
    /// Print every figure of two JSON summaries and the ratio b/a.
    Compare { a: PathBuf, b: PathBuf },
    /// Measure the RecordBatch v2 encoder alone (no network): records/s.
    Encode(encode::EncodeArgs),
    /// Storage-engine benchmark: concurrent producers append prebuilt RecordBatch v2 batches to
    /// one partition log (optionally with an fdatasync per append, i.e. acks=all) and the
    /// throughput and append(+sync) latency percentiles are reported. Built with the `storage`
    /// feature (`cargo build --release -p odradek-bench --features storage`).
    #[cfg(feature = "storage")]
    Storage(storage::StorageArgs),
}

fn main() -> ExitCode {
    // The log reports opening and closing at INFO; keep the benchmark's output to warnings
    // unless RUST_LOG asks for more.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();

    let cli = Cli::parse();
    let result = match cli.command {
        #[cfg(feature = "storage")]
        Command::Storage(args) => storage::run(args),
        Command::Produce(args) => run_load(load::Workload::Produce, args),
        Command::Consume(args) => run_load(load::Workload::Consume, args),
        Command::E2e(args) => run_load(load::Workload::E2e, args),
        Command::Run { file, overrides } => match workload::load(&file, &overrides) {
            Ok((w, a)) => run_load(w, a),
            Err(e) => Err(format!("{e:#}")),
        },
        Command::Plot { files, output, latency, title } => {
            report::plot(&files, latency.as_deref(), &title, &output).map_err(|e| e.to_string())
        }
        Command::Compare { a, b } => compare(&a, &b),
        Command::Encode(args) => encode::run(&args).map_err(|e| e.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("odradek-bench: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn compare(a: &std::path::Path, b: &std::path::Path) -> Result<(), String> {
    let (a, b) = (report::Summary::read(a), report::Summary::read(b));
    let (a, b) = (a.map_err(|e| format!("{e:#}"))?, b.map_err(|e| format!("{e:#}"))?);
    print!("{}", report::compare(&a, &b));
    Ok(())
}

fn run_load(w: load::Workload, args: load::LoadArgs) -> Result<(), String> {
    let go = || -> Result<()> {
        let summary = load::run(w, args.clone())?;
        print!("{}", summary.table());
        if let Some(path) = &args.json {
            for p in summary.write(path)? {
                eprintln!("wrote {}", p.display());
            }
        }
        if let Some(path) = &args.svg {
            let runs: Vec<_> = summary
                .latency
                .iter()
                .map(|(n, l)| (format!("{} — {n}", summary.label), l.histogram()))
                .collect();
            std::fs::write(path, report::svg(&summary.label, &runs))?;
            eprintln!("wrote {}", path.display());
        }
        if !summary.notes.is_empty() {
            anyhow::bail!("the run is not clean: {}", summary.notes.join("; "));
        }
        Ok(())
    };
    go().map_err(|e| format!("{e:#}"))
}
