//! The partitions one shard owns, opened on first use (or at start-up) and closed when the
//! topic is deleted or the shard stops; and their maintenance (flush.ms, retention,
//! compaction). Shard-local: `Rc`, `RefCell`, no locks.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_lock::OnceCell;
use odradek_storage::log::partition_dir;
use odradek_storage::{CompioBackend, Log, LogConfig, LogError};
use tracing::{debug, info, warn};
use uuid::Uuid;

use super::fetcher::FetcherSettings;
use super::{Partition, PartitionShared, ReadSettings, Role, Rules};
use crate::cluster::{Catalogue, MetadataStore, Topic, topic_config};
use crate::metrics::ShardStats;
use crate::runtime::blocking::Blocking;

/// How often a shard looks at its partitions for `flush.ms`, and logs a slow pass.
pub const FLUSH_CHECK_INTERVAL: Duration = Duration::from_millis(100);
/// How often retention runs (Kafka's `log.retention.check.interval.ms`).
pub const RETENTION_CHECK_INTERVAL: Duration = Duration::from_secs(300);
/// How often compaction looks at compacted topics.
pub const COMPACTION_CHECK_INTERVAL: Duration = Duration::from_secs(30);
/// While appends of some partition fail (a full disk, most often), every shard runs retention
/// this often instead of every [`RETENTION_CHECK_INTERVAL`], so that space retention can free
/// comes back in seconds, not minutes.
pub const RETENTION_KICK_INTERVAL: Duration = Duration::from_secs(2);

/// Bumped (at most once per [`RETENTION_KICK_INTERVAL`] by each shard) while a shard has a
/// partition whose appends fail: the data directory is shared, so every shard's retention may
/// free the space one shard's partition needs.
static RETENTION_KICKS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
/// How often a shard following the metadata looks whether it should stop.
const FOLLOW_CHECK_INTERVAL: Duration = Duration::from_millis(500);
/// A maintenance step that takes longer than this is logged.
const SLOW_STEP: Duration = Duration::from_millis(500);

type Slot = Rc<OnceCell<Rc<Partition>>>;

/// Why a partition could not be had.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Its topic was deleted after the request looked it up (Kafka:
    /// `UNKNOWN_TOPIC_OR_PARTITION`). Not opening it keeps a late request from re-creating
    /// the directory of a deleted topic.
    #[error("topic `{0}` was deleted")]
    Deleted(String),
    /// Opening or recovering the log failed (Kafka: `KAFKA_STORAGE_ERROR`).
    #[error(transparent)]
    Log(#[from] LogError),
}

impl OpenError {
    /// The Kafka error code to answer with.
    pub fn code(&self) -> odradek_net::ErrorCode {
        match self {
            OpenError::Deleted(_) => odradek_net::error_code::UNKNOWN_TOPIC_OR_PARTITION,
            OpenError::Log(_) => odradek_net::error_code::KAFKA_STORAGE_ERROR,
        }
    }
}

/// Every partition this shard has open.
#[derive(Debug)]
pub struct Partitions {
    data_dir: PathBuf,
    metadata: Arc<dyn MetadataStore>,
    engine: LogConfig,
    pool: Blocking,
    open: RefCell<HashMap<(Uuid, i32), Slot>>,
    shared: Rc<PartitionShared>,
    fetcher: FetcherSettings,
    /// The shard's counters: ISR changes are counted here.
    stats: Arc<ShardStats>,
}

