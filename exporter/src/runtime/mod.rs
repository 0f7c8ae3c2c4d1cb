//! Kubernetes names from the container runtime, not from the API server: the CRI socket's
//! `ListContainers` and `ListPodSandbox`, cached by container id.
//!
//! The cache is refreshed when the cgroup tree shows a container id it does not know (ids still
//! unknown after that refresh are not asked about again until the next resync), and on a slow
//! resync, so a steady node costs two List calls per resync interval — never a list per scrape.
//! When the socket is unreachable, series keep their `id` label (which holds the pod UID) and the
//! name labels stay empty; `kahu_runtime_up` says so and one log line says why.

pub mod cri;
pub mod grpc;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Names of one container (or sandbox), as the kubelet labels it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerMeta {
    /// `container` label: the container's name in the pod spec; empty for a sandbox.
    pub name: Arc<str>,
    /// `image` label: the image reference (the pause image for a sandbox).
    pub image: Arc<str>,
    /// `pod` label.
    pub pod: Arc<str>,
    /// `namespace` label.
    pub namespace: Arc<str>,
    /// The pod's UID.
    pub pod_uid: Arc<str>,
    /// Whether this is the pod's sandbox (pause) container.
    pub sandbox: bool,
    /// Creation time, ns since the epoch (0 if unknown).
    pub created_at_ns: i64,
}

/// Names of a pod, for its pod-level cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodMeta {
    /// Pod name.
    pub name: Arc<str>,
    /// Pod namespace.
    pub namespace: Arc<str>,
}

/// Counters the self-metrics report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolverStats {
    /// Whether the last refresh reached the runtime.
    pub up: bool,
    /// Successful refreshes (each is `ListPodSandbox` + `ListContainers`).
    pub refreshes: u64,
    /// Failed refreshes.
    pub failures: u64,
    /// The last failure, for logs.
    pub last_error: Option<String>,
    /// Runtime name and version, from `Version`.
    pub runtime: Option<(String, String)>,
}

/// Parses `--runtime.endpoint`: `unix:///run/containerd/containerd.sock` or a plain path.
pub fn endpoint_path(endpoint: &str) -> PathBuf {
    PathBuf::from(endpoint.strip_prefix("unix://").unwrap_or(endpoint))
}

/// The cache of runtime names.
#[derive(Debug)]
pub struct Resolver {
    client: Option<grpc::Client>,
    endpoint: PathBuf,
    containers: HashMap<String, Arc<ContainerMeta>>,
    pods: HashMap<String, PodMeta>,
    unknown: HashSet<String>,
    last_refresh: Option<Instant>,
    resync: Duration,
    stats: ResolverStats,
    sandbox_image: Arc<str>,
}

impl Resolver {
    /// A resolver on the CRI socket at `endpoint`; calls time out after `timeout`, and the whole
    /// cache is re-listed every `resync`. `None` endpoint: no runtime (names stay empty).
    pub fn new(endpoint: Option<&str>, timeout: Duration, resync: Duration) -> Resolver {
        let path = endpoint.map(endpoint_path).unwrap_or_default();
        let (client, err) = match endpoint {
            None => (None, Some("no runtime endpoint configured".to_string())),
            Some(_) => match grpc::Client::new(&path, timeout) {
                Ok(c) => (Some(c), None),
                Err(e) => (None, Some(e.to_string())),
            },
        };
        Resolver {
            client,
            endpoint: path,
            containers: HashMap::new(),
            pods: HashMap::new(),
            unknown: HashSet::new(),
            last_refresh: None,
            resync,
            stats: ResolverStats { last_error: err, ..ResolverStats::default() },
            sandbox_image: Arc::from(""),
        }
    }

