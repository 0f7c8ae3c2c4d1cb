#!/usr/bin/env python3
"""A few named series of the capture: per-step increment mean and coefficient of variation."""
import os, re, statistics, sys
d = sys.argv[1]
want = [
    ("cpu burner (0.08 CPU quota)", "container_cpu_usage_seconds_total", 'container="burner"'),
    ("cpu of / (whole machine)", "container_cpu_usage_seconds_total", 'id="/"'),
    ("cpu of catalog httpd", "container_cpu_usage_seconds_total", 'container="catalog"'),
    ("cpu of sleeper", "container_cpu_usage_seconds_total", 'container="sleeper"'),
    ("throttled periods burner", "container_cpu_cfs_throttled_periods_total", 'container="burner"'),
    ("working set cart (leak)", "container_memory_working_set_bytes", 'container="cart"'),
    ("working set catalog", "container_memory_working_set_bytes", 'container="catalog"'),
    ("working set of /", "container_memory_working_set_bytes", 'id="/"'),
    ("rx bytes loadgen pod", "container_network_receive_bytes_total", 'pod="loadgen'),
    ("tx bytes catalog pod", "container_network_transmit_bytes_total", 'pod="catalog'),
    ("rx bytes frontend pod", "container_network_receive_bytes_total", 'pod="frontend'),
]
series = {}
for f in sorted(os.listdir(d)):
    for line in open(os.path.join(d, f)):
        for label, name, sel in want:
            if line.startswith(name + "{") and sel in line and ('container=""' not in line or 'container=' not in sel):
                if name.startswith("container_network") and 'interface="eth0"' not in line:
                    continue
                key = (label, line.rsplit(" ", 1)[0])
                series.setdefault(key, []).append(float(line.rsplit(" ", 1)[1]))
seen = set()
for (label, key), vals in sorted(series.items(), key=lambda kv: -len(kv[1])):
    if label in seen:
        continue
    seen.add(label)
    deltas = [b - a for a, b in zip(vals, vals[1:])]
    pos = [x for x in deltas if x >= 0]
    m = statistics.mean(pos) if pos else 0
    cv = statistics.pstdev(pos) / m if m else float("nan")
    zero = sum(1 for x in deltas if x == 0) / max(len(deltas), 1)
    print(f"{label:32s} n={len(vals):4d} first={vals[0]:.12g} last={vals[-1]:.12g} mean_step={m:.6g} cv={cv:.2f} zero_steps={zero:.2f} drops={sum(1 for x in deltas if x < 0)}")
