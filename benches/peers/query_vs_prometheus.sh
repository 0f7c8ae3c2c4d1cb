#!/usr/bin/env bash
# Side-by-side PromQL latency: kahu's engine (criterion, benches/benches/query.rs) against the
# real Prometheus (Debian `prometheus` package) on the same data.
#
#   [KAHU_QUERY_BENCH_SCALE=<fraction>] benches/peers/query_vs_prometheus.sh [OUT_DIR]
#
# 1. The bench writes its dataset as OpenMetrics, one file per 2 h block; promtool backfills each
#    file (one pass per file: promtool re-reads its whole input for every block it creates).
#    KAHU_QUERY_BENCH_SCALE scales the series counts for the export and the bench alike.
# 2. Prometheus serves it on 127.0.0.1; each query runs 1 + RUNS times through the HTTP API with
#    stats=true, and the median of Prometheus' own execTotalTime is kept (no HTTP or JSON time).
# 3. The criterion bench measures kahu on the same data (median of its samples).
# 4. OUT_DIR gets raw.csv and summary.md with the ratios.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
OUT="${1:-$ROOT/benches/runs/$(date -u +%F)-$(hostname -s)/query-vs-prometheus}"
SCALE="${KAHU_QUERY_BENCH_SCALE:-1}"
export KAHU_QUERY_BENCH_SCALE="$SCALE"
T_BEGIN=$(date +%s)
WORK="${KAHU_BENCH_WORK:-/tmp/kahu-query-bench}"
RUNS="${RUNS:-3}"
PORT="${PORT:-19091}"
mkdir -p "$OUT" "$WORK"

command -v prometheus >/dev/null || { echo "prometheus not installed (apt-get install prometheus)" >&2; exit 1; }
command -v promtool >/dev/null || { echo "promtool not installed" >&2; exit 1; }

cd "$ROOT"
# The export is reused only if it was made at the same scale.
if [ "$(cat "$WORK/scale" 2>/dev/null)" != "$SCALE" ] || [ ! -s "$WORK/queries.txt" ]; then
    echo "== exporting the dataset (scale $SCALE)"
    rm -rf "$WORK/om" "$WORK/prom" "$WORK/scale"
    KAHU_QUERY_BENCH_EXPORT="$WORK/om" cargo bench -q -p kahu-benches --bench query > "$WORK/queries.txt"
    echo "$SCALE" > "$WORK/scale"
fi
QUERIES=$(grep -P '\t' "$WORK/queries.txt")
read -r START END STEP AT < <(sed -n 's/^range: start=\([0-9]*\) end=\([0-9]*\) step=\([0-9]*\) instant_at=\([0-9]*\)$/\1 \2 \3 \4/p' "$WORK/queries.txt")

