#!/usr/bin/env bash
# Many cores (issue 14 §4): records/s of one node against its shard count N.
#
# For each N in NS, a fresh node `odradek serve --smp N` runs pinned (taskset) to the first N CPUs
# this script may use; odradek-bench runs pinned to the others (taskset and --cpus, one thread per
# CPU round-robin). For each record size in SIZES it produces (acks=1, closed loop, producers =
# bench CPUs, max 5 requests in flight each) into a new topic of 4 × N partitions for DURATION,
# then consumes that topic from the earliest offset (consumers = bench CPUs, at most the
# partitions; no warm-up) until every produced record is read or DURATION passes. records/s and MB/s come from
# odradek-bench's JSON summaries. When N uses every CPU, the bench runs unpinned on all of them
# ("shared cores" in the table); an N above the CPU count is skipped.
#
#   bash bench/scripts/scaling.sh                       # from the repository root, release builds
#   NS="1 2" DURATION=5s WARMUP=1s bash bench/scripts/scaling.sh
#
# Needs only bash, awk, coreutils and taskset (util-linux): no cargo, no python, no network. It
# builds nothing; build the binaries first with
#   cargo build --release -p odradek-node -p odradek-bench
#
# On a bigger host (e.g. 16 cores, no toolchain): copy the two binaries, stripped, and this script
# into one folder, then run it there:
#   strip -o /tmp/sc/odradek target/release/odradek
#   strip -o /tmp/sc/odradek-bench target/release/odradek-bench
#   cp bench/scripts/scaling.sh /tmp/sc/   # copy /tmp/sc over, then on the host: bash scaling.sh
#
# Output in OUT_DIR: commands.txt (every command run), env.txt, node-N.log, the bench's JSON and
# stderr per run, results.tsv, table.md (printed at the end: N, node CPUs, bench CPUs, workload,
# records/s, MB/s, ratio to N=1) and scaling.svg (records/s against N, one line per workload,
# dashed: ideal linear scaling from N=1).
#
# Knobs (environment):
#   ODR, BENCH   the binaries (default: target/release/… of this repository or the current
#                directory, else odradek / odradek-bench next to this script or in the current one)
#   NS           shard counts (default: those of 1 2 4 8 below the CPU count, so the bench keeps at
#                least one CPU of its own; 1 on a 1-CPU host)
#   SIZES        record sizes in bytes ("100 1024")
#   DURATION     per run (15s); WARMUP: not measured at the start of each produce run (3s)
#   RUN_TIMEOUT  seconds before a bench run is killed (duration + 60)
#   PORT         the node's port (default: a free one from 20000 up)
#   OUT_DIR      (target/scaling/<time>); DATA_DIR: parent of the nodes' data directories, on a
#                disk, never a tmpfs (OUT_DIR); each node's data is removed after its N
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT=""
[[ "$SCRIPT_DIR" == */bench/scripts ]] && REPO_ROOT="${SCRIPT_DIR%/bench/scripts}"
STAMP="$(date +%Y%m%d-%H%M%S)"
OUT_DIR="${OUT_DIR:-target/scaling/$STAMP}"
SIZES="${SIZES:-100 1024}"
DURATION="${DURATION:-15s}"
WARMUP="${WARMUP:-3s}"

die() { printf 'scaling: %s\n' "$*" >&2; exit 1; }
log() { printf '\n== %s\n' "$*" >&2; }

find_bin() { # name → the first executable candidate
    local c
    for c in ${REPO_ROOT:+"$REPO_ROOT/target/release/$1"} "target/release/$1" "$SCRIPT_DIR/$1" "./$1"; do
        [ -f "$c" ] && [ -x "$c" ] && { printf '%s\n' "$c"; return 0; }
    done
    return 1
}
ODR="${ODR:-$(find_bin odradek || true)}"
BENCH="${BENCH:-$(find_bin odradek-bench || true)}"
if [ -z "$ODR" ] || [ ! -x "$ODR" ] || [ -z "$BENCH" ] || [ ! -x "$BENCH" ]; then
    die "odradek or odradek-bench not found (ODR='$ODR' BENCH='$BENCH'); build them with
    cargo build --release -p odradek-node -p odradek-bench
