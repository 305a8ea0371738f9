#!/usr/bin/env python3
"""confluent-kafka (librdkafka) against a real odradek node.

Modes:
  admin                 create (with configs) / list / delete topics and their errors
  configs               describe and incrementally alter topic configs, describe the broker
                        and the cluster, add partitions, delete records
  roundtrip             every codec x acks 0/1/all, 4 partitions, keys, headers, timestamps;
                        every record consumed back (assign) and compared exactly
  offsets               watermarks, consuming from the middle and from the end,
                        offsets_for_times, an out-of-range start
  produce --topic T --count N     N acks=all records (for the durability test)
  consume --topic T --count N     exactly those N records, nothing more
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import (  # noqa: E402
    CODECS,
    check,
    deadline,
    expired,
    fail,
    headers_of,
    key_of,
    show,
    value_of,
)
from confluent_kafka import (  # noqa: E402
    OFFSET_BEGINNING,
    OFFSET_END,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import (  # noqa: E402
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
    ResourceType,
)

PARTITIONS = 4


def admin_client(bootstrap):
    return AdminClient({"bootstrap.servers": bootstrap})


def consumer(bootstrap, **extra):
    conf = {
        "bootstrap.servers": bootstrap,
        # librdkafka insists on a group id even for assign(); it is never used (no
        # subscribe, no commits), so no group coordinator is needed.
        "group.id": "unused",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "fetch.wait.max.ms": 100,
    }
    conf.update(extra)
    return Consumer(conf)


def create(admin, topics):
    futures = admin.create_topics(topics, operation_timeout=10, request_timeout=15)
    for name, f in futures.items():
        try:
            f.result(timeout=20)
        except KafkaException as e:
            fail(f"create_topics {name}: {e}")


def error_of(future):
    """The KafkaError a future fails with, or None if it succeeds."""
    try:
        future.result(timeout=20)
        return None
    except KafkaException as e:
        return e.args[0]


def list_topics(admin):
    return admin.list_topics(timeout=15).topics


# --- admin ------------------------------------------------------------------------------------


def mode_admin(bootstrap):
    a = admin_client(bootstrap)
    configs = {"retention.ms": "3600000", "cleanup.policy": "compact"}
    create(a, [NewTopic("adm-configs", num_partitions=3, replication_factor=1, config=configs)])
    create(a, [NewTopic("adm-plain", num_partitions=1)])  # broker default replication factor
    topics = list_topics(a)
    check("adm-configs" in topics and "adm-plain" in topics, f"created topics not listed: {sorted(topics)}")
    check(len(topics["adm-configs"].partitions) == 3,
          f"adm-configs has {len(topics['adm-configs'].partitions)} partitions, expected 3")
    for p in topics["adm-configs"].partitions.values():
        check(p.leader == 0 and p.replicas == [0] and p.isrs == [0], f"partition metadata {p}")
    print("created and listed adm-configs (3 partitions, configs) and adm-plain")

    # Creating an existing topic: TOPIC_ALREADY_EXISTS.
    fut = a.create_topics([NewTopic("adm-configs", num_partitions=3, replication_factor=1)],
                          request_timeout=15)
    err = error_of(fut["adm-configs"])
    check(err is not None and err.code() == KafkaError.TOPIC_ALREADY_EXISTS,
          f"re-creating adm-configs: expected TOPIC_ALREADY_EXISTS, got {err}")
    print("re-create -> TOPIC_ALREADY_EXISTS")

    # A replication factor a single node cannot meet: INVALID_REPLICATION_FACTOR.
    fut = a.create_topics([NewTopic("adm-rf3", num_partitions=1, replication_factor=3)],
                          request_timeout=15)
    err = error_of(fut["adm-rf3"])
    check(err is not None and err.code() == KafkaError.INVALID_REPLICATION_FACTOR,
          f"replication factor 3: expected INVALID_REPLICATION_FACTOR, got {err}")
    print("replication_factor=3 -> INVALID_REPLICATION_FACTOR")

    # An unknown config key and an invalid value: INVALID_CONFIG.
    for name, cfg in [("adm-badkey", {"no.such.config": "1"}),
                      ("adm-badval", {"cleanup.policy": "shred"})]:
        fut = a.create_topics([NewTopic(name, num_partitions=1, replication_factor=1, config=cfg)],
                              request_timeout=15)
        err = error_of(fut[name])
        check(err is not None and err.code() == KafkaError.INVALID_CONFIG,
              f"create {name} with {cfg}: expected INVALID_CONFIG, got {err}")
    print("bad config key/value -> INVALID_CONFIG")

    # validate_only creates nothing.
    fut = a.create_topics([NewTopic("adm-dry", num_partitions=2, replication_factor=1)],
                          validate_only=True, request_timeout=15)
    err = error_of(fut["adm-dry"])
    check(err is None, f"validate_only create: {err}")
    check("adm-dry" not in list_topics(a), "validate_only create made the topic")
    print("validate_only creates nothing")

    # Delete, then it is gone; deleting it again: UNKNOWN_TOPIC_OR_PART.
    for name, f in a.delete_topics(["adm-configs", "adm-plain"], request_timeout=15).items():
        err = error_of(f)
        check(err is None, f"delete_topics {name}: {err}")
    end = deadline()
    while True:
        topics = list_topics(a)
        if "adm-configs" not in topics and "adm-plain" not in topics:
            break
        check(not expired(end), f"deleted topics still listed: {sorted(topics)}")
        time.sleep(0.1)
    err = error_of(a.delete_topics(["adm-configs"], request_timeout=15)["adm-configs"])
    check(err is not None and err.code() == KafkaError.UNKNOWN_TOPIC_OR_PART,
          f"deleting a deleted topic: expected UNKNOWN_TOPIC_OR_PART, got {err}")
    print("deleted; delete again -> UNKNOWN_TOPIC_OR_PART")

    # A deleted name can be created again, empty.
    create(a, [NewTopic("adm-configs", num_partitions=2, replication_factor=1)])
    c = consumer(bootstrap)
    for p in range(2):
        wm = c.get_watermark_offsets(TopicPartition("adm-configs", p), timeout=10)
        check(wm == (0, 0), f"re-created topic partition {p} watermarks {wm}, expected (0, 0)")
    c.close()
    check(len(list_topics(a)["adm-configs"].partitions) == 2, "re-created topic partition count")
    print("re-created after delete: 2 empty partitions")
    print("OK admin")


# --- configs, partitions, records -------------------------------------------------------------


def described(a, resource):
    return a.describe_configs([resource], request_timeout=15)[resource].result(timeout=20)


def mode_configs(bootstrap):
    a = admin_client(bootstrap)
    create(a, [NewTopic("cfg", num_partitions=2, replication_factor=1,
                        config={"retention.ms": "3600000"})])
    topic = ConfigResource(ResourceType.TOPIC, "cfg")
    entries = described(a, topic)
    check(entries["retention.ms"].value == "3600000", f"retention.ms {entries['retention.ms']}")
    check(entries["cleanup.policy"].value == "delete", f"cleanup.policy {entries['cleanup.policy']}")
    check(entries["max.message.bytes"].value == "1048588",
          f"max.message.bytes default {entries['max.message.bytes']}")
    check(entries["retention.ms"].source != entries["cleanup.policy"].source,
          "a set key and a default must have different sources")
    print(f"described {len(entries)} topic configs")

    alter = ConfigResource(ResourceType.TOPIC, "cfg", incremental_configs=[
        ConfigEntry("retention.ms", None, incremental_operation=AlterConfigOpType.DELETE),
        ConfigEntry("segment.bytes", "1048576", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.APPEND),
    ])
    a.incremental_alter_configs([alter], request_timeout=15)[alter].result(timeout=20)
    entries = described(a, topic)
    check(entries["retention.ms"].value == "604800000", f"deleted key back to default: {entries['retention.ms']}")
    check(entries["segment.bytes"].value == "1048576", f"segment.bytes {entries['segment.bytes']}")
    check(entries["cleanup.policy"].value == "delete,compact", f"appended policy {entries['cleanup.policy']}")
    print("incremental alter: delete, set, append")

    bad = ConfigResource(ResourceType.TOPIC, "cfg", incremental_configs=[
        ConfigEntry("segment.bytes", "tiny", incremental_operation=AlterConfigOpType.SET)])
    err = error_of(a.incremental_alter_configs([bad], request_timeout=15)[bad])
    check(err is not None and err.code() == KafkaError.INVALID_CONFIG, f"bad value: {err}")
    check(described(a, topic)["segment.bytes"].value == "1048576", "a refused alter changed nothing")
    print("bad value -> INVALID_CONFIG, nothing changed")

    broker = ConfigResource(ResourceType.BROKER, "0")
    entries = described(a, broker)
    check("num.partitions" in entries and entries["num.partitions"].is_read_only, f"broker configs {entries}")
    print(f"described {len(entries)} broker configs")

    cluster = a.describe_cluster(request_timeout=15).result(timeout=20)
    # The cluster id is generated at first start (meta.properties): a 22-character base64url UUID.
    check(len(cluster.cluster_id or "") == 22 and [n.id for n in cluster.nodes] == [0], f"cluster {cluster}")
    print("described the cluster")

    a.create_partitions([NewPartitions("cfg", 4)], request_timeout=15)["cfg"].result(timeout=20)
    end = deadline()
    while len(list_topics(a)["cfg"].partitions) != 4:
        check(not expired(end), "partitions not added")
        time.sleep(0.1)
    err = error_of(a.create_partitions([NewPartitions("cfg", 3)], request_timeout=15)["cfg"])
    check(err is not None and err.code() == KafkaError.INVALID_PARTITIONS, f"shrinking: {err}")
    print("partitions 2 -> 4; shrinking -> INVALID_PARTITIONS")

    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": False, "partitioner": "random"})
    # cfg is compacted by now (cleanup.policy delete,compact): records need keys.
    for i in range(10):
        p.produce("cfg", key=f"k{i}".encode(), value=f"v{i}".encode(), partition=3)
    check(p.flush(20) == 0, "produce to a new partition")
    tp = TopicPartition("cfg", 3, 4)
    res = a.delete_records([tp], request_timeout=15)
    (deleted,) = res.values()
    low = deleted.result(timeout=20)
    check(low.low_watermark == 4, f"low watermark after delete_records: {low.low_watermark}")
    c = consumer(bootstrap)
    wm = c.get_watermark_offsets(TopicPartition("cfg", 3), timeout=10)
    check(wm == (4, 10), f"watermarks after delete_records {wm}")
    c.assign([TopicPartition("cfg", 3, OFFSET_BEGINNING)])
    m = None
    end = deadline()
    while m is None:
        check(not expired(end), "no record after delete_records")
        m = c.poll(0.5)
    check(m.error() is None and m.offset() == 4 and m.value() == b"v4", f"first record {m.offset()} {m.value()}")
    c.close()
    print("delete_records: start 4, first record v4")
    print("OK configs")


# --- roundtrip --------------------------------------------------------------------------------


def expected_records(n, base_ts):
    """(partition, key, value, headers, timestamp) for record i of a topic."""
    return [
        (i % PARTITIONS, key_of(i), value_of(i, big=True), headers_of(i), base_ts + i)
        for i in range(n)
    ]


def produce_all(bootstrap, topic, records, codec, acks):
    p = Producer({
        "bootstrap.servers": bootstrap,
        "compression.type": codec,
        "acks": acks,
        "enable.idempotence": False,
        "linger.ms": 5,
        "message.max.bytes": 2_000_000,
    })
    reports = []

    def on_delivery(err, msg):
        reports.append((err, msg.partition(), msg.offset(), msg.value()))

    for part, key, value, headers, ts in records:
        p.produce(topic, value=value, key=key, partition=part, headers=headers or None,
                  timestamp=ts, on_delivery=on_delivery)
        p.poll(0)
    left = p.flush(20)
    check(left == 0, f"{topic}: {left} records not delivered within 20 s")
    check(len(reports) == len(records), f"{topic}: {len(reports)} delivery reports for {len(records)}")
    for err, part, off, _ in reports:
        check(err is None, f"{topic}: delivery error {err} (partition {part})")
    if acks != "0":
        # Per partition, offsets are 0, 1, 2, ... in produce order.
        by_part = {}
        for _, part, off, _ in reports:
            by_part.setdefault(part, []).append(off)
        for part, offs in by_part.items():
            check(offs == list(range(len(offs))),
                  f"{topic}[{part}] acks={acks}: delivery offsets {offs[:10]}..., expected 0..")


def consume_all(c, expect_counts, what):
    """Polls until every (topic, partition) in expect_counts has that many records and EOF."""
    got = {}
    eof = set()
    end = deadline()
    while True:
        done = all(len(got.get(tp, [])) >= n and tp in eof for tp, n in expect_counts.items())
        if done:
            return got
        if expired(end):
            short = {tp: (len(got.get(tp, [])), n) for tp, n in expect_counts.items()
                     if len(got.get(tp, [])) < n or tp not in eof}
            fail(f"{what}: timed out; (got, expected) per partition: {short}")
        m = c.poll(0.5)
        if m is None:
            continue
        tp = (m.topic(), m.partition())
        if m.error():
            if m.error().code() == KafkaError._PARTITION_EOF:
                if len(got.get(tp, [])) >= expect_counts.get(tp, 0):
                    eof.add(tp)
                continue
            fail(f"{what}: consumer error {m.error()}")
        got.setdefault(tp, []).append(m)


def norm_headers(h):
    return [(k, v) for k, v in (h or [])]


def compare(topic, records, got, check_offsets=True):
    per_part = {}
    for part, key, value, headers, ts in records:
        per_part.setdefault(part, []).append((key, value, headers, ts))
    for part, want in per_part.items():
        msgs = got.get((topic, part), [])
        check(len(msgs) == len(want), f"{topic}[{part}]: consumed {len(msgs)} records, expected {len(want)}")
        for off, (m, (key, value, headers, ts)) in enumerate(zip(msgs, want)):
            where = f"{topic}[{part}] offset {m.offset()}"
            if check_offsets:
                check(m.offset() == off, f"{where}: expected offset {off}")
            check(m.key() == key, f"{where}: key {show(m.key())}, expected {show(key)}")
            check(m.value() == value, f"{where}: value {show(m.value())}, expected {show(value)}")
            check(norm_headers(m.headers()) == headers,
                  f"{where}: headers {m.headers()}, expected {headers}")
            tstype, mts = m.timestamp()
            check(mts == ts, f"{where}: timestamp {m.timestamp()}, expected create time {ts}")


def mode_roundtrip(bootstrap, count):
    a = admin_client(bootstrap)
    combos = [(codec, acks) for codec in CODECS for acks in ("0", "1", "all")]
    topics = {f"cf-{codec}-acks{acks}": (codec, acks) for codec, acks in combos}
    create(a, [NewTopic(t, num_partitions=PARTITIONS, replication_factor=1) for t in topics])
    base_ts = int(time.time() * 1000) - 100_000
    records = expected_records(count, base_ts)
    for topic, (codec, acks) in topics.items():
        produce_all(bootstrap, topic, records, codec, acks)
    print(f"produced {count} records to each of {len(topics)} topics")

    c = consumer(bootstrap, **{"fetch.message.max.bytes": 1_048_576})
    c.assign([TopicPartition(t, p, OFFSET_BEGINNING) for t in topics for p in range(PARTITIONS)])
    expect_counts = {}
    for part, *_ in records:
        for t in topics:
            expect_counts[(t, part)] = expect_counts.get((t, part), 0) + 1
    got = consume_all(c, expect_counts, "roundtrip")
    # Stop fetching first: ListOffsets would otherwise queue behind each long-poll Fetch.
    c.unassign()
    for topic in topics:
        compare(topic, records, got)
        for p in range(PARTITIONS):
            lo, hi = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            want = expect_counts[(topic, p)]
            check((lo, hi) == (0, want), f"{topic}[{p}] watermarks {(lo, hi)}, expected (0, {want})")
    c.close()
    print(f"consumed and compared every record of {len(topics)} topics x {PARTITIONS} partitions")
    print("OK roundtrip")


# --- offsets ----------------------------------------------------------------------------------


def mode_offsets(bootstrap):
    a = admin_client(bootstrap)
    topic = "cf-offsets"
    create(a, [NewTopic(topic, num_partitions=1, replication_factor=1)])
    base_ts = int(time.time() * 1000) - 1_000_000
    n = 30
    # Three separate batches (flush between), timestamps base_ts + i*1000.
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": False,
                  "compression.type": "lz4"})
    for i in range(n):
        p.produce(topic, key=f"k{i}".encode(), value=f"v{i}".encode(), partition=0,
                  timestamp=base_ts + i * 1000)
        if i % 10 == 9:
            check(p.flush(20) == 0, "flush")
    tp = TopicPartition(topic, 0)

    c = consumer(bootstrap)
    wm = c.get_watermark_offsets(tp, timeout=10)
    check(wm == (0, n), f"get_watermark_offsets {wm}, expected (0, {n})")
    cached = c.get_watermark_offsets(tp, cached=False, timeout=10)
    check(cached == (0, n), f"get_watermark_offsets(cached=False) {cached}")
    print(f"watermarks (0, {n})")

    # From the middle (inside the second batch): offsets 17.. exactly.
    c.assign([TopicPartition(topic, 0, 17)])
    got = consume_all(c, {(topic, 0): n - 17}, "from offset 17")[(topic, 0)]
    offs = [m.offset() for m in got]
    check(offs == list(range(17, n)), f"from offset 17 got offsets {offs}")
    check([m.value() for m in got] == [f"v{i}".encode() for i in range(17, n)], "values from 17")
    c.unassign()
    print("assign at 17 -> 17..29")

    # offsets_for_times: exact hit, between two records, before all, after all.
    cases = [
        (base_ts + 17_000, 17),
        (base_ts + 17_500, 18),
        (base_ts + 9_999, 10),
        (base_ts - 5_000, 0),
        (base_ts + n * 1000 + 1, OFFSET_END),
    ]
    for ts, want in cases:
        res = c.offsets_for_times([TopicPartition(topic, 0, ts)], timeout=10)
        check(res[0].error is None, f"offsets_for_times({ts}): {res[0].error}")
        check(res[0].offset == want,
              f"offsets_for_times(base+{ts - base_ts}) = {res[0].offset}, expected {want}")
    print("offsets_for_times: exact, between, before, after")

    # Consume starting from a time-looked-up offset.
    start = c.offsets_for_times([TopicPartition(topic, 0, base_ts + 25_000)], timeout=10)
    c.assign(start)
    got = consume_all(c, {(topic, 0): n - 25}, "from timestamp")[(topic, 0)]
    check([m.offset() for m in got] == list(range(25, n)), "consume from offsets_for_times result")
    for m in got:
        check(m.timestamp()[1] == base_ts + m.offset() * 1000, f"timestamp of {m.offset()}")
    c.unassign()
    print("consumed from the offset of a timestamp")

    # From the end: only records produced after the assignment.
    c.assign([TopicPartition(topic, 0, OFFSET_END)])
    # Give the consumer time to resolve END before producing.
    end = deadline()
    while True:
        m = c.poll(0.2)
        if m is not None and m.error() and m.error().code() == KafkaError._PARTITION_EOF:
            check(m.offset() == n, f"EOF at {m.offset()} when assigned at END, expected {n}")
            break
        check(m is None or m.error(), f"record at offset {m and m.offset()} when assigned at END")
        check(not expired(end), "no EOF after assigning at END")
    for i in range(n, n + 3):
        p.produce(topic, key=f"k{i}".encode(), value=f"v{i}".encode(), partition=0)
    check(p.flush(20) == 0, "flush")
    got = consume_all(c, {(topic, 0): 3}, "from END")[(topic, 0)]
    check([m.offset() for m in got] == [n, n + 1, n + 2], f"from END got {[m.offset() for m in got]}")
    c.unassign()
    print("assign at END -> only new records")
    c.close()

    # Past the end with auto.offset.reset=error: an offset-out-of-range error, no data.
    c = consumer(bootstrap, **{"auto.offset.reset": "error"})
    c.assign([TopicPartition(topic, 0, n + 100)])
    end = deadline()
    while True:
        check(not expired(end), "no error for a start offset past the end")
        m = c.poll(0.5)
        if m is None:
            continue
        check(m.error() is not None, f"record at offset {m.offset()} from a start past the end")
        if m.error().code() == KafkaError._PARTITION_EOF:
            fail(f"EOF instead of out-of-range for a start past the end: {m.error()}")
        check(m.error().code() == KafkaError._AUTO_OFFSET_RESET,
              f"start past the end: expected _AUTO_OFFSET_RESET (offset out of range), got {m.error()}")
        check("out of range" in str(m.error()).lower(), f"error text {m.error()}")
        break
    c.close()
    print("assign past end with auto.offset.reset=error -> offset out of range")

    # Past the end with the default reset (latest): no data, EOF at the end.
    c = consumer(bootstrap, **{"auto.offset.reset": "latest"})
    c.assign([TopicPartition(topic, 0, n + 100)])
    got = consume_all(c, {(topic, 0): 0}, "past end, reset latest")
    check(not got, f"records from a start past the end: {[(m.offset()) for v in got.values() for m in v]}")
    c.close()
    print("assign past end with reset latest -> EOF, no data")
    print("OK offsets")


# --- durability -------------------------------------------------------------------------------


def durable_record(i):
    return f"dk-{i}".encode(), f"durable-{i}-".encode() * (1 + i % 20)


def mode_produce(bootstrap, topic, count):
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": False,
                  "compression.type": "zstd", "linger.ms": 2})
    acked = []

    def on_delivery(err, msg):
        if err is not None:
            fail(f"delivery error {err}")
        acked.append(msg.offset())

    for i in range(count):
        k, v = durable_record(i)
        p.produce(topic, key=k, value=v, partition=0, on_delivery=on_delivery)
        p.poll(0)
    check(p.flush(20) == 0, "not every record acknowledged within 20 s")
    check(sorted(acked) == list(range(count)), f"acked offsets {sorted(acked)[:5]}.. for {count}")
    print(f"OK produced {count} acks=all records to {topic}")


def mode_consume(bootstrap, topic, count):
    c = consumer(bootstrap)
    wm = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    check(wm == (0, count), f"watermarks {wm}, expected (0, {count})")
    c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    got = consume_all(c, {(topic, 0): count}, "durability consume")[(topic, 0)]
    check(len(got) == count, f"consumed {len(got)} records, expected exactly {count}")
    for i, m in enumerate(got):
        k, v = durable_record(i)
        check(m.offset() == i and m.key() == k and m.value() == v,
              f"record {i}: offset {m.offset()} key {show(m.key())} value {show(m.value())}")
    c.close()
    print(f"OK consumed exactly {count} records from {topic}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("mode", choices=["admin", "configs", "roundtrip", "offsets", "produce", "consume"])
    ap.add_argument("--topic", default="durable")
    ap.add_argument("--count", type=int, default=40)
    args = ap.parse_args()
    if args.mode == "admin":
        mode_admin(args.bootstrap)
    elif args.mode == "configs":
        mode_configs(args.bootstrap)
    elif args.mode == "roundtrip":
        mode_roundtrip(args.bootstrap, args.count)
    elif args.mode == "offsets":
        mode_offsets(args.bootstrap)
    elif args.mode == "produce":
        mode_produce(args.bootstrap, args.topic, args.count)
    else:
        mode_consume(args.bootstrap, args.topic, args.count)


if __name__ == "__main__":
    main()
