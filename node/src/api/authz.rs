//! What each API needs the principal to be allowed (Kafka's `KafkaApis` checks, with its error
//! codes), checked against the compiled ACLs of the current metadata snapshot before the
//! handler runs. A request is refused whole when it needs a cluster permission; otherwise the
//! items the principal may not touch are taken out of the request (so nothing of them
//! happens) and answered with the authorization error after the handler ran ([`merge`]).
//! Reads that list resources (Metadata, ListGroups, DescribeGroups) leave out, after the
//! handler, what the principal may not describe ([`filter`]).
//!
//! Super users, and every request when `--authorizer none`, never come here.

use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::*;
use odradek_controller::image::security::{operation as op, resource};
use odradek_net::error_code::{self as ec, ErrorCode};
use odradek_net::fetch_response::{FetchOut, PartitionOut, TopicOut};

use super::{FetchReply, Reply, str_bytes};
use crate::security::acl::Subject;
use crate::server::Session;
use crate::shard::Shard;

/// The resource a cluster permission is about.
const CLUSTER: &str = "kafka-cluster";

/// The verdict on one request.
#[derive(Debug)]
pub enum Verdict {
    Allow,
    /// Refused whole: this is the answer.
    Refuse(Reply),
    /// Some items were taken out of the request; they are answered with an error.
    Partly(Denied),
}

/// Items taken out of a request, to be answered with an authorization error.
#[derive(Debug)]
pub enum Denied {
    Produce(Vec<(String, Vec<i32>)>),
    Fetch(Vec<(String, uuid::Uuid, Vec<i32>)>),
    ListOffsets(Vec<(String, Vec<i32>)>),
    CreateTopics(Vec<String>),
    DeleteTopics(Vec<(Option<String>, uuid::Uuid)>),
    OffsetCommit(Vec<(String, Vec<i32>)>),
    OffsetDelete(Vec<(String, Vec<i32>)>),
}

struct Check<'a> {
    ctx: &'a Shard,
    who: Subject<'a>,
    acls: std::sync::Arc<crate::cluster::Catalogue>,
}

impl Check<'_> {
    fn allows(&self, resource_type: i8, name: &str, operation: i8) -> bool {
        let allow_if_none = self.ctx.security.config.allow_everyone_if_no_acl_found;
        self.acls.security.acls.allows(self.who, resource_type, name, operation, allow_if_none)
    }
    fn topic(&self, name: &str, operation: i8) -> bool {
        self.allows(resource::TOPIC, name, operation)
    }
    fn group(&self, name: &str, operation: i8) -> bool {
        self.allows(resource::GROUP, name, operation)
    }
    fn cluster(&self, operation: i8) -> bool {
        self.allows(resource::CLUSTER, CLUSTER, operation)
    }
}

fn body(kind: ResponseKind) -> Verdict {
    Verdict::Refuse(Reply::Body(Box::new(kind)))
}

fn cluster_denied() -> (i16, Option<kafka_protocol::protocol::StrBytes>) {
    (ec::CLUSTER_AUTHORIZATION_FAILED.code(), Some(str_bytes("Cluster authorization failed.")))
}

