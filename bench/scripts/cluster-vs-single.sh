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
# shellcheck source=bench/scripts/lib-nodes.sh
. bench/scripts/lib-nodes.sh
trap 'stop_all; rm -rf "$TMP"' EXIT

single() {
    local port; port=$(free_port 127.0.0.2)
    start single --node-id 1 --listen "127.0.0.2:$port" --data-dir "$TMP/single" --smp 1
    "$BENCH" "${LOAD[@]}" --brokers "127.0.0.2:$port" --topic "t$RANDOM" --label "1 node"
    stop_all; rm -rf "$TMP/single"
}

cluster() {
    start_cluster
    "$BENCH" "${LOAD[@]}" --brokers "$BOOT" --topic "t$RANDOM" --label "3 nodes"
    stop_all; rm -rf "$TMP"/n?
}

echo "command: $0 $* ; load: ${LOAD[*]}"
echo "start: $(date -u +%FT%TZ), load average $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) CPUs"
for r in $(seq 1 "$ROUNDS"); do
    echo "== round $r: one node"; single
    echo "== round $r: three nodes"; cluster
done
echo "end: $(date -u +%FT%TZ), load average $(cut -d' ' -f1-3 /proc/loadavg)"
