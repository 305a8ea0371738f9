//! Broker liveness: heartbeats are answered by the active controller from memory (never
//! logged), unfence a registered broker, and a broker that stops heartbeating is fenced after
//! its session timeout.

mod common;

use std::time::Duration;

use common::*;
use odradek_controller::{Command, CommandError, CommandResult, Controller, ControllerError};
use uuid::Uuid;

fn heartbeat(c: &Controller, broker_id: i32, epoch: u64) -> Result<CommandResult, ControllerError> {
    propose(c, Command::BrokerHeartbeat { broker_id, epoch })
}

#[test]
fn heartbeats_unfence_and_silence_fences() {
    init_tracing();
    let root = tempfile::tempdir().expect("tmp");
    let mut cfg = config(1, 1, 29_401, root.path());
    cfg.broker_session_timeout = Duration::from_millis(1000);
    let c = Controller::start(cfg).expect("start");
    agreed_leader(&[&c]);
    let register = Command::RegisterBroker {
        broker_id: 7,
        incarnation: Uuid::from_u128(7),
        host: "127.0.0.2".into(),
        port: 9092,
        rack: None,
        listeners: Vec::new(),
    };
    let Ok(CommandResult::BrokerRegistered { broker_epoch }) = propose(&c, register) else {
        panic!("registered")
    };
    assert!(c.image().brokers[&7].fenced, "a registered broker starts fenced");

    assert_eq!(heartbeat(&c, 7, broker_epoch), Ok(CommandResult::Done));
    wait_for("unfenced", || (!c.image().brokers[&7].fenced).then_some(()));
    let applied = c.image().applied_index;
    for _ in 0..5 {
        assert_eq!(heartbeat(&c, 7, broker_epoch), Ok(CommandResult::Done));
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(c.image().applied_index, applied, "heartbeats are not logged");
    assert!(!c.image().brokers[&7].fenced, "kept alive by its heartbeats");

    let stale = heartbeat(&c, 7, broker_epoch + 1);
    assert!(matches!(stale, Err(ControllerError::Refused(CommandError::StaleBrokerEpoch { .. }))));
    let unknown = heartbeat(&c, 8, 1);
    assert!(matches!(unknown, Err(ControllerError::Refused(CommandError::UnknownBroker { .. }))));

    wait_for("fenced after its session timeout", || c.image().brokers[&7].fenced.then_some(()));
    assert_eq!(heartbeat(&c, 7, broker_epoch), Ok(CommandResult::Done));
    wait_for("unfenced again", || (!c.image().brokers[&7].fenced).then_some(()));
    c.shutdown();
}
