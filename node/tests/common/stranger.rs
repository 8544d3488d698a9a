//! A stranger to a node: a fresh libp2p identity that asks the media protocol directly
//! (for the tests of who may fetch or leave files). Loopback only.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use futures::StreamExt;
use kith_net::codec::MediaCodec;
use kith_proto::media::{MEDIA_PROTOCOL, MediaRequest, MediaResponse};
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, StreamProtocol, noise, tcp, yamux};

const T: Duration = Duration::from_secs(30);

/// Asks `target` at the loopback address `addr` each request in turn, from a new identity.
pub async fn ask_as_stranger(
    target: PeerId,
    addr: Multiaddr,
    reqs: Vec<MediaRequest>,
) -> Vec<Result<MediaResponse, String>> {
    ask_as(
        libp2p::identity::Keypair::generate_ed25519(),
        target,
        addr,
        reqs,
    )
    .await
}

/// Asks `target` at the loopback address `addr` each request in turn, as the peer of `key`
/// (a node's own key, to ask as that node would).
pub async fn ask_as(
    key: libp2p::identity::Keypair,
    target: PeerId,
    addr: Multiaddr,
    reqs: Vec<MediaRequest>,
) -> Vec<Result<MediaResponse, String>> {
    assert!(
        addr.iter()
            .any(|p| matches!(p, Protocol::Ip4(ip) if ip.is_loopback())),
        "refusing to dial a non-loopback address: {addr}"
    );
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(|_| {
            request_response::Behaviour::<MediaCodec>::with_codec(
                MediaCodec::default(),
                [(
                    StreamProtocol::new(MEDIA_PROTOCOL),
                    ProtocolSupport::Outbound,
                )],
                request_response::Config::default().with_request_timeout(T),
            )
        })
        .unwrap()
        .build();
    swarm.add_peer_address(target, addr);
    let mut out = Vec::new();
    for req in reqs {
        let id = swarm.behaviour_mut().send_request(&target, Ok(req));
        let got = tokio::time::timeout(T, async {
            loop {
                match swarm.select_next_some().await {
                    SwarmEvent::Behaviour(request_response::Event::Message {
                        message:
                            request_response::Message::Response {
                                request_id,
                                response,
                            },
                        ..
                    }) if request_id == id => return Ok(response),
                    SwarmEvent::Behaviour(request_response::Event::OutboundFailure {
                        request_id,
                        error,
                        ..
                    }) if request_id == id => return Err(error.to_string()),
                    _ => {}
                }
            }
        })
        .await
        .unwrap_or_else(|_| Err("no answer in time".into()));
        out.push(got);
    }
    out
}
