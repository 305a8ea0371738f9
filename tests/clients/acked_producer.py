"""Produce numbered records with acks=all (or --acks 1) until killed, and write each acknowledged one down.

Used by node/tests/durability.rs: the test SIGKILLs the node at a random moment, and every
record this script saw acknowledged must still be in the log after a restart.

Usage: acked_producer.py --bootstrap H:P --topic T --prefix P --acked FILE [--max N] [--acks 1]
Each acknowledged value is appended to FILE as one line, flushed at once (the node may be
killed at any instant; an acknowledgement not yet written down is merely not checked).
"""

import argparse
import os
import time

from confluent_kafka import Producer

ap = argparse.ArgumentParser()
ap.add_argument("--bootstrap", required=True)
ap.add_argument("--topic", required=True)
ap.add_argument("--prefix", required=True)
ap.add_argument("--acked", required=True)
ap.add_argument("--max", type=int, default=200_000)
ap.add_argument("--acks", default="all", choices=["all", "1"])
ap.add_argument("--seconds", type=float, default=30.0)
args = ap.parse_args()

fd = os.open(args.acked, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)


def delivered(err, msg):
    if err is None:
        os.write(fd, msg.value() + b"\n")


p = Producer(
    {
        "bootstrap.servers": args.bootstrap,
        "acks": args.acks,
        "linger.ms": 2,
        "enable.idempotence": False,
        "message.timeout.ms": 5000,
        "reconnect.backoff.max.ms": 200,
    }
)
end = time.monotonic() + args.seconds
i = 0
while i < args.max and time.monotonic() < end:
    try:
        p.produce(args.topic, value=f"{args.prefix}-{i}".encode(), on_delivery=delivered)
        i += 1
    except BufferError:
        p.poll(0.01)
        continue
    if i % 64 == 0:
        p.poll(0)
p.flush(5)
