//! InitProducerId: producer ids for idempotent producers; transactional producers' go to
//! their transaction coordinator (`api::txn`).

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use odradek_net::error_code as ec;

use std::rc::Rc;

use crate::shard::Shard;

/// InitProducerId for idempotent producers (no `transactional_id`): a producer id never
/// handed out before, at epoch 0. As Kafka does for such producers, a `producer_id` and
/// `producer_epoch` in the request (v3+) are ignored: a producer that hit a sequence error
/// simply starts over with a new id. An empty transactional id is refused with
/// `INVALID_REQUEST`, as Kafka refuses it; a transactional id goes to its transaction
/// coordinator (`api::txn`).
pub async fn init_producer_id(
    ctx: &Rc<Shard>,
    version: i16,
    req: &InitProducerIdRequest,
) -> InitProducerIdResponse {
    let resp =
        InitProducerIdResponse::default().with_producer_id(ProducerId(-1)).with_producer_epoch(-1);
    match req.transactional_id.as_ref().map(|t| t.0.as_str()) {
        None => {}
        Some("") => return resp.with_error_code(ec::INVALID_REQUEST.into()),
        Some(id) => return super::txn::init_producer_id(ctx, version, id, req).await,
    }
    match ctx.producer_ids.allocate().await {
        Ok(id) => resp.with_producer_id(ProducerId(id)).with_producer_epoch(0),
        Err(e) => {
            tracing::warn!(code = %e.code, error = %e.message, "cannot allocate a producer id");
            // The quorum unavailable: the producer retries, as it does for a coordinator.
            let retriable = [ec::NOT_CONTROLLER, ec::REQUEST_TIMED_OUT, ec::BROKER_NOT_AVAILABLE];
            let code =
                if retriable.contains(&e.code) { ec::COORDINATOR_NOT_AVAILABLE } else { e.code };
            resp.with_error_code(code.into())
        }
    }
}
