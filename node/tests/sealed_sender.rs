//! Sealed sender toward mailboxes: a mailbox keeps envelopes without learning who deposited
//! them. Separate processes on loopback.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;

const T: Duration = Duration::from_secs(60);

#[test]
fn a_mailbox_does_not_learn_who_deposits() {
    // The mailbox logs each deposit with the peer it came from.
    let mut m = Node::new()
        .with_args(&["--mailbox"])
        .with_log("info,kith_engine=debug");
    m.start();
    let boot = m.p2p_addr();
    let mut a = Node::new().with_args(&["--bootstrap", &boot]);
    let mut b = Node::new().with_args(&["--bootstrap", &boot]);
    a.start();
    b.start();
    b.add_mailbox(&[&m.code()]);
    a.add(&b, "Bob");
    b.add(&a, "Alice");
    a.send("Bob", "hello");
    a.wait_status("Bob", 1, "delivered", T);
    b.stop();
    let id = a.send("Bob", "kept for Bob");
    wait_for(T, "✓ sent via the mailbox", || {
        a.history("Bob")
            .iter()
            .any(|x| x["id"] == id.as_str() && x["status"] == "sent")
            .then_some(())
    });
    let alice = a.json(&["id"])[0]["peer_id"].as_str().unwrap().to_string();
    let logs = m.logs();
    let deposits: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("mailbox deposit"))
        .collect();
    assert!(!deposits.is_empty(), "the mailbox logged no deposit");
    for l in &deposits {
        assert!(
            !l.contains(&alice),
            "the mailbox saw Alice's device deposit: {l}"
        );
    }
    // And Bob still gets it.
    b.start();
    assert_eq!(b.wait_received("Alice", 2, T)[1]["text"], "kept for Bob");
}

/// What a mailbox keeps for one device: the envelopes in its outbox.
fn kept_envelopes(m: &Node) -> Vec<kith_proto::wire::Envelope> {
    let store = kith_engine::open_store(&m.dir, None).unwrap();
    store
        .read(|r| {
            let mut out = Vec::new();
            for dev in r.outbox_devices()? {
                for (_, item) in r.outbox(&dev, usize::MAX)? {
                    out.extend(item.sealed);
                }
            }
            Ok(out)
        })
        .unwrap()
}

/// The throwaway peer ids the mailbox logged deposits from, one per deposit request.
fn deposit_peers(m: &Node) -> Vec<String> {
    m.plain_logs()
        .lines()
        .filter(|l| l.contains("mailbox deposit"))
        .filter_map(|l| l.split_whitespace().find_map(|w| w.strip_prefix("from=")))
        .map(str::to_string)
        .collect()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// A first message to a contact who is away is an Olm pre-key message, which names the
/// sender's Curve25519 key in clear. What the mailbox keeps for it must name neither that key
/// nor the sender's identity, and two deposits (here to two recipients) must come from two
/// different throwaway identities.
#[test]
fn a_first_message_kept_by_a_mailbox_names_no_sender_and_deposits_share_no_identity() {
    let mut m = Node::new()
        .with_args(&["--mailbox"])
        .with_log("info,kith_engine=debug");
    m.start();
    let boot = m.p2p_addr();
    let mut a = Node::new().with_args(&["--bootstrap", &boot]);
    let mut b = Node::new().with_args(&["--bootstrap", &boot]);
    let mut c = Node::new().with_args(&["--bootstrap", &boot]);
    a.start();
    b.start();
    c.start();
    b.add_mailbox(&[&m.code()]);
    c.add_mailbox(&[&m.code()]);
    let (bob, carol) = (b.code(), c.code());
    // Bob and Carol go away before Alice ever reaches them: her first messages are pre-key
    // messages (from the pre-key in their records), left with their mailbox.
    b.stop();
    c.stop();
    a.json(&["contacts", "add", &bob, "--name", "Bob"]);
    a.json(&["contacts", "add", &carol, "--name", "Carol"]);
    let to_bob = a.send("Bob", "first words for Bob");
    let to_carol = a.send("Carol", "first words for Carol");
    for (who, id) in [("Bob", &to_bob), ("Carol", &to_carol)] {
        wait_for(Duration::from_secs(120), "✓ sent via the mailbox", || {
            a.history(who)
                .iter()
                .any(|x| x["id"] == id.as_str() && x["status"] == "sent")
                .then_some(())
        });
    }
    let alice_identity = kith_proto::contact::ContactCard::from_code(&a.code())
        .unwrap()
        .identity;
    // What the mailbox keeps, read from its store while it is stopped.
    m.stop();
    let kept = kept_envelopes(&m);
    assert!(kept.len() >= 2, "the mailbox keeps both first messages");
    let peers = deposit_peers(&m);
    m.start();
    // Bob and Carol come back and read them: the seal opens for its recipient.
    b.start();
    c.start();
    for (n, text) in [(&b, "first words for Bob"), (&c, "first words for Carol")] {
        wait_for(
            Duration::from_secs(120),
            "the first message arrives",
            || {
                let contacts = n.json(&["contacts", "list"]);
                contacts.iter().find_map(|x| {
                    let name = x["name"].as_str()?;
                    n.history(name)
                        .iter()
                        .any(|h| h["text"] == text)
                        .then_some(())
                })
            },
        );
    }
    // Alice's Curve25519 key, as Bob learned it from her certificate.
    b.stop();
    let alice_curve = {
        let store = kith_engine::open_store(&b.dir, None).unwrap();
        store
            .read(|r| r.devices())
            .unwrap()
            .into_iter()
            .find(|d| d.identity == alice_identity)
            .and_then(|d| d.cert)
            .expect("Bob knows Alice's device")
            .curve25519
    };
    // Each deposit came from its own throwaway identity, none of them Alice's device.
    let alice_peer = a.json(&["id"])[0]["peer_id"].as_str().unwrap().to_string();
    assert!(
        peers.len() >= 2,
        "the mailbox logged {} deposits",
        peers.len()
    );
    assert!(peers.iter().all(|p| *p != alice_peer));
    let distinct: std::collections::HashSet<&String> = peers.iter().collect();
    assert_eq!(
        distinct.len(),
        peers.len(),
        "two deposits came from the same identity: {peers:?}"
    );
    for env in &kept {
        assert!(
            !contains(&env.ciphertext, &alice_curve.0),
            "the mailbox keeps an envelope naming Alice's Curve25519 key (kind {})",
            env.kind
        );
        assert!(
            !contains(&env.ciphertext, &alice_identity.0),
            "the mailbox keeps an envelope naming Alice's identity"
        );
    }
}
