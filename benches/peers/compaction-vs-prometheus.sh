#!/usr/bin/env bash
# Block compaction, kahu vs Prometheus, measured in the same run: each server gets the same
# generated samples (kahu-workload, seed 42) through remote write 1.0, persists its head into
# 2 h blocks, and then compacts the three 2 h blocks of one 6 h window into a 6 h block. The
# compaction is timed by each server itself:
# - Prometheus: the `duration` of its `msg="compact blocks"` log line (LeveledCompactor.Compact:
#   open the sources, merge, encode, fsync, rename; not the deletion of the sources);
# - kahu: the `duration` of its `blocks compacted` log line (from the plan to the new block
#   written, fsynced, renamed and opened; not the deletion of the sources).
# The servers run one after the other, never together.
#
#   CARGO_INCREMENTAL=0 cargo build --release -p kahu -p kahu-benches --bins
#   benches/peers/compaction-vs-prometheus.sh [SERIES] [RUNS]      (defaults: 2000 2)
#
# How the compaction is isolated from ingestion:
# 1. push [S, S+8h) (S the next 6 h boundary from now, in the future: kahu serve stores its own
#    collected samples at start-up and, as Prometheus, rejects samples an hour older than the
#    newest); each server persists [S,S+2h), [S+2h,S+4h), [S+4h,S+6h) as 2 h blocks, and neither
#    planner merges them while the newest of them is the newest block;
# 2. once the three blocks are on disk, push a few samples at S+9h15m: the head spans more than
#    3 h, [S+6h,S+8h) is persisted as a fourth block, and kahu's planner merges the first three.
#    Prometheus' planner does not yet: its head blocks start at their first sample (S+5s), so
#    the three do not span the whole 6 h window, and it waits for a block starting after the
#    window; so for Prometheus alone
# 3. push a few samples at S+12h30m: [S+8h,S+10h) is persisted as a fifth block, and Prometheus
#    merges the first three.
# In both cases the compaction runs with no ingestion going on.
# Prints CSV on stdout: run,system,samples,seconds,samples_per_second,load1,load5,load15
set -euo pipefail
cd "$(dirname "$0")/../.."
series=${1:-2000}
runs=${2:-2}
bin=target/release
for b in kahu kahu-workload; do [ -x "$bin/$b" ] || { echo "build $bin/$b first" >&2; exit 1; }; done
command -v prometheus >/dev/null || { echo "prometheus not installed (apt-get install prometheus)" >&2; exit 1; }
# Ports away from the defaults (9090, 9470) and from other runs on this machine.
PROM_PORT=${PROM_PORT:-29391}
KAHU_PORT=${KAHU_PORT:-29392}
H=3600000
now=$(date +%s%3N)
S=$(( (now / (6 * H) + 1) * 6 * H ))
work=$(mktemp -d /tmp/kahu-compaction.XXXXXX)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 1' INT TERM

