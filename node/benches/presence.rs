//! Presence benchmark: three `kith up` daemons on loopback, driven through the JSON-RPC API.
//!
//! - online: time from (re)starting Alice's daemon until Bob's `watch` shows her online,
//!   and from killing it until Bob shows her offline (target: online within 2 s, offline
//!   within 60 s);
//! - flood: the latency of Alice's messages to Bob (send until delivered, sequential), first
//!   quietly, then while Carol, another contact of Bob's, asks her daemon for typing
//!   indicators as fast as she can (her daemon sends at most four a second), and then while a
//!   raw peer that ignores every rule sends Bob `KITH_BENCH_FLOOD` (1,000) typing signals a
//!   second on `/kith/signal/1`; the target is at most 2× the quiet latency.
//!
//! Run: `cargo bench -p kith --bench presence` (env: KITH_BENCH_SEQ, KITH_BENCH_ROUNDS).
//! Prints its figures; it asserts nothing about time.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kith_api::Client;
use kith_api::methods::{self, AddContactParams, NoParams, SendParams, TypingParams};
use kith_net::codec::SignalCodec;
use kith_proto::signal::{SIGNAL_PROTOCOL, Signal, TypingState};
use libp2p::StreamProtocol;
use libp2p::request_response::{self, ProtocolSupport};

mod support;

use support::*;

/// A raw peer sending `rate` typing signals a second to a node until `stop`; returns how many
/// it sent and how many the node answered.
async fn raw_flood(
    node: libp2p::PeerId,
    addr: libp2p::Multiaddr,
    rate: usize,
    stop: Arc<AtomicBool>,
) -> (u64, u64) {
    let mut swarm = peer::swarm(libp2p::identity::Keypair::generate_ed25519(), |_| {
        request_response::Behaviour::with_codec(
            SignalCodec::default(),
            [(
                StreamProtocol::new(SIGNAL_PROTOCOL),
                ProtocolSupport::Outbound,
            )],
            request_response::Config::default().with_max_concurrent_streams(1024),
        )
    });
    peer::dial(&mut swarm, node, &addr).await.unwrap();
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate.max(1) as u64));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let (mut sent, mut answered) = (0u64, 0u64);
    while !stop.load(Ordering::Relaxed) {
        tokio::select! {
            _ = tick.tick() => {
                swarm
                    .behaviour_mut()
                    .send_request(&node, Ok(Signal::Typing(TypingState::Typing)));
                sent += 1;
            }
            ev = swarm.select_next_some() => {
                if let libp2p::swarm::SwarmEvent::Behaviour(request_response::Event::Message {
                    message: request_response::Message::Response { .. },
                    ..
                }) = ev
                {
                    answered += 1;
                }
            }
        }
    }
    (sent, answered)
}

async fn befriend(x: &mut Client, y: &mut Client, x_calls_y: &str, y_calls_x: &str) {
    let code_x = x.call::<methods::Id>(NoParams {}).await.unwrap().code;
    let code_y = y.call::<methods::Id>(NoParams {}).await.unwrap().code;
    x.call::<methods::ContactsAdd>(AddContactParams {
        code: code_y,
        name: x_calls_y.into(),
    })
    .await
    .unwrap();
    y.call::<methods::ContactsAdd>(AddContactParams {
        code: code_x,
        name: y_calls_x.into(),
    })
    .await
    .unwrap();
}

/// Waits for a presence event about `who` with `online`; returns when it came.
async fn wait_presence(watch: &mut Client, who: &str, online: bool) -> Instant {
    loop {
        let ev = watch.next_event().await.unwrap().expect("daemon stopped");
        if ev["event"] == "presence" && ev["contact"] == who && ev["online"] == online {
            return Instant::now();
        }
    }
}

async fn latencies(ca: &mut Client, watch: &mut Client, n: usize, tag: &str) -> Vec<Duration> {
    let mut lat = Vec::with_capacity(n);
    for i in 0..n {
        let t0 = Instant::now();
        let id = ca
            .call::<methods::Send>(SendParams {
                to: "Bob".into(),
                text: format!("{tag} {i}"),
            })
            .await
            .unwrap()
            .id;
        loop {
            let ev = watch.next_event().await.unwrap().expect("daemon stopped");
            if ev["event"] == "status" && ev["id"] == id.as_str() && ev["status"] == "delivered" {
                break;
            }
        }
        lat.push(t0.elapsed());
    }
    lat.sort();
    lat
}

fn summary(l: &[Duration]) -> String {
    format!(
        "p50 {:.2} ms  p95 {:.2} ms  p99 {:.2} ms",
        ms(pct(l, 0.50)),
        ms(pct(l, 0.95)),
        ms(pct(l, 0.99))
    )
}

