#!/usr/bin/env python3
"""Client quotas against a real node, driven by confluent-kafka (librdkafka).

mode `hold`: users `alice` and `bob` (SASL PLAIN) produce 1 KiB records as fast as they can
for --seconds; alice has a producer_byte_rate quota (--rate bytes/s), bob none. Over the
steady part (after a 5 s warm-up) alice's acknowledged bytes per second must be within 10 %
of her quota, and bob must not be held to it (at least twice alice's quota).
"""

import argparse
import threading
import time

from confluent_kafka import KafkaError, Producer

from common import check, fail

VALUE = b"q" * 1024
WARMUP_S = 5.0


def produce(bootstrap, user, password, topic, seconds, out):
    conf = {
        "bootstrap.servers": bootstrap,
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanisms": "PLAIN",
        "sasl.username": user,
        "sasl.password": password,
        "client.id": f"quota-{user}",
        "linger.ms": 5,
        # Small batches: a 30 s window then holds hundreds of requests, so its rate is not
        # quantised by a few large ones.
        "batch.size": 65536,
        "queue.buffering.max.kbytes": 1024,
        "acks": "1",
    }
    p = Producer(conf)
    acks = []
    errors = []

    def on_delivery(err, msg):
        if err is None:
            acks.append((time.monotonic(), len(msg.value())))
        elif err.code() not in (KafkaError._PURGE_QUEUE, KafkaError._PURGE_INFLIGHT):
            # (what is still queued at the end is purged on purpose)
            errors.append(str(err))

    start = time.monotonic()
    while time.monotonic() - start < seconds:
        try:
            p.produce(topic, VALUE, on_delivery=on_delivery)
        except BufferError:
            p.poll(0.02)
        p.poll(0)
    p.purge()
    p.flush(5)
    out[user] = (start, acks, errors)


def rate(start, acks, seconds):
    end = start + seconds
    window = [b for (t, b) in acks if start + WARMUP_S <= t < end]
    return sum(window) / (seconds - WARMUP_S)


def hold(args):
    out = {}
    threads = [
        threading.Thread(
            target=produce,
            args=(args.bootstrap, u, pw, args.topic, args.seconds, out),
        )
        for (u, pw) in [("alice", "alice-secret"), ("bob", "bob-secret")]
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(args.seconds + 30)
    if len(out) != 2:
        fail(f"a producer did not finish: {sorted(out)}")
    alice = rate(out["alice"][0], out["alice"][1], args.seconds)
    bob = rate(out["bob"][0], out["bob"][1], args.seconds)
    print(f"alice {alice:.0f} B/s (quota {args.rate}), bob {bob:.0f} B/s (no quota)")
    for user in ("alice", "bob"):
        check(not out[user][2], f"{user}: delivery errors {out[user][2][:3]}")
    # Record values are ~98 % of the request bytes the quota counts.
    check(
        0.9 * args.rate <= alice <= 1.1 * args.rate,
        f"alice produced {alice:.0f} B/s, not within 10 % of her quota {args.rate}",
    )
    check(bob >= 2 * args.rate, f"bob produced only {bob:.0f} B/s: held by alice's quota?")
    print("OK hold")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["hold"])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", default="quota-test")
    ap.add_argument("--rate", type=int, default=300_000)
    ap.add_argument("--seconds", type=float, default=35.0)
    args = ap.parse_args()
    {"hold": hold}[args.mode](args)


if __name__ == "__main__":
    main()
