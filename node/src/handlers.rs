//! Per-API request handlers. Each returns the response body, or `None` when Kafka sends no
//! response (a Produce with acks=0).
//!
//! This first slice answers the APIs a client needs to connect and discover the cluster:
//! ApiVersions and Metadata. Topics, Produce and Fetch arrive with the metadata store.

use std::rc::Rc;

use kafka_protocol::messages::metadata_response::{MetadataResponseBroker, MetadataResponseTopic};
use kafka_protocol::messages::{
    ApiKey, BrokerId, MetadataRequest, MetadataResponse, RequestKind, ResponseKind,
};
use kafka_protocol::protocol::StrBytes;
use odradek_net::error_code;
use odradek_net::request::{DecodeError, Request};
use odradek_net::versions;

use crate::shard::ShardCtx;

/// The cluster id this node reports (single node).
pub const CLUSTER_ID: &str = "odradek";

/// The APIs this node answers, and so advertises in ApiVersions (versions from
/// `odradek_net::versions::SUPPORTED`). Any other API closes the connection, as Kafka does.
pub const SERVED: &[ApiKey] = &[ApiKey::ApiVersions, ApiKey::Metadata];

/// Answers one decoded request. `Err` closes the connection with the reason logged: the
/// decoder admits only the APIs in `versions::SUPPORTED`, so it means the table and this
/// dispatcher disagree.
pub async fn handle(ctx: &Rc<ShardCtx>, request: Request) -> Result<Option<ResponseKind>, String> {
    let version = request.header.request_api_version;
    match request.body {
        RequestKind::ApiVersions(_) => Ok(Some(ResponseKind::ApiVersions(
            versions::api_versions_response_for(version, SERVED),
        ))),
        RequestKind::Metadata(req) => Ok(Some(ResponseKind::Metadata(metadata(ctx, &req)))),
        _ => Err(format!("{:?} v{version} is not served by this node", request.api_key)),
    }
}

/// What to send back for a request that could not be decoded, if anything; `None` closes the
/// connection (Kafka's answer to an unknown API or a malformed frame).
pub fn answer_decode_error(e: &DecodeError) -> Option<(i32, ApiKey, i16, ResponseKind)> {
    versions::answer_for_decode_error_for(e, SERVED)
}

fn metadata(ctx: &ShardCtx, req: &MetadataRequest) -> MetadataResponse {
    let (host, port) = &ctx.config.advertise;
    let broker = MetadataResponseBroker::default()
        .with_node_id(BrokerId(ctx.config.node_id))
        .with_host(StrBytes::from_string(host.clone()))
        .with_port(i32::from(*port));
    // No topics exist yet: every topic asked for by name is unknown.
    let topics = req
        .topics
        .iter()
        .flatten()
        .filter_map(|t| t.name.clone())
        .map(|name| {
            MetadataResponseTopic::default()
                .with_name(Some(name))
                .with_error_code(error_code::UNKNOWN_TOPIC_OR_PARTITION)
        })
        .collect();
    MetadataResponse::default()
        .with_brokers(vec![broker])
        .with_cluster_id(Some(StrBytes::from_static_str(CLUSTER_ID)))
        .with_controller_id(BrokerId(ctx.config.node_id))
        .with_topics(topics)
}
