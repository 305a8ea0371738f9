#!/usr/bin/env python3
"""A small fault-injecting TCP proxy: one listener per upstream, controllable at run time.

Modes (per proxy, changeable at any moment; each affects new AND existing connections):

- `pass`: bytes are forwarded as they come.
- `slow MS [JITTER_MS]`: every chunk is held MS ms (plus a uniform 0..JITTER_MS drawn from the
  proxy's seeded RNG) before it is forwarded; order is kept within a direction.
- `loss P`: each chunk read resets its connection (both sides, RST) with probability P.
- `blackhole`: nothing is forwarded in either direction; connections are accepted but stall,
  as behind a network partition. Back in `pass`, stalled connections resume (if their peers
  have not given up).

Bounded: at most `max_conns` connections per listener (beyond: closed at once), at most
`CHUNK` bytes per read and `QUEUE_CHUNKS` chunks held per direction (the reader waits, so TCP
back-pressure reaches the sender), and a bounded wait on each upstream connect.

As a library: `ProxySet(seed)` runs an asyncio loop in a daemon thread; `add(listen_host,
listen_port, upstream_host, upstream_port)` returns a `Proxy` whose `set_mode(...)` is safe to
call from any thread. From the command line:

    fault_proxy.py --listen 127.0.0.2:19092 --upstream 127.0.0.2:9092 [--control 127.0.0.1:7000]

The optional control port takes one command per line (`pass`, `slow 200 50`, `loss 0.01`,
`blackhole`, `status`) and answers `ok ...` or `error ...`.
"""

import argparse
import asyncio
import random
import socket
import struct
import threading
import time

CHUNK = 64 * 1024
QUEUE_CHUNKS = 64
CONNECT_TIMEOUT_S = 5.0
MAX_CONNS = 256
# How often a stalled (blackholed) pump looks at the mode again.
STALL_POLL_S = 0.05

MODES = ("pass", "slow", "loss", "blackhole")


def _reset(writer):
    """Closes a connection with RST (SO_LINGER 0) rather than FIN."""
    try:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        writer.close()
    except Exception:  # noqa: BLE001
        pass


class Proxy:
    """One listener forwarding to one upstream. Mode changes are thread-safe."""

    def __init__(self, listen, upstream, rng, max_conns=MAX_CONNS):
        self.listen = listen
        self.upstream = upstream
        self.rng = rng
        self.rng_lock = threading.Lock()
        self.max_conns = max_conns
        self.mode = ("pass",)
        self.conns = set()  # (client_writer, upstream_writer)
        self.active = 0  # connections being served, including those still connecting
        self.accepted = 0
        self.refused = 0
        self.resets = 0
        self.server = None

    # --- control (any thread) -----------------------------------------------------------
    def set_mode(self, name, *params):
        if name not in MODES:
            raise ValueError(f"unknown mode {name!r} (one of {', '.join(MODES)})")
        if name == "slow":
            ms = float(params[0]) if params else 100.0
            jitter = float(params[1]) if len(params) > 1 else 0.0
            if ms < 0 or jitter < 0:
                raise ValueError("slow: negative delay")
            self.mode = ("slow", ms, jitter)
        elif name == "loss":
            p = float(params[0]) if params else 0.01
            if not 0.0 <= p <= 1.0:
                raise ValueError("loss: probability outside [0, 1]")
            self.mode = ("loss", p)
        else:
            self.mode = (name,)

    def status(self):
        return (f"{self.listen[0]}:{self.listen[1]} -> {self.upstream[0]}:{self.upstream[1]} "
                f"mode={' '.join(str(x) for x in self.mode)} conns={len(self.conns)} "
                f"accepted={self.accepted} refused={self.refused} resets={self.resets}")

    def _random(self):
        with self.rng_lock:
            return self.rng.random()

    # --- the loop -----------------------------------------------------------------------
    async def start(self):
        self.server = await asyncio.start_server(self._handle, self.listen[0], self.listen[1],
                                                 reuse_address=True)

    async def _handle(self, creader, cwriter):
        # Counted before the first await, so a burst of connections cannot pass the bound.
        if self.active >= self.max_conns:
            self.refused += 1
            _reset(cwriter)
            return
        self.active += 1
        try:
            await self._serve(creader, cwriter)
        finally:
            self.active -= 1

    async def _serve(self, creader, cwriter):
        self.accepted += 1
        try:
            ureader, uwriter = await asyncio.wait_for(
                asyncio.open_connection(self.upstream[0], self.upstream[1]), CONNECT_TIMEOUT_S)
        except (OSError, asyncio.TimeoutError):
            _reset(cwriter)
            return
        pair = (cwriter, uwriter)
        self.conns.add(pair)
        try:
            a = asyncio.ensure_future(self._pump(creader, uwriter, pair))
            b = asyncio.ensure_future(self._pump(ureader, cwriter, pair))
            await asyncio.wait([a, b], return_when=asyncio.FIRST_COMPLETED)
            for t in (a, b):
                t.cancel()
        finally:
            self.conns.discard(pair)
            for w in pair:
                try:
                    w.close()
                except Exception:  # noqa: BLE001
                    pass

    async def _pump(self, reader, writer, pair):
        """Reads chunks into a bounded queue; a sender task delivers them by the mode."""
        queue = asyncio.Queue(QUEUE_CHUNKS)
        sender = asyncio.ensure_future(self._send(queue, writer))
        try:
            while True:
                while self.mode[0] == "blackhole":
                    await asyncio.sleep(STALL_POLL_S)
                data = await reader.read(CHUNK)
                if not data:
                    await queue.put((None, 0.0))
                    await sender
                    return
                mode = self.mode
                if mode[0] == "loss" and self._random() < mode[1]:
                    self.resets += 1
                    for w in pair:
                        _reset(w)
                    return
                due = 0.0
                if mode[0] == "slow":
                    due = time.monotonic() + (mode[1] + self._random() * mode[2]) / 1000.0
                await queue.put((data, due))
        except (OSError, asyncio.IncompleteReadError):
            return
        finally:
            if not sender.done():
                sender.cancel()

    async def _send(self, queue, writer):
        try:
            while True:
                data, due = await queue.get()
                if data is None:
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                while self.mode[0] == "blackhole":
                    await asyncio.sleep(STALL_POLL_S)
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                writer.write(data)
                await writer.drain()
        except (OSError, RuntimeError):
            return


