#!/usr/bin/env python3
"""Cluster figures: admin latency, metadata propagation and controller failover on a fresh
3-node odradek cluster (python3, stdlib + confluent-kafka).

Usage: python3 bench/scripts/cluster_figures.py [--binary /tmp/odradek-release] [--kills 20]

Starts three `odradek serve` processes (nodes 1-3 on 127.0.0.2-127.0.0.4, free ports, all three
controller-quorum voters, --smp 1, data dirs and per-node stdout/stderr logs in a temp dir),
with --broker-session-timeout-ms 3000 --broker-heartbeat-interval-ms 500, and prints a Markdown
table of:

1. CreateTopics latency, client side: wall time of confluent-kafka's
   AdminClient.create_topics(...)[t].result(), for 1 and for 1,000 partitions (p50, max).
2. Propagation: from the start of the CreateTopics call until Metadata, asked of each of the
   three brokers directly (raw Metadata v4 requests on a fresh connection to that broker, so no
   client routing), lists the topic with a leader for every partition (p50, max).
3. Controller failover under admin load: --kills times, find the active controller (Metadata
   controller_id), SIGKILL it at a random moment while a load thread keeps creating 1-partition
   topics through the other brokers (raw CreateTopics v4 to one chosen broker, which forwards to
   the active controller); failover = from the kill until a raw CreateTopics sent to a surviving
   broker after the kill is acknowledged (error 0). The killed node is then restarted on its
   own data dir, and the next kill waits until every node (the restarted one included) lists 3
   brokers. At the end every acknowledged topic must be listed by every broker, and no name
   may be listed twice in one Metadata response.

Every process the script starts is stopped by PID (SIGTERM then SIGKILL), also on failure; every
wait is bounded. On a failure or anomaly the tail of each node's stderr is printed and the temp
dir is kept (it is removed after a clean run unless --keep-dir).
"""

import argparse
import os
import random
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import re

from confluent_kafka.admin import AdminClient, NewTopic

SESSION_TIMEOUT_MS = 3000
HEARTBEAT_INTERVAL_MS = 500
IPS = {1: "127.0.0.2", 2: "127.0.0.3", 3: "127.0.0.4"}
ERRORS = {0: "NONE", 7: "REQUEST_TIMED_OUT", 8: "BROKER_NOT_AVAILABLE", 36: "TOPIC_ALREADY_EXISTS",
          41: "NOT_CONTROLLER", 37: "INVALID_PARTITIONS", 38: "INVALID_REPLICATION_FACTOR",
          -1: "UNKNOWN_SERVER_ERROR"}


ANSI = re.compile(r"\x1b\[[0-9;]*m")


class Failure(Exception):
    """A measurement that could not be completed (a bounded wait ran out)."""


def now():
    return time.monotonic()


def load():
    return "%.2f %.2f %.2f" % os.getloadavg()


# ---------------------------------------------------------------- raw Kafka protocol (v0 headers)

def kstr(s):
    b = s.encode()
    return struct.pack(">h", len(b)) + b


class Reader:
    def __init__(self, data):
        self.d, self.o = data, 0

    def take(self, fmt):
        v = struct.unpack_from(fmt, self.d, self.o)
        self.o += struct.calcsize(fmt)
        return v[0]

    def i8(self):
        return self.take(">b")

    def i16(self):
        return self.take(">h")

    def i32(self):
        return self.take(">i")

    def string(self):
        n = self.i16()
        if n < 0:
            return None
        s = self.d[self.o:self.o + n].decode()
        self.o += n
        return s


def request(addr, api_key, version, body, timeout):
    """One request on a fresh connection; the response body (after the correlation id)."""
    with socket.create_connection(addr, timeout=timeout) as s:
        s.settimeout(timeout)
        corr = random.randrange(1 << 30)
        msg = struct.pack(">hhi", api_key, version, corr) + kstr("cluster-figures") + body
        s.sendall(struct.pack(">i", len(msg)) + msg)

        def recvn(n):
            buf = bytearray()
            while len(buf) < n:
                chunk = s.recv(n - len(buf))
                if not chunk:
                    raise ConnectionError("connection closed by the broker")
                buf += chunk
            return bytes(buf)

        n = struct.unpack(">i", recvn(4))[0]
        data = recvn(n)
        got = struct.unpack_from(">i", data)[0]
        if got != corr:
            raise ConnectionError(f"correlation id {got}, expected {corr}")
        return Reader(data[4:])


