//! Pre-key messages cannot be replayed: a first message, made from the fallback pre-key in
//! the recipient's record and kept by a mailbox, is delivered again by that (hostile)
//! mailbox after the recipient pruned its envelope hash and lost the session it opened. It
//! must not open a second session. Separate processes on loopback; the store edits stand in
//! for time passing (30 days of hash retention) and for session resets.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use kith_store::{OutboxItem, device_key};
use kith_types::DeviceKey;

const T: Duration = Duration::from_secs(120);

/// Bob's stored Olm sessions with Alice's device (by her identity).
fn sessions_with(b: &Node, alice: &kith_types::IdentityKey) -> (DeviceKey, usize) {
    let store = kith_engine::open_store(&b.dir, None).unwrap();
    store
        .read(|r| {
            let dev = r
                .devices()?
                .into_iter()
                .find(|d| d.identity == *alice)
                .map(|d| device_key(&d.peer_id))
                .expect("Bob knows Alice's device");
            Ok((dev, r.sessions(&dev)?.len()))
        })
        .unwrap()
}

fn mailbox_outbox(m: &Node) -> u64 {
    m.json(&["status"])[0]["outbox"].as_u64().unwrap()
}

#[test]
fn a_replayed_prekey_envelope_opens_no_second_session_after_its_hash_is_pruned() {
    let mut m = Node::new().with_args(&["--mailbox"]);
    m.start();
    let boot = m.p2p_addr();
    let mut a = Node::new().with_args(&["--bootstrap", &boot]);
    let mut b = Node::new()
        .with_args(&["--bootstrap", &boot])
        .with_log("info,kith_engine=debug");
    a.start();
    b.start();
    b.add_mailbox(&[&m.code()]);
    let bob = b.code();
    b.stop();
    // Alice's first message, from the fallback pre-key in Bob's record, kept by the mailbox.
    a.json(&["contacts", "add", &bob, "--name", "Bob"]);
    let id = a.send("Bob", "first words");
    wait_for(T, "✓ sent via the mailbox", || {
        a.history("Bob")
            .iter()
            .any(|x| x["id"] == id.as_str() && x["status"] == "sent")
            .then_some(())
    });
    let alice = kith_proto::contact::ContactCard::from_code(&a.code())
        .unwrap()
        .identity;
    a.stop();
    // The mailbox keeps a copy of what it holds for Bob.
    m.stop();
    let kept: Vec<(DeviceKey, OutboxItem)> = {
        let store = kith_engine::open_store(&m.dir, None).unwrap();
        store
            .read(|r| {
                let mut out = Vec::new();
                for dev in r.outbox_devices()? {
                    for (_, item) in r.outbox(&dev, usize::MAX)? {
                        out.push((dev, item));
                    }
                }
                Ok(out)
            })
            .unwrap()
    };
    assert!(!kept.is_empty(), "the mailbox keeps Alice's first message");
    m.start();
    b.start();
    wait_for(T, "Bob reads the first message", || {
        b.json(&["contacts", "list"]).iter().find_map(|c| {
            let name = c["name"].as_str()?;
            b.history(name)
                .iter()
                .any(|h| h["text"] == "first words")
                .then_some(())
        })
    });
    wait_for(T, "the mailbox let go of it", || {
        (mailbox_outbox(&m) == 0).then_some(())
    });
    b.stop();
    // Time passes: Bob's envelope hashes are pruned, and the session the message opened is
    // gone (resets drop old sessions).
    let (alice_dev, n) = sessions_with(&b, &alice);
    assert!(n > 0, "the first message opened a session");
    {
        let store = kith_engine::open_store(&b.dir, None).unwrap();
        store
            .write(|w| {
                w.prune_seen(u64::MAX)?;
                w.put_sessions(&alice_dev, &[])
            })
            .unwrap();
    }
    // The mailbox delivers the same envelope again.
    m.stop();
    {
        let store = kith_engine::open_store(&m.dir, None).unwrap();
        store
            .write(|w| {
                for (dev, item) in &kept {
                    w.push_outbox(dev, item)?;
                }
                Ok(())
            })
            .unwrap();
    }
    m.start();
    assert!(mailbox_outbox(&m) > 0);
    b.start();
    wait_for(T, "Bob answered the replay", || {
        (mailbox_outbox(&m) == 0).then_some(())
    });
    b.stop();
    let (_, after) = sessions_with(&b, &alice);
    assert_eq!(
        after, 0,
        "the replayed pre-key message opened a new session with Alice's device"
    );
    assert!(
        b.plain_logs().contains("replayed pre-key message refused"),
        "Bob did not refuse the replay"
    );
}
