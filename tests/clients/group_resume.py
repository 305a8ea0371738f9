#!/usr/bin/env python3
"""A consumer group resumes at its committed offsets after the node restarts.

Usage: group_resume.py --bootstrap H:P first|second
  first:  create `resume` (4 partitions), produce 400 records; a subscribe() consumer of group
          g-resume reads 150, commits after processing, and closes.
  second: (after a restart) a new member of g-resume gets exactly the other 250, starting at
          the committed offsets; a new group with auto.offset.reset=latest gets none of them,
          one with earliest gets all 400.
Prints "OK <phase>" or "FAIL: ..." and exits 1.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import check  # noqa: E402
from confluent_kafka import Producer  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402
from kafka import KafkaConsumer  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--bootstrap", required=True)
ap.add_argument("phase", choices=["first", "second"])
args = ap.parse_args()
b = args.bootstrap
TOPIC, TOTAL, FIRST = "resume", 400, 150


def consume(group, reset, want, seconds=20):
    c = KafkaConsumer(TOPIC, bootstrap_servers=b, group_id=group, enable_auto_commit=False,
                      auto_offset_reset=reset, heartbeat_interval_ms=500)
    got = []
    end = time.monotonic() + seconds
    while len(got) < want and time.monotonic() < end:
        for ms in c.poll(timeout_ms=200, max_records=want - len(got)).values():
            got.extend((m.partition, m.offset, m.value.decode()) for m in ms)
        if got:
            c.commit()
    c.close()
    return got


if args.phase == "first":
    admin = AdminClient({"bootstrap.servers": b})
    for f in admin.create_topics([NewTopic(TOPIC, 4, 1)]).values():
        f.result(timeout=20)
    p = Producer({"bootstrap.servers": b})
    for i in range(TOTAL):
        p.produce(TOPIC, value=f"r{i:04d}".encode(), partition=i % 4)
    check(p.flush(20) == 0, "produce")
    got = consume("g-resume", "earliest", FIRST)
    check(len(got) == FIRST, f"first member read {len(got)}")
    with open(os.environ.get("RESUME_STATE", "/dev/null"), "w") as f:
        f.write("\n".join(v for _, _, v in got))
else:
    got = consume("g-resume", "earliest", TOTAL - FIRST)
    values = [v for _, _, v in got]
    check(len(values) == len(set(values)), "a record was read twice after the restart")
    check(len(values) == TOTAL - FIRST, f"second member read {len(values)}, expected {TOTAL - FIRST}")
    earlier = open(os.environ["RESUME_STATE"]).read().split("\n")
    check(not set(earlier) & set(values), "records read before the restart were read again")
    check(len(set(earlier) | set(values)) == TOTAL, "some records were never read")
    latest = consume("g-latest", "latest", 1, seconds=5)
    check(latest == [], f"a new group at latest read {len(latest)} old records")
    earliest = consume("g-earliest", "earliest", TOTAL)
    check(len(earliest) == TOTAL, f"a new group at earliest read {len(earliest)}")
print(f"OK {args.phase}")
