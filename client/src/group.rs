//! A classic (eager) consumer-group member: FindCoordinator, JoinGroup with the "range"
//! protocol, SyncGroup (the leader computes the range assignment), Heartbeat, OffsetFetch,
//! OffsetCommit and LeaveGroup, over one blocking connection to the coordinator.
//!
//! Every member subscribes to the one topic of the run, so the leader assigns
//! partitions by member id without reading the others' subscriptions.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ConsumerProtocolAssignment, ConsumerProtocolSubscription, FindCoordinatorRequest, GroupId,
    HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest, OffsetCommitRequest, OffsetFetchRequest,
    SyncGroupRequest, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use crate::blocking::Conn;
use crate::error::{ClientError, Result};

const SESSION_TIMEOUT_MS: i32 = 30_000;
const REBALANCE_TIMEOUT_MS: i32 = 30_000;
/// How often a member heartbeats (a third of Kafka's default 3 s is not needed: 1 s).
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);
const MEMBER_ID_REQUIRED: i16 = 79;
const REBALANCE_IN_PROGRESS: i16 = 27;
/// Attempts to join before giving up (each bounded by the rebalance timeout).
const JOIN_ATTEMPTS_MAX: usize = 10;

/// One member of a consumer group, with its current generation and assignment.
#[derive(Debug)]
pub struct Member {
    coordinator: Conn,
    group: GroupId,
    topic: TopicName,
    partitions: i32,
    member_id: StrBytes,
    generation: i32,
    last_heartbeat: Instant,
}

/// Partitions `0..partitions` split into contiguous ranges over `members` (sorted), as the
/// "range" assignor does: the first `partitions % n` members get one more.
pub fn range_assign(members: &[String], partitions: i32) -> HashMap<String, Vec<i32>> {
    let mut sorted: Vec<&String> = members.iter().collect();
    sorted.sort();
    let n = sorted.len().max(1) as i32;
    let (each, extra) = (partitions / n, partitions % n);
    let mut out = HashMap::new();
    let mut next = 0;
    for (i, m) in sorted.into_iter().enumerate() {
        let count = each + i32::from((i as i32) < extra);
        out.insert(m.clone(), (next..next + count).collect());
        next += count;
    }
    out
}

/// `message` prefixed with its i16 version, as the consumer protocol embeds it.
fn versioned<M: Encodable>(message: &M, version: i16) -> Result<Bytes> {
    let mut buf = BytesMut::new();
    buf.put_i16(version);
    message
        .encode(&mut buf, version)
        .map_err(|e| ClientError::ConsumerProtocol { version, reason: format!("{e:#}") })?;
    Ok(buf.freeze())
}

impl Member {
    /// Finds the coordinator of `group` through `bootstrap`, joins, and returns the member with
    /// the partitions it was assigned.
    pub fn join(
        bootstrap: &mut Conn,
        group: &str,
        topic: &str,
        partitions: i32,
    ) -> Result<(Member, Vec<i32>)> {
        let resp = bootstrap
            .call(&FindCoordinatorRequest::default().with_key(StrBytes::from(group.to_owned())))?;
        if resp.error_code != 0 {
            return Err(ClientError::broker(format!("FindCoordinator {group}"), resp.error_code));
        }
        let addr = format!("{}:{}", resp.host.as_str(), resp.port);
        let mut m = Member {
            coordinator: Conn::connect_as(&addr, bootstrap.client_id())?,
            group: GroupId(StrBytes::from(group.to_owned())),
            topic: TopicName(StrBytes::from(topic.to_owned())),
            partitions,
            member_id: StrBytes::default(),
            generation: -1,
            last_heartbeat: Instant::now(),
        };
        let assigned = m.rejoin()?;
        Ok((m, assigned))
    }

