//! Shared helpers: controllers on 127.0.0.2–127.0.0.4 in one process, bounded waits.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use odradek_controller::{
    Command, CommandResult, Controller, ControllerConfig, ControllerError, MetadataImage, Voters,
};
use uuid::Uuid;

/// Every wait in these tests gives up (and fails) after this long.
pub const BOUND: Duration = Duration::from_secs(30);

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "odradek_controller=info,openraft=warn".into()),
        )
        .with_test_writer()
        .try_init();
}

pub fn block_on<F: Future>(f: F) -> F::Output {
    compio::runtime::Runtime::new().expect("runtime").block_on(f)
}

/// The address of node `id` (1..=3) on `port`: 127.0.0.(id+1).
pub fn addr(id: u64, port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, (id + 1) as u8], port))
}

pub fn voters(n: u64, port: u16) -> Voters {
    let list: Vec<String> = (1..=n).map(|id| format!("{id}@{}", addr(id, port))).collect();
    Voters::parse(&list.join(",")).expect("voters")
}

pub fn config(id: u64, n: u64, port: u16, root: &Path) -> ControllerConfig {
    let mut c =
        ControllerConfig::new(id, addr(id, port), voters(n, port), root.join(format!("node{id}")));
    c.heartbeat = Duration::from_millis(50);
    c.propose_timeout = Duration::from_secs(3);
    // These tests register brokers but send no heartbeats: keep them unfenced throughout.
    c.broker_session_timeout = Duration::from_secs(3600);
    c
}

pub fn data_dir(root: &Path, id: u64) -> PathBuf {
    root.join(format!("node{id}"))
}

/// Polls `f` every 10 ms until it returns `Some`, failing after [`BOUND`].
pub fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < BOUND, "timed out after {BOUND:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The leader all `nodes` agree on.
pub fn agreed_leader(nodes: &[&Controller]) -> u64 {
    wait_for("an agreed leader", || {
        let leaders: Vec<Option<u64>> = nodes.iter().map(|c| c.quorum_status().leader_id).collect();
        let first = leaders[0]?;
        leaders.iter().all(|l| *l == Some(first)).then_some(first)
    })
}

/// Proposes, retrying retriable errors until [`BOUND`].
pub fn propose(c: &Controller, cmd: Command) -> Result<CommandResult, ControllerError> {
    let start = Instant::now();
    loop {
        match block_on(c.propose(cmd.clone())) {
            Err(e) if e.is_retriable() && start.elapsed() < BOUND => {
                std::thread::sleep(Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

/// Waits until every node's image is the same, and returns it.
pub fn converged(nodes: &[&Controller]) -> Arc<MetadataImage> {
    wait_for("identical images", || {
        let images: Vec<Arc<MetadataImage>> = nodes.iter().map(|c| c.image()).collect();
        images.iter().all(|i| **i == *images[0]).then(|| images[0].clone())
    })
}

pub fn register(c: &Controller, broker_id: i32) {
    let cmd = Command::RegisterBroker {
        broker_id,
        incarnation: Uuid::from_u128(broker_id as u128 + 100),
        host: format!("127.0.0.{}", broker_id + 1),
        port: 9092,
        rack: Some(format!("rack{}", broker_id % 2)),
        listeners: Vec::new(),
    };
    let Ok(CommandResult::BrokerRegistered { broker_epoch }) = propose(c, cmd) else {
        panic!("broker {broker_id} registered")
    };
    let r = propose(c, Command::UnfenceBroker { broker_id, epoch: broker_epoch });
    assert_eq!(r, Ok(CommandResult::Done));
}

pub fn create_topic(c: &Controller, name: &str, partitions: i32, rf: i16) -> CommandResult {
    let cmd = Command::CreateTopic {
        name: name.into(),
        topic_id: Uuid::nil(),
        partitions,
        replication_factor: rf,
        configs: BTreeMap::from([("cleanup.policy".to_owned(), "compact".to_owned())]),
    };
    propose(c, cmd).unwrap_or_else(|e| panic!("create {name}: {e}"))
}

pub fn pid_block(c: &Controller) -> (i64, i32) {
    match propose(c, Command::AllocateProducerIdBlock { broker_id: 1, size: 1000 }) {
        Ok(CommandResult::ProducerIdBlock { first, size }) => (first, size),
        other => panic!("producer-id block: {other:?}"),
    }
}
