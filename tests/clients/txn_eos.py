#!/usr/bin/env python3
"""Exactly-once consume-transform-produce with confluent-kafka transactions against real nodes.

Modes (the Rust test `node/tests/transactions.rs` runs them as processes, SIGKILLs the
processor and the node(s) at random moments, and restarts them):

  seed       create the input and output topics (--partitions, --replication-factor) and write
             --count input records, key and value "i", to partition i % partitions
             (idempotent producer, acks=all); prints `OK seeded N`
  process    the processor: a read_committed group consumer (static member, so a restarted
             processor takes its place at once) and a transactional producer; per transaction
             up to --batch input records become "i:out" on the same partition of the output,
             with the consumed offsets (send_offsets_to_transaction), then commit. Every
             --abort-every'th transaction is aborted on purpose after its records were written,
             with values tagged "ABORT:i:out", and its input is read again. Prints
             `COMMITTED <records> <txns>` after each commit (then sleeps --pause-ms),
             `ABORTED <txns>` after each abort, and `DONE ...` (exit 0) once the group's
             committed offsets reach the input's end. Exits 3 on a fatal client error (e.g.
             fenced): the test restarts it.
  watch      a live read_committed consumer of the output (no group) that fails as soon as
             it sees an aborted-tagged record, an input's result twice (at another offset) or
             a partition out of order; prints `OK watch` once it saw all --count results
  verify     reads the whole output with read_committed: each input's result exactly once,
             per partition in input order, nothing tagged ABORT; and with read_uncommitted: the
             aborted records are really in the log (so the first check could fail)
  self-test  the checker against synthetic histories: clean passes; a duplicate, a lost
             result, an aborted record and a reordering are each reported

Every wait is bounded (--deadline for the long-running modes).
"""

import argparse
import faulthandler
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import check, create_topic_once, fail, wait_for  # noqa: E402

ABORT_TAG = b"ABORT:"
# The timeout given to each transactional API call (a timed-out one is retried), and how long
# one may block before the processor counts as stuck.
API_TIMEOUT_S = 10
API_STUCK_S = 20


def say(*parts):
    print(*parts, flush=True)


# --- The checker (pure, self-tested) ------------------------------------------------------------


def expected_value(i):
    return f"{i}:out".encode()


def parse(value):
    """(input index, aborted-tagged) of an output value; None if it is not one of ours."""
    tagged = value.startswith(ABORT_TAG)
    body = value[len(ABORT_TAG):] if tagged else value
    if not body.endswith(b":out"):
        return None
    try:
        return int(body[:-4]), tagged
    except ValueError:
        return None


class Checker:
    """Feeds on (partition, offset, value) as a read_committed consumer saw them; collects
    anomalies: a record of an aborted transaction, a result seen twice at different offsets,
    a result on the wrong partition or out of input order within its partition, garbage."""

    def __init__(self, count, partitions):
        self.count, self.partitions = count, partitions
        self.seen = {}  # input index -> (partition, offset)
        self.at = {}  # (partition, offset) -> value, to ignore re-deliveries of one offset
        self.last = {}  # partition -> last input index
        self.anomalies = []

    def add(self, partition, offset, value):
        if (partition, offset) in self.at:
            if self.at[(partition, offset)] != value:
                self.anomalies.append(f"offset {partition}/{offset} changed: "
                                      f"{self.at[(partition, offset)]!r} then {value!r}")
            return
        self.at[(partition, offset)] = value
        parsed = parse(value or b"")
        if parsed is None:
            self.anomalies.append(f"garbage {value!r} at {partition}/{offset}")
            return
        i, tagged = parsed
        if tagged:
            self.anomalies.append(f"aborted record {value!r} visible at {partition}/{offset}")
            return
        if not 0 <= i < self.count or i % self.partitions != partition:
            self.anomalies.append(f"result of input {i} at {partition}/{offset}: not ours")
            return
        if i in self.seen:
            self.anomalies.append(f"duplicate: input {i} at {self.seen[i]} and "
                                  f"{(partition, offset)}")
            return
        if self.last.get(partition, -1) > i:
            self.anomalies.append(f"out of order on partition {partition}: input {i} at offset "
                                  f"{offset} after input {self.last[partition]}")
        self.last[partition] = max(self.last.get(partition, -1), i)
        self.seen[i] = (partition, offset)

    def complete(self):
        return len(self.seen) == self.count

    def missing(self):
        return [i for i in range(self.count) if i not in self.seen]

    def report(self, final):
        """None when clean (and, if `final`, complete); else a description."""
        problems = list(self.anomalies[:10])
        if len(self.anomalies) > 10:
            problems.append(f"... {len(self.anomalies) - 10} more anomalies")
        if final and not self.complete():
            miss = self.missing()
            problems.append(f"lost: {len(miss)} inputs without a result, e.g. {miss[:10]}")
        return "; ".join(problems) if problems else None


