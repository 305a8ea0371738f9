#!/usr/bin/env python3
"""aiokafka against a real odradek node (old, non-flexible versions: Produce <= 8, Fetch <= 11,
Metadata <= 5).

Mode:
  roundtrip  AIOKafkaProducer (idempotence off) with every codec and acks 0/1/all, 4 partitions,
             keys, headers, timestamps; AIOKafkaConsumer (no group) with assign + seek; every
             record compared exactly; then end/beginning offsets, offsets_for_times and a seek
             to the middle.
"""

import argparse
import asyncio
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition  # noqa: E402
from common import CODECS, check, deadline, expired, fail, key_of, show, value_of  # noqa: E402

PARTITIONS = 4


def headers_ai(i):
    # aiokafka headers: (str, bytes) pairs; no null header values.
    m = i % 3
    if m == 0:
        return []
    if m == 1:
        return [("h1", b"first"), ("h1", b"dup"), ("trace", f"t{i}".encode())]
    return [("bin", bytes(range(256))), ("empty", b"")]


async def produce(bootstrap, topic, records, codec, acks):
    p = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False, acks=acks,
                         compression_type=None if codec == "none" else codec, linger_ms=5,
                         request_timeout_ms=15000)
    await p.start()
    try:
        futs = []
        for part, k, v, h, ts in records:
            futs.append(await p.send(topic, value=v, key=k, headers=h, partition=part,
                                     timestamp_ms=ts))
        mds = await asyncio.wait_for(asyncio.gather(*futs), 20)
    finally:
        await p.stop()
    if acks != 0:
        per_part = {}
        for md in mds:
            per_part.setdefault(md.partition, []).append(md.offset)
        for part, offs in per_part.items():
            check(offs == list(range(len(offs))), f"{topic}[{part}] acks={acks}: offsets {offs[:8]}..")


async def roundtrip(bootstrap, count):
    combos = {f"ai-{codec}-acks{acks}": (codec, acks) for codec in CODECS for acks in (0, 1, "all")}
    base_ts = int(time.time() * 1000) - 100_000
    # aiokafka refuses a record with neither key nor value.
    records = [(i % PARTITIONS, key_of(i) if value_of(i) is not None else b"k", value_of(i),
                headers_ai(i), base_ts + i) for i in range(count)]
    # Topics are auto-created with the node's default partition count (the test starts the
    # node with --default-partitions 4): aiokafka has no admin client of its own here.
    for topic, (codec, acks) in combos.items():
        await produce(bootstrap, topic, records, codec, acks)
    print(f"produced {count} records to each of {len(combos)} topics")

    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                         fetch_max_wait_ms=100, request_timeout_ms=15000)
    await c.start()
    try:
        tps = [TopicPartition(t, p) for t in combos for p in range(PARTITIONS)]
        c.assign(tps)
        await c.seek_to_beginning(*tps)
        want = {}
        for part, k, v, h, ts in records:
            for t in combos:
                want.setdefault(TopicPartition(t, part), []).append((k, v, h, ts))
        got = {tp: [] for tp in tps}
        end = deadline()
        while any(len(got[tp]) < len(want[tp]) for tp in tps):
            if expired(end):
                fail("timed out: " + str({f"{tp.topic}[{tp.partition}]": (len(got[tp]), len(want[tp]))
                                           for tp in tps if len(got[tp]) < len(want[tp])}))
            batch = await c.getmany(timeout_ms=500)
            for tp, msgs in batch.items():
                got[tp].extend(msgs)
        for tp in tps:
            check(len(got[tp]) == len(want[tp]), f"{tp}: {len(got[tp])} records, expected {len(want[tp])}")
            for off, (m, (k, v, h, ts)) in enumerate(zip(got[tp], want[tp])):
                where = f"{tp.topic}[{tp.partition}] offset {m.offset}"
                check(m.offset == off, f"{where}: expected offset {off}")
                check(m.key == k, f"{where}: key {show(m.key)}, expected {show(k)}")
                check(m.value == v, f"{where}: value {show(m.value)}, expected {show(v)}")
                check(list(m.headers) == h, f"{where}: headers {m.headers}, expected {h}")
                check(m.timestamp == ts, f"{where}: timestamp {m.timestamp}, expected {ts}")
        extra = await c.getmany(timeout_ms=300)
        check(not any(extra.values()), f"records beyond the produced ones: {extra}")
        print(f"consumed and compared every record of {len(combos)} topics x {PARTITIONS} partitions")

        tp = TopicPartition("ai-zstd-acksall", 0)
        n = len(want[tp])
        ends = await c.end_offsets([tp])
        begins = await c.beginning_offsets([tp])
        check(ends[tp] == n and begins[tp] == 0, f"end/beginning offsets {ends[tp]}/{begins[tp]}, expected {n}/0")
        # Partition 0 holds records 0, 4, 8, ... with timestamps base_ts + i.
        r = await c.offsets_for_times({tp: base_ts + 9})
        check(r[tp] is not None and r[tp].offset == 3 and r[tp].timestamp == base_ts + 12,
              f"offsets_for_times(base+9) = {r[tp]}, expected offset 3 at base+12")
        r = await c.offsets_for_times({tp: base_ts + count + 1000})
        check(r[tp] is None, f"offsets_for_times after the end = {r[tp]}, expected None")
        print("end_offsets, beginning_offsets, offsets_for_times")

        c.unsubscribe()
        c.assign([tp])
        c.seek(tp, 5)
        got = []
        end = deadline()
        while len(got) < n - 5:
            check(not expired(end), f"seek 5: got {len(got)} of {n - 5}")
            for msgs in (await c.getmany(timeout_ms=500)).values():
                got.extend(msgs)
        check([m.offset for m in got] == list(range(5, n)), f"seek 5 got offsets {[m.offset for m in got]}")
        check([m.value for m in got] == [v for _, v, _, _ in want[tp][5:]], "values after seek 5")
        print("seek 5 -> 5..end")
    finally:
        await c.stop()
    print("OK roundtrip")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("mode", choices=["roundtrip"])
    ap.add_argument("--count", type=int, default=40)
    args = ap.parse_args()
    asyncio.run(asyncio.wait_for(roundtrip(args.bootstrap, args.count), 60))


if __name__ == "__main__":
    main()
