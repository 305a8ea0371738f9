#!/usr/bin/env python3
"""How long producers stop when a partition leader is SIGKILLed, on a 3-node cluster.

Usage: failover_time.py --binary target/release/odradek [--kills 20] [--session-timeout-ms 9000]

Starts three `odradek serve` processes on 127.0.0.2-4 (free ports, a temporary directory kept
only on failure), creates a one-partition topic with 3 replicas, and keeps a confluent-kafka
producer (idempotent, acks=all) sending one record every 2 ms. Then, N times: waits until all
three replicas are in sync, SIGKILLs the partition's leader, and measures the time from the
kill to the first acknowledgement of a record *sent after* the kill (the producer writing
again), restarts the killed node. At the end every acknowledged record is read back (no loss,
no duplicate). Prints one line per kill and p50/max of the times.

The time is dominated by failure detection: the controller fences the dead broker after
`broker.session.timeout.ms` (Kafka's default 9000 ms; `--session-timeout-ms`), then elects an
in-sync follower and every broker learns it from the metadata log.
"""

import argparse
import os
import sys
import tempfile
import threading
import time

# The cluster helpers of the client scripts (tests/clients/common.py).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../tests/clients"))

from common import create_topic_once, fail, stop_cluster, three_nodes  # noqa: E402
from common import wait_for as bounded_wait  # noqa: E402
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

WAIT_S = 90.0
TOPIC = "failover"


def wait_for(what, fn, limit=WAIT_S):
    return bounded_wait(what, fn, limit, every=0.05)


def partition_state(addr):
    md = AdminClient({"bootstrap.servers": addr}).list_topics(TOPIC, timeout=5)
    p = md.topics[TOPIC].partitions[0]
    return p.leader, sorted(p.isrs)


def percentile(values, q):
    v = sorted(values)
    return v[min(len(v) - 1, max(0, int(round(q * (len(v) - 1)))))]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--binary", required=True)
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--session-timeout-ms", type=int, default=9000)
    args = ap.parse_args()
    # The automatic preferred-leader election is off: it would move leadership between the
    # script's look-up of the leader and its kill (a kill of a follower measures nothing).
    extra = ["--broker-session-timeout-ms", str(args.session_timeout_ms),
             "--broker-heartbeat-interval-ms", str(min(2000, args.session_timeout_ms // 4)),
             "--auto-leader-rebalance-enable", "false"]
    root = tempfile.mkdtemp(prefix="odradek-failover-")
    nodes = three_nodes(args.binary, root, extra)
    acked, errors = [], []
    sent_after = {}
    first_ack_after = {}
    lock = threading.Lock()
    stop = threading.Event()
    ok = False
    print(f"command: {' '.join(sys.argv)}; load average {os.getloadavg()[0]:.2f}", flush=True)
    try:
        for n in nodes:
            n.start()
        boot = ",".join(n.addr() for n in nodes)
        admin = AdminClient({"bootstrap.servers": boot})

        wait_for("the topic", lambda: create_topic_once(admin, NewTopic(TOPIC, 1, 3)))
        kill_mark = [None]

        def produce():
            p = Producer({"bootstrap.servers": boot, "acks": "all", "enable.idempotence": True,
                          "linger.ms": 0, "message.timeout.ms": 120000,
                          "topic.metadata.refresh.interval.ms": 1000})
            i = 0

            def on_delivery(err, msg):
                now = time.monotonic()
                if err:
                    errors.append(str(err))
                    return
                acked.append(msg.value())
                mark = int(msg.key())
                with lock:
                    if mark >= 0 and mark not in first_ack_after:
                        first_ack_after[mark] = now
            while not stop.is_set():
                with lock:
                    mark = kill_mark[0] if kill_mark[0] is not None else -1
                p.produce(TOPIC, key=str(mark).encode(), value=f"v{i}".encode(),
                          on_delivery=on_delivery)
                p.poll(0.002)
                i += 1
            left = p.flush(130)
            if left:
                errors.append(f"{left} records neither acknowledged nor failed")

        producer = threading.Thread(target=produce)
        producer.start()
        times = []
        last_victim = None
        for k in range(args.kills):
            # Asked of a node that has been up a while (a node just restarted may still be
            # catching up with the metadata).
            asker = next(n for n in nodes[k % 3:] + nodes[:k % 3] if n is not last_victim)
            leader, _ = wait_for(f"kill {k + 1}: 3 replicas in sync", lambda: (
                lambda s: s if s[1] == [1, 2, 3] and s[0] > 0 else None)(
                    partition_state(asker.addr())))
            victim = nodes[leader - 1]
            last_victim = victim
            t0 = time.monotonic()
            with lock:
                kill_mark[0] = k
                sent_after[k] = t0
            victim.kill()
            wait_for(f"kill {k + 1}: a record sent after the kill acknowledged",
                     lambda: first_ack_after.get(k))
            took = first_ack_after[k] - t0
            times.append(took)
            victim.start()
            print(f"kill {k + 1}: leader {leader} killed; writing again after {took:.2f}s; "
                  f"{len(acked)} records acknowledged so far", flush=True)
        stop.set()
        producer.join(150)
        if producer.is_alive():
            fail("the producer did not finish")
        if errors:
            fail(f"{len(errors)} delivery errors, first: {errors[0]}")
        c = Consumer({"bootstrap.servers": boot, "group.id": "failover-check",
                      "enable.auto.commit": False, "enable.partition.eof": True})
        c.assign([TopicPartition(TOPIC, 0, 0)])
        seen = []
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            m = c.poll(1.0)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF and len(seen) >= len(acked):
                    break
                continue
            seen.append(m.value())
        c.close()
        missing = set(acked) - set(seen)
        if missing:
            fail(f"{len(missing)} acknowledged records not read back, e.g. {sorted(missing)[:3]}")
        if len(seen) != len(set(seen)):
            fail(f"{len(seen) - len(set(seen))} duplicates")
        print(f"writing again after a leader's SIGKILL ({len(times)} kills, session timeout "
              f"{args.session_timeout_ms} ms): p50 {percentile(times, 0.5):.2f}s, "
              f"max {max(times):.2f}s; {len(acked)} records acknowledged, all read back once",
              flush=True)
        ok = True
    finally:
        stop_cluster(stop, nodes, root, ok)


if __name__ == "__main__":
    main()
