#!/usr/bin/env bash
# Latency tails against issue 14's targets, on one Odradek node (release build), each write mode
# in the same run so that their figures compare:
#   - `omb-1kb-100p-50k` (e2e, 1 KiB x 100 partitions, 50k rec/s open loop, acks=1) RUNS times in
#     a row: target p99.9 <= 5 ms and max <= 20 ms on every run;
#   - `acks-all-1kb-10p-5k` (e2e, acks=all + idempotence, 10 partitions, 5k rec/s) RUNS times:
#     target p99 <= 2x the disk's own fdatasync p99, which `odradek tune iotune` measures on the
#     data directory's disk first (4 KiB append + fdatasync, the same figure the node's autotune
#     reads).
# For each run it also counts the node's `shard event loop stalled` and `slow segment write` /
# `slow fdatasync` log lines during that run.
#
#   bash bench/scripts/tails.sh                       # from the repository root
#
# Knobs (environment): MODES (default "page-cache direct": a config file with
# `direct_writes = false` or `true`; "page-cache-nokick" adds `writeback_bytes = 0`,
# "page-cache-unpinned" `pin_shards = false`), RUNS (10),
# WORKLOADS ("omb-1kb-100p-50k acks-all-1kb-10p-5k"), DURATION (override each workload's, e.g.
# 20s), SMP (2), OUT_DIR (target/tails/<time>), DATA_DIR (target/tails/data, removed at exit),
# RUN_TIMEOUT (seconds per run, 120), BUILD (1: cargo build --release first; 0 uses the
# binaries already in target/release).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
STAMP="$(date +%Y%m%d-%H%M%S)"
OUT_DIR="${OUT_DIR:-$TARGET/tails/$STAMP}"
DATA_DIR="${DATA_DIR:-$TARGET/tails/data}"
MODES="${MODES:-page-cache direct}"
RUNS="${RUNS:-10}"
WORKLOADS="${WORKLOADS:-omb-1kb-100p-50k acks-all-1kb-10p-5k}"
SMP="${SMP:-2}"
RUN_TIMEOUT="${RUN_TIMEOUT:-120}"
BUILD="${BUILD:-1}"

die() { printf 'tails: %s\n' "$*" >&2; exit 1; }
log() { printf '\n== %s\n' "$*" >&2; }

command -v python3 >/dev/null || die "python3 is needed (free ports, the JSON summaries)"
if [ "$BUILD" = 1 ]; then
    log "cargo build --release -p odradek-node -p odradek-bench"
    cargo build --release -p odradek-node -p odradek-bench
fi
ODR="$TARGET/release/odradek"
BENCH="$TARGET/release/odradek-bench"
[ -x "$ODR" ] && [ -x "$BENCH" ] || die "no release binaries in $TARGET/release (BUILD=1 builds them)"

# shellcheck source=lib-nodes.sh
source "$ROOT/bench/scripts/lib-nodes.sh"
fresh_data_dir "$DATA_DIR" "$OUT_DIR"
fstype="$FSTYPE"

NODE_PID=""
stop_node() {
    [ -n "$NODE_PID" ] && kill -0 "$NODE_PID" 2>/dev/null || return 0
    kill -TERM "$NODE_PID" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$NODE_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$NODE_PID" 2>/dev/null || true
    wait "$NODE_PID" 2>/dev/null || true
    NODE_PID=""
}
cleanup() { stop_node; rm -rf "$DATA_DIR"; }
trap cleanup EXIT

{
    echo "date: $(date -Is)"
    echo "kernel: $(uname -r), $(nproc) CPUs"
    echo "data: $fstype on $(df --output=source "$DATA_DIR" | tail -n 1 | tr -d ' ')"
    echo "code: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' + uncommitted changes')"
    echo "load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "busiest processes at start:"
    ps -eo pcpu,comm --sort=-pcpu | head -4
} | tee "$OUT_DIR/env.txt"