if [ ! -f "$WORK/prom/.backfilled" ]; then
    echo "== backfilling Prometheus TSDB"
    rm -rf "$WORK/prom"
    : > "$WORK/backfill.log"
    for f in "$WORK"/om/*.om; do
        promtool tsdb create-blocks-from openmetrics "$f" "$WORK/prom" >> "$WORK/backfill.log"
    done
    touch "$WORK/prom/.backfilled"
    T_BACKFILLED=$(date +%s)
    echo "backfill: $((T_BACKFILLED - T_BEGIN)) s since the start"
fi

echo "== starting Prometheus"
cat > "$WORK/prometheus.yml" <<'YML'
global:
  scrape_interval: 1h
YML
prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/prom" \
    --storage.tsdb.retention.time=100y --web.listen-address="127.0.0.1:$PORT" \
    --query.max-samples=500000000 --query.timeout=10m --log.level=warn \
    --storage.tsdb.max-block-duration=2h > "$WORK/prometheus.log" 2>&1 &
PROM=$!
trap 'kill $PROM 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do
    curl -sf "http://127.0.0.1:$PORT/-/ready" >/dev/null && break
    sleep 1
done
PROM_VERSION=$(prometheus --version 2>&1 | head -1)

median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

# The blocks stay as promtool wrote them (2 h; no compaction while measuring), the layout the
# kahu bench writes too.
echo "== Prometheus queries"
LOAD_PROM=$(cut -d' ' -f1-3 /proc/loadavg)
declare -A PROM_S PROM_N
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
        read -r t n < <(printf '%s' "$body" | python3 -c 'import json,sys; d=json.load(sys.stdin)["data"]; print(d["stats"]["timings"]["execTotalTime"], len(d["result"]))')
        [ "$n" -gt 0 ] || { echo "$id: Prometheus returned no series (is the data there?)" >&2; exit 1; }
        [ "$i" -gt 0 ] && times+=("$t")   # the first run warms caches
    done
    PROM_S[$id]=$(printf '%s\n' "${times[@]}" | median)
    PROM_N[$id]=$n
    echo "$id prometheus ${PROM_S[$id]}s ($n series)"
done <<< "$QUERIES"
kill $PROM; wait $PROM 2>/dev/null || true; trap - EXIT

echo "== kahu (criterion)"
LOAD_KAHU=$(cut -d' ' -f1-3 /proc/loadavg)
cargo bench -q -p kahu-benches --bench query -- --noplot > "$WORK/criterion.log" 2>&1
{
    echo "query,kahu_s,prometheus_s,ratio,kahu_result_series,prometheus_result_series"
    while IFS=$'\t' read -r id range query; do
        est="$ROOT/target/criterion/query/$id/new/estimates.json"
        k=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["median"]["point_estimate"]/1e9)' "$est")
        p=${PROM_S[$id]}
        r=$(python3 -c "print(round($k/$p, 3))")
        kn=$(sed -n "s/^kahu_result_series $id //p" "$WORK/criterion.log")
        [ "$kn" = "${PROM_N[$id]}" ] || echo "$id: kahu answered $kn series, Prometheus ${PROM_N[$id]}" >&2
        echo "$id,$k,$p,$r,$kn,${PROM_N[$id]}"
    done <<< "$QUERIES"
} > "$OUT/raw.csv"

{
    echo "# PromQL latency: kahu vs $PROM_VERSION"
    echo
    echo "Run $(date -u +%FT%TZ) on $(hostname -s): $(nproc) CPUs, $(awk '/MemTotal/ {print int($2/1048576)" GiB"}' /proc/meminfo), kahu $(git -C "$ROOT" rev-parse --short HEAD)."
    echo
    echo "Command: \`KAHU_QUERY_BENCH_SCALE=$SCALE RUNS=$RUNS benches/peers/query_vs_prometheus.sh\` (wall time $(( $(date +%s) - T_BEGIN )) s)."
    echo
    echo "Data: benches/benches/query.rs, 30 s scrapes for 24 h of 10,000 CPU counters and 1,000"
    echo "histogram buckets, 2,000 kube_pod_info series every 2 min (these three scaled by $SCALE), and"
    echo "100,000 info series in the last 10 min; here $(du -sh "$WORK/om" | cut -f1) of OpenMetrics, $(grep -c '^[0-9A-Z]\{26\}' "$WORK/backfill.log") blocks of 2 h:"
    echo
    echo '```'
    awk 'NR == 1 || !/^BLOCK/' "$WORK/backfill.log"
    echo '```'
    echo
    echo "Both sides read 2 h blocks from disk (page cache warm). Range queries: 24 h at 60 s;"
    echo "instant queries at the end of the data."
    echo "kahu: criterion median of 10 runs in process (read-only Db on blocks written by the bench:"
    echo "engine + storage, like execTotalTime)."
    echo "Prometheus: median of $RUNS runs of its own execTotalTime (stats=true), after one warm-up run."
    echo "Load average (1, 5, 15 min) when the Prometheus queries started: $LOAD_PROM; when kahu's started: $LOAD_KAHU"
    echo "(the machine is shared: the two sides run one after the other, so load differs between them)."
    echo
    echo "| query | kahu | Prometheus | kahu / Prometheus |"
    echo "|---|---:|---:|---:|"
    while IFS=, read -r id k p r _; do
        [ "$id" = query ] && continue
        printf '| %s | %.4f s | %.4f s | %s |\n' "$id" "$k" "$p" "$r"
    done < "$OUT/raw.csv"
    echo
    echo "Queries:"
    echo
    while IFS=$'\t' read -r id range query; do echo "- \`$id\`: \`$query\`"; done <<< "$QUERIES"
} > "$OUT/summary.md"
cat "$OUT/summary.md"
