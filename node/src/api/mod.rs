//! The api room: one file per API family, each translating wire ⇄ domain. [`handle`] answers a
//! decoded request with its response body, a Fetch reply whose records travel separately, or
//! nothing (a Produce with acks=0).
//!
//! **Invariants.**
//! - Handlers run on the shard that read the request. Partition work goes to the owning shard
//!   through [`crate::runtime::on_shard`], grouped so that one request makes at most one hop
//!   per other shard, and none when all its partitions are local.
//! - A handler decides nothing a room owns: appends, reads and offsets are the `partition`
//!   room's, a coordinator's decisions (join, sync, leave, commit, delete) and the group store
//!   the `group` room's, topics the `cluster` room's. Handlers check what the wire allows
//!   (versions, acks, names), route work to its owner, and choose the error code to send.
//! - Only APIs in [`SERVED`] are answered; any other closes the connection (in `server`).
//!
//! **What it does not know.** Bytes on the wire (`net` encodes and decodes), sockets (`server`),
//! or the storage engine (it never sees a `storage::Log`).

mod admin;
mod authz;
mod configs;
mod elections;
mod fetch;
pub mod groups;
mod logdirs;
mod offsets;
mod produce;
mod producers;
mod quorum;
mod security;
pub mod txn;

use std::rc::Rc;
use std::sync::Arc;

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, DescribeClusterResponse, MetadataRequest, MetadataResponse, RequestKind,
    ResponseKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use odradek_net::error_code;
use odradek_net::request::{DecodeError, Request};
use odradek_net::versions;

use crate::cluster::{Catalogue, Topic};
use crate::error::KafkaError;
use crate::server::Session;
use crate::shard::Shard;

pub use admin::create_topic;
pub use fetch::FetchReply;

/// The APIs this node answers, and so advertises in ApiVersions (versions from
/// `odradek_net::versions::SUPPORTED`). Any other API closes the connection, as Kafka does.
pub const SERVED: &[ApiKey] = &[
    ApiKey::ApiVersions,
    ApiKey::Metadata,
    ApiKey::CreateTopics,
    ApiKey::DeleteTopics,
    ApiKey::Produce,
    ApiKey::Fetch,
    ApiKey::ListOffsets,
    ApiKey::CreatePartitions,
    ApiKey::DescribeConfigs,
    ApiKey::IncrementalAlterConfigs,
    ApiKey::AlterConfigs,
    ApiKey::DeleteRecords,
    ApiKey::OffsetForLeaderEpoch,
    ApiKey::DescribeCluster,
    ApiKey::FindCoordinator,
    ApiKey::InitProducerId,
    ApiKey::OffsetCommit,
    ApiKey::OffsetFetch,
    ApiKey::ListGroups,
    ApiKey::DescribeGroups,
    ApiKey::DeleteGroups,
    ApiKey::OffsetDelete,
    ApiKey::DescribeQuorum,
    ApiKey::UnregisterBroker,
    ApiKey::ElectLeaders,
    ApiKey::AlterPartitionReassignments,
    ApiKey::ListPartitionReassignments,
    ApiKey::JoinGroup,
    ApiKey::SyncGroup,
    ApiKey::Heartbeat,
    ApiKey::LeaveGroup,
    ApiKey::DescribeLogDirs,
    ApiKey::SaslHandshake,
    ApiKey::SaslAuthenticate,
    ApiKey::CreateAcls,
    ApiKey::DescribeAcls,
    ApiKey::DeleteAcls,
    ApiKey::DescribeUserScramCredentials,
    ApiKey::AlterUserScramCredentials,
    ApiKey::DescribeClientQuotas,
    ApiKey::AlterClientQuotas,
    ApiKey::AddPartitionsToTxn,
    ApiKey::AddOffsetsToTxn,
    ApiKey::EndTxn,
    ApiKey::TxnOffsetCommit,
    ApiKey::WriteTxnMarkers,
    ApiKey::DescribeTransactions,
    ApiKey::ListTransactions,
];

/// What a handler answers.
#[derive(Debug)]
pub enum Reply {
    /// A response encoded whole by kafka-protocol.
    Body(Box<ResponseKind>),
    /// A Fetch response whose records are sent from where they are, without a copy.
    Fetch(fetch::FetchReply),
    /// No response (Produce with acks=0).
    Nothing,
}

