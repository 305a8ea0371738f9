//! Connections closed for misbehaving, logged by class rather than by connection.
//!
//! Ten thousand idle sockets, a thousand slow-loris clients or a client that never reads its
//! responses must not turn into ten thousand log lines: the log would then be the attack. Each
//! [`Abuse`] class is logged once, with what it means and what to tune, the first time any shard
//! closes a connection for it; after that, at most one line per class per
//! [`SUMMARY_INTERVAL`] carries how many more were closed. Every close is also counted in
//! `odradek_connections_closed_total{reason}` (the shard's stats), and logged per connection at
//! `debug` for whoever needs the peers.
//!
//! The log is one per node, shared by its shards through atomics: a counter and a timestamp per
//! class, no lock, nothing that grows.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use crate::metrics::ShardStats;

/// How often, at most, one class's later closes are summarised in one line.
pub const SUMMARY_INTERVAL: Duration = Duration::from_secs(60);

/// Why a connection was closed by the node rather than by its client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Abuse {
    /// Accepted while the shard held `connections_per_shard_max` connections.
    ConnectionLimit,
    /// Accepted from an address that held its `max_connections_per_ip` (or override).
    ConnectionsPerIp,
    /// No request for `connections.max.idle.ms`.
    Idle,
    /// A request whose bytes did not all arrive within `connections.max.idle.ms` of its first
    /// (a slow-loris client).
    SlowRequest,
    /// A response the client did not take within `connections.max.idle.ms` (a client that never
    /// reads, or pipelines requests far faster than it reads the answers).
    SlowReader,
    /// A length prefix that is negative, zero or above `socket.request.max.bytes`.
    OversizeFrame,
    /// A frame that is not a request of an API and version this node serves.
    Undecodable,
    /// A TLS handshake that failed or did not finish in time.
    TlsHandshake,
}

impl Abuse {
    pub const ALL: [Abuse; 8] = [
        Abuse::ConnectionLimit,
        Abuse::ConnectionsPerIp,
        Abuse::Idle,
        Abuse::SlowRequest,
        Abuse::SlowReader,
        Abuse::OversizeFrame,
        Abuse::Undecodable,
        Abuse::TlsHandshake,
    ];

