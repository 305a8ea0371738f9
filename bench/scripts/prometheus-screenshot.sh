#!/usr/bin/env bash
# An operator's view, end to end: a loaded node scraped by a real Prometheus every 2 s, a
# consumer group that reads, stops for 45 s and reads again, then a headless-Chromium
# screenshot of Prometheus's graph page with Produce p99, consumer lag and Produce p99 per
# stage. About 3 minutes.
#   bash bench/scripts/prometheus-screenshot.sh [OUT.png]
# Needs: target/release/{odradek,odradek-bench}, and the Debian packages prometheus, kcat and
# chromium. Ports 29092 (Kafka), 29644 (admin) and 29090 (Prometheus) on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-bench/results/prometheus-graph.png}
B=${BIN_DIR:-target/release}
RATE=${RATE:-2000}
D=$(mktemp -d)
NODE= PROM=
cleanup() {
    [ -n "$PROM" ] && kill "$PROM" 2>/dev/null || true
    [ -n "$NODE" ] && kill "$NODE" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$D"
}
trap cleanup EXIT
"$B/odradek" serve --data-dir "$D/data" --listen 127.0.0.1:29092 \
    --admin-listen 127.0.0.1:29644 --smp 2 > "$D/node.log" 2>&1 &
NODE=$!
cat > "$D/prom.yml" <<'YAML'
global: {scrape_interval: 2s, evaluation_interval: 2s}
scrape_configs:
  - job_name: odradek
    static_configs: [{targets: ["127.0.0.1:29644"]}]
YAML
prometheus --config.file="$D/prom.yml" --storage.tsdb.path="$D/tsdb" \
    --web.listen-address=127.0.0.1:29090 > "$D/prom.log" 2>&1 &
PROM=$!
sleep 4
"$B/odradek-bench" produce --brokers 127.0.0.1:29092 --topic orders --partitions 4 \
    --rate "$RATE" --record-size 1KiB --acks all --duration 170s --warmup 2s > "$D/bench.log" 2>&1 &
BENCH=$!
consume() {
    timeout "$1" kcat -C -b 127.0.0.1:29092 -G billing orders -q \
        -X auto.commit.interval.ms=1000 > /dev/null 2>&1 || true
}
sleep 10; consume 50; sleep 45; consume 50
wait "$BENCH"
sleep 4
q() { python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1"; }
p99=$(q 'histogram_quantile(0.99, sum by (le) (rate(odradek_request_duration_seconds_bucket{api="Produce"}[20s])))')
lag=$(q 'sum by (group, topic) (odradek_group_lag)')
stages=$(q 'histogram_quantile(0.99, sum by (le, stage) (rate(odradek_request_stage_duration_seconds_bucket{api="Produce"}[20s])))')
url="http://127.0.0.1:29090/graph?g0.expr=$p99&g0.tab=0&g0.range_input=3m&g1.expr=$lag&g1.tab=0&g1.range_input=3m&g2.expr=$stages&g2.tab=0&g2.range_input=3m"
timeout 120 chromium --headless --no-sandbox --disable-gpu --hide-scrollbars \
    --window-size=1400,2300 --virtual-time-budget=15000 --screenshot="$OUT" "$url" \
    > "$D/chromium.log" 2>&1
tail -12 "$D/bench.log"
echo "screenshot: $OUT"
