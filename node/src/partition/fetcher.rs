//! Replica fetchers (Kafka's ISR protocol, follower side): on each shard, one task per leader
//! broker that this shard's follower partitions follow. It sends Fetch v15+ requests as
//! replica `me` (`ReplicaState`, each partition's `current_leader_epoch` and
//! `last_fetched_epoch`), batched across those partitions in one incremental fetch session
//! (KIP-227: after the first request, only partitions whose position or epochs changed are
//! named, and the leader answers only partitions with something new), over the client
//! crate's compio transport from this node's own address, and applies the answers on this
//! shard: appends the leader's batches as they are, takes its high watermark and log start,
//! and truncates where the leader reports a diverging epoch (KIP-320).
//!
//! **Invariants.**
//! - A response is applied to a partition only while it still follows that leader at the
//!   leader epoch the request carried: a leadership change in between discards it.
//! - Every wait is bounded: connects, calls, and back-offs after errors (which grow to
//!   [`BACKOFF_MAX`] and reset on success).
//! - A fetcher ends when no partition of its shard follows its leader any more.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::rc::Rc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::fetch_request::{
    FetchPartition, FetchTopic, ForgottenTopic, ReplicaState,
};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest};
use odradek_client::compio::AsyncConn;
use odradek_net::ErrorCode;
use odradek_net::error_code as ec;
use tracing::{debug, info, warn};
use uuid::Uuid;

use super::fetch_session::next_epoch;
use super::{Partition, Partitions, Role};

/// How long a follower's fetch waits at the leader for new records (Kafka's
/// `replica.fetch.wait.max.ms`).
pub const FETCH_WAIT_MAX: Duration = Duration::from_millis(500);
/// Bytes one fetch asks for in all, and per partition (`replica.fetch.response.max.bytes`,
/// `replica.fetch.max.bytes`).
pub const FETCH_MAX_BYTES: i32 = 10 << 20;
pub const FETCH_PARTITION_MAX_BYTES: i32 = 1 << 20;
/// The Fetch versions a follower sends: v15 brings `ReplicaState` (KIP-903), v16 adds nothing
/// a follower uses but is what this broker speaks.
const FETCH_VERSION_MIN: i16 = 15;
const FETCH_VERSION_MAX: i16 = 16;
/// Connecting, and a call beyond its long poll, may take this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const CALL_SLACK: Duration = Duration::from_secs(5);
/// Back-off after an error, doubling up to the maximum.
const BACKOFF_MIN: Duration = Duration::from_millis(50);
pub const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// A partition answered with an error waits this long before it is fetched again (its
/// metadata is probably moving).
const PARTITION_RETRY: Duration = Duration::from_millis(200);

/// What the leader's fetch session holds of one partition: what this fetcher last named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Named {
    offset: u64,
    current_leader_epoch: i32,
    last_fetched_epoch: i32,
    log_start: u64,
}

/// This fetcher's incremental fetch session with its leader (KIP-227).
#[derive(Debug, Default)]
struct Session {
    /// 0 until the leader created one.
    id: i32,
    /// The epoch the next request carries.
    epoch: i32,
    named: HashMap<(Uuid, i32), Named>,
}

/// Where this shard's fetchers fetch from and as whom.
#[derive(Debug, Clone)]
pub struct FetcherSettings {
    /// This broker's id (the fetch's replica id).
    pub me: i32,
    /// The local address outgoing connections leave from (the node's listen address).
    pub bind: Option<IpAddr>,
    /// TLS to the leaders, when the inter-broker listener is SSL or SASL_SSL.
    pub tls: Option<odradek_client::compio::Tls>,
    /// The SASL login, when the inter-broker listener is SASL_PLAINTEXT or SASL_SSL.
    pub sasl: Option<std::sync::Arc<crate::security::sasl::Login>>,
}

