#!/usr/bin/env python3
"""Select the capture window and drop the series of pods that are not this node's: other engineers'
containerd tests create short-lived pods under the same /kubepods on this shared machine, which
kahu reports (from cgroups) without CRI labels. The pods node.py made are read from node.log.
usage: prepare.py RAW_TARGET_DIR OUT_TARGET_DIR START_UNIX_S END_UNIX_S NODE_LOG"""
import os, re, sys
src, dst, start, end, nodelog = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
mine = {l.split()[5] for l in open(nodelog) if " pod up " in l}
pod = re.compile(r'/pod([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})')
os.makedirs(dst, exist_ok=True)
kept = dropped = files = 0
foreign = set()
for f in sorted(os.listdir(src)):
    t = int(f.split(".")[0]) / 1000
    if not (start <= t <= end):
        continue
    out = []
    for line in open(os.path.join(src, f)):
        m = pod.search(line)
        if m and m.group(1) not in mine:
            dropped += 1
            foreign.add(m.group(1))
            continue
        out.append(line)
        kept += 1
    open(os.path.join(dst, f), "w").write("".join(out))
    files += 1
print(f"{files} scrapes, {kept} lines kept, {dropped} lines of {len(foreign)} foreign pods dropped: {sorted(foreign)}")
