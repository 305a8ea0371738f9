#!/usr/bin/env python3
"""Consumer-group scenarios whose members are separate processes, so one can be killed.

Driver modes (each prints "OK <mode> <client> ..." or "FAIL: ..." and exits 1):
  killed       three members share a 6-partition topic; one is SIGKILLed after it has
               processed and committed some records; when its session expires the others take
               its partitions over from its committed offsets: every record exactly once.
  cooperative  (confluent) cooperative-sticky members: three share the topic, a fourth joins,
               one leaves; members that stay never give up all their partitions in a
               rebalance (an eager protocol would revoke everything), every record exactly once.
  static       two static members (group.instance.id); one is stopped and restarted with the
               same instance id within its session timeout: it gets its old partitions back,
               the other member sees no rebalance, and every record is consumed exactly once.
  restart      two members share the topic; the driver prints "RESTART" and waits for a line
               on stdin while the caller restarts the node (SIGKILL or graceful); the group
               comes back from __consumer_offsets, so the members go on without a rebalance,
               and what is produced after the restart is consumed exactly once.
  stalled      (confluent) two members share the topic; one stops polling for longer than its
               max.poll.interval.ms (its rebalance timeout) while librdkafka's background thread
               goes on heartbeating; a third member joins, and the rebalance completes without
               the stalled member, well before it resumes; when it resumes it rejoins under a
               new member id and gets partitions again, and every record is consumed exactly
               once.

Member mode (`member`) is what the driver starts: it consumes, commits synchronously after
each processed batch, and only then prints the batch's records ("REC <value>"), so what it
printed is exactly what it committed. It prints "ASSIGN p,p" / "REVOKE p,p" on rebalances,
"PAUSED" when --pause-after records were processed (it then goes on polling, so it stays in
the group, but drops what it gets without committing: as if it hung before processing),
and on SIGTERM prints "CLOSING" and closes the consumer cleanly.

Usage: group_members.py --bootstrap H:P --client kafka-python|confluent --mode MODE
"""

import argparse
import os
import queue
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import check, fail  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--bootstrap", required=True)
ap.add_argument("--client", choices=["kafka-python", "confluent"], required=True)
ap.add_argument("--mode", choices=["killed", "cooperative", "static", "restart", "stalled",
                                   "member"],
                required=True)
ap.add_argument("--topic")
ap.add_argument("--group")
ap.add_argument("--name", default="m")
ap.add_argument("--instance-id")
ap.add_argument("--strategy", default="range")
ap.add_argument("--pause-after", type=int, default=0)
ap.add_argument("--stall-after", type=int, default=0)
ap.add_argument("--stall-s", type=float, default=0.0)
ap.add_argument("--max-poll-ms", type=int, default=300_000)
args = ap.parse_args()
b = args.bootstrap
SESSION_MS = 6000  # the smallest the coordinator accepts, so a killed member expires quickly


def say(*parts):
    print(*parts, flush=True)


# --- member ---------------------------------------------------------------------------------