/// Why one fetch round failed as a whole.
#[derive(Debug, thiserror::Error)]
pub enum RoundError {
    #[error("leader {leader} speaks Fetch up to v{version}; replication needs v15 (ReplicaState)")]
    OldLeader { leader: i32, version: i16 },
    #[error("leader {0} has no known endpoint")]
    NoEndpoint(i32),
    #[error(transparent)]
    Client(#[from] odradek_client::ClientError),
    #[error("fetch session: {0}")]
    Session(ErrorCode),
    #[error("SASL login to leader {leader}: {reason}")]
    Login { leader: i32, reason: String },
}

/// Fetches for every partition of `partitions` that follows `leader`, until none does or
/// `stopping` reports true.
pub async fn run(partitions: &Partitions, leader: i32, stopping: impl Fn() -> bool) {
    let mut conn: Option<AsyncConn> = None;
    let mut session = Session::default();
    let mut backoff = BACKOFF_MIN;
    let mut failing = false;
    let mut retry_at: HashMap<(Uuid, i32), Instant> = HashMap::new();
    debug!(leader, "replica fetcher started");
    while !stopping() {
        let following = partitions.following(leader);
        if following.is_empty() {
            break;
        }
        let now = Instant::now();
        retry_at.retain(|_, at| *at > now);
        let ready: Vec<Rc<Partition>> = following
            .into_iter()
            .filter(|p| !retry_at.contains_key(&(p.topic_id, p.index)))
            .collect();
        if ready.is_empty() {
            compio::time::sleep(PARTITION_RETRY).await;
            continue;
        }
        match round(partitions, &mut conn, &mut session, leader, &ready, &mut retry_at).await {
            Ok(()) => {
                if failing {
                    info!(leader, "replica fetcher reconnected");
                }
                failing = false;
                backoff = BACKOFF_MIN;
            }
            Err(RoundError::Session(code)) => {
                // The leader lost the session (evicted, restarted, another shard): start anew.
                debug!(leader, error = %code, "replica fetch session reset");
                session = Session::default();
            }
            Err(e) => {
                conn = None;
                // A session lives on the leader's shard of one connection.
                session = Session::default();
                if !failing {
                    warn!(leader, error = %e, "replica fetch failed; retrying");
                }
                failing = true;
                compio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
    debug!(leader, "replica fetcher stopped");
}

/// A connection to broker `broker`'s inter-broker listener, leaving from this node's address,
/// over TLS and logged in with SASL when that listener asks for them; every step bounded. The
/// replica fetchers' connections, and the transaction coordinator's to other brokers.
pub async fn connect(partitions: &Partitions, broker: i32) -> Result<AsyncConn, RoundError> {
    let settings = partitions.fetcher_settings();
    let snapshot = partitions.metadata().snapshot();
    let b = snapshot.brokers.get(&broker).ok_or(RoundError::NoEndpoint(broker))?;
    let addr = resolve(&b.host, b.port).ok_or(RoundError::NoEndpoint(broker))?;
    let client_id = format!("odradek-replica-{}", settings.me);
    let tls = settings.tls.as_ref();
    let c = AsyncConn::connect_with(addr, settings.bind, &client_id, CONNECT_TIMEOUT, tls);
    let mut c = c.await?;
    if let Some(login) = &settings.sasl {
        login
            .log_in(&mut c, CONNECT_TIMEOUT)
            .await
            .map_err(|reason| RoundError::Login { leader: broker, reason })?;
    }
    Ok(c)
}

/// One Fetch to `leader` for `ready`, and its answers applied.
async fn round(
    partitions: &Partitions,
    conn: &mut Option<AsyncConn>,
    session: &mut Session,
    leader: i32,
    ready: &[Rc<Partition>],
    retry_at: &mut HashMap<(Uuid, i32), Instant>,
) -> Result<(), RoundError> {
    let settings = partitions.fetcher_settings();
    let snapshot = partitions.metadata().snapshot();
    if conn.is_none() {
        *conn = Some(connect(partitions, leader).await?);
    }
    let Some(c) = conn.as_mut() else { return Ok(()) };
    // What each partition was asked at: its answer applies only if that still holds.
    let asked: Vec<(Rc<Partition>, i32, u64)> =
        ready.iter().map(|p| (p.clone(), p.leader_epoch(), p.fetch_position().0)).collect();
    let req = request(settings.me, snapshot.broker_epoch, &asked, session);
    let broker_max = c.versions().broker_range(ApiKey::Fetch as i16).map_or(-1, |(_, max)| max);
    let version = broker_max.min(FETCH_VERSION_MAX);
    if version < FETCH_VERSION_MIN {
        return Err(RoundError::OldLeader { leader, version: broker_max });
    }
    let resp = c.call_at(version, &req, FETCH_WAIT_MAX + CALL_SLACK).await?;
    let code = ErrorCode::new(resp.error_code);
    if code == ec::FETCH_SESSION_ID_NOT_FOUND || code == ec::INVALID_FETCH_SESSION_EPOCH {
        return Err(RoundError::Session(code));
    }
    if session.id == 0 {
        // The leader created the session (or could not: 0, and the next request asks again).
        session.id = resp.session_id;
        session.epoch = 1;
        if resp.session_id == 0 {
            session.named.clear();
        }
    } else {
        session.epoch = next_epoch(session.epoch);
    }
    if resp.error_code != 0 {
        return Err(RoundError::Client(odradek_client::ClientError::Broker {
            what: "replica fetch".to_owned(),
            code: resp.error_code,
        }));
    }
    let by_key: HashMap<(Uuid, i32), &(Rc<Partition>, i32, u64)> =
        asked.iter().map(|a| ((a.0.topic_id, a.0.index), a)).collect();
    for topic in resp.responses {
        for data in topic.partitions {
            let Some((p, epoch, offset)) = by_key.get(&(topic.topic_id, data.partition_index))
            else {
                continue;
            };
            let still = p.role() == Role::Follower { leader } && p.leader_epoch() == *epoch;
            if !still || p.fetch_position().0 != *offset {
                continue;
            }
            if let Err(e) = apply(p, data).await {
                debug!(topic = %p.topic, partition = p.index, leader, error = %e, "replica fetch answer not applied");
                retry_at.insert((p.topic_id, p.index), Instant::now() + PARTITION_RETRY);
            }
        }
    }
    Ok(())
}

/// The Fetch request for `asked` in `session`: replica `me`; a new session names every
/// partition, a continuing one only those whose position or epochs changed since it last named
/// them, and forgets those no longer asked. Updates what the session holds.
fn request(
    me: i32,
    broker_epoch: u64,
    asked: &[(Rc<Partition>, i32, u64)],
    session: &mut Session,
) -> FetchRequest {
    let new_session = session.id == 0;
    if new_session {
        session.named.clear();
    }
    let mut topics: Vec<FetchTopic> = Vec::new();
    let mut wanted = std::collections::HashSet::new();
    for (p, epoch, _) in asked {
        let (offset, last_epoch, log_start) = p.fetch_position();
        let now = Named {
            offset,
            current_leader_epoch: *epoch,
            last_fetched_epoch: last_epoch,
            log_start,
        };
        let key = (p.topic_id, p.index);
        wanted.insert(key);
        if session.named.get(&key) == Some(&now) {
            continue;
        }
        session.named.insert(key, now);
        let part = FetchPartition::default()
            .with_partition(p.index)
            .with_current_leader_epoch(*epoch)
            .with_fetch_offset(offset as i64)
            .with_last_fetched_epoch(last_epoch)
            .with_log_start_offset(log_start as i64)
            .with_partition_max_bytes(FETCH_PARTITION_MAX_BYTES);
        match topics.iter_mut().find(|t| t.topic_id == p.topic_id) {
            Some(t) => t.partitions.push(part),
            None => topics
                .push(FetchTopic::default().with_topic_id(p.topic_id).with_partitions(vec![part])),
        }
    }
    let mut forgotten: Vec<ForgottenTopic> = Vec::new();
    let gone: Vec<(Uuid, i32)> =
        session.named.keys().filter(|k| !wanted.contains(k)).copied().collect();
    for (topic_id, partition) in gone {
        session.named.remove(&(topic_id, partition));
        match forgotten.iter_mut().find(|t| t.topic_id == topic_id) {
            Some(t) => t.partitions.push(partition),
            None => forgotten.push(
                ForgottenTopic::default().with_topic_id(topic_id).with_partitions(vec![partition]),
            ),
        }
    }
    FetchRequest::default()
        .with_replica_state(
            ReplicaState::default()
                .with_replica_id(BrokerId(me))
                .with_replica_epoch(i64::try_from(broker_epoch).unwrap_or(-1)),
        )
        .with_max_wait_ms(FETCH_WAIT_MAX.as_millis() as i32)
        .with_min_bytes(1)
        .with_max_bytes(FETCH_MAX_BYTES)
        .with_session_id(session.id)
        .with_session_epoch(if new_session { 0 } else { session.epoch })
        .with_topics(topics)
        .with_forgotten_topics_data(forgotten)
}

/// Why an answer for one partition was not applied.
#[derive(Debug, thiserror::Error)]
enum ApplyError {
    #[error("leader answered {0}")]
    Kafka(ErrorCode),
    #[error(transparent)]
    Log(#[from] odradek_storage::LogError),
    #[error(transparent)]
    Append(#[from] super::AppendFailure),
}

/// Applies the leader's answer for one partition.
async fn apply(p: &Partition, data: PartitionData) -> Result<(), ApplyError> {
    let code = ErrorCode::new(data.error_code);
    if code == ec::OFFSET_OUT_OF_RANGE {
        let (offset, _, _) = p.fetch_position();
        if data.log_start_offset >= 0 && (offset as i64) < data.log_start_offset {
            p.restart_at(data.log_start_offset as u64).await?;
            return Ok(());
        }
        return Err(ApplyError::Kafka(code));
    }
    if code != ec::NONE {
        return Err(ApplyError::Kafka(code));
    }
    let diverging = &data.diverging_epoch;
    if diverging.epoch >= 0 || diverging.end_offset >= 0 {
        p.truncate_diverging(diverging.epoch, diverging.end_offset).await?;
        return Ok(());
    }
    let records = data.records.unwrap_or_default();
    p.append_replica(records, data.high_watermark).await?;
    p.follow_log_start(data.log_start_offset).await?;
    Ok(())
}

/// The socket address of `host:port`: an IP literal without a lookup (the usual case: brokers
/// advertise addresses), else the system resolver.
fn resolve(host: &str, port: u16) -> Option<SocketAddr> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Some(SocketAddr::new(ip, port));
    }
    (host, port).to_socket_addrs().ok()?.next()
}
