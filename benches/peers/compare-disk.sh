#!/usr/bin/env bash
# Side-by-side disk use of the standard workload: the same samples pushed through Prometheus
# remote write 1.0 into VictoriaMetrics and Prometheus (each flushed and stopped cleanly, then
# measured with du), and written as kahu blocks (2 h blocks and one compacted block).
#
#   benches/peers/compare-disk.sh [SERIES] [DURATION]      (defaults: 10000 24h)
#
# Prints one CSV line per system: system,variant,samples,bytes,bytes_per_sample.
# Needs the Debian packages victoria-metrics and prometheus, and a release build of
# kahu-workload (cargo build --release -p kahu-benches --bin kahu-workload).
set -euo pipefail
cd "$(dirname "$0")/../.."
SERIES=${1:-10000}
DURATION=${2:-24h}
BIN=target/release/kahu-workload
[ -x "$BIN" ] || { echo "build $BIN first" >&2; exit 1; }
work=$(mktemp -d /tmp/kahu-compare.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

dur_ms=$(python3 -c "
import re,sys; s='$DURATION'; u={'ms':1,'s':1000,'m':60000,'h':3600000,'d':86400000}
m=re.fullmatch(r'(\d+)(ms|s|m|h|d)', s); print(int(m.group(1))*u[m.group(2)])")
now_ms=$(date +%s%3N)
start_ms=$(( (now_ms - dur_ms - 3600000) / 3600000 * 3600000 ))
common=(--series "$SERIES" --duration "$DURATION" --start-ms "$start_ms")
samples=$("$BIN" stats "${common[@]}" | awk '/^samples/ {print $2}')

wait_http() { for _ in $(seq 1 100); do curl -sf "$1" >/dev/null && return 0; sleep 0.2; done; echo "$1 did not come up" >&2; return 1; }
line() { python3 -c "print('$1,$2,$samples,$3,%.3f' % ($3/$samples))"; }

# VictoriaMetrics.
victoria-metrics -storageDataPath="$work/vm" -httpListenAddr=127.0.0.1:18428 -retentionPeriod=100y \
  -loggerLevel=ERROR >"$work/vm.log" 2>&1 &
vm=$!; pids+=("$vm")
wait_http http://127.0.0.1:18428/health
"$BIN" push --url http://127.0.0.1:18428/api/v1/write "${common[@]}" >&2
curl -sf http://127.0.0.1:18428/internal/force_flush >/dev/null
sleep 5
curl -sf http://127.0.0.1:18428/internal/force_merge >/dev/null || true
sleep 20
kill -INT "$vm"; wait "$vm" || true
# data/ and indexdb/ are the store; cache/ holds caches VictoriaMetrics rebuilds on start.
line victoria-metrics-1.79 "data+indexdb" "$(du -sbc "$work/vm/data" "$work/vm/indexdb" | tail -1 | cut -f1)"
line victoria-metrics-1.79 "total-with-cache" "$(du -sb "$work/vm" | cut -f1)"

# Prometheus.
: >"$work/prometheus.yml"
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/prom" \
  --web.listen-address=127.0.0.1:19090 --web.enable-remote-write-receiver \
  --storage.tsdb.retention.time=100y --log.level=error >"$work/prom.log" 2>&1 &
pr=$!; pids+=("$pr")
wait_http http://127.0.0.1:19090/-/ready
"$BIN" push --url http://127.0.0.1:19090/api/v1/write "${common[@]}" >&2
sleep 90   # let the head compact what it can into blocks
kill -TERM "$pr"; wait "$pr" || true
line prometheus-2.42 "total" "$(du -sb "$work/prom" | cut -f1)"
blocks=$(find "$work/prom" -maxdepth 1 -type d -regex '.*/[0-9A-Z]\{26\}' -exec du -sb {} + | awk '{s+=$1} END {print s+0}')
line prometheus-2.42 "blocks-only" "$blocks"

# kahu: the same samples written as blocks.
"$BIN" blocks "${common[@]}" --dir "$work/kahu" >"$work/kahu.txt"
line kahu "2h-blocks" "$(du -sb "$work/kahu/2h" | cut -f1)"
line kahu "compacted" "$(du -sb "$work/kahu/all" | cut -f1)"
