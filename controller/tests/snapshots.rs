//! Snapshots, purging of the metadata log, and restarts across both.

mod common;

use std::path::Path;

use common::*;
use odradek_controller::log_store::METADATA_LOG_DIR;
use odradek_controller::state_machine::SNAPSHOT_DIR;
use odradek_controller::{Command, CommandResult, Controller};

/// The lowest segment base offset of the metadata log in `dir`.
fn first_segment(dir: &Path) -> u64 {
    std::fs::read_dir(dir.join(METADATA_LOG_DIR))
        .expect("log dir")
        .filter_map(|e| e.ok()?.file_name().to_str()?.strip_suffix(".log")?.parse().ok())
        .min()
        .expect("a segment")
}

fn has_snapshot(dir: &Path) -> bool {
    std::fs::read_dir(dir.join(SNAPSHOT_DIR))
        .map(|d| {
            d.filter_map(Result::ok)
                .any(|e| e.file_name().to_string_lossy().starts_with("snapshot-"))
        })
        .unwrap_or(false)
}

#[test]
fn single_voter_forms_alone_snapshots_purges_and_restarts() {
    init_tracing();
    let root = tempfile::tempdir().expect("tmp");
    let port = 29_341;
    let mut cfg = config(1, 1, port, root.path());
    cfg.snapshot_every_entries = 20;
    cfg.keep_after_snapshot = 5;
    cfg.segment_bytes = 2048;
    let c = Controller::start(cfg.clone()).expect("start");
    let mut watch = c.subscribe();
    register(&c, 1);
    // The watch hands out images as they are applied, never an older one.
    let seen = block_on(compio::time::timeout(BOUND, watch.changed())).expect("an image in time");
    assert!(seen.applied_index > 0);
    create_topic(&c, "watched", 1, 1);
    let newer =
        block_on(compio::time::timeout(BOUND, watch.changed())).expect("a newer image in time");
    assert!(newer.applied_index > seen.applied_index);
    for i in 0..40 {
        create_topic(&c, &format!("t{i}"), 1, 1);
        pid_block(&c);
    }
    let dir = data_dir(root.path(), 1);
    wait_for("a snapshot and a purged log", || {
        (has_snapshot(&dir) && first_segment(&dir) > 0).then_some(())
    });
    let before = c.image();
    c.shutdown();

    let c = Controller::start(cfg).expect("restart");
    let after = wait_for("the image back", || {
        let i = c.image();
        (i.applied_index >= before.applied_index).then_some(i)
    });
    assert_eq!(after.topics, before.topics);
    assert!(after.topics.contains_key("watched"));
    assert_eq!(after.brokers, before.brokers);
    assert_eq!(after.next_producer_id, before.next_producer_id);
    let (first, _) = pid_block(&c);
    assert_eq!(first, before.next_producer_id, "producer ids continue after a restart");
}

#[test]
fn lagging_follower_catches_up_from_a_snapshot() {
    init_tracing();
    let root = tempfile::tempdir().expect("tmp");
    let port = 29_351;
    let cfg = |id| {
        let mut c = config(id, 3, port, root.path());
        c.snapshot_every_entries = 10;
        c.keep_after_snapshot = 0;
        c.segment_bytes = 2048;
        c
    };
    let mut nodes: Vec<Option<Controller>> =
        (1..=3).map(|id| Some(Controller::start(cfg(id)).expect("start"))).collect();
    let leader = {
        let refs: Vec<&Controller> = nodes.iter().flatten().collect();
        agreed_leader(&refs)
    };
    let follower = (1..=3).find(|id| *id != leader).expect("a follower");
    let fidx = (follower - 1) as usize;
    {
        let refs: Vec<&Controller> = nodes.iter().flatten().collect();
        register(refs[0], 1);
        converged(&refs);
    }
    nodes[fidx].take().expect("follower").shutdown();
    {
        let refs: Vec<&Controller> = nodes.iter().flatten().collect();
        for i in 0..30 {
            create_topic(refs[i % 2], &format!("t{i}"), 1, 1);
        }
        let ldir = data_dir(root.path(), leader);
        wait_for("the leader's log purged", || {
            (has_snapshot(&ldir) && first_segment(&ldir) > 0).then_some(())
        });
    }
    // The follower's log ends before the leader's first entry: it installs a snapshot.
    nodes[fidx] = Some(Controller::start(cfg(follower)).expect("restart follower"));
    {
        let refs: Vec<&Controller> = nodes.iter().flatten().collect();
        let image = converged(&refs);
        assert_eq!(image.topics.len(), 30);
        let r = propose(refs[fidx.min(1)], Command::DeleteTopic { name: "t0".into() });
        assert_eq!(r, Ok(CommandResult::Done));
        converged(&refs);
    }
    // And it reopens cleanly from the log that continues after the snapshot.
    nodes[fidx].take().expect("follower").shutdown();
    nodes[fidx] = Some(Controller::start(cfg(follower)).expect("restart follower again"));
    let refs: Vec<&Controller> = nodes.iter().flatten().collect();
    create_topic(refs[0], "last", 1, 1);
    let image = converged(&refs);
    assert_eq!(image.topics.len(), 30);
    assert!(image.topics.contains_key("last") && !image.topics.contains_key("t0"));
}
