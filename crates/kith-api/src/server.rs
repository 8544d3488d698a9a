//! The JSON-RPC server.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use kith_engine::{EngineError, EngineHandle};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{Semaphore, broadcast};
use tracing::{debug, warn};

use crate::methods::{self, Method};
use crate::{MAX_LINE, codes};

/// Most API connections served at once; more are closed at once.
pub const MAX_CONNECTIONS: usize = 64;

struct RpcError {
    code: i64,
    message: String,
    data: Option<Value>,
}

impl From<EngineError> for RpcError {
    fn from(e: EngineError) -> Self {
        RpcError {
            code: i64::from(e.exit_code()),
            message: e.to_string(),
            data: serde_json::to_value(&e).ok(),
        }
    }
}

fn invalid_params(e: serde_json::Error) -> RpcError {
    RpcError {
        code: codes::INVALID_PARAMS,
        message: format!("invalid params: {e}"),
        data: None,
    }
}

async fn run<M: Method>(engine: &EngineHandle, params: Value) -> Result<Value, RpcError> {
    let params = if params.is_null() { json!({}) } else { params };
    let p: M::Params = serde_json::from_value(params).map_err(invalid_params)?;
    let out = engine.call::<M>(p).await?;
    serde_json::to_value(out).map_err(|e| RpcError {
        code: 2,
        message: e.to_string(),
        data: None,
    })
}

/// Runs the method named `method`: one arm per command of the engine's table.
async fn dispatch(engine: &EngineHandle, method: &str, params: Value) -> Result<Value, RpcError> {
    macro_rules! arms {
        ($($m:path),* $(,)?) => {
            match method {
                $( <$m as Method>::NAME => run::<$m>(engine, params).await, )*
                other => Err(RpcError {
                    code: codes::METHOD_NOT_FOUND,
                    message: format!("no method {other:?}"),
                    data: None,
                }),
            }
        };
    }
    kith_engine::for_each_command!(arms)
}

/// Binds the socket at `path` (mode 0600) and serves until the engine stops.
pub async fn serve(
    engine: EngineHandle,
    path: &Path,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    if path.exists() {
        if UnixStream::connect(path).await.is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                "a kith daemon is already serving this data directory",
            ));
        }
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    Ok(tokio::spawn(async move {
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    warn!(error = %e, "api accept failed");
                    continue;
                }
            };
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                debug!("too many api connections; closing one");
                continue;
            };
            let engine = engine.clone();
            tokio::spawn(async move {
                if let Err(e) = connection(engine, stream).await {
                    debug!(error = %e, "api connection ended");
                }
                drop(permit);
            });
        }
    }))
}

/// Reads one line of at most [`MAX_LINE`] bytes; `None` at end of stream.
async fn read_line<R: tokio::io::AsyncBufRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
) -> std::io::Result<Option<()>> {
    buf.clear();
    let n = r.take(MAX_LINE as u64 + 1).read_until(b'\n', buf).await?;
    if n == 0 {
        return Ok(None);
    }
    if buf.len() > MAX_LINE {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "request line too long",
        ));
    }
    Ok(Some(()))
}

async fn write_json(w: &mut tokio::net::unix::OwnedWriteHalf, v: &Value) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(v)?;
    line.push(b'\n');
    w.write_all(&line).await
}

async fn connection(engine: EngineHandle, stream: UnixStream) -> std::io::Result<()> {
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    let mut buf = Vec::new();
    while read_line(&mut r, &mut buf).await?.is_some() {
        let req: Value = match serde_json::from_slice(&buf) {
            Ok(v) => v,
            Err(e) => {
                let err = json!({"jsonrpc":"2.0","id":null,"error":{"code":codes::PARSE,"message":e.to_string()}});
                write_json(&mut w, &err).await?;
                continue;
            }
        };
        let id = req.get("id").cloned().unwrap_or(Value::Null);
        let Some(method) = req
            .get("method")
            .and_then(|m| m.as_str())
            .map(str::to_owned)
        else {
            let err = json!({"jsonrpc":"2.0","id":id,"error":{"code":codes::INVALID_REQUEST,"message":"missing method"}});
            write_json(&mut w, &err).await?;
            continue;
        };
        let params = req.get("params").cloned().unwrap_or(Value::Null);
        if method == methods::WATCH {
            let events = engine.subscribe();
            write_json(
                &mut w,
                &json!({"jsonrpc":"2.0","id":id,"result":{"subscribed":true}}),
            )
            .await?;
            return watch(events, r, w).await;
        }
        let result = dispatch(&engine, method.as_str(), params).await;
        let resp = match result {
            Ok(v) => json!({"jsonrpc":"2.0","id":id,"result":v}),
            Err(e) => {
                let mut err = json!({"code":e.code,"message":e.message});
                if let Some(d) = e.data {
                    err["data"] = d;
                }
                json!({"jsonrpc":"2.0","id":id,"error":err})
            }
        };
        write_json(&mut w, &resp).await?;
    }
    Ok(())
}

async fn watch(
    mut events: broadcast::Receiver<kith_engine::Event>,
    mut r: BufReader<tokio::net::unix::OwnedReadHalf>,
    mut w: tokio::net::unix::OwnedWriteHalf,
) -> std::io::Result<()> {
    let mut sink = [0u8; 256];
    loop {
        tokio::select! {
            ev = events.recv() => match ev {
                Ok(ev) => {
                    let note = json!({"jsonrpc":"2.0","method":methods::EVENT,"params":ev});
                    write_json(&mut w, &note).await?;
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    let note = json!({"jsonrpc":"2.0","method":methods::EVENT,"params":{"event":"lagged","missed":n}});
                    write_json(&mut w, &note).await?;
                }
                Err(broadcast::error::RecvError::Closed) => return Ok(()),
            },
            n = r.read(&mut sink) => {
                if n? == 0 {
                    return Ok(());
                }
            }
        }
    }
}
