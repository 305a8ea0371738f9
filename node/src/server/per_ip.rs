//! Kafka's `max.connections.per.ip`: how many client connections one address may hold on the
//! node, with per-address overrides (`max.connections.per.ip.overrides`).
//!
//! The count is the node's, not a shard's: the kernel spreads one host's connections over the
//! shards' `SO_REUSEPORT` listeners, so a limit per shard would let a host hold the limit times
//! the shards. The shards share one small map, locked only to accept or close a connection (a
//! hash lookup, never an await, never I/O) and only when a limit is configured; by default
//! nothing is counted and nothing is locked.
//!
//! **Invariants.** The map holds an entry only for an address with open connections, so it is
//! bounded by the node's connections. Every admitted connection holds a [`Slot`] that gives
//! its count back when dropped, however the connection ends.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

/// The limits, resolved from the configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Limits {
    /// Connections any address may hold (`max_connections_per_ip`); `None` for no limit.
    pub default: Option<u32>,
    /// Addresses with a limit of their own (`max_connections_per_ip_overrides`).
    pub overrides: HashMap<IpAddr, u32>,
}

impl Limits {
    /// The limit for `ip`, `None` where it has none.
    pub fn of(&self, ip: IpAddr) -> Option<u32> {
        self.overrides.get(&ip).copied().or(self.default)
    }
}

/// The node's open connections per address, shared by its shards.
#[derive(Debug, Default)]
pub struct ConnectionsPerIp {
    limits: Limits,
    open: Mutex<HashMap<IpAddr, u32>>,
}

/// A refusal: the address already holds its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub limit: u32,
}

/// One admitted connection's place in the count; dropping it gives the place back.
#[derive(Debug)]
pub struct Slot {
    counted: Option<(Arc<ConnectionsPerIp>, IpAddr)>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some((table, ip)) = self.counted.take() {
            let mut open = table.open.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(n) = open.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    open.remove(&ip);
                }
            }
        }
    }
}

impl ConnectionsPerIp {
    pub fn new(limits: Limits) -> Self {
        Self { limits, open: Mutex::default() }
    }

    /// Counts a new connection from `ip`, or refuses it when the address holds its limit.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, Refused> {
        let Some(limit) = self.limits.of(ip) else {
            return Ok(Slot { counted: None });
        };
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let n = open.get(&ip).copied().unwrap_or(0);
        if n >= limit {
            return Err(Refused { limit });
        }
        open.insert(ip, n + 1);
        Ok(Slot { counted: Some((self.clone(), ip)) })
    }

    /// Connections `ip` holds now (counted only for addresses with a limit).
    pub fn open(&self, ip: IpAddr) -> u32 {
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.get(&ip).copied().unwrap_or(0)
    }
}

/// Parses Kafka's override list, `host:count` pairs separated by commas
/// (`"127.0.0.1:200,10.0.0.5:0,[::1]:50"`). A host that is not an address literal is resolved
/// once, here, and every address it resolves to gets the count (as Kafka resolves it when the
/// configuration is read).
pub fn parse_overrides(raw: &str) -> Result<HashMap<IpAddr, u32>, String> {
    let mut out = HashMap::new();
    for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let bad = |why: &str| format!("max_connections_per_ip_overrides entry `{entry}`: {why}");
        let (host, count) =
            entry.rsplit_once(':').ok_or_else(|| bad("expected HOST:COUNT, e.g. 10.0.0.5:200"))?;
        let count: u32 = count
            .trim()
            .parse()
            .map_err(|_| bad("the count is not a whole number from 0 to 4294967295"))?;
        let host = host.trim();
        let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let ips: Vec<IpAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => {
                use std::net::ToSocketAddrs;
                (host, 0)
                    .to_socket_addrs()
                    .map_err(|e| bad(&format!("cannot resolve {host}: {e}")))?
                    .map(|a| a.ip())
                    .collect()
            }
        };
        if ips.is_empty() {
            return Err(bad(&format!("{host} resolves to no address")));
        }
        for ip in ips {
            out.insert(ip, count);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("an address literal")
    }

    #[test]
    fn no_limit_counts_nothing() {
        let t = Arc::new(ConnectionsPerIp::default());
        let slots: Vec<_> = (0..100).map(|_| t.admit(ip("10.0.0.1")).expect("no limit")).collect();
        assert_eq!(t.open(ip("10.0.0.1")), 0);
        drop(slots);
    }

    #[test]
    fn an_address_holds_its_limit_and_gets_places_back() {
        let limits = Limits { default: Some(2), overrides: HashMap::from([(ip("10.0.0.9"), 0)]) };
        let t = Arc::new(ConnectionsPerIp::new(limits));
        let a = t.admit(ip("10.0.0.1")).expect("first");
        let b = t.admit(ip("10.0.0.1")).expect("second");
        assert_eq!(t.admit(ip("10.0.0.1")).err(), Some(Refused { limit: 2 }));
        // Another address has its own count.
        let c = t.admit(ip("10.0.0.2")).expect("another address");
        // An override of 0 refuses that address outright, and leaves no entry behind.
        assert_eq!(t.admit(ip("10.0.0.9")).err(), Some(Refused { limit: 0 }));
        assert_eq!(t.open.lock().expect("lock").len(), 2);
        drop(a);
        assert_eq!(t.open(ip("10.0.0.1")), 1);
        let _d = t.admit(ip("10.0.0.1")).expect("a place was given back");
        drop((b, c));
        assert_eq!(t.open(ip("10.0.0.2")), 0);
        assert!(!t.open.lock().expect("lock").contains_key(&ip("10.0.0.2")));
    }

    #[test]
    fn overrides_alone_limit_only_their_addresses() {
        let limits = Limits { default: None, overrides: HashMap::from([(ip("10.0.0.9"), 1)]) };
        let t = Arc::new(ConnectionsPerIp::new(limits));
        let _a = t.admit(ip("10.0.0.9")).expect("first");
        assert!(t.admit(ip("10.0.0.9")).is_err());
        let others: Vec<_> = (0..10).map(|_| t.admit(ip("10.0.0.1")).expect("no limit")).collect();
        assert_eq!(others.len(), 10);
        assert_eq!(t.open(ip("10.0.0.1")), 0);
    }

    #[test]
    fn overrides_parse_as_kafka_writes_them() {
        let got = parse_overrides(" 127.0.0.1:200, 10.0.0.5:0,[::1]:50,::2:7 ,").expect("valid");
        assert_eq!(
            got,
            HashMap::from([
                (ip("127.0.0.1"), 200),
                (ip("10.0.0.5"), 0),
                (ip("::1"), 50),
                (ip("::2"), 7)
            ])
        );
        assert_eq!(parse_overrides("").expect("empty"), HashMap::new());
        let got = parse_overrides("localhost:3").expect("a name that resolves");
        assert!(got.keys().any(|a| a.is_loopback()) && got.values().all(|&n| n == 3), "{got:?}");
        for bad in ["10.0.0.5", "10.0.0.5:-1", "10.0.0.5:many", ":5", "no-such-host.invalid:4"] {
            let e = parse_overrides(bad).expect_err(bad);
            assert!(e.contains("max_connections_per_ip_overrides"), "{e}");
        }
    }
}
