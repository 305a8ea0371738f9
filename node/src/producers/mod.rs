//! The producers room: producer ids for InitProducerId, unique across the cluster and across
//! restarts and crashes.
//!
//! Ids are handed out from blocks of [`BLOCK`] that the controller quorum allocates
//! (`AllocateProducerIdBlock`, committed to the metadata log before it is answered), as
//! KRaft's brokers get theirs (KIP-730). After a restart the node asks for a new block, so an
//! id is never given twice; at most one block's worth of ids goes unused per restart.
//!
//! **Invariants.** Every id handed out lies in a block the quorum gave this broker. No thread
//! waits on a lock held across an await: the counter's mutex is held for a few instructions,
//! and the request for a new block (one at a time, serialized by an async lock) leaves the
//! shard serving.
//!
//! **What it does not know.** Kafka requests (the `api` room answers InitProducerId), or
//! sequence checks (those are the partition log's).

use std::sync::Mutex;

use futures_util::future::BoxFuture;
use odradek_controller::{Command, CommandResult};

use crate::error::KafkaError;

/// Ids one block holds.
pub const BLOCK: i32 = 1000;

/// Where blocks come from: the controller quorum (or a test's counter).
pub trait BlockSource: std::fmt::Debug + Send + Sync {
    /// A new block of `size` ids for `broker_id`: `(first, size)`.
    fn allocate(&self, broker_id: i32, size: i32) -> BoxFuture<'_, Result<(i64, i32), KafkaError>>;
}

impl<T: crate::cluster::MetadataStore + ?Sized> BlockSource for T {
    fn allocate(&self, broker_id: i32, size: i32) -> BoxFuture<'_, Result<(i64, i32), KafkaError>> {
        Box::pin(async move {
            match self.propose(Command::AllocateProducerIdBlock { broker_id, size }).await? {
                CommandResult::ProducerIdBlock { first, size } => Ok((first, size)),
                other => Err(KafkaError::new(
                    odradek_net::error_code::UNKNOWN_SERVER_ERROR,
                    format!("the controller answered a producer-id block with {other:?}"),
                )),
            }
        })
    }
}

#[derive(Debug, Default)]
struct Next {
    next: i64,
    /// Ids below this (and from `next`) belong to this broker's current block.
    end: i64,
}

/// The node's producer-id allocator, shared by every shard.
#[derive(Debug)]
pub struct ProducerIds {
    broker_id: i32,
    source: std::sync::Arc<dyn BlockSource>,
    next: Mutex<Next>,
    /// One block request at a time.
    reserving: async_lock::Mutex<()>,
}

impl ProducerIds {
    pub fn new(broker_id: i32, source: std::sync::Arc<dyn BlockSource>) -> Self {
        Self {
            broker_id,
            source,
            next: Mutex::new(Next::default()),
            reserving: async_lock::Mutex::new(()),
        }
    }

    /// A producer id never handed out before, or the quorum's error (retriable ones when it
    /// is unavailable).
    pub async fn allocate(&self) -> Result<i64, KafkaError> {
        // Bounded: each round either hands out an id or gets a new, non-empty block.
        for _ in 0..64 {
            if let Some(id) = self.take() {
                return Ok(id);
            }
            let _one_at_a_time = self.reserving.lock().await;
            if let Some(id) = self.take() {
                return Ok(id); // another caller got a block meanwhile
            }
            let (first, size) = self.source.allocate(self.broker_id, BLOCK).await?;
            let mut n = self.lock();
            n.next = first;
            n.end = first.saturating_add(i64::from(size.max(0)));
        }
        Err(KafkaError::new(
            odradek_net::error_code::UNKNOWN_SERVER_ERROR,
            "producer-id blocks keep running out",
        ))
    }

    /// The next id if the current block has one left.
    fn take(&self) -> Option<i64> {
        let mut n = self.lock();
        (n.next < n.end).then(|| {
            n.next += 1;
            n.next - 1
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Next> {
        // The guarded section cannot panic, so the lock is never poisoned; if it were, its
        // numbers are still consistent (each update is one store).
        self.next.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicI64, Ordering};

    #[derive(Debug, Default)]
    struct Counter(AtomicI64);

    impl BlockSource for Counter {
        fn allocate(&self, _: i32, size: i32) -> BoxFuture<'_, Result<(i64, i32), KafkaError>> {
            let first = self.0.fetch_add(i64::from(size), Ordering::SeqCst);
            Box::pin(async move { Ok((first, size)) })
        }
    }

    #[test]
    fn concurrent_callers_get_distinct_ids_from_blocks() {
        let source = Arc::new(Counter::default());
        let ids = Arc::new(ProducerIds::new(1, source.clone()));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let ids = ids.clone();
                std::thread::spawn(move || {
                    let runtime = compio::runtime::Runtime::new().expect("runtime");
                    runtime.block_on(async {
                        let mut got = Vec::new();
                        for _ in 0..600 {
                            got.push(ids.allocate().await.expect("id"));
                        }
                        got
                    })
                })
            })
            .collect();
        let mut all: Vec<i64> = threads.into_iter().flat_map(|t| t.join().expect("join")).collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 2400, "no id was handed out twice");
        assert!(source.0.load(Ordering::SeqCst) > *all.last().expect("some"));
        // A restart (a new allocator) starts with a new block.
        let again = ProducerIds::new(1, source.clone());
        let runtime = compio::runtime::Runtime::new().expect("runtime");
        let next = runtime.block_on(again.allocate()).expect("id");
        assert!(next > *all.last().expect("some"));
        assert_eq!(next % i64::from(BLOCK), 0, "the start of a fresh block");
    }
}