or copy both next to this script, or set ODR and BENCH"
fi
for t in awk taskset timeout df; do command -v "$t" >/dev/null || die "$t is needed"; done

# Seconds in a duration like 15s, 500ms, 2m (for the timeouts only).
secs() { awk -v d="$1" 'BEGIN { n = d + 0; if (d ~ /ms$/) n /= 1000; else if (d ~ /m$/) n *= 60;
    else if (d ~ /h$/) n *= 3600; printf "%d\n", n + 0.999 }'; }
RUN_TIMEOUT="${RUN_TIMEOUT:-$(($(secs "$DURATION") + 60))}"

# The CPUs this process may run on, in order (a container or taskset may have narrowed them).
CPUS=()
allowed="$(awk '/^Cpus_allowed_list:/ { print $2 }' /proc/self/status 2>/dev/null || true)"
[ -n "$allowed" ] || allowed="0-$(($(nproc) - 1))"
IFS=',' read -r -a ranges <<<"$allowed"
for r in "${ranges[@]}"; do
    if [[ "$r" == *-* ]]; then
        for ((c = ${r%-*}; c <= ${r#*-}; c++)); do CPUS+=("$c"); done
    else
        CPUS+=("$r")
    fi
done
NCPU=${#CPUS[@]}
if [ -z "${NS:-}" ]; then
    NS=""
    for n in 1 2 4 8; do [ "$n" -lt "$NCPU" ] && NS="$NS $n"; done
    [ -n "$NS" ] || NS="1"
fi
join() { local IFS=,; printf '%s\n' "$*"; } # CPUs as a taskset/--cpus list

mkdir -p "$OUT_DIR"
OUT_DIR="$(cd "$OUT_DIR" && pwd)"
DATA_DIR="${DATA_DIR:-$OUT_DIR}"
mkdir -p "$DATA_DIR"
fstype="$(df --output=fstype "$DATA_DIR" | tail -n 1 | tr -d ' ')"
case "$fstype" in
    tmpfs | ramfs | overlay) die "$DATA_DIR is on $fstype, not a disk; set DATA_DIR (or OUT_DIR)" ;;
esac

NODE_PID=""
NODE_DATA=""
stop_node() {
    local i
    if [ -n "$NODE_PID" ] && kill -0 "$NODE_PID" 2>/dev/null; then
        kill -TERM "$NODE_PID" 2>/dev/null || true
        for i in $(seq 1 100); do kill -0 "$NODE_PID" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$NODE_PID" 2>/dev/null && { echo "node $NODE_PID still up after 10 s: SIGKILL" >&2; kill -KILL "$NODE_PID" 2>/dev/null || true; }
        wait "$NODE_PID" 2>/dev/null || true
    fi
    NODE_PID=""
    [ -n "$NODE_DATA" ] && rm -rf "$NODE_DATA"
    NODE_DATA=""
}
trap stop_node EXIT

port_used() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() {
    local p=$((20000 + RANDOM % 20000)) i
    for i in $(seq 1 200); do
        port_used "$p" || { printf '%s\n' "$p"; return 0; }
        p=$((p + 1))
    done
    die "no free port found from 20000 up; set PORT"
}

{
    echo "date: $(date -Is)"
    echo "host: $(uname -n), kernel $(uname -r), CPUs allowed: $allowed ($NCPU), nproc: $(nproc)"
    echo "cpu: $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null)"
    echo "data: $fstype on $(df --output=source "$DATA_DIR" | tail -n 1 | tr -d ' ')"
    echo "odradek: $ODR ($(stat -c '%s bytes, %y' "$ODR"))"
    echo "odradek-bench: $BENCH ($(stat -c '%s bytes, %y' "$BENCH"))"
    echo "NS=$NS SIZES=$SIZES DURATION=$DURATION WARMUP=$WARMUP RUN_TIMEOUT=$RUN_TIMEOUT"
    echo "load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$OUT_DIR/env.txt"
cat "$OUT_DIR/env.txt" >&2

# One side ("produce" or "consume") of a JSON summary: "records measured seconds bytes errors".
side() {
    awk -v want="$2" '
        $0 ~ "^  \"" want "\": \\{" { in_side = 1; next }
        in_side && /^  }/ { in_side = 0 }
        in_side {
            line = $0; gsub(/[",]/, "", line); split(line, kv, ":")
            key = kv[1]; gsub(/ /, "", key); val = kv[2] + 0
            v[key] = val
        }
        END { printf "%.0f %.0f %.6f %.0f %.0f\n", v["records"], v["measured_records"], v["seconds"], v["measured_bytes"], v["errors"] }
    ' "$1"
}

TSV="$OUT_DIR/results.tsv"
printf 'n\tnode_cpus\tbench_cpus\tnote\tworkload\tsize\tmeasured_records\tseconds\trecords_per_s\tmb_per_s\terrors\n' >"$TSV"
failed=""

for N in $NS; do
    if [ "$N" -gt "$NCPU" ]; then
        echo "scaling: N=$N skipped: only $NCPU CPUs here" >&2
        printf '%s\t-\t-\tskipped: %s CPUs\t-\t-\t0\t0\t0\t0\t0\n' "$N" "$NCPU" >>"$TSV"
        continue
    fi
    node_cpus="$(join "${CPUS[@]:0:N}")"
    bench_list=("${CPUS[@]:N}")
    note=""
    if [ "${#bench_list[@]}" -eq 0 ]; then
        note="shared cores"
        bench_cpus="all (shared)"
        bench_pin=()
        nthreads=$NCPU
    else
        bench_cpus="$(join "${bench_list[@]}")"
        bench_pin=(taskset -c "$bench_cpus")
        nthreads=${#bench_list[@]}
    fi
    parts=$((4 * N))
    port="${PORT:-$(free_port)}"
    NODE_DATA="$DATA_DIR/data-$N"
    rm -rf "$NODE_DATA"
    mkdir -p "$NODE_DATA"
    node_cmd=(taskset -c "$node_cpus" "$ODR" serve --listen "127.0.0.1:$port" --data-dir "$NODE_DATA" --smp "$N")
    log "N=$N: node on CPUs $node_cpus, bench on $bench_cpus: ${node_cmd[*]}"
    printf '%s\n' "${node_cmd[*]}" >>"$OUT_DIR/commands.txt"
    "${node_cmd[@]}" >"$OUT_DIR/node-$N.log" 2>&1 &
    NODE_PID=$!
    for _ in $(seq 1 300); do
        grep -q '^odradek ready' "$OUT_DIR/node-$N.log" && break
        kill -0 "$NODE_PID" 2>/dev/null || break
        sleep 0.1
    done
    if ! grep -q '^odradek ready' "$OUT_DIR/node-$N.log"; then
        tail -n 5 "$OUT_DIR/node-$N.log" >&2
        die "node N=$N not ready after 30 s (log: $OUT_DIR/node-$N.log)"
    fi

    for S in $SIZES; do
        topic="scale-$S-$N"
        common=(--brokers "127.0.0.1:$port" --topic "$topic" --partitions "$parts" --record-size "$S"
            --duration "$DURATION" --quiet)
        [ "${#bench_list[@]}" -gt 0 ] && common+=(--cpus "$bench_cpus")
        consumers=$((nthreads < parts ? nthreads : parts))
        produced=0
        for op in produce consume; do
            base="$OUT_DIR/$op-$S-$N"
            if [ "$op" = produce ]; then
                extra=(--warmup "$WARMUP" --acks 1 --producers "$nthreads" --max-in-flight 5)
            else
                [ "$produced" -gt 0 ] || { failed="$failed consume-$S-$N(nothing produced)"; continue; }
                # No warm-up: the backlog may be read in less than WARMUP, leaving nothing measured.
                extra=(--warmup 0s --from earliest --consumers "$consumers" --records "$produced")
            fi
            cmd=("${bench_pin[@]}" "$BENCH" "$op" "${common[@]}" "${extra[@]}" --label "$op-$S-N$N" --json "$base.json")
            log "N=$N $op ${S} B: ${cmd[*]}"
            printf '%s\n' "${cmd[*]}" >>"$OUT_DIR/commands.txt"
            rm -f "$base.json"
            if ! timeout -k 5 "$RUN_TIMEOUT" "${cmd[@]}" >"$base.txt" 2>"$base.stderr" || [ ! -s "$base.json" ]; then
                failed="$failed $op-$S-$N"
                tail -n 5 "$base.stderr" >&2
                continue
            fi
            read -r records measured seconds bytes errors <<<"$(side "$base.json" "$op")"
            [ "$op" = produce ] && produced=$records
            [ "$measured" -gt 0 ] || failed="$failed $op-$S-$N(nothing measured)"
            awk -v n="$N" -v nc="$node_cpus" -v bc="$bench_cpus" -v note="$note" -v op="$op" -v s="$S" \
                -v m="$measured" -v sec="$seconds" -v b="$bytes" -v e="$errors" 'BEGIN {
                    r = sec > 0 ? m / sec : 0; mb = sec > 0 ? b / sec / 1e6 : 0
                    printf "%s\t%s\t%s\t%s\t%s\t%s\t%.0f\t%.3f\t%.0f\t%.2f\t%d\n", n, nc, bc, note, op, s, m, sec, r, mb, e
                }' >>"$TSV"
            tail -n 1 "$TSV" | awk -F'\t' '{ printf "   %s records/s, %s MB/s, %s errors\n", $9, $10, $11 }' >&2
        done
    done
    stop_node
done

# The markdown table: one row per N and workload, ratio to the same workload at N=1.
awk -F'\t' '
    function label(op, s) { return op " " (s == 1024 ? "1KiB" : s % 1024 == 0 ? s / 1024 "KiB" : s "B") }
    NR == 1 { next }
    $5 == "-" { rows[++k] = sprintf("| %s | - | - | (%s) | | | |", $1, $4); next }
    {
        w = label($5, $6)
        if ($1 == 1) base[w] = $9
        n[++k] = $1; wl[k] = w; line[k] = $0
    }
    END {
        print "| N | node CPUs | bench CPUs | workload | records/s | MB/s | vs N=1 |"
        print "|---|---|---|---|---|---|---|"
        for (i = 1; i <= k; i++) {
            if (i in rows) { print rows[i]; continue }
            split(line[i], f, "\t")
            ratio = (wl[i] in base && base[wl[i]] > 0) ? sprintf("%.2f×", f[9] / base[wl[i]]) : "-"
            bc = f[4] == "shared cores" ? "all: shared cores" : f[3]
            err = f[11] > 0 ? sprintf(" (%d errors)", f[11]) : ""
            printf "| %s | %s | %s | %s | %s%s | %s | %s |\n", f[1], f[2], bc, wl[i], f[9], err, f[10], ratio
        }
    }' "$TSV" >"$OUT_DIR/table.md"

# scaling.svg: records/s against N, one line per workload, dashed ideal lines from N=1.
awk -F'\t' -v title="odradek: records/s against shards (N), $(date +%Y-%m-%d), $NCPU CPUs" '
    function label(op, s) { return op " " (s == 1024 ? "1KiB" : s % 1024 == 0 ? s / 1024 "KiB" : s "B") }
    function fmt(v) { return v >= 1e6 ? sprintf("%gM", v / 1e6) : v >= 1e3 ? sprintf("%gk", v / 1e3) : sprintf("%g", v) }
    function X(n) { return L + (n - 0) / (xmax - 0) * (W - L - R) }
    function Y(v) { return H - B - v / ymax * (H - T - B) }
    NR == 1 || $5 == "-" { next }
    {
        w = label($5, $6)
        if (!(w in seen)) { seen[w] = 1; order[++nw] = w }
        val[w, $1] = $9
        if (!($1 in isn)) { isn[$1] = 1; ns[++nn] = $1 + 0 }
        if ($9 + 0 > maxv) maxv = $9 + 0
        if ($1 + 0 > xmax) xmax = $1 + 0
    }
    END {
        W = 760; H = 460; L = 80; R = 190; T = 40; B = 50
        if (nw == 0) { maxv = 1; xmax = 1 }
        # N sorted ascending (few values: insertion sort).
        for (i = 2; i <= nn; i++) { v = ns[i]; for (j = i - 1; j >= 1 && ns[j] > v; j--) ns[j + 1] = ns[j]; ns[j + 1] = v }
        if (xmax < 1) xmax = 1
        xmax = xmax * 1.05
        raw = maxv * 1.1; if (raw <= 0) raw = 1
        mag = 10 ^ int(log(raw / 5) / log(10)); if (raw / 5 < 1) mag = 10 ^ (int(log(raw / 5) / log(10)) - 1)
        step = mag; if (raw / step > 10) step = 2 * mag; if (raw / step > 10) step = 5 * mag; if (raw / step > 10) step = 10 * mag
        ymax = step * int(raw / step + 0.999)
        split("#1f77b4 #d62728 #2ca02c #ff7f0e #9467bd #8c564b #e377c2 #17becf", col, " ")
        printf "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        printf "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"12\">\n", W, H, W, H
        printf "<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n", W, H
        printf "<clipPath id=\"plot\"><rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\"/></clipPath>\n", L, T, W - L - R, H - T - B
        printf "<text x=\"%d\" y=\"22\" font-size=\"14\" text-anchor=\"middle\">%s</text>\n", (L + W - R) / 2, title
        for (v = 0; v <= ymax + step / 2; v += step) {
            printf "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", L, W - R, Y(v), Y(v)
            printf "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n", L - 6, Y(v) + 4, fmt(v)
        }
        for (i = 1; i <= nn; i++) {
            printf "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%d\" y2=\"%d\" stroke=\"#000\"/>\n", X(ns[i]), X(ns[i]), H - B, H - B + 5
            printf "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%d</text>\n", X(ns[i]), H - B + 18, ns[i]
        }
        printf "<line x1=\"%d\" x2=\"%d\" y1=\"%d\" y2=\"%d\" stroke=\"#000\"/>\n", L, W - R, H - B, H - B
        printf "<line x1=\"%d\" x2=\"%d\" y1=\"%d\" y2=\"%d\" stroke=\"#000\"/>\n", L, L, T, H - B
        printf "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">N (shards = node cores; partitions = 4 × N)</text>\n", (L + W - R) / 2, H - 10
        printf "<text transform=\"translate(18 %d) rotate(-90)\" text-anchor=\"middle\">records/s</text>\n", (T + H - B) / 2
        for (k = 1; k <= nw; k++) {
            w = order[k]; c = col[(k - 1) % 8 + 1]; pts = ""; first = ""
            for (i = 1; i <= nn; i++) if ((w, ns[i]) in val) {
                pts = pts sprintf("%.1f,%.1f ", X(ns[i]), Y(val[w, ns[i]]))
                if (first == "") { first = ns[i]; fv = val[w, ns[i]] }
            }
            if (first == 1 && nn > 1)
                printf "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"1\" stroke-dasharray=\"4 4\" opacity=\"0.6\" clip-path=\"url(#plot)\"/>\n", X(1), Y(fv), X(ns[nn]), Y(fv * ns[nn]), c
            printf "<polyline points=\"%s\" fill=\"none\" stroke=\"%s\" stroke-width=\"2\"/>\n", pts, c
            for (i = 1; i <= nn; i++) if ((w, ns[i]) in val)
                printf "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"%s\"><title>%s, N=%d: %d records/s</title></circle>\n", X(ns[i]), Y(val[w, ns[i]]), c, w, ns[i], val[w, ns[i]]
            ly = T + 10 + (k - 1) * 20
            printf "<line x1=\"%d\" x2=\"%d\" y1=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-width=\"2\"/>\n", W - R + 15, W - R + 40, ly, ly, c
            printf "<text x=\"%d\" y=\"%d\">%s</text>\n", W - R + 46, ly + 4, w
        }
        ly = T + 10 + nw * 20
        printf "<line x1=\"%d\" x2=\"%d\" y1=\"%d\" y2=\"%d\" stroke=\"#666\" stroke-dasharray=\"4 4\"/>\n", W - R + 15, W - R + 40, ly, ly
        printf "<text x=\"%d\" y=\"%d\">ideal: N × (N=1)</text>\n", W - R + 46, ly + 4
        printf "</svg>\n"
    }' "$TSV" >"$OUT_DIR/scaling.svg"

echo
cat "$OUT_DIR/table.md"
echo
echo "results in $OUT_DIR (results.tsv, table.md, scaling.svg, commands.txt)"
[ -z "$failed" ] || die "failed runs:$failed"
