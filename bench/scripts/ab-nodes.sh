#!/usr/bin/env bash
# A/B two node binaries on the same workloads, alternating, each run on a fresh data
# directory, so that a change's cost on the hot path shows as a ratio measured in one run:
#   A=old/odradek B=target/release/odradek [BENCH=target/release/odradek-bench] \
#   [ROUNDS=4] [SMP=1] [A_ARGS=] [B_ARGS=] bash bench/scripts/ab-nodes.sh
# Workloads: 100 B x 1 partition closed-loop produce (acks=1), and 1 KiB x 10 partitions
# closed-loop produce with acks=all. SMP=1 by default: with one partition and two shards the
# producer's connection lands on the owner shard or not at random, which alone moves the
# 100 B figure between ~2.5 and ~6.5 M rec/s here.
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${A:?A=path of the first odradek binary}" "${B:?B=path of the second odradek binary}"
BENCH=${BENCH:-target/release/odradek-bench}
ROUNDS=${ROUNDS:-4}
SMP=${SMP:-1}
PORT=${PORT:-39092}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
run_one() { # binary extra-args -> "rec/s_100B rec/s_1KiB p99_1KiB"
    local bin=$1 extra=$2 pid small big
    rm -rf "$WORK/data"
    # shellcheck disable=SC2086
    "$bin" serve --data-dir "$WORK/data" --listen 127.0.0.1:$PORT --smp "$SMP" $extra \
        > "$WORK/node.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 100); do
        grep -q "odradek ready" "$WORK/node.log" 2>/dev/null && break
        sleep 0.1
    done
    small=$("$BENCH" run bench/workloads/small-100b-1p-max.toml -- --brokers 127.0.0.1:$PORT \
        --duration 10s --warmup 2s 2>/dev/null | awk '$1=="produce" && NF==6 {print $3}')
    big=$("$BENCH" produce --brokers 127.0.0.1:$PORT --topic ab-1k --partitions 10 \
        --record-size 1KiB --acks all --duration 10s --warmup 2s 2>/dev/null |
        awk '$1=="produce" && NF==6 {r=$3} $1=="produce" && NF==8 {p=$5} END {print r, p}')
    kill "$pid"; wait "$pid" 2>/dev/null || true
    echo "$small $big"
}
printf '%-6s %-2s %16s %18s %12s\n' round ab "100B×1p rec/s" "1KiB×10p all rec/s" "1KiB p99"
for round in $(seq 1 "$ROUNDS"); do
    for ab in A B; do
        if [ $ab = A ]; then out=$(run_one "$A" "${A_ARGS:-}"); else out=$(run_one "$B" "${B_ARGS:-}"); fi
        # shellcheck disable=SC2086
        printf '%-6s %-2s %16s %18s %12s\n' "$round" "$ab" $out
    done
done
