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

use std::sync::Arc;
use std::time::{Duration, Instant};

use kith_api::Client;
use kith_api::methods::{self, NoParams};
use kith_proto::wire::{DeliveryResult, MAX_BATCH, Request, Response};
use libp2p::identity::Keypair;
use libp2p::{Multiaddr, PeerId};
use support::peer::{Filler, MsgPeer, Recipient, node_addr};
use support::*;

/// The load: who sends what.
#[derive(Clone, Copy, Debug)]
struct Load {
    envelopes: usize,
    senders: usize,
    batch: usize,
    in_flight: usize,
    size: (usize, usize),
}

/// What the senders got back.
#[derive(Debug, Default)]
struct Tally {
    accepted: usize,
    full: usize,
    rejected: usize,
    refused: usize,
    failed: usize,
    latencies: Vec<Duration>,
    last: Option<Instant>,
}

impl Tally {
    fn add(&mut self, o: Tally) {
        self.accepted += o.accepted;
        self.full += o.full;
        self.rejected += o.rejected;
        self.refused += o.refused;
        self.failed += o.failed;
        self.latencies.extend(o.latencies);
        self.last = self.last.max(o.last);
    }
}

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

/// What `deposit` measured, and when the first request left.
struct Deposited {
    tally: Tally,
    first_request: Instant,
}

/// Connects `load.senders` senders, then has them all deposit `load.envelopes` envelopes
/// (rounded down to whole batches per sender) for the devices `curves`, in turn.
async fn deposit(
    node: PeerId,
    addr: &Multiaddr,
    curves: &[kith_types::CurveKey],
    load: Load,
) -> Deposited {
    let per_sender = load.envelopes / load.senders;
    let batches = per_sender / load.batch;
    let start = Arc::new(tokio::sync::Barrier::new(load.senders + 1));
    let mut tasks = Vec::with_capacity(load.senders);
    for s in 0..load.senders {
        let mut peer = MsgPeer::connect(Keypair::generate_ed25519(), node, addr).await;
        // The requests are made before the clock starts, so the load generator spends its
        // share of the 2 cores on the network only.
        let mut fill = Filler::new(s as u64);
        let reqs: Vec<Request> = (0..batches)
            .map(|i| {
                let to = curves[(s + i * load.senders) % curves.len()];
                let envelopes = (0..load.batch)
                    .map(|_| fill.envelope(to, load.size.0, load.size.1))
                    .collect();
                Request::Deliver { envelopes }
            })
            .collect();
        let start = start.clone();
        tasks.push(tokio::spawn(async move {
            let mut t = Tally::default();
            start.wait().await;
            peer.pipeline(reqs, load.in_flight, |answer, took| {
                t.latencies.push(took);
                t.last = Some(Instant::now());
                match answer {
                    Ok(Response::Delivered { results }) => {
                        for r in results {
                            match r {
                                DeliveryResult::Accepted => t.accepted += 1,
                                DeliveryResult::Rejected(
                                    kith_proto::wire::RejectReason::MailboxFull,
                                ) => t.full += 1,
                                _ => t.rejected += 1,
                            }
                        }
                    }
                    Ok(_) => t.refused += 1,
                    Err(_) => t.failed += 1,
                }
            })
            .await;
            t
        }));
    }
    start.wait().await;
    let first_request = Instant::now();
    let mut tally = Tally::default();
    for t in tasks {
        tally.add(t.await.unwrap());
    }
    tally.latencies.sort();
    Deposited {
        tally,
        first_request,
    }
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