/// Checks `request` for the session's principal; takes denied items out of it.
pub fn check(ctx: &Shard, session: &Session, version: i16, request: &mut RequestKind) -> Verdict {
    let c = Check {
        ctx,
        who: Subject { principal: session.principal.as_str(), host: &session.host },
        acls: ctx.metadata.snapshot(),
    };
    let (cluster_code, cluster_message) = cluster_denied();
    let group_code = ec::GROUP_AUTHORIZATION_FAILED.code();
    match request {
        RequestKind::Produce(req)
            if req
                .transactional_id
                .as_ref()
                .is_some_and(|id| !c.allows(resource::TRANSACTIONAL_ID, id, op::WRITE)) =>
        {
            // A transactional produce needs WRITE on its transactional id: nothing is written.
            if req.acks == 0 {
                req.topic_data.clear();
                return Verdict::Allow;
            }
            let code = ec::TRANSACTIONAL_ID_AUTHORIZATION_FAILED.code();
            let responses = req
                .topic_data
                .iter()
                .map(|t| {
                    let partitions = t
                        .partition_data
                        .iter()
                        .map(|p| {
                            PartitionProduceResponse::default()
                                .with_index(p.index)
                                .with_error_code(code)
                                .with_base_offset(-1)
                                .with_log_append_time_ms(-1)
                                .with_log_start_offset(-1)
                        })
                        .collect();
                    TopicProduceResponse::default()
                        .with_name(t.name.clone())
                        .with_partition_responses(partitions)
                })
                .collect();
            body(ResponseKind::Produce(ProduceResponse::default().with_responses(responses)))
        }
        RequestKind::Produce(req) => {
            let mut denied = Vec::new();
            req.topic_data.retain(|t| {
                let ok = c.topic(&t.name, op::WRITE);
                if !ok {
                    denied.push((
                        t.name.to_string(),
                        t.partition_data.iter().map(|p| p.index).collect(),
                    ));
                }
                ok
            });
            partly(denied, Denied::Produce)
        }
        RequestKind::Fetch(req) => {
            let follower = req.replica_id.0 >= 0 || req.replica_state.replica_id.0 >= 0;
            if follower {
                if c.cluster(op::CLUSTER_ACTION) {
                    return Verdict::Allow;
                }
                let response = FetchOut { error_code: cluster_code, ..FetchOut::default() };
                return Verdict::Refuse(Reply::Fetch(FetchReply { response, records: Vec::new() }));
            }
            let mut denied = Vec::new();
            req.topics.retain(|t| {
                let name = if t.topic.0.is_empty() {
                    c.acls.topic_by_id(t.topic_id).map(|t| t.name.clone()).unwrap_or_default()
                } else {
                    t.topic.to_string()
                };
                let ok = c.topic(&name, op::READ);
                if !ok {
                    let parts = t.partitions.iter().map(|p| p.partition).collect();
                    denied.push((t.topic.to_string(), t.topic_id, parts));
                }
                ok
            });
            partly(denied, Denied::Fetch)
        }
        RequestKind::ListOffsets(req) => {
            let mut denied = Vec::new();
            req.topics.retain(|t| {
                let ok = c.topic(&t.name, op::DESCRIBE);
                if !ok {
                    denied.push((
                        t.name.to_string(),
                        t.partitions.iter().map(|p| p.partition_index).collect(),
                    ));
                }
                ok
            });
            partly(denied, Denied::ListOffsets)
        }
        RequestKind::Metadata(req) => {
            // Auto-creation needs CREATE (on the cluster or the topic); without it a missing
            // topic is only reported missing.
            if req.allow_auto_topic_creation && !c.cluster(op::CREATE) {
                let all_creatable = req.topics.iter().flatten().all(|t| {
                    t.name
                        .as_ref()
                        .is_none_or(|n| c.acls.topic(n).is_some() || c.topic(n, op::CREATE))
                });
                if !all_creatable {
                    req.allow_auto_topic_creation = false;
                }
            }
            Verdict::Allow
        }
        RequestKind::CreateTopics(req) => {
            if c.cluster(op::CREATE) {
                return Verdict::Allow;
            }
            let mut denied = Vec::new();
            req.topics.retain(|t| {
                let ok = c.topic(&t.name, op::CREATE);
                if !ok {
                    denied.push(t.name.to_string());
                }
                ok
            });
            partly(denied, Denied::CreateTopics)
        }
        RequestKind::DeleteTopics(req) => {
            let mut denied = Vec::new();
            let named = |t: &kafka_protocol::messages::delete_topics_request::DeleteTopicState| {
                t.name
                    .as_ref()
                    .map(|n| n.to_string())
                    .or_else(|| c.acls.topic_by_id(t.topic_id).map(|t| t.name.clone()))
            };
            req.topics.retain(|t| {
                let ok = named(t).is_some_and(|n| c.topic(&n, op::DELETE));
                if !ok {
                    denied.push((t.name.as_ref().map(|n| n.to_string()), t.topic_id));
                }
                ok
            });
            let names = std::mem::take(&mut req.topic_names);
            for n in names {
                if c.topic(&n, op::DELETE) {
                    req.topic_names.push(n);
                } else {
                    denied.push((Some(n.to_string()), uuid::Uuid::nil()));
                }
            }
            partly(denied, Denied::DeleteTopics)
        }
        RequestKind::OffsetCommit(req) => {
            if !c.group(&req.group_id, op::READ) {
                let topics = req
                    .topics
                    .iter()
                    .map(|t| {
                        OffsetCommitResponseTopic::default()
                            .with_name(t.name.clone())
                            .with_partitions(
                                t.partitions
                                    .iter()
                                    .map(|p| {
                                        OffsetCommitResponsePartition::default()
                                            .with_partition_index(p.partition_index)
                                            .with_error_code(group_code)
                                    })
                                    .collect(),
                            )
                    })
                    .collect();
                return body(ResponseKind::OffsetCommit(
                    OffsetCommitResponse::default().with_topics(topics),
                ));
            }
            let mut denied = Vec::new();
            req.topics.retain(|t| {
                let ok = c.topic(&t.name, op::READ);
                if !ok {
                    denied.push((
                        t.name.to_string(),
                        t.partitions.iter().map(|p| p.partition_index).collect(),
                    ));
                }
                ok
            });
            partly(denied, Denied::OffsetCommit)
        }
        RequestKind::JoinGroup(req) if !c.group(&req.group_id, op::READ) => {
            body(ResponseKind::JoinGroup(JoinGroupResponse::default().with_error_code(group_code)))
        }
        RequestKind::SyncGroup(req) if !c.group(&req.group_id, op::READ) => {
            body(ResponseKind::SyncGroup(SyncGroupResponse::default().with_error_code(group_code)))
        }
        RequestKind::Heartbeat(req) if !c.group(&req.group_id, op::READ) => {
            body(ResponseKind::Heartbeat(HeartbeatResponse::default().with_error_code(group_code)))
        }
        RequestKind::LeaveGroup(req) if !c.group(&req.group_id, op::READ) => body(
            ResponseKind::LeaveGroup(LeaveGroupResponse::default().with_error_code(group_code)),
        ),
        RequestKind::OffsetFetch(req) if version <= 7 && !c.group(&req.group_id, op::DESCRIBE) => {
            body(ResponseKind::OffsetFetch(
                OffsetFetchResponse::default().with_error_code(group_code),
            ))
        }
        RequestKind::OffsetFetch(req)
            if version >= 8 && req.groups.iter().any(|g| !c.group(&g.group_id, op::DESCRIBE)) =>
        {
            let groups = req
                .groups
                .iter()
                .map(|g| {
                    let code = if c.group(&g.group_id, op::DESCRIBE) { 0 } else { group_code };
                    kafka_protocol::messages::offset_fetch_response::OffsetFetchResponseGroup::default()
                        .with_group_id(g.group_id.clone())
                        .with_error_code(code)
                })
                .collect();
            body(ResponseKind::OffsetFetch(OffsetFetchResponse::default().with_groups(groups)))
        }
        RequestKind::FindCoordinator(req) => {
            let denied = |key: &str, key_type: i8| match key_type {
                0 => !c.group(key, op::DESCRIBE),
                1 => !c.allows(resource::TRANSACTIONAL_ID, key, op::DESCRIBE),
                _ => false,
            };
            let code = |key_type: i8| {
                if key_type == 1 {
                    ec::TRANSACTIONAL_ID_AUTHORIZATION_FAILED.code()
                } else {
                    group_code
                }
            };
            if version < 4 {
                if denied(&req.key, req.key_type) {
                    return body(ResponseKind::FindCoordinator(
                        FindCoordinatorResponse::default()
                            .with_error_code(code(req.key_type))
                            .with_node_id(BrokerId(-1))
                            .with_port(-1),
                    ));
                }
                return Verdict::Allow;
            }
            if req.coordinator_keys.iter().any(|k| denied(k, req.key_type)) {
                let coordinators = req
                    .coordinator_keys
                    .iter()
                    .map(|k| {
                        let e = if denied(k, req.key_type) { code(req.key_type) } else { 0 };
                        kafka_protocol::messages::find_coordinator_response::Coordinator::default()
                            .with_key(k.clone())
                            .with_node_id(BrokerId(-1))
                            .with_port(-1)
                            .with_error_code(if e == 0 {
                                ec::COORDINATOR_NOT_AVAILABLE.code()
                            } else {
                                e
                            })
                    })
                    .collect();
                return body(ResponseKind::FindCoordinator(
                    FindCoordinatorResponse::default().with_coordinators(coordinators),
                ));
            }
            Verdict::Allow
        }
        RequestKind::DeleteGroups(req) => {
            if req.groups_names.iter().all(|g| c.group(g, op::DELETE)) {
                return Verdict::Allow;
            }
            let results = req
                .groups_names
                .iter()
                .map(|g| {
                    let code = if c.group(g, op::DELETE) { 0 } else { group_code };
                    kafka_protocol::messages::delete_groups_response::DeletableGroupResult::default(
                    )
                    .with_group_id(g.clone())
                    .with_error_code(code)
                })
                .collect();
            // All or nothing: a request naming a group it may not delete deletes none.
            body(ResponseKind::DeleteGroups(DeleteGroupsResponse::default().with_results(results)))
        }
        RequestKind::OffsetDelete(req) if !c.group(&req.group_id, op::DELETE) => body(
            ResponseKind::OffsetDelete(OffsetDeleteResponse::default().with_error_code(group_code)),
        ),
        RequestKind::OffsetDelete(req) => {
            let mut denied = Vec::new();
            req.topics.retain(|t| {
                let ok = c.topic(&t.name, op::READ);
                if !ok {
                    denied.push((
                        t.name.to_string(),
                        t.partitions.iter().map(|p| p.partition_index).collect(),
                    ));
                }
                ok
            });
            partly(denied, Denied::OffsetDelete)
        }
        RequestKind::InitProducerId(req) => match &req.transactional_id {
            Some(id) if !c.allows(resource::TRANSACTIONAL_ID, id, op::WRITE) => {
                body(ResponseKind::InitProducerId(
                    InitProducerIdResponse::default()
                        .with_error_code(ec::TRANSACTIONAL_ID_AUTHORIZATION_FAILED.code())
                        .with_producer_id(ProducerId(-1))
                        .with_producer_epoch(-1),
                ))
            }
            Some(_) => Verdict::Allow,
            None if c.cluster(op::IDEMPOTENT_WRITE)
                || c.acls.security.acls.allows_any(c.who, resource::TOPIC, op::WRITE) =>
            {
                Verdict::Allow
            }
            None => body(ResponseKind::InitProducerId(
                InitProducerIdResponse::default()
                    .with_error_code(cluster_code)
                    .with_producer_id(ProducerId(-1))
                    .with_producer_epoch(-1),
            )),
        },
        // Topic-level admin: allowed only when every topic named is (all or nothing).
        RequestKind::CreatePartitions(req)
            if req.topics.iter().any(|t| !c.topic(&t.name, op::ALTER)) =>
        {
            let results = req
                .topics
                .iter()
                .map(|t| {
                    kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult::default()
                        .with_name(t.name.clone())
                        .with_error_code(topic_code(c.topic(&t.name, op::ALTER)))
                })
                .collect();
            body(ResponseKind::CreatePartitions(
                CreatePartitionsResponse::default().with_results(results),
            ))
        }
        RequestKind::DeleteRecords(req)
            if req.topics.iter().any(|t| !c.topic(&t.name, op::DELETE)) =>
        {
            let topics = req
                .topics
                .iter()
                .map(|t| {
                    let code = topic_code(c.topic(&t.name, op::DELETE));
                    kafka_protocol::messages::delete_records_response::DeleteRecordsTopicResult::default()
                        .with_name(t.name.clone())
                        .with_partitions(
                            t.partitions
                                .iter()
                                .map(|p| {
                                    kafka_protocol::messages::delete_records_response::DeleteRecordsPartitionResult::default()
                                        .with_partition_index(p.partition_index)
                                        .with_low_watermark(-1)
                                        .with_error_code(code)
                                })
                                .collect(),
                        )
                })
                .collect();
            body(ResponseKind::DeleteRecords(DeleteRecordsResponse::default().with_topics(topics)))
        }
        RequestKind::OffsetForLeaderEpoch(req) => {
            let follower = req.replica_id.0 >= 0;
            let allowed = |t: &str| {
                if follower { c.cluster(op::CLUSTER_ACTION) } else { c.topic(t, op::DESCRIBE) }
            };
            if req.topics.iter().all(|t| allowed(&t.topic)) {
                return Verdict::Allow;
            }
            let topics = req
                .topics
                .iter()
                .map(|t| {
                    let code = if allowed(&t.topic) {
                        ec::UNKNOWN_SERVER_ERROR.code()
                    } else if follower {
                        cluster_code
                    } else {
                        ec::TOPIC_AUTHORIZATION_FAILED.code()
                    };
                    kafka_protocol::messages::offset_for_leader_epoch_response::OffsetForLeaderTopicResult::default()
                        .with_topic(t.topic.clone())
                        .with_partitions(
                            t.partitions
                                .iter()
                                .map(|p| {
                                    kafka_protocol::messages::offset_for_leader_epoch_response::EpochEndOffset::default()
                                        .with_partition(p.partition)
                                        .with_error_code(code)
                                        .with_leader_epoch(-1)
                                        .with_end_offset(-1)
                                })
                                .collect(),
                        )
                })
                .collect();
            body(ResponseKind::OffsetForLeaderEpoch(
                OffsetForLeaderEpochResponse::default().with_topics(topics),
            ))
        }
        RequestKind::DescribeConfigs(req) => {
            let allowed = |r: &kafka_protocol::messages::describe_configs_request::DescribeConfigsResource| match r.resource_type {
                2 => c.topic(&r.resource_name, op::DESCRIBE_CONFIGS),
                _ => c.cluster(op::DESCRIBE_CONFIGS),
            };
            if req.resources.iter().all(allowed) {
                return Verdict::Allow;
            }
            let results = req
                .resources
                .iter()
                .map(|r| {
                    let code = match (allowed(r), r.resource_type) {
                        (true, _) => ec::UNKNOWN_SERVER_ERROR.code(),
                        (false, 2) => ec::TOPIC_AUTHORIZATION_FAILED.code(),
                        (false, _) => cluster_code,
                    };
                    kafka_protocol::messages::describe_configs_response::DescribeConfigsResult::default()
                        .with_resource_type(r.resource_type)
                        .with_resource_name(r.resource_name.clone())
                        .with_error_code(code)
                        .with_error_message(Some(str_bytes("Authorization failed.")))
                })
                .collect();
            body(ResponseKind::DescribeConfigs(
                DescribeConfigsResponse::default().with_results(results),
            ))
        }
        RequestKind::IncrementalAlterConfigs(req) => {
            let resources = req.resources.iter().map(|r| (r.resource_type, &r.resource_name));
            let Some(codes) = alter_configs_refusal(&c, resources) else { return Verdict::Allow };
            use kafka_protocol::messages::incremental_alter_configs_response as r;
            let responses = codes
                .into_iter()
                .map(|(t, name, code)| {
                    r::AlterConfigsResourceResponse::default()
                        .with_resource_type(t)
                        .with_resource_name(name)
                        .with_error_code(code)
                })
                .collect();
            body(ResponseKind::IncrementalAlterConfigs(
                IncrementalAlterConfigsResponse::default().with_responses(responses),
            ))
        }
        RequestKind::AlterConfigs(req) => {
            let resources = req.resources.iter().map(|r| (r.resource_type, &r.resource_name));
            let Some(codes) = alter_configs_refusal(&c, resources) else { return Verdict::Allow };
            use kafka_protocol::messages::alter_configs_response as r;
            let responses = codes
                .into_iter()
                .map(|(t, name, code)| {
                    r::AlterConfigsResourceResponse::default()
                        .with_resource_type(t)
                        .with_resource_name(name)
                        .with_error_code(code)
                })
                .collect();
            body(ResponseKind::AlterConfigs(
                AlterConfigsResponse::default().with_responses(responses),
            ))
        }
        RequestKind::DescribeLogDirs(_) if !c.cluster(op::DESCRIBE) => {
            body(ResponseKind::DescribeLogDirs(
                DescribeLogDirsResponse::default().with_error_code(cluster_code),
            ))
        }
        RequestKind::DescribeQuorum(_) if !c.cluster(op::DESCRIBE) => {
            body(ResponseKind::DescribeQuorum(
                DescribeQuorumResponse::default().with_error_code(cluster_code),
            ))
        }
        RequestKind::ListPartitionReassignments(_) if !c.cluster(op::DESCRIBE) => {
            body(ResponseKind::ListPartitionReassignments(
                ListPartitionReassignmentsResponse::default()
                    .with_error_code(cluster_code)
                    .with_error_message(cluster_message),
            ))
        }
        RequestKind::AlterPartitionReassignments(_) if !c.cluster(op::ALTER) => {
            body(ResponseKind::AlterPartitionReassignments(
                AlterPartitionReassignmentsResponse::default()
                    .with_error_code(cluster_code)
                    .with_error_message(cluster_message),
            ))
        }
        RequestKind::ElectLeaders(_) if !c.cluster(op::ALTER) => body(ResponseKind::ElectLeaders(
            ElectLeadersResponse::default().with_error_code(cluster_code),
        )),
        RequestKind::UnregisterBroker(_) if !c.cluster(op::ALTER) => {
            body(ResponseKind::UnregisterBroker(
                UnregisterBrokerResponse::default()
                    .with_error_code(cluster_code)
                    .with_error_message(cluster_message),
            ))
        }
        RequestKind::CreateAcls(req) if !c.cluster(op::ALTER) => {
            let results = req
                .creations
                .iter()
                .map(|_| {
                    kafka_protocol::messages::create_acls_response::AclCreationResult::default()
                        .with_error_code(cluster_code)
                        .with_error_message(cluster_message.clone())
                })
                .collect();
            body(ResponseKind::CreateAcls(CreateAclsResponse::default().with_results(results)))
        }
        RequestKind::DeleteAcls(req) if !c.cluster(op::ALTER) => {
            let results = req
                .filters
                .iter()
                .map(|_| {
                    kafka_protocol::messages::delete_acls_response::DeleteAclsFilterResult::default(
                    )
                    .with_error_code(cluster_code)
                    .with_error_message(cluster_message.clone())
                })
                .collect();
            body(ResponseKind::DeleteAcls(
                DeleteAclsResponse::default().with_filter_results(results),
            ))
        }
        RequestKind::DescribeAcls(_) if !c.cluster(op::DESCRIBE) => {
            body(ResponseKind::DescribeAcls(
                DescribeAclsResponse::default()
                    .with_error_code(cluster_code)
                    .with_error_message(cluster_message),
            ))
        }
        RequestKind::DescribeUserScramCredentials(req) if !c.cluster(op::DESCRIBE) => {
            // As Kafka: the error at the top and on each user named.
            let results = req
                .users
                .iter()
                .flatten()
                .map(|u| {
                    kafka_protocol::messages::describe_user_scram_credentials_response::DescribeUserScramCredentialsResult::default()
                        .with_user(u.name.clone())
                        .with_error_code(cluster_code)
                        .with_error_message(cluster_message.clone())
                })
                .collect();
            body(ResponseKind::DescribeUserScramCredentials(
                DescribeUserScramCredentialsResponse::default()
                    .with_error_code(cluster_code)
                    .with_error_message(cluster_message)
                    .with_results(results),
            ))
        }
        RequestKind::AlterUserScramCredentials(req) if !c.cluster(op::ALTER) => {
            let users: std::collections::BTreeSet<_> = req
                .deletions
                .iter()
                .map(|d| d.name.clone())
                .chain(req.upsertions.iter().map(|u| u.name.clone()))
                .collect();
            let results = users
                .into_iter()
                .map(|u| {
                    kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult::default()
                        .with_user(u)
                        .with_error_code(cluster_code)
                        .with_error_message(cluster_message.clone())
                })
                .collect();
            body(ResponseKind::AlterUserScramCredentials(
                AlterUserScramCredentialsResponse::default().with_results(results),
            ))
        }
        RequestKind::DescribeClientQuotas(_) if !c.cluster(op::DESCRIBE_CONFIGS) => {
            body(ResponseKind::DescribeClientQuotas(
                DescribeClientQuotasResponse::default()
                    .with_error_code(cluster_code)
                    .with_error_message(cluster_message),
            ))
        }
        RequestKind::AlterClientQuotas(req) if !c.cluster(op::ALTER_CONFIGS) => {
            let entries = req
                .entries
                .iter()
                .map(|e| {
                    use kafka_protocol::messages::alter_client_quotas_response as r;
                    let entity = e
                        .entity
                        .iter()
                        .map(|d| {
                            r::EntityData::default()
                                .with_entity_type(d.entity_type.clone())
                                .with_entity_name(d.entity_name.clone())
                        })
                        .collect();
                    r::EntryData::default()
                        .with_entity(entity)
                        .with_error_code(cluster_code)
                        .with_error_message(cluster_message.clone())
                })
                .collect();
            body(ResponseKind::AlterClientQuotas(
                AlterClientQuotasResponse::default().with_entries(entries),
            ))
        }
        RequestKind::AddPartitionsToTxn(req) => txn_add_partitions(&c, version, req),
        RequestKind::AddOffsetsToTxn(req) => {
            let code = if !c.allows(resource::TRANSACTIONAL_ID, &req.transactional_id, op::WRITE) {
                ec::TRANSACTIONAL_ID_AUTHORIZATION_FAILED.code()
            } else if !c.group(&req.group_id, op::READ) {
                group_code
            } else {
                return Verdict::Allow;
            };
            body(ResponseKind::AddOffsetsToTxn(
                AddOffsetsToTxnResponse::default().with_error_code(code),
            ))
        }
        RequestKind::EndTxn(req)
            if !c.allows(resource::TRANSACTIONAL_ID, &req.transactional_id, op::WRITE) =>
        {
            body(ResponseKind::EndTxn(
                EndTxnResponse::default()
                    .with_error_code(ec::TRANSACTIONAL_ID_AUTHORIZATION_FAILED.code()),
            ))
        }
        RequestKind::TxnOffsetCommit(req) => {
            let whole = if !c.allows(resource::TRANSACTIONAL_ID, &req.transactional_id, op::WRITE) {
                Some(ec::TRANSACTIONAL_ID_AUTHORIZATION_FAILED.code())
            } else if !c.group(&req.group_id, op::READ) {
                Some(group_code)
            } else {
                None
            };
            let denied = |t: &TopicName| !c.topic(t, op::READ);
            if whole.is_none() && !req.topics.iter().any(|t| denied(&t.name)) {
                return Verdict::Allow;
            }
            // All or nothing: nothing of the request is written.
            let topics = req
                .topics
                .iter()
                .map(|t| {
                    let code = whole.unwrap_or(if denied(&t.name) {
                        ec::TOPIC_AUTHORIZATION_FAILED.code()
                    } else {
                        ec::OPERATION_NOT_ATTEMPTED.code()
                    });
                    let partitions = t
                        .partitions
                        .iter()
                        .map(|p| {
                            kafka_protocol::messages::txn_offset_commit_response::TxnOffsetCommitResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(code)
                        })
                        .collect();
                    kafka_protocol::messages::txn_offset_commit_response::TxnOffsetCommitResponseTopic::default()
                        .with_name(t.name.clone())
                        .with_partitions(partitions)
                })
                .collect();
            body(ResponseKind::TxnOffsetCommit(
                TxnOffsetCommitResponse::default().with_topics(topics),
            ))
        }
        RequestKind::WriteTxnMarkers(req) if !c.cluster(op::CLUSTER_ACTION) => {
            let markers = req
                .markers
                .iter()
                .map(|m| {
                    let topics = m
                        .topics
                        .iter()
                        .map(|t| {
                            let partitions = t
                                .partition_indexes
                                .iter()
                                .map(|p| {
                                    kafka_protocol::messages::write_txn_markers_response::WritableTxnMarkerPartitionResult::default()
                                        .with_partition_index(*p)
                                        .with_error_code(cluster_code)
                                })
                                .collect();
                            kafka_protocol::messages::write_txn_markers_response::WritableTxnMarkerTopicResult::default()
                                .with_name(t.name.clone())
                                .with_partitions(partitions)
                        })
                        .collect();
                    kafka_protocol::messages::write_txn_markers_response::WritableTxnMarkerResult::default()
                        .with_producer_id(m.producer_id)
                        .with_topics(topics)
                })
                .collect();
            body(ResponseKind::WriteTxnMarkers(
                WriteTxnMarkersResponse::default().with_markers(markers),
            ))
        }
        _ => Verdict::Allow,
    }
}

