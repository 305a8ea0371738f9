#!/usr/bin/env bash
# Coverage-guided fuzzing of Odradek's parsers (cargo-fuzz / libFuzzer; the targets are in
# fuzz/fuzz_targets, their seed corpora in fuzz/corpus/<target>).
#
#   scripts/fuzz.sh build                  build every target
#   scripts/fuzz.sh ci                     build, then run each target for FUZZ_CI_SECONDS (20)
#                                          on a temporary copy of its corpus; non-zero exit on
#                                          any crash, leak, timeout or out-of-memory, with the
#                                          input printed in hex
#   scripts/fuzz.sh run TARGET [EXECS]     a long run (default 10 000 000 executions), niced, on
#                                          the working corpus fuzz/work/TARGET (seeded from
#                                          fuzz/corpus/TARGET); crashes go to fuzz/artifacts/TARGET;
#                                          FUZZ_MAX_SECONDS=N stops it after N seconds
#   scripts/fuzz.sh merge TARGET           minimizes fuzz/corpus/TARGET plus fuzz/work/TARGET into
#                                          fuzz/corpus/TARGET (libFuzzer -merge=1, edges only)
#   scripts/fuzz.sh list                   the target names
#
# Toolchain: nightly (cargo-fuzz needs -Z flags), installed with rustup when missing; cargo-fuzz
# is installed into target/tools when it is not on PATH. Sanitizer: none by default (safe Rust:
# libFuzzer's coverage and Rust's own checks find the panics; ASan costs about 2x exec/s here);
# FUZZ_SANITIZER=address for ASan. cargo fuzz builds release with debug assertions and overflow
# checks on.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"

TARGETS=(request batch segment_recovery offsets_records txn_records sasl controller_frame)
TOOLCHAIN="${FUZZ_TOOLCHAIN:-nightly}"
SANITIZER="${FUZZ_SANITIZER:-none}"
CI_SECONDS="${FUZZ_CI_SECONDS:-20}"
CARGO_FUZZ_VERSION=0.13.2
TRIPLE="$(rustc -vV | sed -n 's/^host: //p')"
BIN_DIR="$ROOT/fuzz/target/$TRIPLE/release"
# No input may make a target allocate more than 256 MiB at once or hold more than 512 MiB
# (an unbounded allocation is a finding); one input may take at most 10 s.
FLAGS=(-rss_limit_mb=512 -malloc_limit_mb=256 -timeout=10 -print_final_stats=1)

log() { printf '\n== %s\n' "$*"; }
die() { echo "fuzz.sh: $*" >&2; exit 1; }

known() {
    local t
    for t in "${TARGETS[@]}"; do [ "$t" = "$1" ] && return 0; done
    return 1
}

tools() {
    export PATH="$ROOT/target/tools/bin:$PATH"
    if ! rustup run "$TOOLCHAIN" rustc --version >/dev/null 2>&1; then
        log "installing the $TOOLCHAIN toolchain"
        rustup toolchain install "$TOOLCHAIN" --profile minimal
    fi
    if ! cargo fuzz --version >/dev/null 2>&1; then
        log "installing cargo-fuzz $CARGO_FUZZ_VERSION into target/tools"
        cargo install --locked cargo-fuzz --version "$CARGO_FUZZ_VERSION" --root "$ROOT/target/tools"
    fi
}

build() {
    tools
    log "building the fuzz targets (sanitizer: $SANITIZER)"
    (cd fuzz && cargo "+$TOOLCHAIN" fuzz build -s "$SANITIZER")
    # cargo fuzz has no --locked: the build must not have changed the committed lock file.
    if git rev-parse --git-dir >/dev/null 2>&1 && ! git diff --quiet -- fuzz/Cargo.lock; then
        git diff --stat -- fuzz/Cargo.lock
        die "fuzz/Cargo.lock changed in the build: commit the update"
    fi
}

# Prints a failing input: its path and bytes in hex (at most the first 4 KiB).
show() {
    local f
    for f in "$@"; do
        [ -f "$f" ] || continue
        echo "artifact: $f ($(stat -c %s "$f") bytes)"
        od -An -tx1 -v -N 4096 "$f" | tr -d '\n' | tr -s ' '
        echo
    done
}

