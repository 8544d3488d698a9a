//! Offline delivery through a mailbox: two `kith up` daemons and a `kith up --mailbox` on
//! loopback, driven through the JSON-RPC API.
//!
//! 1. Bob registers with the mailbox and goes away. Alice sends N messages (many in flight);
//!    they are sealed (bursts share envelopes) and deposited with the mailbox, which commits
//!    before it answers. Measured: from the first send until every message is ✓ sent.
//! 2. Bob comes back. Measured: from his start until the mailbox holds nothing for him and
//!    every message is in his store (drain).
//!
//! Run: `cargo bench -p kith --bench mailbox` (KITH_BENCH_N=10000, KITH_BENCH_CONCURRENCY=48).
//! Prints its figures; asserts nothing about time.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Instant;

use kith_api::Client;
use kith_api::methods::{self, AddMailboxParams, HistoryParams, NoParams};
use support::*;

#[tokio::main]
async fn main() {
    let n = env_usize("KITH_BENCH_N", 10_000);
    let conc = env_usize("KITH_BENCH_CONCURRENCY", 48).clamp(1, 60);

    let m = daemon_with(&["--mailbox", "--mailbox-quota", "1000000"]).await;
    let mut cm = Client::connect(&sock(&m.dir)).await.unwrap();
    let m_info = cm.call::<methods::Id>(NoParams {}).await.unwrap();
    let boot = format!("/ip4/127.0.0.1/tcp/{}/p2p/{}", m.port, m_info.peer_id);
    let a = daemon_with(&["--bootstrap", &boot]).await;
    let mut b = daemon_with(&["--bootstrap", &boot]).await;
    let mut ca = Client::connect(&sock(&a.dir)).await.unwrap();
    let mut cb = Client::connect(&sock(&b.dir)).await.unwrap();
    cb.call::<methods::MailboxAdd>(AddMailboxParams {
        code: m_info.code.clone(),
        token: None,
    })
    .await
    .unwrap();
    // The record listing the mailbox goes out in the background: wait for it, as Alice
    // looks it up to find where to deposit.
    while cb
        .call::<methods::Status>(NoParams {})
        .await
        .unwrap()
        .record
        == "publishing"
    {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    befriend(&mut ca, &mut cb).await;
    drop(cb);
    // Bob goes away.
    b.stop();

    let t0 = Instant::now();
    let per = n / conc;
    let total = per * conc;
    send_concurrently(&a.dir, "Bob", conc, per, "kept").await;
    let queued = t0.elapsed();
    outbox_empty(&mut ca).await;
    let deposited = t0.elapsed();
    let held = cm
        .call::<methods::Status>(NoParams {})
        .await
        .unwrap()
        .outbox;
    println!(
        "deposit  n={total} concurrency={conc}: queued durably at the sender in {:.2} s; all ✓ sent \
         (committed by the mailbox) after {:.2} s ({:.0} msg/s); the mailbox holds {held} envelopes",
        queued.as_secs_f64(),
        deposited.as_secs_f64(),
        total as f64 / deposited.as_secs_f64()
    );

    // Bob comes back and drains his mailbox.
    let t1 = Instant::now();
    b.restart().await;
    outbox_empty(&mut cm).await;
    let drained = t1.elapsed();
    let mut cb = Client::connect(&sock(&b.dir)).await.unwrap();
    let got = cb
        .call::<methods::History>(HistoryParams {
            with: "Alice".into(),
            limit: 10_000,
        })
        .await
        .unwrap()
        .len();
    println!(
        "drain    {held} envelopes ({total} messages) to the returning device: {:.2} s from its \
         start (startup included); its last 10000 messages: {got}",
        drained.as_secs_f64()
    );
}
