//! DescribeLogDirs: the node's one log directory (`--data-dir`, Kafka's `log.dirs`) with the
//! size of every partition it holds, so that Kafka's `kafka-log-dirs.sh`, rpk and admin
//! clients see disk use.
//!
//! Sizes come from each partition's owner shard (one hop per other shard); the file system's
//! total and usable bytes (v4) from `statvfs` on compio's blocking pool, never on the shard.
//! As in Kafka, a partition this node does not hold, or a topic it does not know, is left out
//! of the answer (it is not an error), and `offset_lag` is how far the log end is below the
//! high watermark (0 for a leader; a follower catching up is behind its leader's).

use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse};
use odradek_net::error_code as ec;
use tracing::warn;

use super::{on_owners, str_bytes, topic_name};
use crate::cluster::Topic;
use crate::shard::Shard;

/// One partition to measure: its (name, index) for the answer, and what its owner opens.
type Item = ((String, i32), (Arc<Topic>, i32));

/// What the answer says of the directory itself.
struct DirFacts {
    /// Absolute path (the configured one where it cannot be resolved).
    path: String,
    /// (total, usable) bytes of its file system, -1 where unknown.
    space: (i64, i64),
}

pub async fn describe_log_dirs(
    ctx: &Rc<Shard>,
    version: i16,
    req: &DescribeLogDirsRequest,
) -> DescribeLogDirsResponse {
    let snapshot = ctx.metadata.snapshot();
    let smp = ctx.config.smp;
    // (topic, partition) this node holds, in request order (or the catalogue's for null).
    let wanted: Vec<(String, i32)> = match &req.topics {
        None => snapshot
            .topics
            .values()
            .flat_map(|t| (0..t.partitions()).map(move |p| (t.name.clone(), p)))
            .collect(),
        Some(topics) => topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(move |&p| (t.topic.0.to_string(), p)))
            .collect(),
    };
    let work: Vec<(usize, Item)> = wanted
        .into_iter()
        .filter_map(|(name, p)| {
            let topic = snapshot.topic(&name)?;
            let owner = topic.owner(p, smp)?;
            Some((owner, ((name, p), (topic.clone(), p))))
        })
        .collect();
    let mut measured = on_owners(ctx, work, |there: Rc<Shard>, (topic, p)| async move {
        match there.partitions.get(&topic, p).await {
            Ok(part) => {
                let size = i64::try_from(part.size_bytes()).unwrap_or(i64::MAX);
                let lag = part.high_watermark().saturating_sub(part.log_end_offset());
                Some((size, i64::try_from(lag).unwrap_or(i64::MAX)))
            }
            Err(e) => {
                warn!(topic = %topic.name, partition = p, error = %e, "DescribeLogDirs: cannot open partition");
                None
            }
        }
    })
    .await;
    measured.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let mut by_topic: Vec<DescribeLogDirsTopic> = Vec::new();
    for ((name, partition), figures) in measured {
        let Some((size, lag)) = figures else { continue };
        let entry = DescribeLogDirsPartition::default()
            .with_partition_index(partition)
            .with_partition_size(size)
            .with_offset_lag(lag)
            .with_is_future_key(false);
        match by_topic.iter_mut().find(|t| t.name.0.as_str() == name) {
            Some(t) => t.partitions.push(entry),
            None => by_topic.push(
                DescribeLogDirsTopic::default()
                    .with_name(topic_name(&name))
                    .with_partitions(vec![entry]),
            ),
        }
    }
    let dir = dir_facts(ctx.config.data_dir.clone()).await;
    let mut result = DescribeLogDirsResult::default()
        .with_error_code(ec::NONE.into())
        .with_log_dir(str_bytes(&dir.path))
        .with_topics(by_topic);
    if version >= 4 {
        result = result.with_total_bytes(dir.space.0).with_usable_bytes(dir.space.1);
    }
    DescribeLogDirsResponse::default().with_results(vec![result])
}

/// The directory's absolute path and its file system's space, from the blocking pool.
async fn dir_facts(configured: PathBuf) -> DirFacts {
    let shown = configured.display().to_string();
    let job = compio::runtime::spawn_blocking(move || {
        let path = std::fs::canonicalize(&configured).unwrap_or(configured);
        let space = rustix::fs::statvfs(&path).map(|st| {
            let total = st.f_blocks.saturating_mul(st.f_frsize);
            let usable = st.f_bavail.saturating_mul(st.f_frsize);
            (i64::try_from(total).unwrap_or(i64::MAX), i64::try_from(usable).unwrap_or(i64::MAX))
        });
        (path.display().to_string(), space)
    });
    match job.await {
        Ok((path, Ok(space))) => DirFacts { path, space },
        Ok((path, Err(e))) => {
            warn!(dir = %path, error = %e, "DescribeLogDirs: statvfs failed");
            DirFacts { path, space: (-1, -1) }
        }
        Err(_) => DirFacts { path: shown, space: (-1, -1) },
    }
}