ci() {
    build
    local failed=()
    # Global, so that the EXIT trap still sees it after this function returns.
    FUZZ_TMP="$(mktemp -d)"
    trap 'rm -rf "$FUZZ_TMP"' EXIT
    local tmp="$FUZZ_TMP"
    for t in "${TARGETS[@]}"; do
        log "fuzz $t for ${CI_SECONDS}s"
        mkdir -p "$tmp/corpus/$t" "$tmp/artifacts/$t"
        cp -r "fuzz/corpus/$t/." "$tmp/corpus/$t/" 2>/dev/null || true
        if ! "$BIN_DIR/$t" "${FLAGS[@]}" -max_total_time="$CI_SECONDS" \
                -artifact_prefix="$tmp/artifacts/$t/" "$tmp/corpus/$t" 2>"$tmp/$t.log"; then
            tail -n 40 "$tmp/$t.log"
            show "$tmp/artifacts/$t"/*
            # Keep the inputs where the run can find them (the temporary folder goes).
            mkdir -p "fuzz/artifacts/$t"
            cp "$tmp/artifacts/$t"/* "fuzz/artifacts/$t/" 2>/dev/null || true
            failed+=("$t")
        else
            grep -E '^(#[0-9]+[[:space:]]+DONE|stat::number_of_executed_units|stat::average_exec_per_sec)' \
                "$tmp/$t.log" || tail -n 3 "$tmp/$t.log"
        fi
    done
    if [ ${#failed[@]} -gt 0 ]; then
        die "fuzz targets failed: ${failed[*]} (inputs kept in fuzz/artifacts/)"
    fi
    log "fuzz: ${#TARGETS[@]} targets ran ${CI_SECONDS}s each without a finding"
}

run() {
    local t="$1" execs="${2:-10000000}"
    known "$t" || die "unknown target $t (scripts/fuzz.sh list)"
    [ -x "$BIN_DIR/$t" ] || build
    mkdir -p "fuzz/work/$t" "fuzz/artifacts/$t" "fuzz/corpus/$t"
    # FUZZ_MAX_SECONDS stops a run that is too slow to reach EXECS in the time there is.
    nice -n 15 "$BIN_DIR/$t" "${FLAGS[@]}" -runs="$execs" \
        -max_total_time="${FUZZ_MAX_SECONDS:-0}" \
        -artifact_prefix="fuzz/artifacts/$t/" "fuzz/work/$t" "fuzz/corpus/$t"
}

merge() {
    local t="$1" out
    known "$t" || die "unknown target $t (scripts/fuzz.sh list)"
    [ -x "$BIN_DIR/$t" ] || build
    out="$(mktemp -d)"
    mkdir -p "fuzz/work/$t"
    # Edges only (-use_counters=0): a corpus that keeps every edge but not every hit count is
    # about a tenth of the size (request: 1 302 files and 91 KB instead of 3 631 and 1.3 MB).
    nice -n 15 "$BIN_DIR/$t" -merge=1 -use_counters=0 -rss_limit_mb=512 -malloc_limit_mb=256 \
        -timeout=10 "$out" "fuzz/corpus/$t" "fuzz/work/$t"
    rm -rf "fuzz/corpus/$t"
    mv "$out" "fuzz/corpus/$t"
    chmod 755 "fuzz/corpus/$t"
    echo "fuzz/corpus/$t: $(find "fuzz/corpus/$t" -type f | wc -l) files, $(du -sb "fuzz/corpus/$t" | cut -f1) bytes"
}

case "${1:-}" in
    build) build ;;
    ci) ci ;;
    run) [ $# -ge 2 ] || die "usage: scripts/fuzz.sh run TARGET [EXECUTIONS]"; run "$2" "${3:-}" ;;
    merge) [ $# -ge 2 ] || die "usage: scripts/fuzz.sh merge TARGET"; merge "$2" ;;
    list) printf '%s\n' "${TARGETS[@]}" ;;
    *) die "usage: scripts/fuzz.sh build | ci | run TARGET [EXECUTIONS] | merge TARGET | list" ;;
esac
