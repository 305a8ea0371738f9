#!/usr/bin/env python3
"""Queue safety under faults, in the spirit of Jepsen's Kafka workload.

Usage: queue_safety.py --binary target/debug/odradek [--seed N] [--duration 40]
           [--faults kill-leader,pause,crash-all,slow] [--replication-factor 1] [--json]
       queue_safety.py --self-test

Starts an N-node cluster of `odradek serve` (127.0.0.2, 127.0.0.3, ...; free ports; data and
one log per node under a temporary directory or --data-root), creates a topic, and runs
idempotent confluent-kafka producers (acks=all) writing unique values `p{producer}-{n}` and
live consumers (assign every partition from offset 0) while a seeded schedule injects faults,
one at a time, each healed after a bounded time:

- kill-leader: SIGKILL the node leading a random partition (per Metadata), restart it after
  --restart-after seconds;
- kill-controller: SIGKILL the active controller (Metadata's controller_id), restart it;
- pause: SIGSTOP a random node, SIGCONT it a few seconds later;
- crash-all: SIGKILL every node, restart them all after --restart-after seconds;
- slow: one node's Kafka port (through its fault proxy) gets latency with jitter;
- partition-proxy: one node's Kafka port (through its proxy) forwards nothing for a while;
- flaky: one node's Kafka connections (through its proxy) are reset, each chunk with a small
  probability, for a while (requests cut mid-way: retries of idempotent producers);
- partition-net: a real network partition (iptables DROP rules, `netpart.py`; needs root):
  a partition's leader or the active controller is cut off from the other nodes (raft traffic
  and replication, both directions) for 8-12 s, past the session timeout, so it is fenced and
  a follower takes over, while clients on 127.0.0.1 still reach it; then healed.

With `slow`, `partition-proxy` or `flaky` every node advertises its proxy (`--advertise`), so clients
and other brokers reach its Kafka port only through it; controller ports stay direct.

After --duration: every fault is healed, the producers flush (bounded), and a fresh consumer
reads every partition from offset 0 to its high watermark. The checker
(`queue_checker.py`) then reports lost, unseen, duplicate, inconsistent-offset, out-of-order
and unknown values. The first line printed is always `seed N`, so a failure replays (the fault
schedule; thread timing is not replayed). Exit status 1 on any violation or on a failure to run.
`--wipe-on-restart` (a test of the checker itself) deletes a killed node's partition data
before its restart, which must be reported as lost records.
"""

import argparse
import atexit
import json
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import queue_checker  # noqa: E402
from common import create_topic_once, free_port, poll_until  # noqa: E402

FAULTS = ("kill-leader", "kill-controller", "pause", "crash-all", "slow", "partition-proxy",
          "flaky", "partition-net")