/// Whether an answer carries an error code (top-level, or any topic's or partition's), for
/// `odradek_request_errors_total`. The APIs clients call in their steady state are looked at;
/// the rest count as answered without error.
pub fn reply_has_error(reply: &Reply) -> bool {
    let body = match reply {
        Reply::Nothing => return false,
        Reply::Fetch(f) => {
            return f.response.error_code != 0
                || f.response.topics.iter().flat_map(|t| &t.partitions).any(|p| p.error_code != 0);
        }
        Reply::Body(body) => body,
    };
    match &**body {
        ResponseKind::Produce(r) => {
            r.responses.iter().flat_map(|t| &t.partition_responses).any(|p| p.error_code != 0)
        }
        ResponseKind::Metadata(r) => r.topics.iter().any(|t| t.error_code != 0),
        ResponseKind::ListOffsets(r) => {
            r.topics.iter().flat_map(|t| &t.partitions).any(|p| p.error_code != 0)
        }
        ResponseKind::CreateTopics(r) => r.topics.iter().any(|t| t.error_code != 0),
        ResponseKind::DeleteTopics(r) => r.responses.iter().any(|t| t.error_code != 0),
        ResponseKind::OffsetCommit(r) => {
            r.topics.iter().flat_map(|t| &t.partitions).any(|p| p.error_code != 0)
        }
        ResponseKind::OffsetFetch(r) => {
            r.error_code != 0 || r.groups.iter().any(|g| g.error_code != 0)
        }
        ResponseKind::FindCoordinator(r) => {
            r.error_code != 0 || r.coordinators.iter().any(|c| c.error_code != 0)
        }
        ResponseKind::JoinGroup(r) => r.error_code != 0,
        ResponseKind::SyncGroup(r) => r.error_code != 0,
        ResponseKind::Heartbeat(r) => r.error_code != 0,
        ResponseKind::LeaveGroup(r) => r.error_code != 0,
        ResponseKind::InitProducerId(r) => r.error_code != 0,
        ResponseKind::ListGroups(r) => r.error_code != 0,
        ResponseKind::DescribeGroups(r) => r.groups.iter().any(|g| g.error_code != 0),
        ResponseKind::DeleteGroups(r) => r.results.iter().any(|g| g.error_code != 0),
        ResponseKind::CreatePartitions(r) => r.results.iter().any(|t| t.error_code != 0),
        ResponseKind::DescribeConfigs(r) => r.results.iter().any(|t| t.error_code != 0),
        ResponseKind::IncrementalAlterConfigs(r) => r.responses.iter().any(|t| t.error_code != 0),
        ResponseKind::ApiVersions(r) => r.error_code != 0,
        _ => false,
    }
}

/// Answers one decoded request. `Err` closes the connection with the reason logged: the
/// decoder admits only the APIs in `versions::SUPPORTED`, so it means the table and this
/// dispatcher disagree. Produce and Fetch fill in `timing` (the latency breakdown).
///
/// With the ACL authorizer on, what the principal may not do is refused here before any
/// handler runs (`authz`); brokers in the answer are given at the addresses of the listener
/// the client came in on.
pub async fn handle(
    ctx: &Rc<Shard>,
    session: &Session,
    mut request: Request,
    timing: &mut crate::metrics::Timing,
) -> Result<Reply, String> {
    let version = request.header.request_api_version;
    let listing = matches!(&request.body, RequestKind::Metadata(m) if m.topics.as_ref().is_none_or(Vec::is_empty));
    let wants = authz::Wants::of(&request.body);
    let denied = if ctx.security.config.authorizer && !session.superuser {
        match authz::check(ctx, session, version, &mut request.body) {
            authz::Verdict::Refuse(reply) => return Ok(reply),
            authz::Verdict::Partly(denied) => Some(denied),
            authz::Verdict::Allow => None,
        }
    } else {
        None
    };
    let mut reply = dispatch(ctx, session, request, timing).await?;
    if let Some(denied) = denied {
        authz::merge(&mut reply, denied);
    }
    if ctx.security.config.authorizer && !session.superuser {
        authz::filter(ctx, session, listing, &mut reply);
    }
    authz::authorized_operations(ctx, session, wants, &mut reply);
    if session.listener.name != ctx.security.config.inter_broker().name {
        advertise_for(ctx, &session.listener.name, &mut reply);
    }
    Ok(reply)
}