/// AddPartitionsToTxn: v4 comes from brokers (CLUSTER_ACTION); v0–3 need WRITE on the
/// transactional id and on every topic, all or nothing.
fn txn_add_partitions(c: &Check<'_>, version: i16, req: &AddPartitionsToTxnRequest) -> Verdict {
    if version >= 4 {
        if c.cluster(op::CLUSTER_ACTION) {
            return Verdict::Allow;
        }
        return body(ResponseKind::AddPartitionsToTxn(
            AddPartitionsToTxnResponse::default()
                .with_error_code(ec::CLUSTER_AUTHORIZATION_FAILED.code()),
        ));
    }
    let id_denied =
        !c.allows(resource::TRANSACTIONAL_ID, &req.v3_and_below_transactional_id, op::WRITE);
    let denied = |t: &TopicName| !c.topic(t, op::WRITE);
    if !id_denied && !req.v3_and_below_topics.iter().any(|t| denied(&t.name)) {
        return Verdict::Allow;
    }
    let results = req
        .v3_and_below_topics
        .iter()
        .map(|t| {
            let code = if id_denied {
                ec::TRANSACTIONAL_ID_AUTHORIZATION_FAILED.code()
            } else if denied(&t.name) {
                ec::TOPIC_AUTHORIZATION_FAILED.code()
            } else {
                ec::OPERATION_NOT_ATTEMPTED.code()
            };
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    kafka_protocol::messages::add_partitions_to_txn_response::AddPartitionsToTxnPartitionResult::default()
                        .with_partition_index(*p)
                        .with_partition_error_code(code)
                })
                .collect();
            kafka_protocol::messages::add_partitions_to_txn_response::AddPartitionsToTxnTopicResult::default()
                .with_name(t.name.clone())
                .with_results_by_partition(partitions)
        })
        .collect();
    body(ResponseKind::AddPartitionsToTxn(
        AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results),
    ))
}

