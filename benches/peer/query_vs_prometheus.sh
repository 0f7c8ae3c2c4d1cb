#!/usr/bin/env bash
# Side-by-side PromQL latency: kahu's engine (criterion, benches/benches/query.rs) against the
# real Prometheus (Debian `prometheus` package) on the same data.
#
#   benches/peer/query_vs_prometheus.sh [OUT_DIR]
#
# 1. The bench writes its dataset as OpenMetrics; promtool backfills it into a Prometheus TSDB.
# 2. Prometheus serves it on 127.0.0.1; each query runs 1 + RUNS times through the HTTP API with
#    stats=true, and the median of Prometheus' own execTotalTime is kept (no HTTP or JSON time).
# 3. The criterion bench measures kahu on the same data (median of its samples).
# 4. OUT_DIR gets raw.csv and summary.md with the ratios.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
OUT="${1:-$ROOT/benches/runs/$(date -u +%F)-$(hostname -s)}"
WORK="${KAHU_BENCH_WORK:-/tmp/kahu-query-bench}"
RUNS="${RUNS:-5}"
PORT="${PORT:-19091}"
mkdir -p "$OUT" "$WORK"

command -v prometheus >/dev/null || { echo "prometheus not installed (apt-get install prometheus)" >&2; exit 1; }
command -v promtool >/dev/null || { echo "promtool not installed" >&2; exit 1; }

cd "$ROOT"
if [ ! -s "$WORK/data.om" ] || [ ! -s "$WORK/queries.txt" ]; then
    echo "== exporting the dataset"
    KAHU_QUERY_BENCH_EXPORT="$WORK/data.om" cargo bench -q -p kahu-benches --bench query > "$WORK/queries.txt"
fi
QUERIES=$(grep -P '\t' "$WORK/queries.txt")
read -r START END STEP AT < <(sed -n 's/^range: start=\([0-9]*\) end=\([0-9]*\) step=\([0-9]*\) instant_at=\([0-9]*\)$/\1 \2 \3 \4/p' "$WORK/queries.txt")

if [ ! -f "$WORK/prom/.backfilled" ]; then
    echo "== backfilling Prometheus TSDB"
    rm -rf "$WORK/prom"
    promtool tsdb create-blocks-from openmetrics "$WORK/data.om" "$WORK/prom" > "$WORK/backfill.log"
    touch "$WORK/prom/.backfilled"
fi

echo "== starting Prometheus"
cat > "$WORK/prometheus.yml" <<'YML'
global:
  scrape_interval: 1h
YML
prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/prom" \
    --storage.tsdb.retention.time=100y --web.listen-address="127.0.0.1:$PORT" \
    --query.max-samples=500000000 --query.timeout=10m --log.level=warn > "$WORK/prometheus.log" 2>&1 &
PROM=$!
trap 'kill $PROM 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do
    curl -sf "http://127.0.0.1:$PORT/-/ready" >/dev/null && break
    sleep 1
done
PROM_VERSION=$(prometheus --version 2>&1 | head -1)

median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

echo "== Prometheus queries"
declare -A PROM_S
while IFS=$'\t' read -r id range query; do
    times=()
    for i in $(seq 0 "$RUNS"); do
        if [ "$range" = true ]; then
            url="http://127.0.0.1:$PORT/api/v1/query_range"
            args=(--data-urlencode "query=$query" --data-urlencode "start=$((START / 1000))" --data-urlencode "end=$((END / 1000))" --data-urlencode "step=$((STEP / 1000))")
        else
            url="http://127.0.0.1:$PORT/api/v1/query"
            args=(--data-urlencode "query=$query" --data-urlencode "time=$((AT / 1000))")
        fi
        body=$(curl -sf "$url" "${args[@]}" --data-urlencode "stats=true")
        t=$(printf '%s' "$body" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["data"]["stats"]["timings"]["execTotalTime"])')
        [ "$i" -gt 0 ] && times+=("$t")   # the first run warms caches
    done
    PROM_S[$id]=$(printf '%s\n' "${times[@]}" | median)
    echo "$id prometheus ${PROM_S[$id]}s"
done <<< "$QUERIES"
kill $PROM; wait $PROM 2>/dev/null || true; trap - EXIT

echo "== kahu (criterion)"
cargo bench -q -p kahu-benches --bench query -- --noplot > "$WORK/criterion.log" 2>&1
{
    echo "query,kahu_s,prometheus_s,ratio"
    while IFS=$'\t' read -r id range query; do
        est="$ROOT/target/criterion/query/$id/new/estimates.json"
        k=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["median"]["point_estimate"]/1e9)' "$est")
        p=${PROM_S[$id]}
        r=$(python3 -c "print(round($k/$p, 3))")
        echo "$id,$k,$p,$r"
    done <<< "$QUERIES"
} > "$OUT/raw.csv"

{
    echo "# PromQL latency: kahu vs $PROM_VERSION"
    echo
    echo "Run $(date -u +%FT%TZ) on $(hostname -s): $(nproc) CPUs, $(awk '/MemTotal/ {print int($2/1048576)" GiB"}' /proc/meminfo), kahu $(git -C "$ROOT" rev-parse --short HEAD)."
    echo
    echo "Data: benches/benches/query.rs (30 s scrapes for 24 h: 10,000 CPU counters, 1,000 histogram"
    echo "buckets, 100,000 info series). Range queries: 24 h at 60 s. kahu: criterion median, in process."
    echo "Prometheus: median of $RUNS runs of its own execTotalTime (stats=true), after one warm-up run."
    echo
    echo "| query | kahu | Prometheus | kahu / Prometheus |"
    echo "|---|---:|---:|---:|"
    while IFS=, read -r id k p r; do
        [ "$id" = query ] && continue
        printf '| %s | %.3f s | %.3f s | %s |\n' "$id" "$k" "$p" "$r"
    done < "$OUT/raw.csv"
    echo
    echo "Queries:"
    echo
    while IFS=$'\t' read -r id range query; do echo "- \`$id\`: \`$query\`"; done <<< "$QUERIES"
} > "$OUT/summary.md"
cat "$OUT/summary.md"
