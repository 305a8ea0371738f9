#!/usr/bin/env python3
"""Transactional producers (confluent-kafka and kafka-python) against one real odradek node.

Usage: txn_check.py --bootstrap HOST:PORT --client {confluent,kafka-python} --mode MODE

Modes (each on its own fresh topics, one partition):
  commit-abort  commit N records, abort M, commit N2 more: a read_committed consumer sees
                exactly the committed ones in order, a read_uncommitted one sees all of them
  lso           a transaction left open: the read_committed end offset (ListOffsets with
                isolation) stays at the transaction's first offset while the read_uncommitted
                one moves on; a read_committed consumer gets neither the open transaction's
                records nor a later non-transactional record until the commit, then all of them
  fence         a second producer with the same transactional.id fences the first: the first
                one's next operation fails with a fenced error and its open transaction is
                aborted (never visible to read_committed), the second one commits
  timeout       a producer with transaction.timeout.ms=2000 opens a transaction and goes
                silent: the coordinator aborts it, so a read_committed consumer reads past it
                (within TIMEOUT_ABORT_S) and never sees its records
  interleaved   two transactional producers whose batches interleave on one partition, one
                committing while the other aborts, four rounds with the roles swapped: the
                aborted transactions overlap committed ones, and read_committed must still see
                exactly the committed records in offset order
  all           every mode above, one after the other

Prints `OK <mode>` per passing mode; on any mismatch one `FAIL: <reason>` line and exit 1.
Every wait is bounded.
"""

import argparse
import os
import sys
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import check, fail  # noqa: E402

# A bound on reading a topic back.
READ_S = 30.0
# How long a read_committed consumer must see nothing while a transaction is open.
BLOCKED_S = 3.0
# Kafka's default abort check runs every 10 s (transaction.abort.timed.out.transaction
# .cleanup.interval.ms); a 2 s transaction is aborted within about 12 s of its start. Bound:
TIMEOUT_ABORT_S = 30.0
MODES = ["commit-abort", "lso", "fence", "timeout", "interleaved"]