fn topic_code(allowed: bool) -> i16 {
    if allowed { ec::UNKNOWN_SERVER_ERROR.code() } else { ec::TOPIC_AUTHORIZATION_FAILED.code() }
}

/// AlterConfigs and IncrementalAlterConfigs need ALTER_CONFIGS on each topic (type 2) or the
/// cluster (a broker): `None` when every resource is allowed, else each resource's code (all
/// or nothing: an allowed one refused along with the others gets UNKNOWN_SERVER_ERROR).
fn alter_configs_refusal<'a>(
    c: &Check<'_>,
    resources: impl Iterator<Item = (i8, &'a kafka_protocol::protocol::StrBytes)> + Clone,
) -> Option<Vec<(i8, kafka_protocol::protocol::StrBytes, i16)>> {
    let allowed = |t: i8, name: &str| match t {
        2 => c.topic(name, op::ALTER_CONFIGS),
        _ => c.cluster(op::ALTER_CONFIGS),
    };
    if resources.clone().all(|(t, name)| allowed(t, name)) {
        return None;
    }
    let codes = resources
        .map(|(t, name)| {
            let code = match (allowed(t, name), t) {
                (true, _) => ec::UNKNOWN_SERVER_ERROR.code(),
                (false, 2) => ec::TOPIC_AUTHORIZATION_FAILED.code(),
                (false, _) => ec::CLUSTER_AUTHORIZATION_FAILED.code(),
            };
            (t, name.clone(), code)
        })
        .collect();
    Some(codes)
}