/// Rewrites the broker addresses in `reply` to those of `listener`.
fn advertise_for(ctx: &Shard, listener: &str, reply: &mut Reply) {
    let snapshot = ctx.metadata.snapshot();
    let at = |id: i32| snapshot.brokers.get(&id).map(|b| b.endpoint(listener));
    match reply {
        Reply::Nothing => {}
        Reply::Fetch(f) => {
            for e in &mut f.response.node_endpoints {
                if let Some((host, port)) = at(e.node_id) {
                    e.host = host.to_owned();
                    e.port = i32::from(port);
                }
            }
        }
        Reply::Body(body) => match &mut **body {
            ResponseKind::Metadata(r) => {
                for b in &mut r.brokers {
                    if let Some((host, port)) = at(b.node_id.0) {
                        b.host = str_bytes(host);
                        b.port = i32::from(port);
                    }
                }
            }
            ResponseKind::DescribeCluster(r) => {
                for b in &mut r.brokers {
                    if let Some((host, port)) = at(b.broker_id.0) {
                        b.host = str_bytes(host);
                        b.port = i32::from(port);
                    }
                }
            }
            ResponseKind::FindCoordinator(r) => {
                // Before v4 the coordinator is at the top (its host set); from v4 those must stay
                // at their defaults (they do not exist) and `coordinators` has it.
                if let Some((host, port)) = at(r.node_id.0).filter(|_| !r.host.is_empty()) {
                    r.host = str_bytes(host);
                    r.port = i32::from(port);
                }
                for c in &mut r.coordinators {
                    if let Some((host, port)) = at(c.node_id.0) {
                        c.host = str_bytes(host);
                        c.port = i32::from(port);
                    }
                }
            }
            ResponseKind::Produce(r) => {
                for e in &mut r.node_endpoints {
                    if let Some((host, port)) = at(e.node_id.0) {
                        e.host = str_bytes(host);
                        e.port = i32::from(port);
                    }
                }
            }
            _ => {}
        },
    }
}

