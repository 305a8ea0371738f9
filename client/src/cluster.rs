//! A blocking client of one topic on a cluster of brokers: it knows each partition's leader
//! ([`Routes`]), keeps one [`Conn`] per broker it talks to, and sends each partition's request to
//! its leader, following leaders that move.
//!
//! On a stale-route error (NOT_LEADER_OR_FOLLOWER, LEADER_NOT_AVAILABLE, a topic not known
//! yet, a fenced or unknown leader epoch) or a lost connection, a request is retried under the
//! cluster's [`Retry`]: the answer's KIP-951 hints (`current_leader`, `node_endpoints`) are
//! taken when they name a reachable leader, otherwise Metadata is asked again, of any known
//! broker that answers and then of the bootstrap brokers. A request still failing at the bound
//! is a [`ClientError::Exhausted`] naming the partition and the last error.
//!
//! On one broker every partition routes to it: one connection, no Metadata after the first.

use std::cell::Cell;
use std::collections::HashMap;
use std::time::Instant;

use bytes::Bytes;
use kafka_protocol::messages::{
    CreateTopicsRequest, FetchResponse, MetadataRequest, ProduceResponse,
};
use kafka_protocol::protocol::Request;

use crate::blocking::{Conn, TOPIC_READY_TIMEOUT};
use crate::error::{ClientError, Result};
use crate::requests;
use crate::routing::{LEADER_NOT_AVAILABLE, Retry, Routes, with_retries};

/// How often [`Cluster::ensure_topic`] asks again while a partition has no leader.
const TOPIC_READY_POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// One topic's leaders on a cluster, and a connection per broker (opened when first needed,
/// reused after, dropped when it fails).
#[derive(Debug)]
pub struct Cluster {
    bootstrap: Vec<String>,
    client_id: String,
    topic: String,
    retry: Retry,
    routes: Routes,
    /// Bumped whenever a partition's leader or its address changes.
    generation: u64,
    conns: HashMap<String, Conn>,
    /// Replicas of each partition when [`Cluster::ensure_topic`] creates the topic.
    replication_factor: i16,
}

/// The addresses of a comma-separated bootstrap list, blanks dropped.
pub fn bootstrap_list(brokers: &str) -> Vec<String> {
    brokers.split(',').map(str::trim).filter(|b| !b.is_empty()).map(str::to_owned).collect()
}

impl Cluster {
    /// A client of `topic` that bootstraps from `brokers` (comma-separated `host:port`s), as
    /// `client_id`, retrying under `retry`. Connects to nothing yet.
    pub fn new(brokers: &str, client_id: &str, topic: &str, retry: Retry) -> Cluster {
        Cluster {
            bootstrap: bootstrap_list(brokers),
            client_id: client_id.to_owned(),
            topic: topic.to_owned(),
            retry,
            routes: Routes::default(),
            generation: 0,
            conns: HashMap::new(),
            replication_factor: 1,
        }
    }

    /// Replicas of each partition if [`Cluster::ensure_topic`] creates the topic (default 1).
    pub fn set_replication_factor(&mut self, replication_factor: i16) {
        self.replication_factor = replication_factor;
    }

    /// The topic this client routes.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The retry bound of its requests.
    pub fn retry(&self) -> &Retry {
        &self.retry
    }

    /// What it knows of the leaders.
    pub fn routes(&self) -> &Routes {
        &self.routes
    }

    /// Changes each time a leader or a leader's address changes (starts at 0).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Takes `newer` routes (learnt elsewhere, e.g. by another thread) as [`Routes::merge`]
    /// does; returns true if a leader changed.
    pub fn adopt(&mut self, newer: Routes) -> bool {
        let changed = self.routes.merge(newer);
        self.generation += u64::from(changed);
        changed
    }

    /// Applies a Produce answer's KIP-951 hints; returns true if a partition's leader moved.
    pub fn apply_produce_hints(&mut self, resp: &ProduceResponse) -> bool {
        let moved = !self.routes.apply_produce_hints(resp, &self.topic).is_empty();
        self.generation += u64::from(moved);
        moved
    }

    /// Applies a Fetch answer's KIP-951 hints; returns the partitions whose leader they name.
    pub fn apply_fetch_hints(&mut self, resp: &FetchResponse) -> Vec<i32> {
        let moved = self.routes.apply_fetch_hints(resp, &self.topic);
        self.generation += u64::from(!moved.is_empty());
        moved
    }

    /// The connection to `addr`, opened (with ApiVersions) if there is none.
    ///
    /// # Errors
    ///
    /// As [`Conn::connect_as`].
    pub fn conn(&mut self, addr: &str) -> Result<&mut Conn> {
        if !self.conns.contains_key(addr) {
            let c = Conn::connect_as(addr, &self.client_id)?;
            self.conns.insert(addr.to_owned(), c);
        }
        self.conns
            .get_mut(addr)
            .ok_or_else(|| ClientError::Unexpected { what: format!("no connection to {addr}") })
    }