    /// Makes sure the cache is fresh for the container ids seen in this pass: refreshes when one
    /// is neither known nor already found unknown, or when the resync interval has passed.
    pub fn prepare<'a>(&mut self, ids: impl IntoIterator<Item = &'a str>) {
        if self.client.is_none() {
            return;
        }
        let due = self.last_refresh.is_none_or(|t| t.elapsed() >= self.resync);
        let mut seen: Vec<&str> = Vec::new();
        let mut new_id = false;
        for id in ids {
            if !self.containers.contains_key(id) && !self.unknown.contains(id) {
                new_id = true;
            }
            seen.push(id);
        }
        if !(due || new_id) {
            return;
        }
        self.refresh();
        self.unknown =
            seen.into_iter().filter(|id| !self.containers.contains_key(*id)).map(str::to_string).collect();
    }

    fn refresh(&mut self) {
        let Some(client) = &self.client else { return };
        self.last_refresh = Some(Instant::now());
        let result = (|| -> Result<_, cri::CriError> {
            let sandboxes = cri::list_pod_sandbox(client)?;
            let containers = cri::list_containers(client)?;
            Ok((sandboxes, containers))
        })();
        match result {
            Ok((sandboxes, containers)) => {
                if !self.stats.up {
                    // First contact (or back after an outage): learn who we talk to.
                    self.stats.runtime =
                        cri::version(client).ok().map(|v| (v.runtime_name, v.runtime_version));
                    if let Ok(Some(img)) = cri::sandbox_image(client) {
                        self.sandbox_image = Arc::from(img);
                    }
                    tracing::info!(
                        endpoint = %self.endpoint.display(),
                        runtime = self.stats.runtime.as_ref().map(|r| format!("{} {}", r.0, r.1)).unwrap_or_default(),
                        "container runtime reachable: container names come from CRI"
                    );
                }
                self.stats.up = true;
                self.stats.refreshes += 1;
                self.stats.last_error = None;
                self.fill(sandboxes, containers);
            }
            Err(e) => {
                if self.stats.up || self.stats.failures == 0 {
                    tracing::warn!(
                        endpoint = %self.endpoint.display(),
                        error = %e,
                        "container runtime unreachable: series keep their cgroup id, but pod, namespace, container and image labels stay empty"
                    );
                }
                self.stats.up = false;
                self.stats.failures += 1;
                self.stats.last_error = Some(e.to_string());
            }
        }
    }

    fn fill(&mut self, sandboxes: Vec<cri::PodSandbox>, containers: Vec<cri::Container>) {
        self.containers.clear();
        self.pods.clear();
        let mut ready_pods: HashSet<String> = HashSet::new();
        for sb in sandboxes {
            let md = sb.metadata.unwrap_or_default();
            let pod =
                PodMeta { name: Arc::from(md.name.as_str()), namespace: Arc::from(md.namespace.as_str()) };
            // A restarted pod has an old, not-ready sandbox too: the ready one names the pod.
            if sb.state == 0 || !ready_pods.contains(&md.uid) {
                if sb.state == 0 {
                    ready_pods.insert(md.uid.clone());
                }
                self.pods.insert(md.uid.clone(), pod.clone());
            }
            self.containers.insert(
                sb.id,
                Arc::new(ContainerMeta {
                    name: Arc::from(""),
                    image: Arc::clone(&self.sandbox_image),
                    pod: pod.name,
                    namespace: pod.namespace,
                    pod_uid: Arc::from(md.uid.as_str()),
                    sandbox: true,
                    created_at_ns: sb.created_at,
                }),
            );
        }
        for c in containers {
            let label = |k: &str| c.labels.get(k).map(String::as_str).unwrap_or("");
            let sandbox = self.containers.get(&c.pod_sandbox_id).cloned();
            let image = c
                .image
                .as_ref()
                .map(|i| {
                    if i.user_specified_image.is_empty() {
                        i.image.as_str()
                    } else {
                        i.user_specified_image.as_str()
                    }
                })
                .unwrap_or("");
            let name = c
                .metadata
                .as_ref()
                .map(|m| m.name.as_str())
                .filter(|n| !n.is_empty())
                .unwrap_or(label("io.kubernetes.container.name"));
            let pick = |from_label: &str, from_sandbox: Option<&Arc<str>>| -> Arc<str> {
                if from_label.is_empty() {
                    from_sandbox.cloned().unwrap_or_else(|| Arc::from(""))
                } else {
                    Arc::from(from_label)
                }
            };
            let meta = ContainerMeta {
                name: Arc::from(name),
                image: Arc::from(image),
                pod: pick(label("io.kubernetes.pod.name"), sandbox.as_ref().map(|s| &s.pod)),
                namespace: pick(label("io.kubernetes.pod.namespace"), sandbox.as_ref().map(|s| &s.namespace)),
                pod_uid: pick(label("io.kubernetes.pod.uid"), sandbox.as_ref().map(|s| &s.pod_uid)),
                sandbox: false,
                created_at_ns: c.created_at,
            };
            self.containers.insert(c.id, Arc::new(meta));
        }
    }

    /// Names of container `id`, if the runtime knows it.
    pub fn container(&self, id: &str) -> Option<&Arc<ContainerMeta>> {
        self.containers.get(id)
    }

    /// Names of the pod with UID `uid`, if the runtime knows it.
    pub fn pod(&self, uid: &str) -> Option<&PodMeta> {
        self.pods.get(uid)
    }

    /// Counters for the self-metrics.
    pub fn stats(&self) -> &ResolverStats {
        &self.stats
    }

    /// Whether a runtime endpoint is configured.
    pub fn configured(&self) -> bool {
        self.client.is_some()
    }
}
