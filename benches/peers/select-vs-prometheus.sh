#!/usr/bin/env bash
# Series selection and label lookups over 100,000 series, kahu vs Prometheus, through the HTTP
# API of both (Prometheus' own Go benchmarks cannot run here: no Go toolchain or source tree).
# The series are those of the criterion group `select_100k` (benches/benches/tsdb_blocks.rs:
# 10 metric names x 10,000 containers, ~440-byte label sets, 60 samples each at 15 s), pushed
# through remote write into both servers, where they stay in the head. Each request runs once to
# warm up and then RUNS times on each server, alternating between the servers; the median wall
# time of the whole request (connect, evaluate, encode JSON, read the body) is kept, and the
# answers' sizes must agree.
#
#   CARGO_INCREMENTAL=0 cargo build --release -p kahu -p kahu-benches --bins
#   [RUNS=9] benches/peers/select-vs-prometheus.sh [OUT_CSV]
#
# Requests: for each select_100k case, /api/v1/series?match[]=<selector> and /api/v1/query of the
# bare selector (instant); /api/v1/labels and /api/v1/label/<name>/values with and without
# match[] (Grafana sends match[] for `label_values(metric{...}, label)`), all with start/end
# spanning the data as Grafana sends them.
# Prints CSV: request,kahu_s,prometheus_s,ratio,kahu_items,prometheus_items,load1,load5,load15
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${RUNS:-9}
OUT=${1:-/dev/stdout}
bin=target/release
[ -x "$bin/kahu" ] || { echo "build $bin/kahu first" >&2; exit 1; }
command -v prometheus >/dev/null || { echo "prometheus not installed (apt-get install prometheus)" >&2; exit 1; }
PROM_PORT=${PROM_PORT:-29393}
KAHU_PORT=${KAHU_PORT:-29394}
work=$(mktemp -d /tmp/kahu-select.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 1' INT TERM
# A port already taken would send the samples to someone else's server: refuse to run.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null || { echo "port $1 is in use; set ${2}_PORT" >&2; exit 1; }; }
wait_http() { for _ in $(seq 1 300); do curl -sf "$1" >/dev/null && return 0; sleep 0.2; done; echo "$1 did not come up" >&2; return 1; }

port_free "$PROM_PORT" PROM
port_free "$KAHU_PORT" KAHU
: >"$work/prometheus.yml"
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/prom" \
  --web.listen-address="127.0.0.1:$PROM_PORT" --web.enable-remote-write-receiver \
  --storage.tsdb.retention.time=100y --log.level=warn >"$work/prom.log" 2>&1 &
pids+=($!)
# No collector: kahu's head holds the pushed series only (plus kahu's own few self-metrics).
"$bin/kahu" serve --data-dir "$work/kahu" --listen "127.0.0.1:$KAHU_PORT" --collect.interval 1h \
  --collector.disable cgroup,machine,stat,meminfo,loadavg,filesystem,diskstats,netdev,pressure,uname,time,vmstat,filefd,netstat,conntrack \
  --log.level warn >"$work/kahu.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$PROM_PORT/-/ready"
wait_http "http://127.0.0.1:$KAHU_PORT/-/ready"
for p in "${pids[@]}"; do kill -0 "$p" || { echo "a server did not start: $(tail -3 "$work"/*.log)" >&2; exit 1; }; done

KAHU_SELECT_BENCH_PUSH="http://127.0.0.1:$PROM_PORT/api/v1/write,http://127.0.0.1:$KAHU_PORT/api/v1/write" \
  cargo bench -q -p kahu-benches --bench tsdb_blocks -- select_100k >"$work/cases.txt"

python3 - "$work/cases.txt" "$PROM_PORT" "$KAHU_PORT" "$RUNS" >"$OUT" <<'PY'
import json, statistics, sys, time, urllib.parse, urllib.request
cases_file, prom_port, kahu_port, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
lines = open(cases_file).read().splitlines()
rng = next(l for l in lines if l.startswith("range: "))
start = int(rng.split("start=")[1].split()[0]) / 1000
end = int(rng.split("end=")[1].split()[0]) / 1000
cases = [l.split("\t") for l in lines if "\t" in l]
se = {"start": f"{start - 60:.3f}", "end": f"{end + 60:.3f}"}
reqs = []
for name, series, sel in cases:
    reqs.append((f"series/{name}", "/api/v1/series", {"match[]": sel, **se}, int(series)))
    reqs.append((f"query/{name}", "/api/v1/query", {"query": sel, "time": f"{end:.3f}"}, int(series)))
cpu = '{__name__="container_cpu_usage_seconds_total"}'
ns3 = '{__name__="container_cpu_usage_seconds_total",namespace="ns-3"}'
reqs += [
    ("labels", "/api/v1/labels", se, None),
    ("labels/match_name", "/api/v1/labels", {"match[]": cpu, **se}, None),
    ("label_values/__name__", "/api/v1/label/__name__/values", se, None),
    ("label_values/namespace", "/api/v1/label/namespace/values", se, None),
    ("label_values/pod", "/api/v1/label/pod/values", se, None),
    ("label_values/namespace/match_name", "/api/v1/label/namespace/values", {"match[]": cpu, **se}, None),
    ("label_values/pod/match_name", "/api/v1/label/pod/values", {"match[]": cpu, **se}, None),
    ("label_values/pod/match_name_namespace", "/api/v1/label/pod/values", {"match[]": ns3, **se}, None),
]

def call(port, path, params):
    url = f"http://127.0.0.1:{port}{path}?" + urllib.parse.urlencode(params)
    t0 = time.perf_counter()
    with urllib.request.urlopen(url, timeout=600) as r:
        body = r.read()
    dt = time.perf_counter() - t0
    d = json.loads(body)
    if d.get("status") != "success":
        sys.exit(f"{url}: {body[:300]!r}")
    data = d["data"]
    return dt, len(data["result"] if isinstance(data, dict) else data)

print("request,kahu_s,prometheus_s,ratio,kahu_items,prometheus_items,load1,load5,load15")
for name, path, params, want in reqs:
    load = ",".join(open("/proc/loadavg").read().split()[:3])
    times = {"kahu": [], "prom": []}
    items = {}
    for i in range(runs + 1):
        for who, port in (("prom", prom_port), ("kahu", kahu_port)):
            dt, n = call(port, path, params)
            items[who] = n
            if i > 0:
                times[who].append(dt)
    k, p = statistics.median(times["kahu"]), statistics.median(times["prom"])
    for who in ("kahu", "prom"):
        if want is not None and items[who] != want:
            print(f"{name}: {who} answered {items[who]} series, want {want}", file=sys.stderr)
    print(f"{name},{k:.5f},{p:.5f},{k / p:.3f},{items['kahu']},{items['prom']},{load}", flush=True)
PY
