//! A broker-only node: an `Observer` follows the image and proposes through the leader, also
//! across a change of leader; it never votes.

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use common::*;
use odradek_controller::{Controller, Observer, ObserverConfig, StartError};

#[test]
fn observer_follows_the_image_and_proposes_through_the_leader() {
    init_tracing();
    let root = tempfile::tempdir().expect("tmp");
    let port = 29_381;
    let mut nodes: Vec<Option<Controller>> = (1..=3)
        .map(|id| Some(Controller::start(config(id, 3, port, root.path())).expect("start")))
        .collect();
    let source = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 5));
    let oc = ObserverConfig::new(10, source, voters(3, port), root.path().join("observer10"));
    assert!(matches!(
        Observer::start(ObserverConfig { node_id: 2, ..oc.clone() }),
        Err(StartError::ObserverIsVoter { node_id: 2, .. })
    ));
    let obs = Observer::start(oc).expect("observer");
    let leader = {
        let refs: Vec<&Controller> = nodes.iter().flatten().collect();
        agreed_leader(&refs)
    };
    let started = Instant::now();
    let r = wait_for("a proposal through the observer", || {
        block_on(obs.propose(odradek_controller::Command::RegisterBroker {
            broker_id: 10,
            incarnation: uuid::Uuid::from_u128(10),
            host: "127.0.0.5".into(),
            port: 9092,
            rack: None,
            listeners: Vec::new(),
        }))
        .ok()
    });
    eprintln!("first observer proposal after {:?}: {r:?}", started.elapsed());
    let refs: Vec<&Controller> = nodes.iter().flatten().collect();
    let image = converged(&refs);
    wait_for("the observer's image", || (*obs.image() == *image).then_some(()));

    // The leader goes; the observer finds the next one.
    nodes[(leader - 1) as usize].take().expect("leader").shutdown();
    let refs: Vec<&Controller> = nodes.iter().flatten().collect();
    let _ = wait_for("a new leader", || {
        let l = agreed_leader(&refs);
        (l != leader).then_some(l)
    });
    wait_for("a proposal after the change", || {
        block_on(obs.propose(odradek_controller::Command::FenceBroker { broker_id: 10 })).ok()
    });
    let image = converged(&refs);
    assert!(image.brokers[&10].fenced);
    wait_for("the observer's newer image", || (*obs.image() == *image).then_some(()));
    assert!(obs.image().applied_index > 0);
    obs.shutdown();
}