PROXY_FAULTS = ("slow", "partition-proxy", "flaky")
TOPIC = "queue-safety"
READY_S = 30.0
HEALTHY_S = 60.0
LOG_TAIL = 40
# librdkafka's own log lines would drown the report; errors reach error_cb (kept, summarized).
QUIET = {"log_level": 2, "log.connection.close": False}


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _die_with_parent():
    """In the child before exec: SIGKILL it when this script dies, even by SIGKILL (a bounded
    test kills the script by PID; its nodes must not outlive it). Linux only; best effort."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001
        pass


def _on_sigterm(_sig, _frame):
    raise KeyboardInterrupt("SIGTERM")


# --- a direct Metadata request (v1), so control never goes through a proxy ------------------

def _str(b, i):
    (n,) = struct.unpack_from(">h", b, i)
    i += 2
    if n < 0:
        return None, i
    return b[i:i + n].decode(), i + n


def metadata(addr, timeout=3.0):
    """Metadata v1 of every topic from `addr`: {"brokers": {id: (host, port)},
    "controller": id, "partitions": {topic: {partition: leader}}}."""
    host, _, port = addr.rpartition(":")
    client = b"queue-safety"
    body = struct.pack(">hhih", 3, 1, 1, len(client)) + client + struct.pack(">i", -1)
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        s.settimeout(timeout)
        s.sendall(struct.pack(">i", len(body)) + body)
        head = _recv(s, 4)
        (size,) = struct.unpack(">i", head)
        b = _recv(s, size)
    i = 4  # correlation id
    (nb,) = struct.unpack_from(">i", b, i)
    i += 4
    brokers = {}
    for _ in range(nb):
        (nid,) = struct.unpack_from(">i", b, i)
        i += 4
        h, i = _str(b, i)
        (p,) = struct.unpack_from(">i", b, i)
        i += 4
        _rack, i = _str(b, i)
        brokers[nid] = (h, p)
    (controller,) = struct.unpack_from(">i", b, i)
    i += 4
    (nt,) = struct.unpack_from(">i", b, i)
    i += 4
    parts = {}
    for _ in range(nt):
        i += 2  # error code
        name, i = _str(b, i)
        i += 1  # is_internal
        (np_,) = struct.unpack_from(">i", b, i)
        i += 4
        ps = {}
        for _ in range(np_):
            (err, idx, leader) = struct.unpack_from(">hii", b, i)
            i += 10
            for _arr in range(2):  # replicas, isr
                (n,) = struct.unpack_from(">i", b, i)
                i += 4 + 4 * max(n, 0)
            ps[idx] = leader if err == 0 else -1
        parts[name] = ps
    return {"brokers": brokers, "controller": controller, "partitions": parts}


def _recv(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise OSError("connection closed")
        buf += chunk
    return buf


# --- nodes ----------------------------------------------------------------------------------

class Node:
    def __init__(self, binary, node_id, root, extra):
        self.id = node_id
        self.host = f"127.0.0.{node_id + 1}"
        self.port = free_port(self.host)
        self.cport = free_port(self.host)
        self.advertise = None  # (host, port) of its proxy, when proxied
        self.binary = binary
        self.extra = extra
        self.data = os.path.join(root, f"node{node_id}")
        self.log = os.path.join(root, f"node{node_id}.log")
        self.voters = ""
        self.proc = None
        self.paused = False
        self.starts = 0

    def addr(self):
        return f"{self.host}:{self.port}"

    def client_addr(self):
        return f"{self.advertise[0]}:{self.advertise[1]}" if self.advertise else self.addr()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def spawn(self):
        args = [self.binary, "serve", "--node-id", str(self.id), "--listen", self.addr(),
                "--controller-listen", f"{self.host}:{self.cport}",
                "--controller-quorum-voters", self.voters, "--data-dir", self.data,
                "--smp", "1"] + self.extra
        if self.advertise:
            args += ["--advertise", self.client_addr()]
        env = dict(os.environ, ODRADEK_LOG=os.environ.get("ODRADEK_LOG", "info"), NO_COLOR="1")
        self.starts += 1
        with open(self.log, "a") as f:
            f.write(f"=== start {self.starts} at {time.strftime('%H:%M:%S')} ===\n")
            f.flush()
            self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=f,
                                         stdin=subprocess.DEVNULL, env=env, text=True,
                                         preexec_fn=_die_with_parent)
        self.paused = False
        got = []
        proc = self.proc

        def read_ready():
            got.append(proc.stdout.readline())
            proc.stdout.read()  # keep draining so the node never blocks on stdout

        threading.Thread(target=read_ready, daemon=True).start()
        return got

    def start(self):
        got = self.spawn()
        wait_for(f"node {self.id}'s ready line", lambda: bool(got) or None, READY_S)
        if not got[0].startswith("odradek ready"):
            raise RuntimeError(f"node {self.id}: no ready line (got {got[0]!r}); see {self.log}")

    def signal(self, sig):
        if self.alive():
            os.kill(self.proc.pid, sig)

    def kill(self):
        if self.alive():
            if self.paused:
                os.kill(self.proc.pid, signal.SIGCONT)
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        self.paused = False

    def wipe_partitions(self, topic):
        """Deletes this node's directories of `topic`'s partitions (not its identity)."""
        gone = []
        if os.path.isdir(self.data):
            for name in os.listdir(self.data):
                if name.startswith(topic + "-") and name[len(topic) + 1:].isdigit():
                    shutil.rmtree(os.path.join(self.data, name), ignore_errors=True)
                    gone.append(name)
        return gone

    def tail(self, n=LOG_TAIL):
        try:
            with open(self.log, errors="replace") as f:
                return f.readlines()[-n:]
        except OSError:
            return []


# A timeout raises TimeoutError: the run reports it and heals instead of exiting at once.
wait_for = poll_until


class Cluster:
    def __init__(self, args, root):
        self.args = args
        extra = ["--broker-session-timeout-ms", str(args.session_timeout_ms),
                 "--broker-heartbeat-interval-ms", str(args.heartbeat_interval_ms)]
        self.nodes = [Node(args.binary, i, root, extra) for i in range(1, args.nodes + 1)]
        self.nodes_by_id = {n.id: n for n in self.nodes}
        voters = ",".join(f"{n.id}@{n.host}:{n.cport}" for n in self.nodes)
        for n in self.nodes:
            n.voters = voters
        self.proxies = None
        self.proxy_of = {}
        self.netpart = None  # netpart.NetPartition, when partition-net is asked for

    def use_proxies(self, seed):
        from fault_proxy import ProxySet
        self.proxies = ProxySet(seed)
        for n in self.nodes:
            pport = free_port(n.host)
            self.proxy_of[n.id] = self.proxies.add(n.host, pport, n.host, n.port)
            n.advertise = (n.host, pport)

    def net_endpoint(self, n):
        """(ip, listening ports) of node `n`, for netpart's rules."""
        ports = [n.port, n.cport] + ([n.advertise[1]] if n.advertise else [])
        return (n.host, ports)

    def meta_of(self, nodes):
        """Controller and partition leaders as the first of `nodes` that answers sees them
        (a short note for the fault log)."""
        for n in nodes:
            if n.alive() and not n.paused:
                try:
                    m = metadata(n.addr())
                except (OSError, struct.error):
                    continue
                ps = m["partitions"].get(TOPIC, {})
                return (f"node {n.id} saw controller {m['controller']}, leaders "
                        f"{[ps.get(p, -1) for p in sorted(ps)]}")
        return f"no node of {[n.id for n in nodes]} answered Metadata"

    def bootstrap(self):
        return ",".join(n.client_addr() for n in self.nodes)

    def start_all(self):
        for n in self.nodes:
            n.spawn_got = n.spawn()
        for n in self.nodes:
            wait_for(f"node {n.id}'s ready line", lambda n=n: bool(n.spawn_got) or None, READY_S)
            if not n.spawn_got[0].startswith("odradek ready"):
                raise RuntimeError(f"node {n.id}: no ready line; see {n.log}")

    def meta(self):
        """Metadata from the first live, running node that answers."""
        last = None
        for n in self.nodes:
            if n.alive() and not n.paused:
                try:
                    return metadata(n.addr())
                except (OSError, struct.error) as e:
                    last = e
        raise OSError(f"no node answered Metadata ({last!r})")

    def healthy(self, topic=None, partitions=0):
        m = self.meta()
        if sorted(m["brokers"]) != sorted(self.nodes_by_id):
            return None
        if topic is not None:
            ps = m["partitions"].get(topic, {})
            if len(ps) != partitions or any(l < 0 for l in ps.values()):
                return None
        return m

    def wait_healthy(self, topic=None, partitions=0, limit=HEALTHY_S):
        return wait_for("every broker registered and every partition led",
                        lambda: self.healthy(topic, partitions), limit)

    def stop(self):
        for n in self.nodes:
            try:
                n.kill()
            except Exception:  # noqa: BLE001
                pass
        if self.proxies is not None:
            self.proxies.close()
        if self.netpart is not None:
            self.netpart.close()


