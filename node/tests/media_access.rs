//! Who may fetch a file: a peer that was not sent it (here a fresh libp2p identity, a
//! stranger to the node) is refused the index and every chunk; the node keeps serving the
//! recipient.
//!
//! All traffic stays on 127.0.0.1.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use futures::StreamExt;
use kith_net::codec::MediaCodec;
use kith_proto::media::{MEDIA_PROTOCOL, MediaRefusal, MediaRequest, MediaResponse};
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, StreamProtocol, noise, tcp, yamux};

const T: Duration = Duration::from_secs(30);

/// Asks `target` at the loopback address `addr` each request in turn, from a new identity.
async fn ask_as_stranger(
    target: PeerId,
    addr: Multiaddr,
    reqs: Vec<MediaRequest>,
) -> Vec<Result<MediaResponse, String>> {
    assert!(
        addr.iter()
            .any(|p| matches!(p, Protocol::Ip4(ip) if ip.is_loopback())),
        "refusing to dial a non-loopback address: {addr}"
    );
    let mut swarm = libp2p::SwarmBuilder::with_new_identity()
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

#[test]
fn only_those_sent_a_file_may_fetch_it() {
    let (a, b) = pair();
    let tmp = tempfile::tempdir().unwrap();
    let bytes = vec![42u8; 700_000];
    let src = tmp.path().join("secret.bin");
    std::fs::write(&src, &bytes).unwrap();
    let id = a.json(&["send", "Bob", "--file", src.to_str().unwrap()])[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    // The root is the name of Alice's copy.
    let root_hex = std::fs::read_dir(a.dir.join("media"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.len() == 64)
        .unwrap();
    let root: [u8; 32] = hex::decode(&root_hex).unwrap().try_into().unwrap();

    let peer: PeerId = a.json(&["id"])[0]["peer_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let addr: Multiaddr = a.listen_addr().parse().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let answers = rt.block_on(ask_as_stranger(
        peer,
        addr,
        vec![
            MediaRequest::Index { root },
            MediaRequest::Chunk { root, index: 0 },
            MediaRequest::Chunk { root, index: 2 },
        ],
    ));
    for a in &answers {
        assert_eq!(
            a.as_ref().unwrap(),
            &MediaResponse::Refused(MediaRefusal::Unauthorized),
            "{answers:?}"
        );
    }

    // Bob, who was sent it, gets it whole.
    let got = wait_for(T, "Bob has the file", || {
        b.history("Alice")
            .into_iter()
            .find(|m| m["id"] == id.as_str())
            .map(|m| m["attachment"].clone())
            .filter(|a| a["state"] == "ready")
    });
    assert_eq!(std::fs::read(got["path"].as_str().unwrap()).unwrap(), bytes);
}
