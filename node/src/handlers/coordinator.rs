//! FindCoordinator and InitProducerId.
//!
//! FindCoordinator: consumer groups and transactions are not implemented yet, so no key has a
//! coordinator: every key is answered `COORDINATOR_NOT_AVAILABLE` (retriable; clients keep
//! asking, and consumers that assign partitions themselves work meanwhile).
//!
//! The API is served anyway because librdkafka turns lz4 on only for brokers that advertise
//! it (`Feature LZ4: FindCoordinator (0..0)`): without it, kcat and confluent-kafka silently
//! send lz4 batches uncompressed.

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{
    BrokerId, FindCoordinatorRequest, FindCoordinatorResponse, InitProducerIdRequest,
    InitProducerIdResponse, ProducerId,
};
use odradek_net::error_code as ec;

use super::str_bytes;
use crate::shard::ShardCtx;

const NO_COORDINATOR: &str = "consumer groups and transactions are not implemented yet";

pub fn find_coordinator(version: i16, req: &FindCoordinatorRequest) -> FindCoordinatorResponse {
    let none = BrokerId(-1);
    if version >= 4 {
        let coordinators = req
            .coordinator_keys
            .iter()
            .map(|key| {
                Coordinator::default()
                    .with_key(key.clone())
                    .with_node_id(none)
                    .with_port(-1)
                    .with_error_code(ec::COORDINATOR_NOT_AVAILABLE)
                    .with_error_message(Some(str_bytes(NO_COORDINATOR)))
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let resp = FindCoordinatorResponse::default()
        .with_error_code(ec::COORDINATOR_NOT_AVAILABLE)
        .with_node_id(none)
        .with_port(-1);
    // The error message exists from v1.
    if version >= 1 { resp.with_error_message(Some(str_bytes(NO_COORDINATOR))) } else { resp }
}

/// InitProducerId for idempotent producers (no `transactional_id`): a producer id never
/// handed out before, at epoch 0. As Kafka does for such producers, a `producer_id` and
/// `producer_epoch` in the request (v3+) are ignored: a producer that hit a sequence error
/// simply starts over with a new id. Transactional producers are refused until transactions
/// exist.
pub fn init_producer_id(ctx: &ShardCtx, req: &InitProducerIdRequest) -> InitProducerIdResponse {
    let resp =
        InitProducerIdResponse::default().with_producer_id(ProducerId(-1)).with_producer_epoch(-1);
    if req.transactional_id.is_some() {
        return resp.with_error_code(ec::COORDINATOR_NOT_AVAILABLE);
    }
    match ctx.producer_ids.allocate() {
        Ok(id) => resp.with_producer_id(ProducerId(id)).with_producer_epoch(0),
        Err(e) => {
            tracing::warn!(error = %e, "cannot allocate a producer id");
            resp.with_error_code(ec::KAFKA_STORAGE_ERROR)
        }
    }
}