    /// Joins (again) and synchronizes; returns the new assignment.
    pub fn rejoin(&mut self) -> Result<Vec<i32>> {
        let subscription =
            ConsumerProtocolSubscription::default().with_topics(vec![self.topic.0.clone()]);
        let protocol = JoinGroupRequestProtocol::default()
            .with_name(StrBytes::from_static_str("range"))
            .with_metadata(versioned(&subscription, 0)?);
        for _ in 0..JOIN_ATTEMPTS_MAX {
            let req = JoinGroupRequest::default()
                .with_group_id(self.group.clone())
                .with_session_timeout_ms(SESSION_TIMEOUT_MS)
                .with_rebalance_timeout_ms(REBALANCE_TIMEOUT_MS)
                .with_member_id(self.member_id.clone())
                .with_protocol_type(StrBytes::from_static_str("consumer"))
                .with_protocols(vec![protocol.clone()]);
            let resp = self.coordinator.call(&req)?;
            if resp.error_code == MEMBER_ID_REQUIRED || resp.error_code == REBALANCE_IN_PROGRESS {
                self.member_id = resp.member_id;
                continue;
            }
            if resp.error_code != 0 {
                return Err(ClientError::broker("JoinGroup", resp.error_code));
            }
            self.member_id = resp.member_id;
            self.generation = resp.generation_id;
            let assignments = if resp.leader == self.member_id {
                let ids: Vec<String> =
                    resp.members.iter().map(|m| m.member_id.as_str().to_owned()).collect();
                self.assignments(&ids)?
            } else {
                Vec::new()
            };
            match self.sync(assignments)? {
                Some(parts) => {
                    self.last_heartbeat = Instant::now();
                    return Ok(parts);
                }
                None => continue, // a rebalance began meanwhile
            }
        }
        let what =
            format!("could not join group {} in {JOIN_ATTEMPTS_MAX} attempts", self.group.as_str());
        Err(ClientError::Unexpected { what })
    }

    fn assignments(&self, members: &[String]) -> Result<Vec<SyncGroupRequestAssignment>> {
        let mut out = Vec::new();
        for (member, parts) in range_assign(members, self.partitions) {
            let tp =
                TopicPartition::default().with_topic(self.topic.clone()).with_partitions(parts);
            let a = ConsumerProtocolAssignment::default().with_assigned_partitions(vec![tp]);
            out.push(
                SyncGroupRequestAssignment::default()
                    .with_member_id(StrBytes::from(member))
                    .with_assignment(versioned(&a, 0)?),
            );
        }
        Ok(out)
    }

    /// SyncGroup; `None` if a rebalance started (join again).
    fn sync(&mut self, assignments: Vec<SyncGroupRequestAssignment>) -> Result<Option<Vec<i32>>> {
        let v = self.coordinator.versions().pick::<SyncGroupRequest>()?;
        let mut req = SyncGroupRequest::default()
            .with_group_id(self.group.clone())
            .with_generation_id(self.generation)
            .with_member_id(self.member_id.clone())
            .with_assignments(assignments);
        if v >= 5 {
            req = req
                .with_protocol_type(Some(StrBytes::from_static_str("consumer")))
                .with_protocol_name(Some(StrBytes::from_static_str("range")));
        }
        let resp = self.coordinator.call(&req)?;
        if resp.error_code == REBALANCE_IN_PROGRESS {
            return Ok(None);
        }
        if resp.error_code != 0 {
            return Err(ClientError::broker("SyncGroup", resp.error_code));
        }
        let mut bytes = resp.assignment;
        if bytes.len() < 2 {
            return Ok(Some(Vec::new())); // nothing assigned
        }
        let version = i16::from_be_bytes([bytes[0], bytes[1]]);
        let _ = bytes.split_to(2);
        let version = version.clamp(0, 3);
        let a = ConsumerProtocolAssignment::decode(&mut bytes, version).map_err(|e| {
            ClientError::ConsumerProtocol { version, reason: format!("assignment: {e:#}") }
        })?;
        let mut parts: Vec<i32> = a
            .assigned_partitions
            .into_iter()
            .filter(|tp| tp.topic == self.topic)
            .flat_map(|tp| tp.partitions)
            .filter(|p| (0..self.partitions).contains(p))
            .collect();
        parts.sort_unstable();
        Ok(Some(parts))
    }

