#!/usr/bin/env python3
"""Pattern subscriptions follow topics created while the consumers run.

A confluent-kafka consumer subscribed to `^pat-.*` and a kafka-python consumer with
`subscribe(pattern=...)` (each in its own group, metadata refreshed every second) start while
no topic matches (kafka-python joins its group with no topics; librdkafka joins once a topic
matches); then a producer writes to `pat-first`, and once both
read it, to `pat-new`: neither exists before, each is auto-created by the producer's Metadata
request. Both consumers must get every record of each within a bound. Last, a kafka-python
consumer subscribed to `.*` is assigned every topic but the internal `__consumer_offsets`
(clients leave out the topics Metadata marks internal). Prints "OK pattern ..." or "FAIL: ..." and exits 1.

Usage: pattern_subscribe.py --bootstrap H:P
"""

import argparse
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import check, deadline, expired  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--bootstrap", required=True)
args = ap.parse_args()
b = args.bootstrap
PATTERN = "^pat-.*"
REFRESH_MS = 1000
WAIT_S = 30.0


def produce(topic, values):
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": b})
    for v in values:
        p.produce(topic, value=v.encode())
    check(p.flush(20) == 0, f"produce to {topic}")


class Seen:
    """What one consumer read, by topic; filled by its thread."""

    def __init__(self, name):
        self.name = name
        self.values = {}
        self.errors = []
        self.lock = threading.Lock()

    def add(self, topic, value):
        with self.lock:
            self.values.setdefault(topic, []).append(value)

    def of(self, topic):
        with self.lock:
            return list(self.values.get(topic, []))


def confluent(seen, stop):
    from confluent_kafka import Consumer
    c = Consumer({"bootstrap.servers": b, "group.id": "gpat-confluent",
                  "auto.offset.reset": "earliest", "session.timeout.ms": 6000,
                  "topic.metadata.refresh.interval.ms": REFRESH_MS})
    c.subscribe([PATTERN])
    while not stop.is_set():
        for m in c.consume(num_messages=50, timeout=0.2):
            if m.error():
                seen.errors.append(str(m.error()))
            else:
                seen.add(m.topic(), m.value().decode())
    c.close()


def kafka_python(seen, stop):
    from kafka import KafkaConsumer
    c = KafkaConsumer(bootstrap_servers=b, group_id="gpat-kafka-python",
                      auto_offset_reset="earliest", session_timeout_ms=6000,
                      metadata_max_age_ms=REFRESH_MS)
    c.subscribe(pattern=PATTERN)
    while not stop.is_set():
        try:
            for tp, ms in c.poll(timeout_ms=200).items():
                for m in ms:
                    seen.add(tp.topic, m.value.decode())
        except Exception as e:  # noqa: BLE001
            seen.errors.append(repr(e))
            time.sleep(0.2)
    c.close()


def wait_stable(groups, seconds):
    """Until every group in `groups` is listed Stable (its members joined), or `seconds` pass."""
    from confluent_kafka.admin import AdminClient
    admin = AdminClient({"bootstrap.servers": b})
    end = deadline(seconds)
    states = {}
    while not expired(end):
        listed = admin.list_consumer_groups().result(timeout=10)
        states = {g.group_id: str(g.state).upper() for g in listed.valid}
        if all("STABLE" in states.get(g, "") for g in groups):
            return
        time.sleep(0.2)
    check(False, f"the groups never became stable: {states}")


def wait_for(consumers, topic, values, seconds):
    end = deadline(seconds)
    while not expired(end):
        if all(sorted(s.of(topic)) == sorted(values) for s in consumers):
            return
        time.sleep(0.1)


first = [f"first-{i}" for i in range(10)]
stop = threading.Event()
consumers = [Seen("confluent"), Seen("kafka-python")]
threads = [threading.Thread(target=f, args=(s, stop), daemon=True)
           for f, s in zip([confluent, kafka_python], consumers)]
for t in threads:
    t.start()
try:
    wait_stable(["gpat-kafka-python"], WAIT_S)
    produce("pat-first", first)
    wait_for(consumers, "pat-first", first, WAIT_S)
    for s in consumers:
        check(sorted(s.of("pat-first")) == sorted(first),
              f"{s.name} read {len(s.of('pat-first'))} of pat-first's {len(first)}: {s.errors}")
    new = [f"new-{i}" for i in range(10)]
    started = time.monotonic()
    produce("pat-new", new)
    wait_for(consumers, "pat-new", new, WAIT_S)
    took = time.monotonic() - started
    for s in consumers:
        got = s.of("pat-new")
        check(sorted(got) == sorted(new),
              f"{s.name} read {len(got)} of the {len(new)} records of the auto-created pat-new "
              f"within {WAIT_S:.0f} s: {got[:5]}; errors {s.errors[-3:]}")
finally:
    stop.set()
    for t in threads:
        t.join(15)


def match_all():
    """The partitions a kafka-python consumer subscribed to `.*` is assigned."""
    from kafka import KafkaConsumer
    c = KafkaConsumer(bootstrap_servers=b, group_id="gpat-all", auto_offset_reset="earliest",
                      session_timeout_ms=6000, metadata_max_age_ms=REFRESH_MS)
    c.subscribe(pattern=".*")
    end = deadline(WAIT_S)
    while not expired(end) and not c.assignment():
        c.poll(timeout_ms=200)
    assigned = {tp.topic for tp in c.assignment()}
    c.close()
    return assigned


assigned = match_all()
check(assigned and "__consumer_offsets" not in assigned,
      f"a consumer subscribed to .* was assigned {sorted(assigned)}")
print(f"OK pattern both consumers read the auto-created pat-new within {took:.1f} s; "
      f".* matched {sorted(assigned)}", flush=True)
