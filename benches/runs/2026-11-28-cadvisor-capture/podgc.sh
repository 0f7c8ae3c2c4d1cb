#!/bin/bash
# kubelet's orphaned pod cgroup cleanup, which node.py lacks: every 20 s, remove the (empty) pod
# cgroups of pods node.py has removed.
while [ ! -e /tmp/storage2-cap/STOP ]; do
  for name in $(awk '/pod removed/ {print $5}' /tmp/storage2-cap/node.log); do
    uid=$(awk -v n="$name" '/pod up/ && $5==n {print $6}' /tmp/storage2-cap/node.log)
    [ -n "$uid" ] || continue
    for d in /sys/fs/cgroup/*/kubepods/*/pod$uid /sys/fs/cgroup/*/kubepods/pod$uid; do
      [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
    done
  done
  sleep 20
done
