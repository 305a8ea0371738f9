"""Shared helpers for the client scripts that drive a real `odradek serve` node.

Every script takes `--bootstrap HOST:PORT` and a mode, prints what it checked, and on any
mismatch prints one `FAIL: <reason>` line and exits 1. Every wait is bounded by DEADLINE_S.
"""

import sys
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
