#!/usr/bin/env python3
"""Throughput of transactional producers against a plain idempotent one, same run (issue 17).

Usage:
  python3 bench/scripts/txn-bench.py --bootstrap H:P [--duration S] [--partitions N]
  python3 bench/scripts/txn-bench.py --binary target/release/odradek [...]   (starts its own
      node on a temporary directory and a free port, stops it by PID at the end)

confluent-kafka (librdkafka), acks=all, 1 KiB values, linger.ms=5, one producer per variant,
each on its own fresh topic (--partitions partitions), each for --duration seconds:
  idempotent       enable.idempotence=true, no transactions
  txn every 100ms  begin, produce for 100 ms, commit_transaction, repeat
  txn every 1000   begin, produce 1,000 records, commit_transaction, repeat
records/s counts records delivered (idempotent) or committed (transactional) over the wall
time from the first produce to the last delivery/commit. Commit latency is the wall time of
each commit_transaction() call (it flushes the transaction's outstanding records, then
EndTxn, then waits for the markers): p50/p99/max by nearest rank over the sorted list of
every commit of the run (a few hundred to a few thousand values; no histogram needed).
Prints a markdown table and the command that produced it.
"""

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

VALUE = bytes((i * 7) % 251 for i in range(1024))


def percentile(sorted_values, p):
    """Nearest-rank percentile of an ascending list (None when empty)."""
    if not sorted_values:
        return None
    rank = max(1, -(-len(sorted_values) * p // 100))  # ceil(n * p / 100)
    return sorted_values[int(rank) - 1]


def create_topic(bootstrap, partitions):
    topic = f"txnbench-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(timeout=30)
    return topic


def base_conf(bootstrap):
    return {"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
            "queue.buffering.max.kbytes": 65536}


def produce_one(p, topic, on_delivery=None):
    while True:
        try:
            p.produce(topic, VALUE, on_delivery=on_delivery)
            return
        except BufferError:
            p.poll(0.01)


def run_idempotent(bootstrap, topic, duration):
    p = Producer(dict(base_conf(bootstrap), **{"enable.idempotence": True}))
    delivered = [0]
    errors = []

    def cb(err, _msg):
        if err is None:
            delivered[0] += 1
        else:
            errors.append(err)

    start = time.monotonic()
    while time.monotonic() - start < duration:
        produce_one(p, topic, cb)
        p.poll(0)
    left = p.flush(60)
    elapsed = time.monotonic() - start
    if left or errors:
        sys.exit(f"idempotent: {left} unsent, errors {errors[:3]}")
    return {"records": delivered[0], "elapsed": elapsed, "commits": []}


def run_transactional(bootstrap, topic, duration, every_ms=None, every_records=None):
    p = Producer(dict(base_conf(bootstrap), **{
        "transactional.id": f"txnbench-{uuid.uuid4().hex[:8]}"}))
    p.init_transactions(30)
    committed, commits = 0, []
    start = time.monotonic()
    while time.monotonic() - start < duration:
        p.begin_transaction()
        began, n = time.monotonic(), 0
        while True:
            produce_one(p, topic)
            n += 1
            p.poll(0)
            if every_records is not None and n >= every_records:
                break
            if every_ms is not None and (time.monotonic() - began) * 1000 >= every_ms:
                break
        t = time.monotonic()
        p.commit_transaction(60)
        commits.append(time.monotonic() - t)
        committed += n
    elapsed = time.monotonic() - start
    return {"records": committed, "elapsed": elapsed, "commits": commits}


def ms(v):
    return "-" if v is None else f"{v * 1000:.1f}"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_node(binary):
    """Starts `binary serve` on a fresh directory and port; returns (process, bootstrap, dir)."""
    root = tempfile.mkdtemp(prefix="txnbench-")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", os.path.join(root, "data"),
         "--admin-listen", "none"],
        stdout=subprocess.PIPE, stderr=open(os.path.join(root, "node.log"), "w"), text=True,
        env=dict(os.environ, ODRADEK_LOG="warn"))
    got = []
    t = threading.Thread(target=lambda: got.append(proc.stdout.readline()), daemon=True)
    t.start()
    t.join(30)
    if not got or not got[0].startswith("odradek ready"):
        os.kill(proc.pid, signal.SIGKILL)
        sys.exit(f"node did not start (see {root}/node.log)")
    threading.Thread(target=proc.stdout.read, daemon=True).start()
    return proc, f"127.0.0.1:{port}", root


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap")
    ap.add_argument("--binary", help="start this odradek binary for the run")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per variant")
    ap.add_argument("--partitions", type=int, default=3)
    args = ap.parse_args()
    if not args.bootstrap and not args.binary:
        ap.error("--bootstrap or --binary")
    node = None
    bootstrap = args.bootstrap
    if args.binary:
        node, bootstrap, root = start_node(args.binary)
    try:
        variants = [
            ("idempotent (no transactions)",
             lambda t: run_idempotent(bootstrap, t, args.duration)),
            ("transactional, commit every 100 ms",
             lambda t: run_transactional(bootstrap, t, args.duration, every_ms=100)),
            ("transactional, commit every 1,000 records",
             lambda t: run_transactional(bootstrap, t, args.duration, every_records=1000)),
        ]
        rows = []
        for name, fn in variants:
            r = fn(create_topic(bootstrap, args.partitions))
            c = sorted(r["commits"])
            rate = r["records"] / r["elapsed"]
            rows.append((name, r["records"], rate, rate * len(VALUE) / 1e6, len(c),
                         percentile(c, 50), percentile(c, 99), c[-1] if c else None))
            print(f"done: {name}: {rate:,.0f} records/s", file=sys.stderr, flush=True)
    finally:
        if node is not None:
            os.kill(node.pid, signal.SIGTERM)
            try:
                node.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.kill(node.pid, signal.SIGKILL)
                node.wait()
            shutil.rmtree(root, ignore_errors=True)

    import confluent_kafka

    base = rows[0][2]
    cv = confluent_kafka.version()
    cv = cv[0] if isinstance(cv, tuple) else cv
    node = f"node {args.binary} (started by the script)" if args.binary else f"node at {bootstrap}"
    print(f"Transactional vs idempotent producer, 1 KiB values, acks=all, {args.partitions} "
          f"partitions, {args.duration:g} s per variant, one Python producer each, confluent-kafka "
          f"{cv} (librdkafka {confluent_kafka.libversion()[0]}), {node}\n")
    print("| producer | records | records/s | MB/s | vs idempotent | commits | "
          "commit p50 ms | commit p99 ms | commit max ms |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, n, rate, mbs, commits, p50, p99, mx in rows:
        print(f"| {name} | {n:,} | {rate:,.0f} | {mbs:.1f} | {rate / base:.2f}x | "
              f"{commits or '-'} | {ms(p50)} | {ms(p99)} | {ms(mx)} |")
    print("\nCommit latency: wall time of each commit_transaction(), nearest-rank percentiles "
          "of all commits of the variant.")
    print(f"\nCommand: python3 {' '.join(sys.argv)}")


if __name__ == "__main__":
    main()
