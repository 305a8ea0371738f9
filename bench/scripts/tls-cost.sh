#!/usr/bin/env bash
# What TLS costs: one node with a PLAINTEXT and an SSL listener, the same client
# (confluent-kafka, librdkafka) producing and consuming the same records through each, in one
# run. Reports throughput and the node's CPU time per record (utime + stime of the node's
# process, from /proc) for each phase.
#
#   bench/scripts/tls-cost.sh [ODRADEK_BINARY] [RECORDS] [VALUE_BYTES]
#
# Defaults: target/release/odradek, 300000 records of 1024 bytes. Needs openssl and the Python
# clients of tests/clients/requirements.txt. Everything it starts it stops (by PID).
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN="${1:-target/release/odradek}"
RECORDS="${2:-300000}"
VALUE_BYTES="${3:-1024}"
[ -x "$BIN" ] || { echo "no binary at $BIN (cargo build --release -p odradek-node)" >&2; exit 2; }

work="$(mktemp -d)"
node_pid=""
cleanup() {
    if [ -n "$node_pid" ] && kill -0 "$node_pid" 2>/dev/null; then
        kill "$node_pid"
        for _ in $(seq 50); do kill -0 "$node_pid" 2>/dev/null || break; sleep 0.2; done
    fi
    rm -rf "$work"
}
trap cleanup EXIT

openssl req -x509 -newkey rsa:2048 -nodes -keyout "$work/ca.key" -out "$work/ca.pem" \
    -days 2 -subj "/CN=tls-cost-ca" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout "$work/server.key" -out "$work/server.csr" \
    -subj "/CN=localhost" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' > "$work/ext"
openssl x509 -req -in "$work/server.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" \
    -CAcreateserial -out "$work/server.pem" -days 2 -extfile "$work/ext" 2>/dev/null

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
plain="127.0.0.1:$(port)"
ssl="127.0.0.1:$(port)"
"$BIN" serve --data-dir "$work/data" --admin-listen none \
    --listeners "PLAINTEXT://$plain,SSL://$ssl" \
    --ssl-cert "$work/server.pem" --ssl-key "$work/server.key" \
    > "$work/node.out" 2> "$work/node.err" &
node_pid=$!
for _ in $(seq 100); do grep -q "odradek ready" "$work/node.out" 2>/dev/null && break; sleep 0.2; done
grep -q "odradek ready" "$work/node.out" || { cat "$work/node.err" >&2; exit 1; }
"$BIN" topic create tls-cost -p 2 --brokers "$plain" > /dev/null

python3 - "$node_pid" "$plain" "$ssl" "$work/ca.pem" "$RECORDS" "$VALUE_BYTES" <<'EOF'
import os, sys, time
from confluent_kafka import Consumer, Producer, TopicPartition

pid, plain, ssl, ca, records, size = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6])
tick = os.sysconf("SC_CLK_TCK")

def cpu():
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / tick

def conf(addr, tls):
    c = {"bootstrap.servers": addr}
    if tls:
        c.update({"security.protocol": "SSL", "ssl.ca.location": ca})
    return c

def produce(addr, tls):
    p = Producer({**conf(addr, tls), "linger.ms": 5, "batch.size": 1048576, "acks": "1",
                  "queue.buffering.max.kbytes": 65536})
    value = b"v" * size
    for i in range(records):
        while True:
            try:
                p.produce("tls-cost", value, partition=i % 2)
                break
            except BufferError:
                p.poll(0.01)
        if i % 1000 == 0:
            p.poll(0)
    p.flush(120)

def consume(addr, tls):
    c = Consumer({**conf(addr, tls), "group.id": f"tls-cost-{time.time()}", "enable.auto.commit": False,
                  "fetch.max.bytes": 52428800, "max.partition.fetch.bytes": 10485760})
    c.assign([TopicPartition("tls-cost", p, 0) for p in (0, 1)])
    got, deadline = 0, time.time() + 300
    while got < records and time.time() < deadline:
        for m in c.consume(num_messages=10000, timeout=1.0):
            if m.error() is None:
                got += 1
    c.close()
    return got

def phase(name, fn):
    c0, t0 = cpu(), time.time()
    n = fn()
    c1, t1 = cpu(), time.time()
    n = records if n is None else n
    wall = t1 - t0
    print(f"{name:<18} {n:>8} records  {n * size / wall / 1e6:8.1f} MB/s  "
          f"node CPU {1e6 * (c1 - c0) / n:6.2f} us/record  ({c1 - c0:.2f} s CPU in {wall:.1f} s)", flush=True)

phase("produce plaintext", lambda: produce(plain, False))
phase("consume plaintext", lambda: consume(plain, False))
phase("consume TLS", lambda: consume(ssl, True))
phase("consume plaintext", lambda: consume(plain, False))
phase("consume TLS", lambda: consume(ssl, True))
phase("produce TLS", lambda: produce(ssl, True))
EOF