def self_test():
    count, parts = 12, 3

    def history():
        h, offsets = [], [0] * parts
        for i in range(count):
            p = i % parts
            h.append((p, offsets[p], expected_value(i)))
            offsets[p] += 1
        return h

    def run(h):
        c = Checker(count, parts)
        for rec in h:
            c.add(*rec)
        return c.report(final=True)

    check(run(history()) is None, f"clean history reported: {run(history())}")
    redelivered = history() + [history()[4]]
    check(run(redelivered) is None, "a re-delivery of the same offset counted as a duplicate")
    cases = {
        "duplicate": history() + [(1, 99, expected_value(4))],
        "lost": history()[:-1],
        "aborted": history() + [(0, 50, ABORT_TAG + expected_value(3))],
        "reordered": [r for r in history() if r[2] != expected_value(3)] +
                     [(0, 77, expected_value(3))],
        "garbage": history() + [(2, 60, b"hello")],
        "wrong partition": history() + [(0, 61, expected_value(count + 1))],
    }
    for name, h in cases.items():
        check(run(h) is not None, f"checker missed the {name} anomaly")
        say(f"self-test {name}: {run(h)}")
    say("OK self-test")


# --- Clients --------------------------------------------------------------------------------


def conf(args, **extra):
    c = {"bootstrap.servers": args.bootstrap}
    c.update(extra)
    return c


def mode_seed(args):
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient(conf(args))
    for t in (args.input, args.output):
        wait_for(f"create {t}", lambda t=t: create_topic_once(
            admin, NewTopic(t, args.partitions, args.replication_factor)), 60, every=1)
    p = Producer(conf(args, **{"enable.idempotence": True, "linger.ms": 20}))
    errors = []
    for i in range(args.count):
        while True:
            try:
                p.produce(args.input, str(i).encode(), key=str(i).encode(),
                          partition=i % args.partitions,
                          on_delivery=lambda e, m: e and errors.append(e))
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    check(p.flush(60) == 0, "seed: records unsent after 60 s")
    check(not errors, f"seed: delivery errors {errors[:3]}")
    say(f"OK seeded {args.count}")


