#!/usr/bin/env bash
# Produce throughput of three single-shard nodes (a 3-node cluster on 127.0.0.2-4) against one
# single-shard node, with the same odradek-bench load, alternating A B A B so that both see
# the same machine. Prints each run's produce row and the latency rows.
#
#   bench/scripts/cluster-vs-single.sh [ODRADEK] [ODRADEK_BENCH] [ROUNDS]
#
# Defaults: target/release/odradek, target/release/odradek-bench, 2 rounds. Every process it
# starts is stopped by PID, also on failure; data lives in a temp dir that is removed.
set -euo pipefail
cd "$(dirname "$0")/../.."
ODRADEK=${1:-target/release/odradek}
BENCH=${2:-target/release/odradek-bench}
ROUNDS=${3:-2}
LOAD=(produce --partitions 6 --producers 3 --acks all --record-size 1KiB --keys uniform:10000
      --duration 10s --warmup 2s --quiet)
TMP=$(mktemp -d /tmp/cluster-vs-single.XXXXXX)
PIDS=()
stop_all() {
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    PIDS=()
}
trap 'stop_all; rm -rf "$TMP"' EXIT

free_port() { python3 -c "import socket;s=socket.socket();s.bind(('$1',0));print(s.getsockname()[1])"; }

# start NAME ARGS...: starts a node, waits (bounded) for its ready line.
start() {
    local name=$1; shift
    "$ODRADEK" serve "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" &
    PIDS+=($!)
    for _ in $(seq 1 200); do
        grep -q "odradek ready" "$TMP/$name.out" 2>/dev/null && return 0
        sleep 0.05
    done
    echo "$name did not start:"; tail -5 "$TMP/$name.err"; exit 1
}

single() {
    local port; port=$(free_port 127.0.0.2)
    start single --node-id 1 --listen "127.0.0.2:$port" --data-dir "$TMP/single" --smp 1
    "$BENCH" "${LOAD[@]}" --brokers "127.0.0.2:$port" --topic "t$RANDOM" --label "1 node"
    stop_all; rm -rf "$TMP/single"
}

cluster() {
    local voters="" ports=() cports=()
    for i in 1 2 3; do
        ports[i]=$(free_port "127.0.0.$((i + 1))"); cports[i]=$(free_port "127.0.0.$((i + 1))")
        voters+="${voters:+,}$i@127.0.0.$((i + 1)):${cports[i]}"
    done
    for i in 1 2 3; do
        start "n$i" --node-id "$i" --listen "127.0.0.$((i + 1)):${ports[i]}" \
            --controller-listen "127.0.0.$((i + 1)):${cports[i]}" \
            --controller-quorum-voters "$voters" --data-dir "$TMP/n$i" --smp 1
    done
    # Bounded wait until all three brokers are registered.
    for _ in $(seq 1 100); do
        [ "$(kcat -L -b "127.0.0.2:${ports[1]}" 2>/dev/null | grep -c '  broker ')" = 3 ] && break
        sleep 0.1
    done
    "$BENCH" "${LOAD[@]}" --brokers "127.0.0.2:${ports[1]}" --topic "t$RANDOM" --label "3 nodes"
    stop_all; rm -rf "$TMP"/n?
}

echo "command: $0 $* ; load: ${LOAD[*]}"
echo "start: $(date -u +%FT%TZ), load average $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) CPUs"
for r in $(seq 1 "$ROUNDS"); do
    echo "== round $r: one node"; single
    echo "== round $r: three nodes"; cluster
done
echo "end: $(date -u +%FT%TZ), load average $(cut -d' ' -f1-3 /proc/loadavg)"