def metadata(addr, topics=None, timeout=5.0):
    """Metadata v4 from one broker: {brokers: [ids], controller, topics: [(name, err, [leaders])]}.
    `topics` None asks for all topics. Topics keep the response's order and repetitions. v4, with
    allow_auto_topic_creation false: v1-v3 would auto-create a topic asked for by name."""
    if topics is None:
        body = struct.pack(">i", -1)
    else:
        body = struct.pack(">i", len(topics)) + b"".join(kstr(t) for t in topics)
    body += struct.pack(">b", 0)
    r = request(addr, 3, 4, body, timeout)
    r.i32()  # throttle_time_ms
    brokers = []
    for _ in range(r.i32()):
        node = r.i32()
        r.string()
        r.i32()
        r.string()
        brokers.append(node)
    r.string()  # cluster_id
    controller = r.i32()
    out = []
    for _ in range(r.i32()):
        err = r.i16()
        name = r.string()
        r.i8()
        leaders = []
        for _ in range(r.i32()):
            r.i16()
            r.i32()
            leaders.append(r.i32())
            for _ in range(r.i32()):
                r.i32()
            for _ in range(r.i32()):
                r.i32()
        out.append((name, err, leaders))
    return {"brokers": sorted(brokers), "controller": controller, "topics": out}


def create_topic_raw(addr, name, partitions=1, rf=1, timeout_ms=5000, sock_timeout=10.0):
    """CreateTopics v4 to this broker; (error_code, error_message)."""
    body = (struct.pack(">i", 1) + kstr(name) + struct.pack(">ihii", partitions, rf, 0, 0)
            + struct.pack(">ib", timeout_ms, 0))
    r = request(addr, 19, 4, body, sock_timeout)
    r.i32()  # throttle_time_ms
    n = r.i32()
    if n != 1:
        raise ConnectionError(f"CreateTopics answered {n} topics")
    r.string()
    return r.i16(), r.string()


def visible(addr, topic, partitions):
    """Whether this broker lists `topic` with `partitions` partitions, each with a leader."""
    md = metadata(addr, [topic], timeout=5.0)
    for name, err, leaders in md["topics"]:
        if name == topic and err == 0 and len(leaders) == partitions and all(l >= 0 for l in leaders):
            return True
    return False


# ---------------------------------------------------------------------------------- the cluster

def free_port(ip):
    with socket.socket() as s:
        s.bind((ip, 0))
        return s.getsockname()[1]