    /// The `reason` label of `odradek_connections_closed_total`.
    pub fn label(self) -> &'static str {
        match self {
            Abuse::ConnectionLimit => "connection_limit",
            Abuse::ConnectionsPerIp => "connections_per_ip",
            Abuse::Idle => "idle",
            Abuse::SlowRequest => "slow_request",
            Abuse::SlowReader => "slow_reader",
            Abuse::OversizeFrame => "oversize_frame",
            Abuse::Undecodable => "undecodable",
            Abuse::TlsHandshake => "tls_handshake",
        }
    }

    /// What the first close of this class says, and what an operator may change.
    fn explanation(self) -> &'static str {
        match self {
            Abuse::ConnectionLimit => {
                "connection limit reached; closing new connections at once (connections_per_shard_max)"
            }
            Abuse::ConnectionsPerIp => {
                "an address holds its connection limit; closing its new connections at once (max_connections_per_ip)"
            }
            Abuse::Idle => "closing idle connections (connections.max.idle.ms)",
            Abuse::SlowRequest => {
                "closing connections whose request did not arrive in full within connections.max.idle.ms (slow clients)"
            }
            Abuse::SlowReader => {
                "closing connections that did not read their responses within connections.max.idle.ms"
            }
            Abuse::OversizeFrame => {
                "closing connections that sent a frame length out of bounds (socket.request.max.bytes)"
            }
            Abuse::Undecodable => {
                "closing connections that sent an undecodable request or an API this node does not serve"
            }
            Abuse::TlsHandshake => {
                "TLS handshake failed; closing connections that do not complete one"
            }
        }
    }

    /// Idle connections are ordinary; the rest are worth a warning.
    fn is_warning(self) -> bool {
        self != Abuse::Idle
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// One class's state: whether its first close was logged, the closes since the last line, and
/// when that line was written (milliseconds since the log's start).
#[derive(Debug, Default)]
struct Class {
    logged: AtomicBool,
    unlogged: AtomicU64,
    last_line_ms: AtomicU64,
}

/// The node's abuse log, shared by its shards.
#[derive(Debug)]
pub struct AbuseLog {
    start: Instant,
    classes: [Class; Abuse::ALL.len()],
    interval: Duration,
}

impl Default for AbuseLog {
    fn default() -> Self {
        Self::with_interval(SUMMARY_INTERVAL)
    }
}

impl AbuseLog {
    /// A log summarising each class at most once per `interval`.
    pub fn with_interval(interval: Duration) -> Self {
        Self { start: Instant::now(), classes: Default::default(), interval }
    }

    /// Counts and (when due) logs that `shard` closed the connection from `peer` for `class`;
    /// `detail` is what the connection did. Returns whether a line was written.
    pub fn closed(&self, stats: &ShardStats, class: Abuse, peer: SocketAddr, detail: &str) -> bool {
        ShardStats::add(&stats.connections_closed[class.index()], 1);
        debug!(shard = stats.shard, %peer, reason = class.label(), detail, "connection closed by the node");
        let c = &self.classes[class.index()];
        let now_ms = self.start.elapsed().as_millis() as u64;
        if !c.logged.swap(true, Relaxed) {
            c.last_line_ms.store(now_ms, Relaxed);
            let what = class.explanation();
            let reason = class.label();
            if class.is_warning() {
                warn!(shard = stats.shard, %peer, reason, detail, "{what}; further ones are counted in odradek_connections_closed_total and summarised at most once a minute");
            } else {
                info!(shard = stats.shard, %peer, reason, detail, "{what}; further ones are counted in odradek_connections_closed_total and summarised at most once a minute");
            }
            return true;
        }
        c.unlogged.fetch_add(1, Relaxed);
        let last = c.last_line_ms.load(Relaxed);
        let due = now_ms.saturating_sub(last) >= self.interval.as_millis() as u64;
        // One shard wins the line; the others keep counting into the next one.
        if !due || c.last_line_ms.compare_exchange(last, now_ms, Relaxed, Relaxed).is_err() {
            return false;
        }
        let count = c.unlogged.swap(0, Relaxed);
        let secs = (now_ms - last) / 1000;
        let reason = class.label();
        if class.is_warning() {
            warn!(
                reason,
                count,
                secs,
                "{count} more connections closed in the last {secs} s: {}",
                class.explanation()
            );
        } else {
            info!(
                reason,
                count,
                secs,
                "{count} more connections closed in the last {secs} s: {}",
                class.explanation()
            );
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> SocketAddr {
        "127.0.0.1:5000".parse().expect("address")
    }

    #[test]
    fn each_class_is_logged_once_then_summarised() {
        let stats = ShardStats::new(0);
        let log = AbuseLog::with_interval(Duration::from_millis(50));
        assert!(log.closed(&stats, Abuse::SlowRequest, peer(), "a"), "the first is logged");
        for _ in 0..1000 {
            assert!(!log.closed(&stats, Abuse::SlowRequest, peer(), "b"), "the rest are counted");
        }
        assert!(log.closed(&stats, Abuse::Idle, peer(), "c"), "another class has its own first");
        std::thread::sleep(Duration::from_millis(60));
        assert!(log.closed(&stats, Abuse::SlowRequest, peer(), "d"), "a summary once due");
        assert!(!log.closed(&stats, Abuse::SlowRequest, peer(), "e"), "then quiet again");
        let closed = |c: Abuse| stats.connections_closed[c.index()].load(Relaxed);
        assert_eq!(closed(Abuse::SlowRequest), 1003, "every close is counted");
        assert_eq!(closed(Abuse::Idle), 1);
        assert_eq!(closed(Abuse::SlowReader), 0);
        assert_eq!(log.classes[Abuse::SlowRequest.index()].unlogged.load(Relaxed), 1);
    }

    #[test]
    fn labels_are_distinct() {
        let mut labels: Vec<_> = Abuse::ALL.iter().map(|a| a.label()).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), Abuse::ALL.len());
        for (i, a) in Abuse::ALL.iter().enumerate() {
            assert_eq!(a.index(), i, "ALL is in declaration order");
        }
    }
}
