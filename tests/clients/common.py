"""Shared helpers for the client scripts that drive a real `odradek serve` node.

Every script takes `--bootstrap HOST:PORT` and a mode, prints what it checked, and on any
mismatch prints one `FAIL: <reason>` line and exits 1. Every wait is bounded by DEADLINE_S.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

# Upper bound on any single wait in a script (the Rust test also bounds the whole process).
DEADLINE_S = 20.0

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]


def fail(reason):
    print(f"FAIL: {reason}", flush=True)
    sys.exit(1)


def check(cond, reason):
    if not cond:
        fail(reason)


def deadline(seconds=DEADLINE_S):
    return time.monotonic() + seconds


def expired(at):
    return time.monotonic() > at


def key_of(i):
    """A key, or None for some records (null keys must round-trip as null)."""
    if i % 7 == 3:
        return None
    if i % 5 == 0:
        return bytes([0, 255, i % 256]) + b"binary-key"
    return f"key-{i}".encode()


def value_of(i, big=False):
    """A value: null (tombstone), empty, binary, compressible text, or large."""
    if i % 11 == 5:
        return None
    if i % 13 == 0:
        return b""
    if big and i == 1:
        return bytes((j * 31 + i) % 251 for j in range(300_000))
    body = f"value-{i}-".encode() * (1 + (i * 37) % 40)
    return body + bytes((i + j) % 256 for j in range(i % 17))


def headers_of(i):
    """Headers as a list of (name, value) pairs: none, duplicates, binary, null, empty."""
    m = i % 3
    if m == 0:
        return []
    if m == 1:
        return [("h1", b"first"), ("h1", b"dup"), ("trace", f"t{i}".encode())]
    return [("bin", bytes(range(256))), ("null", None), ("empty", b"")]


def show(b):
    if b is None:
        return "None"
    return repr(b if len(b) <= 40 else b[:40] + b"...") + f"({len(b)}B)"


# --- Running a cluster of real nodes (the cluster scripts: soaks, failover, queue safety) ---

# How long a started node may take to print its ready line.
READY_S = 30.0


def free_port(host):
    """A port free on `host` now (bound on port 0, then closed)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def poll_until(what, fn, limit, every=0.1):
    """Calls `fn` every `every` seconds until it returns something other than None (returned),
    at most `limit` seconds; exceptions count as "not yet". TimeoutError after that."""
    at = time.monotonic() + limit
    last = None
    while time.monotonic() < at:
        try:
            v = fn()
            if v is not None:
                return v
        except Exception as e:  # noqa: BLE001
            last = e
        time.sleep(every)
    raise TimeoutError(f"{what}: not within {limit}s (last error: {last!r})")


def wait_for(what, fn, limit, every=0.1):
    """As `poll_until`, but a timeout ends the script with `FAIL: ...`."""
    try:
        return poll_until(what, fn, limit, every)
    except TimeoutError as e:
        fail(str(e))


class ClusterNode:
    """One `odradek serve` process of a 3-node test cluster: node `node_id` on
    127.0.0.<id+1> with free Kafka and controller ports, its data and stderr under `root`;
    `voters` is set by the caller once every node's controller port is known."""

    def __init__(self, binary, node_id, root, extra=()):
        self.id, self.binary, self.extra = node_id, binary, list(extra)
        self.host = f"127.0.0.{node_id + 1}"
        self.port, self.cport = free_port(self.host), free_port(self.host)
        self.data = os.path.join(root, f"node{node_id}")
        self.log = os.path.join(root, f"node{node_id}.log")
        self.voters = ""
        self.proc = None

    def addr(self):
        return f"{self.host}:{self.port}"

    def start(self):
        """Starts the node and waits (bounded) for its ready line."""
        args = [self.binary, "serve", "--node-id", str(self.id), "--listen", self.addr(),
                "--controller-listen", f"{self.host}:{self.cport}",
                "--controller-quorum-voters", self.voters, "--data-dir", self.data,
                "--smp", "1"] + self.extra
        env = dict(os.environ, ODRADEK_LOG="info", NO_COLOR="1")
        with open(self.log, "a") as log:
            self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log,
                                         stdin=subprocess.DEVNULL, env=env, text=True)
        got = []
        t = threading.Thread(target=lambda: got.append(self.proc.stdout.readline()), daemon=True)
        t.start()
        t.join(READY_S)
        check(got and got[0].startswith("odradek ready"),
              f"node {self.id}: no ready line within {READY_S}s (see {self.log})")
        # Keep draining stdout so the node never blocks on it.
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)


def three_nodes(binary, root, extra=()):
    """Nodes 1, 2 and 3, not started, each knowing the three as its voters."""
    nodes = [ClusterNode(binary, i, root, extra) for i in (1, 2, 3)]
    voters = ",".join(f"{n.id}@{n.host}:{n.cport}" for n in nodes)
    for n in nodes:
        n.voters = voters
    return nodes


def stop_cluster(stop, nodes, root, ok):
    """Ends a run over `nodes`: sets `stop` (the load threads' event), kills every node, and
    removes `root` after a passing run or says where its logs and data were kept."""
    stop.set()
    for n in nodes:
        n.kill()
    if ok:
        shutil.rmtree(root, ignore_errors=True)
    else:
        print(f"logs and data kept in {root}", flush=True)


def create_topic_once(admin, new_topic):
    """Creates `new_topic` with a confluent_kafka AdminClient; one that already exists (an
    earlier attempt that timed out on the client but succeeded) counts as created. Returns
    True, for `wait_for`."""
    from confluent_kafka import KafkaError, KafkaException

    fs = admin.create_topics([new_topic], request_timeout=5)
    try:
        fs[new_topic.topic].result(timeout=10)
    except KafkaException as e:
        if e.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
            raise
    return True
