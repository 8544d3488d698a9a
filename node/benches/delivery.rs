//! 1:1 delivery benchmark: two `kith up` daemons on loopback, driven through the JSON-RPC API.
//!
//! - latency: sequential messages; time from the `send` call to the sender's "delivered"
//!   event (the recipient committed the message to disk and acknowledged it), and, on the
//!   `latency  received` line, to the recipient's `watch` stream showing the message.
//! - throughput: many messages in flight from concurrent API connections; time from the
//!   first send until every message is delivered (the sender's outbox is empty).
//! - resources: CPU time (user + system) the two daemons used during the throughput phase,
//!   summed and divided by the messages, and their resident memory afterwards, summed
//!   (a message costs work on both ends).
//!
//! Run: `cargo bench -p kith --bench delivery` (env: KITH_BENCH_SEQ, KITH_BENCH_N,
//! KITH_BENCH_CONCURRENCY). Prints its figures; it asserts nothing about time.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use kith_api::Client;
use kith_api::methods::{self, HistoryParams, NoParams, SendParams};

mod support;

use support::events::*;
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
    befriend(&mut ca, &mut cb).await;

    // Both ends are watched from tasks that stamp each event as it arrives: the sender's
    // "delivered" statuses and the recipient's incoming messages.
    let (watch_a, mut delivered) = stamped(&a, delivered_ids).await;
    let (watch_b, mut received) = stamped(&b, message_texts).await;
    // Warm up: open the session.
    let id = send(&mut ca, "warm up".into()).await;
    wait_for(&mut delivered, &id).await;
    wait_for(&mut received, "warm up").await;

    // Sequential latency.
    let mut lat = Vec::with_capacity(seq);
    let mut lat_recv = Vec::with_capacity(seq);
    for i in 0..seq {
        let text = format!("sequential {i}");
        let t0 = Instant::now();
        let id = send(&mut ca, text.clone()).await;
        lat_recv.push(wait_for(&mut received, &text).await - t0);
        lat.push(wait_for(&mut delivered, &id).await - t0);
    }
    print_latency("sequential", seq, &mut lat);
    print_latency("received", seq, &mut lat_recv);
    watch_a.abort();
    watch_b.abort();

    // Throughput with many in flight.
    let pids = [a.pid(), b.pid()];
    let cpu0 = cpu_sum(&pids);
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
    let cpu = cpu_sum(&pids).saturating_sub(cpu0);
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
    let rss: Vec<u64> = pids
        .iter()
        .map(|&p| proc_kb(p, "VmRSS").unwrap_or(0))
        .collect();
    let hwm: u64 = pids.iter().map(|&p| proc_kb(p, "VmHWM").unwrap_or(0)).sum();
    println!(
        "resources throughput phase, both daemons summed: cpu {:.0} ms user+sys, {:.1} us/msg; \
         rss {:.1} MiB ({:.1} + {:.1} MiB); peak rss {:.1} MiB",
        ms(cpu),
        cpu.as_secs_f64() * 1e6 / total as f64,
        rss.iter().sum::<u64>() as f64 / 1024.0,
        rss[0] as f64 / 1024.0,
        rss[1] as f64 / 1024.0,
        hwm as f64 / 1024.0
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
