//! A real containerd (Debian's containerd + runc) with CRI pods, as the kubelet makes them, for the
//! container exporter tests. The recipe is `reference/real-containers.md`: containerd on a private
//! socket and state directory under a temp dir, a busybox image built locally (no registry),
//! pods made through the CRI API (`runtime.v1.RuntimeService`), cgroupfs driver.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use kahu_exporter::runtime::grpc::Client;
use prost::Message;

#[derive(Clone, PartialEq, Message)]
struct PodSandboxMetadata {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(string, tag = "2")]
    uid: String,
    #[prost(string, tag = "3")]
    namespace: String,
    #[prost(uint32, tag = "4")]
    attempt: u32,
}

#[derive(Clone, PartialEq, Message)]
struct NamespaceOption {
    /// 0 POD, 1 CONTAINER, 2 NODE.
    #[prost(int32, tag = "1")]
    network: i32,
}

#[derive(Clone, PartialEq, Message)]
struct LinuxSandboxSecurityContext {
    #[prost(message, optional, tag = "1")]
    namespace_options: Option<NamespaceOption>,
}

#[derive(Clone, PartialEq, Message)]
struct LinuxPodSandboxConfig {
    #[prost(string, tag = "1")]
    cgroup_parent: String,
    #[prost(message, optional, tag = "2")]
    security_context: Option<LinuxSandboxSecurityContext>,
}

#[derive(Clone, PartialEq, Message)]
struct PodSandboxConfig {
    #[prost(message, optional, tag = "1")]
    metadata: Option<PodSandboxMetadata>,
    #[prost(string, tag = "2")]
    hostname: String,
    #[prost(string, tag = "3")]
    log_directory: String,
    #[prost(map = "string, string", tag = "6")]
    labels: HashMap<String, String>,
    #[prost(message, optional, tag = "8")]
    linux: Option<LinuxPodSandboxConfig>,
}

#[derive(Clone, PartialEq, Message)]
struct RunPodSandboxRequest {
    #[prost(message, optional, tag = "1")]
    config: Option<PodSandboxConfig>,
}

#[derive(Clone, PartialEq, Message)]
struct IdResponse {
    #[prost(string, tag = "1")]
    id: String,
}

#[derive(Clone, PartialEq, Message)]
struct ContainerMetadata {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(uint32, tag = "2")]
    attempt: u32,
}

#[derive(Clone, PartialEq, Message)]
struct ImageSpec {
    #[prost(string, tag = "1")]
    image: String,
}

#[derive(Clone, PartialEq, Message)]
struct LinuxContainerResources {
    #[prost(int64, tag = "1")]
    cpu_period: i64,
    #[prost(int64, tag = "2")]
    cpu_quota: i64,
    #[prost(int64, tag = "3")]
    cpu_shares: i64,
    #[prost(int64, tag = "4")]
    memory_limit_in_bytes: i64,
}

#[derive(Clone, PartialEq, Message)]
struct LinuxContainerConfig {
    #[prost(message, optional, tag = "1")]
    resources: Option<LinuxContainerResources>,
}

#[derive(Clone, PartialEq, Message)]
struct ContainerConfig {
    #[prost(message, optional, tag = "1")]
    metadata: Option<ContainerMetadata>,
    #[prost(message, optional, tag = "2")]
    image: Option<ImageSpec>,
    #[prost(string, repeated, tag = "3")]
    command: Vec<String>,
    #[prost(string, repeated, tag = "4")]
    args: Vec<String>,
    #[prost(map = "string, string", tag = "9")]
    labels: HashMap<String, String>,
    #[prost(string, tag = "11")]
    log_path: String,
    #[prost(message, optional, tag = "15")]
    linux: Option<LinuxContainerConfig>,
}

#[derive(Clone, PartialEq, Message)]
struct CreateContainerRequest {
    #[prost(string, tag = "1")]
    pod_sandbox_id: String,
    #[prost(message, optional, tag = "2")]
    config: Option<ContainerConfig>,
    #[prost(message, optional, tag = "3")]
    sandbox_config: Option<PodSandboxConfig>,
}

#[derive(Clone, PartialEq, Message)]
struct StopRequest {
    #[prost(string, tag = "1")]
    id: String,
    #[prost(int64, tag = "2")]
    timeout: i64,
}

