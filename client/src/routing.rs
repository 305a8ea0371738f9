//! Leader routing, sans-I/O: which broker leads each partition of a topic ([`Routes`], from a
//! Metadata answer and corrected by the `current_leader`/`node_endpoints` hints of KIP-951 in
//! Produce and Fetch answers), which errors mean "ask again elsewhere" ([`is_stale_route`]),
//! and how often and how long to retry ([`Retry`], [`with_retries`]).
//!
//! A transport keeps one connection per leader broker, sends each partition's Produce or Fetch
//! to [`Routes::addr_of`] that partition, and on a stale-route error applies the answer's hints
//! ([`Routes::apply_produce_hints`], [`Routes::apply_fetch_hints`]) or, when they do not name
//! a reachable leader, asks Metadata again; every retry is bounded by a [`Retry`].

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use kafka_protocol::messages::{FetchResponse, MetadataResponse, ProduceResponse};

use crate::error::{ClientError, Result};
use crate::requests::UNKNOWN_TOPIC_OR_PARTITION;

/// Kafka's LEADER_NOT_AVAILABLE: an election is under way.
pub const LEADER_NOT_AVAILABLE: i16 = 5;
/// Kafka's NOT_LEADER_OR_FOLLOWER: this broker does not lead the partition (any more).
pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;
/// Kafka's FENCED_LEADER_EPOCH: the epoch we sent is older than the leader's.
pub const FENCED_LEADER_EPOCH: i16 = 74;
/// Kafka's UNKNOWN_LEADER_EPOCH: the epoch we sent is newer than the broker knows.
pub const UNKNOWN_LEADER_EPOCH: i16 = 75;

/// True for the error codes that mean the route is stale or not ready yet (the leader moved, is
/// being elected, or the topic is not known everywhere yet right after its creation): refresh
/// the leader and send again.
pub fn is_stale_route(code: i16) -> bool {
    matches!(
        code,
        UNKNOWN_TOPIC_OR_PARTITION
            | LEADER_NOT_AVAILABLE
            | NOT_LEADER_OR_FOLLOWER
            | FENCED_LEADER_EPOCH
            | UNKNOWN_LEADER_EPOCH
    )
}

/// The leader of one partition: its broker's node id and its leader epoch (-1: not known).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Leader {
    pub node_id: i32,
    pub epoch: i32,
}

/// The brokers of a cluster (node id → `host:port`) and the leader of each partition of one
/// topic, as far as this client knows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Routes {
    brokers: HashMap<i32, String>,
    /// Partitions the topic has (from the last Metadata answer).
    partitions: i32,
    /// Leader of each partition that has one with a known address.
    leaders: BTreeMap<i32, Leader>,
}

fn addr(host: &str, port: i32) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}") // an IPv6 literal
    } else {
        format!("{host}:{port}")
    }
}

