//! What a cgroup path says about the container in it, for every runtime and cgroup driver
//! Kubernetes nodes use (see `reference/exporter.md` 1.6):
//!
//! | driver | pod | container |
//! | --- | --- | --- |
//! | systemd | `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<UID_>.slice` | `cri-containerd-<id>.scope`, `crio-<id>.scope`, `docker-<id>.scope` |
//! | cgroupfs | `/kubepods/burstable/pod<UID>` | `<id>`, `crio-<id>` |
//!
//! plus Docker (`/docker/<id>`, `/system.slice/docker-<id>.scope`) and Podman (`libpod-<id>.scope`)
//! outside Kubernetes.

/// The container runtime a path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// `cri-containerd-<id>.scope`.
    Containerd,
    /// `crio-<id>.scope` or `crio-<id>`.
    Crio,
    /// `docker-<id>.scope` or `/docker/<id>`.
    Docker,
    /// `libpod-<id>.scope`.
    Podman,
    /// A bare 64-hex id (cgroupfs driver: containerd or Docker).
    Unknown,
}

/// A pod's quality-of-service class, from its parent cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qos {
    /// Directly under `kubepods`.
    Guaranteed,
    /// Under `burstable`.
    Burstable,
    /// Under `besteffort`.
    BestEffort,
}

impl Qos {
    /// `guaranteed`, `burstable` or `besteffort`.
    pub fn as_str(self) -> &'static str {
        match self {
            Qos::Guaranteed => "guaranteed",
            Qos::Burstable => "burstable",
            Qos::BestEffort => "besteffort",
        }
    }
}

/// Which level of the hierarchy a cgroup is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// `/`.
    Root,
    /// `/kubepods` or `/kubepods.slice`.
    Kubepods,
    /// A QoS slice (`/kubepods/burstable`).
    QosClass,
    /// A pod cgroup.
    Pod,
    /// A container cgroup (app or sandbox).
    Container,
    /// Anything else (system slices, runtime services).
    Other,
}

/// What a cgroup path says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The level.
    pub level: Level,
    /// Pod UID with dashes (or the 32-hex hash of a static pod).
    pub pod_uid: Option<String>,
    /// QoS class, for pod and container cgroups under `kubepods`, and QoS slices.
    pub qos: Option<Qos>,
    /// The 64-hex container id.
    pub container_id: Option<String>,
    /// The runtime the path names.
    pub runtime: Option<Runtime>,
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Parses the container id from a path component, or `None` if the component is not a container.
/// Conmon scopes (`crio-conmon-…`, `libpod-conmon-…`) and `.mount` units are not containers.
pub fn container_id(component: &str) -> Option<(String, Runtime)> {
    if component.ends_with(".mount") || component.contains("conmon-") {
        return None;
    }
    // kubelet systemd + runtime cgroupfs oddity: `kubepods-…-pod<UID>.slice:cri-containerd:<id>`.
    if let Some((_, id)) = component.rsplit_once(':') {
        let rt = if component.contains(":cri-containerd:") {
            Runtime::Containerd
        } else if component.contains(":crio:") {
            Runtime::Crio
        } else if component.contains(":docker:") {
            Runtime::Docker
        } else {
            Runtime::Unknown
        };
        return is_hex64(id).then(|| (id.to_string(), rt));
    }
    let base = component.strip_suffix(".scope").unwrap_or(component);
    let prefixes = [
        ("cri-containerd-", Runtime::Containerd),
        ("crio-", Runtime::Crio),
        ("docker-", Runtime::Docker),
        ("libpod-", Runtime::Podman),
    ];
    for (prefix, rt) in prefixes {
        if let Some(id) = base.strip_prefix(prefix) {
            return is_hex64(id).then(|| (id.to_string(), rt));
        }
    }
    is_hex64(base).then(|| (base.to_string(), Runtime::Unknown))
}

/// Parses a pod UID from a pod cgroup's component: `pod<UID>` (cgroupfs) or
/// `kubepods[-<qos>]-pod<UID_>.slice` (systemd, `_` for `-`).
fn pod_uid(component: &str) -> Option<String> {
    let raw = if let Some(slice) = component.strip_suffix(".slice") {
        let idx = slice.rfind("-pod")?;
        slice.get(idx + 4..)?.replace('_', "-")
    } else {
        component.strip_prefix("pod")?.to_string()
    };
    let ok_uuid = raw.len() == 36 && raw.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
    let ok_static = raw.len() == 32 && raw.bytes().all(|b| b.is_ascii_hexdigit());
    (ok_uuid || ok_static).then_some(raw)
}

fn qos_of(component: &str) -> Option<Qos> {
    match component {
        "burstable" | "kubepods-burstable.slice" => Some(Qos::Burstable),
        "besteffort" | "kubepods-besteffort.slice" => Some(Qos::BestEffort),
        _ => None,
    }
}

fn is_kubepods(component: &str) -> bool {
    component == "kubepods" || component == "kubepods.slice"
}

