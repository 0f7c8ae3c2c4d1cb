//! The few CRI (`runtime.v1.RuntimeService`) messages kahu reads, written by hand with prost
//! derives (field numbers from `k8s.io/cri-api/pkg/apis/runtime/v1/api.proto`), and the List
//! calls. Only read-only calls are made: `ListContainers`, `ListPodSandbox`, `Status`, `Version`.

use std::collections::HashMap;

use prost::Message;

use super::grpc::{Client, RpcError};

/// `ListContainersRequest` (no filter: every container).
#[derive(Clone, PartialEq, Message)]
pub struct ListContainersRequest {}

/// `ListContainersResponse`.
#[derive(Clone, PartialEq, Message)]
pub struct ListContainersResponse {
    /// The containers.
    #[prost(message, repeated, tag = "1")]
    pub containers: Vec<Container>,
}

/// `ContainerMetadata`.
#[derive(Clone, PartialEq, Message)]
pub struct ContainerMetadata {
    /// The container's name in the pod spec.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Restart attempt.
    #[prost(uint32, tag = "2")]
    pub attempt: u32,
}

/// `ImageSpec`.
#[derive(Clone, PartialEq, Message)]
pub struct ImageSpec {
    /// The image as the kubelet passed it (a reference or an image id).
    #[prost(string, tag = "1")]
    pub image: String,
    /// The image as the user wrote it in the pod spec (CRI ≥ 1.30).
    #[prost(string, tag = "18")]
    pub user_specified_image: String,
}

/// `Container` (a subset of its fields).
#[derive(Clone, PartialEq, Message)]
pub struct Container {
    /// Container id (64 hex).
    #[prost(string, tag = "1")]
    pub id: String,
    /// Id of the pod's sandbox.
    #[prost(string, tag = "2")]
    pub pod_sandbox_id: String,
    /// Name and attempt.
    #[prost(message, optional, tag = "3")]
    pub metadata: Option<ContainerMetadata>,
    /// The image.
    #[prost(message, optional, tag = "4")]
    pub image: Option<ImageSpec>,
    /// Image reference (digest).
    #[prost(string, tag = "5")]
    pub image_ref: String,
    /// `ContainerState`: 0 created, 1 running, 2 exited, 3 unknown.
    #[prost(int32, tag = "6")]
    pub state: i32,
    /// Creation time, ns since the epoch.
    #[prost(int64, tag = "7")]
    pub created_at: i64,
    /// Labels (the kubelet's `io.kubernetes.*`).
    #[prost(map = "string, string", tag = "8")]
    pub labels: HashMap<String, String>,
}

/// `ListPodSandboxRequest` (no filter).
#[derive(Clone, PartialEq, Message)]
pub struct ListPodSandboxRequest {}

/// `ListPodSandboxResponse`.
#[derive(Clone, PartialEq, Message)]
pub struct ListPodSandboxResponse {
    /// The sandboxes.
    #[prost(message, repeated, tag = "1")]
    pub items: Vec<PodSandbox>,
}

/// `PodSandboxMetadata`.
#[derive(Clone, PartialEq, Message)]
pub struct PodSandboxMetadata {
    /// Pod name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Pod UID.
    #[prost(string, tag = "2")]
    pub uid: String,
    /// Pod namespace.
    #[prost(string, tag = "3")]
    pub namespace: String,
    /// Sandbox attempt.
    #[prost(uint32, tag = "4")]
    pub attempt: u32,
}

/// `PodSandbox` (a subset of its fields).
#[derive(Clone, PartialEq, Message)]
pub struct PodSandbox {
    /// Sandbox id (the pause container's id).
    #[prost(string, tag = "1")]
    pub id: String,
    /// Pod name, uid, namespace.
    #[prost(message, optional, tag = "2")]
    pub metadata: Option<PodSandboxMetadata>,
    /// `PodSandboxState`: 0 ready, 1 not ready.
    #[prost(int32, tag = "3")]
    pub state: i32,
    /// Creation time, ns since the epoch.
    #[prost(int64, tag = "4")]
    pub created_at: i64,
}

/// `StatusRequest`.
#[derive(Clone, PartialEq, Message)]
pub struct StatusRequest {
    /// Ask for the runtime's configuration in `info`.
    #[prost(bool, tag = "1")]
    pub verbose: bool,
}

/// `StatusResponse` (only `info`).
#[derive(Clone, PartialEq, Message)]
pub struct StatusResponse {
    /// Runtime information; containerd puts its CRI config as JSON under `config`.
    #[prost(map = "string, string", tag = "2")]
    pub info: HashMap<String, String>,
}