impl Routes {
    /// The routes of `topic` from a Metadata answer: `Ok(None)` if the topic does not exist
    /// (UNKNOWN_TOPIC_OR_PARTITION or absent). A partition without a leader (an election, or a
    /// leader the answer lists no broker for) is left out: [`Routes::is_complete`] tells.
    ///
    /// # Errors
    ///
    /// [`ClientError::Broker`] for any other error of the topic.
    pub fn from_metadata(resp: &MetadataResponse, topic: &str) -> Result<Option<Routes>> {
        let brokers: HashMap<i32, String> =
            resp.brokers.iter().map(|b| (b.node_id.0, addr(b.host.as_str(), b.port))).collect();
        let t = resp
            .topics
            .iter()
            .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == topic))
            .or_else(|| resp.topics.first().filter(|t| t.name.is_none()));
        let Some(t) = t else { return Ok(None) };
        if t.error_code == UNKNOWN_TOPIC_OR_PARTITION {
            return Ok(None);
        }
        if t.error_code != 0 {
            return Err(ClientError::broker(format!("metadata of {topic}"), t.error_code));
        }
        let mut routes = Routes { brokers, partitions: 0, leaders: BTreeMap::new() };
        for p in &t.partitions {
            routes.partitions = routes.partitions.max(p.partition_index.saturating_add(1));
            let node_id = p.leader_id.0;
            if p.error_code == 0 && node_id >= 0 && routes.brokers.contains_key(&node_id) {
                let leader = Leader { node_id, epoch: p.leader_epoch };
                routes.leaders.insert(p.partition_index, leader);
            }
        }
        Ok(Some(routes))
    }

    /// Takes what a newer Metadata answer says, except a partition's leader whose epoch is
    /// older than the one already known (a broker that has not heard of the election yet).
    /// Returns true if any partition's leader or address changed.
    pub fn merge(&mut self, newer: Routes) -> bool {
        let before: Vec<(i32, Option<String>)> =
            self.leaders.keys().map(|&p| (p, self.addr_of(p).map(str::to_owned))).collect();
        let mut leaders = newer.leaders;
        for (p, known) in &self.leaders {
            let keep = match leaders.get(p) {
                Some(l) => l.epoch >= 0 && known.epoch > l.epoch,
                None => false,
            };
            if keep && newer.brokers.contains_key(&known.node_id) {
                leaders.insert(*p, *known);
            }
        }
        self.brokers = newer.brokers;
        self.partitions = newer.partitions;
        self.leaders = leaders;
        let after: Vec<(i32, Option<String>)> =
            self.leaders.keys().map(|&p| (p, self.addr_of(p).map(str::to_owned))).collect();
        before != after
    }

    /// Partitions of the topic (0 before any Metadata answer).
    pub fn partitions(&self) -> i32 {
        self.partitions
    }

    /// True if every partition has a leader with a known address.
    pub fn is_complete(&self) -> bool {
        self.partitions > 0 && self.leaders.len() == self.partitions as usize
    }

    /// The leader of `partition`, if known.
    pub fn leader_of(&self, partition: i32) -> Option<Leader> {
        self.leaders.get(&partition).copied()
    }

    /// The `host:port` of `partition`'s leader, if known.
    pub fn addr_of(&self, partition: i32) -> Option<&str> {
        let l = self.leaders.get(&partition)?;
        self.brokers.get(&l.node_id).map(String::as_str)
    }

    /// The `host:port` of broker `node_id`, if known.
    pub fn broker(&self, node_id: i32) -> Option<&str> {
        self.brokers.get(&node_id).map(String::as_str)
    }

    /// Every known broker address, sorted (where to ask Metadata again).
    pub fn broker_addrs(&self) -> Vec<String> {
        let mut v: Vec<String> = self.brokers.values().cloned().collect();
        v.sort();
        v.dedup();
        v
    }

    /// `partitions` grouped by their leader's address; those without a known leader are under
    /// `None`.
    pub fn by_leader(
        &self,
        partitions: impl IntoIterator<Item = i32>,
    ) -> BTreeMap<Option<String>, Vec<i32>> {
        let mut out: BTreeMap<Option<String>, Vec<i32>> = BTreeMap::new();
        for p in partitions {
            out.entry(self.addr_of(p).map(str::to_owned)).or_default().push(p);
        }
        out
    }

    /// Learns a broker's address (from `node_endpoints`).
    pub fn learn_broker(&mut self, node_id: i32, host: &str, port: i32) {
        if node_id >= 0 && !host.is_empty() && (1..=65535).contains(&port) {
            self.brokers.insert(node_id, addr(host, port));
        }
    }

    /// Applies a `current_leader` hint for `partition`: taken if it names a leader (id ≥ 0)
    /// whose address is known, with an epoch not older than the one known. Returns true if the
    /// partition now routes to that leader (so a retry may go there without a Metadata round).
    pub fn apply_current_leader(&mut self, partition: i32, leader_id: i32, epoch: i32) -> bool {
        if leader_id < 0 || !self.brokers.contains_key(&leader_id) {
            return false;
        }
        if partition < 0 || (self.partitions > 0 && partition >= self.partitions) {
            return false;
        }
        if let Some(known) = self.leaders.get(&partition)
            && known.epoch >= 0
            && epoch < known.epoch
        {
            return false; // a stale hint
        }
        self.leaders.insert(partition, Leader { node_id: leader_id, epoch });
        true
    }

    /// Applies the KIP-951 hints of a Produce answer (v10+): every `node_endpoints` entry, then
    /// the `current_leader` of each partition of `topic` that failed with a stale-route error.
    /// Returns the partitions whose leader the hints now name.
    pub fn apply_produce_hints(&mut self, resp: &ProduceResponse, topic: &str) -> Vec<i32> {
        for e in &resp.node_endpoints {
            self.learn_broker(e.node_id.0, e.host.as_str(), e.port);
        }
        let mut moved = Vec::new();
        for t in resp.responses.iter().filter(|t| t.name.0.as_str() == topic) {
            for p in t.partition_responses.iter().filter(|p| is_stale_route(p.error_code)) {
                let l = &p.current_leader;
                if self.apply_current_leader(p.index, l.leader_id.0, l.leader_epoch) {
                    moved.push(p.index);
                }
            }
        }
        moved
    }

    /// As [`Routes::apply_produce_hints`], for a Fetch answer (`current_leader` from v12,
    /// `node_endpoints` from v16).
    pub fn apply_fetch_hints(&mut self, resp: &FetchResponse, topic: &str) -> Vec<i32> {
        for e in &resp.node_endpoints {
            self.learn_broker(e.node_id.0, e.host.as_str(), e.port);
        }
        let mut moved = Vec::new();
        for t in resp.responses.iter().filter(|t| t.topic.0.as_str() == topic) {
            for p in t.partitions.iter().filter(|p| is_stale_route(p.error_code)) {
                let l = &p.current_leader;
                if self.apply_current_leader(p.partition_index, l.leader_id.0, l.leader_epoch) {
                    moved.push(p.partition_index);
                }
            }
        }
        moved
    }
}

