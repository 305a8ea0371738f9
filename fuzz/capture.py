#!/usr/bin/env python3
"""Seed corpora for the fuzz targets, captured from real Kafka clients talking to a live node.

    python3 fuzz/capture.py [--node target/debug/odradek] [--out DIR] [--port 29310]

Starts a node (`odradek serve`, its own data directory) and a small TCP proxy in front of it
(the node advertises the proxy's address, so every connection goes through it), then drives it
with kcat, confluent-kafka and kafka-python: produce with every codec, idempotent and
transactional producers (commit, abort, offsets sent to a transaction), consumer groups
(JoinGroup, SyncGroup, Heartbeat, OffsetCommit/Fetch, LeaveGroup), admin calls (create, delete
and describe topics and configs, list and describe groups). It writes, one file per distinct
input (named by its SHA-1):

- request/: every request frame a client sent (length prefix and body);
- batch/: `0x01` + every RecordBatch found in requests and responses (produce requests and
  fetch responses), mode 1 = "fix CRCs" (see fuzz_targets/batch.rs);
- segment_recovery/: `0x00` + the first bytes of each partition segment the node wrote,
  `0x02`/`0x03` + segment and index, split at the middle;
- offsets_records/: the keys and values of the node's `__consumer_offsets` records;
- txn_records/: `0x00` + `__transaction_state` keys and values, `0x01` + control batches,
  `0x02` + segment bounds + `.txnindex` files, `0x03` + producer snapshots (less their CRC).

Then merge them into fuzz/corpus/<target> with `scripts/fuzz.sh merge <target>` (which keeps
only inputs that add coverage). Every process it starts it stops (by its PID), also on error.
"""

import argparse
import asyncio
import hashlib
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid

from kafka.record.default_records import DefaultRecordBatch
from kafka.record.util import calc_crc32c

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Most bytes of one segment seed: recovery is fuzzed on small files.
SEGMENT_SEED_BYTES = 16 << 10
# Most bytes of one request or batch seed (a large one adds no coverage and slows the target).
SEED_BYTES_MAX = 64 << 10


class Seeds:
    """Writes distinct inputs into per-target folders, thread-safe."""

    def __init__(self, out):
        self.out = out
        self.lock = threading.Lock()
        self.counts = {}

    def add(self, target, data):
        if not data or len(data) > SEED_BYTES_MAX:
            return
        d = os.path.join(self.out, target)
        os.makedirs(d, exist_ok=True)
        name = hashlib.sha1(data).hexdigest()
        path = os.path.join(d, name)
        with self.lock:
            if not os.path.exists(path):
                with open(path, "wb") as f:
                    f.write(data)
                self.counts[target] = self.counts.get(target, 0) + 1


def batches_in(buf):
    """RecordBatch v2 byte ranges found anywhere in `buf` (magic 2, a length that fits, a CRC-32C
    that matches)."""
    out = []
    i, n = 0, len(buf)
    while i + 61 <= n:
        if buf[i + 16] == 2:
            (length,) = struct.unpack_from(">i", buf, i + 8)
            end = i + 12 + length
            if 49 <= length and end <= n:
                (crc,) = struct.unpack_from(">I", buf, i + 17)
                if calc_crc32c(bytes(buf[i + 21:end])) == crc:
                    out.append(bytes(buf[i:end]))
                    i = end
                    continue
        i += 1
    return out


async def pump_requests(reader, writer, seeds):
    try:
        while True:
            prefix = await reader.readexactly(4)
            (size,) = struct.unpack(">i", prefix)
            if size < 0 or size > 100 << 20:
                return
            body = await reader.readexactly(size)
            seeds.add("request", prefix + body)
            for b in batches_in(body):
                seeds.add("batch", b"\x01" + b)
            writer.write(prefix + body)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def pump_responses(reader, writer, seeds):
    try:
        while True:
            prefix = await reader.readexactly(4)
            (size,) = struct.unpack(">i", prefix)
            body = await reader.readexactly(size)
            for b in batches_in(body):
                seeds.add("batch", b"\x01" + b)
            writer.write(prefix + body)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


