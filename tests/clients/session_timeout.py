#!/usr/bin/env python3
"""A consumer asks for a session timeout; the node's bounds (`group_min_session_timeout_ms`,
`group_max_session_timeout_ms`) decide whether it may join.

Modes (each prints "OK session <client> <mode>" or "FAIL: ..." and exits 1):
  refused  the JoinGroup gets INVALID_SESSION_TIMEOUT (26); the consumer never gets a record
  joins    the consumer joins and consumes the one record produced before

Usage: session_timeout.py --bootstrap H:P --client kafka-python|confluent --session-ms N MODE
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import check, deadline, expired  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--bootstrap", required=True)
ap.add_argument("--client", choices=["kafka-python", "confluent"], required=True)
ap.add_argument("--session-ms", type=int, required=True)
ap.add_argument("mode", choices=["refused", "joins"])
args = ap.parse_args()
b = args.bootstrap
topic = f"session-{args.client}-{args.mode}"
group = f"gsession-{args.client}-{args.mode}"
INVALID_SESSION_TIMEOUT = 26


def produce_one():
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": b})
    p.produce(topic, value=b"v")
    check(p.flush(20) == 0, "produce")


def confluent():
    """(records, error codes seen) after a bounded poll loop."""
    from confluent_kafka import Consumer
    errors = []
    c = Consumer({"bootstrap.servers": b, "group.id": group, "auto.offset.reset": "earliest",
                  "session.timeout.ms": args.session_ms, "heartbeat.interval.ms": 500,
                  "error_cb": lambda e: errors.append(e.code())})
    c.subscribe([topic])
    records = 0
    end = deadline()
    while not expired(end) and not records and INVALID_SESSION_TIMEOUT not in errors:
        m = c.poll(0.2)
        if m is None:
            continue
        if m.error():
            errors.append(m.error().code())
        else:
            records += 1
    c.close()
    return records, errors


def kafka_python():
    from kafka import KafkaConsumer
    from kafka.errors import InvalidSessionTimeoutError
    errors = []
    c = KafkaConsumer(bootstrap_servers=b, group_id=group, auto_offset_reset="earliest",
                      session_timeout_ms=args.session_ms, heartbeat_interval_ms=500)
    c.subscribe([topic])
    records = 0
    end = deadline()
    while not expired(end) and not records and INVALID_SESSION_TIMEOUT not in errors:
        try:
            records += sum(len(ms) for ms in c.poll(timeout_ms=200).values())
        except InvalidSessionTimeoutError:
            errors.append(INVALID_SESSION_TIMEOUT)
    c.close()
    return records, errors


produce_one()
records, errors = confluent() if args.client == "confluent" else kafka_python()
if args.mode == "refused":
    check(INVALID_SESSION_TIMEOUT in errors and records == 0,
          f"session.timeout.ms {args.session_ms}: {records} records, errors {errors}")
else:
    check(records == 1 and INVALID_SESSION_TIMEOUT not in errors,
          f"session.timeout.ms {args.session_ms}: {records} records, errors {errors}")
print(f"OK session {args.client} {args.mode} session.timeout.ms={args.session_ms}", flush=True)
