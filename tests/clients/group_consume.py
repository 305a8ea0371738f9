#!/usr/bin/env python3
"""Consumer groups with subscribe(): three members share a 6-partition topic, one leaves
midway, and every record is consumed exactly once, offsets committed after processing.

Usage: group_consume.py --bootstrap H:P --client kafka-python|confluent [--count N]
Prints "OK group <client> N records" or "FAIL: ..." and exits 1.
"""

import argparse
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import check, fail  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--bootstrap", required=True)
ap.add_argument("--client", choices=["kafka-python", "confluent"], required=True)
ap.add_argument("--count", type=int, default=600)
args = ap.parse_args()
b = args.bootstrap
topic = f"grp-{args.client}"
group = f"g-{args.client}"

from confluent_kafka import Producer  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

admin = AdminClient({"bootstrap.servers": b})
for f in admin.create_topics([NewTopic(topic, 6, 1)]).values():
    f.result(timeout=20)
p = Producer({"bootstrap.servers": b, "enable.idempotence": True, "partitioner": "random"})
values = [f"r{i:05d}" for i in range(args.count)]
for v in values:
    p.produce(topic, value=v.encode())
check(p.flush(30) == 0, "produce")

seen = []
lock = threading.Lock()
stop = threading.Event()
errors = []


def consume_loop(name, leave_after, poll, commit, close):
    """Polls until told to stop (or, for the leaving member, until `leave_after` records),
    committing after each processed batch."""
    n = 0
    try:
        while not stop.is_set():
            got = poll()
            if got:
                with lock:
                    seen.extend(got)
                commit()
                n += len(got)
            if leave_after and n >= leave_after:
                break
    except Exception as e:  # noqa: BLE001
        errors.append(f"{name}: {e!r}")
    finally:
        close()


def run_kafka_python(name, leave_after):
    from kafka import KafkaConsumer
    c = KafkaConsumer(topic, bootstrap_servers=b, group_id=group, enable_auto_commit=False,
                      auto_offset_reset="earliest", session_timeout_ms=10000,
                      heartbeat_interval_ms=500, client_id=name)

    def poll():
        batch = c.poll(timeout_ms=200)
        return [m.value.decode() for ms in batch.values() for m in ms]

    consume_loop(name, leave_after, poll, c.commit, c.close)


def run_confluent(name, leave_after):
    from confluent_kafka import Consumer
    c = Consumer({"bootstrap.servers": b, "group.id": group, "enable.auto.commit": False,
                  "auto.offset.reset": "earliest", "client.id": name,
                  "session.timeout.ms": 10000, "heartbeat.interval.ms": 500})
    c.subscribe([topic])

    def poll():
        got = []
        for m in c.consume(num_messages=100, timeout=0.2):
            if m.error():
                errors.append(f"{name}: {m.error()}")
            else:
                got.append(m.value().decode())
        return got

    consume_loop(name, leave_after, poll, lambda: c.commit(asynchronous=False), c.close)


run = run_kafka_python if args.client == "kafka-python" else run_confluent
threads = [threading.Thread(target=run, args=(f"m{i}", 50 if i == 0 else 0)) for i in range(3)]
for t in threads:
    t.start()
end = time.monotonic() + 60
while time.monotonic() < end:
    with lock:
        if len(seen) >= len(values):
            break
    time.sleep(0.1)
time.sleep(1.0)  # anything consumed twice would show up now
stop.set()
for t in threads:
    t.join(30)
if errors:
    fail(f"consumer errors: {errors[:3]}")
dups = len(seen) - len(set(seen))
missing = set(values) - set(seen)
if dups or missing:
    fail(f"{len(seen)} consumed for {len(values)}: {dups} twice, {len(missing)} missing")
print(f"OK group {args.client} {len(values)} records")
