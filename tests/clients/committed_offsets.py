#!/usr/bin/env python3
"""Committed offsets of consumers that assign partitions themselves, across node restarts.

Usage: committed_offsets.py --bootstrap H:P write|read|admin
  write: produce 100 records to `co`; kafka-python (group g-kp) consumes 40 and commits 40 with
         metadata; confluent-kafka (group g-cf) commits 77; both read their commits back.
  read:  both groups' commits are still there (run after a restart).
  admin: list, describe and delete those groups and their offsets with both admin clients.
Prints "OK <mode>" or "FAIL: ..." and exits 1.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import check  # noqa: E402
from confluent_kafka import Consumer, TopicPartition as CTP  # noqa: E402
from kafka import KafkaConsumer, KafkaProducer, TopicPartition  # noqa: E402
from kafka.structs import OffsetAndMetadata  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--bootstrap", required=True)
ap.add_argument("mode", choices=["write", "read", "admin"])
args = ap.parse_args()
b = args.bootstrap
tp = TopicPartition("co", 0)


def confluent_committed():
    cc = Consumer({"bootstrap.servers": b, "group.id": "g-cf", "enable.auto.commit": False})
    (got,) = cc.committed([CTP("co", 0)], timeout=15)
    cc.close()
    return got.offset


if args.mode == "write":
    p = KafkaProducer(bootstrap_servers=b, acks="all")
    for i in range(100):
        p.send("co", b"r%d" % i, partition=0)
    p.flush()
    c = KafkaConsumer(bootstrap_servers=b, group_id="g-kp", enable_auto_commit=False,
                      auto_offset_reset="earliest", consumer_timeout_ms=5000)
    check(c.committed(tp) is None, f"a new group has no commit: {c.committed(tp)}")
    c.assign([tp])
    seen = 0
    for _ in c:
        seen += 1
        if seen == 40:
            break
    check(seen == 40, f"consumed {seen}")
    c.commit({tp: OffsetAndMetadata(40, "after-40", -1)})
    check(c.committed(tp) == 40, f"kafka-python committed {c.committed(tp)}")
    c.close()
    cc = Consumer({"bootstrap.servers": b, "group.id": "g-cf", "enable.auto.commit": False})
    cc.assign([CTP("co", 0, 0)])
    cc.commit(offsets=[CTP("co", 0, 77)], asynchronous=False)
    cc.close()
    check(confluent_committed() == 77, "confluent committed")
elif args.mode == "admin":
    from confluent_kafka.admin import AdminClient
    from kafka.admin import KafkaAdminClient

    a = KafkaAdminClient(bootstrap_servers=b)
    listed = sorted(g["group_id"] for g in a.list_groups())
    check(listed == ["g-cf", "g-kp"], f"kafka-python list_groups {listed}")
    d = a.describe_groups(["g-kp"])["g-kp"]
    check(d["group_state"] == "Empty" and d["members"] == [], f"describe {d}")
    offsets = a.list_group_offsets("g-kp")["g-kp"]
    check(offsets[tp].offset == 40 and offsets[tp].metadata == "after-40", f"offsets {offsets}")
    a.delete_group_offsets("g-kp", [tp])
    check(a.list_group_offsets("g-kp")["g-kp"] == {}, "offset deleted")
    missing = a.delete_groups(["no-such-group"])["no-such-group"]
    check(missing == "GroupIdNotFoundError", f"deleting an unknown group: {missing}")
    a.close()
    c = AdminClient({"bootstrap.servers": b})
    groups = c.list_consumer_groups(request_timeout=15).result()
    check([g.group_id for g in groups.valid] == ["g-cf"], f"confluent list {groups.valid}")
    for _, f in c.delete_consumer_groups(["g-cf"], request_timeout=15).items():
        f.result()
    left = c.list_consumer_groups(request_timeout=15).result().valid
    check(left == [], f"groups left after delete: {left}")
else:
    c = KafkaConsumer(bootstrap_servers=b, group_id="g-kp", enable_auto_commit=False,
                      consumer_timeout_ms=5000)
    check(c.committed(tp) == 40, f"kafka-python after restart: {c.committed(tp)}")
    # A consumer of the group resumes right after the commit.
    c.assign([tp])
    c.seek(tp, c.committed(tp))
    first = next(iter(c))
    check(first.offset == 40 and first.value == b"r40", f"resumed at {first.offset}")
    c.close()
    check(confluent_committed() == 77, "confluent after restart")
print(f"OK {args.mode}")
