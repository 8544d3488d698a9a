//! A community node (`NetOptions::community`, what `kith-bootstrap` runs) offers on its
//! connections only what it serves: no circuit relay client (the STOP side a relayed peer
//! needs) and no hole punching, which a device offers. What it serves stays: the Kith
//! protocols, the DHT, the relay hop when it relays, AutoNAT answers.

#![allow(clippy::expect_used)]

use std::time::Duration;

use futures::StreamExt;
use kith_net::{Keypair, Multiaddr, NetConfig, NetOptions, RelayServerConfig, TransportBuilder};
use libp2p::swarm::SwarmEvent;
use libp2p::{Transport as _, identify};

/// Memory-link ports of this test (apart from other tests in the process).
const BASE: u64 = 11 << 40;

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

/// The protocols a node listening on `/memory/<port>` offers a peer that connects to it
/// (what identify tells that peer).
async fn offered(port: u64, community: bool) -> Vec<String> {
    let addr: Multiaddr = format!("/memory/{port}").parse().expect("address");
    let (h, _ev, task) = kith_net::spawn(NetConfig {
        keypair: Keypair::generate_ed25519(),
        listen: vec![addr.clone()],
        bootstrap: Vec::new(),
        mdns: false,
        relays: Vec::new(),
        relay_server: Some(RelayServerConfig::default()),
        private_ips: true,
        external: Vec::new(),
        options: NetOptions {
            transport: Some(memory_links()),
            community,
            ..NetOptions::default()
        },
    })
    .await
    .expect("network starts");
    let mut peer = libp2p::SwarmBuilder::with_existing_identity(Keypair::generate_ed25519())
        .with_tokio()
        .with_other_transport(|k| {
            libp2p::core::transport::MemoryTransport::default()
                .upgrade(libp2p::core::upgrade::Version::V1)
                .authenticate(libp2p::noise::Config::new(k).expect("noise"))
                .multiplex(libp2p::yamux::Config::default())
        })
        .expect("transport")
        .with_behaviour(|k| {
            identify::Behaviour::new(identify::Config::new("/kith/1.0.0".into(), k.public()))
        })
        .expect("behaviour")
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(30)))
        .build();
    peer.dial(addr).expect("dial");
    let protocols = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let SwarmEvent::Behaviour(identify::Event::Received { peer_id, info, .. }) =
                peer.select_next_some().await
                && peer_id == h.local_peer()
            {
                return info.protocols;
            }
        }
    })
    .await
    .expect("the node identifies itself");
    task.abort();
    protocols.iter().map(ToString::to_string).collect()
}

const STOP: &str = "/libp2p/circuit/relay/0.2.0/stop";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_community_node_offers_no_relay_client_but_a_device_does() {
    let device = offered(BASE + 1, false).await;
    let community = offered(BASE + 2, true).await;
    // A device takes relayed connections (the STOP side); a community node never does.
    assert!(device.iter().any(|p| p == STOP), "device offers {device:?}");
    assert!(
        !community.iter().any(|p| p == STOP),
        "community node offers {community:?}"
    );
    // What the community node serves stays: the mailbox, the DHT, AutoNAT answers (the
    // relay hop is the relay tests' to check: it is offered once an address is confirmed).
    for p in [
        kith_proto::wire::PROTOCOL,
        "/kith/kad/1",
        "/libp2p/autonat/1.0.0",
    ] {
        assert!(
            community.iter().any(|q| q == p),
            "community node lacks {p}: {community:?}"
        );
    }
}
