#!/usr/bin/env python3
"""kafka-python against a real odradek node.

Modes:
  admin      create (with configs) / list / delete topics and their errors
  roundtrip  producer with every codec (idempotence off), 4 partitions, keys, headers,
             timestamps; consumer (no group) with assign + seek; every record compared
  offsets    beginning_offsets / end_offsets / offsets_for_times, seek to the middle
  logdirs    describe_log_dirs (DescribeLogDirs): the data directory, its file system's space,
             each partition's size growing with what was produced; unknown topics left out
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import CODECS, check, deadline, expired, fail, key_of, show, value_of  # noqa: E402
from kafka import KafkaConsumer, KafkaProducer, TopicPartition  # noqa: E402
from kafka.admin import KafkaAdminClient  # noqa: E402
from kafka.errors import (  # noqa: E402
    InvalidConfigurationError,
    InvalidReplicationFactorError,
    KafkaError,
    TopicAlreadyExistsError,
    UnknownTopicOrPartitionError,
)

PARTITIONS = 4


def admin(bootstrap):
    return KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)


def consumer(bootstrap):
    # No group_id: no coordinator, no commits; positions come from assign/seek only.
    return KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                         fetch_max_wait_ms=100, request_timeout_ms=15000,
                         consumer_timeout_ms=1000)


def expect_error(what, exc_type, fn):
    try:
        fn()
    except exc_type as e:
        return e
    except KafkaError as e:
        fail(f"{what}: expected {exc_type.__name__}, got {type(e).__name__}: {e}")
    fail(f"{what}: expected {exc_type.__name__}, got success")


def mode_admin(bootstrap):
    a = admin(bootstrap)
    a.create_topics({
        "kp-configs": {"num_partitions": 3, "replication_factor": 1,
                       "configs": {"retention.ms": "3600000", "cleanup.policy": "delete"}},
        "kp-plain": {"num_partitions": 1, "replication_factor": 1},
    }, timeout_ms=10000)
    topics = a.list_topics()
    check("kp-configs" in topics and "kp-plain" in topics, f"created topics not listed: {topics}")
    desc = {t["name"]: t for t in a.describe_topics(["kp-configs"])}
    check(desc["kp-configs"]["error_code"] == 0, f"describe kp-configs: {desc}")
    parts = sorted(p["partition_index"] for p in desc["kp-configs"]["partitions"])
    check(parts == [0, 1, 2], f"kp-configs described with partitions {parts}, expected 0..2")
    print("created kp-configs (3 partitions, configs) and kp-plain; listed and described")

    expect_error("re-create kp-plain", TopicAlreadyExistsError,
                 lambda: a.create_topics({"kp-plain": {"num_partitions": 1, "replication_factor": 1}}))
    print("re-create -> TopicAlreadyExistsError")
    expect_error("replication factor 2", InvalidReplicationFactorError,
                 lambda: a.create_topics({"kp-rf2": {"num_partitions": 1, "replication_factor": 2}}))
    print("replication_factor=2 -> InvalidReplicationFactorError")
    expect_error("unknown config", InvalidConfigurationError,
                 lambda: a.create_topics({"kp-bad": {"num_partitions": 1, "replication_factor": 1,
                                                     "configs": {"no.such.config": "x"}}}))
    print("unknown config -> InvalidConfigurationError")

    a.delete_topics(["kp-configs", "kp-plain"], timeout_ms=10000)
    end = deadline()
    while True:
        topics = a.list_topics()
        if "kp-configs" not in topics and "kp-plain" not in topics:
            break
        check(not expired(end), f"deleted topics still listed: {topics}")
        time.sleep(0.1)
    expect_error("delete a deleted topic", UnknownTopicOrPartitionError,
                 lambda: a.delete_topics(["kp-plain"], timeout_ms=10000))
    print("deleted; delete again -> UnknownTopicOrPartitionError")
    a.close()
    print("OK admin")


def headers_kp(i):
    # kafka-python headers: list of (str, bytes); it has no null header values.
    m = i % 3
    if m == 0:
        return []
    if m == 1:
        return [("h1", b"first"), ("h1", b"dup"), ("trace", f"t{i}".encode())]
    return [("bin", bytes(range(256))), ("empty", b"")]


def mode_roundtrip(bootstrap, count):
    a = admin(bootstrap)
    topics = {f"kp-{codec}": codec for codec in CODECS}
    a.create_topics({t: {"num_partitions": PARTITIONS, "replication_factor": 1} for t in topics},
                    timeout_ms=10000)
    a.close()
    base_ts = int(time.time() * 1000) - 100_000
    # kafka-python refuses a record with neither key nor value.
    records = [(i % PARTITIONS, key_of(i) if value_of(i) is not None else b"k", value_of(i),
                headers_kp(i), base_ts + i) for i in range(count)]
    for topic, codec in topics.items():
        p = KafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False, acks="all",
                          compression_type=None if codec == "none" else codec, linger_ms=5,
                          request_timeout_ms=15000)
        futures = [p.send(topic, value=v, key=k, headers=h, partition=part, timestamp_ms=ts)
                   for part, k, v, h, ts in records]
        p.flush(timeout=20)
        per_part = {}
        for f in futures:
            md = f.get(timeout=20)
            per_part.setdefault(md.partition, []).append(md.offset)
        for part, offs in per_part.items():
            check(offs == list(range(len(offs))), f"{topic}[{part}] acked offsets {offs[:8]}..")
        p.close(timeout=10)
    print(f"produced {count} records to each of {len(topics)} topics")

    c = consumer(bootstrap)
    tps = [TopicPartition(t, p) for t in topics for p in range(PARTITIONS)]
    c.assign(tps)
    c.seek_to_beginning(*tps)
    want = {}
    for part, k, v, h, ts in records:
        for t in topics:
            want.setdefault(TopicPartition(t, part), []).append((k, v, h, ts))
    got = {tp: [] for tp in tps}
    end = deadline()
    while any(len(got[tp]) < len(want[tp]) for tp in tps):
        if expired(end):
            fail("timed out: " + str({f"{tp.topic}[{tp.partition}]": (len(got[tp]), len(want[tp]))
                                       for tp in tps if len(got[tp]) < len(want[tp])}))
        for tp, msgs in c.poll(timeout_ms=500).items():
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
    # Nothing beyond.
    extra = c.poll(timeout_ms=300)
    check(not extra, f"records beyond the produced ones: {extra}")
    ends = c.end_offsets(tps)
    for tp in tps:
        check(ends[tp] == len(want[tp]), f"end_offsets {tp} = {ends[tp]}, expected {len(want[tp])}")
    c.close()
    print(f"consumed and compared every record of {len(topics)} topics x {PARTITIONS} partitions")
    print("OK roundtrip")


def mode_offsets(bootstrap):
    topic = "kp-offsets"
    a = admin(bootstrap)
    a.create_topics({topic: {"num_partitions": 2, "replication_factor": 1}}, timeout_ms=10000)
    a.close()
    base_ts = int(time.time() * 1000) - 1_000_000
    n = 30
    p = KafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False, acks=1,
                      compression_type="gzip", request_timeout_ms=15000)
    for i in range(n):
        p.send(topic, key=f"k{i}".encode(), value=f"v{i}".encode(), partition=0,
               timestamp_ms=base_ts + i * 1000)
        if i % 10 == 9:
            p.flush(timeout=20)
    p.close(timeout=10)
    tp0, tp1 = TopicPartition(topic, 0), TopicPartition(topic, 1)

    c = consumer(bootstrap)
    b = c.beginning_offsets([tp0, tp1])
    e = c.end_offsets([tp0, tp1])
    check(b == {tp0: 0, tp1: 0}, f"beginning_offsets {b}")
    check(e == {tp0: n, tp1: 0}, f"end_offsets {e}")
    print(f"beginning_offsets 0/0, end_offsets {n}/0")

    cases = [
        (base_ts + 17_000, 17, base_ts + 17_000),
        (base_ts + 17_001, 18, base_ts + 18_000),
        (base_ts - 1, 0, base_ts),
    ]
    for ts, off, rts in cases:
        r = c.offsets_for_times({tp0: ts})[tp0]
        check(r is not None and r.offset == off and r.timestamp == rts,
              f"offsets_for_times(base+{ts - base_ts}) = {r}, expected offset {off} ts {rts}")
    r = c.offsets_for_times({tp0: base_ts + n * 1000})
    check(r[tp0] is None, f"offsets_for_times after every record = {r[tp0]}, expected None")
    r = c.offsets_for_times({tp1: base_ts})
    check(r[tp1] is None, f"offsets_for_times on an empty partition = {r[tp1]}, expected None")
    print("offsets_for_times: exact, between, before, after, empty partition")

    c.assign([tp0])
    c.seek(tp0, 23)
    got = []
    end = deadline()
    while len(got) < n - 23:
        check(not expired(end), f"seek 23: got {len(got)} of {n - 23}")
        for msgs in c.poll(timeout_ms=500).values():
            got.extend(msgs)
    check([m.offset for m in got] == list(range(23, n)), f"seek 23 got offsets {[m.offset for m in got]}")
    check([m.value for m in got] == [f"v{i}".encode() for i in range(23, n)], "values after seek 23")
    check(c.position(tp0) == n, f"position {c.position(tp0)}, expected {n}")
    print("seek 23 -> 23..29")

    c.seek(tp0, 5)
    got = []
    end = deadline()
    while len(got) < 3:
        check(not expired(end), "seek back to 5: no records")
        for msgs in c.poll(timeout_ms=500, max_records=3).values():
            got.extend(msgs)
    check([m.offset for m in got[:3]] == [5, 6, 7], f"seek back to 5 got {[m.offset for m in got]}")
    print("seek back to 5 -> 5, 6, 7")
    c.seek_to_end(tp0)
    check(c.position(tp0) == n, f"seek_to_end position {c.position(tp0)}")
    check(not c.poll(timeout_ms=300), "records after seek_to_end")
    c.close()
    print("OK offsets")


def log_dir_sizes(a, request):
    """{(topic, partition): size} and the one log dir of the node, from describe_log_dirs."""
    brokers = a.describe_log_dirs(topic_partitions=request)
    check(len(brokers) == 1, f"one broker answers, got {brokers}")
    dirs = brokers[0]["log_dirs"]
    check(len(dirs) == 1 and dirs[0]["error_code"] == 0, f"one log dir without error: {dirs}")
    d = dirs[0]
    sizes = {(t["name"], p["partition_index"]): p["partition_size"]
             for t in d["topics"] for p in t["partitions"]}
    for t in d["topics"]:
        for p in t["partitions"]:
            check(p["offset_lag"] == 0 and not p["is_future_key"], f"leader partition {p}")
    return d, sizes


def mode_logdirs(bootstrap, data_dir):
    a = admin(bootstrap)
    a.create_topics({"kp-disk": {"num_partitions": 2, "replication_factor": 1}}, timeout_ms=10000)
    d, before = log_dir_sizes(a, None)
    check(d["log_dir"] == os.path.realpath(data_dir), f"log_dir {d['log_dir']} is not {data_dir}")
    check(0 < d["usable_bytes"] <= d["total_bytes"], f"space {d['usable_bytes']}/{d['total_bytes']}")
    check(before.get(("kp-disk", 0)) == 0 and before.get(("kp-disk", 1)) == 0,
          f"new partitions are empty: {before}")
    p = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for i in range(200):
        p.send("kp-disk", value=b"x" * 1000, partition=0)
    p.flush()
    p.close()
    _, after = log_dir_sizes(a, {"kp-disk": [0, 1, 7], "kp-missing": [0]})
    check(set(after) == {("kp-disk", 0), ("kp-disk", 1)},
          f"only partitions the node holds are listed: {after}")
    check(after[("kp-disk", 0)] >= 200 * 1000, f"partition 0 holds the 200 KB sent: {after}")
    check(after[("kp-disk", 1)] == 0, f"partition 1 is still empty: {after}")
    print(f"log dir {d['log_dir']}: kp-disk-0 {after[('kp-disk', 0)]} bytes")
    print("OK logdirs")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("mode", choices=["admin", "roundtrip", "offsets", "logdirs"])
    ap.add_argument("--count", type=int, default=40)
    ap.add_argument("--data-dir", help="the node's data directory (logdirs)")
    args = ap.parse_args()
    {"admin": lambda: mode_admin(args.bootstrap),
     "roundtrip": lambda: mode_roundtrip(args.bootstrap, args.count),
     "offsets": lambda: mode_offsets(args.bootstrap),
     "logdirs": lambda: mode_logdirs(args.bootstrap, args.data_dir)}[args.mode]()


if __name__ == "__main__":
    main()