# --- workload -------------------------------------------------------------------------------

class History:
    def __init__(self):
        self.lock = threading.Lock()
        self.acks = {}
        self.meta = {}
        self.indeterminate = {}
        self.reads = []
        self.final = []
        self.final_complete = False
        self.final_note = ""
        self.errors = []  # client error callbacks, for the report (bounded)
        self.ack_times = []  # time.monotonic() of each acknowledgement, for availability

    def note_error(self, who, err):
        with self.lock:
            if len(self.errors) < 200:
                self.errors.append(f"{time.strftime('%H:%M:%S')} {who}: {err}")

    def as_dict(self):
        return {"acks": self.acks, "meta": self.meta, "indeterminate": self.indeterminate,
                "reads": self.reads, "final": self.final,
                "final_complete": self.final_complete, "final_note": self.final_note}


def producer_loop(idx, cluster, args, hist, stop, rng):
    from confluent_kafka import KafkaException, Producer
    instance = 0
    fatal = threading.Event()

    def make():
        fatal.clear()

        def on_error(err):
            hist.note_error(f"producer {idx}.{instance}", err)
            if err.fatal():
                fatal.set()

        return Producer({
            "bootstrap.servers": cluster.bootstrap(), "enable.idempotence": True, "acks": "all",
            "message.timeout.ms": args.message_timeout_ms, "request.timeout.ms": 10000,
            "linger.ms": 5, "queue.buffering.max.messages": 10000,
            "topic.metadata.refresh.interval.ms": 2000, "reconnect.backoff.max.ms": 1000,
            "error_cb": on_error, **QUIET})

    def on_delivery(err, msg):
        v = msg.value().decode()
        with hist.lock:
            if err is None:
                hist.acks[v] = (msg.partition(), msg.offset())
                hist.ack_times.append(time.monotonic())
            else:
                hist.indeterminate[v] = str(err)

    p = make()
    n = 0
    interval = 1.0 / args.rate
    next_at = time.monotonic()
    retired = []
    while not stop.is_set():
        if fatal.is_set():
            # An idempotent producer with a fatal error is unusable: what it still holds fails;
            # a new instance (a new producer id) goes on.
            p.flush(5)
            retired.append(p)
            instance += 1
            p = make()
        v = f"p{idx}-{n}"
        part = rng.randrange(args.partitions)
        with hist.lock:
            hist.meta[v] = (idx, instance, n)
        try:
            p.produce(TOPIC, value=v.encode(), partition=part, on_delivery=on_delivery)
            n += 1
        except BufferError:
            with hist.lock:
                del hist.meta[v]
            p.poll(0.1)
            continue
        except KafkaException as e:
            with hist.lock:
                hist.indeterminate[v] = f"produce() raised {e}"
            n += 1
        next_at += interval
        if next_at < time.monotonic() - 1.0:
            next_at = time.monotonic()  # behind by over a second (a stall): do not burst
        # poll() returns early when it served a callback: poll until the next send is due.
        while True:
            wait = next_at - time.monotonic()
            p.poll(max(wait, 0))
            if wait <= 0:
                break
    left = p.flush(args.flush_timeout)
    for q in retired:
        left += q.flush(1)
    return left