fn partly<T>(denied: Vec<T>, wrap: fn(Vec<T>) -> Denied) -> Verdict {
    if denied.is_empty() { Verdict::Allow } else { Verdict::Partly(wrap(denied)) }
}

/// Adds the denied items to the handler's answer.
pub fn merge(reply: &mut Reply, denied: Denied) {
    let topic_failed: ErrorCode = ec::TOPIC_AUTHORIZATION_FAILED;
    let code = topic_failed.code();
    match (reply, denied) {
        (Reply::Body(b), Denied::Produce(topics)) => {
            if let ResponseKind::Produce(r) = &mut **b {
                for (name, parts) in topics {
                    let partitions = parts
                        .into_iter()
                        .map(|i| {
                            PartitionProduceResponse::default()
                                .with_index(i)
                                .with_error_code(code)
                                .with_base_offset(-1)
                                .with_log_append_time_ms(-1)
                                .with_log_start_offset(-1)
                        })
                        .collect();
                    r.responses.push(
                        TopicProduceResponse::default()
                            .with_name(super::topic_name(&name))
                            .with_partition_responses(partitions),
                    );
                }
            }
        }
        (Reply::Fetch(f), Denied::Fetch(topics)) => {
            for (name, topic_id, parts) in topics {
                let partitions = parts
                    .into_iter()
                    .map(|i| PartitionOut {
                        partition_index: i,
                        error_code: code,
                        high_watermark: -1,
                        last_stable_offset: -1,
                        log_start_offset: -1,
                        aborted_transactions: None,
                        preferred_read_replica: -1,
                        records_len: Some(0),
                        current_leader: None,
                        diverging_epoch: None,
                    })
                    .collect();
                f.response.topics.push(TopicOut { name, topic_id, partitions });
            }
        }
        (Reply::Body(b), Denied::ListOffsets(topics)) => {
            if let ResponseKind::ListOffsets(r) = &mut **b {
                for (name, parts) in topics {
                    let partitions = parts
                        .into_iter()
                        .map(|i| {
                            ListOffsetsPartitionResponse::default()
                                .with_partition_index(i)
                                .with_error_code(code)
                                .with_timestamp(-1)
                                .with_offset(-1)
                        })
                        .collect();
                    r.topics.push(
                        ListOffsetsTopicResponse::default()
                            .with_name(super::topic_name(&name))
                            .with_partitions(partitions),
                    );
                }
            }
        }
        (Reply::Body(b), Denied::CreateTopics(names)) => {
            if let ResponseKind::CreateTopics(r) = &mut **b {
                for name in names {
                    r.topics.push(
                        CreatableTopicResult::default()
                            .with_name(super::topic_name(&name))
                            .with_error_code(code)
                            .with_error_message(Some(str_bytes("Authorization failed.")))
                            .with_num_partitions(-1)
                            .with_replication_factor(-1),
                    );
                }
            }
        }
        (Reply::Body(b), Denied::DeleteTopics(topics)) => {
            if let ResponseKind::DeleteTopics(r) = &mut **b {
                for (name, topic_id) in topics {
                    r.responses.push(
                        DeletableTopicResult::default()
                            .with_name(name.map(|n| super::topic_name(&n)))
                            .with_topic_id(topic_id)
                            .with_error_code(code)
                            .with_error_message(Some(str_bytes("Authorization failed."))),
                    );
                }
            }
        }
        (Reply::Body(b), Denied::OffsetDelete(topics)) => {
            if let ResponseKind::OffsetDelete(r) = &mut **b {
                use kafka_protocol::messages::offset_delete_response as od;
                for (name, parts) in topics {
                    let partitions = parts
                        .into_iter()
                        .map(|i| {
                            od::OffsetDeleteResponsePartition::default()
                                .with_partition_index(i)
                                .with_error_code(code)
                        })
                        .collect();
                    r.topics.push(
                        od::OffsetDeleteResponseTopic::default()
                            .with_name(super::topic_name(&name))
                            .with_partitions(partitions),
                    );
                }
            }
        }
        (Reply::Body(b), Denied::OffsetCommit(topics)) => {
            if let ResponseKind::OffsetCommit(r) = &mut **b {
                for (name, parts) in topics {
                    let partitions = parts
                        .into_iter()
                        .map(|i| {
                            OffsetCommitResponsePartition::default()
                                .with_partition_index(i)
                                .with_error_code(code)
                        })
                        .collect();
                    r.topics.push(
                        OffsetCommitResponseTopic::default()
                            .with_name(super::topic_name(&name))
                            .with_partitions(partitions),
                    );
                }
            }
        }
        _ => {}
    }
}