log "the disk's own fdatasync latency: odradek tune iotune --data-dir $DATA_DIR"
"$ODR" tune iotune --data-dir "$DATA_DIR" | tee "$OUT_DIR/iotune.txt"
cp "$DATA_DIR/iotune.json" "$OUT_DIR/iotune.json"

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
over=()
[ -n "${DURATION:-}" ] && over=(--duration "$DURATION")
printf 'mode\tworkload\trun\tjson\tstalls\tslow_io\n' >"$OUT_DIR/runs.tsv"
for mode in $MODES; do
    cfg="$OUT_DIR/$mode.toml"
    case "$mode" in
        page-cache) echo "direct_writes = false" >"$cfg" ;;
        page-cache-nokick) printf 'direct_writes = false\nwriteback_bytes = 0\n' >"$cfg" ;;
        page-cache-unpinned) printf 'direct_writes = false\npin_shards = false\n' >"$cfg" ;;
        direct) echo "direct_writes = true" >"$cfg" ;;
        *) die "unknown mode $mode" ;;
    esac
    rm -rf "${DATA_DIR:?}/node"
    mkdir -p "$DATA_DIR/node"
    cp "$OUT_DIR/iotune.json" "$DATA_DIR/node/iotune.json"
    port="$(free_port)"
    nlog="$OUT_DIR/node-$mode.log"
    cmd=("$ODR" serve --config "$cfg" --listen "127.0.0.1:$port" --data-dir "$DATA_DIR/node" --smp "$SMP")
    log "$mode: ${cmd[*]}"
    printf '%s\n' "${cmd[*]}" >>"$OUT_DIR/commands.txt"
    "${cmd[@]}" >"$nlog" 2>&1 &
    NODE_PID=$!
    for _ in $(seq 1 300); do grep -q '^odradek ready:' "$nlog" && break; sleep 0.1; done
    grep -q '^odradek ready:' "$nlog" || die "odradek ($mode) not ready after 30 s"
    for wl in $WORKLOADS; do
        for run in $(seq 1 "$RUNS"); do
            json="$OUT_DIR/$mode-$wl-$run.json"
            before_stalls="$(grep -c 'shard event loop stalled' "$nlog" || true)"
            before_slow="$(grep -cE 'slow segment write|slow fdatasync' "$nlog" || true)"
            bcmd=("$BENCH" run "bench/workloads/$wl.toml" -- --brokers "127.0.0.1:$port"
                --topic "$wl-$mode-$run" --label "$mode" --quiet --json "$json" "${over[@]}")
            printf '%s\n' "${bcmd[*]}" >>"$OUT_DIR/commands.txt"
            timeout -k 5 "$RUN_TIMEOUT" "${bcmd[@]}" >"$OUT_DIR/$mode-$wl-$run.txt" 2>&1 ||
                echo "run failed: $mode $wl $run" >&2
            stalls=$(($(grep -c 'shard event loop stalled' "$nlog" || true) - before_stalls))
            slow=$(($(grep -cE 'slow segment write|slow fdatasync' "$nlog" || true) - before_slow))
            printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$mode" "$wl" "$run" "$json" "$stalls" "$slow" >>"$OUT_DIR/runs.tsv"
            printf '%s %s run %s: stalls %s, slow I/O %s\n' "$mode" "$wl" "$run" "$stalls" "$slow" >&2
        done
    done
    stop_node
done

python3 - "$OUT_DIR" <<'PY' | tee "$OUT_DIR/table.md"
import csv, json, os, sys
out = sys.argv[1]
io = json.load(open(os.path.join(out, "iotune.json")))
fsync_p99_ms = io["fdatasync_p99_us"] / 1000
print(f"disk: 4 KiB append + fdatasync p50 {io['fdatasync_p50_us']/1000:.2f} ms, p99 {fsync_p99_ms:.2f} ms "
      f"({io['fdatasync_samples']} samples); acks=all target p99 <= {2*fsync_p99_ms:.2f} ms\n")
print("| mode | workload | run | e2e p50 | p99 | p99.9 | max | produce p99 | produce max | stalls | slow I/O | target |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
rows = list(csv.DictReader(open(os.path.join(out, "runs.tsv")), delimiter="\t"))
summary = {}
for r in rows:
    key = (r["mode"], r["workload"])
    if not os.path.exists(r["json"]):
        print(f"| {r['mode']} | {r['workload']} | {r['run']} | failed | | | | | | | | no |")
        summary.setdefault(key, []).append(False)
        continue
    lat = json.load(open(r["json"]))["latency"]
    e, p = lat["e2e"], lat.get("produce", {})
    if e.get("count", 0) == 0:
        # Nothing measured (a DURATION within the workload's warm-up): no figure, no pass.
        print(f"| {r['mode']} | {r['workload']} | {r['run']} | no samples | | | | | | | | no |")
        summary.setdefault(key, []).append(False)
        continue
    q = e["percentiles_us"]
    ms = lambda us: us / 1000
    if r["workload"].startswith("acks-all"):
        ok = ms(q["p99"]) <= 2 * fsync_p99_ms
    else:
        ok = ms(q["p99.9"]) <= 5 and ms(e["max_us"]) <= 20
    summary.setdefault(key, []).append(ok)
    pp = p.get("percentiles_us", {})
    print(f"| {r['mode']} | {r['workload']} | {r['run']} | {ms(q['p50']):.2f} | {ms(q['p99']):.2f} | "
          f"{ms(q['p99.9']):.2f} | {ms(e['max_us']):.2f} | {ms(pp.get('p99', 0)):.2f} | "
          f"{ms(p.get('max_us', 0)):.2f} | {r['stalls']} | {r['slow_io']} | {'yes' if ok else 'no'} |")
print()
for (mode, wl), oks in summary.items():
    print(f"{mode} {wl}: {sum(oks)}/{len(oks)} runs within the target")
PY
echo "results in $OUT_DIR"
