//! The data directory's identity, in Kafka's `meta.properties` (version 1): `node.id`, the
//! `cluster.id` it belongs to, and the `directory.id` (KIP-858) generated when the directory
//! was first formatted — the broker's incarnation: a node that comes back under an old id with
//! an empty directory has a new one, and the controller refuses it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use uuid::Uuid;

use crate::runtime::blocking::{ReplaceError, replace_file_now};

/// Kafka's data-directory identity file.
pub const META_PROPERTIES_FILE: &str = "meta.properties";

/// Why `meta.properties` could not be read, written or accepted.
#[derive(Debug, thiserror::Error)]
pub enum MetaPropertiesError {
    #[error("{op} {path}: {source}")]
    Io { op: &'static str, path: PathBuf, source: std::io::Error },
    #[error("{path} is not valid: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("{path} belongs to node {found}, but this node is configured as node {configured}")]
    NodeIdMismatch { path: PathBuf, found: i32, configured: i32 },
    #[error("{path} belongs to cluster {found}, but the controller quorum is cluster {quorum}")]
    ClusterMismatch { path: PathBuf, found: String, quorum: String },
    #[error("writing {0}")]
    Write(#[from] ReplaceError),
}

/// Who a data directory belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirIdentity {
    /// `None` until the node has joined a cluster (a new member of a cluster being formed).
    pub cluster_id: Option<Uuid>,
    /// Generated once, when the directory is first used (also for an upgraded one).
    pub directory_id: Uuid,
}

/// The identity of node `node_id`'s data directory `data_dir`, created if the file does not
/// exist yet with the cluster id `new_file_cluster` gives (the controller's stored one, a new
/// one for a node that initializes a cluster, or `None` for a node that adopts the quorum's).
/// A file written before directory ids existed gets one. A file naming another node id is
/// refused and left as it is.
///
/// Blocking file I/O: call at start-up, before the shards start.
pub fn load_or_create(
    data_dir: &Path,
    node_id: i32,
    new_file_cluster: impl FnOnce() -> Option<Uuid>,
) -> Result<DirIdentity, MetaPropertiesError> {
    let path = data_dir.join(META_PROPERTIES_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let (found, directory) = parse(&path, &text, node_id)?;
            match directory {
                Some(directory_id) => Ok(DirIdentity { cluster_id: found, directory_id }),
                None => {
                    let id = DirIdentity { cluster_id: found, directory_id: random_uuid() };
                    write(data_dir, node_id, id)?;
                    tracing::info!(directory_id = %id.directory_id, "directory id added to meta.properties");
                    Ok(id)
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let id = DirIdentity { cluster_id: new_file_cluster(), directory_id: random_uuid() };
            write(data_dir, node_id, id)?;
            tracing::info!(cluster_id = ?id.cluster_id.map(uuid_base64url), node_id, path = %path.display(), "data directory formatted");
            Ok(id)
        }
        Err(source) => Err(MetaPropertiesError::Io { op: "read", path, source }),
    }
}

/// Records the cluster id the node adopted from the quorum (durably: temp file, fsync,
/// rename, fsync of the directory). Blocking: call from a thread that may block.
pub fn record_cluster_id(
    data_dir: &Path,
    node_id: i32,
    id: DirIdentity,
) -> Result<(), MetaPropertiesError> {
    write(data_dir, node_id, id)?;
    tracing::info!(cluster_id = ?id.cluster_id.map(uuid_base64url), "cluster id recorded in meta.properties");
    Ok(())
}

fn write(data_dir: &Path, node_id: i32, id: DirIdentity) -> Result<(), MetaPropertiesError> {
    let mut text = format!("#Written by odradek\nversion=1\nnode.id={node_id}\n");
    if let Some(c) = id.cluster_id {
        text.push_str(&format!("cluster.id={}\n", uuid_base64url(c)));
    }
    text.push_str(&format!("directory.id={}\n", uuid_base64url(id.directory_id)));
    replace_file_now(&data_dir.join(META_PROPERTIES_FILE), text.as_bytes())?;
    Ok(())
}

/// A random UUID (a new cluster id or directory id).
pub fn random_uuid() -> Uuid {
    Uuid::from_u128(rand::random::<u128>())
}

/// The cluster id and directory id of a `meta.properties` text (Java properties: `key=value`
/// lines, `#` and `!` comments), checked against the configured `node_id`.
fn parse(
    path: &Path,
    text: &str,
    node_id: i32,
) -> Result<(Option<Uuid>, Option<Uuid>), MetaPropertiesError> {
    let invalid = |reason: String| MetaPropertiesError::Invalid { path: path.to_owned(), reason };
    let mut keys: HashMap<&str, &str> = HashMap::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let (k, v) = line
            .split_once(['=', ':'])
            .ok_or_else(|| invalid(format!("line `{line}` is not key=value")))?;
        keys.insert(k.trim(), v.trim());
    }
    // version=1 (KRaft) names the node in node.id; version=0 (ZooKeeper) in broker.id.
    let id_key = match keys.get("version").copied() {
        Some("1") => "node.id",
        Some("0") => "broker.id",
        other => return Err(invalid(format!("version is {other:?}; expected 0 or 1"))),
    };
    let found: i32 = keys
        .get(id_key)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| invalid(format!("no numeric {id_key}")))?;
    if found != node_id {
        return Err(MetaPropertiesError::NodeIdMismatch {
            path: path.to_owned(),
            found,
            configured: node_id,
        });
    }
    let uuid = |key: &str| -> Result<Option<Uuid>, MetaPropertiesError> {
        match keys.get(key) {
            None => Ok(None),
            Some(v) => uuid_from_base64url(v)
                .map(Some)
                .ok_or_else(|| invalid(format!("{key} `{v}` is not a Kafka uuid"))),
        }
    };
    Ok((uuid("cluster.id")?, uuid("directory.id")?))
}

