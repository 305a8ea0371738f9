//! Topic-level configuration under Kafka's names and with Kafka's defaults.
//!
//! A topic stores only the keys that were set for it (its overrides); everything else takes the
//! default in [`TOPIC_CONFIGS`]. [`log_config`] turns overrides into the storage engine's
//! [`LogConfig`]. Every key listed here changes what the node does; a key Kafka knows but this
//! node would ignore is refused (`INVALID_CONFIG`), so that nobody relies on a setting that has
//! no effect.

use std::collections::BTreeMap;

use odradek_storage::LogConfig;
use odradek_storage::batch::TimestampType;
use odradek_storage::config::{CleanupPolicy, FlushPolicy};

/// What values a key takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A 64-bit integer at or above the bound (Kafka's `-1` for "no limit" is its own bound).
    Long { min: i64 },
    /// One of a fixed set of words.
    Choice(&'static [&'static str]),
    /// A comma-separated non-empty subset of a fixed set of words.
    List(&'static [&'static str]),
}

/// One topic-level key: its Kafka name, default, the values it takes and what it does.
#[derive(Debug, Clone, Copy)]
pub struct ConfigDef {
    pub name: &'static str,
    pub default: &'static str,
    pub kind: Kind,
    pub doc: &'static str,
}

const LONG_MAX: &str = "9223372036854775807";

/// The topic-level keys this node implements, with Kafka 4's defaults.
pub const TOPIC_CONFIGS: &[ConfigDef] = &[
    ConfigDef {
        name: "cleanup.policy",
        default: "delete",
        kind: Kind::List(&["delete", "compact"]),
        doc: "delete old segments by retention, compact by key, or both",
    },
    ConfigDef {
        name: "compression.type",
        default: "producer",
        kind: Kind::Choice(&["producer"]),
        doc: "batches are stored as the producer compressed them",
    },
    ConfigDef {
        name: "delete.retention.ms",
        default: "86400000",
        kind: Kind::Long { min: 0 },
        doc: "how long compaction keeps tombstones",
    },
    ConfigDef {
        name: "flush.messages",
        default: LONG_MAX,
        kind: Kind::Long { min: 1 },
        doc: "fsync after this many records even without acks=all",
    },
    ConfigDef {
        name: "flush.ms",
        default: LONG_MAX,
        kind: Kind::Long { min: 0 },
        doc: "fsync at least this often even without acks=all",
    },
    ConfigDef {
        name: "index.interval.bytes",
        default: "4096",
        kind: Kind::Long { min: 0 },
        doc: "bytes between offset index entries",
    },
    ConfigDef {
        name: "max.message.bytes",
        default: "1048588",
        kind: Kind::Long { min: 0 },
        doc: "largest record batch accepted",
    },
    ConfigDef {
        name: "message.timestamp.type",
        default: "CreateTime",
        kind: Kind::Choice(&["CreateTime", "LogAppendTime"]),
        doc: "keep the producer's timestamps or stamp batches on append",
    },
    ConfigDef {
        name: "min.insync.replicas",
        default: "1",
        kind: Kind::Long { min: 1 },
        doc: "the smallest ISR that takes acks=all writes (NOT_ENOUGH_REPLICAS below it)",
    },
    ConfigDef {
        name: "retention.bytes",
        default: "-1",
        kind: Kind::Long { min: -1 },
        doc: "delete closed segments beyond this size (-1: no limit)",
    },
    ConfigDef {
        name: "retention.ms",
        default: "604800000",
        kind: Kind::Long { min: -1 },
        doc: "delete closed segments older than this (-1: keep forever)",
    },
    ConfigDef {
        name: "segment.bytes",
        default: "1073741824",
        kind: Kind::Long { min: 14 },
        doc: "roll a new segment at this size",
    },
    ConfigDef {
        name: "segment.ms",
        default: "604800000",
        kind: Kind::Long { min: 1 },
        doc: "roll a new segment at this age",
    },
    ConfigDef {
        name: "unclean.leader.election.enable",
        default: "false",
        kind: Kind::Choice(&["true", "false"]),
        doc: "elect an out-of-sync replica when no in-sync one is live (may lose records)",
    },
    ConfigDef {
        name: "write.caching",
        default: "false",
        kind: Kind::Choice(&["true", "false"]),
        doc: "answer acks=all once every in-sync replica has the batch, without the leader's fsync",
    },
];

/// The definition of `name`, if this node implements it.
pub fn def(name: &str) -> Option<&'static ConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.name == name)
}

