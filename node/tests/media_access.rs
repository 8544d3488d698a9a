//! Who may fetch a file: a peer that was not sent it (here a fresh libp2p identity, a
//! stranger to the node) is refused the index and every chunk; the node keeps serving the
//! recipient, until the recipient is blocked.
//!
//! All traffic stays on 127.0.0.1.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/stranger.rs"]
mod stranger;

use std::time::Duration;

use common::*;
use kith_proto::media::{MediaRefusal, MediaRequest, MediaResponse};
use libp2p::{Multiaddr, PeerId};
use stranger::{ask_as, ask_as_stranger};

const T: Duration = Duration::from_secs(30);

/// The root of the one file `a` sent: the name of its copy in the media folder.
fn sent_root(a: &Node) -> [u8; 32] {
    let root_hex = std::fs::read_dir(a.dir.join("media"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.len() == 64)
        .unwrap();
    hex::decode(&root_hex).unwrap().try_into().unwrap()
}

/// A node's peer id and listening address, to ask it directly.
fn peer_and_addr(a: &Node) -> (PeerId, Multiaddr) {
    let peer = a.json(&["id"])[0]["peer_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    (peer, a.listen_addr().parse().unwrap())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
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
    let root = sent_root(&a);

    let (peer, addr) = peer_and_addr(&a);
    let rt = runtime();
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
    assert_eq!(b.saved(got["id"].as_str().unwrap()), bytes);
}

/// A block ends the serving of files at once: Bob (here the test, with Bob's own key) is
/// served two chunks, Alice blocks him, and the next chunk is refused. The engine did not
/// check blocks before serving (fixed with this test).
#[test]
fn a_blocked_recipient_is_refused_the_next_chunk() {
    let (a, mut b) = pair();
    b.json(&["media", "auto-download", "0"]);
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("three-chunks.bin");
    std::fs::write(&src, vec![7u8; 700_000]).unwrap();
    let id = a.json(&["send", "Bob", "--file", src.to_str().unwrap()])[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    wait_for(T, "Bob has the file message", || {
        b.history("Alice")
            .into_iter()
            .find(|m| m["id"] == id.as_str())
    });
    let root = sent_root(&a);
    // Bob's node steps aside; the test asks as Bob.
    b.stop();
    let (bob, _) = kith_engine::KeyFile::load_or_create(&b.dir.join("keys"), None).unwrap();
    let (peer, addr) = peer_and_addr(&a);
    let rt = runtime();
    let chunk = |index| MediaRequest::Chunk { root, index };
    let before = rt.block_on(ask_as(
        bob.p2p.clone(),
        peer,
        addr.clone(),
        vec![chunk(0), chunk(1)],
    ));
    for r in &before {
        assert!(
            matches!(r, Ok(MediaResponse::Chunk(_))),
            "Bob is served: {r:?}"
        );
    }
    a.json(&["block", "Bob"]);
    let after = rt.block_on(ask_as(bob.p2p.clone(), peer, addr, vec![chunk(2)]));
    assert_eq!(
        after[0].as_ref().unwrap(),
        &MediaResponse::Refused(MediaRefusal::Unauthorized),
        "a blocked recipient gets no further chunk"
    );
}
