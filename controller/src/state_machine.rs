//! openraft's state machine: applies committed entries to the [`MetadataImage`], publishes each
//! new image, and keeps snapshots of it as files in `<data_dir>/snapshots/`.
//!
//! The image is an `Arc`, copied on write: a batch of applied entries clones it once (the
//! published image is still held by readers), so building a snapshot takes a reference, not a
//! lock, and never stalls the raft core; the snapshot file is written through io_uring. (A
//! persistent map would make that clone cheap for very large images; not needed yet.)

use std::cell::RefCell;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use futures_util::{Stream, StreamExt};
use odradek_storage::{Backend, CompioBackend};
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, RaftSnapshotBuilder};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::controller::Shared;
use crate::image::{CommandResult, MetadataImage};
use crate::log_store::{read_file, write_durably};
use crate::types::{LogId, Snapshot, SnapshotMeta, StoredMembership, TypeConfig};

/// The folder under the data dir that holds snapshot files.
pub const SNAPSHOT_DIR: &str = "snapshots";

/// What a snapshot file (and a snapshot sent over the network) holds.
#[derive(Debug, Serialize, Deserialize)]
struct SnapshotBody {
    last_applied: Option<LogId>,
    membership: StoredMembership,
    image: MetadataImage,
}

#[derive(Debug, Default)]
struct SmState {
    image: Arc<MetadataImage>,
    last_applied: Option<LogId>,
    membership: StoredMembership,
    /// The newest snapshot file and its meta.
    current: Option<(SnapshotMeta, String)>,
}

/// The state machine handed to openraft (one thread; builders share its state).
#[derive(Debug, Clone)]
pub struct StateMachine {
    state: Rc<RefCell<SmState>>,
    dir: PathBuf,
    shared: Arc<Shared>,
}

