#!/usr/bin/env python3
"""Abusive clients for one class of flood at a time, against a live node (issue 18).

    flood.py BOOTSTRAP CLASS COUNT SECONDS [TOPIC]

CLASS is one of
  idle      COUNT connections that connect and send nothing;
  loris     COUNT connections that announce a request (a 4-byte length prefix of a Metadata
            request padded to 1000 bytes) and then send one byte a second;
  nonreader COUNT connections that pipeline requests without ever reading an answer (a 4 KiB
            receive buffer): Fetch v4 of TOPIC's partition 0 from offset 0 (up to 1 MiB an
            answer; fill TOPIC with a few MiB first), 200 each, or without TOPIC ApiVersions,
            50,000 each;
  pipeline  COUNT connections that send ApiVersions requests as fast as the socket takes them
            and read the answers slowly (4 KiB every 10 ms), checking they come back in order.

Every connection is made before SECONDS start to count; the flood then runs SECONDS (bounded:
at most 600) and prints one JSON line: how many connections were opened, how many the node
closed (EOF or reset) and after how long (min/median/max seconds), how many bytes were sent
and, for `pipeline`, how many answers came back and whether they were in order. Everything is
non-blocking on one epoll selector; nothing here waits unbounded.
"""

import errno
import json
import selectors
import socket
import struct
import sys
import time

def frame(api_key, version, correlation_id, body=b""):
    header = struct.pack(">hhih", api_key, version, correlation_id, -1)
    payload = header + body
    return struct.pack(">i", len(payload)) + payload


def metadata_all(correlation_id):
    """Metadata v0 with an empty topic list: every topic."""
    return frame(3, 0, correlation_id, struct.pack(">i", 0))


def api_versions(correlation_id):
    return frame(18, 0, correlation_id)


def fetch(correlation_id, topic):
    """Fetch v4 of partition 0 of `topic` from offset 0, up to 1 MiB, without waiting."""
    name = topic.encode()
    body = struct.pack(">iiiib", -1, 0, 1, 1 << 20, 0)
    body += struct.pack(">ih", 1, len(name)) + name
    body += struct.pack(">iiqi", 1, 0, 0, 1 << 20)
    return frame(1, 4, correlation_id, body)


def connect(addr, rcvbuf=None):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.connect(addr)
    s.setblocking(False)
    return s


def closed_by_peer(s):
    """True when the node closed `s` (EOF or reset); reads and drops what is pending."""
    try:
        while True:
            data = s.recv(65536)
            if not data:
                return True
    except BlockingIOError:
        return False
    except (ConnectionResetError, BrokenPipeError):
        return True
    except OSError as e:
        return e.errno in (errno.ECONNRESET, errno.EPIPE, errno.ENOTCONN)


def summary(kind, opened, closed_at, started, sent, extra=None):
    ages = sorted(closed_at)
    out = {
        "class": kind,
        "opened": opened,
        "closed_by_node": len(ages),
        "closed_after_s": {
            "min": round(ages[0], 2) if ages else None,
            "median": round(ages[len(ages) // 2], 2) if ages else None,
            "max": round(ages[-1], 2) if ages else None,
        },
        "bytes_sent": sent,
        "seconds": round(time.monotonic() - started, 2),
    }
    out.update(extra or {})
    print(json.dumps(out), flush=True)


def run(addr, kind, count, seconds, topic=None):
    seconds = min(seconds, 600.0)
    sel = selectors.DefaultSelector()
    socks = []
    for i in range(count):
        rcvbuf = 4096 if kind in ("nonreader", "pipeline") else None
        try:
            socks.append(connect(addr, rcvbuf))
        except OSError as e:
            print(f"connection {i} failed: {e}", file=sys.stderr)
            break
    started = time.monotonic()
    deadline = started + seconds
    closed_at = {}
    sent = 0
    extra = {}
    # Per-socket state: bytes still to send (loris), requests sent, answers read (pipeline).
    pending = {}
    if kind == "loris":
        body = metadata_all(1)[4:]
        announced = 1000
        for s in socks:
            s.send(struct.pack(">i", announced))
            sent += 4
            pending[s] = body + bytes(announced - len(body))
    if kind != "nonreader":
        # A non-reader's socket is always readable; it is polled for its error instead.
        for s in socks:
            sel.register(s, selectors.EVENT_READ)
    next_tick = started
    requests_each = 200 if topic and kind == "nonreader" else 50_000
    correlation = {s: 0 for s in socks}
    answers_read = {s: 0 for s in socks}
    in_order = True
    inbuf = {s: b"" for s in socks}
    while time.monotonic() < deadline and len(closed_at) < len(socks):
        now = time.monotonic()
        if kind == "loris" and now >= next_tick:
            next_tick += 1.0
            for s in socks:
                if s in closed_at or not pending.get(s):
                    continue
                try:
                    sent += s.send(pending[s][:1])
                    pending[s] = pending[s][1:]
                except BlockingIOError:
                    pass
                except OSError:
                    closed_at[s] = now - started
        if kind in ("nonreader", "pipeline"):
            for s in socks:
                if s in closed_at or correlation[s] >= requests_each:
                    continue
                try:
                    while correlation[s] < requests_each:
                        if topic and kind == "nonreader":
                            req = fetch(correlation[s], topic)
                        else:
                            req = api_versions(correlation[s])
                        n = s.send(req)
                        sent += n
                        if n < len(req):
                            # The rest is dropped with the connection: the node will see a
                            # partial request, which is what a stuck client looks like.
                            correlation[s] = requests_each
                            break
                        correlation[s] += 1
                except BlockingIOError:
                    pass
                except OSError:
                    closed_at[s] = now - started
        if kind == "nonreader":
            # Never read. The node closes with requests of ours unread, so its close is a
            # reset, which shows as the socket's pending error.
            time.sleep(0.2)
            for s in socks:
                if s not in closed_at:
                    err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err in (errno.ECONNRESET, errno.EPIPE):
                        closed_at[s] = time.monotonic() - started
            continue
        timeout = 0.01 if kind == "pipeline" else 0.2
        for key, _ in sel.select(timeout=timeout):
            s = key.fileobj
            if s in closed_at:
                continue
            if kind == "pipeline":
                try:
                    data = s.recv(4096)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    closed_at[s] = time.monotonic() - started
                    sel.unregister(s)
                    continue
                buf = inbuf[s] + data
                while len(buf) >= 8:
                    (size,) = struct.unpack(">i", buf[:4])
                    if len(buf) < 4 + size:
                        break
                    (cid,) = struct.unpack(">i", buf[4:8])
                    in_order &= cid == answers_read[s]
                    answers_read[s] += 1
                    buf = buf[4 + size:]
                inbuf[s] = buf
            elif closed_by_peer(s):
                closed_at[s] = time.monotonic() - started
                sel.unregister(s)
        if kind == "pipeline":
            time.sleep(0.01)
    if kind == "pipeline":
        extra = {"requests": sum(correlation.values()), "answers": sum(answers_read.values()),
                 "in_order": in_order}
    summary(kind, len(socks), list(closed_at.values()), started, sent, extra)
    for s in socks:
        s.close()


def main():
    if len(sys.argv) not in (5, 6):
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    host, port = sys.argv[1].rsplit(":", 1)
    kind = sys.argv[2]
    if kind not in ("idle", "loris", "nonreader", "pipeline"):
        print(f"unknown class {kind}", file=sys.stderr)
        sys.exit(2)
    topic = sys.argv[5] if len(sys.argv) == 6 else None
    run((host, int(port)), kind, int(sys.argv[3]), float(sys.argv[4]), topic)


if __name__ == "__main__":
    main()
