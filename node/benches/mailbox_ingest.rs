//! A mailbox under load from many senders, and a returning device taking its mail back.
//! One `kith up --mailbox` on loopback; every other party is a raw libp2p peer in this
//! process with its own peer id, speaking `/kith/msg/1` with the node's codec.
//!
//! 1. **Ingest.** D devices register with the mailbox and go offline. S senders, connected
//!    beforehand, then each send `Deliver` requests of B envelopes (each request for one
//!    device, devices taken in turn; ciphertexts random and distinct, 200–500 bytes), with
//!    up to F requests in flight per sender. Counted: envelopes answered `Accepted`, which the
//!    mailbox gives only after its redb commit (fsync). Measured: from the first request
//!    until the last answer; and the latency of each request.
//! 2. **Drain.** A fresh mailbox; one device registers and goes offline; 10,000 envelopes are
//!    deposited for it (each its own envelope). Then the device connects again and answers
//!    every delivery `Stored`. Measured: from the start of its dial until all 10,000 arrived,
//!    and until the mailbox's outbox is empty (it deleted them after the device's answer).
//!
//! Run: `cargo bench -p kith --bench mailbox_ingest`. Knobs (environment): KITH_BENCH_N
//! (100000 envelopes), KITH_BENCH_SENDERS (32), KITH_BENCH_BATCH (16), KITH_BENCH_INFLIGHT
//! (1 per sender), KITH_BENCH_DEVICES (64), KITH_BENCH_SIZE_MIN / _MAX (200 / 500 bytes),
//! KITH_BENCH_QUOTA (mailbox quota per device, default the node's 10000), KITH_BENCH_DRAIN
//! (10000), KITH_BENCH_ONLY (`ingest` or `drain`). Prints its figures; asserts nothing
//! about time.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use kith_api::Client;
use kith_api::methods::{self, NoParams};
use kith_proto::wire::MAX_BATCH;
use support::load::{Load, Tally, deposit};
use support::peer::{Recipient, node_addr};
use support::*;

#[tokio::main]
async fn main() {
    let only = std::env::var("KITH_BENCH_ONLY").unwrap_or_default();
    let size = (
        env_usize("KITH_BENCH_SIZE_MIN", 200).max(1),
        env_usize("KITH_BENCH_SIZE_MAX", 500).max(1),
    );
    let quota = env_usize("KITH_BENCH_QUOTA", 0);
    if only != "drain" {
        let load = Load {
            envelopes: env_usize("KITH_BENCH_N", 100_000),
            senders: env_usize("KITH_BENCH_SENDERS", 32).max(1),
            batch: env_usize("KITH_BENCH_BATCH", 16).clamp(1, MAX_BATCH),
            in_flight: env_usize("KITH_BENCH_INFLIGHT", 1).max(1),
            size,
        };
        ingest(load, env_usize("KITH_BENCH_DEVICES", 64).max(1), quota).await;
    }
    if only != "ingest" {
        drain(env_usize("KITH_BENCH_DRAIN", 10_000), size).await;
    }
}

/// `kith up --mailbox`, with a quota per device when `quota` is not 0.
async fn mailbox(quota: usize) -> Daemon {
    let q = quota.to_string();
    if quota == 0 {
        daemon_with(&["--mailbox"]).await
    } else {
        daemon_with(&["--mailbox", "--mailbox-quota", &q]).await
    }
}

async fn ingest(load: Load, devices: usize, quota: usize) {
    let m = mailbox(quota).await;
    let (node, addr) = node_addr(&m).await;
    let mut curves = Vec::with_capacity(devices);
    for _ in 0..devices {
        let r = Recipient::default();
        drop(r.register(node, &addr).await);
        curves.push(r.curve());
    }
    let d = deposit(node, &addr, &curves, load).await;
    let secs = (d.tally.last.unwrap() - d.first_request).as_secs_f64();
    report_ingest(&m, load, devices, &d.tally, secs).await;
}

async fn report_ingest(m: &Daemon, load: Load, devices: usize, t: &Tally, secs: f64) {
    let mut c = Client::connect(&sock(&m.dir)).await.unwrap();
    let held = c.call::<methods::Status>(NoParams {}).await.unwrap().outbox;
    let requests = t.latencies.len();
    println!(
        "ingest   senders={} batch={} in flight per sender={} devices={devices} \
         ciphertext={}-{} B",
        load.senders, load.batch, load.in_flight, load.size.0, load.size.1
    );
    println!(
        "         {} envelopes accepted (committed) in {secs:.2} s: {:.0} envelopes/s, \
         {:.0} requests/s",
        t.accepted,
        t.accepted as f64 / secs,
        requests as f64 / secs
    );
    println!(
        "         request latency p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms \
         (n={requests})",
        ms(pct(&t.latencies, 0.50)),
        ms(pct(&t.latencies, 0.90)),
        ms(pct(&t.latencies, 0.99)),
        ms(*t.latencies.last().unwrap())
    );
    println!(
        "         not accepted: {} mailbox full, {} rejected otherwise, {} requests refused, \
         {} failed; the mailbox holds {held} envelopes",
        t.full, t.rejected, t.refused, t.failed
    );
}

async fn drain(n: usize, size: (usize, usize)) {
    let m = mailbox(n.max(10_000)).await;
    let (node, addr) = node_addr(&m).await;
    let device = Recipient::default();
    drop(device.register(node, &addr).await);
    let load = Load {
        envelopes: n,
        senders: 4,
        batch: 250,
        in_flight: 1,
        size,
    };
    // Whatever does not divide into whole batches is sent by one more sender.
    let mut t = deposit(node, &addr, &[device.curve()], load).await.tally;
    let rest = n - t.accepted;
    if rest > 0 {
        let one = Load {
            envelopes: rest,
            senders: 1,
            batch: rest.min(MAX_BATCH),
            ..load
        };
        let more = deposit(node, &addr, &[device.curve()], one).await.tally;
        t.add(more);
    }
    let mut c = Client::connect(&sock(&m.dir)).await.unwrap();
    let held = c.call::<methods::Status>(NoParams {}).await.unwrap().outbox;
    assert_eq!(t.accepted, n, "the mailbox did not take them all: {t:?}");
    assert_eq!(held, n, "the mailbox holds {held} envelopes, expected {n}");

    // The device comes back.
    let (tx, mut got) = tokio::sync::watch::channel(0);
    let t0 = Instant::now();
    let curve = device.curve();
    // Like a real device, it registers on its new connection, and then the mailbox hands
    // over what it kept.
    let serving =
        tokio::spawn(async move { device.register(node, &addr).await.serve(curve, tx).await });
    tokio::time::timeout(Duration::from_secs(120), got.wait_for(|&k| k >= n))
        .await
        .expect("the mailbox did not hand over everything in 120 s")
        .unwrap();
    let arrived = t0.elapsed();
    outbox_empty(&mut c).await;
    let emptied = t0.elapsed();
    let received = *got.borrow();
    serving.abort();
    println!(
        "drain    {n} envelopes ({}-{} B) queued separately for one device: all {received} \
         arrived {:.3} s after it dialled (connection set-up included); the mailbox's outbox \
         was empty after {:.3} s",
        size.0,
        size.1,
        arrived.as_secs_f64(),
        emptied.as_secs_f64()
    );
}