def run_proxy(listen_port, node_port, seeds, ready, stop):
    async def main():
        async def handle(client_r, client_w):
            try:
                node_r, node_w = await asyncio.open_connection("127.0.0.1", node_port)
            except OSError:
                client_w.close()
                return
            await asyncio.gather(
                pump_requests(client_r, node_w, seeds),
                pump_responses(node_r, client_w, seeds),
            )

        server = await asyncio.start_server(handle, "127.0.0.1", listen_port)
        ready.set()
        while not stop.is_set():
            await asyncio.sleep(0.1)
        server.close()

    asyncio.run(main())


def wait_port(port, timeout_s=60):
    import socket

    deadline = time.time() + timeout_s
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.2)
    return False


def step(name, fn):
    """Runs one client scenario; a failure is reported and the capture goes on."""
    t0 = time.time()
    try:
        fn()
        print(f"  {name}: ok ({time.time() - t0:.1f}s)")
    except Exception as e:  # noqa: BLE001 - a scenario's failure must not stop the others
        print(f"  {name}: FAILED: {e!r}")


CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]


def drive(boot):
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic
    import kafka

    admin = AdminClient({"bootstrap.servers": boot})

    def create_topics():
        fs = admin.create_topics(
            [NewTopic(f"fz-{c}", num_partitions=2, replication_factor=1) for c in CODECS]
            + [NewTopic("fz-txn", num_partitions=1, replication_factor=1),
               NewTopic("fz-gone", num_partitions=1, replication_factor=1,
                        config={"cleanup.policy": "compact", "retention.ms": "60000"})]
        )
        for f in fs.values():
            f.result(30)

    def confluent_produce():
        for c in CODECS:
            p = Producer({"bootstrap.servers": boot, "compression.codec": c, "linger.ms": 20,
                          "enable.idempotence": c in ("lz4", "zstd")})
            for i in range(40):
                p.produce(f"fz-{c}", key=f"k{i % 7}".encode(), value=(f"value {i} " * (i % 9 + 1)).encode(),
                          headers=[("h", b"v"), ("n", None)] if i % 3 == 0 else None)
            p.produce(f"fz-{c}", key=b"tomb", value=None)
            assert p.flush(30) == 0

    def kafka_python_produce():
        for c in ["gzip", "snappy", "lz4", "zstd", None]:
            p = kafka.KafkaProducer(bootstrap_servers=boot, compression_type=c, linger_ms=10)
            for i in range(20):
                p.send(f"fz-{c or 'none'}", key=b"kp%d" % i, value=b"x" * (i * 13),
                       headers=[("a", b"b")])
            p.flush(30)
            p.close()

    def kcat_produce_consume():
        for c in CODECS:
            data = "".join(f"kc{i}:kcat value {i}\n" for i in range(15))
            subprocess.run(["kcat", "-b", boot, "-P", "-t", f"fz-{c}", "-K:", "-z", c if c != "none" else "none"],
                           input=data.encode(), check=True, timeout=60)
        subprocess.run(["kcat", "-b", boot, "-C", "-t", "fz-gzip", "-e", "-q", "-o", "beginning"],
                       check=True, timeout=60, capture_output=True)
        subprocess.run(["kcat", "-b", boot, "-L"], check=True, timeout=60, capture_output=True)
        subprocess.run(["kcat", "-b", boot, "-G", "fz-kcat-group", "-e", "-q", "fz-none"],
                       timeout=60, capture_output=True)

    def confluent_group():
        c = Consumer({"bootstrap.servers": boot, "group.id": "fz-group", "auto.offset.reset": "earliest",
                      "enable.auto.commit": False, "isolation.level": "read_committed"})
        c.subscribe([f"fz-{x}" for x in CODECS])
        got, deadline = 0, time.time() + 30
        while got < 300 and time.time() < deadline:
            m = c.poll(0.5)
            if m is not None and m.error() is None:
                got += 1
                if got % 50 == 0:
                    c.commit(message=m, asynchronous=False)
        c.commit(asynchronous=False)
        c.committed([TopicPartition("fz-none", 0)], timeout=10)
        c.close()
        c = Consumer({"bootstrap.servers": boot, "group.id": "fz-group-coop", "auto.offset.reset": "earliest",
                      "partition.assignment.strategy": "cooperative-sticky", "group.instance.id": "static-1"})
        c.subscribe(["fz-zstd"])
        deadline = time.time() + 15
        while time.time() < deadline:
            m = c.poll(0.5)
            if m is not None and m.error() is None:
                break
        c.close()

    def kafka_python_group():
        c = kafka.KafkaConsumer("fz-snappy", "fz-lz4", bootstrap_servers=boot, group_id="fz-kp-group",
                                auto_offset_reset="earliest", consumer_timeout_ms=5000)
        n = sum(1 for _ in c)
        c.commit()
        c.close()
        assert n > 0

    def transactions():
        p = Producer({"bootstrap.servers": boot, "transactional.id": "fz-txn-1", "compression.codec": "lz4"})
        p.init_transactions(30)
        c = Consumer({"bootstrap.servers": boot, "group.id": "fz-txn-group", "auto.offset.reset": "earliest",
                      "enable.auto.commit": False})
        c.subscribe(["fz-none"])
        deadline = time.time() + 20
        while not c.assignment() and time.time() < deadline:
            c.poll(0.5)
        for commit in (True, False, True):
            p.begin_transaction()
            for i in range(5):
                p.produce("fz-txn", key=b"t%d" % i, value=b"txn value %d" % i)
            p.send_offsets_to_transaction([TopicPartition("fz-none", 0, 3)], c.consumer_group_metadata(), 30)
            if commit:
                p.commit_transaction(30)
            else:
                p.abort_transaction(30)
        c.close()
        r = Consumer({"bootstrap.servers": boot, "group.id": "fz-txn-reader", "auto.offset.reset": "earliest",
                      "isolation.level": "read_committed"})
        r.subscribe(["fz-txn"])
        deadline = time.time() + 10
        while time.time() < deadline:
            r.poll(0.3)
        r.close()

    def admin_calls():
        admin.describe_configs([ConfigResource("topic", "fz-gzip"), ConfigResource("broker", "0")])[
            ConfigResource("topic", "fz-gzip")].result(30)
        admin.list_consumer_groups().result(30)
        admin.describe_consumer_groups(["fz-group"])["fz-group"].result(30)
        admin.list_topics(timeout=30)
        from confluent_kafka.admin import NewPartitions
        for f in admin.create_partitions([NewPartitions("fz-none", 3)]).values():
            f.result(30)
        for f in admin.delete_topics(["fz-gone"]).values():
            f.result(30)
        ka = kafka.KafkaAdminClient(bootstrap_servers=boot)
        ka.create_topics([kafka.admin.NewTopic("fz-kp-admin", 1, 1)])
        ka.describe_configs([kafka.admin.ConfigResource(kafka.admin.ConfigResourceType.TOPIC, "fz-kp-admin")])
        ka.describe_consumer_groups(["fz-kp-group"])
        ka.list_consumer_group_offsets("fz-kp-group")
        ka.delete_topics(["fz-kp-admin"])
        ka.close()

    for name, fn in [("create topics", create_topics), ("confluent-kafka produce", confluent_produce),
                     ("kafka-python produce", kafka_python_produce), ("kcat", kcat_produce_consume),
                     ("confluent-kafka group", confluent_group), ("kafka-python group", kafka_python_group),
                     ("transactions", transactions), ("admin", admin_calls)]:
        step(name, fn)