class Node:
    def __init__(self, node_id, root, binary):
        self.id = node_id
        self.ip = IPS[node_id]
        self.port = free_port(self.ip)
        self.cport = free_port(self.ip)
        while self.cport == self.port:
            self.cport = free_port(self.ip)
        self.addr = (self.ip, self.port)
        self.data_dir = os.path.join(root, f"node{node_id}")
        self.stdout_path = os.path.join(root, f"node{node_id}.stdout")
        self.stderr_path = os.path.join(root, f"node{node_id}.stderr")
        self.binary = binary
        self.proc = None
        self.starts = 0

    def argv(self, voters):
        return [self.binary, "serve", "--node-id", str(self.id),
                "--listen", f"{self.ip}:{self.port}",
                "--controller-listen", f"{self.ip}:{self.cport}",
                "--controller-quorum-voters", voters,
                "--data-dir", self.data_dir, "--smp", "1",
                "--broker-session-timeout-ms", str(SESSION_TIMEOUT_MS),
                "--broker-heartbeat-interval-ms", str(HEARTBEAT_INTERVAL_MS)]

    def start(self, voters, procs):
        self.starts += 1
        for path in (self.stdout_path, self.stderr_path):
            with open(path, "a") as f:
                f.write(f"=== cluster_figures: start #{self.starts} of node {self.id} at "
                        f"{time.strftime('%H:%M:%S')} ===\n")
        out = open(self.stdout_path, "a")
        err = open(self.stderr_path, "a")
        try:
            self.proc = subprocess.Popen(self.argv(voters), stdout=out, stderr=err,
                                         env=dict(os.environ, NO_COLOR="1"),
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        finally:
            out.close()
            err.close()
        procs.append(self.proc)

    def wait_ready(self, timeout):
        """Until this start's stdout has a line starting `odradek ready: listening`."""
        marker = f"=== cluster_figures: start #{self.starts} of node {self.id} "
        deadline = now() + timeout
        while now() < deadline:
            if self.proc.poll() is not None:
                raise Failure(f"node {self.id} exited with {self.proc.returncode} before ready")
            with open(self.stdout_path) as f:
                text = f.read()
            tail = text[text.rfind(marker):]
            if any(l.startswith("odradek ready: listening") for l in tail.splitlines()):
                return
            time.sleep(0.02)
        raise Failure(f"node {self.id} not ready within {timeout}s")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stderr_tail(self, lines=40):
        """The last `lines` lines of this node's stderr (all starts), colours stripped."""
        try:
            with open(self.stderr_path, errors="replace") as f:
                return "".join(ANSI.sub("", l) for l in f.readlines()[-lines:])
        except OSError as e:
            return f"(unreadable: {e})"


def stop_all(procs):
    for p in procs:
        if p.poll() is None:
            try:
                os.kill(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = now() + 10
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - now()))
        except subprocess.TimeoutExpired:
            try:
                os.kill(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait(timeout=10)


def wait_brokers(nodes, timeout, count=3):
    """Until every node in `nodes` answers Metadata listing `count` brokers; the seconds taken."""
    t0 = now()
    last = {}
    while now() - t0 < timeout:
        ok = True
        for n in nodes:
            try:
                md = metadata(n.addr, [], timeout=2.0)
                last[n.id] = md["brokers"]
                ok = ok and len(md["brokers"]) == count and n.id in md["brokers"]
            except (OSError, struct.error) as e:
                last[n.id] = repr(e)
                ok = False
        if ok:
            return now() - t0
        time.sleep(0.05)
    raise Failure(f"not {count} brokers on nodes {[n.id for n in nodes]} within {timeout}s: {last}")


def find_controller(nodes, timeout=30):
    """The controller id that every node names (one of the nodes)."""
    deadline = now() + timeout
    last = {}
    while now() < deadline:
        seen = set()
        for n in nodes:
            try:
                seen.add(metadata(n.addr, [], timeout=2.0)["controller"])
            except (OSError, struct.error) as e:
                seen.add(repr(e))
        last = seen
        if len(seen) == 1:
            c = seen.pop()
            if isinstance(c, int) and c in {n.id for n in nodes}:
                return c
        time.sleep(0.05)
    raise Failure(f"no agreed controller within {timeout}s: {last}")


# -------------------------------------------------------------------------------- measurements

def stats(xs):
    if not xs:
        return "n/a", "n/a"
    return f"{statistics.median(xs) * 1000:.0f} ms", f"{max(xs) * 1000:.0f} ms"


def create_confluent(admin, name, partitions, timeout=60):
    t0 = now()
    f = admin.create_topics([NewTopic(name, partitions, 1)], operation_timeout=30,
                            request_timeout=timeout)[name]
    f.result(timeout=timeout)
    return t0, now() - t0


def measure_create(admin, partitions, reps, prefix):
    times = []
    for i in range(reps):
        _, dt = create_confluent(admin, f"{prefix}-{partitions}p-{i}-{uuid.uuid4().hex[:6]}",
                                 partitions)
        times.append(dt)
    return times


def measure_propagation(admin, nodes, partitions, reps, prefix, timeout=60):
    """From the create call's start until every broker lists the topic with all leaders; pollers
    (one thread per broker) ask their broker every 10 ms from the call's start."""
    results = []
    for i in range(reps):
        name = f"{prefix}-{partitions}p-{i}-{uuid.uuid4().hex[:6]}"
        seen = {}
        errors = {}
        start = threading.Event()
        t0_box = []

        def poll(n):
            start.wait()
            t0 = t0_box[0]
            while now() - t0 < timeout:
                try:
                    if visible(n.addr, name, partitions):
                        seen[n.id] = now() - t0
                        return
                except (OSError, struct.error) as e:
                    errors[n.id] = repr(e)
                time.sleep(0.01)

        threads = [threading.Thread(target=poll, args=(n,), daemon=True) for n in nodes]
        for t in threads:
            t.start()
        t0_box.append(now())
        start.set()
        f = admin.create_topics([NewTopic(name, partitions, 1)], operation_timeout=30,
                                request_timeout=timeout)[name]
        f.result(timeout=timeout)
        for t in threads:
            t.join(timeout + 5)
        if len(seen) != len(nodes):
            raise Failure(f"topic {name} not visible with leaders on brokers "
                          f"{sorted(set(n.id for n in nodes) - set(seen))} within {timeout}s "
                          f"(errors {errors})")
        results.append(max(seen.values()))
    return results


class Load:
    """Keeps creating 1-partition topics through the brokers in `targets` (raw CreateTopics)."""

    def __init__(self):
        self.targets = []  # list of (ip, port); replaced, never mutated in place
        self.stop = threading.Event()
        self.acked = []  # (name, broker id)
        self.attempted = set()
        self.outcomes = {}
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.seq = 0

    def count(self, key):
        with self.lock:
            self.outcomes[key] = self.outcomes.get(key, 0) + 1

    def run(self):
        while not self.stop.is_set():
            targets = self.targets
            if not targets:
                time.sleep(0.01)
                continue
            node_id, addr = random.choice(targets)
            self.seq += 1
            name = f"load-{self.seq}-{uuid.uuid4().hex[:6]}"
            with self.lock:
                self.attempted.add(name)
            try:
                err, _ = create_topic_raw(addr, name, timeout_ms=5000, sock_timeout=10.0)
                self.count(ERRORS.get(err, str(err)))
                if err == 0:
                    with self.lock:
                        self.acked.append((name, node_id))
                else:
                    time.sleep(0.02)
            except (OSError, struct.error) as e:
                self.count(type(e).__name__)
                time.sleep(0.02)


def failover_loop(nodes, voters, procs, kills, load, report):
    failovers, rejoins, readies, probe_acked, probe_attempted = [], [], [], [], set()
    by_id = {n.id: n for n in nodes}
    rng = random.Random()
    for k in range(kills):
        controller = find_controller(nodes)
        victim = by_id[controller]
        survivors = [n for n in nodes if n.id != controller]
        load.targets = [(n.id, n.addr) for n in survivors]
        time.sleep(rng.uniform(0.0, 2.0))  # a random moment in the load
        victim.kill()
        t_kill = now()
        deadline = t_kill + 60
        i = 0
        t_ok = None
        last = None
        while now() < deadline:
            n = survivors[i % 2]
            i += 1
            name = f"probe-{k}-{i}-{uuid.uuid4().hex[:6]}"
            probe_attempted.add(name)
            try:
                err, msg = create_topic_raw(n.addr, name, timeout_ms=2000, sock_timeout=5.0)
            except (OSError, struct.error) as e:
                err, msg = None, repr(e)
            if err == 0:
                t_ok = now()
                probe_acked.append((name, n.id))
                break
            last = (n.id, err, msg)
            time.sleep(0.02)
        if t_ok is None:
            raise Failure(f"kill {k + 1}: no CreateTopics acknowledged by survivors "
                          f"{[n.id for n in survivors]} within 60s of killing node {controller}; "
                          f"last answer {last}")
        failovers.append(t_ok - t_kill)
        new_controller = find_controller(survivors)
        t_restart = now()
        victim.start(voters, procs)
        victim.wait_ready(60)
        readies.append(now() - t_restart)
        # A stale registration of the killed broker is listed until its session times out, so
        # "3 brokers" only counts from a session timeout (plus 0.5 s) after the kill.
        wait = t_kill + SESSION_TIMEOUT_MS / 1000 + 0.5 - now()
        if wait > 0:
            time.sleep(wait)
        wait_brokers(nodes, 60)
        rejoins.append(now() - t_restart)
        # And the restarted node forwards admin requests again.
        deadline = now() + 30
        while True:
            name = f"probe-{k}-rejoined-{uuid.uuid4().hex[:6]}"
            probe_attempted.add(name)
            try:
                err, msg = create_topic_raw(victim.addr, name, timeout_ms=2000, sock_timeout=5.0)
            except (OSError, struct.error) as e:
                err, msg = None, repr(e)
            if err == 0:
                probe_acked.append((name, victim.id))
                break
            if now() > deadline:
                raise Failure(f"kill {k + 1}: restarted node {victim.id} lists 3 brokers but "
                              f"its CreateTopics fail for 30s: {err} {msg}")
            time.sleep(0.05)
        report(f"kill {k + 1}/{kills}: node {controller} killed, CreateTopics acknowledged again "
               f"after {(t_ok - t_kill) * 1000:.0f} ms (new controller {new_controller}); node "
               f"{controller} restarted, 3 brokers after {rejoins[-1] * 1000:.0f} ms; "
               f"load {load.outcomes}")
        load.targets = [(n.id, n.addr) for n in nodes]
    return failovers, rejoins, readies, probe_acked, probe_attempted


def check_topics(nodes, acked, attempted, timeout=30):
    """Every acknowledged name listed by every broker, no name twice in one response. Waits up
    to `timeout` for a lagging broker; returns per-broker results."""
    deadline = now() + timeout
    while True:
        res = {}
        for n in nodes:
            md = metadata(n.addr, None, timeout=10.0)
            names = [t[0] for t in md["topics"]]
            listed = set(names)
            res[n.id] = {
                "listed": len(names),
                "missing": sorted(a for a in acked if a not in listed),
                "duplicates": sorted({x for x in names if names.count(x) > 1}) if len(listed) != len(names) else [],
                "unacked_present": len((attempted - set(acked)) & listed),
            }
        if all(not r["missing"] for r in res.values()) or now() > deadline:
            return res
        time.sleep(0.5)


# -------------------------------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--binary", default="/tmp/odradek-release")
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--creates-1", type=int, default=10, help="1-partition creates (item 1)")
    ap.add_argument("--creates-1000", type=int, default=3, help="1000-partition creates (item 1)")
    ap.add_argument("--propagation", type=int, default=10, help="1-partition topics (item 2)")
    ap.add_argument("--propagation-1000", type=int, default=3, help="1000-partition topics (item 2)")
    ap.add_argument("--keep-dir", action="store_true")
    args = ap.parse_args()

    print("command: " + " ".join([sys.executable] + sys.argv), flush=True)
    print(f"start: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}, load average (1/5/15 min) {load()}, "
          f"{os.cpu_count()} CPUs", flush=True)
    binary = os.path.abspath(args.binary)
    st = os.stat(binary)
    print(f"binary: {binary} (mtime {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(st.st_mtime))} "
          f"UTC, {st.st_size} bytes)", flush=True)
    print(f"cluster: 3 nodes, all voters and brokers, --smp 1, --broker-session-timeout-ms "
          f"{SESSION_TIMEOUT_MS} --broker-heartbeat-interval-ms {HEARTBEAT_INTERVAL_MS}; "
          f"topics with replication factor 1", flush=True)

    root = tempfile.mkdtemp(prefix="cluster-figures-")
    procs = []
    nodes = [Node(i, root, binary) for i in (1, 2, 3)]
    voters = ",".join(f"{n.id}@{n.ip}:{n.cport}" for n in nodes)
    print(f"temp dir: {root}", flush=True)
    for n in nodes:
        print(f"  node {n.id}: " + " ".join(n.argv(voters)), flush=True)

    def on_signal(signum, _frame):
        raise SystemExit(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    anomalies = []
    rows = []
    load_ = None
    ok = False

    def report(line):
        print("  " + line, flush=True)

    try:
        t0 = now()
        for n in nodes:
            n.start(voters, procs)
        for n in nodes:
            n.wait_ready(60)
        formed = wait_brokers(nodes, 60)
        print(f"cluster formed: 3 brokers on every node {(now() - t0) * 1000:.0f} ms after the "
              f"first start ({formed * 1000:.0f} ms after all were ready); controller "
              f"{find_controller(nodes)}", flush=True)

        bootstrap = ",".join(f"{n.ip}:{n.port}" for n in nodes)
        admin = AdminClient({"bootstrap.servers": bootstrap})
        create_confluent(admin, f"warmup-{uuid.uuid4().hex[:6]}", 1)  # connections, metadata

        # 1. CreateTopics latency.
        c1 = measure_create(admin, 1, args.creates_1, "create")
        c1000 = measure_create(admin, 1000, args.creates_1000, "create")
        rows.append(("CreateTopics latency, 1 partition", len(c1), *stats(c1)))
        rows.append(("CreateTopics latency, 1,000 partitions", len(c1000), *stats(c1000)))
        print(f"1. create: 1p {[round(x * 1000) for x in c1]} ms; 1000p "
              f"{[round(x * 1000) for x in c1000]} ms", flush=True)

        # 2. Propagation to every broker.
        p1 = measure_propagation(admin, nodes, 1, args.propagation, "prop")
        p1000 = measure_propagation(admin, nodes, 1000, args.propagation_1000, "prop")
        rows.append(("Visible with leaders on all 3 brokers, 1 partition", len(p1), *stats(p1)))
        rows.append(("Visible with leaders on all 3 brokers, 1,000 partitions", len(p1000),
                     *stats(p1000)))
        print(f"2. propagation: 1p {[round(x * 1000) for x in p1]} ms; 1000p "
              f"{[round(x * 1000) for x in p1000]} ms", flush=True)

        # 3. Controller failover under admin load.
        print(f"3. failover: {args.kills} kills of the active controller under admin load",
              flush=True)
        load_ = Load()
        load_.targets = [(n.id, n.addr) for n in nodes]
        load_.thread.start()
        failovers, rejoins, readies, probe_acked, probe_attempted = [], [], [], [], set()
        try:
            failovers, rejoins, readies, probe_acked, probe_attempted = failover_loop(
                nodes, voters, procs, args.kills, load_, report)
        finally:
            load_.stop.set()
            load_.thread.join(15)
        rows.append(("Controller failover: kill -> CreateTopics acknowledged via a survivor",
                     len(failovers), *stats(failovers)))
        rows.append(("Killed controller restarted (same data dir) -> `odradek ready` line",
                     len(readies), *stats(readies)))
        rows.append(("Killed controller restarted -> 3 brokers listed on every node (not before "
                     f"kill + {SESSION_TIMEOUT_MS / 1000 + 0.5:g} s)",
                     len(rejoins), *stats(rejoins)))

        acked = [a for a, _ in load_.acked] + [a for a, _ in probe_acked]
        attempted = load_.attempted | probe_attempted
        res = check_topics(nodes, acked, attempted)
        missing = {i: r["missing"] for i, r in res.items() if r["missing"]}
        dups = {i: r["duplicates"] for i, r in res.items() if r["duplicates"]}
        if missing:
            anomalies.append(f"acknowledged topics not listed: {missing}")
        if dups:
            anomalies.append(f"topics listed twice: {dups}")
        print(f"   load outcomes: {load_.outcomes}", flush=True)
        summary = (f"{len(acked)} acknowledged ({len(load_.acked)} load + {len(probe_acked)} "
                   f"probes) of {len(attempted)} attempted; per broker: "
                   + "; ".join(f"node {i}: {r['listed']} topics listed, {len(r['missing'])} "
                               f"acknowledged missing, {len(r['duplicates'])} listed twice, "
                               f"{r['unacked_present']} unacknowledged attempts present"
                               for i, r in sorted(res.items())))
        print("   topics after the kills: " + summary, flush=True)
        ok = True
    except (Failure, Exception) as e:  # noqa: BLE001 - report anything, then clean up
        anomalies.append(f"run aborted: {type(e).__name__}: {e}")
        print(f"ABORTED: {type(e).__name__}: {e}", flush=True)
    finally:
        # The tails as they were at the failure, before the shutdown's own lines.
        tails = {n.id: n.stderr_tail() for n in nodes}
        if load_ is not None:
            load_.stop.set()
        stop_all(procs)

    print()
    print(f"| Figure (3 nodes, 127.0.0.2-4, --smp 1, session timeout {SESSION_TIMEOUT_MS} ms, "
          f"heartbeat {HEARTBEAT_INTERVAL_MS} ms) | n | p50 | max |")
    print("|---|---:|---:|---:|")
    for name, n, p50, mx in rows:
        print(f"| {name} | {n} | {p50} | {mx} |")
    if ok:
        print()
        print(f"Committed metadata after {args.kills} controller kills: {summary}")
    print()
    print(f"end: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}, load average (1/5/15 min) {load()}")
    if anomalies:
        print("\nANOMALIES:")
        for a in anomalies:
            print(f"- {a}")
        for n in nodes:
            print(f"\n--- tail of node {n.id} stderr before the shutdown "
                  f"({n.stderr_path}) ---")
            print(tails[n.id], end="")
        print(f"\ntemp dir kept: {root}")
        return 1
    if args.keep_dir:
        print(f"temp dir kept: {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