/// A container to run in a pod.
pub struct Spec {
    pub name: &'static str,
    pub script: &'static str,
    /// CPU quota in µs per 100 ms period (10000 = 0.1 CPU).
    pub cpu_quota: i64,
}

/// A pod made through CRI.
#[derive(Debug, Clone)]
#[allow(dead_code, reason = "kept for diagnostics in assertion messages")]
pub struct Pod {
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub sandbox_id: String,
    pub containers: Vec<(String, String)>,
}

/// containerd running with a private root, state and socket; stopped and cleaned on drop.
pub struct Containerd {
    pub base: PathBuf,
    pub socket: PathBuf,
    child: Child,
    client: Client,
    ip_forward: String,
    run_containerd_existed: bool,
    /// UIDs of the pods made, whose cgroups are removed on drop.
    pods: std::sync::Mutex<Vec<String>>,
}

pub const IMAGE: &str = "localhost/kahu-busybox:test";
pub const PAUSE_IMAGE: &str = "localhost/kahu-pause:test";

/// Why the real-container test cannot run here, or `None` when it can.
pub fn unsupported() -> Option<String> {
    // SAFETY-free check of the effective uid through /proc.
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("");
    if uid != "0" {
        return Some(format!("not root (euid {uid})"));
    }
    let probe = Path::new("/sys/fs/cgroup/kahu-write-probe");
    let probe = if Path::new("/sys/fs/cgroup/cpu").is_dir() {
        Path::new("/sys/fs/cgroup/cpu/kahu-write-probe")
    } else {
        probe
    };
    match std::fs::create_dir(probe) {
        Ok(()) => {
            let _ = std::fs::remove_dir(probe);
            None
        }
        Err(e) => Some(format!("cgroups are not writable ({}: {e})", probe.display())),
    }
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Containerd {
    /// Starts containerd and imports the busybox and pause images.
    pub fn start() -> Containerd {
        for (prog, pkg) in [("containerd", "containerd"), ("runc", "runc"), ("ctr", "containerd")] {
            crate::harness::require_program(prog, pkg);
        }
        assert!(
            Path::new("/bin/busybox").is_file(),
            "/bin/busybox missing: install busybox-static (scripts/test does)"
        );
        assert!(
            Path::new("/usr/lib/cni/bridge").is_file(),
            "CNI plugins missing: install containernetworking-plugins"
        );
        let base = PathBuf::from(format!("/tmp/kahu-ctr-{}", std::process::id()));
        for d in ["root", "state", "run", "runc", "logs", "cni/conf", "cni/ipam"] {
            std::fs::create_dir_all(base.join(d)).unwrap();
        }
        let socket = base.join("run/containerd.sock");
        let b = base.display();
        std::fs::write(
            base.join("cni/conf/10-kahu.conflist"),
            format!(
                r#"{{"cniVersion":"1.0.0","name":"kahu-test","plugins":[
 {{"type":"bridge","bridge":"kahu-br{id}","isGateway":true,"ipMasq":false,
  "ipam":{{"type":"host-local","ranges":[[{{"subnet":"10.213.{net}.0/24"}}]],"dataDir":"{b}/cni/ipam"}}}},
 {{"type":"loopback"}}]}}"#,
                id = std::process::id() % 10000,
                net = std::process::id() % 250
            ),
        )
        .unwrap();
        std::fs::write(
            base.join("config.toml"),
            format!(
                r#"version = 2
root = "{b}/root"
state = "{b}/state"
[grpc]
  address = "{b}/run/containerd.sock"
[ttrpc]
  address = "{b}/run/containerd.sock.ttrpc"
[metrics]
  address = ""
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
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
        Root = "{b}/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{b}/cni/conf"
    max_conf_num = 1
"#
            ),
        )
        .unwrap();
        let ip_forward =
            std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap_or_else(|_| "0\n".into());
        let run_containerd_existed = Path::new("/run/containerd").exists();
        let log = std::fs::File::create(base.join("containerd.log")).unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(base.join("config.toml"))
            .current_dir("/")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start containerd");
        let client = Client::new(&socket, Duration::from_secs(60)).unwrap();
        let mut ctr = Containerd {
            base,
            socket,
            child,
            client,
            ip_forward,
            run_containerd_existed,
            pods: std::sync::Mutex::new(Vec::new()),
        };
        let mut up = false;
        for _ in 0..200 {
            if ctr.ctr(&["version"]).status().is_ok_and(|s| s.success()) {
                up = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(
            up,
            "containerd did not answer in 20s; log: {}",
            std::fs::read_to_string(ctr.base.join("containerd.log")).unwrap_or_default()
        );
        reserve_cpu_for_pods();
        let img = ctr.base.join("img");
        let mkimage = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/containers/mkimage.sh");
        run(Command::new("sh").arg(mkimage).arg(&img).stdout(Stdio::null()));
        run(ctr
            .ctr(&["-n", "k8s.io", "images", "import"])
            .arg(img.join("busybox-oci.tar"))
            .stdout(Stdio::null()));
        ctr
    }

    fn ctr(&mut self, args: &[&str]) -> Command {
        let mut c = Command::new("ctr");
        c.arg("-a").arg(&self.socket).args(args).stdout(Stdio::null()).stderr(Stdio::null());
        c
    }

    fn try_call<M: Message>(&self, method: &str, req: &M) -> Result<bytes::Bytes, String> {
        self.client
            .unary(&format!("/runtime.v1.RuntimeService/{method}"), &req.encode_to_vec(), &[])
            .map_err(|e| e.to_string())
    }

    fn call<M: Message>(&self, method: &str, req: &M) -> bytes::Bytes {
        self.try_call(method, req).unwrap_or_else(|e| panic!("CRI {method}: {e}\n{}", self.log_tail()))
    }

    /// The last lines of containerd's log, for failure messages.
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.base.join("containerd.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        format!("containerd log (tail):\n{}", lines[lines.len().saturating_sub(30)..].join("\n"))
    }

    /// Runs a pod (cgroupfs driver, burstable QoS) with `containers`, as the kubelet would. Without
    /// a `uid` it gets one unique to this process, so that runs of the test in other worktrees at
    /// the same time (each with its own containerd, all under the one /kubepods) never share a pod
    /// cgroup.
    pub fn run_pod(
        &self,
        name: &str,
        namespace: &str,
        uid: Option<&str>,
        host_network: bool,
        containers: &[Spec],
    ) -> Pod {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let unique = format!(
            "{:08x}-{:04x}-4c3e-9a77-{:012x}",
            std::process::id(),
            self.pods.lock().unwrap().len(),
            nanos & 0xffff_ffff_ffff
        );
        let uid = uid.map(str::to_string).unwrap_or(unique);
        let uid = uid.as_str();
        self.pods.lock().unwrap().push(uid.to_string());
        let labels = HashMap::from([
            ("io.kubernetes.pod.name".to_string(), name.to_string()),
            ("io.kubernetes.pod.namespace".to_string(), namespace.to_string()),
            ("io.kubernetes.pod.uid".to_string(), uid.to_string()),
        ]);
        let sandbox_config = PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: name.into(),
                uid: uid.into(),
                namespace: namespace.into(),
                attempt: 0,
            }),
            hostname: if host_network { String::new() } else { name.into() },
            log_directory: self.base.join("logs").join(uid).display().to_string(),
            labels: labels.clone(),
            linux: Some(LinuxPodSandboxConfig {
                cgroup_parent: format!("/kubepods/burstable/pod{uid}"),
                security_context: Some(LinuxSandboxSecurityContext {
                    namespace_options: Some(NamespaceOption { network: if host_network { 2 } else { 0 } }),
                }),
            }),
        };
        let sandbox_id = IdResponse::decode(
            self.call("RunPodSandbox", &RunPodSandboxRequest { config: Some(sandbox_config.clone()) }),
        )
        .unwrap()
        .id;
        let mut out = Vec::new();
        for spec in containers {
            let mut clabels = labels.clone();
            clabels.insert("io.kubernetes.container.name".into(), spec.name.into());
            let config = ContainerConfig {
                metadata: Some(ContainerMetadata { name: spec.name.into(), attempt: 0 }),
                image: Some(ImageSpec { image: IMAGE.into() }),
                command: vec!["sh".into(), "-c".into()],
                args: vec![spec.script.into()],
                labels: clabels,
                log_path: format!("{}.log", spec.name),
                linux: Some(LinuxContainerConfig {
                    resources: Some(LinuxContainerResources {
                        cpu_period: 100_000,
                        cpu_quota: spec.cpu_quota,
                        cpu_shares: 102,
                        memory_limit_in_bytes: 256 << 20,
                    }),
                }),
            };
            let req = CreateContainerRequest {
                pod_sandbox_id: sandbox_id.clone(),
                config: Some(config),
                sandbox_config: Some(sandbox_config.clone()),
            };
            let id = IdResponse::decode(self.call("CreateContainer", &req)).unwrap().id;
            self.call("StartContainer", &IdResponse { id: id.clone() });
            out.push((spec.name.to_string(), id));
        }
        Pod { name: name.into(), namespace: namespace.into(), uid: uid.into(), sandbox_id, containers: out }
    }

    /// Stops and removes one container (as a pod deletion would).
    /// A failed stop is retried: under load containerd sometimes loses the shim connection in
    /// the middle of the kill ("ttrpc: closed") although the container does stop.
    pub fn remove_container(&self, id: &str) {
        let stop = StopRequest { id: id.into(), timeout: 1 };
        let mut result = self.try_call("StopContainer", &stop);
        for _ in 0..5 {
            if result.is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(500));
            result = self.try_call("StopContainer", &stop);
        }
        if let Err(e) = result {
            panic!("CRI StopContainer {id}: {e}\n{}", self.log_tail());
        }
        self.call("RemoveContainer", &IdResponse { id: id.into() });
    }

    /// The first pid in a container's cgroup (v1 cpuacct hierarchy or unified).
    pub fn pid_of(&self, cgroup_rel: &str) -> Option<u32> {
        for root in ["/sys/fs/cgroup/cpuacct", "/sys/fs/cgroup/cpu", "/sys/fs/cgroup"] {
            if let Ok(t) = std::fs::read_to_string(format!("{root}{cgroup_rel}/cgroup.procs")) {
                return t.lines().next().and_then(|l| l.trim().parse().ok());
            }
        }
        None
    }

    /// Sends `n` pings from the host to `ip` (traffic for the pod's interface).
    pub fn ping(ip: &str, n: u32) {
        let _ = Command::new("busybox")
            .args(["ping", "-c", &n.to_string(), "-W", "1", ip])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    /// The pod's eth0 address, read inside its netns.
    pub fn pod_ip(&self, pid: u32) -> Option<String> {
        let out = Command::new("nsenter")
            .args(["-t", &pid.to_string(), "-n", "ip", "-4", "-o", "addr", "show", "eth0"])
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.split_whitespace()
            .skip_while(|w| *w != "inet")
            .nth(1)
            .and_then(|a| a.split('/').next())
            .map(str::to_string)
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        // Remove every pod through CRI (stops the shims), then stop containerd.
        #[derive(Clone, PartialEq, Message)]
        struct Empty {}
        #[derive(Clone, PartialEq, Message)]
        struct Listed {
            #[prost(message, repeated, tag = "1")]
            items: Vec<IdResponse>,
        }
        if let Ok(resp) =
            self.client.unary("/runtime.v1.RuntimeService/ListContainers", &Empty {}.encode_to_vec(), &[])
        {
            for c in Listed::decode(resp).map(|l| l.items).unwrap_or_default() {
                let _ = self.client.unary(
                    "/runtime.v1.RuntimeService/StopContainer",
                    &StopRequest { id: c.id.clone(), timeout: 0 }.encode_to_vec(),
                    &[],
                );
                let _ = self.client.unary(
                    "/runtime.v1.RuntimeService/RemoveContainer",
                    &IdResponse { id: c.id }.encode_to_vec(),
                    &[],
                );
            }
        }
        if let Ok(resp) =
            self.client.unary("/runtime.v1.RuntimeService/ListPodSandbox", &Empty {}.encode_to_vec(), &[])
        {
            for p in Listed::decode(resp).map(|l| l.items).unwrap_or_default() {
                let _ = self.client.unary(
                    "/runtime.v1.RuntimeService/StopPodSandbox",
                    &IdResponse { id: p.id.clone() }.encode_to_vec(),
                    &[],
                );
                let _ = self.client.unary(
                    "/runtime.v1.RuntimeService/RemovePodSandbox",
                    &IdResponse { id: p.id }.encode_to_vec(),
                    &[],
                );
            }
        }
        let _ = Command::new("kill").arg(self.child.id().to_string()).status();
        for _ in 0..100 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = Command::new("ip")
            .args(["link", "del", &format!("kahu-br{}", std::process::id() % 10000)])
            .status();
        let _ = std::fs::write("/proc/sys/net/ipv4/ip_forward", &self.ip_forward);
        // Processes the shims left behind (a kill lost to "ttrpc: closed" under load) would keep
        // their cgroups alive into the next run: kill them, then wait for the cgroups to empty.
        let pods = self.pods.lock().map(|p| p.clone()).unwrap_or_default();
        for uid in &pods {
            kill_cgroup_tree(&format!("/kubepods/burstable/pod{uid}"));
        }
        // runc leaves the (empty) parent cgroups; remove them depth-first.
        if let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") {
            for h in hierarchies.flatten() {
                remove_empty_cgroups(&h.path().join("kubepods"));
            }
        }
        remove_empty_cgroups(Path::new("/sys/fs/cgroup/kubepods"));
        if !self.run_containerd_existed {
            remove_empty_dirs(Path::new("/run/containerd"));
        }
        if let Ok(mounts) = std::fs::read_to_string("/proc/mounts") {
            let base = format!(" {}/", self.base.display());
            let mut points: Vec<&str> =
                mounts.lines().filter(|l| l.contains(&base)).filter_map(|l| l.split(' ').nth(1)).collect();
            points.sort_by(|a, b| b.cmp(a));
            for p in points {
                let _ = Command::new("umount").args(["-l", p]).status();
            }
        }
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

/// Creates the `kubepods` cgroup before any pod, as the kubelet's QoS manager does, with the
/// largest CPU weight, so that the pods' CFS quotas bound their CPU rather than the other
/// processes of a busy CI machine (all of them in the root cgroup, each weighing as much as a
/// default-weight cgroup). The pods use 0.4 CPU at most, so nothing else is starved.
fn reserve_cpu_for_pods() {
    let v1 = Path::new("/sys/fs/cgroup/cpu");
    let (dir, file, weight) = if v1.join("cpu.shares").is_file() {
        (v1.join("kubepods"), "cpu.shares", "262144")
    } else {
        let _ = std::fs::write("/sys/fs/cgroup/cgroup.subtree_control", "+cpu");
        (PathBuf::from("/sys/fs/cgroup/kubepods"), "cpu.weight", "10000")
    };
    let _ = std::fs::create_dir(&dir);
    if let Err(e) = std::fs::write(dir.join(file), weight) {
        eprintln!("note: could not raise the CPU weight of {}: {e}", dir.display());
    }
}

/// SIGKILLs every process in `rel` and its children in every hierarchy, waits up to 10 s for
/// them to go, and removes the cgroups.
fn kill_cgroup_tree(rel: &str) {
    let dirs: Vec<PathBuf> = std::fs::read_dir("/sys/fs/cgroup")
        .map(|hs| hs.flatten().map(|h| h.path().join(rel.trim_start_matches('/'))).collect())
        .unwrap_or_default();
    let mut dirs: Vec<PathBuf> = dirs.into_iter().filter(|d| d.is_dir()).collect();
    let unified = Path::new("/sys/fs/cgroup").join(rel.trim_start_matches('/'));
    if unified.is_dir() {
        dirs.push(unified);
    }
    for _ in 0..40 {
        let mut pids = Vec::new();
        for d in &dirs {
            collect_procs(d, &mut pids);
        }
        if pids.is_empty() {
            break;
        }
        let _ = Command::new("kill").arg("-9").args(&pids).stderr(Stdio::null()).status();
        std::thread::sleep(Duration::from_millis(250));
    }
    for d in &dirs {
        remove_empty_cgroups(d);
    }
}

fn collect_procs(dir: &Path, out: &mut Vec<String>) {
    if let Ok(procs) = std::fs::read_to_string(dir.join("cgroup.procs")) {
        out.extend(procs.lines().map(str::to_string));
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                collect_procs(&e.path(), out);
            }
        }
    }
}

fn remove_empty_cgroups(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_empty_cgroups(&e.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

fn remove_empty_dirs(dir: &Path) {
    remove_empty_cgroups(dir);
}
