//! A minimal gRPC client for unary calls over a unix socket: HTTP/2 through `h2`, messages as
//! prost-encoded bytes, the 5-byte gRPC frame prefix and the `grpc-status` trailer. This is all the
//! CRI List calls need; it avoids generated stubs and `protoc`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::{Bytes, BytesMut};

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// The socket could not be reached.
    #[error("connect to {path}")]
    Connect {
        /// The socket.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// HTTP/2 failed (handshake, stream reset, protocol error).
    #[error("HTTP/2 on {path}")]
    Http2 {
        /// The socket.
        path: PathBuf,
        /// Why.
        #[source]
        source: h2::Error,
    },
    /// The server answered with a non-zero `grpc-status`.
    #[error("{method}: gRPC status {code}: {message}")]
    Status {
        /// The method called.
        method: String,
        /// gRPC status code (12 = UNIMPLEMENTED, 14 = UNAVAILABLE, …).
        code: u32,
        /// `grpc-message`.
        message: String,
    },
    /// The answer is not a single uncompressed gRPC message.
    #[error("{method}: malformed response: {reason}")]
    Malformed {
        /// The method called.
        method: String,
        /// What was wrong.
        reason: String,
    },
    /// The call did not finish in time.
    #[error("{method}: no answer within {timeout:?}")]
    Timeout {
        /// The method called.
        method: String,
        /// The deadline.
        timeout: Duration,
    },
    /// The request could not be built (invalid method path).
    #[error("build request for {method}: {reason}")]
    Request {
        /// The method.
        method: String,
        /// Why.
        reason: String,
    },
    /// The private async runtime could not be started.
    #[error("start I/O runtime")]
    Runtime(#[source] std::io::Error),
}

/// Largest response accepted (a node with 1,000 containers lists a few MiB).
const MAX_RESPONSE: usize = 64 << 20;

/// A blocking gRPC client on one unix socket. Each call opens a connection, so a restarted
/// runtime is picked up without reconnect logic; List calls are rare (cached by the caller).
#[derive(Debug)]
pub struct Client {
    socket: PathBuf,
    timeout: Duration,
    rt: tokio::runtime::Runtime,
}

impl Client {
    /// A client for `socket`; every call is bounded by `timeout`. Must not be used from inside an
    /// async task (it blocks the calling thread).
    pub fn new(socket: impl Into<PathBuf>, timeout: Duration) -> Result<Client, RpcError> {
        let rt =
            tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(RpcError::Runtime)?;
        Ok(Client { socket: socket.into(), timeout, rt })
    }

    /// The socket path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Calls `method` (`/package.Service/Method`) with the encoded request; returns the encoded
    /// response message. `metadata` adds headers (containerd's `containerd-namespace`).
    pub fn unary(&self, method: &str, request: &[u8], metadata: &[(&str, &str)]) -> Result<Bytes, RpcError> {
        let fut = call(&self.socket, method, request, metadata);
        self.rt.block_on(async {
            tokio::time::timeout(self.timeout, fut)
                .await
                .map_err(|_| RpcError::Timeout { method: method.to_string(), timeout: self.timeout })?
        })
    }
}

async fn call(
    socket: &Path,
    method: &str,
    request: &[u8],
    metadata: &[(&str, &str)],
) -> Result<Bytes, RpcError> {
    let h2err = |source| RpcError::Http2 { path: socket.to_path_buf(), source };
    let stream = tokio::net::UnixStream::connect(socket)
        .await
        .map_err(|source| RpcError::Connect { path: socket.to_path_buf(), source })?;
    let (client, connection) = h2::client::Builder::new()
        .initial_window_size(1 << 20)
        .initial_connection_window_size(4 << 20)
        .max_frame_size(1 << 20)
        .handshake::<_, Bytes>(stream)
        .await
        .map_err(h2err)?;
    let conn = tokio::spawn(async move {
        let _ = connection.await;
    });
    let result = exchange(client, method, request, metadata).await.map_err(|e| match e {
        Exchange::H2(source) => h2err(source),
        Exchange::Rpc(e) => e,
    });
    conn.abort();
    result
}

enum Exchange {
    H2(h2::Error),
    Rpc(RpcError),
}

impl From<h2::Error> for Exchange {
    fn from(e: h2::Error) -> Self {
        Exchange::H2(e)
    }
}

async fn exchange(
    client: h2::client::SendRequest<Bytes>,
    method: &str,
    request: &[u8],
    metadata: &[(&str, &str)],
) -> Result<Bytes, Exchange> {
    let mut client = client.ready().await?;
    let mut builder = http::Request::builder()
        .method("POST")
        .uri(format!("http://localhost{method}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("user-agent", concat!("kahu/", env!("CARGO_PKG_VERSION")));
    for (k, v) in metadata {
        builder = builder.header(*k, *v);
    }
    let req = builder.body(()).map_err(|e| {
        Exchange::Rpc(RpcError::Request { method: method.to_string(), reason: e.to_string() })
    })?;
    let (response, mut send) = client.send_request(req, false)?;
    let len = u32::try_from(request.len()).map_err(|_| {
        Exchange::Rpc(RpcError::Request { method: method.to_string(), reason: "request too large".into() })
    })?;
    let mut frame = BytesMut::with_capacity(5 + request.len());
    frame.extend_from_slice(&[0]);
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(request);
    send.send_data(frame.freeze(), true)?;

    let response = response.await?;
    let (parts, mut body) = response.into_parts();
    // A "trailers-only" error answer carries grpc-status in the headers.
    check_status(method, &parts.headers).map_err(Exchange::Rpc)?;
    let mut buf = BytesMut::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        let _ = body.flow_control().release_capacity(chunk.len());
        if buf.len() + chunk.len() > MAX_RESPONSE {
            return Err(Exchange::Rpc(RpcError::Malformed {
                method: method.to_string(),
                reason: format!("response larger than {MAX_RESPONSE} bytes"),
            }));
        }
        buf.extend_from_slice(&chunk);
    }
    if let Some(trailers) = body.trailers().await? {
        check_status(method, &trailers).map_err(Exchange::Rpc)?;
    }
    unframe(method, buf.freeze()).map_err(Exchange::Rpc)
}

fn check_status(method: &str, headers: &http::HeaderMap) -> Result<(), RpcError> {
    let Some(code) = headers.get("grpc-status") else { return Ok(()) };
    let code: u32 = code.to_str().ok().and_then(|c| c.parse().ok()).unwrap_or(2);
    if code == 0 {
        return Ok(());
    }
    let message =
        headers.get("grpc-message").and_then(|m| m.to_str().ok()).map(percent_decode).unwrap_or_default();
    Err(RpcError::Status { method: method.to_string(), code, message })
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%'
            && let Some(hex) = b.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok())
            && let Ok(v) = u8::from_str_radix(hex, 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(c);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Strips the gRPC frame prefix (compressed flag, big-endian length) from a single message.
fn unframe(method: &str, body: Bytes) -> Result<Bytes, RpcError> {
    let bad = |reason: &str| RpcError::Malformed { method: method.to_string(), reason: reason.to_string() };
    let (Some(&flag), Some(len)) = (body.first(), body.get(1..5).and_then(|l| <[u8; 4]>::try_from(l).ok()))
    else {
        return Err(bad("no message in response"));
    };
    if flag != 0 {
        return Err(bad("compressed message (kahu does not ask for compression)"));
    }
    let len = u32::from_be_bytes(len) as usize;
    if body.len() != 5 + len {
        return Err(bad("frame length does not match the body"));
    }
    Ok(body.slice(5..))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_checked() {
        assert_eq!(
            unframe("m", Bytes::from_static(&[0, 0, 0, 0, 2, 8, 1])).ok(),
            Some(Bytes::from_static(&[8, 1]))
        );
        assert!(unframe("m", Bytes::from_static(&[0, 0, 0, 0, 3, 8, 1])).is_err());
        assert!(unframe("m", Bytes::from_static(&[1, 0, 0, 0, 0])).is_err());
        assert!(unframe("m", Bytes::new()).is_err());
        assert_eq!(percent_decode("namespace%20is%20required"), "namespace is required");
    }

    #[test]
    fn a_missing_socket_is_a_connect_error() {
        let c = Client::new("/nonexistent/kahu-test.sock", Duration::from_secs(1)).unwrap();
        let err = c.unary("/runtime.v1.RuntimeService/Version", &[], &[]).unwrap_err();
        assert!(matches!(err, RpcError::Connect { .. }), "{err}");
    }
}