def input_ends(args):
    """The input's end offsets, through a consumer of its own: one made just after a node's
    restart may keep a stale "unknown partition" in its metadata cache, so each attempt starts
    afresh."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer(conf(args, **{"group.id": f"{args.group}-ends"}))
    try:
        ends = {}
        for p in range(args.partitions):
            _, high = c.get_watermark_offsets(TopicPartition(args.input, p), timeout=5,
                                              cached=False)
            ends[p] = high
        return ends
    finally:
        c.close()


def mode_process(args):
    # `kill -USR1 <pid>` prints every thread's stack (to find where a stuck processor waits).
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

    end_at = time.monotonic() + args.deadline
    consumer = Consumer(conf(args, **{
        "group.id": args.group,
        "group.instance.id": f"{args.group}-processor",
        "isolation.level": "read_committed",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 10000,
        "max.poll.interval.ms": 60000,
        "fetch.wait.max.ms": 100,
    }))
    producer = Producer(conf(args, **{
        "transactional.id": args.transactional_id,
        "transaction.timeout.ms": 20000,
        "linger.ms": 5,
        **({"debug": args.debug} if args.debug else {}),
    }))
    ends = wait_for("input end offsets", lambda: input_ends(args), 60, every=0.5)
    check(sum(ends.values()) == args.count,
          f"input holds {sum(ends.values())} records, expected {args.count}")

    def retrying(what, fn, tries=10):
        """Calls a transactional API, again after retriable errors; returns None, or the
        KafkaError that needs an abort; exits 3 on a fatal one."""
        for _ in range(tries):
            try:
                # librdkafka 2.16 can block in send_offsets_to_transaction() past its timeout
                # after the group coordinator's connection was lost (its issues #5456 and
                # #5511, client side): after API_STUCK_S the process dumps its stacks and
                # exits 1, and the test starts a new processor (which fences this one).
                faulthandler.dump_traceback_later(API_STUCK_S, exit=True)
                try:
                    fn()
                finally:
                    faulthandler.cancel_dump_traceback_later()
                return None
            except KafkaException as e:
                err = e.args[0]
                if err.fatal():
                    say(f"FATAL {what}: {err}")
                    sys.exit(3)
                if err.txn_requires_abort():
                    return err
                if not err.retriable():
                    say(f"FATAL {what}: non-retriable {err}")
                    sys.exit(3)
                say(f"RETRY {what}: {err}")
                time.sleep(0.2)
        say(f"FATAL {what}: still failing after {tries} tries")
        sys.exit(3)

    err = retrying("init_transactions", lambda: producer.init_transactions(API_TIMEOUT_S))
    check(err is None, f"init_transactions asked for an abort: {err}")
    consumer.subscribe([args.input])
    txns = committed = 0
    last_done_check = 0.0

    def abort_and_rewind(first):
        err = retrying("abort_transaction", lambda: producer.abort_transaction(API_TIMEOUT_S))
        if err is not None:
            say(f"FATAL abort_transaction: {err}")
            sys.exit(3)
        for p, off in first.items():
            consumer.seek(TopicPartition(args.input, p, off))

    while True:
        if time.monotonic() > end_at:
            say(f"FAIL: processor still running after {args.deadline}s ({committed} committed)")
            sys.exit(1)
        msgs = consumer.consume(num_messages=args.batch, timeout=0.5)
        good = []
        for m in msgs:
            if m.error():
                if m.error().code() != KafkaError._PARTITION_EOF:
                    say(f"consumer error: {m.error()}")
                continue
            good.append(m)
        if not good:
            if time.monotonic() - last_done_check > 1.0:
                last_done_check = time.monotonic()
                try:
                    got = consumer.committed(
                        [TopicPartition(args.input, p) for p in range(args.partitions)],
                        timeout=5)
                    if all(tp.offset >= ends[tp.partition] for tp in got):
                        say(f"DONE committed {committed} records in {txns} transactions")
                        consumer.close()
                        return
                except KafkaException as e:
                    say(f"committed(): {e}")
            continue

        txns += 1
        on_purpose = args.abort_every > 0 and txns % args.abort_every == 0
        first, nxt = {}, {}
        err = retrying("begin_transaction", producer.begin_transaction, tries=1)
        for m in good:
            if err is not None:
                break
            first.setdefault(m.partition(), m.offset())
            nxt[m.partition()] = m.offset() + 1
            value = m.value() + b":out"
            if on_purpose:
                value = ABORT_TAG + value
            while True:
                try:
                    producer.produce(args.output, value, key=m.key(), partition=m.partition())
                    break
                except BufferError:
                    producer.poll(0.05)
                except KafkaException as e:
                    if e.args[0].fatal():
                        say(f"FATAL produce: {e}")
                        sys.exit(3)
                    err = e.args[0]
                    break
        if err is None and on_purpose:
            # The records must be in the log before the abort, so that a reader could see them.
            producer.flush(API_TIMEOUT_S)
            abort_and_rewind(first)
            say(f"ABORTED {txns} on purpose")
            continue
        if err is None:
            offsets = [TopicPartition(args.input, p, o) for p, o in nxt.items()]
            meta = consumer.consumer_group_metadata()
            err = retrying("send_offsets_to_transaction",
                           lambda: producer.send_offsets_to_transaction(offsets, meta,
                                                                        API_TIMEOUT_S))
        if err is None:
            err = retrying("commit_transaction",
                           lambda: producer.commit_transaction(API_TIMEOUT_S))
        if err is not None:
            say(f"ABORT after error: {err}")
            abort_and_rewind(first)
            continue
        committed += len(good)
        say(f"COMMITTED {committed} {txns}")
        if args.pause_ms:
            time.sleep(args.pause_ms / 1000)


def read_output(args, isolation, checker_fn, limit, stop_when_complete):
    """Reads every output partition from the start under `isolation`, handing each record to
    `checker_fn`; returns when every partition reached its end with `stop_when_complete()`
    true, or after `limit` seconds (then False)."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

    c = Consumer(conf(args, **{
        "group.id": f"{args.group}-reader",
        "enable.auto.commit": False,
        "isolation.level": isolation,
        "enable.partition.eof": True,
        "fetch.wait.max.ms": 100,
    }))
    c.assign([TopicPartition(args.output, p, OFFSET_BEGINNING) for p in range(args.partitions)])
    at_end = set()
    at = time.monotonic() + limit
    try:
        while time.monotonic() < at:
            m = c.poll(0.2)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    at_end.add(m.partition())
                    if len(at_end) == args.partitions and stop_when_complete():
                        return True
                else:
                    say(f"reader ({isolation}): {m.error()}")
                continue
            at_end.discard(m.partition())
            checker_fn(m.partition(), m.offset(), m.value())
        return False
    finally:
        c.close()