def consumer_loop(name, cluster, args, hist, stop):
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": cluster.bootstrap(), "group.id": f"qs-{name}",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest",
                  "enable.partition.eof": False, "fetch.wait.max.ms": 200,
                  "topic.metadata.refresh.interval.ms": 2000, "reconnect.backoff.max.ms": 1000,
                  "error_cb": lambda err: hist.note_error(f"consumer {name}", err), **QUIET})
    c.assign([TopicPartition(TOPIC, p, 0) for p in range(args.partitions)])
    got = []
    try:
        while not stop.is_set():
            for m in c.consume(500, 0.5):
                if m.error():
                    continue
                got.append((name, m.partition(), m.offset(), m.value().decode(), False))
            if len(got) >= 1000:
                with hist.lock:
                    hist.reads.extend(got)
                got = []
    finally:
        with hist.lock:
            hist.reads.extend(got)
        c.close()


def final_read(cluster, args, hist):
    """A fresh consumer reads every partition from 0 to its high watermark (bounded)."""
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": cluster.bootstrap(), "group.id": "qs-final",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest",
                  "enable.partition.eof": False, **QUIET})
    try:
        hwm = {}
        for p in range(args.partitions):
            hwm[p] = wait_for(f"partition {p}'s high watermark",
                              lambda p=p: c.get_watermark_offsets(
                                  TopicPartition(TOPIC, p), timeout=5, cached=False)[1], 60)
        c.assign([TopicPartition(TOPIC, p, 0) for p in range(args.partitions)])
        pos = {p: 0 for p in range(args.partitions)}
        at = time.monotonic() + args.final_read_timeout
        while any(pos[p] < hwm[p] for p in pos) and time.monotonic() < at:
            for m in c.consume(1000, 0.5):
                if m.error():
                    continue
                if m.offset() < hwm[m.partition()]:
                    hist.final.append((m.partition(), m.offset(), m.value().decode()))
                pos[m.partition()] = max(pos[m.partition()], m.offset() + 1)
        short = {p: (pos[p], hwm[p]) for p in pos if pos[p] < hwm[p]}
        hist.final_complete = not short
        hist.final_note = (f"positions short of high watermarks: {short}" if short else "")
        return hwm
    finally:
        c.close()


# --- faults ---------------------------------------------------------------------------------

