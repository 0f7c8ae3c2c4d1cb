#!/usr/bin/env python3
"""Sums a dhat heap profile's live bytes at exit by allocation site and prints the biggest,
per series: `benches/dhat-top.py <dhat json> <series> [sites]`. Written for head_memory_dhat."""
import json
import re
import sys

SKIP = ("dhat", "alloc/src/alloc.rs", "raw_vec", "__rust_alloc", "src/raw/alloc.rs")


def main():
    d = json.load(open(sys.argv[1]))
    n = int(sys.argv[2])
    top = int(sys.argv[3]) if len(sys.argv) > 3 else 12
    ftbl = d["ftbl"]
    pps = sorted((p for p in d["pps"] if p["eb"] > 0), key=lambda p: -p["eb"])
    total = sum(p["eb"] for p in pps)
    print(f"{total / n:8.1f} live bytes/series in total")
    for pp in pps[:top]:
        frames = [re.sub(r"^0x[0-9a-f]+: ", "", ftbl[i]) for i in pp["fs"]]
        frames = [f for f in frames if not any(s in f for s in SKIP)]
        own = [f for f in frames if "src/head/" in f or "src/chunk/" in f]
        where = (own[0] if own else frames[0] if frames else "?")[-110:]
        what = (frames[0] if frames else "?")[-90:]
        print(f"{pp['eb'] / n:8.1f} B {pp['ebk'] / n:5.2f} blocks  {where}  <- {what}")


main()
