//! The JSON-RPC client the CLI uses.

use std::path::Path;

use serde_json::{Value, json};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};

use crate::MAX_RESPONSE;
use crate::methods::{self, Method};

/// Client failures, each with the CLI exit code it maps to.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// No daemon answers on the socket.
    #[error("the kith daemon is not running for this data directory (start it with `kith up`)")]
    NotRunning,
    /// The daemon answered with an error.
    #[error("{message}")]
    Rpc {
        /// JSON-RPC code (the exit code for application errors).
        code: i64,
        /// What went wrong and what to do.
        message: String,
    },
    /// The connection broke.
    #[error("lost the connection to the daemon: {0}")]
    Io(#[from] std::io::Error),
    /// The daemon's answer made no sense.
    #[error("unexpected answer from the daemon: {0}")]
    Protocol(String),
}

impl ClientError {
    /// The CLI exit code.
    pub fn exit_code(&self) -> i32 {
        match self {
            ClientError::NotRunning | ClientError::Io(_) => 3,
            ClientError::Rpc { code, .. } if (1..=3).contains(code) => *code as i32,
            ClientError::Rpc { code, .. } if *code == crate::codes::INVALID_PARAMS => 1,
            ClientError::Rpc { .. } | ClientError::Protocol(_) => 2,
        }
    }
}

/// A connection to the daemon.
#[derive(Debug)]
pub struct Client {
    r: BufReader<OwnedReadHalf>,
    w: OwnedWriteHalf,
    next_id: u64,
}

impl Client {
    /// Connects to the daemon's socket.
    pub async fn connect(path: &Path) -> Result<Self, ClientError> {
        let stream = UnixStream::connect(path)
            .await
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
                    ClientError::NotRunning
                }
                _ => ClientError::Io(e),
            })?;
        let (r, w) = stream.into_split();
        Ok(Self {
            r: BufReader::new(r),
            w,
            next_id: 0,
        })
    }

    async fn request(&mut self, method: &str, params: Value) -> Result<Value, ClientError> {
        self.next_id += 1;
        let req = json!({"jsonrpc":"2.0","id":self.next_id,"method":method,"params":params});
        let mut line =
            serde_json::to_vec(&req).map_err(|e| ClientError::Protocol(e.to_string()))?;
        line.push(b'\n');
        self.w.write_all(&line).await?;
        let resp = self
            .read()
            .await?
            .ok_or(ClientError::Io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "daemon closed the connection",
            )))?;
        if let Some(err) = resp.get("error") {
            return Err(ClientError::Rpc {
                code: err.get("code").and_then(Value::as_i64).unwrap_or(2),
                message: err
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("unknown error")
                    .to_string(),
            });
        }
        resp.get("result")
            .cloned()
            .ok_or_else(|| ClientError::Protocol("no result".into()))
    }

    async fn read(&mut self) -> Result<Option<Value>, ClientError> {
        let mut buf = Vec::new();
        use tokio::io::{AsyncBufReadExt, AsyncReadExt};
        let n = (&mut self.r)
            .take(MAX_RESPONSE as u64 + 1)
            .read_until(b'\n', &mut buf)
            .await?;
        if n == 0 {
            return Ok(None);
        }
        serde_json::from_slice(&buf)
            .map(Some)
            .map_err(|e| ClientError::Protocol(e.to_string()))
    }

    /// Calls a method.
    pub async fn call<M: Method>(&mut self, params: M::Params) -> Result<M::Output, ClientError> {
        let params =
            serde_json::to_value(params).map_err(|e| ClientError::Protocol(e.to_string()))?;
        let v = self.request(M::NAME, params).await?;
        serde_json::from_value(v).map_err(|e| ClientError::Protocol(e.to_string()))
    }

    /// Subscribes to events; then call [`Client::next_event`] repeatedly.
    pub async fn watch(&mut self) -> Result<(), ClientError> {
        self.request(methods::WATCH, json!({})).await.map(|_| ())
    }

    /// The next event (its JSON params), or `None` when the daemon stops.
    pub async fn next_event(&mut self) -> Result<Option<Value>, ClientError> {
        loop {
            match self.read().await? {
                None => return Ok(None),
                Some(v) if v.get("method").and_then(Value::as_str) == Some(methods::EVENT) => {
                    return Ok(v.get("params").cloned());
                }
                Some(_) => continue,
            }
        }
    }
}