    /// Drops the connection to `addr` (after an error on it); the next use reconnects.
    pub fn forget(&mut self, addr: &str) {
        self.conns.remove(addr);
    }

    /// Where to ask Metadata: every known broker, then the bootstrap brokers not among them.
    fn metadata_candidates(&self) -> Vec<String> {
        let mut out = self.routes.broker_addrs();
        for b in &self.bootstrap {
            if !out.contains(b) {
                out.push(b.clone());
            }
        }
        out
    }

    /// Asks Metadata of the topic of the first broker that answers (known brokers first, then
    /// the bootstrap list) and takes it; returns true if a leader changed.
    ///
    /// # Errors
    ///
    /// The last broker's error if none answered; [`ClientError::Broker`] with
    /// UNKNOWN_TOPIC_OR_PARTITION if the topic does not exist (retriable: right after its
    /// creation not every broker knows it); another topic error.
    pub fn refresh(&mut self) -> Result<bool> {
        let mut last = None;
        let topic = self.topic.clone();
        for addr in self.metadata_candidates() {
            let answer = self.conn(&addr).and_then(|c| {
                let v = c.versions().pick::<MetadataRequest>()?;
                c.call_at(v, &requests::metadata(&topic, v))
            });
            let resp = match answer {
                Ok(r) => r,
                Err(e) => {
                    tracing::debug!(broker = %addr, error = %e, "metadata refresh failed");
                    self.forget(&addr);
                    last = Some(e);
                    continue;
                }
            };
            return match Routes::from_metadata(&resp, &self.topic)? {
                Some(r) => Ok(self.adopt(r)),
                None => Err(ClientError::broker(
                    format!("metadata of {} from {addr}", self.topic),
                    requests::UNKNOWN_TOPIC_OR_PARTITION,
                )),
            };
        }
        Err(last.unwrap_or_else(|| ClientError::Unexpected { what: "no broker given".into() }))
    }

    /// [`Cluster::refresh`] where its failure is only logged: the retry that follows fails
    /// (and counts) by itself if the route is still unknown.
    pub fn refresh_quietly(&mut self) {
        if let Err(e) = self.refresh() {
            tracing::debug!(topic = %self.topic, error = %e, "metadata refresh failed");
        }
    }

    /// The address of `partition`'s leader.
    ///
    /// # Errors
    ///
    /// [`ClientError::Broker`] with LEADER_NOT_AVAILABLE (retriable) if none is known.
    pub fn leader_addr(&self, partition: i32) -> Result<String> {
        self.routes.addr_of(partition).map(str::to_owned).ok_or_else(|| {
            let what = format!("no known leader of {}/{partition}", self.topic);
            ClientError::broker(what, LEADER_NOT_AVAILABLE)
        })
    }

    /// Creates the topic with `partitions` partitions (of [`Cluster::set_replication_factor`]
    /// replicas) if it does not exist, and
    /// waits at most [`TOPIC_READY_TIMEOUT`] until every partition has a reachable leader.
    ///
    /// # Errors
    ///
    /// No broker answers, a CreateTopics or topic error, or [`ClientError::Unexpected`] on
    /// timeout.
    pub fn ensure_topic(&mut self, partitions: i32) -> Result<()> {
        let deadline = Instant::now() + TOPIC_READY_TIMEOUT;
        let mut created = false;
        loop {
            match self.refresh() {
                Ok(_) if self.routes.is_complete() => return Ok(()),
                Ok(_) => {}
                Err(ClientError::Broker { code: requests::UNKNOWN_TOPIC_OR_PARTITION, .. })
                    if !created =>
                {
                    self.create_topic(partitions)?;
                    created = true;
                }
                Err(e) if e.is_retriable() && created => {
                    tracing::debug!(error = %e, "waiting for the new topic");
                }
                Err(e) => return Err(e),
            }
            if Instant::now() > deadline {
                let what = format!(
                    "topic {} has no leader for every partition after {TOPIC_READY_TIMEOUT:?}",
                    self.topic
                );
                return Err(ClientError::Unexpected { what });
            }
            std::thread::sleep(TOPIC_READY_POLL);
        }
    }

