#!/usr/bin/env python3
"""Scrape targets every 15 s at 7.5 s past kahu's wall-clock-aligned collection passes, so that
every scrape sees exactly the previous pass (kahu-workload capture scrapes on the 15 s boundary,
where it races the pass that starts at the same instant). Same layout: DIR/<name>/<unix-ms>.prom.
usage: scrape.py DIR UNTIL_UNIX_S name=url ..."""
import os, sys, time, urllib.request
d, until = sys.argv[1], float(sys.argv[2])
targets = [a.split("=", 1) for a in sys.argv[3:]]
for n, _ in targets:
    os.makedirs(os.path.join(d, n), exist_ok=True)
while True:
    now = time.time()
    nxt = (now // 15) * 15 + 7.5
    if nxt <= now:
        nxt += 15
    if nxt > until:
        break
    time.sleep(nxt - now)
    for n, url in targets:
        t = int(time.time() * 1000)
        try:
            req = urllib.request.Request(url, headers={"Accept": "text/plain;version=0.0.4"})
            body = urllib.request.urlopen(req, timeout=10).read()
            open(os.path.join(d, n, "%d.prom" % t), "wb").write(body)
        except Exception as e:
            print("scrape", n, e, file=sys.stderr, flush=True)
