//! Three controllers in one process (one thread and runtime each) on 127.0.0.2–127.0.0.4.
//! Each test uses its own port so that tests may run in parallel.

mod common;

use std::collections::BTreeSet;
use std::time::Instant;

use common::*;
use odradek_controller::{Command, CommandError, CommandResult, Controller, ControllerError};

#[test]
fn three_nodes_elect_replicate_and_agree() {
    init_tracing();
    let root = tempfile::tempdir().expect("tmp");
    let port = 29_301;
    let started = Instant::now();
    // The bootstrapper (node 1) starts last: the others wait for it, then adopt its cluster id.
    let nodes: Vec<Controller> = (1..=3)
        .rev()
        .map(|id| Controller::start(config(id, 3, port, root.path())).expect("start"))
        .collect();
    let refs: Vec<&Controller> = nodes.iter().collect();
    let leader = agreed_leader(&refs);
    eprintln!("first leader {leader} elected {:?} after start", started.elapsed());
    // Through a follower: the proposal is forwarded to the leader.
    let follower = nodes.iter().find(|c| c.node_id() != leader).expect("a follower");
    for b in 1..=3 {
        register(follower, b);
    }
    let CommandResult::TopicCreated { partitions, .. } = create_topic(follower, "orders", 6, 3)
    else {
        panic!("created")
    };
    let leaders: Vec<i32> = partitions.iter().map(|p| p.leader).collect();
    for b in 1..=3 {
        assert_eq!(leaders.iter().filter(|l| **l == b).count(), 2, "leaders {leaders:?}");
    }
    let refused = propose(follower, Command::DeleteTopic { name: "nope".into() });
    assert!(
        matches!(refused, Err(ControllerError::Refused(CommandError::UnknownTopic { .. }))),
        "{refused:?}"
    );
    // A command too large for one entry of the metadata log is refused before raft sees it.
    let big = (0..200).map(|i| (format!("k{i}"), "v".repeat(1000))).collect();
    let huge = Command::AlterTopicConfigs { name: "orders".into(), set: big, delete: Vec::new() };
    let refused = propose(follower, huge);
    assert!(
        matches!(refused, Err(ControllerError::Refused(CommandError::TooLarge { .. }))),
        "{refused:?}"
    );
    // Figures, not assertions: a proposal's latency through the leader and through a follower.
    let leader_node = nodes.iter().find(|c| c.node_id() == leader).expect("leader");
    for (via, node) in [("leader", leader_node), ("follower", follower)] {
        let started = Instant::now();
        for i in 0..50 {
            create_topic(node, &format!("lat-{via}-{i}"), 1, 1);
        }
        eprintln!("CreateTopic via the {via}: {:?} each (50 sequential)", started.elapsed() / 50);
    }
    let image = converged(&refs);
    assert_eq!(image.topics["orders"].configs.len(), 1);
    assert_eq!(image.topics["orders"].partitions.len(), 6);
    assert_eq!(image.topics.len(), 101);
    assert_eq!(image.brokers.len(), 3);
    // Every node adopted the one cluster id.
    let ids: BTreeSet<_> = nodes.iter().map(|c| c.quorum_status().cluster_id).collect();
    assert_eq!(ids.len(), 1);
    assert!(ids.iter().all(Option::is_some), "{ids:?}");
    // The leader sees every voter caught up (its metrics follow replication asynchronously).
    let leader_node = nodes.iter().find(|c| c.node_id() == leader).expect("leader");
    let status = wait_for("every voter matched with no lag", || {
        let s = leader_node.quorum_status();
        s.voters.iter().all(|v| v.lag == Some(0)).then_some(s)
    });
    assert_eq!(status.voters.len(), 3);
    assert_eq!(status.leader_id, Some(leader));
    assert!(status.term >= 1);
    assert_eq!(
        status.voters.iter().map(|v| v.matched_index).collect::<Vec<_>>(),
        vec![status.last_log_index; 3]
    );
}

