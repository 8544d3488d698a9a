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
    b.json(&["mailbox", "add", &m.code()]);
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
