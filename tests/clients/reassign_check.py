#!/usr/bin/env python3
"""Admin clients move a partition and elect leaders on a 3-node odradek cluster.

Usage: reassign_check.py --bootstrap A B C [--topic NAME]

  1. kafka-python creates a 1-partition topic with 2 replicas through A; confluent-kafka
     produces 50 messages through B;
  2. kafka-python's alter_partition_reassignments (AlterPartitionReassignments) moves the
     partition to its leader and the broker that did not hold it; list_partition_reassignments
     (ListPartitionReassignments) ends empty and Metadata shows the target replicas;
  3. cancelling then answers NO_REASSIGNMENT_IN_PROGRESS, and a target naming an unknown
     broker INVALID_REPLICA_ASSIGNMENT;
  4. confluent-kafka's elect_leaders (ElectLeaders, preferred) and kafka-python's answer
     ELECTION_NOT_NEEDED for the partition, led by its preferred replica;
  5. kafka-python consumes the 50 messages through C.
Prints what it checked; on any mismatch prints one `FAIL: <reason>` line and exits 1. Every
wait is bounded.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import check, deadline, expired, fail  # noqa: E402
from confluent_kafka import ElectionType, Producer  # noqa: E402
from confluent_kafka import TopicPartition as CTopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient  # noqa: E402
from kafka import KafkaConsumer, TopicPartition  # noqa: E402
from kafka.admin import KafkaAdminClient, NewTopic  # noqa: E402

MESSAGES = 50
WAIT_S = 40.0
ELECTION_NOT_NEEDED = 84
NO_REASSIGNMENT_IN_PROGRESS = 85
INVALID_REPLICA_ASSIGNMENT = 39


def partition_0(admin, topic):
    """(leader, replicas, isr) of partition 0 of `topic`, as confluent-kafka's Metadata says."""
    md = admin.list_topics(topic=topic, timeout=15)
    t = md.topics.get(topic)
    if t is None or t.error is not None or 0 not in t.partitions:
        return None
    p = t.partitions[0]
    return p.leader, list(p.replicas), list(p.isrs)


def wait_for(what, f):
    until = deadline(WAIT_S)
    last = None
    while True:
        last = f()
        if last is not None and last is not False:
            return last
        if expired(until):
            fail(f"{what}: not within {WAIT_S} s (last {last!r})")
        time.sleep(0.2)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", nargs=3, required=True)
    ap.add_argument("--topic", default="reassigned")
    args = ap.parse_args()
    a, b, c = args.bootstrap
    topic = args.topic
    tp = TopicPartition(topic, 0)

    kadmin = KafkaAdminClient(bootstrap_servers=[a], request_timeout_ms=30000)
    cadmin = AdminClient({"bootstrap.servers": a})
    try:
        kadmin.create_topics([NewTopic(topic, 1, 2)])
        leader, replicas, _ = wait_for(
            "the new topic in sync",
            lambda: (lambda p: p if p and p[0] >= 0 and len(p[2]) == 2 else None)(
                partition_0(cadmin, topic)))
        print(f"created {topic}: leader {leader}, replicas {replicas}")

        producer = Producer({"bootstrap.servers": b, "acks": "all"})
        for i in range(MESSAGES):
            producer.produce(topic, value=f"m-{i}".encode(), partition=0)
        check(producer.flush(30) == 0, "confluent-kafka: messages left unacknowledged")

        brokers = sorted(cadmin.list_topics(timeout=15).brokers)
        new = [x for x in brokers if x not in replicas][0]
        target = [leader, new]
        result = kadmin.alter_partition_reassignments({tp: target})
        check(result.get(tp) is None, f"alter_partition_reassignments: {result}")
        print(f"kafka-python: reassignment to {target} accepted")
        wait_for("no reassignment listed",
                 lambda: kadmin.list_partition_reassignments() == {})
        wait_for("the target replicas in sync", lambda: (lambda p: p and p[1] == target
                                                         and sorted(p[2]) == sorted(target))(
            partition_0(cadmin, topic)))
        print(f"kafka-python: reassignment done, Metadata shows replicas {target}")

        cancelled = kadmin.alter_partition_reassignments({tp: None})
        check(cancelled.get(tp) is not None
              and cancelled[tp].errno == NO_REASSIGNMENT_IN_PROGRESS,
              f"cancel without a reassignment: {cancelled}")
        bad = kadmin.alter_partition_reassignments({tp: [leader, 999]})
        check(bad.get(tp) is not None and bad[tp].errno == INVALID_REPLICA_ASSIGNMENT,
              f"an unknown broker: {bad}")
        print("kafka-python: cancel and an unknown broker refused with Kafka's errors")

        futures = cadmin.elect_leaders(ElectionType.PREFERRED, [CTopicPartition(topic, 0)])
        got = futures.result(timeout=30)
        errs = {(k.topic, k.partition): v for k, v in got.items()}
        err = errs.get((topic, 0))
        check(err is not None and err.code() == ELECTION_NOT_NEEDED,
              f"confluent-kafka elect_leaders: {got}")
        resp = kadmin.elect_leaders(0, {topic: [0]}, raise_errors=False)
        codes = [p[1] for t in resp.replica_election_results for p in t[1]] \
            if hasattr(resp, "replica_election_results") else []
        check(codes == [ELECTION_NOT_NEEDED], f"kafka-python elect_leaders: {resp}")
        print("confluent-kafka and kafka-python: ElectLeaders answers ELECTION_NOT_NEEDED")
    finally:
        kadmin.close()

    consumer = KafkaConsumer(bootstrap_servers=[c], enable_auto_commit=False,
                             consumer_timeout_ms=1000)
    try:
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        got = []
        until = deadline(WAIT_S)
        while len(got) < MESSAGES and not expired(until):
            for batch in consumer.poll(timeout_ms=500).values():
                got.extend(r.value.decode() for r in batch)
    finally:
        consumer.close()
    want = [f"m-{i}" for i in range(MESSAGES)]
    check(got == want, f"kafka-python read {len(got)} messages, expected {MESSAGES} in order")
    print(f"kafka-python: {MESSAGES} messages read back after the move")
    print("OK")


if __name__ == "__main__":
    main()