def bounded(what, fn, seconds=READ_S):
    """Runs `fn` (a client call that may wait forever, as kafka-python's commit does) in a
    thread: its result, its exception re-raised, or `FAIL` after `seconds`."""
    out = {}

    def run():
        try:
            out["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - handed to the caller
            out["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    if t.is_alive():
        fail(f"{what}: not finished within {seconds}s")
    if "error" in out:
        raise out["error"]
    return out.get("value")


def values(prefix, n):
    return [f"{prefix}-{i}".encode() for i in range(n)]


# ---------------------------------------------------------------------------------------------
# The two clients behind one small interface.


class Confluent:
    name = "confluent"

    def __init__(self, bootstrap):
        from confluent_kafka.admin import AdminClient

        self.bootstrap = bootstrap
        self.admin = AdminClient({"bootstrap.servers": bootstrap})

    def create_topic(self, topic):
        from confluent_kafka.admin import NewTopic

        fs = self.admin.create_topics([NewTopic(topic, 1, 1)], request_timeout=10)
        fs[topic].result(timeout=15)

    def txn_producer(self, tid, timeout_ms=60000):
        from confluent_kafka import Producer

        return ConfluentTxn(Producer({
            "bootstrap.servers": self.bootstrap,
            "transactional.id": tid,
            "transaction.timeout.ms": timeout_ms,
            "linger.ms": 5,
        }))

    def plain_send(self, topic, vals):
        """An idempotent, non-transactional producer writes `vals` (acks=all)."""
        from confluent_kafka import Producer

        p = Producer({"bootstrap.servers": self.bootstrap, "enable.idempotence": True})
        errors = []
        for v in vals:
            p.produce(topic, v, on_delivery=lambda e, m: e and errors.append(e))
        check(p.flush(20) == 0, "plain producer: records left unsent after 20 s")
        check(not errors, f"plain producer: delivery errors {errors}")

    def consumer(self, topic, isolation):
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        c = Consumer({
            "bootstrap.servers": self.bootstrap,
            "group.id": f"txn-check-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "isolation.level": isolation,
            "enable.partition.eof": True,
            "fetch.wait.max.ms": 100,
        })
        c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        return ConfluentReader(c, topic)

    def end_offset(self, topic, isolation):
        """The partition's end offset as ListOffsets(latest) answers it under `isolation`."""
        from confluent_kafka import Consumer, TopicPartition

        c = Consumer({"bootstrap.servers": self.bootstrap, "group.id": "txn-check-lo",
                      "isolation.level": isolation})
        try:
            _, high = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10, cached=False)
            return high
        finally:
            c.close()


class ConfluentTxn:
    def __init__(self, p):
        self.p = p
        self.errors = []

    def init(self):
        self.p.init_transactions(20)

    def begin(self):
        self.p.begin_transaction()

    def send(self, topic, vals):
        for v in vals:
            self.p.produce(topic, v, on_delivery=self._delivered)

    def _delivered(self, err, _msg):
        if err is not None:
            self.errors.append(err)

    def flush(self):
        check(self.p.flush(20) == 0, "transactional producer: records unsent after 20 s")
        check(not self.errors, f"transactional producer: delivery errors {self.errors}")

    def commit(self):
        self.p.commit_transaction(20)

    def abort(self):
        self.p.abort_transaction(20)

    def close(self):
        pass

    @staticmethod
    def is_fenced(e):
        from confluent_kafka import KafkaError, KafkaException

        if not isinstance(e, KafkaException):
            return False
        err = e.args[0]
        return err.code() in (KafkaError._FENCED, KafkaError.PRODUCER_FENCED,
                              KafkaError.INVALID_PRODUCER_EPOCH) or err.fatal()


class ConfluentReader:
    def __init__(self, c, topic):
        self.c, self.topic = c, topic

    def poll_for(self, seconds):
        """Records (offset, value) received within `seconds`; `eof` set when the partition's
        end (LSO under read_committed) was reached at the last poll."""
        from confluent_kafka import KafkaError

        got, eof = [], False
        at = time.monotonic() + seconds
        while time.monotonic() < at:
            m = self.c.poll(0.2)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    eof = True
                    continue
                fail(f"consumer error: {m.error()}")
            eof = False
            got.append((m.offset(), m.value()))
        return got, eof

    def read_until(self, want, seconds=READ_S):
        """Reads until `want` records arrived and the end was reached, then a short grace for
        extras; returns the values in order."""
        got = []
        at = time.monotonic() + seconds
        while time.monotonic() < at:
            more, eof = self.poll_for(0.5)
            got += more
            if len(got) >= want and eof:
                more, _ = self.poll_for(0.7)
                got += more
                break
        return [v for _, v in got]

    def close(self):
        self.c.close()


class KafkaPython:
    name = "kafka-python"

    def __init__(self, bootstrap):
        from kafka import KafkaAdminClient

        self.bootstrap = bootstrap
        self.admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)

    def create_topic(self, topic):
        from kafka.admin import NewTopic

        self.admin.create_topics([NewTopic(topic, 1, 1)], timeout_ms=15000)

    def txn_producer(self, tid, timeout_ms=60000):
        from kafka import KafkaProducer

        return KafkaPythonTxn(KafkaProducer(bootstrap_servers=self.bootstrap, transactional_id=tid,
                                            transaction_timeout_ms=timeout_ms, linger_ms=5,
                                            request_timeout_ms=15000, max_block_ms=20000))

    def plain_send(self, topic, vals):
        from kafka import KafkaProducer

        p = KafkaProducer(bootstrap_servers=self.bootstrap, enable_idempotence=True, acks="all")
        futures = [p.send(topic, v) for v in vals]
        for f in futures:
            f.get(timeout=20)
        p.close(timeout=10)

    def consumer(self, topic, isolation):
        from kafka import KafkaConsumer, TopicPartition

        c = KafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None,
                          enable_auto_commit=False, isolation_level=isolation,
                          auto_offset_reset="earliest", fetch_max_wait_ms=100)
        tp = TopicPartition(topic, 0)
        c.assign([tp])
        c.seek_to_beginning(tp)
        return KafkaPythonReader(c, tp)

    def end_offset(self, topic, isolation):
        from kafka import KafkaConsumer, TopicPartition

        c = KafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None,
                          enable_auto_commit=False, isolation_level=isolation)
        try:
            tp = TopicPartition(topic, 0)
            return c.end_offsets([tp], timeout_ms=10000)[tp]
        finally:
            c.close()


class KafkaPythonTxn:
    def __init__(self, p):
        self.p = p
        self.futures = []

    def init(self):
        bounded("kafka-python init_transactions", self.p.init_transactions)

    def begin(self):
        self.p.begin_transaction()

    def send(self, topic, vals):
        self.futures += [self.p.send(topic, v) for v in vals]

    def flush(self):
        self.p.flush(timeout=20)
        for f in self.futures:
            f.get(timeout=20)
        self.futures = []

    def commit(self):
        bounded("kafka-python commit_transaction", self.p.commit_transaction)

    def abort(self):
        bounded("kafka-python abort_transaction", self.p.abort_transaction)

    def close(self):
        try:
            self.p.close(timeout=5)
        except Exception:  # noqa: BLE001 - a fenced producer may complain on close
            pass

    @staticmethod
    def is_fenced(e):
        from kafka import errors as Errors

        return isinstance(e, (Errors.ProducerFencedError, Errors.InvalidProducerEpochError))


