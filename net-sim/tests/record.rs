//! A node whose first user-record publication reaches no DHT peer (it started before it
//! knew any) publishes again soon, so others can find it by its identity; it used to wait
//! for the half-hourly republication, unreachable for anyone without its addresses until
//! then. Found by the 64-member group benchmark: the last members to start were never
//! reached by senders who knew them only by identity.
//!
//! Three real engines over memory links: X starts alone (its publication fails; Kademlia
//! keeps the record in X's own store only), Y bootstraps from X, then X stops and Z
//! bootstraps from Y. Z must find X's record in the DHT, which it can only if X published it
//! again while Y was there.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use kith_engine::{Engine, EngineConfig, EngineHandle, Multiaddr};
use kith_net_sim::SimNet;
use kith_proto::contact::ContactCard;

static NEXT_PORT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(5_000_000);

struct Node {
    h: EngineHandle,
    task: tokio::task::JoinHandle<()>,
    sim: SimNet,
    addr: Multiaddr,
    identity: kith_types::IdentityKey,
}

async fn start(dir: &std::path::Path, name: &str, boot: Option<Multiaddr>) -> Node {
    let port = NEXT_PORT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let sim = SimNet::new(None);
    let cfg = EngineConfig {
        store_cache: 4 << 20,
        data_dir: dir.join(name),
        listen: vec![format!("/memory/{port}").parse().unwrap()],
        bootstrap: boot.into_iter().collect(),
        mdns: false,
        mailbox: None,
        reach: kith_engine::ReachConfig::default(),
        store_fsync: true,
        calls: Default::default(),
        net: sim.options(),
    };
    let (h, task) = Engine::start(cfg).await.unwrap();
    let info = h.info().await.unwrap();
    let identity = ContactCard::from_code(&info.code).unwrap().identity;
    let addr = format!("/memory/{port}/p2p/{}", info.peer_id)
        .parse()
        .unwrap();
    Node {
        h,
        task,
        sim,
        addr,
        identity,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_no_dht_peer_stored_is_published_again() {
    let dir = tempfile::tempdir().unwrap();
    let x = start(dir.path(), "x", None).await;
    // X's first publication (right after start, with no DHT peer) has failed by now.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let y = start(dir.path(), "y", Some(x.addr.clone())).await;
    // X's next publication is due 2 s after the failed one.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let x_identity = x.identity;
    x.h.shutdown().await;
    let _ = x.task.await;
    let z = start(dir.path(), "z", Some(y.addr.clone())).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut asked = 0;
    let found = loop {
        if z.sim.lookups().iter().any(|l| l.found) {
            break true;
        }
        if Instant::now() >= deadline {
            break false;
        }
        if z.sim.lookups().len() == asked {
            // Ask again once the last lookup has finished (it fails until X has published).
            if z.sim.lookup(&x_identity).is_ok() {
                asked += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let lookups = z.sim.lookups();
    for n in [y, z] {
        n.h.shutdown().await;
        let _ = n.task.await;
    }
    assert!(
        found,
        "Z never found X's record in the DHT ({} lookups: {lookups:?})",
        lookups.len()
    );
}