fn other(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

fn file_name(meta: &SnapshotMeta) -> String {
    let (index, term) = meta.last_log_id.as_ref().map_or((0, 0), |l| (l.index, l.leader_id.term));
    format!("snapshot-{index:020}-{term:020}.json")
}

impl StateMachine {
    /// Loads the newest snapshot in `data_dir/snapshots` (if any) and publishes its image.
    pub async fn open(data_dir: &Path, shared: Arc<Shared>) -> io::Result<Self> {
        let dir = data_dir.join(SNAPSHOT_DIR);
        CompioBackend.create_dir_all(&dir).await?;
        let mut names: Vec<String> = CompioBackend
            .list_dir(&dir)
            .await?
            .into_iter()
            .filter(|n| n.starts_with("snapshot-") && n.ends_with(".json"))
            .collect();
        names.sort();
        let sm = StateMachine { state: Rc::default(), dir, shared };
        if let Some(name) = names.pop() {
            let bytes = read_file(&sm.dir, &name).await?.unwrap_or_default();
            let body: SnapshotBody = serde_json::from_slice(&bytes)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{name}: {e}")))?;
            let meta = SnapshotMeta {
                last_log_id: body.last_applied,
                last_membership: body.membership.clone(),
            };
            info!(snapshot = %name, applied_index = body.image.applied_index, "snapshot loaded");
            sm.install(meta, body, name);
        }
        Ok(sm)
    }

    fn install(&self, meta: SnapshotMeta, body: SnapshotBody, name: String) {
        let image = Arc::new(body.image);
        {
            let mut st = self.state.borrow_mut();
            st.image = image.clone();
            st.last_applied = body.last_applied;
            st.membership = body.membership;
            st.current = Some((meta, name));
        }
        self.shared.publish(image);
    }

    /// Removes snapshot files older than `keep` (names sort by index): a newer one written
    /// meanwhile (an install during a build) stays.
    async fn remove_older(&self, keep: &str) {
        let Ok(names) = CompioBackend.list_dir(&self.dir).await else { return };
        let keep_stem = keep.trim_end_matches(".json");
        for n in names.iter().filter(|n| n.starts_with("snapshot-") && n.as_str() < keep_stem) {
            if let Err(e) = CompioBackend.remove_file(&self.dir.join(n)).await {
                warn!(file = %n, error = %e, "could not remove an old snapshot");
            }
        }
    }
}

/// Builds one snapshot from the image as it was when the builder was made.
#[derive(Debug)]
pub struct SnapshotBuilder {
    sm: StateMachine,
    image: Arc<MetadataImage>,
    last_applied: Option<LogId>,
    membership: StoredMembership,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    type SnapshotData = Vec<u8>;

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        let body = SnapshotBody {
            last_applied: self.last_applied,
            membership: self.membership.clone(),
            image: (*self.image).clone(),
        };
        let bytes = serde_json::to_vec(&body).map_err(other)?;
        let meta = SnapshotMeta {
            last_log_id: self.last_applied,
            last_membership: self.membership.clone(),
        };
        let name = file_name(&meta);
        write_durably(&self.sm.dir, &name, bytes.clone()).await?;
        {
            let mut st = self.sm.state.borrow_mut();
            if st.current.as_ref().is_none_or(|(m, _)| m.last_log_id <= meta.last_log_id) {
                st.current = Some((meta.clone(), name.clone()));
            }
        }
        self.sm.remove_older(&name).await;
        info!(snapshot = %name, bytes = bytes.len(), "snapshot built");
        Ok(Snapshot { meta, snapshot: bytes })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotData = Vec<u8>;
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        let st = self.state.borrow();
        Ok((st.last_applied, st.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin,
    {
        let mut applied = false;
        while let Some(item) = entries.next().await {
            let (entry, responder) = item?;
            let index = entry.log_id.index;
            let reply = {
                let mut st = self.state.borrow_mut();
                let reply = match &entry.payload {
                    EntryPayload::Normal(command) => {
                        Arc::make_mut(&mut st.image).apply(index, command)
                    }
                    EntryPayload::Membership(m) => {
                        st.membership = StoredMembership::new(Some(entry.log_id), m.clone());
                        Arc::make_mut(&mut st.image).applied_index = index;
                        Ok(CommandResult::None)
                    }
                    EntryPayload::Blank => {
                        Arc::make_mut(&mut st.image).applied_index = index;
                        Ok(CommandResult::None)
                    }
                };
                st.last_applied = Some(entry.log_id);
                reply
            };
            applied = true;
            if let Some(r) = responder {
                r.send(reply);
            }
        }
        if applied {
            let image = self.state.borrow().image.clone();
            self.shared.publish(image);
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        let st = self.state.borrow();
        SnapshotBuilder {
            sm: self.clone(),
            image: st.image.clone(),
            last_applied: st.last_applied,
            membership: st.membership.clone(),
        }
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Vec<u8>,
    ) -> Result<(), io::Error> {
        let body: SnapshotBody = serde_json::from_slice(&snapshot)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("snapshot: {e}")))?;
        if body.last_applied != meta.last_log_id {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "snapshot body and meta disagree",
            ));
        }
        let name = file_name(meta);
        write_durably(&self.dir, &name, snapshot).await?;
        info!(snapshot = %name, applied_index = body.image.applied_index, "snapshot installed");
        self.install(meta.clone(), body, name.clone());
        self.remove_older(&name).await;
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        // A newer snapshot (built or installed meanwhile) removes the file this one named:
        // then read the newer one. Bounded: each retry needs another snapshot in between.
        for _ in 0..4 {
            let current = self.state.borrow().current.clone();
            let Some((meta, name)) = current else { return Ok(None) };
            let read = read_file(&self.dir, &name).await;
            let moved = self.state.borrow().current.as_ref().is_some_and(|(_, n)| *n != name);
            match read {
                Ok(Some(bytes)) => return Ok(Some(Snapshot { meta, snapshot: bytes.to_vec() })),
                _ if moved => continue,
                Ok(None) => return Ok(None),
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::other("snapshots kept replacing each other while one was read"))
    }
}
