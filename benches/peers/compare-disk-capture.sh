#!/usr/bin/env bash
# Side-by-side disk use of a packed real capture (e.g. benches/testdata/node-exporter-1h.capture.zst):
# the same samples pushed through Prometheus remote write 1.0 into VictoriaMetrics (flushed,
# merged and stopped cleanly, then measured with du), and written as kahu blocks.
#
#   benches/peers/compare-disk-capture.sh CAPTURE
#
# Prints one CSV line per system: system,variant,samples,bytes,bytes_per_sample. A capture is
# small (an hour of one node), so VictoriaMetrics' fixed per-part and indexdb overheads weigh
# more than on the day-long generated workload; compare-disk.sh is the main comparison.
# Needs the Debian package victoria-metrics and a release build of kahu-workload.
set -euo pipefail
cd "$(dirname "$0")/../.."
CAPTURE=${1:?usage: $0 CAPTURE}
BIN=target/release/kahu-workload
[ -x "$BIN" ] || { echo "build $BIN first" >&2; exit 1; }
work=$(mktemp -d /tmp/kahu-compare-capture.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

"$BIN" blocks --capture "$CAPTURE" --dir "$work/kahu" >"$work/kahu.txt"
samples=$(awk '/^samples/ {print $2}' "$work/kahu.txt")
wait_http() { for _ in $(seq 1 100); do curl -sf "$1" >/dev/null && return 0; sleep 0.2; done; echo "$1 did not come up" >&2; return 1; }
line() { python3 -c "print('$1,$2,$samples,$3,%.3f' % ($3/$samples))"; }

victoria-metrics -storageDataPath="$work/vm" -httpListenAddr=127.0.0.1:18428 -retentionPeriod=100y \
  -loggerLevel=ERROR >"$work/vm.log" 2>&1 &
vm=$!; pids+=("$vm")
wait_http http://127.0.0.1:18428/health
"$BIN" push --url http://127.0.0.1:18428/api/v1/write --capture "$CAPTURE" >&2
curl -sf http://127.0.0.1:18428/internal/force_flush >/dev/null
sleep 5
curl -sf http://127.0.0.1:18428/internal/force_merge >/dev/null || true
sleep 20
vm_series=$(curl -sf http://127.0.0.1:18428/api/v1/series/count \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"][0])' || echo "?")
echo "victoria-metrics holds $vm_series series (kahu: $(awk '/^samples/ {print $4}' "$work/kahu.txt"))" >&2
kill -INT "$vm"; wait "$vm" || true
line victoria-metrics-1.79 "data+indexdb" "$(du -sbc "$work/vm/data" "$work/vm/indexdb" | tail -1 | cut -f1)"
line kahu "2h-blocks" "$(du -sb "$work/kahu/2h" | cut -f1)"
line kahu "compacted" "$(du -sb "$work/kahu/all" | cut -f1)"