# A port already taken would send the samples to someone else's server: refuse to run.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null || { echo "port $1 is in use; set ${2}_PORT" >&2; exit 1; }; }
wait_http() { for _ in $(seq 1 300); do curl -sf "$1" >/dev/null && return 0; sleep 0.2; done; echo "$1 did not come up" >&2; return 1; }
push() { # port series start_ms duration
  "$bin/kahu-workload" push --url "http://127.0.0.1:$1/api/v1/write" --series "$2" --start-ms "$3" \
    --duration "$4" --seed 42 >&2
}
# Blocks of dir $1: "<in [S, S+6h)> <their samples> <from S on>".
blocks_in_window() {
  python3 - "$1" "$S" "$((S + 6 * H))" <<'PY'
import json, os, sys
d, lo, hi = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
n = s = after = 0
for e in os.listdir(d):
    p = os.path.join(d, e, "meta.json")
    if len(e) == 26 and os.path.isfile(p):
        m = json.load(open(p))
        after += m["minTime"] >= lo
        if m["minTime"] >= lo and m["maxTime"] <= hi:
            n += 1
            s += m["stats"]["numSamples"]
print(n, s, after)
PY
}
wait_for() { # seconds description command...
  local secs=$1 what=$2; shift 2
  for _ in $(seq 1 "$secs"); do "$@" && return 0; sleep 1; done
  echo "timed out after ${secs}s waiting for $what" >&2; return 1
}
three_blocks() { [ "$(blocks_in_window "$1" | cut -d' ' -f1)" -ge 3 ]; }
one_block() { [ "$(blocks_in_window "$1" | cut -d' ' -f1)" -eq 1 ]; }
blocks_from_s() { [ "$(blocks_in_window "$1" | cut -d' ' -f3)" -ge "$2" ]; }
# "seconds samples" from the compaction log line of $2 (prometheus|kahu) in log $1.
parse_log() {
  python3 - "$1" "$2" <<'PY'
import re, sys
log, system = sys.argv[1], sys.argv[2]
msg = 'msg="compact blocks"' if system == "prometheus" else 'blocks compacted'
lines = [l for l in open(log) if msg in l]
if len(lines) != 1:
    sys.exit(f"{log}: {len(lines)} compaction lines, want 1")
l = lines[0]
def secs(d):  # Go and Rust Debug durations: 1m2.5s, 1.25s, 850.1ms, 12µs
    units = {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "µs": 1e-6, "us": 1e-6, "ns": 1e-9}
    parts = re.findall(r"([0-9.]+)(h|ms|m|s|µs|us|ns)", d)
    if not parts or "".join(a + b for a, b in parts) != d:
        sys.exit(f"cannot parse duration {d!r}")
    return sum(float(a) * units[b] for a, b in parts)
d = re.search(r'\bduration="?([^"\s]+)"?', l)
if not d:
    sys.exit(f"no duration in {l!r}")
n = re.search(r'\bcount=(\d+)|\bsources=(\d+)', l)
if not n or int(n.group(1) or n.group(2)) != 3:
    sys.exit(f"not a compaction of 3 blocks: {l!r}")
print(secs(d.group(1)))
PY
}

run_one() { # run system
  local r=$1 system=$2 dir="$work/$2-$1" log="$work/$2-$1.log" port
  if [ "$system" = prometheus ]; then
    port=$PROM_PORT
    port_free "$port" PROM
    : >"$work/prometheus.yml"
    prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$dir" \
      --web.listen-address="127.0.0.1:$port" --web.enable-remote-write-receiver \
      --storage.tsdb.retention.time=100y --log.level=info >"$log" 2>&1 &
  else
    port=$KAHU_PORT
    port_free "$port" KAHU
    "$bin/kahu" serve --data-dir "$dir" --listen "127.0.0.1:$port" --collect.interval 1h \
      --log.level info >"$log" 2>&1 &
  fi
  pid=$!
  wait_http "http://127.0.0.1:$port/-/ready"
  kill -0 "$pid" || { echo "$system did not start: $(tail -3 "$log")" >&2; exit 1; }
  push "$port" "$series" $((S + 1000)) 8h
  # kahu persists in its maintenance pass (every 60 s), Prometheus on commit.
  wait_for 300 "$system: three 2 h blocks" three_blocks "$dir"
  local load; load=$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' ,)
  push "$port" 1 $((S + 9 * H + 15 * 60000)) 15s
  if [ "$system" = prometheus ]; then
    wait_for 300 "$system: the fourth block" blocks_from_s "$dir" 4
    push "$port" 1 $((S + 12 * H + 30 * 60000)) 15s
  fi
  wait_for 300 "$system: the 6 h block" one_block "$dir"
  sleep 2   # the log line follows the rename
  kill -TERM "$pid"; wait "$pid" || true; pid=""
  local secs samples
  secs=$(parse_log "$log" "$system")
  samples=$(blocks_in_window "$dir" | cut -d' ' -f2)
  python3 -c "print('$r,$system,$samples,%.3f,%.0f,$load' % ($secs, $samples / $secs))"
  rm -rf "$dir"
}

echo "run,system,samples,seconds,samples_per_second,load1,load5,load15"
for r in $(seq 1 "$runs"); do
  run_one "$r" prometheus
  run_one "$r" kahu
done