class KafkaPythonReader:
    def __init__(self, c, tp):
        self.c, self.tp = c, tp

    def poll_for(self, seconds):
        got = []
        at = time.monotonic() + seconds
        while time.monotonic() < at:
            for recs in self.c.poll(timeout_ms=200).values():
                got += [(r.offset, r.value) for r in recs]
        return got, None

    def read_until(self, want, seconds=READ_S):
        got = []
        at = time.monotonic() + seconds
        while time.monotonic() < at:
            more, _ = self.poll_for(0.5)
            got += more
            if len(got) >= want:
                more, _ = self.poll_for(1.0)
                got += more
                break
        return [v for _, v in got]

    def close(self):
        self.c.close()


# ---------------------------------------------------------------------------------------------


def fresh(client, mode):
    topic = f"txn-{mode}-{client.name}-{uuid.uuid4().hex[:6]}"
    client.create_topic(topic)
    return topic, f"tid-{topic}"


def expect_exactly(what, got, want):
    if got != want:
        extra = [v for v in got if v not in want]
        missing = [v for v in want if v not in got]
        fail(f"{what}: {len(got)} records, expected {len(want)}; extra {extra[:5]}, missing "
             f"{missing[:5]}, first got {got[:5]}")


def mode_commit_abort(client):
    topic, tid = fresh(client, "ca")
    a, b, c = values("commit1", 50), values("aborted", 30), values("commit2", 20)
    p = client.txn_producer(tid)
    p.init()
    p.begin()
    p.send(topic, a)
    p.commit()
    p.begin()
    p.send(topic, b)
    p.flush()  # the aborted records really reach the log
    p.abort()
    p.begin()
    p.send(topic, c)
    p.commit()
    p.close()

    r = client.consumer(topic, "read_committed")
    expect_exactly("read_committed", r.read_until(len(a + c)), a + c)
    r.close()
    r = client.consumer(topic, "read_uncommitted")
    expect_exactly("read_uncommitted", r.read_until(len(a + b + c)), a + b + c)
    r.close()
    # Three transactions: three control records after the 100 data records.
    committed_end = client.end_offset(topic, "read_committed")
    uncommitted_end = client.end_offset(topic, "read_uncommitted")
    check(committed_end == uncommitted_end == 103,
          f"end offsets with nothing open: read_committed {committed_end}, read_uncommitted "
          f"{uncommitted_end}, expected 103 (100 records and 3 markers)")
    print(f"OK commit-abort ({client.name}): read_committed saw {len(a + c)}, read_uncommitted "
          f"{len(a + b + c)}, end offset {uncommitted_end}", flush=True)


def mode_lso(client):
    topic, tid = fresh(client, "lso")
    first = values("before", 10)
    client.plain_send(topic, first)  # offsets 0..9, stable
    p = client.txn_producer(tid)
    p.init()
    p.begin()
    opened = values("open", 25)
    p.send(topic, opened)
    p.flush()  # offsets 10..34, in the log, undecided
    after = values("plain-after", 5)
    client.plain_send(topic, after)  # offsets 35..39, stable but after the open transaction

    committed_end = client.end_offset(topic, "read_committed")
    uncommitted_end = client.end_offset(topic, "read_uncommitted")
    check(uncommitted_end == 40, f"read_uncommitted end offset {uncommitted_end}, expected 40")
    check(committed_end == 10,
          f"read_committed end offset (LSO) {committed_end} with a transaction open from offset "
          "10, expected 10")

    rc = client.consumer(topic, "read_committed")
    got = rc.read_until(len(first), seconds=READ_S)
    expect_exactly("read_committed before the commit", got, first)
    blocked, _ = rc.poll_for(BLOCKED_S)
    check(not blocked, f"read_committed got {[v for _, v in blocked][:5]} while the transaction "
          "before them was open")
    ru = client.consumer(topic, "read_uncommitted")
    expect_exactly("read_uncommitted while open", ru.read_until(40), first + opened + after)
    ru.close()

    p.commit()
    p.close()
    got = rc.read_until(len(opened + after))
    expect_exactly("read_committed after the commit", got, opened + after)
    rc.close()
    committed_end = client.end_offset(topic, "read_committed")
    check(committed_end == 41, f"read_committed end offset after the commit {committed_end}, "
          "expected 41 (40 records and the marker)")
    print(f"OK lso ({client.name}): LSO held at 10 while the high watermark was 40", flush=True)


