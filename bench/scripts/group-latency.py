#!/usr/bin/env python3
"""Consumer-group latencies against a running node, with confluent-kafka (librdkafka).

Usage: python3 bench/scripts/group-latency.py --bootstrap H:P [--commits N]

Prints, as markdown rows:
  - join: from subscribe() to the first assignment, for a first member of an idle group;
  - rebalance: from a third member's subscribe() until all three hold an assignment again;
  - commit: synchronous OffsetCommit round trips (fsynced on the node), p50/p99/max.
The join includes the node's group_initial_rebalance_delay_ms (3000 by default, as Kafka).
"""

import argparse
import threading
import time
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

ap = argparse.ArgumentParser()
ap.add_argument("--bootstrap", required=True)
ap.add_argument("--commits", type=int, default=2000)
args = ap.parse_args()
b = args.bootstrap
topic = f"lat-{uuid.uuid4().hex[:8]}"
admin = AdminClient({"bootstrap.servers": b})
for f in admin.create_topics([NewTopic(topic, 6, 1)]).values():
    f.result(timeout=20)
p = Producer({"bootstrap.servers": b})
for i in range(60):
    p.produce(topic, value=b"x")
p.flush(10)


def member(group, assigned):
    c = Consumer({"bootstrap.servers": b, "group.id": group, "enable.auto.commit": False,
                  "auto.offset.reset": "earliest", "session.timeout.ms": 10000,
                  "heartbeat.interval.ms": 500})

    def on_assign(consumer, parts):
        assigned.append((time.monotonic(), len(parts)))

    c.subscribe([topic], on_assign=on_assign)
    return c


def pump(consumers, stop):
    while not stop.is_set():
        for c in consumers:
            c.poll(0.05)


group = f"g-{uuid.uuid4().hex[:8]}"
assigned = [[], [], []]
consumers = [member(group, assigned[0])]
stop = threading.Event()
t0 = time.monotonic()
pumper = threading.Thread(target=pump, args=(consumers, stop))
pumper.start()
while not assigned[0] and time.monotonic() - t0 < 30:
    time.sleep(0.005)
join = assigned[0][0][0] - t0 if assigned[0] else float("nan")
stop.set()
pumper.join()

consumers.append(member(group, assigned[1]))
stop = threading.Event()
pumper = threading.Thread(target=pump, args=(consumers, stop))
pumper.start()
time.sleep(2)  # let the second member settle
n0 = [len(a) for a in assigned]
t1 = time.monotonic()
consumers.append(member(group, assigned[2]))
stop.set()
pumper.join()
stop = threading.Event()
pumper = threading.Thread(target=pump, args=(consumers, stop))
pumper.start()
while time.monotonic() - t1 < 60:
    if all(len(a) > n for a, n in zip(assigned, n0 + [0])):
        break
    time.sleep(0.005)
rebalance = max(a[-1][0] for a in assigned) - t1
stop.set()
pumper.join()
for c in consumers:
    c.close()

c = Consumer({"bootstrap.servers": b, "group.id": f"c-{uuid.uuid4().hex[:8]}",
              "enable.auto.commit": False})
c.assign([TopicPartition(topic, 0, 0)])
lat = []
for i in range(args.commits):
    s = time.perf_counter()
    c.commit(offsets=[TopicPartition(topic, 0, i)], asynchronous=False)
    lat.append((time.perf_counter() - s) * 1e6)
c.close()
lat.sort()
pct = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]  # noqa: E731
print("| measure | figure |")
print("|---|---|")
print(f"| join, first member of an idle group | {join * 1000:.0f} ms |")
print(f"| rebalance, a third member joins | {rebalance * 1000:.0f} ms |")
print(f"| commit p50 / p99 / max ({len(lat)} sync commits) | {pct(0.5):.0f} / {pct(0.99):.0f} / {lat[-1]:.0f} µs |")