class Faults:
    def __init__(self, cluster, args, rng, t0):
        self.c = cluster
        self.args = args
        self.rng = rng
        self.t0 = t0
        self.log = []  # (start s, end s, kind, detail)
        self.liveness = []  # slow recoveries
        self.heal_at = None

    def now(self):
        return time.monotonic() - self.t0

    def record(self, start, kind, detail):
        """A fault from `start` until its heal began (`self.heal_at`, set just before the
        restart, SIGCONT or pass-through; now if unset)."""
        end = self.heal_at if self.heal_at is not None else self.now()
        self.heal_at = None
        self.log.append((round(start, 1), round(end, 1), kind, detail))
        log(f"fault {kind}: {detail} ({start:.1f}s..{end:.1f}s)")

    def restart(self, n):
        if self.args.wipe_on_restart:
            gone = n.wipe_partitions(TOPIC)
            log(f"--wipe-on-restart: node {n.id} lost {len(gone)} partition directories")
        n.start()

    def after_heal(self, annotate=True):
        """Waits (bounded) for every broker and every partition leader; notes how long the
        last fault took from its heal to a healthy cluster."""
        t = self.t0 + self.log[-1][1] if annotate and self.log else time.monotonic()
        try:
            self.c.wait_healthy(TOPIC, self.args.partitions)
        except TimeoutError as e:
            self.liveness.append(f"{self.now():.1f}s: {e}")
            log(f"not healthy after healing: {e}")
        took = max(time.monotonic() - t, 0.0)
        if annotate and self.log:
            s, e, kind, detail = self.log[-1]
            self.log[-1] = (s, e, kind, f"{detail}; healthy {took:.1f}s after healing")
        if took > 10:
            self.liveness.append(f"{self.now():.1f}s: healthy only {took:.1f}s after healing")

    def hold(self, lo, hi):
        time.sleep(lo + self.rng.random() * (hi - lo))

    def victim(self, start, kind, leader):
        """The live node to hit, and what it is: a random partition's leader, or else the
        controller. The node is None (and the fault recorded as skipped) when that is no live
        node."""
        c = self.c
        m = c.meta()
        if leader:
            part = self.rng.randrange(self.args.partitions)
            victim = m["partitions"].get(TOPIC, {}).get(part, -1)
            what = f"partition {part}'s leader"
        else:
            victim = m["controller"]
            what = "the controller"
        n = c.nodes_by_id.get(victim)
        if n is None or not n.alive():
            self.record(start, kind, f"skipped: {what} is {victim}")
            return None, what
        return n, what

    def run_one(self, kind):
        start = self.now()
        c = self.c
        if kind in ("kill-leader", "kill-controller"):
            n, what = self.victim(start, kind, kind == "kill-leader")
            if n is None:
                return
            n.kill()
            time.sleep(self.args.restart_after)
            self.heal_at = self.now()
            self.restart(n)
            self.record(start, kind, f"SIGKILL node {n.id} ({what}), restarted")
        elif kind == "crash-all":
            for n in c.nodes:
                n.kill()
            time.sleep(self.args.restart_after)
            self.heal_at = self.now()
            if self.args.wipe_on_restart:
                for n in c.nodes:
                    n.wipe_partitions(TOPIC)
                log("--wipe-on-restart: every node lost its partition directories")
            c.start_all()
            self.record(start, kind, "SIGKILL every node, restarted all")
        elif kind == "pause":
            n = self.rng.choice(c.nodes)
            n.signal(signal.SIGSTOP)
            n.paused = True
            self.hold(1.0, self.args.pause_max)
            self.heal_at = self.now()
            n.signal(signal.SIGCONT)
            n.paused = False
            self.record(start, kind, f"SIGSTOP/SIGCONT node {n.id}")
        elif kind == "slow":
            n = self.rng.choice(c.nodes)
            ms = self.rng.choice([20, 50, 100, 250])
            jitter = ms // 2
            c.proxy_of[n.id].set_mode("slow", ms, jitter)
            self.hold(2.0, 6.0)
            self.heal_at = self.now()
            c.proxy_of[n.id].set_mode("pass")
            self.record(start, kind, f"node {n.id}'s Kafka port +{ms}ms (jitter {jitter}ms)")
        elif kind == "partition-proxy":
            n = self.rng.choice(c.nodes)
            c.proxy_of[n.id].set_mode("blackhole")
            self.hold(2.0, 6.0)
            self.heal_at = self.now()
            c.proxy_of[n.id].set_mode("pass")
            self.record(start, kind, f"node {n.id}'s Kafka port blackholed")
        elif kind == "partition-net":
            n, what = self.victim(start, kind, self.rng.random() < 0.5)
            if n is None:
                return
            others = [o for o in c.nodes if o is not n]
            c.netpart.isolate(c.net_endpoint(n), [c.net_endpoint(o) for o in others])
            try:
                self.hold(8.0, 12.0)
                after = f"{c.meta_of(others)}; {c.meta_of([n])}"
            finally:
                self.heal_at = self.now()
                c.netpart.heal()
            self.record(start, kind, f"node {n.id} ({what}) cut off from nodes "
                                     f"{[o.id for o in others]}; during it: {after}")
        elif kind == "flaky":
            n = self.rng.choice(c.nodes)
            p = self.rng.choice([0.005, 0.02, 0.05])
            c.proxy_of[n.id].set_mode("loss", p)
            self.hold(2.0, 6.0)
            self.heal_at = self.now()
            c.proxy_of[n.id].set_mode("pass")
            self.record(start, kind, f"node {n.id}'s Kafka connections reset with p={p} per "
                                     f"chunk ({c.proxy_of[n.id].resets} resets so far)")
        self.after_heal()

    def run(self, kinds, until, stop):
        """Faults one at a time until `until`: first every kind once in a seeded order (so a
        short run covers each), then kinds drawn at random."""
        first = list(kinds)
        self.rng.shuffle(first)
        while not stop.is_set() and self.now() < until:
            time.sleep(1.0 + self.rng.random() * 3.0)
            if self.now() >= until:
                break
            kind = first.pop(0) if first else self.rng.choice(kinds)
            try:
                self.run_one(kind)
            except (OSError, TimeoutError, struct.error) as e:
                # E.g. no node answered Metadata to pick a victim: not a safety violation, but
                # reported; everything is healed before the next fault (a failure there ends
                # the run).
                self.liveness.append(f"{self.now():.1f}s: fault {kind} failed: {e!r}")
                log(f"fault {kind} failed: {e!r}; healing")
                self.heal_all()
                self.after_heal(annotate=False)

    def heal_all(self):
        for n in self.c.nodes:
            if n.paused:
                n.signal(signal.SIGCONT)
                n.paused = False
            if not n.alive():
                self.restart(n)
        if self.c.proxies is not None:
            self.c.proxies.all_pass()
        if self.c.netpart is not None:
            self.c.netpart.heal()


