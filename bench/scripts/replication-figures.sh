#!/usr/bin/env bash
# Replication's cost and lag on three local single-shard nodes (127.0.0.2-4): the same
# odradek-bench acks=all load against a replication-factor-1 topic and a replication-factor-3
# topic of one cluster, alternating (A B A B) so both see the same machine; and, from the
# leaders' `replication_lag` debug lines, how far behind the furthest follower was during the
# RF 3 runs (offsets, sampled every second per partition).
#
#   bench/scripts/replication-figures.sh [ODRADEK] [ODRADEK_BENCH] [ROUNDS]
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
TMP=$(mktemp -d /tmp/replication-figures.XXXXXX)
# shellcheck source=bench/scripts/lib-nodes.sh
. bench/scripts/lib-nodes.sh
trap 'stop_all; rm -rf "$TMP"' EXIT
# Uncoloured logs with the leaders' lag lines (read at the end).
export NO_COLOR=1 ODRADEK_LOG=info,replication_lag=debug
start_cluster

echo "command: $0 $* ; load: ${LOAD[*]}"
echo "start: $(date -u +%FT%TZ), load average $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) CPUs"
for r in $(seq 1 "$ROUNDS"); do
    echo "== round $r: replication factor 1"
    "$BENCH" "${LOAD[@]}" --brokers "$BOOT" --topic "rf1-$r" --replication-factor 1 --label "RF 1"
    echo "== round $r: replication factor 3"
    "$BENCH" "${LOAD[@]}" --brokers "$BOOT" --topic "rf3-$r" --replication-factor 3 --label "RF 3"
done
echo "end: $(date -u +%FT%TZ), load average $(cut -d' ' -f1-3 /proc/loadavg)"
# Lag samples of the RF 3 topics: offsets the furthest follower was behind its leader.
cat "$TMP"/n?.err | grep 'replication lag' | grep 'topic=rf3-' \
    | sed -n 's/.* lag=\([0-9]*\).*/\1/p' | sort -n | awk '
    { v[NR] = $1 }
    END {
        if (NR == 0) { print "replication lag: no samples"; exit }
        printf "replication lag (offsets behind the leader, %d samples of 1 s): p50 %d, p99 %d, max %d\n",
            NR, v[int(NR * 0.5) + (NR * 0.5 > int(NR * 0.5))], v[int(NR * 0.99) + (NR * 0.99 > int(NR * 0.99))], v[NR]
    }'
