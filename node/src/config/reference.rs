//! The configuration reference (`docs/CONFIGURATION.md`), generated from the code so that it
//! cannot drift: every `odradek serve` flag with its environment variable, config-file key,
//! default and description comes from the clap definition of [`ServeArgs`]; the keys only a
//! config file sets come from [`FILE_ONLY`]. A test checks that these two together are
//! exactly the fields the config file accepts (read from `FileConfig`'s own deserializer), and
//! that the committed file equals what [`markdown`] renders.

use clap::{Args, Command};
use serde::Deserialize;

use super::{FileConfig, ServeArgs};

/// A key only the config file sets: (key, default, description).
pub const FILE_ONLY: &[(&str, &str, &str)] = &[
    (
        "connections_max_idle_ms",
        "600000",
        "Close a connection with no complete request for this long (Kafka's `connections.max.idle.ms`); also bounds a client that stalls halfway through a request.",
    ),
    (
        "connections_per_shard_max",
        "10000",
        "Connections one shard holds; a new one beyond it is closed at once.",
    ),
    (
        "max_connections_per_ip",
        "2147483647",
        "Connections one client address may hold on the node (Kafka's `max.connections.per.ip`; the default is no limit); a new one beyond it is closed at once. 0 refuses every address that has no override.",
    ),
    (
        "max_connections_per_ip_overrides",
        "\"\"",
        "Per-address limits in Kafka's `max.connections.per.ip.overrides` form, `\"HOST:COUNT,HOST:COUNT\"` (e.g. `\"10.0.0.5:200,[::1]:50\"`); a host name is resolved once at start-up.",
    ),
    (
        "queued_max_request_bytes",
        "536870912",
        "Request bytes the node's connections hold at once while reading and handling requests larger than 64 KiB, split evenly over the shards (Kafka's `queued.max.request.bytes`); a large request waits while its shard's share is taken, and one is always admitted alone.",
    ),
    (
        "fetch_cache_bytes",
        "1/256 of RAM over the shards, within 16–128 MiB (autotune)",
        "Memory per shard for the recent-batch cache: the batches appended last, served to tailing consumers without a disk read.",
    ),
    (
        "fetch_disk_reads",
        "\"splice\"",
        "How records read from segment files reach the socket: `\"splice\"` (io_uring splice, no copy through user space) or `\"copy\"` (read into memory, then write).",
    ),
    (
        "fetch_prefetch_bytes",
        "4194304",
        "After a fetch from disk, ask the kernel to read this much further ahead (0 = never).",
    ),
    (
        "direct_writes",
        "false",
        "Write segment data with `O_DIRECT` instead of through the page cache (then an acks=1 reply waits for the device).",
    ),
    (
        "writeback_bytes",
        "1048576",
        "Start the device's writeback of a segment every this many written bytes, so the kernel's flusher never writes gigabytes at once (0 = leave it to the kernel).",
    ),
    (
        "page_cache_window_bytes",
        "4194304",
        "Written bytes kept in the page cache per partition; older ones are dropped once synced or written back (0 = never drop).",
    ),
    ("pin_shards", "true", "Pin each shard thread to its own core."),
    (
        "offsets_retention_ms",
        "604800000",
        "Committed offsets of a group without members expire this long after their commit (Kafka's `offsets.retention.minutes`).",
    ),
    (
        "offsets_retention_check_interval_ms",
        "600000",
        "How often expired committed offsets are looked for (Kafka's `offsets.retention.check.interval.ms`).",
    ),
    (
        "group_initial_rebalance_delay_ms",
        "3000",
        "A group starting from empty waits this long for more members before its first rebalance (Kafka's `group.initial.rebalance.delay.ms`).",
    ),
    (
        "group_min_session_timeout_ms",
        "6000",
        "Smallest session timeout a member may ask for (Kafka's `group.min.session.timeout.ms`).",
    ),
    (
        "group_max_session_timeout_ms",
        "1800000",
        "Largest session timeout a member may ask for (Kafka's `group.max.session.timeout.ms`).",
    ),
];

/// One setting as the reference lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// The config-file key (also the flag's name in snake_case).
    pub key: String,
    pub flag: Option<String>,
    pub env: Option<String>,
    pub default: String,
    pub description: String,
}