def mode_fence(client):
    topic, tid = fresh(client, "fence")
    first = client.txn_producer(tid)
    first.init()
    first.begin()
    zombie = values("zombie", 20)
    first.send(topic, zombie)
    first.flush()  # in the log, in first's open transaction

    second = client.txn_producer(tid)
    second.init()  # bumps the epoch, aborts first's transaction
    # first's next operations must fail as fenced.
    fenced_by = None
    try:
        # No flush of our own here: commit flushes, and raises what the sends got.
        first.send(topic, values("zombie-late", 3))
        first.commit()
    except Exception as e:  # noqa: BLE001
        fenced_by = e
    check(fenced_by is not None, "the fenced producer committed its transaction")
    check(first.is_fenced(fenced_by),
          f"the fenced producer failed with {fenced_by!r}, not a fenced error")
    first.close()

    good = values("second", 15)
    second.begin()
    second.send(topic, good)
    second.commit()
    second.close()
    r = client.consumer(topic, "read_committed")
    expect_exactly("read_committed after fencing", r.read_until(len(good)), good)
    r.close()
    r = client.consumer(topic, "read_uncommitted")
    got = r.read_until(len(zombie + good))
    r.close()
    check(all(v in got for v in zombie + good) and
          not any(v.startswith(b"zombie-late") for v in got),
          f"read_uncommitted: {len(got)} records {got[:5]}...; expected the 20 aborted and 15 "
          "committed ones, and none of the late sends after fencing")
    print(f"OK fence ({client.name}): fenced with {type(fenced_by).__name__}: {fenced_by}",
          flush=True)


def mode_timeout(client):
    topic, tid = fresh(client, "timeout")
    p = client.txn_producer(tid, timeout_ms=2000)
    p.init()
    p.begin()
    abandoned = values("abandoned", 10)
    p.send(topic, abandoned)
    p.flush()
    started = time.monotonic()
    later = values("later", 5)
    client.plain_send(topic, later)
    # p goes silent (it is neither committed nor closed): the coordinator must abort it.
    r = client.consumer(topic, "read_committed")
    got = r.read_until(len(later), seconds=TIMEOUT_ABORT_S)
    took = time.monotonic() - started
    r.close()
    expect_exactly(f"read_committed {took:.1f}s after a transaction with a 2 s timeout went "
                   "silent", got, later)
    # The producer's late commit must now fail (its transaction was aborted, epoch bumped).
    try:
        p.commit()
        late = None
    except Exception as e:  # noqa: BLE001
        late = e
    check(late is not None, "a transaction aborted on timeout was committed afterwards")
    r = client.consumer(topic, "read_committed")
    got = r.read_until(len(later), seconds=5)
    r.close()
    expect_exactly("read_committed after the late commit attempt", got, later)
    p.close()
    print(f"OK timeout ({client.name}): read past the abandoned transaction after {took:.1f}s; "
          f"late commit failed with {late!r}"[:300], flush=True)


def mode_interleaved(client):
    topic, tid = fresh(client, "il")
    a, b = client.txn_producer(tid + "-a"), client.txn_producer(tid + "-b")
    a.init()
    b.init()
    committed, everything = [], []
    for rnd in range(4):
        a.begin()
        b.begin()
        sent = []
        for i in range(6):
            # One flushed batch each, alternately: the two transactions overlap in the log.
            for name, p in (("a", a), ("b", b)):
                batch = values(f"r{rnd}-{name}{i}", 3)
                p.send(topic, batch)
                p.flush()
                sent += batch
        everything += sent
        (winner, wname), (loser, _) = ((a, "a"), (b, "b"))[::1 if rnd % 2 == 0 else -1]
        committed += [v for v in sent if v.startswith(f"r{rnd}-{wname}".encode())]
        loser.abort()
        winner.commit()
    a.close()
    b.close()
    r = client.consumer(topic, "read_committed")
    expect_exactly("read_committed over interleaved transactions", r.read_until(len(committed)),
                   committed)
    r.close()
    r = client.consumer(topic, "read_uncommitted")
    expect_exactly("read_uncommitted over interleaved transactions",
                   r.read_until(len(everything)), everything)
    r.close()
    ends = (client.end_offset(topic, "read_committed"),
            client.end_offset(topic, "read_uncommitted"))
    want = len(everything) + 8  # a marker per transaction
    check(ends == (want, want), f"end offsets {ends}, expected {want} for both")
    print(f"OK interleaved ({client.name}): {len(committed)} of {len(everything)} records "
          "committed across 8 overlapping transactions", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--client", choices=["confluent", "kafka-python"], required=True)
    ap.add_argument("--mode", choices=MODES + ["all"], required=True)
    args = ap.parse_args()
    kind = Confluent if args.client == "confluent" else KafkaPython
    client = kind(args.bootstrap)
    for mode in MODES if args.mode == "all" else [args.mode]:
        {"commit-abort": mode_commit_abort, "lso": mode_lso, "fence": mode_fence,
         "timeout": mode_timeout, "interleaved": mode_interleaved}[mode](client)


if __name__ == "__main__":
    main()
