//! The coordinator's timers, one of each per shard, running until the shard stops: committed
//! offsets' expiry, and groups' session timeouts and join deadlines.

use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::GroupHost;
use super::records::partition_for;
use super::store::{delete_offsets, load_all_owned, now_ms, store_group};
use crate::error::KafkaError;

/// How often the group ticker looks at session timeouts and join deadlines.
pub const TICK: Duration = Duration::from_millis(100);

/// Every `offsets.retention.check.interval.ms`, deletes the committed offsets older than
/// `offsets.retention.ms` of the groups without members this shard coordinates (Kafka expires
/// such groups' offsets by commit age), and removes a group left with neither.
pub async fn expire_offsets(host: &impl GroupHost) {
    let interval = host.group_settings().offsets_retention_check_interval;
    let step = Duration::from_millis(100).min(interval);
    let mut waited = Duration::ZERO;
    while !host.stopping() {
        compio::time::sleep(step).await;
        waited += step;
        if waited < interval {
            continue;
        }
        waited = Duration::ZERO;
        expire_once(host).await;
    }
}

async fn expire_once(host: &impl GroupHost) {
    let Some(partitions) = host.offsets_partition_count() else { return };
    if let Err(KafkaError { code, message }) = load_all_owned(host).await {
        warn!(%code, %message, "cannot read committed offsets for expiry");
        return;
    }
    let retention = host.group_settings().offsets_retention;
    let cutoff = now_ms().saturating_sub(i64::try_from(retention.as_millis()).unwrap_or(i64::MAX));
    let expired: Vec<(String, Vec<(String, i32)>)> = {
        let groups = host.groups().borrow();
        let active = |g: &String| groups.membership.get(g).is_some_and(|m| !m.members.is_empty());
        groups.offsets.expired(cutoff).into_iter().filter(|(g, _)| !active(g)).collect()
    };
    for (group, keys) in expired {
        let partition = partition_for(&group, partitions);
        let n = keys.len();
        match delete_offsets(host, partition, &group, keys).await {
            Ok(_) => info!(group, offsets = n, "expired committed offsets deleted"),
            Err(code) => warn!(group, %code, "cannot delete expired offsets"),
        }
        // As Kafka: an empty group whose last offsets expired is removed altogether.
        let gone = {
            let mut groups = host.groups().borrow_mut();
            let empty = groups.membership.get(&group).is_some_and(|g| g.members.is_empty());
            empty
                && groups.offsets.all(&group).is_empty()
                && groups.membership.remove(&group).is_some()
        };
        if gone && store_group(host, &group).await.is_ok() {
            info!(group, "empty group removed with its last offsets");
        }
    }
}

/// Every [`TICK`]: session timeouts and join deadlines of this shard's groups, and stores the
/// groups whose change is waiting to be written (a failed store is retried on the next tick).
pub async fn tick_groups(host: &impl GroupHost) {
    while !host.stopping() {
        compio::time::sleep(TICK).await;
        let delay = host.group_settings().initial_rebalance_delay;
        let now = Instant::now();
        let mut to_store = Vec::new();
        {
            let mut groups = host.groups().borrow_mut();
            for (name, g) in groups.membership.iter_mut() {
                g.tick(now, delay);
                if std::mem::take(&mut g.store_pending) {
                    to_store.push(name.clone());
                }
            }
            groups.forget_unformed();
        }
        for group in to_store {
            if store_group(host, &group).await.is_err()
                && let Some(g) = host.groups().borrow_mut().membership.get_mut(&group)
            {
                g.store_pending = true;
            }
        }
    }
}