/// Parses the identity of cgroup `rel` (relative to the hierarchy root, `/` for the root).
pub fn identify(rel: &str) -> Identity {
    let mut id =
        Identity { level: Level::Other, pod_uid: None, qos: None, container_id: None, runtime: None };
    let parts: Vec<&str> = rel.split('/').filter(|p| !p.is_empty()).collect();
    if parts.is_empty() {
        id.level = Level::Root;
        return id;
    }
    let mut in_kubepods = false;
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        if is_kubepods(part) {
            in_kubepods = true;
            if last {
                id.level = Level::Kubepods;
            }
            continue;
        }
        if in_kubepods && id.pod_uid.is_none() {
            if let Some(q) = qos_of(part) {
                id.qos = Some(q);
                if last {
                    id.level = Level::QosClass;
                }
                continue;
            }
            if let Some(uid) = pod_uid(part) {
                id.pod_uid = Some(uid);
                id.qos = id.qos.or(Some(Qos::Guaranteed));
                if last {
                    id.level = Level::Pod;
                }
                continue;
            }
        }
        if let Some((cid, rt)) = container_id(part) {
            // The systemd/cgroupfs mix names the pod in the container's component.
            if id.pod_uid.is_none()
                && let Some((pod_part, _)) = part.split_once(':')
            {
                id.pod_uid = pod_uid(pod_part);
            }
            // `/docker/<id>` is Docker even though the component is a bare id.
            let rt = if rt == Runtime::Unknown && i > 0 && parts.get(i - 1) == Some(&"docker") {
                Runtime::Docker
            } else {
                rt
            };
            if last {
                id.level = Level::Container;
                id.container_id = Some(cid);
                id.runtime = Some(rt);
            }
        }
    }
    if id.level != Level::Container && id.level != Level::Pod && id.level != Level::QosClass {
        // A cgroup below a container (nested) or an unrelated path is just "other".
        if id.level != Level::Kubepods {
            id.level = Level::Other;
        }
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    const CID: &str = "8134e620c37afff34535d04db616284d8b14d659ef5a9fd3f5f6f12988bdfa21";

    #[test]
    fn systemd_containerd_container_in_a_burstable_pod() {
        let p = format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podd98c80af_2009_4eef_9311_71beb2a1a577.slice/cri-containerd-{CID}.scope"
        );
        let id = identify(&p);
        assert_eq!(id.level, Level::Container);
        assert_eq!(id.pod_uid.as_deref(), Some("d98c80af-2009-4eef-9311-71beb2a1a577"));
        assert_eq!(id.qos, Some(Qos::Burstable));
        assert_eq!(id.container_id.as_deref(), Some(CID));
        assert_eq!(id.runtime, Some(Runtime::Containerd));
    }

    #[test]
    fn cgroupfs_guaranteed_pod_and_its_bare_container() {
        let pod = identify("/kubepods/pod0b8e9a2c-5d1f-4c3e-9a77-1f2e3d4c5b6a");
        assert_eq!((pod.level, pod.qos), (Level::Pod, Some(Qos::Guaranteed)));
        let c = identify(&format!("/kubepods/pod0b8e9a2c-5d1f-4c3e-9a77-1f2e3d4c5b6a/{CID}"));
        assert_eq!((c.level, c.runtime), (Level::Container, Some(Runtime::Unknown)));
        assert_eq!(c.pod_uid.as_deref(), Some("0b8e9a2c-5d1f-4c3e-9a77-1f2e3d4c5b6a"));
    }

    #[test]
    fn qos_slices_and_kubepods_levels() {
        assert_eq!(identify("/kubepods/besteffort").level, Level::QosClass);
        assert_eq!(identify("/kubepods.slice/kubepods-burstable.slice").qos, Some(Qos::Burstable));
        assert_eq!(identify("/kubepods.slice").level, Level::Kubepods);
        assert_eq!(identify("/").level, Level::Root);
        assert_eq!(identify("/system.slice/kubelet.service").level, Level::Other);
    }

    #[test]
    fn crio_docker_podman_and_static_pods() {
        let crio = identify(&format!("/kubepods/besteffort/pod0123456789abcdef0123456789abcdef/crio-{CID}"));
        assert_eq!((crio.level, crio.runtime), (Level::Container, Some(Runtime::Crio)));
        assert_eq!(crio.pod_uid.as_deref(), Some("0123456789abcdef0123456789abcdef"));
        assert_eq!(identify(&format!("/docker/{CID}")).runtime, Some(Runtime::Docker));
        assert_eq!(identify(&format!("/system.slice/docker-{CID}.scope")).runtime, Some(Runtime::Docker));
        assert_eq!(identify(&format!("/machine.slice/libpod-{CID}.scope")).runtime, Some(Runtime::Podman));
        assert_eq!(identify(&format!("/machine.slice/libpod-conmon-{CID}.scope")).level, Level::Other);
        assert_eq!(identify(&format!("/kubepods.slice/crio-conmon-{CID}.scope")).level, Level::Other);
    }

    #[test]
    fn runtime_cgroupfs_under_systemd_kubelet() {
        let p = format!(
            "/system.slice/containerd.service/kubepods-burstable-podd98c80af_2009_4eef_9311_71beb2a1a577.slice:cri-containerd:{CID}"
        );
        let id = identify(&p);
        assert_eq!((id.level, id.runtime), (Level::Container, Some(Runtime::Containerd)));
        assert_eq!(id.pod_uid.as_deref(), Some("d98c80af-2009-4eef-9311-71beb2a1a577"));
    }
}
