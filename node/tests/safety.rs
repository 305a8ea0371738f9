//! Queue safety under faults (`tests/clients/queue_safety.py`, in the spirit of Jepsen's Kafka
//! workload): a 3-node cluster of this build's `odradek`, idempotent confluent-kafka producers
//! (acks=all) and live consumers while a seeded schedule SIGKILLs partition leaders, crashes
//! every node, SIGSTOPs a node and slows one node's Kafka port through a fault proxy; then
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

/// Replication factor of the checked topic. 1 while partition data is not replicated (a
/// killed leader's partitions wait for its restart); becomes 3 with replication, and then the
/// faults need no restart to be survived.
const RF: u32 = 1;
/// The fault schedule's seed: a failure replays with the same schedule.
const SEED: u64 = 7;
/// Seconds of faults.
const DURATION_S: u32 = 40;
/// How long a killed node stays down, seconds.
const RESTART_AFTER_S: u32 = 2;
/// Faults today's binary survives (each followed by a restart or a heal).
const FAULTS: &str = "kill-leader,crash-all,pause,slow";
/// Bound on the self-test.
const SELF_TEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound on the whole faulty run (about a minute: start-up, 40 s of faults, healing, flush,
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

/// No acknowledged record is lost, duplicated, moved or reordered across kills, crashes,
/// pauses and a slow network.
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
