//! 1:1 delivery benchmark: two `kith up` daemons on loopback, driven through the JSON-RPC API.
//!
//! - latency: sequential messages; time from the `send` call to the sender's "delivered"
//!   event (the recipient committed the message to disk and acknowledged it).
//! - throughput: many messages in flight from concurrent API connections; time from the
//!   first send until every message is delivered (the sender's outbox is empty).
//!
//! Run: `cargo bench -p kith --bench delivery` (env: KITH_BENCH_SEQ, KITH_BENCH_N,
//! KITH_BENCH_CONCURRENCY). Prints its figures; it asserts nothing about time.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use kith_api::Client;
use kith_api::methods::{self, AddContactParams, HistoryParams, NoParams, SendParams};

mod support;

use support::*;

#[tokio::main]
async fn main() {
    let seq = env_usize("KITH_BENCH_SEQ", 500);
    let n = env_usize("KITH_BENCH_N", 20_000);
    let conc = env_usize("KITH_BENCH_CONCURRENCY", 48).clamp(1, 60);

    let a = daemon().await;
    let b = daemon().await;
    let mut ca = Client::connect(&sock(&a.dir)).await.unwrap();
    let mut cb = Client::connect(&sock(&b.dir)).await.unwrap();
    let code_a = ca.call::<methods::Id>(NoParams {}).await.unwrap().code;
    let code_b = cb.call::<methods::Id>(NoParams {}).await.unwrap().code;
    ca.call::<methods::ContactsAdd>(AddContactParams {
        code: code_b,
        name: "Bob".into(),
    })
    .await
    .unwrap();
    cb.call::<methods::ContactsAdd>(AddContactParams {
        code: code_a,
        name: "Alice".into(),
    })
    .await
    .unwrap();

    let mut watch = Client::connect(&sock(&a.dir)).await.unwrap();
    watch.watch().await.unwrap();
    // Warm up: open the session.
    let id = send(&mut ca, "warm up".into()).await;
    wait_delivered(&mut watch, &id).await;

    // Sequential latency.
    let mut lat = Vec::with_capacity(seq);
    for i in 0..seq {
        let t0 = Instant::now();
        let id = send(&mut ca, format!("sequential {i}")).await;
        wait_delivered(&mut watch, &id).await;
        lat.push(t0.elapsed());
    }
    lat.sort();
    println!(
        "latency  sequential n={seq}: p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
        ms(pct(&lat, 0.50)),
        ms(pct(&lat, 0.90)),
        ms(pct(&lat, 0.99)),
        ms(*lat.last().unwrap())
    );
    drop(watch);

    // Throughput with many in flight.
    let t0 = Instant::now();
    let per = n / conc;
    send_concurrently(&a.dir, "Bob", conc, per, "load").await;
    let queued = t0.elapsed();
    let total = per * conc;
    loop {
        let st = ca.call::<methods::Status>(NoParams {}).await.unwrap();
        if st.outbox == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let done = t0.elapsed();
    let received = cb
        .call::<methods::History>(HistoryParams {
            with: "Alice".into(),
            limit: 2_000,
        })
        .await
        .unwrap()
        .iter()
        .filter(|m| m.text.starts_with("load "))
        .count();
    println!(
        "throughput n={total} concurrency={conc}: queued durably in {:.2} s ({:.0} msg/s); \
         all delivered durably in {:.2} s ({:.0} msg/s); the recipient's last 2000 messages include {received} of them",
        queued.as_secs_f64(),
        total as f64 / queued.as_secs_f64(),
        done.as_secs_f64(),
        total as f64 / done.as_secs_f64()
    );
}

async fn send(c: &mut Client, text: String) -> String {
    c.call::<methods::Send>(SendParams {
        to: "Bob".into(),
        text,
    })
    .await
    .unwrap()
    .id
}

async fn wait_delivered(watch: &mut Client, id: &str) {
    loop {
        let ev = watch.next_event().await.unwrap().expect("daemon stopped");
        if ev["event"] == "status" && ev["id"] == id && ev["status"] == "delivered" {
            return;
        }
    }
}