impl Partitions {
    // One argument per thing the shard hands its partitions; a struct for them would be
    // built in one place only.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        data_dir: &Path,
        metadata: Arc<dyn MetadataStore>,
        engine: LogConfig,
        reads: ReadSettings,
        fetch_cache_bytes: usize,
        pool: Blocking,
        fetcher: FetcherSettings,
        stats: Arc<ShardStats>,
    ) -> Self {
        Self {
            data_dir: data_dir.to_owned(),
            metadata,
            engine,
            pool,
            open: RefCell::new(HashMap::new()),
            shared: Rc::new(PartitionShared::new(reads, fetch_cache_bytes)),
            fetcher,
            stats,
        }
    }

    pub fn metadata(&self) -> &Arc<dyn MetadataStore> {
        &self.metadata
    }

    pub fn fetcher_settings(&self) -> &FetcherSettings {
        &self.fetcher
    }

    /// The open partitions that follow `leader`.
    pub fn following(&self, leader: i32) -> Vec<Rc<Partition>> {
        self.all().into_iter().filter(|p| p.role() == Role::Follower { leader }).collect()
    }

    /// The leaders this shard's follower partitions follow.
    pub fn followed_leaders(&self) -> BTreeSet<i32> {
        self.all()
            .iter()
            .filter_map(|p| match p.role() {
                Role::Follower { leader } if leader >= 0 => Some(leader),
                _ => None,
            })
            .collect()
    }

    /// Proposes `isr` for `p` to the controller (AlterPartition), in the background; one
    /// proposal per partition at a time.
    pub fn propose_isr(&self, p: Rc<Partition>, isr: Vec<i32>) {
        let Some((leader_epoch, partition_epoch)) = p.isr_proposal(isr.clone()) else { return };
        let metadata = self.metadata.clone();
        let stats = self.stats.clone();
        let before = p.isr().len();
        let (me, broker_epoch) = (self.fetcher.me, self.metadata.snapshot().broker_epoch);
        let command = odradek_controller::Command::AlterPartition {
            broker_id: me,
            broker_epoch,
            topic_id: p.topic_id,
            partition: p.index,
            leader_epoch,
            partition_epoch,
            isr: isr.clone(),
        };
        compio::runtime::spawn(async move {
            match metadata.propose(command).await {
                Ok(odradek_controller::CommandResult::Partition { record }) => {
                    info!(topic = %p.topic, partition = p.index, isr = ?record.isr, partition_epoch = record.partition_epoch, "ISR changed");
                    match record.isr.len().cmp(&before) {
                        std::cmp::Ordering::Less => ShardStats::add(&stats.isr_shrinks, 1),
                        std::cmp::Ordering::Greater => ShardStats::add(&stats.isr_expands, 1),
                        std::cmp::Ordering::Equal => {}
                    }
                    let committed = (&record.replicas[..], &record.isr[..], record.partition_epoch);
                    p.isr_settled(leader_epoch, Some(committed));
                }
                Ok(other) => {
                    warn!(topic = %p.topic, partition = p.index, reply = ?other, "unexpected AlterPartition reply");
                    p.isr_settled(leader_epoch, None);
                }
                Err(e) => {
                    info!(topic = %p.topic, partition = p.index, proposed = ?isr, error = %e, "ISR change refused");
                    // Refused for a stale view: give the metadata a moment before trying again.
                    compio::time::sleep(Duration::from_millis(200)).await;
                    p.isr_settled(leader_epoch, None);
                }
            }
        })
        .detach();
    }

    /// Leader partitions whose followers lagged more than `lag_max`: proposes their removal
    /// from the ISR (Kafka's `replica.lag.time.max.ms`).
    pub fn shrink_lagging(&self, lag_max: Duration) {
        for p in self.all() {
            if let Some(isr) = p.lagging(lag_max) {
                info!(topic = %p.topic, partition = p.index, isr = ?p.isr(), proposed = ?isr, "followers lagging; shrinking the ISR");
                self.propose_isr(p, isr);
            }
        }
    }

    /// Notified after every append to any partition of this shard: long-polling fetches wait
    /// on it, then look at their own partitions.
    pub fn appended(&self) -> event_listener::EventListener {
        self.shared.appended.listen()
    }

    /// The open log of `topic`'s `partition`, opening (and recovering) it on first use if its
    /// topic still exists. The caller has checked that this shard owns it.
    pub async fn get(&self, topic: &Topic, partition: i32) -> Result<Rc<Partition>, OpenError> {
        if let Some(p) = self.get_open(topic.id, partition) {
            return Ok(p);
        }
        if self.metadata.snapshot().topic_by_id(topic.id).is_none() {
            return Err(OpenError::Deleted(topic.name.clone()));
        }
        let slot = self.open.borrow_mut().entry((topic.id, partition)).or_default().clone();
        Ok(slot.get_or_try_init(|| self.open_log(topic, partition)).await.cloned()?)
    }

    /// Already open, without opening.
    pub fn get_open(&self, topic_id: Uuid, partition: i32) -> Option<Rc<Partition>> {
        self.open.borrow().get(&(topic_id, partition)).and_then(|s| s.get().cloned())
    }

    async fn open_log(&self, topic: &Topic, partition: i32) -> Result<Rc<Partition>, LogError> {
        let dir = partition_dir(&self.data_dir, &topic.name, partition);
        let config = topic_config::log_config(&topic.configs, &self.engine);
        let started = Instant::now();
        let (log, report) =
            Log::open_with_clock(CompioBackend, &dir, config, odradek_storage::log::system_clock())
                .await?;
        if report.truncated_bytes > 0 {
            warn!(
                topic = %topic.name, partition,
                truncated_bytes = report.truncated_bytes,
                reason = report.truncated_reason.as_deref().unwrap_or(""),
                indexes_rebuilt = report.indexes_rebuilt,
                "partition recovered: cut a torn or corrupt tail"
            );
        }
        // The log itself logs what recovery found; this adds how long the shard waited.
        debug!(
            topic = %topic.name, partition,
            clean_shutdown = report.clean_shutdown,
            indexes_rebuilt = report.indexes_rebuilt,
            log_end_offset = log.log_end_offset(),
            ms = started.elapsed().as_millis() as u64,
            "partition opened"
        );
        let p =
            Rc::new(Partition::new(topic, partition, self.fetcher.me, log, self.shared.clone()));
        if let Some(placement) = topic.placement_of(partition) {
            p.apply_placement(placement, self.metadata.snapshot().leadable).await?;
        }
        Ok(p)
    }

    /// Every open partition.
    pub fn all(&self) -> Vec<Rc<Partition>> {
        self.open.borrow().values().filter_map(|s| s.get().cloned()).collect()
    }

    /// Applies a topic's changed configuration to its open partitions.
    pub fn reconfigure(&self, topic: &Topic) {
        let config = topic_config::log_config(&topic.configs, &self.engine);
        for p in self.all().iter().filter(|p| p.topic_id == topic.id) {
            p.set_config(config.clone(), Rules::of(topic));
        }
    }

    /// Closes `partition` of a deleted topic and removes its directory: first renamed aside
    /// (so a new topic of the same name never sees its files), then deleted.
    pub async fn delete(&self, topic: &Topic, partition: i32) -> Result<(), String> {
        let slot = self.open.borrow_mut().remove(&(topic.id, partition));
        self.shared.recent.forget((topic.id, partition));
        if let Some(p) = slot.and_then(|s| s.get().cloned()) {
            // A closed log refuses appends; its files are removed below either way.
            let _ = p.close().await;
        }
        let dir = partition_dir(&self.data_dir, &topic.name, partition);
        let aside =
            self.data_dir.join(format!("{}-{partition}.{}-delete", topic.name, topic.id.simple()));
        // Renaming and removing a directory tree are blocking calls: the pool makes them.
        let removed = self.pool.run(move || {
            match std::fs::rename(&dir, &aside) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(format!("rename {} aside: {e}", dir.display())),
            }
            std::fs::remove_dir_all(&aside).map_err(|e| format!("remove {}: {e}", aside.display()))
        });
        removed.await.map_err(|e| e.to_string())?
    }

    /// Follows the cluster metadata for this shard's partitions until `stopping` reports true:
    /// as each new snapshot arrives, removes the partitions of deleted topics, applies
    /// changed topic configs, and opens partitions newly held here (so that a disk problem
    /// shows in the log at once, not on the first produce). Every shard runs its own.
    pub async fn follow_metadata(&self, shard: usize, smp: usize, stopping: impl Fn() -> bool) {
        // First every held partition's record as of now: the metadata may have moved on since
        // the partitions were opened at start-up.
        let mut seen = self.metadata.snapshot();
        self.reconcile(shard, smp, &Catalogue::default(), &seen).await;
        while !stopping() {
            let listener = self.metadata.changed();
            let now = self.metadata.snapshot();
            if !Arc::ptr_eq(&now, &seen) {
                self.reconcile(shard, smp, &seen, &now).await;
                seen = now;
                continue;
            }
            // Wakes on a change, and now and then to look at `stopping`.
            let _ = compio::time::timeout(FOLLOW_CHECK_INTERVAL, listener).await;
        }
    }

    async fn reconcile(&self, shard: usize, smp: usize, before: &Catalogue, after: &Catalogue) {
        for old in before.topics.values() {
            let kept = after.topic_by_id(old.id);
            let mine = (0..old.partitions()).filter(|&p| old.owner(p, smp) == Some(shard));
            match kept {
                None => {
                    for p in mine {
                        if let Err(e) = self.delete(old, p).await {
                            warn!(topic = %old.name, partition = p, error = %e, "cannot remove a deleted partition's files");
                        }
                    }
                }
                Some(new) => {
                    if new.configs != old.configs {
                        self.reconfigure(new);
                    }
                    // Reassigned away: this node is no longer a replica.
                    for p in mine.filter(|&p| new.owner(p, smp) != Some(shard)) {
                        info!(topic = %old.name, partition = p, "no longer a replica here; removing it");
                        if let Err(e) = self.delete(old, p).await {
                            warn!(topic = %old.name, partition = p, error = %e, "cannot remove a reassigned partition's files");
                        }
                    }
                }
            }
        }
        // Whether this node may lead changed: every partition's role is decided again.
        let all = before.leadable != after.leadable;
        for topic in after.topics.values() {
            if !all && before.topic_by_id(topic.id).is_some_and(|t| Arc::ptr_eq(t, topic)) {
                continue;
            }
            for p in 0..topic.partitions() {
                if topic.owner(p, smp) != Some(shard) {
                    continue;
                }
                let Some(placement) = topic.placement_of(p) else { continue };
                let applied = match self.get_open(topic.id, p) {
                    // Opening applies the placement.
                    None => self.get(topic, p).await.map(|_| ()),
                    Some(open) => open
                        .apply_placement(placement, after.leadable)
                        .await
                        .map_err(OpenError::Log),
                };
                if let Err(e) = applied {
                    warn!(topic = %topic.name, partition = p, error = %e, "cannot apply the partition's new record");
                }
            }
        }
    }

    /// Closes every open log cleanly (flush and clean-shutdown marker).
    pub async fn close_all(&self) {
        for p in self.all() {
            if let Err(e) = p.close().await {
                warn!(topic = %p.topic, partition = p.index, error = %e, "closing a partition failed");
            }
        }
    }

    /// Runs `flush.ms`, retention and compaction for this shard's partitions until `stop`
    /// reports true. Each step yields between partitions; a slow step is logged.
    pub async fn maintain(&self, stopping: impl Fn() -> bool) {
        use std::sync::atomic::Ordering;
        let mut last_retention = Instant::now();
        let mut last_compaction = Instant::now();
        let mut last_kick: Option<Instant> = None;
        let mut kicks_seen = RETENTION_KICKS.load(Ordering::Acquire);
        let mut failing = false;
        while !stopping() {
            compio::time::sleep(FLUSH_CHECK_INTERVAL).await;
            if failing && last_kick.is_none_or(|t| t.elapsed() >= RETENTION_KICK_INTERVAL) {
                RETENTION_KICKS.fetch_add(1, Ordering::AcqRel);
                last_kick = Some(Instant::now());
            }
            let kicks = RETENTION_KICKS.load(Ordering::Acquire);
            let kicked = kicks != kicks_seen && last_retention.elapsed() >= RETENTION_KICK_INTERVAL;
            let retention = last_retention.elapsed() >= RETENTION_CHECK_INTERVAL || kicked;
            let compaction = last_compaction.elapsed() >= COMPACTION_CHECK_INTERVAL;
            if retention {
                last_retention = Instant::now();
                kicks_seen = kicks;
            }
            if kicked {
                debug!("appends failing: retention runs early");
            }
            failing = false;
            if compaction {
                last_compaction = Instant::now();
            }
            for p in self.all() {
                if stopping() {
                    return;
                }
                step(&p, "flush", p.log().flush_if_due()).await;
                failing |= p.log().write_failing();
                let policy = p.log().config().cleanup_policy;
                if retention && policy.delete {
                    step(&p, "retention", p.log().enforce_retention()).await;
                }
                if compaction && policy.compact {
                    step(&p, "compaction", p.log().compact()).await;
                }
            }
        }
    }
}

