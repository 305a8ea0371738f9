#!/usr/bin/env bash
# Queue-safety soak: tests/clients/queue_safety.py over several seeds, each with a long faulty
# phase, one after the other; prints each run's closing line and a summary, keeps the whole
# output of every failed run. Exit status 1 if any seed failed.
#
#   scripts/safety-soak.sh [BINARY] [SEEDS] [DURATION_S] [FAULTS] [RF]
#   defaults: target/release/odradek (else target/debug/odradek), "1 2 3 4 5", 600,
#             kill-leader,kill-controller,pause,crash-all,slow,partition-proxy,flaky,partition-net, 3
#             (partition-net uses iptables: run as root)
#
# Environment: SOAK_OUT=DIR (where logs go; default a new temporary directory),
# RESTART_AFTER=S (how long a killed node stays down; default 8: past the 6 s session
# timeout, so its partitions fail over to followers meanwhile).
set -uo pipefail
cd "$(dirname "$0")/.."

binary="${1:-}"
if [ -z "$binary" ]; then
    binary=target/release/odradek
    [ -x "$binary" ] || binary=target/debug/odradek
fi
seeds="${2:-1 2 3 4 5}"
duration="${3:-600}"
faults="${4:-kill-leader,kill-controller,pause,crash-all,slow,partition-proxy,flaky,partition-net}"
rf="${5:-3}"
restart_after="${RESTART_AFTER:-8}"
out="${SOAK_OUT:-$(mktemp -d -t odradek-safety-soak-XXXXXX)}"
mkdir -p "$out"
[ -x "$binary" ] || { echo "no odradek binary at $binary (build it, or pass its path)" >&2; exit 2; }

echo "safety soak: binary $binary, seeds [$seeds], ${duration}s of faults each ($faults), RF $rf; logs in $out"
failed=()
for seed in $seeds; do
    log="$out/seed-$seed.log"
    start=$(date +%s)
    # A bound on each run: the faulty phase plus start-up, healing, flush and the final read.
    timeout --kill-after=60 $((duration + 600)) python3 tests/clients/queue_safety.py \
        --binary "$binary" --seed "$seed" --duration "$duration" --faults "$faults" \
        --replication-factor "$rf" --restart-after "$restart_after" --keep \
        --data-root "$out" --json >"$log" 2>&1
    rc=$?
    took=$(($(date +%s) - start))
    counts=$(grep -E '^acked ' "$log" | tail -1)
    verdict=$(grep -E '^(OK|FAIL):' "$log" | tail -1)
    echo "seed $seed: rc $rc in ${took}s: ${verdict:-no verdict (killed?)}; ${counts}"
    if [ "$rc" -ne 0 ]; then
        failed+=("$seed")
    else
        rm -f "$log"
    fi
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "FAILED seeds: ${failed[*]} (outputs: $out/seed-<N>.log; data kept beside them)"
    exit 1
fi
echo "all seeds passed"
