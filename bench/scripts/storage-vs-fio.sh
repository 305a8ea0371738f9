#!/usr/bin/env bash
# The storage engine next to fio, on the same disk, in one run (~2.5 minutes).
#
#   bash bench/scripts/storage-vs-fio.sh            # from the repository root
#
# Steps (all on a directory of the disk that holds the repository, never a tmpfs):
#   1. fio: sequential write, 1 MiB blocks, O_DIRECT, io_uring QD8       -> disk bandwidth
#   1b. fio: sequential write, 1 MiB blocks, O_DIRECT, fdatasync after each -> the disk's
#      bandwidth with a 1 MiB group commit (the like-for-like reference)
#   2. fio: sequential buffered write, 1 MiB blocks, fdatasync after each -> cost of a 1 MiB
#      group commit through the page cache
#   3. fio: 4 KiB append + fdatasync each (psync)                         -> fdatasync latency
#   4. odradek-bench storage, 1 MiB batches, --sync each, 4 and 1 producers (engine defaults:
#      direct writes); 4c: 4 producers with buffered writes and the 64 MiB page-cache window;
#      4d: buffered with no window (plain buffered I/O)
#   5. odradek-bench storage, 64 KiB batches of 1 KiB records, --sync each, 4 producers
#   6. odradek-bench storage, 4 KiB batches (4 x 1 KiB), 1 producer, --sync each
# then prints a summary with the issue's targets:
#   - 4 (4 producers) >= 70 % of 1's bandwidth
#   - 6's append+sync p99 <= 2 x 3's fdatasync p99
#
# Knobs (environment): DURATION (measured phase of each odradek run, default 10s), WARMUP (2s),
# FIO_RUNTIME (seconds bound of each fio job, 10), DATA_DIR (scratch directory, default
# target/storage-vs-fio/data), OUT_DIR (JSON results, default target/storage-vs-fio/<time>).
# Every fio and odradek JSON output is kept in OUT_DIR; the scratch data is removed at exit.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

DURATION="${DURATION:-10s}"
WARMUP="${WARMUP:-2s}"
FIO_RUNTIME="${FIO_RUNTIME:-10}"
STAMP="$(date +%Y%m%d-%H%M%S)"
DATA_DIR="${DATA_DIR:-$ROOT/target/storage-vs-fio/data}"
OUT_DIR="${OUT_DIR:-$ROOT/target/storage-vs-fio/$STAMP}"
# Safety bound on the bytes one odradek run may write (it is also bounded by DURATION).
ODR_TOTAL_BYTES="${ODR_TOTAL_BYTES:-16GiB}"

log() { printf '\n== %s\n' "$*" >&2; }
die() { printf 'storage-vs-fio: %s\n' "$*" >&2; exit 1; }

# --- Tools -----------------------------------------------------------------------------------
if ! command -v fio >/dev/null 2>&1; then
    log "installing fio"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fio >/dev/null; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fio >/dev/null
    fi
fi
command -v python3 >/dev/null 2>&1 || die "python3 is needed to parse fio's JSON output"

log "cargo build --release -p odradek-bench --features storage"
cargo build --release -p odradek-bench --features storage
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/odradek-bench"
[ -x "$BIN" ] || die "no binary at $BIN"

# --- Scratch directory on the repository's disk -----------------------------------------------
mkdir -p "$DATA_DIR" "$OUT_DIR"
FIO_DIR="$DATA_DIR/fio"
ODR_DIR="$DATA_DIR/odradek"
cleanup() { rm -rf "$FIO_DIR" "$ODR_DIR"; rmdir "$DATA_DIR" 2>/dev/null || true; }
trap cleanup EXIT
mkdir -p "$FIO_DIR" "$ODR_DIR"

fstype="$(df --output=fstype "$DATA_DIR" | tail -n 1 | tr -d ' ')"
device="$(df --output=source "$DATA_DIR" | tail -n 1 | tr -d ' ')"
avail_kib="$(df --output=avail -k "$DATA_DIR" | tail -n 1 | tr -d ' ')"
case "$fstype" in
    tmpfs | ramfs | overlay) die "$DATA_DIR is on $fstype, not a disk; set DATA_DIR to a directory on the disk to measure" ;;
esac
# fio writes up to 8 GiB (steps 1 and 2); one odradek run writes at most ODR_TOTAL_BYTES.
[ "$avail_kib" -ge $((24 * 1024 * 1024)) ] || die "need 24 GiB free under $DATA_DIR, have $((avail_kib / 1024 / 1024)) GiB"
{
    echo "date: $(date -Is)"
    echo "kernel: $(uname -r), $(nproc) CPUs, $(free -g | awk '/Mem:/ {print $2}') GiB RAM"
    echo "disk: $fstype on $device"
    echo "fio: $(fio --version)"
    echo "load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "busiest processes at start:"
    ps -eo pcpu,comm --sort=-pcpu | head -4
} >"$OUT_DIR/env.txt"
log "scratch: $DATA_DIR ($fstype on $device, $((avail_kib / 1024 / 1024)) GiB free); results: $OUT_DIR"