async fn step<T: std::fmt::Debug>(
    p: &Partition,
    what: &'static str,
    work: impl std::future::Future<Output = Result<T, LogError>>,
) {
    let started = Instant::now();
    let result = work.await;
    let ms = started.elapsed().as_millis() as u64;
    match result {
        Err(LogError::Closed) => {}
        Err(e) => {
            warn!(topic = %p.topic, partition = p.index, step = what, error = %e, "maintenance failed")
        }
        Ok(r) if started.elapsed() >= SLOW_STEP => {
            warn!(topic = %p.topic, partition = p.index, step = what, ms, result = ?r, "slow maintenance step")
        }
        Ok(_) => {}
    }
}

/// Logs partition directories that no topic in the catalogue names (left by hand, or by a
/// crash between a deletion's catalogue update and its directory removal). They are left
/// alone: an operator decides.
pub fn warn_orphans(data_dir: &Path, catalogue: &Catalogue) {
    let Ok(entries) = std::fs::read_dir(data_dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some((topic, partition)) = name.rsplit_once('-') else { continue };
        let Ok(partition) = partition.parse::<i32>() else { continue };
        if !entry.path().is_dir() {
            continue;
        }
        let known = catalogue.topic(topic).is_some_and(|t| partition < t.partitions());
        if !known {
            warn!(dir = %entry.path().display(), "partition directory of no known topic; left alone");
        }
    }
}

/// Removes directories that a deletion renamed aside but did not finish removing.
pub fn remove_deleted_leftovers(data_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(data_dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if name.to_string_lossy().ends_with("-delete") && entry.path().is_dir() {
            match std::fs::remove_dir_all(entry.path()) {
                Ok(()) => {
                    info!(dir = %entry.path().display(), "removed a deleted partition's leftovers")
                }
                Err(e) => {
                    warn!(dir = %entry.path().display(), error = %e, "cannot remove a deleted partition's leftovers")
                }
            }
        }
    }
}