#[tokio::main]
async fn main() {
    let seq = env_usize("KITH_BENCH_SEQ", 300);
    let rounds = env_usize("KITH_BENCH_ROUNDS", 5);
    let mut a = daemon().await;
    let b = daemon().await;
    let c = daemon().await;
    let mut ca = Client::connect(&sock(&a.dir)).await.unwrap();
    let mut cb = Client::connect(&sock(&b.dir)).await.unwrap();
    let mut cc = Client::connect(&sock(&c.dir)).await.unwrap();
    befriend(&mut ca, &mut cb, "Bob", "Alice").await;
    befriend(&mut cc, &mut cb, "Bob", "Carol").await;
    let mut bw = Client::connect(&sock(&b.dir)).await.unwrap();
    bw.watch().await.unwrap();

    // Online after a start, offline after a kill.
    let mut up = Vec::new();
    let mut down = Vec::new();
    for _ in 0..rounds {
        let t0 = Instant::now();
        a.stop();
        down.push(wait_presence(&mut bw, "Alice", false).await - t0);
        let t0 = Instant::now();
        a.restart().await;
        up.push(wait_presence(&mut bw, "Alice", true).await - t0);
    }
    up.sort();
    down.sort();
    println!(
        "online after start (spawn to contact's event), n={rounds}: median {:.0} ms, max {:.0} ms",
        ms(pct(&up, 0.5)),
        ms(*up.last().unwrap())
    );
    println!(
        "offline after kill -9, n={rounds}: median {:.0} ms, max {:.0} ms",
        ms(pct(&down, 0.5)),
        ms(*down.last().unwrap())
    );
    drop(bw);

    // Message latency, quiet and under a typing flood from another contact.
    let mut ca = Client::connect(&sock(&a.dir)).await.unwrap();
    let mut aw = Client::connect(&sock(&a.dir)).await.unwrap();
    aw.watch().await.unwrap();
    latencies(&mut ca, &mut aw, 20, "warm up").await;
    let quiet = latencies(&mut ca, &mut aw, seq, "quiet").await;

    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let mut floods = Vec::new();
    // Several connections to Carol's daemon, so the API is not what limits the rate.
    for w in 0..4 {
        let stop = stop.clone();
        let sent = sent.clone();
        let dir = c.dir.clone();
        floods.push(tokio::spawn(async move {
            let mut cc = Client::connect(&sock(&dir)).await.unwrap();
            let mut i = w;
            while !stop.load(Ordering::Relaxed) {
                // Alternate, so the sender's own repeat filter lets every one through.
                let state = if i % 2 == 0 { "typing" } else { "recording" };
                cc.call::<methods::Typing>(TypingParams {
                    with: "Bob".into(),
                    state: state.into(),
                })
                .await
                .unwrap();
                sent.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
        }));
    }
    let mut bw = Client::connect(&sock(&b.dir)).await.unwrap();
    bw.watch().await.unwrap();
    let shown = Arc::new(AtomicU64::new(0));
    let counter = {
        let shown = shown.clone();
        tokio::spawn(async move {
            while let Ok(Some(ev)) = bw.next_event().await {
                if ev["event"] == "typing" && ev["contact"] == "Carol" {
                    shown.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let t0 = Instant::now();
    let s0 = sent.load(Ordering::Relaxed);
    let h0 = shown.load(Ordering::Relaxed);
    let flooded = latencies(&mut ca, &mut aw, seq, "flooded").await;
    let secs = t0.elapsed().as_secs_f64();
    let rate = (sent.load(Ordering::Relaxed) - s0) as f64 / secs;
    let passed = (shown.load(Ordering::Relaxed) - h0) as f64 / secs;
    stop.store(true, Ordering::Relaxed);
    for f in floods {
        let _ = f.await;
    }
    counter.abort();
    drop(cc);

    // A raw peer that ignores every rule.
    let target = env_usize("KITH_BENCH_FLOOD", 1000);
    let stop = Arc::new(AtomicBool::new(false));
    let (node, addr) = peer::node_addr(&b).await;
    let flooder = tokio::spawn(raw_flood(node, addr, target, stop.clone()));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let t1 = Instant::now();
    let raw = latencies(&mut ca, &mut aw, seq, "raw flood").await;
    let raw_secs = t1.elapsed().as_secs_f64() + 0.5;
    stop.store(true, Ordering::Relaxed);
    let (raw_sent, raw_answered) = flooder.await.unwrap();

    println!("message latency, quiet, n={seq}: {}", summary(&quiet));
    println!(
        "message latency, Carol's client asking for {rate:.0} typing/s (her daemon sends ≤ 4/s), n={seq}: {}; \
         {passed:.1}/s shown at Bob; p50 ratio {:.2}, p99 ratio {:.2}",
        summary(&flooded),
        ms(pct(&flooded, 0.5)) / ms(pct(&quiet, 0.5)),
        ms(pct(&flooded, 0.99)) / ms(pct(&quiet, 0.99))
    );
    println!(
        "message latency, raw peer flooding {:.0} typing signals/s at Bob ({:.0}/s answered), n={seq}: {}; \
         p50 ratio {:.2}, p99 ratio {:.2}",
        raw_sent as f64 / raw_secs,
        raw_answered as f64 / raw_secs,
        summary(&raw),
        ms(pct(&raw, 0.5)) / ms(pct(&quiet, 0.5)),
        ms(pct(&raw, 0.99)) / ms(pct(&quiet, 0.99))
    );
}
