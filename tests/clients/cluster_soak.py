#!/usr/bin/env python3
"""Soak: SIGKILL the active controller of a 3-node odradek cluster N times under produce load.

Usage: cluster_soak.py --binary target/debug/odradek [--kills 20]

Starts three `odradek serve` processes on 127.0.0.2, 127.0.0.3 and 127.0.0.4 (free ports,
temporary data directories, each one's stderr in <tmp>/node<i>.log; the directory is removed
after a success and kept after a failure), creates a 6-partition
topic, and keeps a confluent-kafka producer (acks=all) writing to it. Then, N times: finds
the active controller (DescribeQuorum's leader, through kafka-python), SIGKILLs it, measures
how long until a topic can be created through a survivor (the failover time), restarts the
killed node and waits until Metadata lists all three brokers again. At the end every record
the producer saw acknowledged must be read back (kafka-python, assign + seek to beginning).

Prints one line per kill and a summary; on any failure prints `FAIL: <reason>` and exits 1.
Every wait is bounded; every process it started is killed (by PID) on exit. Not part of the
test suite (minutes long): the suite's `node/tests/cluster.rs` kills the controller 3 times.
"""

import argparse
import os
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import check, stop_cluster, three_nodes  # noqa: E402
from common import wait_for as bounded_wait  # noqa: E402
from confluent_kafka import KafkaError, KafkaException, Producer  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402
from kafka import KafkaConsumer, TopicPartition  # noqa: E402
from kafka.admin import KafkaAdminClient  # noqa: E402

PARTITIONS = 6
WAIT_S = 60.0
TOPIC = "soak"


def wait_for(what, fn, limit=WAIT_S):
    return bounded_wait(what, fn, limit)


def brokers_listed(addr):
    md = AdminClient({"bootstrap.servers": addr}).list_topics(timeout=5)
    return sorted(md.brokers)


def quorum_leader(addr):
    a = KafkaAdminClient(bootstrap_servers=[addr], request_timeout_ms=5000)
    try:
        q = a.describe_metadata_quorum()
    finally:
        a.close()
    leader = q["topics"][0]["partitions"][0]["leader_id"]
    return leader if leader >= 0 else None


def create_topic(addr, name, partitions=1):
    # Short timeouts: librdkafka sends CreateTopics to the controller its first Metadata names,
    # which for about a second after a kill is still the killed one; a short attempt and a
    # retry measure the cluster's failover rather than the client's request timeout.
    admin = AdminClient({"bootstrap.servers": addr})  # alive until the result is in
    fs = admin.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1)], request_timeout=2)
    try:
        fs[name].result(timeout=4)
    except KafkaException as e:
        # An earlier attempt that timed out may have committed.
        if e.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
            raise
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--binary", required=True)
    ap.add_argument("--kills", type=int, default=20)
    args = ap.parse_args()
    root = tempfile.mkdtemp(prefix="odradek-soak-")
    print(f"logs and data in {root}", flush=True)
    nodes = three_nodes(args.binary, root)
    acked, errors = [], []
    stop = threading.Event()
    ok = False
    try:
        for n in nodes:
            n.start()
        boot = ",".join(n.addr() for n in nodes)
        wait_for("3 brokers", lambda: brokers_listed(nodes[0].addr()) == [1, 2, 3] or None)
        wait_for("the soak topic", lambda: create_topic(nodes[0].addr(), TOPIC, PARTITIONS))

        def produce():
            p = Producer({"bootstrap.servers": boot, "acks": "all", "linger.ms": 5,
                          "message.timeout.ms": 120000})

            def on_delivery(err, msg):
                (errors if err else acked).append(err or msg.value())

            i = 0
            while not stop.is_set():
                p.produce(TOPIC, value=f"v{i}".encode(), partition=i % PARTITIONS,
                          on_delivery=on_delivery)
                p.poll(0.002)
                i += 1
            left = p.flush(130)
            if left:
                errors.append(f"{left} records neither acknowledged nor failed")

        producer = threading.Thread(target=produce)
        producer.start()
        times = []
        for k in range(1, args.kills + 1):
            survivors_addr = [n.addr() for n in nodes]
            leader = wait_for("a quorum leader", lambda: quorum_leader(survivors_addr[k % 3]))
            victim = nodes[leader - 1]
            others = [n for n in nodes if n is not victim]
            t0 = time.monotonic()
            victim.kill()
            wait_for(f"kill {k}: a topic created through node {others[0].id}",
                     lambda: create_topic(others[0].addr(), f"soak-k{k}"))
            failover = time.monotonic() - t0
            times.append(failover)
            victim.start()
            wait_for(f"kill {k}: 3 brokers again",
                     lambda: brokers_listed(others[1].addr()) == [1, 2, 3] or None)
            print(f"kill {k}: controller {leader} killed; topic created after {failover:.2f}s; "
                  f"{len(acked)} records acknowledged so far", flush=True)
            time.sleep(1)
        stop.set()
        producer.join(150)
        check(not producer.is_alive(), "the producer did not finish")
        real_errors = [e for e in errors if e]
        print(f"producer: {len(acked)} acknowledged, {len(real_errors)} failed "
              f"(failures are allowed: records to a killed node's partitions may time out)")
        c = KafkaConsumer(bootstrap_servers=boot.split(","), group_id=None, enable_auto_commit=False,
                          request_timeout_ms=15000, consumer_timeout_ms=1000)
        parts = [TopicPartition(TOPIC, p) for p in range(PARTITIONS)]
        c.assign(parts)
        c.seek_to_beginning(*parts)
        want = set(acked)
        seen = set()
        at = time.monotonic() + 120
        while not want <= seen and time.monotonic() < at:
            for batch in c.poll(timeout_ms=500).values():
                seen.update(r.value for r in batch)
        c.close()
        missing = want - seen
        check(not missing, f"{len(missing)} acknowledged records not read back, e.g. "
                           f"{sorted(missing)[:5]}")
        times.sort()
        print(f"OK: {args.kills} kills; failover min {times[0]:.2f}s, median "
              f"{times[len(times) // 2]:.2f}s, max {times[-1]:.2f}s; "
              f"all {len(want)} acknowledged records read back")
        ok = True
    finally:
        stop_cluster(stop, nodes, root, ok)


if __name__ == "__main__":
    main()
