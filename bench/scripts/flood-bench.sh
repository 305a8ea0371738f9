#!/usr/bin/env bash
# Floods against one node (issue 18): what a well-behaved client's latency and the node's
# memory do while 10,000 idle connections, 1,000 slow-loris clients, 100 clients that never
# read, or 4 clients pipelining far faster than they read are held against it.
#
#   bench/scripts/flood-bench.sh [ODRADEK] [ODRADEK_BENCH] [SECONDS]
#
# Defaults: target/release/odradek, target/release/odradek-bench, 20 s per phase. Each flood
# class (from tests/clients/flood.py) gets a quiet phase and then a flood phase, so that its
# ratio compares two neighbouring runs on a noisy machine. In each phase an open-loop
# `odradek-bench e2e` at 2,000 records/s of 1 KiB, acks=all, measures a well-behaved client;
# the node's RSS is read before the phase and sampled every 200 ms during it. Prints one
# Markdown table: the class, connections, the node's RSS before and at its peak, produce and
# end-to-end p50/p99, and the e2e p99 ratio to the quiet phase before it. The recent-batch
# cache is 8 MiB per shard so that its filling does not hide what the floods cost. The node
# keeps Kafka's default connections.max.idle.ms (10 min), so the floods are held all along.
# Everything it starts it stops, by PID.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN="${1:-target/release/odradek}"
BENCH="${2:-target/release/odradek-bench}"
SECONDS_PER_PHASE="${3:-20}"
for b in "$BIN" "$BENCH"; do
    [ -x "$b" ] || { echo "no binary at $b (cargo build --release -p odradek-node -p odradek-bench)" >&2; exit 2; }
done

work="$(mktemp -d)"
node_pid=""
flood_pid=""
stop() {
    local pid="$1"
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill "$pid"
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    fi
}
cleanup() {
    stop "$flood_pid"
    stop "$node_pid"
    rm -rf "$work"
}
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
addr="127.0.0.1:$(port)"
printf 'fetch_cache_bytes = 8388608\n' > "$work/node.toml"
"$BIN" serve --listen "$addr" --admin-listen none --smp 2 --data-dir "$work/data" \
    --config "$work/node.toml" \
    > "$work/node.out" 2> "$work/node.err" &
node_pid=$!
for _ in $(seq 100); do grep -q "odradek ready" "$work/node.out" 2>/dev/null && break; sleep 0.2; done
grep -q "odradek ready" "$work/node.out" || { cat "$work/node.err" >&2; exit 1; }
"$BIN" topic create flood-data --brokers "$addr" > /dev/null
# A few MiB for the non-readers' fetches.
head -c 3000000 /dev/zero | tr '\0' 'x' | fold -w 1000 | "$BIN" produce flood-data --brokers "$addr" > /dev/null

rss_peak() { # samples the node's RSS until the file $1 exists; prints the peak in KiB
    local peak=0 now
    while [ ! -e "$1" ]; do
        now=$(awk '/^VmRSS:/ {print $2}' "/proc/$node_pid/status")
        [ "$now" -gt "$peak" ] && peak=$now
        sleep 0.2
    done
    echo "$peak"
}

phase() { # NAME FLOOD-ARGS...
    local name="$1"; shift
    awk '/^VmRSS:/ {print $2}' "/proc/$node_pid/status" > "$work/$name.rss0"
    if [ "$#" -gt 0 ]; then
        python3 tests/clients/flood.py "$addr" "$@" > "$work/$name.flood" 2>&1 &
        flood_pid=$!
        sleep 4 # the connections are made before the flood's clock starts
    fi
    rss_peak "$work/$name.done" > "$work/$name.rss" &
    local sampler=$!
    "$BENCH" e2e --brokers "$addr" --topic "bench-$name" --partitions 2 --rate 2000 \
        --record-size 1KiB --acks all --duration "${SECONDS_PER_PHASE}s" --warmup 3s \
        --quiet --json "$work/$name.json" > /dev/null
    touch "$work/$name.done"
    wait "$sampler"
    if [ -n "$flood_pid" ]; then
        stop "$flood_pid"
        wait "$flood_pid" 2>/dev/null || true
        flood_pid=""
    fi
}

phase quiet-idle
phase idle idle 10000 600
phase quiet-loris
phase loris loris 1000 600
phase quiet-nonreader
phase nonreader nonreader 100 600 flood-data
phase quiet-pipeline
phase pipeline pipeline 4 600

python3 - "$work" <<'EOF'
import json, os, sys
work = sys.argv[1]
def lat(name):
    l = json.load(open(os.path.join(work, name + ".json")))["latency"]
    return l["produce"]["percentiles_us"], l["e2e"]["percentiles_us"]
print("| phase | connections | node RSS before → peak | produce p50 / p99 | e2e p50 / p99 | e2e p99 vs quiet |")
print("|---|---|---|---|---|---|")
ms = lambda us: us / 1000
mib = lambda f: int(open(os.path.join(work, f)).read()) / 1024
for name, conns in [("idle", 10000), ("loris", 1000), ("nonreader", 100), ("pipeline", 4)]:
    qp, qe = lat("quiet-" + name)
    for phase, n in [("quiet-" + name, 0), (name, conns)]:
        p, e = lat(phase)
        print(f"| {phase} | {n} | {mib(phase + '.rss0'):.0f} → {mib(phase + '.rss'):.0f} MiB | "
              f"{ms(p['p50']):.2f} / {ms(p['p99']):.2f} ms | {ms(e['p50']):.2f} / {ms(e['p99']):.2f} ms | "
              f"{e['p99'] / qe['p99']:.2f}x |")
EOF
grep -c "" "$work/node.err" | xargs printf 'node log: %s lines in all\n'
grep -E "connections closed|closing (idle )?connections|connection limit" "$work/node.err" | sed 's/\x1b\[[0-9;]*m//g' | cut -c1-200 || true