/// Leaves out of a listing what the principal may not describe: Metadata's topics (named
/// ones answered TOPIC_AUTHORIZATION_FAILED), ListGroups' and DescribeGroups' groups.
/// `listing`: the request asked for every topic (Metadata without names).
pub fn filter(ctx: &Shard, session: &Session, listing: bool, reply: &mut Reply) {
    let Reply::Body(b) = reply else { return };
    let c = Check {
        ctx,
        who: Subject { principal: session.principal.as_str(), host: &session.host },
        acls: ctx.metadata.snapshot(),
    };
    match &mut **b {
        ResponseKind::Metadata(r) => {
            for t in &mut r.topics {
                let name = t.name.as_ref().map(|n| n.to_string()).unwrap_or_default();
                if !c.topic(&name, op::DESCRIBE) {
                    t.error_code = ec::TOPIC_AUTHORIZATION_FAILED.code();
                    t.partitions.clear();
                    t.topic_id = uuid::Uuid::nil();
                }
            }
            // Kafka leaves unauthorized topics out of an all-topics listing, and answers the
            // named ones with the error.
            if listing {
                r.topics.retain(|t| t.error_code != ec::TOPIC_AUTHORIZATION_FAILED.code());
            }
        }
        ResponseKind::DescribeTransactions(r) => {
            for t in &mut r.transaction_states {
                if !c.allows(resource::TRANSACTIONAL_ID, &t.transactional_id, op::DESCRIBE) {
                    t.error_code = ec::TRANSACTIONAL_ID_AUTHORIZATION_FAILED.code();
                    t.topics.clear();
                    t.transaction_state = str_bytes("");
                    t.producer_id = ProducerId(-1);
                    t.producer_epoch = -1;
                }
            }
        }
        ResponseKind::ListTransactions(r) => {
            r.transaction_states.retain(|t| {
                c.allows(resource::TRANSACTIONAL_ID, &t.transactional_id, op::DESCRIBE)
            });
        }
        ResponseKind::ListGroups(r) if !c.cluster(op::DESCRIBE) => {
            r.groups.retain(|g| c.group(&g.group_id, op::DESCRIBE));
        }
        ResponseKind::DescribeGroups(r) => {
            for g in &mut r.groups {
                if !c.group(&g.group_id, op::DESCRIBE) {
                    g.error_code = ec::GROUP_AUTHORIZATION_FAILED.code();
                    g.members.clear();
                    g.group_state = str_bytes("");
                    g.protocol_type = str_bytes("");
                    g.protocol_data = str_bytes("");
                }
            }
        }
        _ => {}
    }
}