# --- main -----------------------------------------------------------------------------------

def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--binary")
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--seed", type=int)
    ap.add_argument("--duration", type=float, default=40.0, help="seconds of faults")
    ap.add_argument("--partitions", type=int, default=6)
    ap.add_argument("--replication-factor", type=int, default=1)
    ap.add_argument("--producers", type=int, default=2)
    ap.add_argument("--consumers", type=int, default=2)
    ap.add_argument("--rate", type=float, default=100.0, help="records/s per producer")
    ap.add_argument("--faults", default="kill-leader,pause,crash-all,slow")
    ap.add_argument("--restart-after", type=float, default=3.0)
    ap.add_argument("--pause-max", type=float, default=5.0, help="longest SIGSTOP, seconds")
    ap.add_argument("--session-timeout-ms", type=int, default=6000)
    ap.add_argument("--heartbeat-interval-ms", type=int, default=1000)
    ap.add_argument("--message-timeout-ms", type=int, default=60000)
    ap.add_argument("--flush-timeout", type=float, default=60.0)
    ap.add_argument("--final-read-timeout", type=float, default=60.0)
    ap.add_argument("--max-unavailable", type=float,
                    help="fail if the faulty phase has a gap longer than this (seconds) with no "
                         "acknowledgement at all (a liveness check for replicated topics; off "
                         "by default: with replication factor 1 a killed leader's partitions "
                         "wait for its restart)")
    ap.add_argument("--data-root")
    ap.add_argument("--keep", action="store_true", help="keep data and logs after a failure")
    ap.add_argument("--keep-always", action="store_true",
                    help="keep data and logs after a success too (to study the broker's logs)")
    ap.add_argument("--json", action="store_true", help="the final report as one JSON line")
    ap.add_argument("--wipe-on-restart", action="store_true",
                    help="test of the checker: a killed node loses its partition data")
    ap.add_argument("--self-test", action="store_true")
    args = ap.parse_args(argv)
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1 << 31)
    kinds = [k for k in args.faults.split(",") if k]
    bad = [k for k in kinds if k not in FAULTS]
    if bad:
        ap.error(f"unknown faults {bad}; known: {', '.join(FAULTS)}")
    args.fault_kinds = kinds
    if not args.self_test and not args.binary:
        ap.error("--binary is required")
    return args


