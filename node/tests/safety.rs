//! Queue safety under faults (`tests/clients/queue_safety.py`, in the spirit of Jepsen's Kafka
//! workload): a 3-node cluster of this build's `odradek`, idempotent confluent-kafka producers
//! (acks=all) on a replication-factor-3 topic and live consumers while a seeded schedule
//! SIGKILLs partition leaders and the active controller, crashes every node, SIGSTOPs a node,
//! and slows, blackholes or resets one node's Kafka port through a fault proxy; then
//! every acknowledged record must be read back once, at the offset it was acknowledged at, in
//! each producer's order. The script starts and stops the cluster itself (free ports on
//! 127.0.0.2..=127.0.0.4, temporary directories) and prints the node logs on a failure.
//!
//! First the checker's self-test: synthetic histories with each anomaly must be reported, a
//! clean one must pass, so a passing run means something. Each script run is bounded
//! (`run_bounded`); the script bounds its own waits too. Longer runs over many seeds:
//! `scripts/safety-soak.sh`.

#[path = "common/process.rs"]
mod process;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use process::{Out, run_bounded};

/// Replication factor of the checked topic: a killed or cut-off leader's partitions move to an
/// in-sync follower (after the script's 6 s session timeout), so a node stays down longer
/// than that.
const RF: u32 = 3;
/// The fault schedule's seed: a failure replays with the same schedule.
const SEED: u64 = 7;
/// Seconds of faults (each kind runs once first, in a seeded order).
const DURATION_S: u32 = 60;
/// How long a killed node stays down, seconds: past its session timeout, so that its
/// partitions fail over to followers while it is gone.
const RESTART_AFTER_S: u32 = 8;
/// Every fault the checker knows: leaders and the active controller SIGKILLed, every node
/// crashed at once, a node paused (SIGSTOP), one node's Kafka port slowed, blackholed (a
/// network partition of its data path) or resetting connections, through the fault proxy, and
/// a leader or the active controller cut off from the other nodes by iptables rules
/// (`partition-net`: the script runs as root, and scripts/test.sh installs iptables).
const FAULTS: &str =
    "kill-leader,kill-controller,crash-all,pause,slow,partition-proxy,flaky,partition-net";
/// Bound on the self-test.
const SELF_TEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound on the whole faulty run (about 70 s: start-up, 60 s of faults, healing, flush,
/// the final read); the script's own waits are shorter.
const RUN_TIMEOUT: Duration = Duration::from_secs(300);

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/clients/queue_safety.py")
}

fn run(cmd: &mut Command, limit: Duration) -> Out {
    run_bounded(cmd, b"", limit)
        .unwrap_or_else(|out| panic!("{cmd:?} did not finish within {limit:?}\n{}", out.text()))
}

/// The checker detects each anomaly in a synthetic history and passes a clean one.
#[test]
fn checker_self_test() {
    let out = run(Command::new("python3").arg(script()).arg("--self-test"), SELF_TEST_TIMEOUT);
    assert!(
        out.status.success(),
        "queue_safety.py --self-test failed ({})\n{}",
        out.status,
        out.text()
    );
    println!("{}", out.stdout);
}

/// No acknowledged record is lost, duplicated, moved or reordered on a replicated topic across
/// leader and controller kills, a full-cluster crash, pauses, and a slow, partitioned or
/// flaky network; everything acknowledged is seen after healing.
#[test]
fn no_anomalies_under_faults() {
    let out = run(
        Command::new("python3").arg(script()).args([
            "--binary",
            env!("CARGO_BIN_EXE_odradek"),
            "--seed",
            &SEED.to_string(),
            "--duration",
            &DURATION_S.to_string(),
            "--faults",
            FAULTS,
            "--replication-factor",
            &RF.to_string(),
            "--restart-after",
            &RESTART_AFTER_S.to_string(),
        ]),
        RUN_TIMEOUT,
    );
    assert!(out.status.success(), "queue_safety.py failed ({})\n{}", out.status, out.text());
    println!("{}", out.stdout);
}