settle() { sync; sleep 1; }

FIO_COMMON=(--directory="$FIO_DIR" --unlink=1 --output-format=json)

# --- 1. fio sequential write, O_DIRECT --------------------------------------------------------
CMD1=(fio --name=seq-direct --direct=1 --ioengine=io_uring --iodepth=8 --rw=write --bs=1M
    --size=8G --runtime="$FIO_RUNTIME" "${FIO_COMMON[@]}")
log "1. ${CMD1[*]}"
"${CMD1[@]}" >"$OUT_DIR/fio1-seq-direct.json"
settle

# --- 1b. fio sequential write, O_DIRECT, fdatasync every 1 MiB --------------------------------
CMD1B=(fio --name=seq-direct-fdatasync --direct=1 --ioengine=sync --rw=write --bs=1M
    --fdatasync=1 --size=4G --runtime="$FIO_RUNTIME" "${FIO_COMMON[@]}")
log "1b. ${CMD1B[*]}"
"${CMD1B[@]}" >"$OUT_DIR/fio1b-seq-direct-fdatasync-1m.json"
settle

# --- 2. fio sequential buffered write, fdatasync every 1 MiB ----------------------------------
CMD2=(fio --name=seq-buffered-fdatasync --direct=0 --ioengine=sync --rw=write --bs=1M
    --fdatasync=1 --size=4G --runtime="$FIO_RUNTIME" "${FIO_COMMON[@]}")
log "2. ${CMD2[*]}"
"${CMD2[@]}" >"$OUT_DIR/fio2-buffered-fdatasync-1m.json"
settle

# --- 3. fio 4 KiB append + fdatasync each -----------------------------------------------------
CMD3=(fio --name=append-4k-fdatasync --direct=0 --ioengine=sync --rw=write --bs=4k
    --fdatasync=1 --size=1G --runtime="$FIO_RUNTIME" "${FIO_COMMON[@]}")
log "3. ${CMD3[*]}"
"${CMD3[@]}" >"$OUT_DIR/fio3-append-4k-fdatasync.json"
settle

# --- 4-6. odradek-bench storage ---------------------------------------------------------------
odr() {
    local name="$1"
    shift
    local cmd=("$BIN" storage --dir "$ODR_DIR" --duration "$DURATION" --warmup "$WARMUP"
        --total-bytes "$ODR_TOTAL_BYTES" --json "$OUT_DIR/$name.json" "$@")
    log "$name: ${cmd[*]}"
    "${cmd[@]}"
    settle
}
odr odr4a-1m-p4 --batch-bytes 1MiB --record-size 1024 --sync each --producers 4
odr odr4b-1m-p1 --batch-bytes 1MiB --record-size 1024 --sync each --producers 1
odr odr4c-1m-p4-buffered --batch-bytes 1MiB --record-size 1024 --sync each --producers 4 \
    --write-mode buffered
odr odr4d-1m-p4-buffered-nowindow --batch-bytes 1MiB --record-size 1024 --sync each \
    --producers 4 --write-mode buffered --page-cache-window none
odr odr5-64k-p4 --batch-bytes 64KiB --record-size 1024 --sync each --producers 4
odr odr6-4k-p1 --batch-bytes 4KiB --record-size 1024 --sync each --producers 1

echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT_DIR/env.txt"

# --- Summary -----------------------------------------------------------------------------------
log "summary"
python3 - "$OUT_DIR" <<'PY'
import json, os, sys

out = sys.argv[1]

def load(name):
    with open(os.path.join(out, name)) as f:
        return json.load(f)

def fio_job(name):
    return load(name)["jobs"][0]

def pct(lat, q):
    """A percentile of a fio lat_ns/clat_ns block, in microseconds."""
    p = lat.get("percentile") or {}
    v = p.get(q)
    return v / 1000.0 if v is not None else float("nan")

def ms(us):
    return f"{us / 1000:.2f} ms" if us >= 1000 else f"{us:.0f} µs"

f1 = fio_job("fio1-seq-direct.json")
f1b = fio_job("fio1b-seq-direct-fdatasync-1m.json")
f2 = fio_job("fio2-buffered-fdatasync-1m.json")
f3 = fio_job("fio3-append-4k-fdatasync.json")
seq_mbs = f1["write"]["bw_bytes"] / 1e6
f1b_mbs = f1b["write"]["bw_bytes"] / 1e6
f2_mbs = f2["write"]["bw_bytes"] / 1e6
f2_sync = f2.get("sync", {}).get("lat_ns", {})
f3_sync = f3.get("sync", {}).get("lat_ns", {})
f3_clat = f3["write"]["clat_ns"]
f3_iops = f3["write"]["iops"]