def member():
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    processed = 0
    paused = False
    stalled = False

    def process(values, commit):
        nonlocal processed, paused, stalled
        if not values or paused:
            return  # a paused member drops what it polls: never committed, never printed
        # After its stall the member may have been removed from the group: a refused commit
        # drops the batch.
        if stalled and not commit_or_drop(commit):
            return
        # As an application would: a commit that fails while the coordinator is away (the node
        # restarting) is retried; records count as processed only once committed.
        end = time.monotonic() + 30
        while not stalled:
            try:
                commit()
                break
            except Exception as e:  # noqa: BLE001
                if time.monotonic() > end:
                    raise
                say("COMMIT-RETRY", repr(e))
                time.sleep(0.5)
        for v in values:
            say("REC", v)
        processed += len(values)
        if args.pause_after and processed >= args.pause_after:
            paused = True
            say("PAUSED")
        if args.stall_after and processed >= args.stall_after and not stalled:
            # Stops polling (librdkafka's background thread goes on heartbeating) for longer
            # than max.poll.interval.ms, once.
            stalled = True
            say("STALL")
            time.sleep(args.stall_s)
            say("RESUME")

    if args.client == "confluent":
        from confluent_kafka import Consumer
        conf = {"bootstrap.servers": b, "group.id": args.group, "enable.auto.commit": False,
                "auto.offset.reset": "earliest", "client.id": args.name,
                "session.timeout.ms": SESSION_MS, "heartbeat.interval.ms": 500,
                "partition.assignment.strategy": args.strategy,
                "max.poll.interval.ms": args.max_poll_ms}
        if args.instance_id:
            conf["group.instance.id"] = args.instance_id
        c = Consumer(conf)
        def on_assign(_c, ps):
            say("MEMBER-ID", c.memberid())
            say("ASSIGN", ",".join(str(p.partition) for p in ps))

        c.subscribe([args.topic], on_assign=on_assign,
                     on_revoke=lambda _c, ps: say("REVOKE", ",".join(str(p.partition) for p in ps)))
        while not stop.is_set():
            got = []
            for m in c.consume(num_messages=20, timeout=0.2):
                if m.error():
                    say("ERROR", m.error())
                else:
                    got.append(m.value().decode())
            process(got, lambda: c.commit(asynchronous=False))
        say("CLOSING")
        c.close()
    else:
        from kafka import ConsumerRebalanceListener, KafkaConsumer

        class Listener(ConsumerRebalanceListener):
            def on_partitions_assigned(self, assigned):
                say("ASSIGN", ",".join(str(p.partition) for p in assigned))

            def on_partitions_revoked(self, revoked):
                say("REVOKE", ",".join(str(p.partition) for p in revoked))

        conf = dict(bootstrap_servers=b, group_id=args.group, enable_auto_commit=False,
                    auto_offset_reset="earliest", session_timeout_ms=SESSION_MS,
                    heartbeat_interval_ms=500, client_id=args.name, max_poll_records=20)
        if args.instance_id:
            conf["group_instance_id"] = args.instance_id
        c = KafkaConsumer(**conf)
        c.subscribe([args.topic], listener=Listener())
        while not stop.is_set():
            try:
                batch = c.poll(timeout_ms=200)
            except Exception as e:  # noqa: BLE001
                # kafka-python 3 raises from poll() while the coordinator is unreachable (the
                # node restarting); an application polls again.
                say("POLL-RETRY", repr(e))
                time.sleep(0.2)
                continue
            process([m.value.decode() for ms in batch.values() for m in ms], c.commit)
        say("CLOSING")
        c.close()
    say("CLOSED")


def commit_or_drop(commit):
    """Commits; True if it was committed. A commit the group refuses (the member was removed
    while it stalled, or a rebalance moved its partitions) drops the batch, as an application
    must: the partitions' new owner reads those records again from the committed offsets."""
    try:
        commit()
        return True
    except Exception as e:  # noqa: BLE001
        say("COMMIT-REFUSED", repr(e)[:160])
        return False


# --- driver ---------------------------------------------------------------------------------