    /// Heartbeats if one is due; returns true if the group is rebalancing (commit, then
    /// `rejoin`).
    pub fn heartbeat(&mut self) -> Result<bool> {
        if self.last_heartbeat.elapsed() < HEARTBEAT_INTERVAL {
            return Ok(false);
        }
        self.last_heartbeat = Instant::now();
        let req = HeartbeatRequest::default()
            .with_group_id(self.group.clone())
            .with_generation_id(self.generation)
            .with_member_id(self.member_id.clone());
        match self.coordinator.call(&req)?.error_code {
            0 => Ok(false),
            REBALANCE_IN_PROGRESS => Ok(true),
            other => Err(ClientError::broker("Heartbeat", other)),
        }
    }

    /// The group's committed offsets of `parts` (those without one are absent).
    pub fn committed(&mut self, parts: &[i32]) -> Result<HashMap<i32, i64>> {
        let t = OffsetFetchRequestTopic::default()
            .with_name(self.topic.clone())
            .with_partition_indexes(parts.to_vec());
        let req = OffsetFetchRequest::default()
            .with_group_id(self.group.clone())
            .with_topics(Some(vec![t]));
        let resp = self.coordinator.call(&req)?;
        if resp.error_code != 0 {
            return Err(ClientError::broker("OffsetFetch", resp.error_code));
        }
        let mut out = HashMap::new();
        for t in resp.topics {
            for p in t.partitions {
                if p.error_code == 0 && p.committed_offset >= 0 {
                    out.insert(p.partition_index, p.committed_offset);
                }
            }
        }
        Ok(out)
    }

    /// Commits `positions` (partition, next offset to read) for the current generation.
    pub fn commit(&mut self, positions: &[(i32, i64)]) -> Result<()> {
        if positions.is_empty() {
            return Ok(());
        }
        let parts = positions
            .iter()
            .map(|&(p, o)| {
                OffsetCommitRequestPartition::default()
                    .with_partition_index(p)
                    .with_committed_offset(o)
            })
            .collect();
        let t = OffsetCommitRequestTopic::default()
            .with_name(self.topic.clone())
            .with_partitions(parts);
        let req = OffsetCommitRequest::default()
            .with_group_id(self.group.clone())
            .with_generation_id_or_member_epoch(self.generation)
            .with_member_id(self.member_id.clone())
            .with_topics(vec![t]);
        let resp = self.coordinator.call(&req)?;
        for t in resp.topics {
            for p in t.partitions {
                if p.error_code != 0 {
                    let what = format!("OffsetCommit {}", p.partition_index);
                    return Err(ClientError::broker(what, p.error_code));
                }
            }
        }
        Ok(())
    }

    /// Leaves the group (best effort: the run is over either way).
    pub fn leave(mut self) {
        let req = LeaveGroupRequest::default()
            .with_group_id(self.group.clone())
            .with_member_id(self.member_id.clone());
        if let Err(e) = self.coordinator.call(&req) {
            tracing::warn!(error = %e, "LeaveGroup failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_assignment_gives_contiguous_ranges_extra_to_the_first_members() {
        let members = vec!["m-b".to_owned(), "m-a".to_owned(), "m-c".to_owned()];
        let a = range_assign(&members, 8);
        assert_eq!(a["m-a"], vec![0, 1, 2]);
        assert_eq!(a["m-b"], vec![3, 4, 5]);
        assert_eq!(a["m-c"], vec![6, 7]);
        let few = range_assign(&members, 2);
        assert_eq!(few["m-c"], Vec::<i32>::new());
        assert_eq!(few.values().map(Vec::len).sum::<usize>(), 2);
    }

    #[test]
    fn assignments_round_trip_through_the_consumer_protocol() {
        let tp = TopicPartition::default()
            .with_topic(TopicName(StrBytes::from_static_str("t")))
            .with_partitions(vec![1, 4]);
        let a = ConsumerProtocolAssignment::default().with_assigned_partitions(vec![tp]);
        let mut bytes = versioned(&a, 0).expect("encode");
        assert_eq!(&bytes[..2], &[0, 0]);
        let _ = bytes.split_to(2);
        let back = ConsumerProtocolAssignment::decode(&mut bytes, 0).expect("decode");
        assert_eq!(back, a);
    }
}