    fn create_topic(&mut self, partitions: i32) -> Result<()> {
        let topic = self.topic.clone();
        let rf = self.replication_factor;
        let mut last = None;
        for addr in self.metadata_candidates() {
            let answer = self.conn(&addr).and_then(|c| {
                let resp: <CreateTopicsRequest as Request>::Response =
                    c.call(&requests::create_topic_replicated(&topic, partitions, rf))?;
                Ok(resp)
            });
            match answer {
                Ok(resp) => {
                    requests::check_created(&resp, &topic)?;
                    tracing::info!(topic, partitions, "created topic");
                    return Ok(());
                }
                Err(e) if e.is_retriable() => {
                    self.forget(&addr);
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| ClientError::Unexpected { what: "no broker given".into() }))
    }

    /// Produces one partition's record `batch` to its leader (acks 1 or all) and returns its
    /// base offset, following the leader and retrying under the cluster's [`Retry`]. A retry at
    /// a leader the answer's hints name goes at once (KIP-951: no backoff when the new leader
    /// is known); one after a Metadata refresh waits the backoff.
    ///
    /// # Errors
    ///
    /// A non-retriable error at once; [`ClientError::Exhausted`] when the bound is reached.
    pub fn produce(
        &mut self,
        partition: i32,
        acks: i16,
        timeout_ms: i32,
        batch: Bytes,
    ) -> Result<i64> {
        let policy = self.retry;
        let topic = self.topic.clone();
        let hinted = Cell::new(false);
        with_retries(
            &policy,
            || format!("produce to {topic}/{partition}"),
            |wait| {
                if !hinted.get() {
                    std::thread::sleep(wait);
                }
            },
            |n| {
                if (n > 0 && !hinted.get()) || self.routes.addr_of(partition).is_none() {
                    self.refresh_quietly();
                }
                hinted.set(false);
                let addr = self.leader_addr(partition)?;
                let resp = self
                    .conn(&addr)
                    .and_then(|c| c.produce(&topic, acks, timeout_ms, [(partition, batch.clone())]))
                    .inspect_err(|e| {
                        if e.is_retriable() {
                            self.forget(&addr);
                        }
                    })?;
                hinted.set(self.apply_produce_hints(&resp));
                let p = resp
                    .responses
                    .iter()
                    .flat_map(|t| t.partition_responses.iter())
                    .find(|p| p.index == partition)
                    .ok_or_else(|| ClientError::Unexpected {
                        what: format!("Produce {topic}/{partition}: {addr} did not answer for it"),
                    })?;
                if p.error_code != 0 {
                    let what = format!("Produce {topic}/{partition} at {addr}");
                    return Err(ClientError::broker(what, p.error_code));
                }
                Ok(p.base_offset)
            },
        )
    }

    /// Offsets of `partitions` at `timestamp` (-2 earliest, -1 latest), each asked of its
    /// leader, retrying under the cluster's [`Retry`].
    ///
    /// # Errors
    ///
    /// A non-retriable error at once; [`ClientError::Exhausted`] when the bound is reached.
    pub fn list_offsets(
        &mut self,
        partitions: &[i32],
        timestamp: i64,
    ) -> Result<HashMap<i32, i64>> {
        let policy = self.retry;
        let topic = self.topic.clone();
        with_retries(
            &policy,
            || format!("ListOffsets of {topic} {partitions:?}"),
            std::thread::sleep,
            |n| {
                let groups = self.routes.by_leader(partitions.iter().copied());
                if n > 0 || groups.contains_key(&None) {
                    self.refresh_quietly();
                }
                let mut out = HashMap::with_capacity(partitions.len());
                for (addr, parts) in self.routes.by_leader(partitions.iter().copied()) {
                    let Some(addr) = addr else {
                        let what = format!("ListOffsets {topic}: no known leader of {parts:?}");
                        return Err(ClientError::broker(what, LEADER_NOT_AVAILABLE));
                    };
                    let got = self
                        .conn(&addr)
                        .and_then(|c| c.list_offsets(&topic, &parts, timestamp))
                        .inspect_err(|e| {
                            if matches!(e, ClientError::Io { .. }) {
                                self.forget(&addr);
                            }
                        })?;
                    out.extend(got);
                }
                Ok(out)
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bootstrap_list_drops_blanks() {
        assert_eq!(bootstrap_list(" a:1, ,b:2,"), vec!["a:1", "b:2"]);
        assert!(bootstrap_list("").is_empty());
    }

    #[test]
    fn refresh_with_no_broker_reachable_is_a_retriable_error() {
        // A port nothing listens on (bound, then freed).
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .to_string();
        let mut c = Cluster::new(&addr, "t", "topic", Retry::default());
        let err = c.refresh().expect_err("nobody answers");
        assert!(err.is_retriable(), "{err}");
        assert_eq!(c.generation(), 0);
        let quick = Retry { attempts: 2, ..Retry::default() };
        let mut c = Cluster::new(&addr, "t", "topic", quick);
        let err = c.produce(0, 1, 1000, Bytes::new()).expect_err("nobody answers");
        assert!(matches!(err, ClientError::Exhausted { attempts: 2, .. }), "{err}");
        assert!(err.to_string().contains("produce to topic/0"), "{err}");
    }
}