/// `VersionRequest`.
#[derive(Clone, PartialEq, Message)]
pub struct VersionRequest {
    /// The CRI version the client speaks.
    #[prost(string, tag = "1")]
    pub version: String,
}

/// `VersionResponse`.
#[derive(Clone, PartialEq, Message)]
pub struct VersionResponse {
    /// Kubelet API version.
    #[prost(string, tag = "1")]
    pub version: String,
    /// Runtime name (`containerd`, `cri-o`).
    #[prost(string, tag = "2")]
    pub runtime_name: String,
    /// Runtime version.
    #[prost(string, tag = "3")]
    pub runtime_version: String,
    /// CRI API version (`v1`).
    #[prost(string, tag = "4")]
    pub runtime_api_version: String,
}

/// Why a CRI call failed.
#[derive(Debug, thiserror::Error)]
pub enum CriError {
    /// The call failed.
    #[error(transparent)]
    Rpc(#[from] RpcError),
    /// The answer did not decode.
    #[error("{method}: decode response")]
    Decode {
        /// The method.
        method: &'static str,
        /// Why.
        #[source]
        source: prost::DecodeError,
    },
}

const SERVICE: &str = "/runtime.v1.RuntimeService/";

fn call<Resp: Message + Default>(
    client: &Client,
    method: &'static str,
    req: &impl Message,
) -> Result<Resp, CriError> {
    let path = format!("{SERVICE}{method}");
    let bytes = client.unary(&path, &req.encode_to_vec(), &[])?;
    Resp::decode(bytes).map_err(|source| CriError::Decode { method, source })
}

/// `ListContainers` without a filter.
pub fn list_containers(client: &Client) -> Result<Vec<Container>, CriError> {
    call::<ListContainersResponse>(client, "ListContainers", &ListContainersRequest {}).map(|r| r.containers)
}

/// `ListPodSandbox` without a filter.
pub fn list_pod_sandbox(client: &Client) -> Result<Vec<PodSandbox>, CriError> {
    call::<ListPodSandboxResponse>(client, "ListPodSandbox", &ListPodSandboxRequest {}).map(|r| r.items)
}

/// `Version`.
pub fn version(client: &Client) -> Result<VersionResponse, CriError> {
    call(client, "Version", &VersionRequest { version: "v1".into() })
}

/// The sandbox (pause) image from `Status{verbose}`'s `config` JSON (`"sandboxImage":"…"`), as
/// containerd reports it; `None` when the runtime does not say.
pub fn sandbox_image(client: &Client) -> Result<Option<String>, CriError> {
    let status: StatusResponse = call(client, "Status", &StatusRequest { verbose: true })?;
    Ok(status.info.get("config").and_then(|c| json_string_field(c, "sandboxImage")))
}

/// The value of the first `"key":"value"` string field in a JSON text (no escapes in value).
fn json_string_field(json: &str, key: &str) -> Option<String> {
    let pat = format!("\"{key}\":");
    let rest = json.get(json.find(&pat)? + pat.len()..)?.trim_start();
    let rest = rest.strip_prefix('"')?;
    let end = rest.find('"')?;
    rest.get(..end).filter(|v| !v.is_empty() && !v.contains('\\')).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containers_decode_from_hand_encoded_bytes() {
        // What cri.py in reference/real-containers.md reads: id=1, pod_sandbox_id=2, metadata=3{name=1}.
        let c = Container {
            id: "abc".into(),
            pod_sandbox_id: "sb".into(),
            metadata: Some(ContainerMetadata { name: "nginx".into(), attempt: 0 }),
            image: Some(ImageSpec {
                image: "localhost/kahu-busybox:test".into(),
                user_specified_image: String::new(),
            }),
            image_ref: String::new(),
            state: 1,
            created_at: 5,
            labels: HashMap::from([("io.kubernetes.pod.name".to_string(), "web".to_string())]),
        };
        let bytes = ListContainersResponse { containers: vec![c.clone()] }.encode_to_vec();
        assert_eq!(&bytes[..4], &[0x0a, bytes[1], 0x0a, 3]);
        assert_eq!(ListContainersResponse::decode(bytes.as_slice()).unwrap().containers, vec![c]);
    }

    #[test]
    fn sandbox_image_is_read_from_containerd_config_json() {
        let cfg =
            r#"{"containerd":{"snapshotter":"overlayfs"},"sandboxImage":"registry.k8s.io/pause:3.6","x":1}"#;
        assert_eq!(json_string_field(cfg, "sandboxImage").as_deref(), Some("registry.k8s.io/pause:3.6"));
        assert_eq!(json_string_field("{}", "sandboxImage"), None);
    }
}
