//! A single node's metadata from before the controller quorum: `topics.json` (the topic
//! catalogue) and `producer-ids` (the end of the last reserved producer-id block). Read once,
//! when such a data directory first starts as a quorum of one; the quorum then holds the same
//! topics (same ids, partition counts and configs) and hands out producer ids above the old
//! ones, and both files are renamed to `*.upgraded` as a backup.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use odradek_controller::Command;
use serde::Deserialize;
use uuid::Uuid;

use super::MetadataStore;
use super::quorum::QuorumStore;

/// The old catalogue file in the data directory.
pub const CATALOGUE_FILE: &str = "topics.json";
/// The old producer-id reservation file.
pub const PRODUCER_IDS_FILE: &str = "producer-ids";
/// What an upgraded file is renamed to (its name plus this).
pub const UPGRADED_SUFFIX: &str = ".upgraded";

/// One topic of the old catalogue.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct LegacyTopic {
    pub name: String,
    pub id: Uuid,
    /// One entry per partition (the shard that owned it).
    pub shards: Vec<u32>,
    #[serde(default)]
    pub configs: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
struct LegacyCatalogue {
    topics: BTreeMap<String, LegacyTopic>,
}

/// What a single node's data directory held before the quorum.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Legacy {
    pub topics: Vec<LegacyTopic>,
    /// Producer ids below this were (or may have been) handed out.
    pub producer_ids_end: Option<i64>,
}

/// Why the old files could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct LegacyError {
    pub path: PathBuf,
    pub reason: String,
}

/// The old files of `data_dir`, if any is there. Blocking: call at start-up.
pub fn read(data_dir: &Path) -> Result<Option<Legacy>, LegacyError> {
    let catalogue = data_dir.join(CATALOGUE_FILE);
    let ids = data_dir.join(PRODUCER_IDS_FILE);
    let err = |path: &Path, reason: String| LegacyError { path: path.to_owned(), reason };
    let topics = match std::fs::read(&catalogue) {
        Ok(bytes) => {
            let c: LegacyCatalogue =
                serde_json::from_slice(&bytes).map_err(|e| err(&catalogue, e.to_string()))?;
            Some(c.topics.into_values().collect())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(err(&catalogue, e.to_string())),
    };
    let producer_ids_end = match std::fs::read_to_string(&ids) {
        Ok(text) => Some(
            text.trim()
                .parse::<i64>()
                .map_err(|_| err(&ids, format!("`{}` is not a producer id", text.trim())))?,
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(err(&ids, e.to_string())),
    };
    if topics.is_none() && producer_ids_end.is_none() {
        return Ok(None);
    }
    Ok(Some(Legacy { topics: topics.unwrap_or_default(), producer_ids_end }))
}

/// Makes the quorum hold what `legacy` says: each topic with its id, partition count and
/// configs (one replica: this node's), and producer ids above the old ones. Topics the
/// quorum already has with the same id are left alone (an upgrade interrupted by a crash
/// resumes); one with the same name and another id stops the upgrade.
pub async fn upgrade(store: &QuorumStore, legacy: &Legacy) -> Result<(), String> {
    store.refresh();
    for t in &legacy.topics {
        if let Some(have) = store.snapshot().topic(&t.name) {
            if have.id == t.id {
                continue;
            }
            return Err(format!(
                "topic `{}` exists in the quorum with id {} but topics.json says {}",
                t.name, have.id, t.id
            ));
        }
        let partitions = i32::try_from(t.shards.len()).map_err(|_| "too many partitions")?;
        let command = Command::CreateTopic {
            name: t.name.clone(),
            topic_id: t.id,
            partitions,
            replication_factor: 1,
            configs: t.configs.clone(),
        };
        store.propose_raw(command).await.map_err(|e| format!("topic `{}`: {e}", t.name))?;
        tracing::info!(topic = %t.name, id = %t.id, partitions, "topic upgraded into the controller quorum");
    }
    if let Some(at_least) = legacy.producer_ids_end {
        store
            .propose_raw(Command::AdvanceProducerIds { at_least })
            .await
            .map_err(|e| format!("producer ids: {e}"))?;
    }
    Ok(())
}

/// Renames the old files aside once the quorum holds what they said. Blocking.
pub fn retire(data_dir: &Path) -> std::io::Result<()> {
    for name in [CATALOGUE_FILE, PRODUCER_IDS_FILE] {
        let from = data_dir.join(name);
        let to = data_dir.join(format!("{name}{UPGRADED_SUFFIX}"));
        match std::fs::rename(&from, &to) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    std::fs::File::open(data_dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_files_are_read_and_retired() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(read(dir.path()).expect("nothing"), None);
        let json = r#"{"topics":{"a":{"name":"a","id":"00000000-0000-0000-0000-000000000007","shards":[0,1,0],"configs":{"retention.ms":"1000"}}}}"#;
        std::fs::write(dir.path().join(CATALOGUE_FILE), json).expect("write");
        std::fs::write(dir.path().join(PRODUCER_IDS_FILE), "3000\n").expect("write");
        let legacy = read(dir.path()).expect("read").expect("some");
        assert_eq!(legacy.producer_ids_end, Some(3000));
        assert_eq!(legacy.topics.len(), 1);
        let t = &legacy.topics[0];
        assert_eq!((t.name.as_str(), t.id, t.shards.len()), ("a", Uuid::from_u128(7), 3));
        assert_eq!(t.configs.get("retention.ms").map(String::as_str), Some("1000"));
        retire(dir.path()).expect("retire");
        assert_eq!(read(dir.path()).expect("gone"), None);
        assert!(dir.path().join("topics.json.upgraded").exists());
        std::fs::write(dir.path().join(CATALOGUE_FILE), "{not json").expect("write");
        assert!(read(dir.path()).is_err());
    }
}
