#!/usr/bin/env bash
# Transactional vs idempotent producer throughput and commit latency (issue 17): builds the
# release binary, then runs bench/scripts/txn-bench.py against a node it starts itself.
# Usage: bench/scripts/txn-bench.sh [--duration S] [--partitions N]
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -p odradek-node --bin odradek
exec python3 bench/scripts/txn-bench.py --binary target/release/odradek "$@"