class ProxySet:
    """Proxies sharing one asyncio loop in a daemon thread."""

    def __init__(self, seed=0):
        self.rng = random.Random(seed)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True,
                                       name="fault-proxy")
        self.thread.start()
        self.proxies = []
        self.control = None

    def _call(self, coro, timeout=10.0):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def add(self, listen_host, listen_port, upstream_host, upstream_port, max_conns=MAX_CONNS):
        p = Proxy((listen_host, listen_port), (upstream_host, upstream_port),
                  random.Random(self.rng.random()), max_conns)
        self._call(p.start())
        self.proxies.append(p)
        return p

    def all_pass(self):
        for p in self.proxies:
            p.set_mode("pass")

    def serve_control(self, host, port):
        """A line-oriented control port: `[INDEX] MODE [PARAMS...]` or `status`."""

        async def handle(reader, writer):
            try:
                while True:
                    line = await asyncio.wait_for(reader.readline(), 600)
                    if not line:
                        return
                    writer.write((self.command(line.decode(errors="replace")) + "\n").encode())
                    await writer.drain()
            except (OSError, asyncio.TimeoutError):
                return
            finally:
                writer.close()

        async def start():
            self.control = await asyncio.start_server(handle, host, port, reuse_address=True)
            return self.control.sockets[0].getsockname()[1]

        return self._call(start())

    def command(self, line):
        words = line.split()
        if not words:
            return "error empty command"
        if words[0] == "status":
            return "ok " + " | ".join(f"{i}: {p.status()}" for i, p in enumerate(self.proxies))
        targets = self.proxies
        if words[0].isdigit():
            i = int(words[0])
            if i >= len(self.proxies):
                return f"error no proxy {i}"
            targets, words = [self.proxies[i]], words[1:]
        try:
            for p in targets:
                p.set_mode(words[0], *words[1:])
        except (ValueError, IndexError) as e:
            return f"error {e}"
        return "ok"

    def close(self):
        async def stop():
            for p in self.proxies:
                if p.server is not None:
                    p.server.close()
                for pair in list(p.conns):
                    for w in pair:
                        _reset(w)
            if self.control is not None:
                self.control.close()

        try:
            self._call(stop(), timeout=5.0)
        except Exception:  # noqa: BLE001
            pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5.0)


def _host_port(s):
    host, _, port = s.rpartition(":")
    return host, int(port)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--listen", action="append", required=True, help="HOST:PORT (repeatable)")
    ap.add_argument("--upstream", action="append", required=True,
                    help="HOST:PORT, one per --listen, in the same order")
    ap.add_argument("--control", help="HOST:PORT of the line-oriented control port")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-conns", type=int, default=MAX_CONNS)
    ap.add_argument("--seconds", type=float, default=3600.0, help="run at most this long")
    args = ap.parse_args()
    if len(args.listen) != len(args.upstream):
        ap.error("one --upstream per --listen")
    ps = ProxySet(args.seed)
    for lst, up in zip(args.listen, args.upstream):
        p = ps.add(*_host_port(lst), *_host_port(up), max_conns=args.max_conns)
        print(f"proxy {p.status()}", flush=True)
    if args.control:
        port = ps.serve_control(*_host_port(args.control))
        print(f"control on port {port}", flush=True)
    try:
        time.sleep(args.seconds)
    except KeyboardInterrupt:
        pass
    ps.close()


if __name__ == "__main__":
    main()
