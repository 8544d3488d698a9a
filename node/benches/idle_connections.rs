//! Memory of a mailbox node holding many idle connections.
//!
//! One `kith up --mailbox` on loopback. This process opens C connections to it, each from
//! its own small libp2p swarm (its own peer id; TCP, Noise, Yamux, identify and ping, as a
//! device runs them), in steps of K so the node's limit of 256 pending inbound connections
//! is never reached, and keeps them open without any request. Printed: the node's resident
//! memory (`VmRSS` in `/proc/PID/status`) before and after, per connection, and how many
//! peers the node reports connected (`status`), checked again at the end.
//!
//! The node closes a connection that carried no stream for 120 s (identify and ping do not
//! keep it alive), so the measurement is taken well within that: the bench prints how long
//! after the first connection it was taken.
//!
//! Run: `cargo bench -p kith --bench idle_connections`. Knobs: KITH_BENCH_CONNS (2000),
//! KITH_BENCH_STEP (100), KITH_BENCH_SETTLE (3 s before each reading). The bench raises its
//! open-file limit (which the node inherits) to fit. Prints its figures; asserts nothing
//! about memory.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kith_api::Client;
use libp2p::identity::Keypair;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, identify, ping};
use support::peer::{dial, node_addr, swarm};
use support::*;

/// What each idle peer runs.
#[derive(NetworkBehaviour)]
struct Idle {
    identify: identify::Behaviour,
    ping: ping::Behaviour,
}

/// Connections up now, and failures to connect.
#[derive(Default)]
struct Counts {
    open: AtomicUsize,
    failed: AtomicUsize,
}

#[tokio::main]
async fn main() {
    let conns = env_usize("KITH_BENCH_CONNS", 2000);
    let step = env_usize("KITH_BENCH_STEP", 100).clamp(1, 200);
    let settle = Duration::from_secs(env_usize("KITH_BENCH_SETTLE", 3) as u64);
    // Two descriptors per connection (ours and the node's) and room for the rest.
    raise_nofile(2 * conns as u64 + 1024);

    let m = daemon_with(&["--mailbox"]).await;
    let pid = m.pid();
    let (node, addr) = node_addr(&m).await;
    let mut c = Client::connect(&sock(&m.dir)).await.unwrap();
    tokio::time::sleep(settle).await;
    let before = rss(pid);

    let counts = Arc::new(Counts::default());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::with_capacity(conns);
    let t0 = Instant::now();
    while tasks.len() < conns {
        let want = (tasks.len() + step).min(conns);
        while tasks.len() < want {
            let (counts, addr, stopped) = (counts.clone(), addr.clone(), stopped.clone());
            tasks.push(tokio::spawn(idle_peer(node, addr, counts, stopped)));
        }
        let start = Instant::now();
        while counts.open.load(Ordering::SeqCst) + counts.failed.load(Ordering::SeqCst) < want {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "connections stalled at {}",
                counts.open.load(Ordering::SeqCst)
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let ramp = t0.elapsed();
    tokio::time::sleep(settle).await;
    let after = rss(pid);
    let peak = proc_kb(pid, "VmHWM").unwrap_or(0);
    let seen = connected(&mut c).await;
    let taken = t0.elapsed();
    let open = counts.open.load(Ordering::SeqCst);
    println!(
        "idle     {open} connections open ({} failed), from distinct peer ids, opened in steps \
         of {step} in {:.1} s; the node reports {seen} peers connected",
        counts.failed.load(Ordering::SeqCst),
        ramp.as_secs_f64()
    );
    println!(
        "         node RSS {:.1} MiB before, {:.1} MiB with them ({:.1} s after the first), \
         peak {:.1} MiB: {:.1} KiB per connection",
        before as f64 / 1024.0,
        after as f64 / 1024.0,
        taken.as_secs_f64(),
        peak as f64 / 1024.0,
        after.saturating_sub(before) as f64 / open.max(1) as f64
    );

    // Still open after the reading?
    tokio::time::sleep(settle).await;
    let still = connected(&mut c).await;
    println!(
        "         {:.1} s after the first connection the node still reports {still} peers \
         connected",
        t0.elapsed().as_secs_f64()
    );
    stop.send_replace(true);
    for t in tasks {
        let _ = t.await;
    }
}

/// One idle peer: connects, then only answers whatever the node sends until told to stop.
async fn idle_peer(
    node: PeerId,
    addr: Multiaddr,
    counts: Arc<Counts>,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    let mut s = swarm(Keypair::generate_ed25519(), |k| Idle {
        identify: identify::Behaviour::new(identify::Config::new("/kith/1.0.0".into(), k.public())),
        ping: ping::Behaviour::default(),
    });
    if dial(&mut s, node, &addr).await.is_err() {
        counts.failed.fetch_add(1, Ordering::SeqCst);
        return;
    }
    counts.open.fetch_add(1, Ordering::SeqCst);
    loop {
        tokio::select! {
            ev = s.select_next_some() => {
                if let SwarmEvent::ConnectionClosed { num_established: 0, .. } = ev {
                    counts.open.fetch_sub(1, Ordering::SeqCst);
                    return;
                }
            }
            _ = stopped.changed() => return,
        }
    }
}
