//! Client quotas (KIP-13, KIP-55, KIP-124, KIP-219): `producer_byte_rate`,
//! `consumer_byte_rate` and `request_percentage` per user, client id, or both, with defaults,
//! enforced per broker across its shards.
//!
//! Each quota that applies to a connection is a [`Sensor`] shared by every connection (on any
//! shard) of the same entity: a virtual-clock rate limiter (GCRA) in one atomic, so recording
//! is a compare-and-swap, never a lock. A request over the rate is answered at once with
//! `throttle_time_ms`, and the connection is then muted (no request read) for that long
//! (KIP-219), so the client is held to the rate whether or not it honours the field.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use odradek_controller::{QuotaEntity, QuotaRecord};

/// Credit a sensor may bank: bursts up to this much above the rate pass unthrottled (Kafka
/// measures rates over 11 one-second windows; one second of credit keeps a 30 s average within
/// a few percent of the quota).
const BURST: Duration = Duration::from_secs(1);
/// Longest a connection is muted for one request (Kafka caps throttle time at the quota window).
pub const THROTTLE_MAX: Duration = Duration::from_secs(30);
/// Most sensors held; unused ones are dropped when the registry is full.
const SENSORS_MAX: usize = 100_000;

/// What a quota limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `producer_byte_rate`: bytes of produce requests per second.
    Produce,
    /// `consumer_byte_rate`: bytes of fetch responses per second.
    Fetch,
    /// `request_percentage`: request handling time, in percent of one thread.
    Request,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Produce, Kind::Fetch, Kind::Request];

    pub fn key(self) -> &'static str {
        match self {
            Kind::Produce => "producer_byte_rate",
            Kind::Fetch => "consumer_byte_rate",
            Kind::Request => "request_percentage",
        }
    }
}

/// One entity's limiter: the theoretical arrival time of the next unit, in nanoseconds since
/// the registry's epoch.
#[derive(Debug, Default)]
pub struct Sensor {
    tat_ns: AtomicU64,
}

impl Sensor {
    /// Records `amount` at `rate` per second at time `now_ns`; how long the client must wait
    /// to be back within its quota.
    fn record(&self, amount: f64, rate: f64, now_ns: u64) -> Duration {
        let cost_ns = (amount / rate * 1e9).clamp(0.0, 1e15) as u64;
        let mut old = self.tat_ns.load(Ordering::Relaxed);
        let new = loop {
            let new = old.max(now_ns).saturating_add(cost_ns);
            match self.tat_ns.compare_exchange_weak(old, new, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => break new,
                Err(seen) => old = seen,
            }
        };
        let allowed = now_ns.saturating_add(BURST.as_nanos() as u64);
        Duration::from_nanos(new.saturating_sub(allowed)).min(THROTTLE_MAX)
    }
}

/// Which sensor: the kind and the actual user and client id of the entity that matched
/// (`None` where the entity leaves that part out).
type SensorKey = (Kind, Option<String>, Option<String>);

/// Every sensor of the broker.
#[derive(Debug)]
pub struct Registry {
    epoch: Instant,
    sensors: Mutex<HashMap<SensorKey, Arc<Sensor>>>,
}

impl Default for Registry {
    fn default() -> Self {
        Self { epoch: Instant::now(), sensors: Mutex::new(HashMap::new()) }
    }
}

/// The quotas that apply to one connection, bound when its principal, client id or the
/// cluster's quotas change.
#[derive(Debug, Clone)]
pub struct Bound {
    /// The quotas these were resolved from (compared by pointer).
    pub source: Arc<Vec<QuotaRecord>>,
    pub user: String,
    pub client_id: String,
    limits: Vec<(Kind, f64, Arc<Sensor>)>,
}

impl Bound {
    pub fn is_for(&self, source: &Arc<Vec<QuotaRecord>>, user: &str, client_id: &str) -> bool {
        Arc::ptr_eq(&self.source, source) && self.user == user && self.client_id == client_id
    }
}

/// The entities that may set a quota for (user, client), most specific first (KIP-55's
/// order): the first that sets a key decides it.
fn precedence(user: &str, client: &str) -> [QuotaEntity; 8] {
    let u = || Some(Some(user.to_owned()));
    let c = || Some(Some(client.to_owned()));
    [
        QuotaEntity { user: u(), client_id: c() },
        QuotaEntity { user: u(), client_id: Some(None) },
        QuotaEntity { user: u(), client_id: None },
        QuotaEntity { user: Some(None), client_id: c() },
        QuotaEntity { user: Some(None), client_id: Some(None) },
        QuotaEntity { user: Some(None), client_id: None },
        QuotaEntity { user: None, client_id: c() },
        QuotaEntity { user: None, client_id: Some(None) },
    ]
}

