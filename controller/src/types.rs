//! openraft's type configuration for the controller quorum, and short aliases.

use crate::image::{Command, CommandReply};

openraft::declare_raft_types!(
    /// The controller quorum's raft types: commands in, command replies out, `u64` node ids,
    /// nodes named by their controller address, compio as the runtime.
    pub TypeConfig:
        D = Command,
        R = CommandReply,
        NodeId = u64,
        Node = openraft::impls::BasicNode,
        AsyncRuntime = openraft_rt_compio::CompioRuntime,
);

pub type NodeId = u64;
pub type Entry = openraft::impls::Entry<LeaderId, openraft::EntryPayload<Command, NodeId, Node>>;
pub type LeaderId = openraft::impls::leader_id_adv::LeaderId<u64, NodeId>;
pub type LogId = openraft::LogId<LeaderId>;
pub type Vote = openraft::impls::Vote<LeaderId>;
pub type Node = openraft::impls::BasicNode;
pub type SnapshotMeta = openraft::SnapshotMeta<LeaderId, NodeId, Node>;
pub type StoredMembership = openraft::StoredMembership<LeaderId, NodeId, Node>;
pub type Snapshot = openraft::Snapshot<LeaderId, NodeId, Node, Vec<u8>>;
pub type Raft = openraft::Raft<TypeConfig, crate::state_machine::StateMachine>;
