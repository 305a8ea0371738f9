//! Automatic preferred-leader election (Kafka's `auto.leader.rebalance.enable`): every
//! `leader.imbalance.check.interval.seconds`, the node whose controller is the active one
//! proposes `ElectLeader Preferred` for each partition led by another than its first replica
//! while that replica is live (unfenced) and in the ISR, so that leadership spread at creation
//! comes back after a broker's restart. The controller decides (it refuses what is no longer
//! needed or possible); this only finds candidates in the catalogue.
//!
//! Bounded: at most [`PROPOSALS_PER_PASS`] proposals per pass, one at a time, each given up
//! after [`PROPOSAL_TIMEOUT`].

use std::sync::Arc;
use std::time::Duration;

use odradek_controller::{Command, ElectionKind};
use tracing::{debug, info};

use super::{Catalogue, MetadataStore, Placement};

/// Most elections one pass proposes; the rest wait for the next pass.
pub const PROPOSALS_PER_PASS: usize = 64;
/// How long one proposal may take before the pass moves on.
pub const PROPOSAL_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether `p`'s leadership should go back to its preferred replica now.
pub fn imbalanced(p: &Placement, catalogue: &Catalogue) -> bool {
    let Some(&preferred) = p.replicas.first() else { return false };
    p.leader != preferred
        && p.isr.contains(&preferred)
        && catalogue.brokers.contains_key(&preferred)
}

/// The partitions of `catalogue` to elect a preferred leader for, at most `max`.
pub fn candidates(catalogue: &Catalogue, max: usize) -> Vec<(String, i32)> {
    catalogue
        .topics
        .values()
        .flat_map(|t| {
            t.placement
                .iter()
                .enumerate()
                .filter(|(_, p)| imbalanced(p, catalogue))
                .map(|(i, _)| (t.name.clone(), i32::try_from(i).unwrap_or(i32::MAX)))
        })
        .take(max)
        .collect()
}

/// Runs forever (the caller drops it to stop): a pass every `interval` while this node's
/// controller is the active one.
pub async fn run(store: Arc<dyn MetadataStore>, me: i32, interval: Duration) {
    let me = u64::try_from(me).ok();
    loop {
        compio::time::sleep(interval).await;
        let active =
            store.quorum_status().is_some_and(|s| s.leader_id.is_some() && s.leader_id == me);
        if !active {
            continue;
        }
        for (topic, partition) in candidates(&store.snapshot(), PROPOSALS_PER_PASS) {
            let command = Command::ElectLeader {
                topic: topic.clone(),
                partition,
                kind: ElectionKind::Preferred,
            };
            match compio::time::timeout(PROPOSAL_TIMEOUT, store.propose(command)).await {
                Ok(Ok(_)) => info!(%topic, partition, "preferred leader elected (auto rebalance)"),
                Ok(Err(e)) => debug!(%topic, partition, error = %e, "preferred leader not elected"),
                Err(_) => debug!(%topic, partition, "preferred leader election timed out"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use uuid::Uuid;

    use super::*;
    use crate::cluster::{Broker, Topic};

    fn catalogue(placements: Vec<Placement>, live: &[i32]) -> Catalogue {
        let topic = Topic {
            name: "t".into(),
            id: Uuid::from_u128(1),
            shards: vec![0; placements.len()],
            configs: BTreeMap::new(),
            placement: placements,
        };
        let mut c = Catalogue::default();
        c.topics.insert("t".into(), Arc::new(topic));
        for &id in live {
            c.brokers.insert(
                id,
                Broker { id, host: "h".into(), port: 1, rack: None, listeners: Vec::new() },
            );
        }
        c
    }

    fn placement(replicas: &[i32], isr: &[i32], leader: i32) -> Placement {
        Placement { replicas: replicas.into(), isr: isr.into(), leader, ..Placement::default() }
    }

    #[test]
    fn only_partitions_whose_preferred_replica_is_live_and_in_sync_are_candidates() {
        let c = catalogue(
            vec![
                placement(&[1, 2, 3], &[1, 2, 3], 1), // balanced
                placement(&[1, 2, 3], &[1, 2, 3], 2), // imbalanced
                placement(&[1, 2, 3], &[2, 3], 2),    // preferred out of sync
                placement(&[3, 1, 2], &[1, 2, 3], 1), // preferred fenced
                placement(&[2, 1], &[1, 2], -1),      // no leader: preferred can take it
            ],
            &[1, 2],
        );
        assert_eq!(candidates(&c, 10), vec![("t".to_owned(), 1), ("t".to_owned(), 4)]);
        assert_eq!(candidates(&c, 1), vec![("t".to_owned(), 1)], "bounded per pass");
    }
}
