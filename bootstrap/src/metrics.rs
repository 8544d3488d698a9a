//! Prometheus metrics (`GET /metrics`, OpenMetrics text: libp2p's own and Kith's, see
//! `kith_net::metrics`) and a health check (`GET /health`) over a
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
const PLAIN: &str = "text/plain; charset=utf-8";
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

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
    let (status, kind, body) = match path {
        "/health" => match engine.status().await {
            Ok(_) => ("200 OK", PLAIN, "ok\n".to_string()),
            Err(_) => ("503 Service Unavailable", PLAIN, "stopping\n".to_string()),
        },
        "/metrics" => match engine.status().await {
            Ok(s) => ("200 OK", OPENMETRICS, render(&engine, &s, turn.as_deref())),
            Err(_) => ("503 Service Unavailable", PLAIN, String::new()),
        },
        _ => ("404 Not Found", PLAIN, "not found\n".to_string()),
    };
    let resp = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(resp.as_bytes()).await?;
    stream.shutdown().await
}

/// The node's registry (libp2p's metrics and Kith's counters), with the gauges read from
/// the node's status at this scrape, and the TURN server's figures when it runs.
fn render(engine: &EngineHandle, st: &kith_engine::NodeStatus, turn: Option<&TurnStats>) -> String {
    let m = engine.metrics();
    let k = &m.kith;
    let g = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    k.connected_peers.set(g(st.connected_peers.len()));
    k.queued_envelopes.set(g(st.outbox));
    k.mailbox_devices.set(g(st.mailbox_users));
    k.relay_reservations.set(g(st.relay_reservations));
    k.relay_circuits.set(g(st.relay_circuits));
    let mut s = m.encode();
    if let Some(t) = turn {
        // The TURN server keeps its own atomics: their families go before the end marker.
        let body_end = s.rfind("# EOF").unwrap_or(s.len());
        s.truncate(body_end);
        render_turn(&mut s, t);
        s.push_str("# EOF\n");
    }
    s
}

fn render_turn(s: &mut String, t: &TurnStats) {
    let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    // (family, kind, help, value): a counter's sample is the family name with `_total`.
    let rows = [
        (
            "kith_turn_relays_open",
            "gauge",
            "TURN relays open now.",
            get(&t.allocations),
        ),
        (
            "kith_turn_allocations",
            "counter",
            "TURN relays opened since the start.",
            get(&t.allocations_total),
        ),
        (
            "kith_turn_allocations_refused",
            "counter",
            "TURN relays refused (over a limit, no port free).",
            get(&t.allocations_refused),
        ),
        (
            "kith_turn_relayed_bytes",
            "counter",
            "Bytes relayed through TURN, both directions.",
            get(&t.relayed_bytes),
        ),
        (
            "kith_turn_dropped_bytes",
            "counter",
            "Bytes dropped over a TURN bandwidth cap or to a peer not allowed.",
            get(&t.dropped_bytes),
        ),
        (
            "kith_turn_refused_credentials",
            "counter",
            "TURN requests whose credentials were refused.",
            get(&t.refused_credentials),
        ),
    ];
    for (name, kind, help, v) in rows {
        let sample = if kind == "counter" {
            format!("{name}_total")
        } else {
            name.to_string()
        };
        s.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{sample} {v}\n"
        ));
    }
}
