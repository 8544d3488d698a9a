//! Links nobody uses close, although gossipsub holds a stream open on every connection of a
//! node that joined a topic (libp2p issue 5190); links to peers in a topic's mesh, and links
//! the engine says are in use, stay.

#![allow(clippy::expect_used)]

use std::time::Duration;

use kith_net::{
    Keypair, Multiaddr, NetCommand, NetConfig, NetEvent, NetOptions, PeerId, TransportBuilder,
};
use libp2p::Transport as _;
use tokio::sync::mpsc::Receiver;
use tokio::time::{Instant, timeout};

/// Memory-link ports of this test (apart from other tests in the process).
const BASE: u64 = 7 << 40;

/// In-process memory links (`/memory/<n>`) with Noise and Yamux.
fn memory_links() -> TransportBuilder {
    TransportBuilder::new(|key| {
        Ok(libp2p::core::transport::MemoryTransport::default()
            .upgrade(libp2p::core::upgrade::Version::V1)
            .authenticate(libp2p::noise::Config::new(key)?)
            .multiplex(libp2p::yamux::Config::default())
            .map(|(p, m), _| (p, libp2p::core::muxing::StreamMuxerBox::new(m)))
            .boxed())
    })
}

async fn node(
    port: u64,
    topic: &str,
) -> (
    kith_net::NetHandle,
    Receiver<NetEvent>,
    tokio::task::JoinHandle<()>,
    Multiaddr,
) {
    let addr: Multiaddr = format!("/memory/{port}").parse().expect("address");
    let (h, ev, task) = kith_net::spawn(NetConfig {
        keypair: Keypair::generate_ed25519(),
        listen: vec![addr.clone()],
        bootstrap: Vec::new(),
        mdns: false,
        relays: Vec::new(),
        relay_server: None,
        private_ips: true,
        external: Vec::new(),
        options: NetOptions {
            transport: Some(memory_links()),
            idle_timeout: Duration::from_secs(1),
            ..NetOptions::default()
        },
    })
    .await
    .expect("network starts");
    h.send(NetCommand::Subscribe {
        topic: topic.into(),
    })
    .expect("subscribe");
    (h, ev, task, addr)
}

/// Waits up to `within` for `peer` to connect (`true`) or disconnect (`false`).
async fn wait_for(ev: &mut Receiver<NetEvent>, peer: PeerId, up: bool, within: Duration) -> bool {
    let end = Instant::now() + within;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        match timeout(left, ev.recv()).await {
            Ok(Some(NetEvent::Connected { peer: p })) if p == peer && up => return true,
            Ok(Some(NetEvent::Disconnected { peer: p })) if p == peer && !up => return true,
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => return false,
        }
    }
}

/// `from` dials `to` and waits until they are connected.
async fn connect(
    from: &kith_net::NetHandle,
    from_ev: &mut Receiver<NetEvent>,
    to: &kith_net::NetHandle,
    to_addr: Multiaddr,
) {
    from.send(NetCommand::Dial {
        peer: to.local_peer(),
        addrs: vec![to_addr],
    })
    .expect("dial");
    assert!(
        wait_for(from_ev, to.local_peer(), true, Duration::from_secs(10)).await,
        "the dial connects"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unused_link_closes_and_a_mesh_link_stays() {
    // A and B joined different topics: their link carries gossipsub's streams and nothing
    // else, and closes once idle (1 s here) at A's next check (every 5 s).
    let (a, mut a_ev, _at, _) = node(BASE + 1, "topic-a").await;
    let (b, _b_ev, _bt, b_addr) = node(BASE + 2, "topic-b").await;
    connect(&a, &mut a_ev, &b, b_addr).await;
    assert!(
        wait_for(&mut a_ev, b.local_peer(), false, Duration::from_secs(20)).await,
        "the unused link closes"
    );

    // C and D joined the same topic: they are in each other's mesh, and the link stays
    // past several checks.
    let (c, mut c_ev, _ct, _) = node(BASE + 3, "topic-cd").await;
    let (d, _d_ev, _dt, d_addr) = node(BASE + 4, "topic-cd").await;
    connect(&c, &mut c_ev, &d, d_addr).await;

    // E and F joined different topics, but both engines say the link is in use (as a mailbox
    // does for its registered devices, and a device for its mailbox) more often than the
    // idle time: it stays too.
    let (e, mut e_ev, _et, _) = node(BASE + 5, "topic-e").await;
    let (f, _f_ev, _ft, f_addr) = node(BASE + 6, "topic-f").await;
    connect(&e, &mut e_ev, &f, f_addr).await;
    let keep = async {
        for _ in 0..64 {
            e.send(NetCommand::Keep {
                peers: vec![f.local_peer()],
            })
            .expect("keep");
            f.send(NetCommand::Keep {
                peers: vec![e.local_peer()],
            })
            .expect("keep");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    };
    let (mesh_closed, (kept_closed, ())) = tokio::join!(
        wait_for(&mut c_ev, d.local_peer(), false, Duration::from_secs(16)),
        async {
            tokio::join!(
                wait_for(&mut e_ev, f.local_peer(), false, Duration::from_secs(16)),
                keep
            )
        }
    );
    assert!(!mesh_closed, "a link between mesh peers stays");
    assert!(!kept_closed, "a link the engine keeps stays");
}

/// Regression (issue 19: `thousand` opened 2.1 million connections): Kademlia's requests
/// did not count as use, so a link that only the DHT used closed once idle however busy
/// it was, and the next request dialled it again. Now they count, both ways.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_busy_with_the_dht_stays() {
    // G and H joined different topics; G looks a record up at H four times a second, more
    // often than the idle time (1 s), for longer than three checks.
    let (g, mut g_ev, _gt, _) = node(BASE + 7, "topic-g").await;
    let (h, _h_ev, _ht, h_addr) = node(BASE + 8, "topic-h").await;
    connect(&g, &mut g_ev, &h, h_addr).await;
    let lookups = async {
        for _ in 0..64 {
            g.send(NetCommand::ProbeRecord {
                key: b"a record nobody has".to_vec(),
            })
            .expect("lookup");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    };
    let (closed, ()) = tokio::join!(
        wait_for(&mut g_ev, h.local_peer(), false, Duration::from_secs(16)),
        lookups
    );
    assert!(!closed, "a link the DHT uses stays");
}
