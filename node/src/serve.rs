//! `odradek serve`: the process around the shards. It resolves the config (autotune fills in
//! what no flag or file sets), checks the host, loads the cluster metadata and the producer-id
//! allocator, starts the shards, prints one line when ready, and on SIGTERM or SIGINT stops
//! accepting, lets in-flight requests finish and returns within [`SHUTDOWN_TIMEOUT`]. A
//! start-up problem is returned as an error that says what is wrong and how to fix it.

use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use futures_util::future::select;
use tracing::{info, warn};

use odradek_tuning::autotune::{self, HostFacts, InUse};
use odradek_tuning::{Host, RealSystem, iotune, startup};

use crate::checks::{self, StartupError};
use crate::cluster::{self, Metadata, MetadataStore};
use crate::config::{HostDefaults, NodeConfig, ServeArgs};
use crate::partition;
use crate::producers::ProducerIds;
use crate::runtime::blocking::Blocking;
use crate::shard;

/// Total time a graceful shutdown may take before the process exits anyway.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
const SIGINT: i32 = 2;
const SIGTERM: i32 = 15;

/// Runs a node until SIGTERM or SIGINT.
pub fn run(args: &ServeArgs) -> anyhow::Result<()> {
    let config = Arc::new(resolve_config(args)?);
    let pool = Blocking::start().map_err(|e| {
        StartupError::new(
            format!("cannot start the blocking pool's threads: {e}"),
            "check the process's thread limit (ulimit -u)",
        )
    })?;
    let metadata = Arc::new(Metadata::open(&config.data_dir, pool.clone()).map_err(|e| {
        StartupError::new(
            e.to_string(),
            "restore topics.json from a backup, or move it away to start with no topics",
        )
    })?);
    let producer_ids =
        Arc::new(ProducerIds::open(&config.data_dir, pool.clone()).map_err(|e| {
            StartupError::new(
                e.to_string(),
                "restore the file from a backup; never lower its number",
            )
        })?);
    partition::remove_deleted_leftovers(&config.data_dir);
    partition::warn_orphans(&config.data_dir, &metadata.snapshot());
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
        let shards = shard::start(config.clone(), metadata, producer_ids, pool)?;
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

/// The config the node runs with: flags, environment, file, then autotune's defaults for what
/// none of them set (each decision logged); the data directory checked writable, the cluster
/// id read or created, and the host checked.
fn resolve_config(args: &ServeArgs) -> anyhow::Result<NodeConfig> {
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
    checks::host(args.host_root.as_deref(), &config.data_dir, config.smp)?;
    if let Some(t) = &tuned {
        let in_use = InUse {
            smp: config.smp,
            fetch_cache_bytes: config.fetch_cache_bytes as u64,
            direct_writes: config.direct_writes,
        };
        startup::log_autotune(t, &in_use);
    }
    Ok(config)
}

/// The cluster id from the data directory's `meta.properties` (created on first start).
fn cluster_id(config: &NodeConfig) -> Result<String, StartupError> {
    cluster::load_or_create_cluster_id(&config.data_dir, config.node_id).map_err(|e| {
        let fix = match e {
            cluster::MetaPropertiesError::NodeIdMismatch { .. } => {
                "point --data-dir at this node's own data directory"
            }
            _ => "restore meta.properties from a backup, or fix the line named",
        };
        StartupError::new(e.to_string(), fix)
    })
}
