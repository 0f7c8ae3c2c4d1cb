//! The Kubernetes manifest in deploy/kubernetes: parsed, checked for what a node agent needs (host
//! mounts read-only and matching the flags, probes, tolerations, resources, the Service and
//! ServiceMonitor wiring), and run: the DaemonSet's own arguments start a real `kahu serve` on this
//! node, with the host paths mounted the way the DaemonSet mounts them and no runtime socket behind
//! the endpoint.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use yaml_rust2::{Yaml, YamlLoader};

use crate::harness::TestServer;

fn manifest() -> Vec<Yaml> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes/daemonset.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn kind<'a>(docs: &'a [Yaml], kind: &str) -> &'a Yaml {
    let found: Vec<&Yaml> = docs.iter().filter(|d| d["kind"].as_str() == Some(kind)).collect();
    assert_eq!(found.len(), 1, "one {kind} in the manifest");
    found[0]
}

fn items(y: &Yaml) -> &[Yaml] {
    y.as_vec().map(Vec::as_slice).unwrap_or(&[])
}

fn str_of<'a>(y: &'a Yaml, what: &str) -> &'a str {
    y.as_str().unwrap_or_else(|| panic!("{what}: not a string: {y:?}"))
}

/// `--name=value` flags of the container's args, by name.
fn flags(container: &Yaml) -> (Vec<String>, HashMap<String, String>) {
    let args: Vec<String> = items(&container["args"]).iter().map(|a| str_of(a, "arg").to_string()).collect();
    let flags = args
        .iter()
        .filter_map(|a| a.strip_prefix("--")?.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    (args, flags)
}

/// The host path behind the container path `path`: the longest volumeMount that contains it,
/// with its hostPath volume; returns (host path, readOnly).
fn host_path_of(pod: &Yaml, container: &Yaml, path: &str) -> (String, bool) {
    let mount = items(&container["volumeMounts"])
        .iter()
        .filter(|m| {
            let mp = str_of(&m["mountPath"], "mountPath");
            path == mp || path.starts_with(&format!("{}/", mp.trim_end_matches('/')))
        })
        .max_by_key(|m| str_of(&m["mountPath"], "mountPath").len())
        .unwrap_or_else(|| panic!("no volumeMount holds {path}"));
    let name = str_of(&mount["name"], "mount name");
    let volume = items(&pod["volumes"])
        .iter()
        .find(|v| v["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("volume {name} not declared"));
    let host = str_of(&volume["hostPath"]["path"], "hostPath.path");
    let rest = path.strip_prefix(str_of(&mount["mountPath"], "mountPath")).unwrap_or("");
    let full = format!("{}{}", host.trim_end_matches('/'), rest);
    (if full.is_empty() { "/".to_string() } else { full }, mount["readOnly"].as_bool() == Some(true))
}

#[test]
fn daemonset_mounts_the_host_read_only_where_its_flags_point() {
    let docs = manifest();
    let ds = kind(&docs, "DaemonSet");
    let pod = &ds["spec"]["template"]["spec"];
    assert_eq!(pod["hostPID"].as_bool(), Some(true), "cgroup.procs pids must resolve in /proc");
    assert!(
        items(&pod["tolerations"])
            .iter()
            .any(|t| t["operator"].as_str() == Some("Exists") && t["key"].is_badvalue()),
        "a node agent tolerates every taint"
    );
    let containers = items(&pod["containers"]);
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    let (args, flags) = flags(c);
    assert_eq!(args.first().map(String::as_str), Some("serve"), "{args:?}");

    // Every host path kahu reads is a read-only mount of the host's own.
    for (flag, host) in [("path.procfs", "/proc"), ("path.sysfs", "/sys"), ("path.rootfs", "/")] {
        let value = flags.get(flag).unwrap_or_else(|| panic!("--{flag} not set: {args:?}"));
        assert_eq!(host_path_of(pod, c, value), (host.to_string(), true), "--{flag}={value}");
    }
    let endpoint = &flags["runtime.endpoint"];
    let socket = endpoint.strip_prefix("unix://").unwrap_or_else(|| panic!("{endpoint}"));
    assert_eq!(
        host_path_of(pod, c, socket),
        ("/run/containerd/containerd.sock".to_string(), true),
        "the runtime socket, read-only"
    );
    // The data directory is the one writable mount.
    let (_, ro) = host_path_of(pod, c, &flags["data-dir"]);
    assert!(!ro, "--data-dir must be writable");
    let writable: Vec<&Yaml> =
        items(&c["volumeMounts"]).iter().filter(|m| m["readOnly"].as_bool() != Some(true)).collect();
    assert_eq!(writable.len(), 1, "only the data dir is writable: {writable:?}");
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"].as_bool(), Some(true));

    // Probes on kahu's health endpoints, on the port --listen names.
    let port = flags["listen"].rsplit_once(':').and_then(|(_, p)| p.parse::<i64>().ok()).unwrap();
    let ports = items(&c["ports"]);
    let http = ports.iter().find(|p| p["name"].as_str() == Some("http")).expect("a port named http");
    assert_eq!(http["containerPort"].as_i64(), Some(port));
    assert_eq!(str_of(&c["readinessProbe"]["httpGet"]["path"], "readiness"), "/-/ready");
    assert_eq!(str_of(&c["livenessProbe"]["httpGet"]["path"], "liveness"), "/-/healthy");
    for probe in ["readinessProbe", "livenessProbe"] {
        assert_eq!(c[probe]["httpGet"]["port"].as_str(), Some("http"), "{probe}");
    }
    let res = &c["resources"];
    for (k, r) in [("requests", "cpu"), ("requests", "memory"), ("limits", "memory")] {
        assert!(res[k][r].as_str().is_some(), "resources.{k}.{r} set");
    }

    // The Service selects the pods and exposes the port; the ServiceMonitor scrapes both views.
    let svc = kind(&docs, "Service");
    let labels = &ds["spec"]["template"]["metadata"]["labels"];
    for (k, v) in svc["spec"]["selector"].as_hash().expect("selector") {
        assert_eq!(&labels[str_of(k, "label")], v, "Service selector {k:?} matches the pods");
    }
    let svc_port = &items(&svc["spec"]["ports"])[0];
    assert_eq!((svc_port["name"].as_str(), svc_port["targetPort"].as_str()), (Some("http"), Some("http")));
    let sm = kind(&docs, "ServiceMonitor");
    for (k, v) in sm["spec"]["selector"]["matchLabels"].as_hash().expect("matchLabels") {
        assert_eq!(&svc["metadata"]["labels"][str_of(k, "label")], v, "ServiceMonitor selects the Service");
    }
    let paths: Vec<&str> = items(&sm["spec"]["endpoints"])
        .iter()
        .inspect(|e| assert_eq!(e["port"].as_str(), Some("http")))
        .map(|e| str_of(&e["path"], "path"))
        .collect();
    assert_eq!(paths, ["/metrics", "/metrics/cadvisor"]);
}

/// The DaemonSet's arguments, unchanged but for the `/host` prefix (a temp dir whose proc, sys
/// and root are this node's own, like the DaemonSet's hostPath mounts), the data dir and the listen
/// address, start a real `kahu serve`: both probes answer, node and container families come from
/// the host, and with no socket behind `--runtime.endpoint` the series keep their `id`, one warning
/// says why names are missing and `kahu_runtime_up` is 0.
#[test]
fn daemonset_arguments_run_kahu_and_report_a_missing_runtime_once() {
    let docs = manifest();
    let c = &items(&kind(&docs, "DaemonSet")["spec"]["template"]["spec"]["containers"])[0];
    let (args, _) = flags(c);
    let dir = tempfile::tempdir().unwrap();
    let host = dir.path().join("host");
    std::fs::create_dir_all(host.join("run/containerd")).unwrap();
    for (link, target) in [("proc", "/proc"), ("sys", "/sys"), ("root", "/")] {
        std::os::unix::fs::symlink(target, host.join(link)).unwrap();
    }
    let args: Vec<String> = args
        .iter()
        .map(|a| match a.split_once('=') {
            Some(("--listen", _)) => "--listen=127.0.0.1:0".to_string(),
            Some(("--data-dir", _)) => format!("--data-dir={}", dir.path().join("data").display()),
            Some(("--collect.interval", _)) => "--collect.interval=1s".to_string(),
            _ => a.replace("/host/", &format!("{}/", host.display())),
        })
        .collect();
    let server = TestServer::spawn(&args);
    server.wait_ready();
    assert_eq!(server.get("/-/healthy").status, 200);

    // Three passes or more, then the log holds exactly one line about the runtime.
    let start = Instant::now();
    let text = loop {
        let text = server.get("/metrics").text();
        let passes = text
            .lines()
            .find_map(|l| l.strip_prefix("kahu_collection_passes_total "))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0);
        if passes >= 3.0 {
            break text;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "no third pass in 30s:\n{text}");
        std::thread::sleep(Duration::from_millis(250));
    };
    let up =
        text.lines().find_map(|l| l.strip_prefix("kahu_runtime_up ")).and_then(|v| v.parse::<f64>().ok());
    assert_eq!(up, Some(0.0), "{text}");
    let errors = text
        .lines()
        .find_map(|l| l.strip_prefix(r#"kahu_runtime_refreshes_total{result="error"} "#))
        .and_then(|v| v.parse::<f64>().ok());
    assert!(errors.is_some_and(|n| n >= 1.0), "{errors:?}");
    assert!(text.contains("node_cpu_seconds_total{cpu=\"0\",mode=\"idle\"} "), "node families from the host");
    let root = "container_cpu_usage_seconds_total{container=\"\",cpu=\"total\",id=\"/\",image=\"\",name=\"\",namespace=\"\",pod=\"\"} ";
    assert!(server.get("/metrics/cadvisor").text().contains(root), "containers keep their id without names");
    let log = server.log_lines();
    let unreachable: Vec<&String> =
        log.iter().filter(|l| l.contains("container runtime unreachable")).collect();
    assert_eq!(unreachable.len(), 1, "one log line says why names are missing:\n{}", log.join("\n"));
    assert!(unreachable[0].contains("containerd.sock"), "it names the endpoint: {}", unreachable[0]);
}