def run_self_test():
    failures = queue_checker.self_test()
    for f in failures:
        print(f"FAIL: {f}")
    if failures:
        return 1
    print(f"self-test OK: each of {len(queue_checker.ANOMALIES)} anomalies detected in a "
          f"synthetic history, a clean history passes")
    return 0


def main(argv=None):
    args = parse_args(argv)
    print(f"seed {args.seed}", flush=True)
    # SIGTERM (a soak's timeout) unwinds like Ctrl-C: the nodes are killed, logs printed.
    signal.signal(signal.SIGTERM, _on_sigterm)
    if args.self_test:
        return run_self_test()
    rng = random.Random(args.seed)
    root = tempfile.mkdtemp(prefix="odradek-qs-", dir=args.data_root)
    log(f"data and logs in {root}")
    cluster = Cluster(args, root)
    hist = History()
    stop = threading.Event()
    threads = []
    result, report, ok = None, {}, False
    unresolved = [0]
    faults = None
    try:
        if "partition-net" in args.fault_kinds:
            from netpart import NetPartition, NetPartitionError
            try:
                cluster.netpart = NetPartition()
            except NetPartitionError as e:
                raise RuntimeError(f"partition-net asked for but unusable: {e}") from e
            atexit.register(cluster.netpart.close)  # besides `finally` (idempotent)
            if cluster.netpart.stale:
                log(f"removed stale iptables chains of dead runs: {cluster.netpart.stale}")
            log(f"partition-net: iptables chain {cluster.netpart.chain} hooked into INPUT")
        if any(k in PROXY_FAULTS for k in args.fault_kinds):
            cluster.use_proxies(rng.randrange(1 << 31))
            log("Kafka ports behind fault proxies: " + cluster.bootstrap())
        cluster.start_all()
        cluster.wait_healthy()
        create_topic(cluster, args)
        cluster.wait_healthy(TOPIC, args.partitions)
        log(f"topic {TOPIC}: {args.partitions} partitions, replication factor "
            f"{args.replication_factor}")

        def produce(i, prng):
            unresolved[0] += producer_loop(i, cluster, args, hist, stop, prng)

        for i in range(args.producers):
            t = threading.Thread(target=produce, args=(i, random.Random(rng.random())),
                                 daemon=True)
            t.start()
            threads.append(t)
        consumers = []
        for i in range(args.consumers):
            t = threading.Thread(target=consumer_loop, args=(f"c{i}", cluster, args, hist, stop),
                                 daemon=True)
            t.start()
            consumers.append(t)
        t0 = time.monotonic()
        faults = Faults(cluster, args, random.Random(rng.random()), t0)
        time.sleep(2.0)
        faults.run(args.fault_kinds, args.duration, stop)
        t_heal = time.monotonic()
        log("healing everything")
        faults.heal_all()
        faults.after_heal(annotate=False)
        time.sleep(2.0)
        log("stopping producers and consumers")
        stop.set()
        for t in threads + consumers:
            t.join(args.flush_timeout + 30)
        if any(t.is_alive() for t in threads + consumers):
            raise RuntimeError("a producer or consumer thread did not finish")
        with hist.lock:
            for v in hist.meta:
                if v not in hist.acks and v not in hist.indeterminate:
                    hist.indeterminate[v] = "unresolved at the end"
        cluster.wait_healthy(TOPIC, args.partitions)
        hwm = final_read(cluster, args, hist)
        result = queue_checker.check(hist.as_dict())
        bad = queue_checker.violations(result)
        avail = availability(hist.ack_times, faults.log, t0, t_heal)
        unavailable = (args.max_unavailable is not None
                       and avail["longest_gap_s"] > args.max_unavailable)
        report = {
            "seed": args.seed, "ok": bad == 0,
            "acked": len(hist.acks), "indeterminate": len(hist.indeterminate),
            "sent": len(hist.meta), "read_live": len(hist.reads),
            "read_final": len(hist.final), "high_watermarks": hwm,
            "anomalies": {k: len(v) for k, v in result.items()},
            "examples": {k: v[:10] for k, v in result.items() if v},
            "faults": faults.log, "liveness": faults.liveness, "availability": avail,
            "unavailable": unavailable,
        }
        print_summary(args, hist, result, faults, hwm, avail)
        if unavailable:
            print(f"UNAVAILABLE: {avail['longest_gap_s']}s without any acknowledgement "
                  f"(from {avail['longest_gap_at_s']}s; --max-unavailable {args.max_unavailable})")
        ok = bad == 0 and not unavailable
        report["ok"] = ok
    except Exception as e:  # noqa: BLE001
        log(f"FAIL: {type(e).__name__}: {e}")
        report = {"seed": args.seed, "ok": False, "error": f"{type(e).__name__}: {e}",
                  "faults": faults.log if faults else []}
    finally:
        stop.set()
        cluster.stop()
        if not ok:
            for n in cluster.nodes:
                print(f"--- node {n.id} log ({n.log}), last {LOG_TAIL} lines ---")
                sys.stdout.write("".join(n.tail()))
        if not args.keep_always and (ok or not args.keep):
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"data and logs kept in {root}")
    if ok:
        print(f"OK: no anomalies (seed {args.seed})", flush=True)
    elif result is not None:
        what = queue_checker.one_line(result)
        if report.get("unavailable"):
            what += f"; unavailable {report['availability']['longest_gap_s']}s"
        print(f"FAIL: {what} (seed {args.seed})", flush=True)
    else:
        print(f"FAIL: {report.get('error')} (seed {args.seed})", flush=True)
    if args.json:  # the last line
        print(json.dumps(report, default=str), flush=True)
    return 0 if ok else 1