rows = []
rows.append(("fio 1", "seq write 1 MiB, O_DIRECT, io_uring QD8", f"{seq_mbs:8.1f}", "", "", "", ""))
f1b_sync = f1b.get("sync", {}).get("lat_ns", {})
rows.append(("fio 1b", "seq write 1 MiB O_DIRECT + fdatasync each", f"{f1b_mbs:8.1f}",
             ms(pct(f1b_sync, "50.000000")), ms(pct(f1b_sync, "99.000000")),
             ms(pct(f1b_sync, "99.900000")), "fdatasync"))
rows.append(("fio 2", "seq write 1 MiB buffered + fdatasync each", f"{f2_mbs:8.1f}",
             ms(pct(f2_sync, "50.000000")), ms(pct(f2_sync, "99.000000")),
             ms(pct(f2_sync, "99.900000")), "fdatasync"))
rows.append(("fio 3", f"4 KiB append + fdatasync each ({f3_iops:.0f}/s)",
             f"{f3['write']['bw_bytes'] / 1e6:8.1f}",
             ms(pct(f3_sync, "50.000000")), ms(pct(f3_sync, "99.000000")),
             ms(pct(f3_sync, "99.900000")), "fdatasync"))
rows.append(("", f"  (its 4 KiB write clat: p50 {ms(pct(f3_clat, '50.000000'))}, "
             f"p99 {ms(pct(f3_clat, '99.000000'))})", "", "", "", "", ""))

odr = {}
for name, label in [("odr4a-1m-p4", "1 MiB batches, sync each, 4 producers"),
                    ("odr4b-1m-p1", "1 MiB batches, sync each, 1 producer"),
                    ("odr4c-1m-p4-buffered", "as 4a, buffered + 64 MiB cache window"),
                    ("odr4d-1m-p4-buffered-nowindow", "as 4a, buffered, no cache window"),
                    ("odr5-64k-p4", "64 KiB batches, sync each, 4 producers"),
                    ("odr6-4k-p1", "4 KiB batches, sync each, 1 producer")]:
    r = load(name + ".json")["results"]
    odr[name] = r
    lat = r["latency_us"]
    io = r.get("io") or {}
    extra = "append+sync"
    if io:
        extra += f", {io['appends_per_fdatasync']:.2f} appends/fdatasync"
    rows.append(("odr " + name[3:5].rstrip("-"), label, f"{r['mb_per_s']:8.1f}",
                 ms(lat["p50"]), ms(lat["p99"]), ms(lat["p999"]), extra))

print()
print(f"{'step':<7} {'what':<46} {'MB/s':>8} {'p50':>10} {'p99':>10} {'p99.9':>10}  latency of")
for r in rows:
    print(f"{r[0]:<7} {r[1]:<46} {r[2]:>8} {r[3]:>10} {r[4]:>10} {r[5]:>10}  {r[6]}")

bw_ratio = odr["odr4a-1m-p4"]["mb_per_s"] / seq_mbs if seq_mbs else float("nan")
fdsync_p99 = pct(f3_sync, "99.000000")
lat_ratio = odr["odr6-4k-p1"]["latency_us"]["p99"] / fdsync_p99 if fdsync_p99 else float("nan")
p1_vs_fio2 = odr["odr4b-1m-p1"]["mb_per_s"] / f2_mbs if f2_mbs else float("nan")
p4_vs_fio2 = odr["odr4a-1m-p4"]["mb_per_s"] / f2_mbs if f2_mbs else float("nan")
print()
print("targets")
print(f"  bandwidth: odr 4a / fio 1 = {bw_ratio * 100:5.1f} %   (target >= 70 %)  "
      f"{'MET' if bw_ratio >= 0.70 else 'MISSED'}")
print(f"  latency:   odr 6 append+sync p99 / fio 3 fdatasync p99 = {lat_ratio:5.2f}x   "
      f"(target <= 2x)  {'MET' if lat_ratio <= 2.0 else 'MISSED'}")
bw_1b = odr["odr4a-1m-p4"]["mb_per_s"] / f1b_mbs if f1b_mbs else float("nan")
print(f"  bandwidth: odr 4a / fio 1b (disk with fdatasync per 1 MiB) = {bw_1b * 100:5.1f} %   "
      f"(target >= 70 %)  {'MET' if bw_1b >= 0.70 else 'MISSED'}")
print("context")
print(f"  odr 4a / fio 2 (buffered + fdatasync per 1 MiB, one stream) = {p4_vs_fio2 * 100:5.1f} %")
print(f"  odr 4b / fio 2 (same shape: one stream, fdatasync per 1 MiB)  = {p1_vs_fio2 * 100:5.1f} %")
for key, label in [("odr4c-1m-p4-buffered", "4c (buffered, window)"),
                   ("odr4d-1m-p4-buffered-nowindow", "4d (buffered, no window)")]:
    r = odr[key]["mb_per_s"] / seq_mbs if seq_mbs else float("nan")
    print(f"  odr {label} / fio 1 = {r * 100:5.1f} %")
with open(os.path.join(out, "env.txt")) as f:
    print("\n" + f.read().rstrip())
print(f"\nJSON: {out}")
PY