#[test]
fn leader_loss_restart_and_unique_producer_ids() {
    init_tracing();
    let root = tempfile::tempdir().expect("tmp");
    let port = 29_311;
    let mut nodes: Vec<Option<Controller>> = (1..=3)
        .map(|id| Some(Controller::start(config(id, 3, port, root.path())).expect("start")))
        .collect();
    let live = |nodes: &Vec<Option<Controller>>| -> Vec<u64> {
        nodes.iter().flatten().map(Controller::node_id).collect()
    };
    let mut blocks = Vec::new();
    {
        let refs: Vec<&Controller> = nodes.iter().flatten().collect();
        let _ = agreed_leader(&refs);
        register(refs[0], 1);
        create_topic(refs[1], "before", 3, 1);
        blocks.push(pid_block(refs[2]));
    }
    let mut failovers = Vec::new();
    for round in 0..2 {
        let refs: Vec<&Controller> = nodes.iter().flatten().collect();
        let leader = agreed_leader(&refs);
        let idx = (leader - 1) as usize;
        let killed = Instant::now();
        if round == 0 {
            nodes[idx].take().expect("leader").shutdown();
        } else {
            drop(nodes[idx].take());
        }
        let refs: Vec<&Controller> = nodes.iter().flatten().collect();
        let new_leader = wait_for("a new leader", || {
            let l = agreed_leader(&refs);
            (l != leader).then_some(l)
        });
        failovers.push(killed.elapsed());
        eprintln!(
            "round {round}: leader {leader} stopped, {new_leader} leads after {:?}",
            killed.elapsed()
        );
        create_topic(refs[0], &format!("after{round}"), 2, 1);
        blocks.push(pid_block(refs[1]));
        // Bring the stopped node back from its data dir; it catches up.
        nodes[idx] =
            Some(Controller::start(config(leader, 3, port, root.path())).expect("restart"));
        let refs: Vec<&Controller> = nodes.iter().flatten().collect();
        let image = converged(&refs);
        assert!(
            image.topics.contains_key("before")
                && image.topics.contains_key(&format!("after{round}"))
        );
        blocks.push(pid_block(refs[2]));
    }
    assert_eq!(live(&nodes).len(), 3);
    let refs: Vec<&Controller> = nodes.iter().flatten().collect();
    let image = converged(&refs);
    assert_eq!(image.topics.len(), 3, "nothing committed lost: {:?}", image.topics.keys());
    blocks.sort();
    for w in blocks.windows(2) {
        assert!(w[0].0 + i64::from(w[0].1) <= w[1].0, "producer-id blocks overlap: {blocks:?}");
    }
    eprintln!("failover times: {failovers:?}");
}

#[test]
fn without_quorum_proposals_fail_retriably_and_the_image_survives_restart() {
    init_tracing();
    let root = tempfile::tempdir().expect("tmp");
    let port = 29_361;
    let nodes: Vec<Controller> = (1..=3)
        .map(|id| Controller::start(config(id, 3, port, root.path())).expect("start"))
        .collect();
    let refs: Vec<&Controller> = nodes.iter().collect();
    let _ = agreed_leader(&refs);
    register(refs[0], 1);
    create_topic(refs[1], "kept", 4, 1);
    let before = converged(&refs);
    for c in nodes {
        c.shutdown();
    }
    // One node of three: its committed image is back (re-applied from its own log), but
    // nothing new can commit.
    let alone = Controller::start(config(2, 3, port, root.path())).expect("restart 2");
    let image = wait_for("the committed image", || {
        let i = alone.image();
        (i.applied_index >= before.applied_index).then_some(i)
    });
    assert_eq!(image.topics, before.topics);
    let started = Instant::now();
    let r = common::block_on(alone.propose(Command::DeleteTopic { name: "kept".into() }));
    match r {
        Err(e) => assert!(e.is_retriable(), "{e:?}"),
        Ok(r) => panic!("committed without a quorum: {r:?}"),
    }
    eprintln!("no-quorum proposal answered in {:?}", started.elapsed());
    assert!(alone.image().topics.contains_key("kept"));
}