/// How often and how long a request is retried after a stale-route or connection error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Tries in all, the first included (at least 1).
    pub attempts: u32,
    /// The wait before the second try; it doubles for each further try ...
    pub backoff: Duration,
    /// ... up to this.
    pub backoff_max: Duration,
    /// No try starts later than this after the first.
    pub timeout: Duration,
}

impl Default for Retry {
    /// 10 tries, 50 ms doubling up to 1 s between them, within 10 s: about 5.6 s of waits, so
    /// a leader election of a few seconds is ridden out.
    fn default() -> Retry {
        Retry {
            attempts: 10,
            backoff: Duration::from_millis(50),
            backoff_max: Duration::from_secs(1),
            timeout: Duration::from_secs(10),
        }
    }
}

impl Retry {
    /// The wait before try `attempt` (0-based; 0 for the first try).
    pub fn delay(&self, attempt: u32) -> Duration {
        if attempt == 0 {
            return Duration::ZERO;
        }
        let factor = 1u32 << (attempt - 1).min(20);
        self.backoff.saturating_mul(factor).min(self.backoff_max)
    }

    /// True if try `attempt` (0-based) may start `elapsed` after the first.
    pub fn allows(&self, attempt: u32, elapsed: Duration) -> bool {
        attempt == 0 || (attempt < self.attempts.max(1) && elapsed < self.timeout)
    }
}

impl ClientError {
    /// True for what a retry may cure: a connection error, or a Kafka error code of a stale
    /// route ([`is_stale_route`]).
    pub fn is_retriable(&self) -> bool {
        match self {
            ClientError::Io { .. } => true,
            ClientError::Broker { code, .. } => is_stale_route(*code),
            _ => false,
        }
    }
}

/// Runs `attempt` (given its 0-based number) until it succeeds, fails with an error that is not
/// [`ClientError::is_retriable`], or `policy` allows no further try; waits
/// [`Retry::delay`] (through `sleep`) before each retry.
///
/// # Errors
///
/// The first non-retriable error as it is, or [`ClientError::Exhausted`] naming `what`, the
/// tries, the time taken and the last error.
pub fn with_retries<T>(
    policy: &Retry,
    what: impl FnOnce() -> String,
    mut sleep: impl FnMut(Duration),
    mut attempt: impl FnMut(u32) -> Result<T>,
) -> Result<T> {
    let start = Instant::now();
    let mut n = 0u32;
    loop {
        match attempt(n) {
            Ok(v) => return Ok(v),
            Err(e) if !e.is_retriable() => return Err(e),
            Err(e) => {
                n += 1;
                let wait = policy.delay(n);
                if !policy.allows(n, start.elapsed() + wait) {
                    return Err(ClientError::Exhausted {
                        what: what(),
                        attempts: n,
                        elapsed: start.elapsed(),
                        last: Box::new(e),
                    });
                }
                tracing::debug!(error = %e, attempt = n, ?wait, "retrying");
                sleep(wait);
            }
        }
    }
}