class Member:
    """One member process and what it printed."""

    def __init__(self, name, topic, group, **extra):
        cmd = [sys.executable, os.path.abspath(__file__), "--bootstrap", b, "--client",
               args.client, "--mode", "member", "--topic", topic, "--group", group,
               "--name", name]
        for k, v in extra.items():
            cmd += [f"--{k.replace('_', '-')}", str(v)]
        self.name = name
        self.records = []
        self.events = []  # ("ASSIGN"|"REVOKE", set of partitions), in order, until it closes
        self.closing = False
        self.notes = []  # other lines (retries, errors), for failure messages
        self.seen = []  # (word, rest, monotonic time the driver read it), every line
        self.lines = queue.Queue()
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            word, _, rest = line.rstrip("\n").partition(" ")
            self.seen.append((word, rest, time.monotonic()))
            if word == "REC":
                self.records.append(rest)
            elif word == "CLOSING":
                self.closing = True
            elif word in ("ASSIGN", "REVOKE"):
                if not self.closing:
                    self.events.append((word, {int(p) for p in rest.split(",") if p}))
            elif word not in ("PAUSED", "CLOSED", "MEMBER-ID", "STALL", "RESUME"):
                self.notes.append(line.strip()[:200])
            self.lines.put(word)

    def wait_for(self, word, seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                if self.lines.get(timeout=0.1) == word:
                    return True
            except queue.Empty:
                if self.proc.poll() is not None and self.lines.empty():
                    return False
        return False

    def stop(self, sig=signal.SIGTERM, seconds=30):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(seconds)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.reader.join(5)


def describe(members):
    return "; ".join(f"{m.name}: {len(m.records)} records, {m.events}, notes {m.notes[-5:]}"
                     for m in members)


def setup(topic, count):
    """Creates `topic` (6 partitions) and produces `count` records to it; their values."""
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": b})
    for f in admin.create_topics([NewTopic(topic, 6, 1)]).values():
        f.result(timeout=20)
    values = [f"{topic}-{i:05d}" for i in range(count)]
    produce_more(topic, values)
    return values


def produce_more(topic, values):
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": b, "partitioner": "murmur2_random"})
    for i, v in enumerate(values):
        p.produce(topic, key=str(i).encode(), value=v.encode())
    check(p.flush(30) == 0, "produce")


def wait_all(members, values, seconds):
    """Until every value was printed by some member, or `seconds` pass."""
    end = time.monotonic() + seconds
    want = set(values)
    while time.monotonic() < end:
        if want <= {r for m in members for r in m.records}:
            return
        time.sleep(0.1)


def exactly_once(members, values, what):
    seen = [r for m in members for r in m.records]
    dups = len(seen) - len(set(seen))
    missing = set(values) - set(seen)
    extra = set(seen) - set(values)
    if dups or missing or extra:
        fail(f"{what}: {len(seen)} consumed for {len(values)}: {dups} twice, "
             f"{len(missing)} missing, {len(extra)} unknown; {describe(members)}")


def killed():
    topic, group = f"killed-{args.client}{os.environ.get('SUFFIX', '')}", f"gk-{args.client}"
    values = setup(topic, 1200)
    victim = Member("m0", topic, group, pause_after=60)
    others = [Member(f"m{i}", topic, group) for i in (1, 2)]
    members = [victim] + others
    try:
        check(victim.wait_for("PAUSED", 40),
              f"the member to be killed never processed 60 records: {describe(members)}")
        victim.stop(signal.SIGKILL)
        killed_at = time.monotonic()
        wait_all(members, values, 60)
        took = time.monotonic() - killed_at
        time.sleep(1.0)  # anything consumed twice would show up now
    finally:
        for m in members:
            m.stop()
    exactly_once(members, values, "after a member was killed")
    check(len(victim.records) >= 60, "the killed member's records")
    say(f"OK killed {args.client} {len(values)} records, the killed member had "
        f"{len(victim.records)}; the rest were read {took:.1f} s after the kill")


def cooperative():
    check(args.client == "confluent", "cooperative-sticky is a librdkafka assignor here")
    topic, group = f"coop{os.environ.get('SUFFIX', '')}", "gcoop"
    values = setup(topic, 1500)
    first = [Member(f"m{i}", topic, group, strategy="cooperative-sticky") for i in range(3)]
    members = list(first)
    try:
        for m in first:
            check(m.wait_for("ASSIGN", 30), f"{m.name} was never assigned")
        time.sleep(2)
        late = Member("m3", topic, group, strategy="cooperative-sticky")
        members.append(late)
        check(late.wait_for("ASSIGN", 30), "the fourth member was never assigned")
        time.sleep(2)
        first[0].stop()
        wait_all(members, values, 60)
        time.sleep(1.0)
    finally:
        for m in members:
            m.stop()
    exactly_once(members, values, "cooperative-sticky")
    stayers = first[1:] + [late]
    for m in stayers:
        held = set()
        for kind, ps in m.events:
            if kind == "ASSIGN":
                held |= ps
            else:
                check(not held or ps != held or not ps,
                      f"{m.name} gave up all of {sorted(held)} in a rebalance: not incremental; "
                      f"{describe(members)}")
                held -= ps
    partial = sum(1 for m in stayers for kind, ps in m.events if kind == "REVOKE" and ps)
    check(partial > 0, "no member gave up part of its partitions when the fourth joined")
    say(f"OK cooperative {args.client} {len(values)} records, {partial} partial revocations")


def static():
    topic, group = f"static-{args.client}", f"gs-{args.client}"
    values = setup(topic, 300)
    a = Member("s0", topic, group, instance_id="inst-0")
    first_b = Member("s1", topic, group, instance_id="inst-1")
    members = [a, first_b]
    try:
        wait_all(members, values, 40)
        check(len(a.events) > 0 and len(first_b.events) > 0,
              f"both members were assigned: {describe(members)}")
        a_events = len(a.events)
        held_b = [ps for kind, ps in first_b.events if kind == "ASSIGN"][-1]
        first_b.stop()
        second_b = Member("s1", topic, group, instance_id="inst-1")
        members.append(second_b)
        check(second_b.wait_for("ASSIGN", 20), "the restarted static member was never assigned")
        more = [f"{topic}-more-{i:05d}" for i in range(300)]
        produce_more(topic, more)
        values += more
        wait_all(members, values, 40)
        time.sleep(1.0)
        a_later = a.events[a_events:]
        held_b2 = [ps for kind, ps in second_b.events if kind == "ASSIGN"][-1]
    finally:
        for m in members:
            m.stop()
    exactly_once(members, values, "static members")
    check(not a_later, f"the other static member saw a rebalance: {a_later}")
    check(held_b2 == held_b, f"restarted static member got {sorted(held_b2)}, had {sorted(held_b)}")
    say(f"OK static {args.client} {len(values)} records, partitions {sorted(held_b)} kept "
        "across a restart without a rebalance")


def admin_checks_of_a_live_group(group):
    """The restored group is listed as Stable, and cannot be deleted while it has members."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient
    admin = AdminClient({"bootstrap.servers": b})
    listed = admin.list_consumer_groups().result(timeout=10)
    states = {g.group_id: str(g.state) for g in listed.valid}
    check("STABLE" in states.get(group, "").upper(), f"{group} not listed as Stable: {states}")
    try:
        admin.delete_consumer_groups([group])[group].result(timeout=10)
        fail("a group with members was deleted")
    except KafkaException as e:
        code = e.args[0].code()
        check(code == KafkaError.NON_EMPTY_GROUP, f"deleting a live group: {e.args[0]}")


def restart():
    topic, group = f"restart-{args.client}", f"gr-{args.client}"
    values = setup(topic, 300)
    members = [Member(f"r{i}", topic, group) for i in range(2)]
    try:
        wait_all(members, values, 40)
        exactly_once(members, values, "before the restart")
        time.sleep(1.0)
        before = [len(m.events) for m in members]
        say("RESTART")
        check(sys.stdin.readline().strip() == "GO", "the node was not restarted")
        more = [f"{topic}-after-{i:05d}" for i in range(300)]
        produce_more(topic, more)
        values += more
        wait_all(members, values, 40)
        time.sleep(1.0)
        later = [m.events[n:] for m, n in zip(members, before)]
        admin_checks_of_a_live_group(group)
    finally:
        for m in members:
            m.stop()
    exactly_once(members, values, "across the restart")
    check(not any(later), f"members rebalanced after the node restarted: {later}")
    say(f"OK restart {args.client} {len(values)} records, no rebalance across the restart")


def first_at(m, word, after=0.0):
    """When `m` first printed `word` after `after` (monotonic), or None."""
    return next((t for w, _, t in m.seen if w == word and t > after), None)


def stalled():
    check(args.client == "confluent", "librdkafka heartbeats in the background while not polled")
    topic, group = f"stalled{os.environ.get('SUFFIX', '')}", "gstalled"
    max_poll_ms, stall_s = 6000, 12.0
    values = setup(topic, 600)
    victim = Member("st0", topic, group, stall_after=30, stall_s=stall_s, max_poll_ms=max_poll_ms)
    other = Member("st1", topic, group, max_poll_ms=max_poll_ms)
    members = [victim, other]
    try:
        check(victim.wait_for("STALL", 40), f"never stalled: {describe(members)}")
        stalled_at = first_at(victim, "STALL")
        third = Member("st2", topic, group, max_poll_ms=max_poll_ms)
        members.append(third)
        joined_at = time.monotonic()
        check(third.wait_for("ASSIGN", 20), f"the third member was never assigned: "
              f"{describe(members)}")
        assigned_at = first_at(third, "ASSIGN")
        resumed_at = first_at(victim, "RESUME")
        check(resumed_at is None or assigned_at < resumed_at,
              f"the rebalance waited for the stalled member: {describe(members)}")
        check(assigned_at - joined_at < max_poll_ms / 1000 + 5,
              f"the rebalance took {assigned_at - joined_at:.1f} s")
        check(victim.wait_for("RESUME", stall_s + 10), "the stalled member never resumed")
        resumed_at = first_at(victim, "RESUME")
        check(first_at(victim, "ASSIGN", after=resumed_at) or victim.wait_for("ASSIGN", 30),
              f"the stalled member never rejoined: {describe(members)}")
        more = [f"{topic}-after-{i:05d}" for i in range(600)]
        produce_more(topic, more)
        values += more
        wait_all(members, values, 40)
        time.sleep(1.0)
    finally:
        for m in members:
            m.stop()
    exactly_once(members, values, "with a member stalled past max.poll.interval.ms")
    ids = [rest for w, rest, t in victim.seen if w == "MEMBER-ID"]
    before = [rest for w, rest, t in victim.seen if w == "MEMBER-ID" and t < stalled_at]
    after = [rest for w, rest, t in victim.seen if w == "MEMBER-ID" and t > resumed_at]
    check(before and after and before[-1] != after[-1],
          f"the stalled member did not rejoin under a new member id: {ids}")
    held = [ps for kind, ps in victim.events if kind == "ASSIGN"][-1]
    check(held, f"the rejoined member got no partitions: {describe(members)}")
    say(f"OK stalled {args.client} {len(values)} records; the rebalance completed "
        f"{assigned_at - joined_at:.1f} s after the third member started; the stalled member "
        f"resumed {resumed_at - assigned_at:.1f} s later and rejoined "
        f"as {after[-1]} (was {before[-1]})")


if args.mode == "member":
    member()
else:
    {"killed": killed, "cooperative": cooperative, "static": static,
     "restart": restart, "stalled": stalled}[args.mode]()
