//! What peers may make a node do (`kith_net::limits`), over real swarms on memory links: a
//! peer over its request rate is refused as busy by the network layer (its requests never
//! reach the engine) while another peer is served.

#![allow(clippy::expect_used)]

use std::time::Duration;

use kith_net::{
    Keypair, Multiaddr, NetCommand, NetConfig, NetEvent, NetHandle, NetLimits, NetOptions,
    TransportBuilder,
};
use kith_proto::wire::{Refusal, Request, Response};
use libp2p::Transport as _;
use tokio::sync::mpsc::Receiver;
use tokio::time::{Instant, timeout};

/// Memory-link ports of this test (apart from other tests in the process).
const BASE: u64 = 11 << 40;

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

async fn node(port: u64, limits: NetLimits) -> (NetHandle, Receiver<NetEvent>, Multiaddr) {
    let addr: Multiaddr = format!("/memory/{port}").parse().expect("address");
    let (h, ev, _task) = kith_net::spawn(NetConfig {
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
            limits,
            ..NetOptions::default()
        },
    })
    .await
    .expect("network starts");
    (h, ev, addr)
}

/// Sends `n` requests from `from` to `to` at `addr`, one after another, and returns the
/// answers: the node at `to` answers each request that reaches its engine with `PushSet`
/// ([`engine`] runs it).
async fn ask(
    from: &NetHandle,
    from_ev: &mut Receiver<NetEvent>,
    to: &NetHandle,
    addr: &Multiaddr,
    n: u64,
) -> Vec<Response> {
    let mut out = Vec::new();
    for tag in 0..n {
        from.send(NetCommand::Request {
            tag,
            peer: to.local_peer(),
            addrs: vec![addr.clone()],
            req: Request::ClaimPrekey,
        })
        .expect("request");
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match timeout(left, from_ev.recv()).await {
                Ok(Some(NetEvent::Response { tag: t, result, .. })) if t == tag => {
                    out.push(result.expect("answered"));
                    break;
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => panic!("no answer to request {tag}"),
            }
        }
    }
    out
}

/// The served node's engine: answers every request that reaches it with `PushSet`, and counts.
fn engine(h: NetHandle, mut ev: Receiver<NetEvent>) -> tokio::task::JoinHandle<u32> {
    tokio::spawn(async move {
        let mut seen = 0;
        while let Some(e) = ev.recv().await {
            if let NetEvent::InboundRequest { id, .. } = e {
                seen += 1;
                let _ = h.send(NetCommand::Respond {
                    id,
                    resp: Response::PushSet,
                });
            }
        }
        seen
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_over_its_request_rate_is_refused_while_another_is_served() {
    let limits = NetLimits {
        requests_per_minute: 3,
        ..NetLimits::default()
    };
    let (server, server_ev, addr) = node(BASE + 1, limits).await;
    let (flooder, mut flooder_ev, _) = node(BASE + 2, NetLimits::default()).await;
    let (honest, mut honest_ev, _) = node(BASE + 3, NetLimits::default()).await;
    let _engine = engine(server.clone(), server_ev);

    let flood = ask(&flooder, &mut flooder_ev, &server, &addr, 8).await;
    assert!(
        flood[..3].iter().all(|r| *r == Response::PushSet),
        "{flood:?}"
    );
    assert!(
        flood[3..]
            .iter()
            .all(|r| *r == Response::Refused(Refusal::Busy)),
        "past its rate the flooder is refused: {flood:?}"
    );
    let served = ask(&honest, &mut honest_ev, &server, &addr, 3).await;
    assert!(
        served.iter().all(|r| *r == Response::PushSet),
        "another peer is served: {served:?}"
    );
}

/// A peer the engine vouches for (`NetCommand::Vouch`: a device of someone the user knows)
/// is served past the stranger's rate, up to the known rate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vouched_peer_is_served_past_the_strangers_rate() {
    let limits = NetLimits {
        requests_per_minute: 3,
        known_requests_per_minute: 6,
        ..NetLimits::default()
    };
    let (server, server_ev, addr) = node(BASE + 11, limits).await;
    let (friend, mut friend_ev, _) = node(BASE + 12, NetLimits::default()).await;
    let (stranger, mut stranger_ev, _) = node(BASE + 13, NetLimits::default()).await;
    let _engine = engine(server.clone(), server_ev);
    server
        .send(NetCommand::Vouch {
            peer: friend.local_peer(),
        })
        .expect("vouch");
    let served = |answers: &[Response]| answers.iter().filter(|r| **r == Response::PushSet).count();
    let f = ask(&friend, &mut friend_ev, &server, &addr, 8).await;
    assert_eq!(served(&f), 6, "the known rate: {f:?}");
    let s = ask(&stranger, &mut stranger_ev, &server, &addr, 8).await;
    assert_eq!(served(&s), 3, "the stranger's rate: {s:?}");
}
