//! The controller's configuration and the voter list (`controller.quorum.voters`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::types::NodeId;

/// Most voters a quorum may have.
pub const VOTERS_MAX: usize = 9;

/// The configured voters: node id → controller address, in id order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Voters(BTreeMap<NodeId, SocketAddr>);

/// Why a voter list did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VotersError {
    #[error("voter {entry:?} is not ID@HOST:PORT")]
    Syntax { entry: String },
    #[error("voter id {id} appears twice")]
    DuplicateId { id: NodeId },
    #[error("voter address {addr} appears twice")]
    DuplicateAddr { addr: SocketAddr },
    #[error("between 1 and {VOTERS_MAX} voters are needed, got {count}")]
    Count { count: usize },
}

impl Voters {
    /// Parses Kafka's `controller.quorum.voters` form: `1@127.0.0.2:9093,2@127.0.0.3:9093`.
    pub fn parse(s: &str) -> Result<Self, VotersError> {
        let mut map = BTreeMap::new();
        for entry in s.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let syntax = || VotersError::Syntax { entry: entry.to_owned() };
            let (id, addr) = entry.split_once('@').ok_or_else(syntax)?;
            let id: NodeId = id.parse().map_err(|_| syntax())?;
            let addr: SocketAddr = addr.parse().map_err(|_| syntax())?;
            if map.values().any(|a| *a == addr) {
                return Err(VotersError::DuplicateAddr { addr });
            }
            if map.insert(id, addr).is_some() {
                return Err(VotersError::DuplicateId { id });
            }
        }
        if map.is_empty() || map.len() > VOTERS_MAX {
            return Err(VotersError::Count { count: map.len() });
        }
        Ok(Voters(map))
    }

    /// The list in canonical form (id order), as the handshake compares it.
    pub fn canonical(&self) -> String {
        let parts: Vec<String> = self.0.iter().map(|(id, a)| format!("{id}@{a}")).collect();
        parts.join(",")
    }

    pub fn contains(&self, id: NodeId) -> bool {
        self.0.contains_key(&id)
    }

    pub fn addr(&self, id: NodeId) -> Option<SocketAddr> {
        self.0.get(&id).copied()
    }

    pub fn ids(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.0.keys().copied()
    }

    pub fn iter(&self) -> impl Iterator<Item = (NodeId, SocketAddr)> + '_ {
        self.0.iter().map(|(k, v)| (*k, *v))
    }

    /// The lowest voter id: the one node that initializes a new cluster.
    pub fn bootstrapper(&self) -> Option<NodeId> {
        self.0.keys().next().copied()
    }
}

/// Everything [`crate::Controller::start`] needs.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// This node's id; must be one of `voters`. Never reuse an id for a new data directory.
    pub node_id: NodeId,
    /// The controller listener; its IP is also the source address of outgoing connections.
    pub listen: SocketAddr,
    pub voters: Voters,
    /// The controller's own directory (the metadata log, vote, cluster id, snapshots).
    pub data_dir: PathBuf,
    /// Leader heartbeat period; elections time out after 3–6 of them.
    pub heartbeat: Duration,
    /// A snapshot is built after this many entries since the last one; older entries are purged
    /// except the last `keep_after_snapshot`.
    pub snapshot_every_entries: u64,
    pub keep_after_snapshot: u64,
    /// Segment size of the metadata log.
    pub segment_bytes: u64,
    /// How long `propose` waits for its command to commit.
    pub propose_timeout: Duration,
    /// Proposals queued toward the controller thread before `propose` waits.
    pub proposals_queued_max: usize,
}

impl ControllerConfig {
    /// A configuration with the defaults below for everything but identity and place.
    pub fn new(node_id: NodeId, listen: SocketAddr, voters: Voters, data_dir: PathBuf) -> Self {
        ControllerConfig {
            node_id,
            listen,
            voters,
            data_dir,
            heartbeat: Duration::from_millis(100),
            snapshot_every_entries: 10_000,
            keep_after_snapshot: 1_000,
            segment_bytes: 64 << 20,
            propose_timeout: Duration::from_secs(5),
            proposals_queued_max: 1024,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voters_parse_and_refuse() {
        let v = Voters::parse("2@127.0.0.3:9093, 1@127.0.0.2:9093").expect("valid");
        assert_eq!(v.canonical(), "1@127.0.0.2:9093,2@127.0.0.3:9093");
        assert_eq!(v.bootstrapper(), Some(1));
        for (bad, want) in [
            ("", VotersError::Count { count: 0 }),
            ("1@127.0.0.2:9093,1@127.0.0.3:9093", VotersError::DuplicateId { id: 1 }),
            ("x@127.0.0.2:9093", VotersError::Syntax { entry: "x@127.0.0.2:9093".into() }),
            ("1-127.0.0.2:9093", VotersError::Syntax { entry: "1-127.0.0.2:9093".into() }),
        ] {
            assert_eq!(Voters::parse(bad), Err(want), "{bad:?}");
        }
        assert!(matches!(
            Voters::parse("1@127.0.0.2:9093,2@127.0.0.2:9093"),
            Err(VotersError::DuplicateAddr { .. })
        ));
    }
}
