"""Consume a whole topic from the beginning and print every value, one per line.

Usage: count_values.py --bootstrap H:P --topic T --partitions N --out FILE
Stops when every partition reached the end offset it had when the script started.
"""

import argparse
import sys
import time

from confluent_kafka import Consumer, TopicPartition

ap = argparse.ArgumentParser()
ap.add_argument("--bootstrap", required=True)
ap.add_argument("--topic", required=True)
ap.add_argument("--partitions", type=int, default=1)
ap.add_argument("--out", required=True)
args = ap.parse_args()

c = Consumer(
    {"bootstrap.servers": args.bootstrap, "group.id": "unused", "enable.auto.commit": False}
)
ends = {}
for p in range(args.partitions):
    lo, hi = c.get_watermark_offsets(TopicPartition(args.topic, p), timeout=10)
    ends[p] = hi
c.assign([TopicPartition(args.topic, p, 0) for p in range(args.partitions)])
done = {p for p, hi in ends.items() if hi == 0}
deadline = time.monotonic() + 60
with open(args.out, "wb") as out:
    while len(done) < args.partitions:
        if time.monotonic() > deadline:
            print(f"FAIL: timed out; reached {sorted(done)} of ends {ends}", flush=True)
            sys.exit(1)
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            print(f"FAIL: consumer error {m.error()}", flush=True)
            sys.exit(1)
        out.write(m.value() + b"\n")
        if m.offset() + 1 >= ends[m.partition()]:
            done.add(m.partition())
print(f"ends {ends}")