async fn dispatch(
    ctx: &Rc<Shard>,
    session: &Session,
    request: Request,
    timing: &mut crate::metrics::Timing,
) -> Result<Reply, String> {
    let version = request.header.request_api_version;
    Ok(Reply::Body(Box::new(match request.body {
        RequestKind::ApiVersions(_) => {
            ResponseKind::ApiVersions(versions::api_versions_response_for(version, SERVED))
        }
        RequestKind::Metadata(req) => ResponseKind::Metadata(metadata(ctx, version, req).await),
        RequestKind::CreateTopics(req) => {
            ResponseKind::CreateTopics(admin::create_topics(ctx, version, req).await)
        }
        RequestKind::DeleteTopics(req) => {
            ResponseKind::DeleteTopics(admin::delete_topics(ctx, version, req).await)
        }
        RequestKind::Produce(req) => match produce::produce(ctx, version, req, timing).await {
            Some(resp) => ResponseKind::Produce(resp),
            None => return Ok(Reply::Nothing),
        },
        RequestKind::Fetch(req) => {
            return Ok(Reply::Fetch(fetch::fetch(ctx, version, req, timing).await));
        }
        RequestKind::ListOffsets(req) => {
            ResponseKind::ListOffsets(offsets::list_offsets(ctx, version, req).await)
        }
        RequestKind::CreatePartitions(req) => {
            ResponseKind::CreatePartitions(admin::create_partitions(ctx, req).await)
        }
        RequestKind::DescribeConfigs(req) => {
            ResponseKind::DescribeConfigs(configs::describe_configs(ctx, version, req))
        }
        RequestKind::IncrementalAlterConfigs(req) => ResponseKind::IncrementalAlterConfigs(
            configs::incremental_alter_configs(ctx, req).await,
        ),
        RequestKind::AlterConfigs(req) => {
            ResponseKind::AlterConfigs(configs::alter_configs(ctx, req).await)
        }
        RequestKind::DeleteRecords(req) => {
            ResponseKind::DeleteRecords(offsets::delete_records(ctx, req).await)
        }
        RequestKind::OffsetForLeaderEpoch(req) => {
            ResponseKind::OffsetForLeaderEpoch(offsets::offset_for_leader_epoch(ctx, req).await)
        }
        RequestKind::InitProducerId(req) => {
            ResponseKind::InitProducerId(producers::init_producer_id(ctx, version, &req).await)
        }
        RequestKind::FindCoordinator(req) => {
            ResponseKind::FindCoordinator(groups::find_coordinator(ctx, version, &req).await)
        }
        RequestKind::OffsetCommit(req) => {
            ResponseKind::OffsetCommit(groups::offset_commit(ctx, req).await)
        }
        RequestKind::JoinGroup(req) => {
            let client = (session.client_id().to_owned(), format!("/{}", session.peer.ip()));
            ResponseKind::JoinGroup(groups::join_group(ctx, version, req, client).await)
        }
        RequestKind::SyncGroup(req) => {
            ResponseKind::SyncGroup(groups::sync_group(ctx, version, req).await)
        }
        RequestKind::Heartbeat(req) => ResponseKind::Heartbeat(groups::heartbeat(ctx, req).await),
        RequestKind::LeaveGroup(req) => {
            ResponseKind::LeaveGroup(groups::leave_group(ctx, version, req).await)
        }
        RequestKind::ListGroups(req) => {
            ResponseKind::ListGroups(groups::list_groups(ctx, &req).await)
        }
        RequestKind::DescribeGroups(req) => {
            ResponseKind::DescribeGroups(groups::describe_groups(ctx, version, &req).await)
        }
        RequestKind::DeleteGroups(req) => {
            ResponseKind::DeleteGroups(groups::delete_groups(ctx, &req).await)
        }
        RequestKind::UnregisterBroker(req) => {
            ResponseKind::UnregisterBroker(admin::unregister_broker(ctx, &req).await)
        }
        RequestKind::ElectLeaders(req) => {
            ResponseKind::ElectLeaders(elections::elect_leaders(ctx, version, req).await)
        }
        RequestKind::AlterPartitionReassignments(req) => ResponseKind::AlterPartitionReassignments(
            elections::alter_partition_reassignments(ctx, req).await,
        ),
        RequestKind::ListPartitionReassignments(req) => ResponseKind::ListPartitionReassignments(
            elections::list_partition_reassignments(ctx, &req).await,
        ),
        RequestKind::DescribeQuorum(req) => {
            ResponseKind::DescribeQuorum(quorum::describe_quorum(ctx, version, &req))
        }
        RequestKind::OffsetDelete(req) => {
            ResponseKind::OffsetDelete(groups::offset_delete(ctx, &req).await)
        }
        RequestKind::OffsetFetch(req) => {
            ResponseKind::OffsetFetch(groups::offset_fetch(ctx, version, req).await)
        }
        RequestKind::DescribeCluster(_) => ResponseKind::DescribeCluster(describe_cluster(ctx)),
        RequestKind::DescribeLogDirs(req) => {
            ResponseKind::DescribeLogDirs(logdirs::describe_log_dirs(ctx, version, &req).await)
        }
        RequestKind::CreateAcls(req) => {
            ResponseKind::CreateAcls(security::create_acls(ctx, &req).await)
        }
        RequestKind::DescribeAcls(req) => {
            ResponseKind::DescribeAcls(security::describe_acls(ctx, &req))
        }
        RequestKind::DeleteAcls(req) => {
            ResponseKind::DeleteAcls(security::delete_acls(ctx, &req).await)
        }
        RequestKind::DescribeUserScramCredentials(req) => {
            ResponseKind::DescribeUserScramCredentials(security::describe_scram(ctx, &req))
        }
        RequestKind::AlterUserScramCredentials(req) => {
            ResponseKind::AlterUserScramCredentials(security::alter_scram(ctx, &req).await)
        }
        RequestKind::DescribeClientQuotas(req) => {
            ResponseKind::DescribeClientQuotas(security::describe_quotas(ctx, &req))
        }
        RequestKind::AlterClientQuotas(req) => {
            ResponseKind::AlterClientQuotas(security::alter_quotas(ctx, &req).await)
        }
        RequestKind::AddPartitionsToTxn(req) => {
            ResponseKind::AddPartitionsToTxn(txn::add_partitions_to_txn(ctx, version, &req).await)
        }
        RequestKind::AddOffsetsToTxn(req) => {
            ResponseKind::AddOffsetsToTxn(txn::add_offsets_to_txn(ctx, version, &req).await)
        }
        RequestKind::EndTxn(req) => ResponseKind::EndTxn(txn::end_txn(ctx, version, &req).await),
        RequestKind::TxnOffsetCommit(req) => {
            ResponseKind::TxnOffsetCommit(txn::txn_offset_commit(ctx, version, req).await)
        }
        RequestKind::WriteTxnMarkers(req) => {
            ResponseKind::WriteTxnMarkers(txn::write_txn_markers(ctx, &req).await)
        }
        RequestKind::DescribeTransactions(req) => {
            ResponseKind::DescribeTransactions(txn::describe_transactions(ctx, &req).await)
        }
        RequestKind::ListTransactions(req) => {
            ResponseKind::ListTransactions(txn::list_transactions(ctx, &req).await)
        }
        _ => return Err(format!("{:?} v{version} is not served by this node", request.api_key)),
    })))
}