def mode_watch(args):
    checker = Checker(args.count, args.partitions)

    def add(p, o, v):
        checker.add(p, o, v)
        if checker.anomalies:
            fail(f"read_committed watcher: {checker.report(final=False)}")

    read_output(args, "read_committed", add, args.deadline, checker.complete)
    problem = checker.report(final=True)
    check(problem is None, f"read_committed watcher after {args.deadline}s: {problem}")
    say(f"OK watch: saw all {args.count} results once, in order, nothing aborted")


def mode_verify(args):
    checker = Checker(args.count, args.partitions)
    read_output(args, "read_committed", checker.add, 60, checker.complete)
    # A short second look: nothing more may come after the last expected result.
    problem = checker.report(final=True)
    check(problem is None, f"read_committed output: {problem}")

    stats = {"records": 0, "aborted_tagged": 0, "untagged_repeats": 0}
    seen = set()

    def count(_p, _o, v):
        stats["records"] += 1
        parsed = parse(v or b"")
        if parsed and parsed[1]:
            stats["aborted_tagged"] += 1
        elif parsed:
            if parsed[0] in seen:
                stats["untagged_repeats"] += 1
            seen.add(parsed[0])

    read_output(args, "read_uncommitted", count, 60,
                lambda: len(seen) >= args.count)
    if args.abort_every > 0:
        check(stats["aborted_tagged"] > 0,
              "no aborted-tagged record in the log (read_uncommitted): the check proved nothing")
    say(f"OK verify: {args.count} results exactly once with read_committed; the log holds "
        f"{stats['records']} data records ({stats['aborted_tagged']} of transactions aborted on "
        f"purpose, {stats['untagged_repeats']} repeats from transactions aborted by failures)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap")
    ap.add_argument("--mode", required=True,
                    choices=["seed", "process", "watch", "verify", "self-test"])
    ap.add_argument("--input", default="eos-in")
    ap.add_argument("--output", default="eos-out")
    ap.add_argument("--group", default="eos")
    ap.add_argument("--transactional-id", default="eos-processor")
    ap.add_argument("--count", type=int, default=5000)
    ap.add_argument("--partitions", type=int, default=3)
    ap.add_argument("--replication-factor", type=int, default=1)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--abort-every", type=int, default=7)
    ap.add_argument("--deadline", type=float, default=240)
    ap.add_argument("--debug", help="librdkafka debug contexts of the processor's producer "
                    "(e.g. eos,protocol), for diagnosis")
    ap.add_argument("--pause-ms", type=int, default=0,
                    help="sleep after each commit (paces the run so that kills land midway)")
    args = ap.parse_args()
    if args.mode == "self-test":
        self_test()
        return
    check(args.bootstrap, "--bootstrap is required")
    {"seed": mode_seed, "process": mode_process, "watch": mode_watch,
     "verify": mode_verify}[args.mode](args)


if __name__ == "__main__":
    main()