/// Every flag of `odradek serve` that is also a file key (all but `--config` and hidden ones).
pub fn flags() -> Vec<Setting> {
    let cmd = ServeArgs::augment_args(Command::new("serve"));
    cmd.get_arguments()
        .filter(|a| !a.is_hide_set())
        .filter_map(|a| {
            let long = a.get_long()?;
            let help = a.get_help().map(ToString::to_string).unwrap_or_default();
            let (description, default) = match help.rfind("[default: ") {
                Some(at) => {
                    let default = help[at + "[default: ".len()..].trim_end_matches(['.', ' ']);
                    let default = default.strip_suffix(']').unwrap_or(default);
                    (help[..at].trim().to_owned(), default.to_owned())
                }
                None => (help.trim().to_owned(), "none".to_owned()),
            };
            Some(Setting {
                key: long.replace('-', "_"),
                flag: Some(format!("--{long}")),
                env: a.get_env().map(|e| e.to_string_lossy().into_owned()),
                default,
                description: description.replace('\n', " "),
            })
        })
        .collect()
}

/// Every setting: the flags, then the file-only keys.
pub fn settings() -> Vec<Setting> {
    let mut all: Vec<Setting> = flags().into_iter().filter(|s| s.key != "config").collect();
    all.extend(FILE_ONLY.iter().map(|(key, default, description)| Setting {
        key: (*key).to_owned(),
        flag: None,
        env: None,
        default: (*default).to_owned(),
        description: (*description).to_owned(),
    }));
    all
}

/// The keys the config file accepts, as its deserializer names them.
pub fn file_keys() -> Vec<&'static str> {
    let mut names = FieldNames(&[]);
    let _ = FileConfig::deserialize(&mut names);
    names.0.to_vec()
}

/// A deserializer that only records the field names a struct asks for (serde passes them to
/// `deserialize_struct`), then stops.
struct FieldNames(&'static [&'static str]);

#[derive(Debug)]
struct Stop;

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("field names recorded")
    }
}

impl std::error::Error for Stop {}

impl serde::de::Error for Stop {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        Stop
    }
}

impl<'de> serde::Deserializer<'de> for &mut FieldNames {
    type Error = Stop;

    fn deserialize_struct<V: serde::de::Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Stop> {
        self.0 = fields;
        Err(Stop)
    }

    fn deserialize_any<V: serde::de::Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Stop> {
        Err(Stop)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

/// The reference as Markdown: what `docs/CONFIGURATION.md` holds.
pub fn markdown() -> String {
    let mut out = String::from(
        "# Configuration reference\n\n\
         Generated from the code (`node/src/config/reference.rs`; a test fails when this file \
         differs: `ODRADEK_BLESS=1 cargo test -p odradek-node --lib config::reference` \
         rewrites it). Do not edit by hand.\n\n\
         `odradek serve` takes every setting from, in rising order of precedence: the \
         defaults below, a TOML file given with `--config FILE` (keys in snake_case; an \
         unknown key is an error), `ODRADEK_*` environment variables, and flags.\n\n\
         ## Flags (also environment variables and config-file keys)\n\n\
         | config-file key | flag | environment | default | what |\n\
         |---|---|---|---|---|\n",
    );
    let cell = |s: &str| s.replace('|', "\\|");
    for s in flags().into_iter().filter(|s| s.key != "config") {
        out.push_str(&format!(
            "| `{}` | `{}` | `{}` | {} | {} |\n",
            s.key,
            s.flag.as_deref().unwrap_or(""),
            s.env.as_deref().unwrap_or(""),
            cell(&s.default),
            cell(&s.description),
        ));
    }
    out.push_str(
        "\n`--config` itself is a flag and an environment variable only.\n\n\
         ## Config-file keys only\n\n\
         | key | default | what |\n|---|---|---|\n",
    );
    for (key, default, description) in FILE_ONLY {
        out.push_str(&format!("| `{key}` | {} | {} |\n", cell(default), cell(description)));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    use super::*;

    #[test]
    fn the_reference_lists_exactly_the_keys_the_file_accepts() {
        let documented: BTreeSet<String> = settings().into_iter().map(|s| s.key).collect();
        let accepted: BTreeSet<String> = file_keys().into_iter().map(str::to_owned).collect();
        assert!(accepted.len() > 20, "the field names were read: {accepted:?}");
        assert_eq!(documented, accepted);
    }

    #[test]
    fn every_flag_has_an_environment_variable_and_a_description() {
        for s in flags() {
            let env = s.env.as_deref().unwrap_or_default();
            assert_eq!(env, format!("ODRADEK_{}", s.key.to_uppercase()), "{}", s.key);
            assert!(!s.description.is_empty(), "{}", s.key);
        }
    }

    #[test]
    fn docs_configuration_md_is_up_to_date() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/CONFIGURATION.md");
        let want = markdown();
        if std::env::var_os("ODRADEK_BLESS").is_some() {
            std::fs::write(&path, &want).expect("write docs/CONFIGURATION.md");
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            have == want,
            "docs/CONFIGURATION.md is stale: run `ODRADEK_BLESS=1 cargo test -p odradek-node --lib config::reference`"
        );
    }
}
