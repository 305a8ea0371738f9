//! `odradek`: a Kafka-compatible streaming storage node.
//!
//! `odradek serve` starts a node with embedded defaults (no config file needed): it checks the
//! host, starts one pinned shard per CPU, prints one line when it is ready, and on SIGTERM or
//! SIGINT stops accepting, lets in-flight requests finish and exits 0 within 10 seconds. A
//! start-up problem ends the process with one line saying what is wrong and how to fix it, and a
//! non-zero exit code.
#![forbid(unsafe_code)]

mod cache;
mod checks;
mod config;
mod conn;
mod fetch_session;
mod group_offsets;
mod handlers;
mod membership;
mod mesh;
mod metadata;
mod partitions;
mod producer_ids;
mod shard;
mod topic_config;
mod tune;

use std::process::ExitCode;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use clap::{Parser, Subcommand};
use futures_util::future::select;
use tracing::{info, warn};

use odradek_tuning::autotune::{self, HostFacts, InUse};
use odradek_tuning::{Host, RealSystem, iotune, startup};

use crate::config::{HostDefaults, NodeConfig, ServeArgs};
use crate::shard::Shards;

/// Total time a graceful shutdown may take before the process exits anyway.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
const SIGINT: i32 = 2;
const SIGTERM: i32 = 15;

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

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a node. Every flag is optional; settings can also come from ODRADEK_* environment
    /// variables and a TOML file given by --config.
    Serve(ServeArgs),
    /// Check the host for settings that hurt a storage node and say how to fix each; --apply
    /// fixes what it can (as root), --script writes the fixes as a shell script. `tune iotune`
    /// measures the data device for the node's defaults.
    Tune(tune::TuneArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ODRADEK_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::Serve(args) => match serve(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("odradek: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Tune(args) => tune::run(&args),
    }
}

fn serve(args: &ServeArgs) -> anyhow::Result<()> {
    let host = args.host_root.as_deref().map_or_else(Host::real, Host::new);
    let facts = HostFacts::detect(&host, &RealSystem);
    let mut tuned = None;
    let mut config = NodeConfig::resolve_with(args, |dir, smp| {
        let io = iotune::load(dir).unwrap_or_else(|e| {
            warn!(error = %e, "ignoring the iotune result; run `odradek tune iotune` again");
            None
        });
        let t = autotune::derive(facts, io.as_ref(), smp);
        let defaults = HostDefaults {
            smp: t.smp.value,
            fetch_cache_bytes: usize::try_from(t.fetch_cache_bytes.value).unwrap_or(usize::MAX),
            direct_writes: t.direct_writes.value,
        };
        tuned = Some(t);
        defaults
    })?;
    checks::data_dir_writable(&config.data_dir)?;
    config.cluster_id = cluster_id(&config)?;
    let config = Arc::new(config);
    checks::host(args.host_root.as_deref(), &config.data_dir, config.smp)?;
    if let Some(t) = &tuned {
        let in_use = InUse {
            smp: config.smp,
            fetch_cache_bytes: config.fetch_cache_bytes as u64,
            direct_writes: config.direct_writes,
        };
        startup::log_autotune(t, &in_use);
    }
    let metadata = Arc::new(metadata::Metadata::open(&config.data_dir).map_err(|e| {
        checks::StartupError::new(
            e.to_string(),
            "restore topics.json from a backup, or move it away to start with no topics",
        )
    })?);
    let producer_ids =
        Arc::new(producer_ids::ProducerIds::open(&config.data_dir).map_err(|e| {
            checks::StartupError::new(e, "restore the file from a backup; never lower its number")
        })?);
    partitions::remove_deleted_leftovers(&config.data_dir);
    partitions::warn_orphans(&config.data_dir, &metadata.snapshot());
    let runtime = compio::runtime::Runtime::new()?;
    runtime.block_on(async {
        // Register the signal handlers before saying "ready", so a SIGTERM sent right after the
        // ready line is never met by the default action (which would kill the process).
        let mut term = std::pin::pin!(compio::signal::unix::signal(SIGTERM));
        let mut int = std::pin::pin!(compio::signal::unix::signal(SIGINT));
        let early = std::future::poll_fn(|cx| {
            let t = term.as_mut().poll(cx).is_ready();
            let i = int.as_mut().poll(cx).is_ready();
            Poll::Ready(t || i)
        })
        .await;
        let shards = Shards::start(config.clone(), metadata, producer_ids)?;
        println!(
            "odradek ready: listening on {} (advertised as {}:{}), {} shard{}, data dir {}",
            config.listen,
            config.advertise.0,
            config.advertise.1,
            config.smp,
            if config.smp == 1 { "" } else { "s" },
            config.data_dir.display()
        );
        if !early {
            let _ = select(term, int).await;
        }
        info!("shutting down: no new connections; finishing in-flight requests");
        if shards.stop(SHUTDOWN_TIMEOUT) {
            info!("stopped cleanly");
        } else {
            warn!(
                timeout_s = SHUTDOWN_TIMEOUT.as_secs(),
                "shards did not stop in time; exiting anyway"
            );
        }
        Ok(())
    })
}

/// The cluster id from the data directory's `meta.properties` (created on first start).
fn cluster_id(config: &NodeConfig) -> Result<String, checks::StartupError> {
    metadata::load_or_create_cluster_id(&config.data_dir, config.node_id).map_err(|e| {
        let fix = match e {
            metadata::MetaPropertiesError::NodeIdMismatch { .. } => {
                "point --data-dir at this node's own data directory"
            }
            _ => "restore meta.properties from a backup, or fix the line named",
        };
        checks::StartupError::new(e.to_string(), fix)
    })
}