/// Per-partition count of consecutive failures, for loops that retry by going round again
/// (a consumer's fetch loop) rather than through [`with_retries`].
#[derive(Debug, Clone, Default)]
pub struct Failures {
    by_partition: HashMap<i32, (u32, Instant)>,
}

impl Failures {
    /// Records a failure of `partition` and returns the wait before its next try.
    ///
    /// # Errors
    ///
    /// [`ClientError::Exhausted`] once `policy` allows no further try.
    pub fn failed(
        &mut self,
        policy: &Retry,
        what: impl FnOnce() -> String,
        partition: i32,
        why: ClientError,
    ) -> Result<Duration> {
        let (n, since) = self.by_partition.entry(partition).or_insert((0, Instant::now()));
        *n += 1;
        let wait = policy.delay(*n);
        if !policy.allows(*n, since.elapsed() + wait) {
            return Err(ClientError::Exhausted {
                what: what(),
                attempts: *n,
                elapsed: since.elapsed(),
                last: Box::new(why),
            });
        }
        Ok(wait)
    }

    /// Forgets `partition`'s failures (it succeeded).
    pub fn succeeded(&mut self, partition: i32) {
        if !self.by_partition.is_empty() {
            self.by_partition.remove(&partition);
        }
    }

    /// True if no partition has failed since its last success.
    pub fn is_empty(&self) -> bool {
        self.by_partition.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::metadata_response::{
        MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
    };
    use kafka_protocol::messages::produce_response::{
        LeaderIdAndEpoch, NodeEndpoint, PartitionProduceResponse, TopicProduceResponse,
    };
    use kafka_protocol::messages::{BrokerId, TopicName};
    use kafka_protocol::protocol::StrBytes;

    fn broker(id: i32, port: i32) -> MetadataResponseBroker {
        MetadataResponseBroker::default()
            .with_node_id(BrokerId(id))
            .with_host(StrBytes::from_static_str("127.0.0.1"))
            .with_port(port)
    }

    fn partition(index: i32, leader: i32, epoch: i32, code: i16) -> MetadataResponsePartition {
        MetadataResponsePartition::default()
            .with_partition_index(index)
            .with_leader_id(BrokerId(leader))
            .with_leader_epoch(epoch)
            .with_error_code(code)
    }

    fn metadata(
        brokers: Vec<MetadataResponseBroker>,
        parts: Vec<MetadataResponsePartition>,
    ) -> MetadataResponse {
        let t = MetadataResponseTopic::default()
            .with_name(Some(TopicName(StrBytes::from_static_str("t"))))
            .with_partitions(parts);
        MetadataResponse::default().with_brokers(brokers).with_topics(vec![t])
    }

    fn two_brokers() -> Routes {
        let resp = metadata(
            vec![broker(1, 9001), broker(2, 9002)],
            vec![partition(0, 1, 3, 0), partition(1, 2, 5, 0), partition(2, 1, 1, 0)],
        );
        Routes::from_metadata(&resp, "t").expect("no error").expect("topic exists")
    }

    #[test]
    fn metadata_gives_each_partition_its_leaders_address() {
        let r = two_brokers();
        assert!(r.is_complete());
        assert_eq!(r.partitions(), 3);
        assert_eq!(r.addr_of(0), Some("127.0.0.1:9001"));
        assert_eq!(r.addr_of(1), Some("127.0.0.1:9002"));
        assert_eq!(r.leader_of(1), Some(Leader { node_id: 2, epoch: 5 }));
        let groups = r.by_leader(0..3);
        assert_eq!(groups[&Some("127.0.0.1:9001".to_owned())], vec![0, 2]);
        assert_eq!(groups[&Some("127.0.0.1:9002".to_owned())], vec![1]);
        assert_eq!(r.broker_addrs(), vec!["127.0.0.1:9001", "127.0.0.1:9002"]);
    }

    #[test]
    fn a_partition_without_a_reachable_leader_leaves_the_routes_incomplete() {
        let resp = metadata(
            vec![broker(1, 9001)],
            vec![
                partition(0, 1, 0, 0),
                partition(1, -1, -1, LEADER_NOT_AVAILABLE),
                partition(2, 7, 0, 0), // a leader the answer lists no broker for
            ],
        );
        let r = Routes::from_metadata(&resp, "t").expect("ok").expect("exists");
        assert!(!r.is_complete());
        assert_eq!(r.addr_of(1), None);
        assert_eq!(r.addr_of(2), None);
        assert_eq!(r.by_leader([1, 2])[&None], vec![1, 2]);
    }

    #[test]
    fn an_unknown_topic_is_none_and_other_topic_errors_are_errors() {
        let unknown = MetadataResponse::default().with_topics(vec![
            MetadataResponseTopic::default()
                .with_name(Some(TopicName(StrBytes::from_static_str("t"))))
                .with_error_code(UNKNOWN_TOPIC_OR_PARTITION),
        ]);
        assert_eq!(Routes::from_metadata(&unknown, "t").expect("ok"), None);
        assert_eq!(Routes::from_metadata(&MetadataResponse::default(), "t").expect("ok"), None);
        let denied = MetadataResponse::default().with_topics(vec![
            MetadataResponseTopic::default()
                .with_name(Some(TopicName(StrBytes::from_static_str("t"))))
                .with_error_code(29),
        ]);
        assert!(matches!(
            Routes::from_metadata(&denied, "t"),
            Err(ClientError::Broker { code: 29, .. })
        ));
    }

    #[test]
    fn a_newer_metadata_answer_moves_leaders_but_not_back_to_an_older_epoch() {
        let mut r = two_brokers();
        // Broker 2 now leads partition 0 (epoch 4); a lagging answer says broker 1 leads
        // partition 1 at epoch 4, older than the 5 known.
        let newer = metadata(
            vec![broker(1, 9001), broker(2, 9002)],
            vec![partition(0, 2, 4, 0), partition(1, 1, 4, 0), partition(2, 1, 1, 0)],
        );
        let newer = Routes::from_metadata(&newer, "t").expect("ok").expect("exists");
        assert!(r.merge(newer.clone()));
        assert_eq!(r.addr_of(0), Some("127.0.0.1:9002"));
        assert_eq!(r.leader_of(1), Some(Leader { node_id: 2, epoch: 5 }), "kept the newer");
        assert!(!r.merge(newer), "nothing changes the second time");
    }

    fn produce_answer(
        code: i16,
        leader: i32,
        epoch: i32,
        endpoints: Vec<NodeEndpoint>,
    ) -> ProduceResponse {
        let p = PartitionProduceResponse::default()
            .with_index(1)
            .with_error_code(code)
            .with_current_leader(
                LeaderIdAndEpoch::default()
                    .with_leader_id(BrokerId(leader))
                    .with_leader_epoch(epoch),
            );
        let t = TopicProduceResponse::default()
            .with_name(TopicName(StrBytes::from_static_str("t")))
            .with_partition_responses(vec![p]);
        ProduceResponse::default().with_responses(vec![t]).with_node_endpoints(endpoints)
    }

    #[test]
    fn current_leader_and_node_endpoints_reroute_without_metadata() {
        let mut r = two_brokers();
        let endpoint = NodeEndpoint::default()
            .with_node_id(BrokerId(3))
            .with_host(StrBytes::from_static_str("10.0.0.3"))
            .with_port(9093);
        let resp = produce_answer(NOT_LEADER_OR_FOLLOWER, 3, 6, vec![endpoint]);
        assert_eq!(r.apply_produce_hints(&resp, "t"), vec![1]);
        assert_eq!(r.addr_of(1), Some("10.0.0.3:9093"));
        assert_eq!(r.leader_of(1), Some(Leader { node_id: 3, epoch: 6 }));
    }

    #[test]
    fn hints_that_name_no_usable_leader_are_ignored() {
        let mut r = two_brokers();
        // No leader named (a pre-v10 answer decodes to -1): refresh Metadata instead.
        assert!(r.apply_produce_hints(&produce_answer(6, -1, -1, vec![]), "t").is_empty());
        // A leader whose address nobody gave.
        assert!(r.apply_produce_hints(&produce_answer(6, 9, 7, vec![]), "t").is_empty());
        // An epoch older than the known one (5).
        assert!(r.apply_produce_hints(&produce_answer(6, 1, 4, vec![]), "t").is_empty());
        // Not a stale-route error: hints are not looked at.
        assert!(r.apply_produce_hints(&produce_answer(2, 1, 9, vec![]), "t").is_empty());
        assert_eq!(r.leader_of(1), Some(Leader { node_id: 2, epoch: 5 }));
        assert!(!r.apply_current_leader(7, 1, 9), "no such partition");
    }

    #[test]
    fn the_stale_route_codes_are_the_retriable_ones() {
        for code in [3, 5, 6, 74, 75] {
            assert!(is_stale_route(code), "{code}");
            assert!(ClientError::broker("x", code).is_retriable());
        }
        for code in [0, 1, 2, 7, 10, 45, 87] {
            assert!(!is_stale_route(code), "{code}");
        }
        let io =
            ClientError::Io { what: "x".into(), source: std::io::ErrorKind::BrokenPipe.into() };
        assert!(io.is_retriable());
        assert!(!ClientError::Unexpected { what: "x".into() }.is_retriable());
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let r = Retry::default();
        let waits: Vec<u128> = (0..7).map(|a| r.delay(a).as_millis()).collect();
        assert_eq!(waits, vec![0, 50, 100, 200, 400, 800, 1000]);
        assert_eq!(r.delay(u32::MAX), r.backoff_max);
        let total: Duration = (1..r.attempts).map(|a| r.delay(a)).sum();
        assert!(total <= r.timeout, "{total:?} of waits fit in the timeout");
    }

    #[test]
    fn retries_stop_at_the_bound_and_say_what_failed() {
        let policy = Retry { attempts: 4, ..Retry::default() };
        let mut slept = Vec::new();
        let mut tries = 0;
        let err = with_retries(
            &policy,
            || "produce to t/1".to_owned(),
            |d| slept.push(d),
            |_| -> Result<()> {
                tries += 1;
                Err(ClientError::broker("Produce t/1", NOT_LEADER_OR_FOLLOWER))
            },
        )
        .expect_err("never succeeds");
        assert_eq!(tries, 4);
        assert_eq!(slept.len(), 3);
        let text = err.to_string();
        assert!(text.contains("produce to t/1") && text.contains("4 tries"), "{text}");
        assert!(text.contains("error code 6"), "{text}");
    }

    #[test]
    fn retries_end_at_success_or_at_an_error_no_retry_cures() {
        let policy = Retry::default();
        let ok = with_retries(
            &policy,
            String::new,
            |_| {},
            |n| {
                if n < 2 { Err(ClientError::broker("p", LEADER_NOT_AVAILABLE)) } else { Ok(n) }
            },
        );
        assert_eq!(ok.expect("third try"), 2);
        let mut tries = 0;
        let err = with_retries(
            &policy,
            String::new,
            |_| {},
            |_| -> Result<()> {
                tries += 1;
                Err(ClientError::broker("p", 2))
            },
        );
        assert!(matches!(err, Err(ClientError::Broker { code: 2, .. })));
        assert_eq!(tries, 1);
    }

    #[test]
    fn a_timeout_ends_retries_before_the_attempts_do() {
        let policy = Retry {
            attempts: 100,
            backoff: Duration::from_millis(20),
            backoff_max: Duration::from_millis(20),
            timeout: Duration::from_millis(100),
        };
        let mut tries = 0;
        let err = with_retries(&policy, String::new, std::thread::sleep, |_| -> Result<()> {
            tries += 1;
            Err(ClientError::broker("p", NOT_LEADER_OR_FOLLOWER))
        });
        assert!(matches!(err, Err(ClientError::Exhausted { .. })));
        assert!((2..=6).contains(&tries), "{tries} tries in 100 ms at 20 ms each");
    }

    #[test]
    fn failures_are_counted_per_partition_until_a_success() {
        let policy = Retry { attempts: 3, ..Retry::default() };
        let mut f = Failures::default();
        let why = || ClientError::broker("f", NOT_LEADER_OR_FOLLOWER);
        assert_eq!(f.failed(&policy, String::new, 0, why()).expect("1st"), policy.delay(1));
        assert!(f.failed(&policy, String::new, 1, why()).is_ok(), "another partition");
        f.succeeded(1);
        assert!(f.failed(&policy, String::new, 0, why()).is_ok());
        let err = f.failed(&policy, || "fetch t/0".to_owned(), 0, why()).expect_err("3rd");
        assert!(err.to_string().contains("fetch t/0"), "{err}");
        f.succeeded(0);
        assert!(f.is_empty());
    }
}