impl Registry {
    /// Resolves the quotas of (user, client_id) against `quotas`.
    pub fn bind(&self, quotas: &Arc<Vec<QuotaRecord>>, user: &str, client_id: &str) -> Bound {
        let mut limits = Vec::new();
        if !quotas.is_empty() {
            let order = precedence(user, client_id);
            for kind in Kind::ALL {
                let found = order.iter().find_map(|e| {
                    let record = quotas.binary_search_by(|q| q.entity.cmp(e)).ok()?;
                    let value: f64 = quotas[record].values.get(kind.key())?.parse().ok()?;
                    Some((e, value))
                });
                if let Some((entity, value)) = found {
                    let rate = if kind == Kind::Request { value / 100.0 } else { value };
                    let key = (
                        kind,
                        entity.user.as_ref().map(|_| user.to_owned()),
                        entity.client_id.as_ref().map(|_| client_id.to_owned()),
                    );
                    limits.push((kind, rate, self.sensor(key)));
                }
            }
        }
        Bound {
            source: quotas.clone(),
            user: user.to_owned(),
            client_id: client_id.to_owned(),
            limits,
        }
    }

    fn sensor(&self, key: SensorKey) -> Arc<Sensor> {
        let mut sensors = self.sensors.lock().unwrap_or_else(|p| p.into_inner());
        if sensors.len() >= SENSORS_MAX && !sensors.contains_key(&key) {
            sensors.retain(|_, s| Arc::strong_count(s) > 1);
        }
        sensors.entry(key).or_default().clone()
    }

    /// Records a request's use under `bound`: the longest throttle any of its quotas asks for.
    pub fn record(&self, bound: &Bound, kind: Kind, amount: f64) -> Duration {
        let now_ns = self.epoch.elapsed().as_nanos() as u64;
        bound
            .limits
            .iter()
            .filter(|(k, _, _)| *k == kind)
            .map(|(_, rate, sensor)| sensor.record(amount, *rate, now_ns))
            .max()
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(
        user: Option<Option<&str>>,
        client: Option<Option<&str>>,
        key: &str,
        v: &str,
    ) -> QuotaRecord {
        QuotaRecord {
            entity: QuotaEntity {
                user: user.map(|u| u.map(str::to_owned)),
                client_id: client.map(|c| c.map(str::to_owned)),
            },
            values: [(key.to_owned(), v.to_owned())].into_iter().collect(),
        }
    }

    #[test]
    fn the_most_specific_entity_decides_and_defaults_are_per_user() {
        let mut quotas = vec![
            record(Some(None), None, "producer_byte_rate", "1000"),
            record(Some(Some("bob")), None, "producer_byte_rate", "5000"),
            record(None, Some(Some("etl")), "consumer_byte_rate", "700"),
        ];
        quotas.sort_by(|a, b| a.entity.cmp(&b.entity));
        let quotas = Arc::new(quotas);
        let r = Registry::default();
        let bob = r.bind(&quotas, "bob", "app");
        assert_eq!(bob.limits.len(), 1);
        assert_eq!(bob.limits[0].1, 5000.0);
        let carol = r.bind(&quotas, "carol", "etl");
        assert_eq!(carol.limits.len(), 2, "user default and client id");
        let dave = r.bind(&quotas, "dave", "x");
        assert!(!Arc::ptr_eq(&carol.limits[0].2, &dave.limits[0].2), "a default is per user");
        let carol2 = r.bind(&quotas, "carol", "other");
        assert!(Arc::ptr_eq(&carol.limits[0].2, &carol2.limits[0].2), "shared by the user");
    }

    #[test]
    fn a_sensor_holds_the_rate_after_a_burst() {
        let s = Sensor::default();
        // 1000 B/s: the first second's worth passes, the next second's is throttled by ~1 s.
        assert_eq!(s.record(1000.0, 1000.0, 0), Duration::ZERO);
        assert_eq!(s.record(1000.0, 1000.0, 0), Duration::from_secs(1));
        // After waiting it out, the credit is back.
        assert_eq!(s.record(500.0, 1000.0, 3_000_000_000), Duration::ZERO);
        // Over 30 s at twice the rate the throttle grows with the excess.
        let t = s.record(60_000.0, 1000.0, 4_000_000_000);
        assert_eq!(t, THROTTLE_MAX);
    }
}
