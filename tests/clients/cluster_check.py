#!/usr/bin/env python3
"""confluent-kafka and kafka-python against a 3-node odradek cluster.

Usage: cluster_check.py --bootstrap A B C [--topic NAME]

Each client gets one broker address only, so everything else it learns comes from Metadata:
  1. confluent-kafka (through A, B and C in turn) and kafka-python (through A) each list 3
     brokers, whose addresses are exactly A, B and C;
  2. confluent-kafka creates a 6-partition topic through A; its partitions' leaders are on
     all three brokers;
  3. confluent-kafka produces 600 messages through B (100 to each partition, keyed);
  4. kafka-python consumes all of them through C (no group: assign + seek to the beginning).
Prints what it checked; on any mismatch prints one `FAIL: <reason>` line and exits 1. Every
wait is bounded.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import check, deadline, expired, fail  # noqa: E402
from confluent_kafka import KafkaException, Producer  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402
from kafka import KafkaConsumer, TopicPartition  # noqa: E402
from kafka.admin import KafkaAdminClient  # noqa: E402

PARTITIONS = 6
MESSAGES = 600
# A cluster may still be settling (a leader election, a broker registering): waits are longer
# than the single-node scripts'.
WAIT_S = 40.0


def confluent_brokers(addr):
    md = AdminClient({"bootstrap.servers": addr}).list_topics(timeout=15)
    return sorted(f"{b.host}:{b.port}" for b in md.brokers.values()), md


def check_brokers(boots):
    want = sorted(boots)
    for addr in boots:
        got, md = confluent_brokers(addr)
        check(got == want, f"confluent-kafka through {addr} lists brokers {got}, expected {want}")
        check(md.controller_id in md.brokers,
              f"confluent-kafka through {addr}: controller id {md.controller_id} is not a broker")
    print(f"confluent-kafka: 3 brokers {want} through each bootstrap")
    a = KafkaAdminClient(bootstrap_servers=[boots[0]], request_timeout_ms=15000)
    try:
        cluster = a.describe_cluster()
    finally:
        a.close()
    got = sorted(f"{b['host']}:{b['port']}" for b in cluster["brokers"])
    check(got == want, f"kafka-python through {boots[0]} lists brokers {got}, expected {want}")
    ids = sorted(b["broker_id"] for b in cluster["brokers"])
    check(len(set(ids)) == 3, f"kafka-python: broker ids {ids} are not 3 distinct ids")
    check(cluster["controller_id"] in ids,
          f"kafka-python: controller id {cluster['controller_id']} is not among {ids}")
    print(f"kafka-python: brokers {ids} at {got}, controller {cluster['controller_id']}")
    return ids


def create_topic(addr, topic):
    admin = AdminClient({"bootstrap.servers": addr})
    futures = admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)],
                                  request_timeout=30)
    try:
        futures[topic].result(timeout=40)
    except KafkaException as e:
        fail(f"creating {topic} through {addr}: {e}")
    at = deadline(WAIT_S)
    while True:
        md = admin.list_topics(topic=topic, timeout=15)
        t = md.topics.get(topic)
        leaders = {}
        if t is not None and t.error is None:
            leaders = {p.id: p.leader for p in t.partitions.values() if p.error is None}
        if len(leaders) == PARTITIONS and all(l >= 0 for l in leaders.values()):
            break
        if expired(at):
            fail(f"{topic}: partitions' leaders not all known within {WAIT_S}s: "
                 f"{None if t is None else {p.id: (p.leader, p.error) for p in t.partitions.values()}}")
        time.sleep(0.2)
    print(f"created {topic} through {addr}: leaders {dict(sorted(leaders.items()))}")
    return leaders


def produce(addr, topic):
    errors = []
    delivered = []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(f"{msg.partition()}: {err}")
        else:
            delivered.append((msg.partition(), msg.offset()))

    p = Producer({"bootstrap.servers": addr, "linger.ms": 5, "acks": "all",
                  "message.timeout.ms": int(WAIT_S * 1000)})
    for i in range(MESSAGES):
        p.produce(topic, key=f"k{i}".encode(), value=f"value-{i}".encode(),
                  partition=i % PARTITIONS, on_delivery=on_delivery)
        p.poll(0)
    left = p.flush(WAIT_S + 5)
    check(left == 0, f"producer through {addr}: {left} messages not delivered")
    check(not errors, f"producer through {addr}: delivery errors {errors[:10]}")
    check(len(delivered) == MESSAGES, f"producer: {len(delivered)} of {MESSAGES} delivered")
    print(f"produced {MESSAGES} messages through {addr}")


def consume(addr, topic):
    c = KafkaConsumer(bootstrap_servers=[addr], group_id=None, enable_auto_commit=False,
                      fetch_max_wait_ms=100, request_timeout_ms=15000, consumer_timeout_ms=1000)
    try:
        parts = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        c.assign(parts)
        c.seek_to_beginning(*parts)
        got = {}
        at = deadline(WAIT_S)
        while len(got) < MESSAGES and not expired(at):
            for batch in c.poll(timeout_ms=500).values():
                for r in batch:
                    key = r.key.decode()
                    if key in got:
                        fail(f"consumer through {addr}: {key} received twice")
                    got[key] = (r.partition, r.value)
        check(len(got) == MESSAGES,
              f"consumer through {addr}: {len(got)} of {MESSAGES} messages within {WAIT_S}s")
        for i in range(MESSAGES):
            want = (i % PARTITIONS, f"value-{i}".encode())
            check(got[f"k{i}"] == want, f"message k{i}: got {got[f'k{i}']}, expected {want}")
    finally:
        c.close()
    print(f"consumed all {MESSAGES} messages through {addr}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bootstrap", nargs=3, required=True, metavar="HOST:PORT",
                    help="the three brokers' addresses, each used alone as a bootstrap")
    ap.add_argument("--topic", default="cluster-check")
    args = ap.parse_args()
    a, b, c = args.bootstrap
    ids = check_brokers([a, b, c])
    leaders = create_topic(a, args.topic)
    on = sorted(set(leaders.values()))
    check(on == ids, f"{args.topic}: leaders on brokers {on}, expected all of {ids}")
    produce(b, args.topic)
    consume(c, args.topic)
    print("OK")


if __name__ == "__main__":
    main()
