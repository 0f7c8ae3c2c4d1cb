#!/usr/bin/env python3
"""A small real node for the cAdvisor capture: containerd + runc, CRI pods made as the kubelet
makes them (cgroupfs driver, QoS parents, kubelet labels), a kubelet-like restart loop with
CrashLoopBackOff, and a CronJob-like pod every 10 minutes.

usage: node.py up      (runs in the foreground until /tmp/storage2-cap/STOP exists, then cleans up)
       node.py down    (cleanup only)
Protobuf is hand-encoded (field numbers from runtime.v1 api.proto), as in reference/real-containers.md.
"""
import json, os, random, signal, subprocess, sys, time, uuid
import grpc

BASE = "/tmp/storage2-cap/ctr"
SOCK = BASE + "/run/containerd.sock"
STOP = "/tmp/storage2-cap/STOP"
BRIDGE = "kahu-cap0"
SUBNET = "10.214.77.0/24"
MKIMAGE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../../tests/containers/mkimage.sh")  # ran with the absolute path of the worktree
STATE = "/tmp/storage2-cap/node-state.json"
LOG = open("/tmp/storage2-cap/node.log", "a", buffering=1)


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, file=LOG)


# ---- protobuf wire format ---------------------------------------------------------------
def vi(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def s(f, v):
    v = v.encode() if isinstance(v, str) else v
    return vi(f << 3 | 2) + vi(len(v)) + v


def u(f, n):
    return vi(f << 3) + vi(n & 0xFFFFFFFFFFFFFFFF)


def mp(f, d):
    return b"".join(s(f, s(1, k) + s(2, v)) for k, v in d.items())


def varint(b, i):
    r = sh = 0
    while True:
        c = b[i]
        i += 1
        r |= (c & 0x7F) << sh
        sh += 7
        if c < 0x80:
            return r, i


def fields(b):
    i = 0
    while i < len(b):
        k, i = varint(b, i)
        f, t = k >> 3, k & 7
        if t == 0:
            v, i = varint(b, i)
        elif t == 2:
            n, i = varint(b, i)
            v = b[i : i + n]
            i += n
        elif t == 1:
            v = b[i : i + 8]
            i += 8
        elif t == 5:
            v = b[i : i + 4]
            i += 4
        else:
            raise ValueError(t)
        yield f, v


ch = None


def call(m, req, timeout=60):
    return ch.unary_unary(
        "/runtime.v1.RuntimeService/" + m, request_serializer=lambda x: x, response_deserializer=lambda x: x
    )(req, timeout=timeout)


# ---- the node's workload -------------------------------------------------------------------
IMAGES = {
    "pause": "localhost/kahu-pause:test",
    "sleeper": "registry.example.com/tools/sleeper:1.0",
    "burner": "registry.example.com/batch/cpu-burner:2.3.1",
    "leaky": "registry.example.com/shop/cart:4.7.0",
    "disk": "registry.example.com/data/ingest:0.9.12",
    "httpd": "registry.example.com/shop/catalog:1.4.2",
    "loadgen": "registry.example.com/tools/loadgen:0.3",
    "web": "registry.example.com/shop/frontend:2024.11.3",
    "sidecar": "registry.example.com/infra/envoy-lite:1.28",
    "flaky": "registry.example.com/shop/payments:3.0.0-rc1",
    "agent": "registry.example.com/infra/node-agent:5.2",
    "job": "registry.example.com/batch/report:1.1",
}

# pod: (name, namespace, qos, host_network, [(container, image key, script, cpu quota µs/100ms or 0, mem limit MiB or 0, restart)])
PODS = [
    ("sleeper-6c9d8b7f4d-qv2lx", "default", "besteffort", False,
     [("sleeper", "sleeper", "exec sleep 2147483647", 0, 0, "Always")]),
    ("cpu-burner-0", "batch", "guaranteed", False,
     [("burner", "burner", "while :; do :; done", 8000, 64, "Always")]),
    ("cart-7b5f9c8d6-m4ztp", "shop", "burstable", False,
     [("cart", "leaky",
       "c=$(busybox head -c 1048576 /dev/zero | busybox tr '\\000' x); a=; "
       "while :; do a=\"$a$c\"; sleep 15; done", 5000, 96, "Always")]),
    ("ingest-5d7c6b9f8-h8kqw", "data", "burstable", False,
     [("ingest", "disk",
       "while :; do n=$((RANDOM % 24 + 1)); dd if=/dev/zero of=/data.bin bs=256k count=$n conv=fsync 2>/dev/null; "
       "dd if=/data.bin of=/dev/null bs=256k 2>/dev/null; sleep $((RANDOM % 10 + 5)); done", 10000, 128, "Always")]),
    ("catalog-7f9c6d5b8-x2k4p", "shop", "burstable", False,
     [("catalog", "httpd",
       "mkdir -p /www; dd if=/dev/urandom of=/www/item bs=1k count=48 2>/dev/null; echo ok > /www/healthz; "
       "exec busybox httpd -f -p 8080 -h /www", 10000, 64, "Always")]),
    ("loadgen-84f6d9c7b-9rjtn", "shop", "burstable", False,
     [("loadgen", "loadgen",
       "while :; do busybox wget -q -O /dev/null http://CATALOG_IP:8080/item; sleep $((RANDOM % 3 + 1)); done",
       5000, 32, "Always")]),
    ("frontend-5b8d7f6c9-tw7bd", "shop", "burstable", False,
     [("frontend", "web",
       "mkdir -p /www; dd if=/dev/urandom of=/www/index.html bs=1k count=8 2>/dev/null; "
       "exec busybox httpd -f -p 80 -h /www", 5000, 64, "Always"),
      ("envoy", "sidecar",
       "while :; do busybox wget -q -O /dev/null http://127.0.0.1:80/index.html; "
       "busybox wget -q -O /dev/null http://CATALOG_IP:8080/healthz; sleep 10; done", 5000, 48, "Always")]),
    ("payments-69d8f7b5c4-kp3zs", "shop", "besteffort", False,
     [("payments", "flaky", "echo starting; sleep $((RANDOM % 20 + 10)); echo 'panic: boom' >&2; exit 1",
       0, 0, "Always")]),
    ("node-agent-xk29f", "kube-system", "burstable", True,
     [("agent", "agent", "while :; do cat /proc/stat /proc/meminfo /proc/net/dev > /dev/null; sleep 5; done",
       5000, 32, "Always")]),
]

JOB = ("report", "batch", "burstable", False,
       [("report", "job",
         "i=0; while [ $i -lt 30 ]; do dd if=/dev/urandom of=/tmp/x bs=64k count=16 2>/dev/null; "
         "busybox md5sum /tmp/x > /dev/null; i=$((i+1)); sleep 1; done", 10000, 64, "Never")])


def cgroup_parent(qos, uid):
    return f"/kubepods/pod{uid}" if qos == "guaranteed" else f"/kubepods/{qos}/pod{uid}"


def sandbox_config(name, ns, uid, qos, hostnet):
    labels = {"io.kubernetes.pod.name": name, "io.kubernetes.pod.namespace": ns, "io.kubernetes.pod.uid": uid,
              "app": name.split("-")[0]}
    nsopt = u(1, 2) if hostnet else b""
    return (s(1, s(1, name) + s(2, uid) + s(3, ns) + u(4, 0))
            + (b"" if hostnet else s(2, name))
            + s(3, f"{BASE}/logs/{uid}")
            + mp(6, labels)
            + s(8, s(1, cgroup_parent(qos, uid)) + s(2, s(1, nsopt))))


def create_container(pod, spec, attempt, catalog_ip):
    cname, img, script, quota, mem, _ = spec
    script = script.replace("CATALOG_IP", catalog_ip or "127.0.0.1")
    res = b""
    if quota:
        res += u(1, 100000) + u(2, quota) + u(3, max(2, quota * 1024 // 100000))
    else:
        res += u(3, 2)
    if mem:
        res += u(4, mem << 20)
    labels = {"io.kubernetes.container.name": cname, "io.kubernetes.pod.name": pod["name"],
              "io.kubernetes.pod.namespace": pod["ns"], "io.kubernetes.pod.uid": pod["uid"]}
    cfg = (s(1, s(1, cname) + u(2, attempt))
           + s(2, s(1, IMAGES[img]))
           + s(3, "sh") + s(4, "-c") + s(4, script)
           + mp(9, labels)
           + mp(10, {"io.kubernetes.container.restartCount": str(attempt)})
           + s(11, f"{cname}/{attempt}.log")
           + s(15, s(1, res)))
    cid = dict(fields(call("CreateContainer", s(1, pod["sandbox"]) + s(2, cfg) + s(3, pod["cfg"]))))[1].decode()
    call("StartContainer", s(1, cid))
    return cid


def run_pod(p, catalog_ip=None, suffix=""):
    name, ns, qos, hostnet, specs = p
    name = name + suffix
    uid = str(uuid.uuid4())
    cfg = sandbox_config(name, ns, uid, qos, hostnet)
    sb = dict(fields(call("RunPodSandbox", s(1, cfg))))[1].decode()
    pod = {"name": name, "ns": ns, "uid": uid, "qos": qos, "cfg": cfg, "sandbox": sb, "containers": {}}
    for spec in specs:
        cid = create_container(pod, spec, 0, catalog_ip)
        pod["containers"][spec[0]] = {"spec": spec, "id": cid, "attempt": 0, "started": time.time(),
                                      "backoff": 10, "next": None, "done": False}
    log("pod up", ns, name, uid, {k: v["id"][:12] for k, v in pod["containers"].items()})
    return pod


def pod_ip(sandbox):
    st = dict(fields(call("PodSandboxStatus", s(1, sandbox))))
    status = dict(fields(st[1]))
    net = dict(fields(status.get(5, b"")))  # PodSandboxStatus.network = 5 (PodSandboxNetworkStatus{ip=1})
    return net.get(1, b"").decode()


def container_states():
    out = {}
    for f, c in fields(call("ListContainers", b"")):
        d = dict(fields(c))
        out[d[1].decode()] = d.get(6, 0)  # 0 created, 1 running, 2 exited
    return out


def remove_pod(pod):
    for c in pod["containers"].values():
        try:
            call("StopContainer", s(1, c["id"]) + u(2, 1))
            call("RemoveContainer", s(1, c["id"]))
        except grpc.RpcError as e:
            log("remove container", c["id"][:12], e.code())
    try:
        call("StopPodSandbox", s(1, pod["sandbox"]))
        call("RemovePodSandbox", s(1, pod["sandbox"]))
    except grpc.RpcError as e:
        log("remove sandbox", pod["sandbox"][:12], e.code())
    log("pod removed", pod["ns"], pod["name"])


def ctr(*args, check=True):
    return subprocess.run(["ctr", "-a", SOCK, *args], check=check, capture_output=True, text=True)


def up():
    global ch
    for d in ["root", "state", "run", "runc", "logs", "cni/conf", "cni/ipam"]:
        os.makedirs(f"{BASE}/{d}", exist_ok=True)
    prestate = {"ip_forward": open("/proc/sys/net/ipv4/ip_forward").read().strip(),
                "run_containerd": os.path.exists("/run/containerd")}
    json.dump(prestate, open(f"{BASE}/prestate.json", "w"))
    open(f"{BASE}/cni/conf/10-kahu-cap.conflist", "w").write(json.dumps({
        "cniVersion": "1.0.0", "name": "kahu-cap", "plugins": [
            {"type": "bridge", "bridge": BRIDGE, "isGateway": True, "ipMasq": False,
             "ipam": {"type": "host-local", "ranges": [[{"subnet": SUBNET}]], "dataDir": f"{BASE}/cni/ipam"}},
            {"type": "loopback"}]}))
    open(f"{BASE}/config.toml", "w").write(f"""version = 2
root = "{BASE}/root"
state = "{BASE}/state"
[grpc]
  address = "{SOCK}"
[ttrpc]
  address = "{SOCK}.ttrpc"
[metrics]
  address = ""
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{IMAGES['pause']}"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "{BASE}/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{BASE}/cni/conf"
    max_conf_num = 1
""")
    proc = subprocess.Popen(["containerd", "--config", f"{BASE}/config.toml"], cwd="/",
                            stdout=subprocess.DEVNULL, stderr=open(f"{BASE}/containerd.log", "w"))
    open(f"{BASE}/containerd.pid", "w").write(str(proc.pid))
    for _ in range(200):
        if ctr("version", check=False).returncode == 0:
            break
        time.sleep(0.1)
    log("containerd up, pid", proc.pid)
    subprocess.run(["sh", MKIMAGE, f"{BASE}/img"], check=True, capture_output=True)
    ctr("-n", "k8s.io", "images", "import", f"{BASE}/img/busybox-oci.tar")
    for k, ref in IMAGES.items():
        if k != "pause":
            ctr("-n", "k8s.io", "images", "tag", "localhost/kahu-busybox:test", ref)
    ch = grpc.insecure_channel("unix://" + SOCK)
    # kubelet's QoS cgroups
    for h in os.listdir("/sys/fs/cgroup"):
        for q in ["kubepods", "kubepods/burstable", "kubepods/besteffort"]:
            try:
                os.makedirs(f"/sys/fs/cgroup/{h}/{q}", exist_ok=True)
            except OSError:
                pass
    pods = []
    catalog_ip = None
    for p in PODS:
        pod = run_pod(p, catalog_ip)
        pods.append(pod)
        if p[0].startswith("catalog"):
            catalog_ip = pod_ip(pod["sandbox"])
            log("catalog ip", catalog_ip)
    json.dump({"pods": [x["sandbox"] for x in pods]}, open(STATE, "w"))
    next_job = time.time() + 120
    jobs = []
    try:
        while not os.path.exists(STOP):
            time.sleep(2)
            states = container_states()
            now = time.time()
            for pod in pods + jobs:
                for c in pod["containers"].values():
                    if c["done"]:
                        continue
                    st = states.get(c["id"], 2)
                    if st != 2:
                        continue
                    if c["spec"][5] == "Never":
                        c["done"] = True
                        pod["finished"] = now
                        log("job container exited", pod["name"])
                        continue
                    if c["next"] is None:
                        ran = now - c["started"]
                        if ran > 600:
                            c["backoff"] = 10
                        c["next"] = now + c["backoff"]
                        log("exited", pod["name"], c["spec"][0], "attempt", c["attempt"], "ran %.0fs" % ran,
                            "restart in", c["backoff"])
                        c["backoff"] = min(c["backoff"] * 2, 300)
                    elif now >= c["next"]:
                        old = c["id"]
                        try:
                            call("RemoveContainer", s(1, old))
                        except grpc.RpcError as e:
                            log("remove old", old[:12], e.code())
                        c["attempt"] += 1
                        c["id"] = create_container(pod, c["spec"], c["attempt"], catalog_ip)
                        c["started"] = now
                        c["next"] = None
                        log("restarted", pod["name"], c["spec"][0], "attempt", c["attempt"], c["id"][:12])
            for j in list(jobs):
                if "finished" in j and now - j["finished"] > 60:
                    remove_pod(j)
                    jobs.remove(j)
            if now >= next_job:
                next_job = now + 600
                jobs.append(run_pod(JOB, catalog_ip, suffix="-%d-%s" % (int(now) // 60,
                                    "".join(random.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5)))))
    finally:
        for pod in pods + jobs:
            remove_pod(pod)
        down()


def kill_tree(path):
    for root, dirs, files in os.walk(path, topdown=False):
        try:
            for pid in open(os.path.join(root, "cgroup.procs")).read().split():
                os.kill(int(pid), signal.SIGKILL)
        except (OSError, ValueError):
            pass


def rmdirs(path):
    for root, dirs, files in os.walk(path, topdown=False):
        try:
            os.rmdir(root)
        except OSError:
            pass


def down():
    global ch
    if ch is None and os.path.exists(SOCK):
        ch = grpc.insecure_channel("unix://" + SOCK)
    if ch is not None:
        try:
            for f, c in fields(call("ListContainers", b"", timeout=10)):
                cid = dict(fields(c))[1].decode()
                try:
                    call("StopContainer", s(1, cid) + u(2, 1))
                    call("RemoveContainer", s(1, cid))
                except grpc.RpcError:
                    pass
            for f, c in fields(call("ListPodSandbox", b"", timeout=10)):
                sid = dict(fields(c))[1].decode()
                try:
                    call("StopPodSandbox", s(1, sid))
                    call("RemovePodSandbox", s(1, sid))
                except grpc.RpcError:
                    pass
        except grpc.RpcError as e:
            log("down: CRI", e.code())
    try:
        pid = int(open(f"{BASE}/containerd.pid").read())
        os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            os.kill(pid, 0)
            time.sleep(0.1)
    except (OSError, ValueError):
        pass
    subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True)
    try:
        pre = json.load(open(f"{BASE}/prestate.json"))
        open("/proc/sys/net/ipv4/ip_forward", "w").write(pre["ip_forward"] + "\n")
    except (OSError, ValueError):
        pre = {"run_containerd": True}
    # only our pods' cgroups (by uid in the state file is not kept: pods were removed above; sweep
    # empty cgroups left under the QoS parents, never a non-empty one)
    for h in os.listdir("/sys/fs/cgroup"):
        rmdirs(f"/sys/fs/cgroup/{h}/kubepods")
    rmdirs("/sys/fs/cgroup/kubepods")
    if not pre.get("run_containerd", True):
        rmdirs("/run/containerd")
    mounts = [l.split()[1] for l in open("/proc/mounts") if f" {BASE}/" in l]
    for m in sorted(mounts, reverse=True):
        subprocess.run(["umount", "-l", m])
    subprocess.run(["rm", "-rf", BASE])
    log("down done")


if __name__ == "__main__":
    if sys.argv[1] == "up":
        up()
    else:
        down()
