#!/usr/bin/env python3
"""librdkafka (confluent-kafka) and kafka-python ride through a partition leader's SIGKILL.

Usage: failover_clients.py --bootstrap H:P,H:P,H:P --pids 1:PID,2:PID,3:PID [--topic T]

Given a running 3-node cluster (the Rust test started it and passes each node's id and PID),
creates a 3-partition topic with 3 replicas, then: a confluent-kafka producer (idempotent,
acks=all) and a kafka-python producer (acks=all, retries) each send half of their records;
the leader of partition 0 is SIGKILLed; both send the rest, retrying through the failover.
Meanwhile a confluent-kafka consumer and a kafka-python consumer (manual assignment from
offset 0, no group) read every partition. Checks, for each consumer: every acknowledged record
is read, none twice, offsets within a partition increase by one with nothing skipped (no record
ever read is missing from the other consumer's view either), and each producer's records
arrive in the order it sent them within a partition. Prints the killed node's id on a line
`killed N`. Every wait is bounded; `FAIL: reason` and exit 1 on any failure.
"""

import argparse
import os
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import check, wait_for  # noqa: E402
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402
from kafka import KafkaConsumer, KafkaProducer  # noqa: E402
from kafka import TopicPartition as KTopicPartition  # noqa: E402

PARTITIONS = 3
PER_PRODUCER = 600
WAIT_S = 90.0


def create_topic(boot, topic):
    admin = AdminClient({"bootstrap.servers": boot})
    fs = admin.create_topics([NewTopic(topic, PARTITIONS, 3)], request_timeout=10)
    try:
        fs[topic].result(timeout=15)
    except KafkaException as e:
        if e.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
            raise
    return True


def in_sync(boot, topic):
    md = AdminClient({"bootstrap.servers": boot}).list_topics(topic, timeout=5)
    parts = md.topics[topic].partitions
    if len(parts) == PARTITIONS and all(len(p.isrs) == 3 and p.leader > 0 for p in parts.values()):
        return parts[0].leader
    return None


class Reader(threading.Thread):
    """Reads every partition from 0 until told to stop; keeps (partition, offset, value)."""

    def __init__(self, name, poll):
        super().__init__(daemon=True)
        self.name_, self.poll_fn = name, poll
        self.seen = []
        self.stop = threading.Event()
        self.error = None

    def run(self):
        try:
            while not self.stop.is_set():
                self.seen.extend(self.poll_fn())
        except Exception as e:  # noqa: BLE001
            self.error = e


def confluent_reader(boot, topic):
    c = Consumer({"bootstrap.servers": boot, "group.id": "unused-failover",
                  "enable.auto.commit": False, "topic.metadata.refresh.interval.ms": 1000})
    c.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])

    def poll():
        out = []
        for m in c.consume(100, 0.2):
            if m.error() is None:
                out.append((m.partition(), m.offset(), m.value()))
        return out
    return Reader("confluent-kafka", poll)


def kafka_python_reader(boot, topic):
    c = KafkaConsumer(bootstrap_servers=boot.split(","), enable_auto_commit=False,
                      metadata_max_age_ms=1000, request_timeout_ms=10000)
    tps = [KTopicPartition(topic, p) for p in range(PARTITIONS)]
    c.assign(tps)
    for tp in tps:
        c.seek(tp, 0)

    def poll():
        out = []
        for batch in c.poll(timeout_ms=200).values():
            out.extend((m.partition, m.offset, m.value) for m in batch)
        return out
    return Reader("kafka-python", poll)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--pids", required=True)
    ap.add_argument("--topic", default="ride")
    args = ap.parse_args()
    boot, topic = args.bootstrap, args.topic
    pids = {int(k): int(v) for k, v in (x.split(":") for x in args.pids.split(","))}
    wait_for("the topic", lambda: create_topic(boot, topic), WAIT_S)
    wait_for("every replica in sync", lambda: in_sync(boot, topic), WAIT_S)

    acked = {}  # value -> (partition, offset)
    lock = threading.Lock()
    cp = Producer({"bootstrap.servers": boot, "acks": "all", "enable.idempotence": True,
                   "message.timeout.ms": 60000, "topic.metadata.refresh.interval.ms": 1000})

    def on_delivery(err, msg):
        check(err is None, f"confluent-kafka delivery failed: {err}")
        with lock:
            acked[msg.value()] = (msg.partition(), msg.offset())
    kp = KafkaProducer(bootstrap_servers=boot.split(","), acks="all", retries=50,
                       retry_backoff_ms=200, max_in_flight_requests_per_connection=1,
                       request_timeout_ms=10000, metadata_max_age_ms=1000)
    kp_futures = []

    def send(lo, hi):
        for i in range(lo, hi):
            p = i % PARTITIONS
            cp.produce(topic, value=f"c-{p}-{i}".encode(), partition=p, on_delivery=on_delivery)
            cp.poll(0)
            kp_futures.append(kp.send(topic, value=f"k-{p}-{i}".encode(), partition=p))
            time.sleep(0.002)

    readers = [confluent_reader(boot, topic), kafka_python_reader(boot, topic)]
    for r in readers:
        r.start()
    send(0, PER_PRODUCER // 2)
    victim = in_sync(boot, topic)
    check(victim in pids, f"leader {victim} of partition 0 is not a known node")
    os.kill(pids[victim], signal.SIGKILL)
    print(f"killed {victim}", flush=True)
    send(PER_PRODUCER // 2, PER_PRODUCER)
    check(cp.flush(90) == 0, "confluent-kafka: records left unacknowledged")
    kp.flush(timeout=90)
    # kafka-python's futures carry the offset, not the value: they are in send order.
    k_sent = [f"k-{i % PARTITIONS}-{i}".encode() for i in range(PER_PRODUCER)]
    for value, f in zip(k_sent, kp_futures):
        md = f.get(timeout=60)
        acked[value] = (md.partition, md.offset)
    check(len(acked) == 2 * PER_PRODUCER, f"{len(acked)} records acknowledged, wanted {2 * PER_PRODUCER}")

    def complete():
        return all(len({v for _, _, v in r.seen} & set(acked)) == len(acked) for r in readers) or None
    wait_for("every acknowledged record read by both consumers", complete, WAIT_S)
    for r in readers:
        r.stop.set()
        r.join(10)
        check(r.error is None, f"{r.name_}: {r.error!r}")
        values = [v for _, _, v in r.seen]
        check(len(values) == len(set(values)), f"{r.name_}: {len(values) - len(set(values))} duplicates")
        for value, (p, o) in acked.items():
            got = [(pp, oo) for pp, oo, v in r.seen if v == value]
            check(got == [(p, o)], f"{r.name_}: {value!r} acknowledged at {p}/{o}, read at {got}")
        for p in range(PARTITIONS):
            offsets = [o for pp, o, _ in r.seen if pp == p]
            check(offsets == list(range(offsets[0], offsets[0] + len(offsets))) and offsets[0] == 0,
                  f"{r.name_}: partition {p} offsets skip or repeat")
            for prefix in (b"c-", b"k-"):
                order = [int(v.split(b"-")[2]) for pp, _, v in r.seen if pp == p and v.startswith(prefix)]
                check(order == sorted(order), f"{r.name_}: {prefix!r} records of {p} out of order")
        print(f"{r.name_}: {len(values)} records read, every acknowledged one once, in order",
              flush=True)
    kp.close(timeout=10)
    print(f"ok: {len(acked)} records acknowledged through the failover", flush=True)


if __name__ == "__main__":
    main()