/// A UUID as Kafka writes one: its 16 bytes in unpadded base64url (22 characters).
pub fn uuid_base64url(id: Uuid) -> String {
    let bytes = id.as_bytes();
    let mut out = String::with_capacity(22);
    for chunk in bytes.chunks(3) {
        let mut n = [0u8; 3];
        n[..chunk.len()].copy_from_slice(chunk);
        let v = (u32::from(n[0]) << 16) | (u32::from(n[1]) << 8) | u32::from(n[2]);
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((v >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// The UUID Kafka's `Uuid.fromString` reads from 22 characters of unpadded base64url.
pub fn uuid_from_base64url(s: &str) -> Option<Uuid> {
    if s.len() != 22 {
        return None;
    }
    let mut bits: u128 = 0;
    for (i, c) in s.bytes().enumerate() {
        let v = ALPHABET.iter().position(|a| *a == c)? as u128;
        if i == 21 {
            // 21 characters carry 126 bits; the last one's low 4 bits must be zero.
            if v & 0xF != 0 {
                return None;
            }
            bits = (bits << 2) | (v >> 4);
        } else {
            bits = (bits << 6) | v;
        }
    }
    Some(Uuid::from_u128(bits))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_print_and_parse_as_kafka_does() {
        // Kafka: Uuid.fromString("AAAAAAAAAAAAAAAAAAAAAQ") is 0:1.
        assert_eq!(uuid_base64url(Uuid::from_u128(1)), "AAAAAAAAAAAAAAAAAAAAAQ");
        assert_eq!(uuid_base64url(Uuid::from_u128(u128::MAX)), "_____________________w");
        for n in [0u128, 1, u128::MAX, 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210] {
            let id = Uuid::from_u128(n);
            assert_eq!(uuid_from_base64url(&uuid_base64url(id)), Some(id));
        }
        assert_eq!(
            uuid_from_base64url("MkU3OEVBNTcwNTJENDM2Qg").map(|u| u.as_bytes()[0]),
            Some(0x32)
        );
        for bad in ["", "short", "_____________________x", "AAAAAAAAAAAAAAAAAAAA*Q"] {
            assert_eq!(uuid_from_base64url(bad), None, "{bad:?}");
        }
    }

    fn fresh() -> Option<Uuid> {
        Some(random_uuid())
    }

    #[test]
    fn meta_properties_are_created_once_and_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let id = load_or_create(dir.path(), 0, fresh).expect("create");
        assert!(id.cluster_id.is_some());
        assert_eq!(load_or_create(dir.path(), 0, fresh).expect("read"), id, "stable");
        let path = dir.path().join(META_PROPERTIES_FILE);
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.contains("version=1\n") && text.contains("node.id=0\n"), "{text}");
        let other = load_or_create(dir.path(), 3, fresh);
        assert!(matches!(other, Err(MetaPropertiesError::NodeIdMismatch { found: 0, .. })));
        assert_eq!(std::fs::read_to_string(&path).expect("read"), text, "left as it was");
        // Kafka's own file, from before directory ids: one is added, the cluster id kept.
        let kafka = "#\n#Fri Dec 04 10:00:00 UTC 2026\nnode.id=0\nversion=1\ncluster.id=MkU3OEVBNTcwNTJENDM2Qg\n";
        std::fs::write(&path, kafka).expect("write");
        let upgraded = load_or_create(dir.path(), 0, fresh).expect("kafka's");
        assert_eq!(upgraded.cluster_id, uuid_from_base64url("MkU3OEVBNTcwNTJENDM2Qg"));
        assert_eq!(load_or_create(dir.path(), 0, fresh).expect("again"), upgraded);
        for bad in [
            "version=2\nnode.id=0\ncluster.id=x\n",
            "junk\n",
            "version=1\nnode.id=0\ncluster.id=x\n",
        ] {
            std::fs::write(&path, bad).expect("write");
            assert!(
                matches!(
                    load_or_create(dir.path(), 0, fresh),
                    Err(MetaPropertiesError::Invalid { .. })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_joining_node_records_the_cluster_id_later() {
        let dir = tempfile::tempdir().expect("tempdir");
        let id = load_or_create(dir.path(), 2, || None).expect("create");
        assert_eq!(id.cluster_id, None);
        let joined = DirIdentity { cluster_id: Some(Uuid::from_u128(7)), ..id };
        record_cluster_id(dir.path(), 2, joined).expect("record");
        assert_eq!(load_or_create(dir.path(), 2, || None).expect("read"), joined);
    }
}
