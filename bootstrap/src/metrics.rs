//! Prometheus metrics (`GET /metrics`, text format) and a health check (`GET /health`) over a
//! deliberately small HTTP/1.1 responder: one request per connection, bounded request size,
//! a read timeout and a cap on concurrent connections.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use kith_engine::EngineHandle;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::turn::TurnStats;
use std::sync::atomic::Ordering;

/// Most metrics connections served at once.
const MAX_CONNECTIONS: usize = 32;
/// Largest request head read.
const MAX_REQUEST: usize = 8 * 1024;
/// How long a client may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Binds `addr` and serves until aborted. Returns the bound address.
pub async fn serve(
    engine: EngineHandle,
    addr: SocketAddr,
    turn: Option<Arc<TurnStats>>,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    Ok((
        bound,
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let Ok(permit) = slots.clone().try_acquire_owned() else {
                    continue;
                };
                let engine = engine.clone();
                let turn = turn.clone();
                tokio::spawn(async move {
                    let _ = handle(engine, turn, stream).await;
                    drop(permit);
                });
            }
        }),
    ))
}

async fn handle(
    engine: EngineHandle,
    turn: Option<Arc<TurnStats>>,
    mut stream: TcpStream,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; MAX_REQUEST];
    let mut n = 0;
    let read = async {
        while n < buf.len() {
            let k = stream.read(&mut buf[n..]).await?;
            if k == 0 {
                break;
            }
            n += k;
            if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
        Ok::<_, std::io::Error>(())
    };
    if tokio::time::timeout(READ_TIMEOUT, read).await.is_err() {
        return Ok(());
    }
    let head = String::from_utf8_lossy(&buf[..n]);
    let path = head
        .lines()
        .next()
        .and_then(|l| {
            let mut it = l.split_whitespace();
            (it.next() == Some("GET")).then(|| it.next()).flatten()
        })
        .unwrap_or("");
    let (status, body) = match path {
        "/health" => match engine.status().await {
            Ok(_) => ("200 OK", "ok\n".to_string()),
            Err(_) => ("503 Service Unavailable", "stopping\n".to_string()),
        },
        "/metrics" => match engine.status().await {
            Ok(s) => ("200 OK", render(&s, turn.as_deref())),
            Err(_) => ("503 Service Unavailable", String::new()),
        },
        _ => ("404 Not Found", "not found\n".to_string()),
    };
    let resp = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(resp.as_bytes()).await?;
    stream.shutdown().await
}

fn render(st: &kith_engine::NodeStatus, turn: Option<&TurnStats>) -> String {
    let mut s = String::new();
    let mut gauge = |name: &str, help: &str, v: usize| {
        s.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}\n"
        ));
    };
    gauge("kith_up", "1 while the node runs.", 1);
    gauge(
        "kith_connected_peers",
        "Peers connected now.",
        st.connected_peers.len(),
    );
    gauge(
        "kith_queued_envelopes",
        "Envelopes waiting for delivery (kept mail included).",
        st.outbox,
    );
    gauge(
        "kith_mailbox_devices",
        "Devices registered with this mailbox.",
        st.mailbox_users,
    );
    gauge(
        "kith_relay_reservations",
        "Relay slots held for nodes behind NAT.",
        st.relay_reservations,
    );
    gauge(
        "kith_relay_circuits",
        "Connections relayed now.",
        st.relay_circuits,
    );
    if let Some(t) = turn {
        render_turn(&mut s, t);
    }
    s
}

fn render_turn(s: &mut String, t: &TurnStats) {
    let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let rows = [
        (
            "kith_turn_allocations",
            "gauge",
            "TURN relays open now.",
            get(&t.allocations),
        ),
        (
            "kith_turn_allocations_total",
            "counter",
            "TURN relays opened since the start.",
            get(&t.allocations_total),
        ),
        (
            "kith_turn_allocations_refused_total",
            "counter",
            "TURN relays refused (over a limit, no port free).",
            get(&t.allocations_refused),
        ),
        (
            "kith_turn_relayed_bytes_total",
            "counter",
            "Bytes relayed through TURN, both directions.",
            get(&t.relayed_bytes),
        ),
        (
            "kith_turn_dropped_bytes_total",
            "counter",
            "Bytes dropped over a TURN bandwidth cap or to a peer not allowed.",
            get(&t.dropped_bytes),
        ),
        (
            "kith_turn_refused_credentials_total",
            "counter",
            "TURN requests whose credentials were refused.",
            get(&t.refused_credentials),
        ),
    ];
    for (name, kind, help, v) in rows {
        s.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}\n"
        ));
    }
}