/// Which `authorized_operations` a request asked for (KIP-430).
#[derive(Debug, Clone, Copy, Default)]
pub struct Wants {
    topics: bool,
    cluster: bool,
    groups: bool,
}

impl Wants {
    pub fn of(request: &RequestKind) -> Self {
        match request {
            RequestKind::Metadata(m) => Wants {
                topics: m.include_topic_authorized_operations,
                cluster: m.include_cluster_authorized_operations,
                groups: false,
            },
            RequestKind::DescribeCluster(d) => {
                Wants { cluster: d.include_cluster_authorized_operations, ..Wants::default() }
            }
            RequestKind::DescribeGroups(d) => {
                Wants { groups: d.include_authorized_operations, ..Wants::default() }
            }
            _ => Wants::default(),
        }
    }

    fn any(self) -> bool {
        self.topics || self.cluster || self.groups
    }
}

/// The operations Kafka reports per resource type.
const TOPIC_OPS: [i8; 8] = [
    op::READ,
    op::WRITE,
    op::CREATE,
    op::DELETE,
    op::ALTER,
    op::DESCRIBE,
    op::DESCRIBE_CONFIGS,
    op::ALTER_CONFIGS,
];
const CLUSTER_OPS: [i8; 7] = [
    op::CREATE,
    op::CLUSTER_ACTION,
    op::DESCRIBE_CONFIGS,
    op::ALTER_CONFIGS,
    op::IDEMPOTENT_WRITE,
    op::ALTER,
    op::DESCRIBE,
];
const GROUP_OPS: [i8; 3] = [op::READ, op::DESCRIBE, op::DELETE];