def records_of(segment):
    """(key, value) of every record in the batches of a segment file."""
    out, pos = [], 0
    while pos + 61 <= len(segment):
        (length,) = struct.unpack_from(">i", segment, pos + 8)
        end = pos + 12 + length
        if length < 49 or end > len(segment):
            break
        batch = DefaultRecordBatch(bytearray(segment[pos:end]))
        if not batch.is_control_batch:
            for r in batch:
                out.append((r.key, r.value))
        pos = end
    return out


def harvest_disk(data_dir, seeds):
    for dirpath, _, files in os.walk(data_dir):
        part = os.path.basename(dirpath)
        for name in files:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as f:
                data = f.read()
            if name.endswith(".log"):
                seg = data[:SEGMENT_SEED_BYTES]
                if not seg:
                    continue
                # Whole batches only, for the first seed; the fuzzer cuts its own.
                seeds.add("segment_recovery", b"\x00" + seg)
                index_path = path[:-4] + ".index"
                if os.path.exists(index_path):
                    with open(index_path, "rb") as f:
                        index = f.read()
                    if index:
                        seeds.add("segment_recovery", b"\x02\x80" + seg[:4096] + index[:4096])
                for b in batches_in(seg):
                    if (b[22] & 0x20) != 0:  # control batch (attributes bit 5)
                        seeds.add("txn_records", b"\x01" + b)
                if part.startswith("__consumer_offsets"):
                    for k, v in records_of(seg):
                        for x in (k, v):
                            if x:
                                seeds.add("offsets_records", bytes(x))
                if part.startswith("__transaction_state"):
                    for k, v in records_of(seg):
                        for x in (k, v):
                            if x:
                                seeds.add("txn_records", b"\x00" + bytes(x))
            elif name.endswith(".txnindex") and data:
                base = int(name.split(".")[0])
                seeds.add("txn_records", b"\x02" + struct.pack(">QQ", base, base + (1 << 32)) + data)
            elif name.endswith(".snapshot") and len(data) > 4:
                seeds.add("txn_records", b"\x03" + data[:-4])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--node", default=os.path.join(ROOT, "target", "debug", "odradek"))
    ap.add_argument("--out", default=os.path.join(ROOT, "fuzz", "captured"))
    ap.add_argument("--port", type=int, default=29310, help="the node's port; the proxy takes the next")
    args = ap.parse_args()

    seeds = Seeds(args.out)
    data_dir = tempfile.mkdtemp(prefix="odradek-capture-")
    node_port, proxy_port = args.port, args.port + 1
    stop = threading.Event()
    ready = threading.Event()
    proxy = threading.Thread(target=run_proxy, args=(proxy_port, node_port, seeds, ready, stop), daemon=True)
    proxy.start()
    ready.wait(10)
    log = open(os.path.join(data_dir, "..", f"odradek-capture-{uuid.uuid4().hex[:6]}.log"), "wb")
    node = subprocess.Popen(
        [args.node, "serve", "--listen", f"127.0.0.1:{node_port}", "--advertise", f"127.0.0.1:{proxy_port}",
         "--smp", "1", "--data-dir", os.path.join(data_dir, "data"), "--offsets-topic-replication-factor", "1"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        if not wait_port(node_port):
            sys.exit("the node did not open its port")
        drive(f"127.0.0.1:{proxy_port}")
    finally:
        node.send_signal(signal.SIGTERM)
        try:
            node.wait(30)
        except subprocess.TimeoutExpired:
            node.kill()
            node.wait()
        stop.set()
        proxy.join(5)
        log.close()
    harvest_disk(os.path.join(data_dir, "data"), seeds)
    shutil.rmtree(data_dir, ignore_errors=True)
    for target, n in sorted(seeds.counts.items()):
        print(f"{target}: {n} new inputs in {os.path.join(args.out, target)}")


if __name__ == "__main__":
    main()
