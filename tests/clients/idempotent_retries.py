#!/usr/bin/env python3
"""An idempotent producer whose connections are cut after the node wrote its batches.

A proxy between the client and the node forwards everything, except that now and then it
swallows a Produce response and cuts the connection: the batch is written, the producer never
hears so, reconnects and sends it again. With idempotence every record must still be stored
exactly once, in order.

Usage: idempotent_retries.py --listen PORT --node HOST:PORT [--topic T] [--count N]
                             [--client confluent|kafka-python]
The node must advertise 127.0.0.1:PORT (the proxy), so that clients come back through it.
Prints "OK idempotent N records, D cuts" or "FAIL: ..." and exits 1.
"""

import argparse
import asyncio
import os
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import check, fail  # noqa: E402

PRODUCE = 0

ap = argparse.ArgumentParser()
ap.add_argument("--listen", type=int, required=True)
ap.add_argument("--node", required=True)
ap.add_argument("--count", type=int, default=20000)
ap.add_argument("--topic", default="retried")
ap.add_argument("--client", choices=["confluent", "kafka-python"], default="confluent")
ap.add_argument("--every", type=int, default=7, help="cut after every Nth Produce response")
ap.add_argument("--cuts", type=int, default=8, help="at most this many cuts")
args = ap.parse_args()
TOPIC = args.topic

node_host, node_port = args.node.rsplit(":", 1)
cuts = 0
produce_responses = 0


async def read_frame(reader):
    head = await reader.readexactly(4)
    (n,) = struct.unpack(">i", head)
    return head + await reader.readexactly(n)


async def handle(client_r, client_w):
    global cuts, produce_responses
    node_r, node_w = await asyncio.open_connection(node_host, int(node_port))
    produce_ids = set()

    async def upstream():
        while True:
            frame = await read_frame(client_r)
            api, _version, corr = struct.unpack(">hhi", frame[4:12])
            if api == PRODUCE:
                produce_ids.add(corr)
            node_w.write(frame)
            await node_w.drain()

    async def downstream():
        global cuts, produce_responses
        while True:
            frame = await read_frame(node_r)
            (corr,) = struct.unpack(">i", frame[4:8])
            if corr in produce_ids:
                produce_ids.discard(corr)
                produce_responses += 1
                if produce_responses % args.every == 0 and cuts < args.cuts:
                    cuts += 1
                    raise ConnectionResetError("cut after a written batch")
            client_w.write(frame)
            await client_w.drain()

    tasks = [asyncio.ensure_future(upstream()), asyncio.ensure_future(downstream())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    finally:
        for t in tasks:
            t.cancel()
        for w in (client_w, node_w):
            w.close()


def run_proxy(ready):
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    server = loop.run_until_complete(asyncio.start_server(handle, "127.0.0.1", args.listen))
    ready.set()
    loop.run_forever()
    server.close()


ready = threading.Event()
threading.Thread(target=run_proxy, args=(ready,), daemon=True).start()
check(ready.wait(10), "proxy did not start")
bootstrap = f"127.0.0.1:{args.listen}"
values = [f"r{i:06d}".encode() for i in range(args.count)]

if args.client == "confluent":
    from confluent_kafka import Consumer, Producer, TopicPartition

    failed = []
    p = Producer({
        "bootstrap.servers": bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "batch.num.messages": 500,
        "message.timeout.ms": 60000,
        "reconnect.backoff.ms": 10,
        "reconnect.backoff.max.ms": 100,
    })

    def delivered(err, msg):
        if err is not None:
            failed.append(str(err))

    for v in values:
        while True:
            try:
                p.produce(TOPIC, value=v, partition=0, on_delivery=delivered)
                break
            except BufferError:
                p.poll(0.05)
    left = p.flush(60)
    check(left == 0 and not failed, f"{left} undelivered, errors {failed[:3]}")
else:
    from kafka import KafkaProducer

    p = KafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True,
                      linger_ms=5, reconnect_backoff_ms=10, request_timeout_ms=30000)
    futures = [p.send(TOPIC, value=v, partition=0) for v in values]
    p.flush(60)
    for f in futures:
        f.get(timeout=30)
    p.close()

check(cuts > 0, "the proxy never cut a connection: the test proves nothing")

from confluent_kafka import Consumer, TopicPartition  # noqa: E402

c = Consumer({"bootstrap.servers": args.node, "group.id": "unused", "enable.auto.commit": False})
low, high = c.get_watermark_offsets(TopicPartition(TOPIC, 0), timeout=10)
c.assign([TopicPartition(TOPIC, 0, 0)])
got = []
end = time.monotonic() + 60
while len(got) < high and time.monotonic() < end:
    m = c.poll(0.5)
    if m is None:
        continue
    if m.error():
        fail(f"consumer error {m.error()}")
    got.append(m.value())
c.close()
if got != values:
    dups = len(got) - len(set(got))
    missing = len(set(values) - set(got))
    fail(f"stored {len(got)} records for {len(values)} sent: {dups} duplicates, {missing} missing")
print(f"OK idempotent {len(values)} records, {cuts} cuts")
