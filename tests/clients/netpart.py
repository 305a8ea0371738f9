"""A real network partition between loopback nodes, with iptables (queue_safety.py's
`partition-net` fault).

One chain per run, `ODRSAFE<pid>`, jumped to from INPUT once (loopback traffic crosses INPUT, so
one hook sees every packet between two local addresses). `isolate(node, others)` adds DROP
rules cutting the TCP traffic between `node`'s address and each other node's address, in both
directions, to and from the listening ports of this run (Kafka, controller, fault proxy): a
concurrent run on other ports, and clients on 127.0.0.1, are untouched. `heal()` flushes the
chain; `close()` unhooks and deletes it. A chain left by a run that died (its PID gone, or no
longer a queue_safety.py) is removed by `clean_stale()`.

Needs root (CAP_NET_ADMIN) and the `iptables` command: `NetPartition()` raises
`NetPartitionError` with the reason when it cannot work, so a run asked for `partition-net`
fails clearly rather than skipping it.
"""

import os
import re
import shutil
import subprocess

PREFIX = "ODRSAFE"
HOOK = "INPUT"
TIMEOUT_S = 10


class NetPartitionError(RuntimeError):
    pass


def _ipt(*args, check=True):
    exe = shutil.which("iptables")
    if exe is None:
        raise NetPartitionError("no iptables command (apt-get install iptables; needs root)")
    try:
        r = subprocess.run([exe, "-w", "5", *args], capture_output=True, text=True,
                           timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired as e:
        raise NetPartitionError(f"iptables {' '.join(args)}: timed out") from e
    if check and r.returncode != 0:
        raise NetPartitionError(f"iptables {' '.join(args)} failed ({r.returncode}): "
                                f"{(r.stderr or r.stdout).strip()}")
    return r


def _pid_is_ours(pid):
    """Whether `pid` is a live queue_safety.py (a chain it owns is not stale)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().decode(errors="replace")
    except OSError:
        return False
    return "queue_safety" in cmd


def _drop_chain(chain):
    # Every jump to it (bounded: a chain is hooked once, a crash mid-hook at most twice).
    for _ in range(10):
        if _ipt("-D", HOOK, "-j", chain, check=False).returncode != 0:
            break
    _ipt("-F", chain, check=False)
    _ipt("-X", chain, check=False)


def clean_stale():
    """Removes ODRSAFE<pid> chains whose run is gone; returns their names."""
    out = _ipt("-S").stdout
    gone = []
    for m in re.finditer(rf"^-N ({PREFIX}(\d+))$", out, re.M):
        chain, pid = m.group(1), int(m.group(2))
        if pid != os.getpid() and not _pid_is_ours(pid):
            _drop_chain(chain)
            gone.append(chain)
    return gone


class NetPartition:
    def __init__(self):
        if os.geteuid() != 0:
            raise NetPartitionError("partition-net needs root (iptables rules); run as root or "
                                    "leave partition-net out of --faults")
        _ipt("-S")  # the command works here (nf_tables or legacy backend)
        self.stale = clean_stale()
        self.chain = f"{PREFIX}{os.getpid()}"
        _drop_chain(self.chain)  # a leftover of this very PID (reused): start clean
        _ipt("-N", self.chain)
        self.hooked = False
        try:
            _ipt("-I", HOOK, "1", "-j", self.chain)
            self.hooked = True
        except NetPartitionError:
            _ipt("-X", self.chain, check=False)
            raise
        self.closed = False
        self.isolated = None

    def isolate(self, node, others):
        """Cuts `node` ((ip, [ports])) off from each of `others` ([(ip, [ports])]): no TCP
        segment between the two addresses to or from either side's listening ports."""
        ip, ports = node
        for oip, oports in others:
            for src, dst, lports in ((ip, oip, oports), (oip, ip, ports)):
                plist = ",".join(str(p) for p in lports)
                # connections to dst's listeners, and the replies from them
                _ipt("-A", self.chain, "-s", src, "-d", dst, "-p", "tcp", "-m", "multiport",
                     "--dports", plist, "-j", "DROP")
                _ipt("-A", self.chain, "-s", dst, "-d", src, "-p", "tcp", "-m", "multiport",
                     "--sports", plist, "-j", "DROP")
        self.isolated = ip

    def rules(self):
        return [l for l in _ipt("-S", self.chain).stdout.splitlines() if l.startswith("-A")]

    def heal(self):
        if not self.closed:
            _ipt("-F", self.chain)
        self.isolated = None

    def close(self):
        """Unhooks and deletes the chain (idempotent; never raises)."""
        if self.closed:
            return
        self.closed = True
        try:
            _drop_chain(self.chain)
        except Exception:  # noqa: BLE001
            pass