def availability(ack_times, fault_log, t0, t_end):
    """Longest stretch of the faulty phase [t0, t_end] without any acknowledgement, and the
    acknowledgements within each fault's window."""
    ts = sorted(t - t0 for t in ack_times if t0 <= t <= t_end)
    edges = [0.0] + ts + [t_end - t0]
    gap, at = 0.0, 0.0
    for a, b in zip(edges, edges[1:]):
        if b - a > gap:
            gap, at = b - a, a
    per_fault = [(s, e, kind, sum(1 for t in ts if s <= t <= e)) for (s, e, kind, _d) in fault_log]
    return {"longest_gap_s": round(gap, 1), "longest_gap_at_s": round(at, 1),
            "acks_per_fault": per_fault}


def create_topic(cluster, args):
    from confluent_kafka.admin import AdminClient, NewTopic

    def attempt():
        admin = AdminClient({"bootstrap.servers": cluster.bootstrap()})
        return create_topic_once(admin, NewTopic(TOPIC, num_partitions=args.partitions,
                                                 replication_factor=args.replication_factor))

    wait_for(f"topic {TOPIC} created", attempt, 60)


def print_summary(args, hist, result, faults, hwm, avail):
    print(f"acked {len(hist.acks)}, indeterminate {len(hist.indeterminate)} "
          f"(of {len(hist.meta)} sent), read live {len(hist.reads)} "
          f"({len({r[3] for r in hist.reads})} distinct), final read {len(hist.final)} "
          f"(high watermarks {sum(hwm.values())})")
    ind = {}
    for why in hist.indeterminate.values():
        ind[why] = ind.get(why, 0) + 1
    for why, k in sorted(ind.items(), key=lambda x: -x[1])[:5]:
        print(f"  indeterminate: {k} x {why}")
    print(f"faults ({len(faults.log)}):")
    for (s, e, kind, detail) in faults.log:
        print(f"  {s:6.1f}s..{e:6.1f}s {kind}: {detail}")
    print(f"availability: longest stretch without an acknowledgement {avail['longest_gap_s']}s "
          f"(from {avail['longest_gap_at_s']}s); acks during each fault: "
          + ", ".join(f"{k}@{s}s {n}" for (s, _e, k, n) in avail["acks_per_fault"]))
    for line in faults.liveness:
        print(f"  liveness: {line}")
    errs = hist.errors
    if errs:
        print(f"client errors reported ({len(errs)}, first 5):")
        for e in errs[:5]:
            print(f"  {e}")
    print("anomalies:")
    print("\n".join(queue_checker.summary_lines(result)))


if __name__ == "__main__":
    sys.exit(main())