/// Fills in the `authorized_operations` bit fields asked for: bit `n` set when the principal
/// may do operation `n` (everything without an authorizer, or for a super user).
pub fn authorized_operations(ctx: &Shard, session: &Session, wants: Wants, reply: &mut Reply) {
    let Reply::Body(b) = reply else { return };
    if !wants.any() {
        return;
    }
    let c = Check {
        ctx,
        who: Subject { principal: session.principal.as_str(), host: &session.host },
        acls: ctx.metadata.snapshot(),
    };
    let everything = !ctx.security.config.authorizer || session.superuser;
    let bits = |resource_type: i8, name: &str, ops: &[i8]| -> i32 {
        ops.iter()
            .filter(|&&o| everything || c.allows(resource_type, name, o))
            .fold(0i32, |acc, &o| acc | (1 << o))
    };
    // As Kafka: a principal that may not DESCRIBE the cluster is told of no cluster operation.
    let cluster_bits = || {
        if everything || c.cluster(op::DESCRIBE) {
            bits(resource::CLUSTER, CLUSTER, &CLUSTER_OPS)
        } else {
            0
        }
    };
    match &mut **b {
        ResponseKind::Metadata(r) => {
            if wants.cluster {
                r.cluster_authorized_operations = cluster_bits();
            }
            if wants.topics {
                for t in r.topics.iter_mut().filter(|t| t.error_code == 0) {
                    let name = t.name.as_ref().map(|n| n.to_string()).unwrap_or_default();
                    t.topic_authorized_operations = bits(resource::TOPIC, &name, &TOPIC_OPS);
                }
            }
        }
        ResponseKind::DescribeCluster(r) if wants.cluster => {
            r.cluster_authorized_operations = cluster_bits();
        }
        ResponseKind::DescribeGroups(r) if wants.groups => {
            for g in r.groups.iter_mut().filter(|g| g.error_code == 0) {
                g.authorized_operations = bits(resource::GROUP, &g.group_id, &GROUP_OPS);
            }
        }
        _ => {}
    }
}
