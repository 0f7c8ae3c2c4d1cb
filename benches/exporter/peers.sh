#!/usr/bin/env bash
# Side-by-side runs for the exporter, measured in the same run on the same machine:
#  1. CPU per scrape of the node families: kahu (node collectors only, one collection pass per
#     scrape) vs the Debian prometheus-node-exporter restricted to the same collectors.
#  2. Peak RSS and CPU of `kahu serve` collecting a synthetic node with 220 containers
#     (110 pods × (sandbox + 1 container)), all collectors on, every second.
# usage: benches/exporter/peers.sh [SECONDS]   (as root; needs prometheus-node-exporter, curl)
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${1:-60}
cargo build --release -q -p kahu -p kahu-benches --bin kahu --bin kahu-synth-node
KAHU=target/release/kahu
NE=$(command -v prometheus-node-exporter)
TMP=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$TMP"' EXIT
HZ=$(getconf CLK_TCK)

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hwm_kb() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }
wait_port() { for _ in $(seq 1 100); do curl -sf -o /dev/null "http://$1$2" && return 0; sleep 0.1; done; return 1; }

# scrape URL once per second for SECS seconds; print CPU seconds of PID over that time
measure() {
  local pid=$1 url=$2 t0 t1 bytes=0
  t0=$(cpu_ticks "$pid")
  for _ in $(seq 1 "$SECS"); do
    bytes=$(curl -s -H 'Accept-Encoding: identity' "$url" | wc -c)
    sleep 1
  done
  t1=$(cpu_ticks "$pid")
  echo "$(( t1 - t0 )) $bytes"
}

# node_exporter, only the collectors kahu implements
NE_FLAGS="--collector.disable-defaults --collector.cpu --collector.stat --collector.meminfo --collector.loadavg \
  --collector.filesystem --collector.diskstats --collector.netdev --collector.pressure --collector.uname \
  --collector.time --collector.vmstat --collector.filefd"
$NE --web.listen-address=127.0.0.1:19171 $NE_FLAGS >/dev/null 2>&1 &
NE_PID=$!
wait_port 127.0.0.1:19171 /metrics
curl -s -o /dev/null http://127.0.0.1:19171/metrics
read -r ne_ticks ne_bytes < <(measure $NE_PID http://127.0.0.1:19171/metrics)
kill $NE_PID; wait $NE_PID 2>/dev/null || true

$KAHU serve --data-dir "$TMP/kahu-node" --listen 127.0.0.1:19172 --collect.interval 1s --runtime.endpoint '' \
  --collector.disable cgroup,machine --log.level warn >/dev/null 2>&1 &
K_PID=$!
wait_port 127.0.0.1:19172 /-/ready
sleep 2
read -r k_ticks k_bytes < <(measure $K_PID http://127.0.0.1:19172/metrics)
kill $K_PID; wait $K_PID 2>/dev/null || true

echo "# node families, ${SECS} scrapes at 1/s (kahu: one collection pass per second + the scrape; includes its TSDB appends)"
echo "node_exporter $(prometheus-node-exporter --version 2>&1 | head -1 | awk '{print $3}'): cpu_seconds=$(echo "scale=3; $ne_ticks/$HZ" | bc) per_scrape_ms=$(echo "scale=2; 1000*$ne_ticks/$HZ/$SECS" | bc) body_bytes=$ne_bytes"
echo "kahu: cpu_seconds=$(echo "scale=3; $k_ticks/$HZ" | bc) per_scrape_ms=$(echo "scale=2; 1000*$k_ticks/$HZ/$SECS" | bc) body_bytes=$k_bytes"
if [ "$ne_ticks" -gt 0 ]; then echo "ratio kahu/node_exporter CPU: $(echo "scale=3; $k_ticks/$ne_ticks" | bc)"; fi

# 220 containers
target/release/kahu-synth-node "$TMP/node" 110 1 >/dev/null
$KAHU serve --data-dir "$TMP/kahu-220" --listen 127.0.0.1:19173 --collect.interval 1s --runtime.endpoint '' \
  --path.procfs "$TMP/node/proc" --path.sysfs "$TMP/node/sys" --path.rootfs "$TMP/node/root" --log.level warn >/dev/null 2>&1 &
K_PID=$!
wait_port 127.0.0.1:19173 /-/ready
read -r c_ticks c_bytes < <(measure $K_PID http://127.0.0.1:19173/metrics/cadvisor)
series=$(curl -s http://127.0.0.1:19173/metrics | grep -vc '^#')
echo "# kahu serve, synthetic node with 220 containers, all collectors, collection every 1s, /metrics/cadvisor scraped every 1s for ${SECS}s"
echo "kahu_220: peak_rss_kib=$(hwm_kb $K_PID) cpu_seconds=$(echo "scale=3; $c_ticks/$HZ" | bc) cpu_ms_per_pass=$(echo "scale=2; 1000*$c_ticks/$HZ/$SECS" | bc) cadvisor_body_bytes=$c_bytes metrics_series=$series"
kill $K_PID; wait $K_PID 2>/dev/null || true