/// What to send back for a request that could not be decoded, if anything; `None` closes the
/// connection (Kafka's answer to an unknown API or a malformed frame).
pub fn answer_decode_error(e: &DecodeError) -> Option<(i32, ApiKey, i16, ResponseKind)> {
    versions::answer_for_decode_error_for(e, SERVED)
}

/// Groups work items by the shard that owns them, keeping first-seen order.
pub(crate) fn by_owner<T>(items: impl IntoIterator<Item = (usize, T)>) -> Vec<(usize, Vec<T>)> {
    let mut groups: Vec<(usize, Vec<T>)> = Vec::new();
    for (owner, item) in items {
        match groups.iter_mut().find(|(o, _)| *o == owner) {
            Some((_, g)) => g.push(item),
            None => groups.push((owner, vec![item])),
        }
    }
    groups
}

/// Runs `each` on the owning shard of every item, the items of one owner in turn and the
/// owners at once, and returns each item's slot with its result. Items of an owner that could
/// not be reached are left out (and logged), so their slots keep whatever the caller put there.
pub(crate) async fn on_owners<S, I, R, F, Fut>(
    ctx: &Rc<Shard>,
    work: Vec<(usize, (S, I))>,
    each: F,
) -> Vec<(S, R)>
where
    S: Send + 'static,
    I: Send + 'static,
    R: Send + 'static,
    F: Fn(Rc<Shard>, I) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = R> + 'static,
{
    let groups = by_owner(work).into_iter().map(|(owner, items)| {
        let each = each.clone();
        crate::runtime::on_shard(ctx, owner, move |there| async move {
            let mut out = Vec::with_capacity(items.len());
            for (slot, item) in items {
                out.push((slot, each(there.clone(), item).await));
            }
            out
        })
    });
    let mut out = Vec::new();
    for r in futures_util::future::join_all(groups).await {
        match r {
            Ok(done) => out.extend(done),
            Err(e) => tracing::warn!(error = %e, "owner shard unreachable"),
        }
    }
    out
}

/// The live brokers among `leaders` (each once), for KIP-951's `node_endpoints`.
pub(crate) fn leader_endpoints(ctx: &Shard, mut leaders: Vec<i32>) -> Vec<crate::cluster::Broker> {
    leaders.sort_unstable();
    leaders.dedup();
    let snapshot = ctx.metadata.snapshot();
    leaders.iter().filter_map(|l| snapshot.brokers.get(l).cloned()).collect()
}

pub(crate) fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

pub(crate) fn topic_name(s: &str) -> TopicName {
    TopicName(str_bytes(s))
}

