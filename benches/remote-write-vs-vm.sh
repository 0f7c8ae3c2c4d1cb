#!/usr/bin/env bash
# Remote-write ingest, kahu vs VictoriaMetrics, measured in the same run: the same deterministic
# workload (kahu-workload, byte-identical requests, ~2,000 samples each, 4 connections, time
# order) is pushed to each server in turn; the server's CPU time (utime+stime from /proc) and
# peak RSS (VmHWM) are read around the push. Prints CSV on stdout.
#
#   cargo build --release -p kahu -p kahu-benches --bins
#   benches/remote-write-vs-vm.sh [SERIES] [DURATION]      (default 10000 2h)
set -euo pipefail
cd "$(dirname "$0")/.."
series=${1:-10000}
duration=${2:-2h}
# The run starts now and goes forward: kahu serve stores its own collected samples at start-up,
# and, as Prometheus' head, rejects samples more than an hour older than the newest (out of
# bounds), so a run ending now would be partly rejected. Both servers get the same start.
start_ms=$(( $(date +%s) * 1000 ))
bin=target/release
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
tck=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hwm_kib() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }
wait_port() { for _ in $(seq 300); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; exit 1; }

run() { # name pid port
  local name=$1 pid=$2 port=$3
  wait_port "$port"
  sleep 1
  local c0; c0=$(cpu_ticks "$pid")
  local out
  if ! out=$("$bin/kahu-workload" push --url "http://127.0.0.1:$port/api/v1/write" --series "$series" --duration "$duration" --start-ms "$start_ms" --seed 42 2>&1 | tail -1); then
    echo "push to $name failed: $out" >&2
    exit 1
  fi
  local c1; c1=$(cpu_ticks "$pid")
  local samples; samples=$(echo "$out" | sed -n 's/^pushed \([0-9]*\) samples.*/\1/p')
  local secs; secs=$(echo "$out" | sed -n 's/.* in \([0-9.]*\)s:.*/\1/p')
  local cpu; cpu=$(echo "scale=3; ($c1 - $c0) / $tck" | bc)
  local per_m; per_m=$(echo "scale=3; $cpu * 1000000 / $samples" | bc)
  echo "$name,$samples,$secs,$cpu,$per_m,$(hwm_kib "$pid")"
}

echo "server,samples,wall_seconds,server_cpu_seconds,cpu_seconds_per_million,peak_rss_kib"
"$bin/kahu" serve --data-dir "$work/kahu" --listen 127.0.0.1:19470 --collect.interval 1h --log.level warn &
pids+=($!)
run kahu "${pids[-1]}" 19470
victoria-metrics -storageDataPath "$work/vm" -httpListenAddr 127.0.0.1:19428 -loggerLevel ERROR >/dev/null 2>&1 &
pids+=($!)
run victoria-metrics "${pids[-1]}" 19428