/// Checks one key and value; the error is the message for `INVALID_CONFIG`.
pub fn validate(name: &str, value: &str) -> Result<(), String> {
    let Some(d) = def(name) else {
        return Err(format!("unknown or unsupported topic config `{name}`"));
    };
    match d.kind {
        Kind::Long { min } => match value.trim().parse::<i64>() {
            Ok(v) if v >= min => Ok(()),
            Ok(v) => Err(format!("{name} must be at least {min}, not {v}")),
            Err(_) => Err(format!("{name} must be an integer, not `{value}`")),
        },
        Kind::Choice(words) if words.contains(&value.trim()) => Ok(()),
        Kind::Choice(words) => Err(format!("{name} must be one of {words:?}, not `{value}`")),
        Kind::List(words) => {
            let items: Vec<&str> = value.split(',').map(str::trim).collect();
            if items.iter().all(|i| words.contains(i)) && !value.trim().is_empty() {
                Ok(())
            } else {
                Err(format!("{name} must be a list of {words:?}, not `{value}`"))
            }
        }
    }
}

/// The effective value of `name` for a topic with `overrides` (`None` for an unknown key).
pub fn value<'a>(overrides: &'a BTreeMap<String, String>, name: &str) -> Option<&'a str> {
    overrides.get(name).map(String::as_str).or_else(|| def(name).map(|d| d.default))
}

fn long(overrides: &BTreeMap<String, String>, name: &str) -> i64 {
    value(overrides, name).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

/// A limit where Kafka's `-1` (or `Long.MAX_VALUE`) means none.
fn limit(v: i64) -> Option<u64> {
    (v >= 0 && v != i64::MAX).then_some(v as u64)
}

/// The storage engine's configuration for a topic: `base` (the node's engine settings) with the
/// topic's Kafka keys applied. Overrides are validated when they are set, so a value that does
/// not parse here cannot occur; it would fall back to 0 / no limit.
pub fn log_config(overrides: &BTreeMap<String, String>, base: &LogConfig) -> LogConfig {
    let policy = value(overrides, "cleanup.policy").unwrap_or("delete");
    LogConfig {
        segment_bytes: long(overrides, "segment.bytes").max(14) as u64,
        segment_ms: long(overrides, "segment.ms").max(1) as u64,
        index_interval_bytes: long(overrides, "index.interval.bytes").max(0) as u64,
        max_message_bytes: usize::try_from(long(overrides, "max.message.bytes")).unwrap_or(0),
        retention_ms: limit(long(overrides, "retention.ms")),
        retention_bytes: limit(long(overrides, "retention.bytes")),
        cleanup_policy: CleanupPolicy {
            delete: policy.contains("delete"),
            compact: policy.contains("compact"),
        },
        delete_retention_ms: long(overrides, "delete.retention.ms").max(0) as u64,
        timestamp_type: if value(overrides, "message.timestamp.type") == Some("LogAppendTime") {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        },
        flush: FlushPolicy {
            messages: limit(long(overrides, "flush.messages")),
            ms: limit(long(overrides, "flush.ms")),
        },
        ..base.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_storage_engine_defaults() {
        let base = LogConfig::default();
        let c = log_config(&BTreeMap::new(), &base);
        assert_eq!(c.segment_bytes, base.segment_bytes);
        assert_eq!(c.retention_ms, base.retention_ms);
        assert_eq!(c.retention_bytes, None);
        assert_eq!(c.max_message_bytes, base.max_message_bytes);
        assert_eq!(c.flush, FlushPolicy { messages: None, ms: None });
        assert_eq!(c.cleanup_policy, CleanupPolicy::DELETE);
        for d in TOPIC_CONFIGS {
            validate(d.name, d.default).unwrap_or_else(|e| panic!("default of {}: {e}", d.name));
        }
    }

    #[test]
    fn overrides_apply_and_bad_values_are_refused() {
        let mut o = BTreeMap::new();
        o.insert("cleanup.policy".to_owned(), "compact,delete".to_owned());
        o.insert("retention.ms".to_owned(), "-1".to_owned());
        o.insert("message.timestamp.type".to_owned(), "LogAppendTime".to_owned());
        let c = log_config(&o, &LogConfig::default());
        assert!(c.cleanup_policy.compact && c.cleanup_policy.delete);
        assert_eq!(c.retention_ms, None);
        assert_eq!(c.timestamp_type, TimestampType::LogAppendTime);
        assert!(validate("retention.ms", "-2").is_err());
        assert!(validate("retention.ms", "soon").is_err());
        assert!(validate("cleanup.policy", "delete,shred").is_err());
        assert!(validate("min.insync.replicas", "2").is_ok());
        assert!(validate("min.insync.replicas", "0").is_err());
        assert!(validate("write.caching", "maybe").is_err());
        assert!(validate("preallocate", "true").is_err(), "ignored keys");
        assert!(validate("segment.bytes", "1048576").is_ok());
    }
}