/// `topic` as Metadata lists it. A node whose image lacks its own current registration (just
/// restarted, not caught up: [`crate::cluster::Catalogue::leadable`]) does not name itself a
/// leader: its image may be from before it died.
fn metadata_topic(topic: &Topic, me: i32, leadable: bool) -> MetadataResponseTopic {
    let partitions = topic
        .placement
        .iter()
        .enumerate()
        .map(|(p, pl)| {
            let ids = |v: &[i32]| v.iter().map(|b| BrokerId(*b)).collect::<Vec<_>>();
            let leader = if pl.leader == me && !leadable { -1 } else { pl.leader };
            let r = MetadataResponsePartition::default()
                .with_partition_index(p as i32)
                .with_leader_id(BrokerId(leader))
                .with_leader_epoch(pl.leader_epoch)
                .with_replica_nodes(ids(&pl.replicas))
                .with_isr_nodes(ids(&pl.isr));
            if leader < 0 { r.with_error_code(error_code::LEADER_NOT_AVAILABLE.into()) } else { r }
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(topic_name(&topic.name)))
        .with_topic_id(topic.id)
        // Clients leave internal topics out of pattern subscriptions (kafka-python's
        // exclude_internal_topics, Java's exclude.internal.topics) by this flag.
        .with_is_internal(
            topic.name == crate::group::records::OFFSETS_TOPIC
                || topic.name == crate::txn::records::TXN_TOPIC,
        )
        .with_partitions(partitions)
}

/// The broker clients are told is the controller: the active controller when it is a live
/// broker, else this broker (any broker takes admin requests and forwards them).
fn controller_id(ctx: &Shard, snapshot: &Catalogue) -> BrokerId {
    let active = ctx.metadata.quorum_status().and_then(|s| s.leader_id);
    let active = active.and_then(|id| i32::try_from(id).ok());
    BrokerId(match active {
        Some(id) if snapshot.brokers.contains_key(&id) => id,
        _ => ctx.config.node_id,
    })
}

async fn metadata(ctx: &Rc<Shard>, version: i16, req: MetadataRequest) -> MetadataResponse {
    // v0: an empty list means every topic; v1+: a null list does.
    let all = match &req.topics {
        None => true,
        Some(t) => t.is_empty() && version == 0,
    };
    // Kafka before v4 always auto-creates; from v4 the client says whether it wants that.
    let may_create =
        ctx.config.auto_create_topics && (version < 4 || req.allow_auto_topic_creation);
    let mut topics = Vec::new();
    if all {
        let snapshot = ctx.metadata.snapshot();
        let (me, leadable) = (ctx.config.node_id, snapshot.leadable);
        topics.extend(snapshot.topics.values().map(|t| metadata_topic(t, me, leadable)));
    } else {
        for wanted in req.topics.iter().flatten() {
            let snapshot = ctx.metadata.snapshot();
            let found: Result<Arc<Topic>, KafkaError> = match &wanted.name {
                Some(name) => match snapshot.topic(name) {
                    Some(t) => Ok(t.clone()),
                    None if may_create => create_topic(
                        ctx,
                        name,
                        ctx.config.default_partitions,
                        admin::DEFAULT_REPLICATION_FACTOR,
                        Default::default(),
                    )
                    .await
                    .or_else(|KafkaError { code, message: msg }| {
                        // Another client created it first: fine.
                        match ctx.metadata.snapshot().topic(name) {
                            Some(t) if code == error_code::TOPIC_ALREADY_EXISTS => Ok(t.clone()),
                            _ => Err(KafkaError::new(code, msg)),
                        }
                    }),
                    None => {
                        Err(KafkaError::new(error_code::UNKNOWN_TOPIC_OR_PARTITION, String::new()))
                    }
                },
                None => snapshot
                    .topic_by_id(wanted.topic_id)
                    .cloned()
                    .ok_or(KafkaError::new(error_code::UNKNOWN_TOPIC_ID, String::new())),
            };
            topics.push(match found {
                Ok(t) => metadata_topic(&t, ctx.config.node_id, ctx.metadata.snapshot().leadable),
                Err(KafkaError { code, .. }) => MetadataResponseTopic::default()
                    .with_name(wanted.name.clone())
                    .with_topic_id(wanted.topic_id)
                    .with_error_code(code.into()),
            });
        }
    }
    let snapshot = ctx.metadata.snapshot();
    let brokers = snapshot
        .brokers
        .values()
        .map(|b| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(b.id))
                .with_host(str_bytes(&b.host))
                .with_port(i32::from(b.port))
                .with_rack(b.rack.as_deref().map(str_bytes))
        })
        .collect();
    MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(Some(str_bytes(&snapshot.cluster_id)))
        .with_controller_id(controller_id(ctx, &snapshot))
        .with_topics(topics)
}

fn describe_cluster(ctx: &Shard) -> DescribeClusterResponse {
    let snapshot = ctx.metadata.snapshot();
    let brokers = snapshot
        .brokers
        .values()
        .map(|b| {
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(b.id))
                .with_host(str_bytes(&b.host))
                .with_port(i32::from(b.port))
                .with_rack(b.rack.as_deref().map(str_bytes))
        })
        .collect();
    DescribeClusterResponse::default()
        .with_cluster_id(str_bytes(&snapshot.cluster_id))
        .with_controller_id(controller_id(ctx, &snapshot))
        .with_brokers(brokers)
}
