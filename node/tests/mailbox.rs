//! Offline delivery through a mailbox node (`kith up --mailbox`), all in separate processes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;

const T: Duration = Duration::from_secs(60);

fn peer_addr(n: &Node) -> String {
    let id = n.json(&["id"]);
    format!(
        "{}/p2p/{}",
        n.listen_addr(),
        id[0]["peer_id"].as_str().unwrap()
    )
}

#[test]
fn mailbox_keeps_messages_while_the_recipient_is_away() {
    let mut m = Node::new().with_args(&["--mailbox"]);
    m.start();
    let boot = peer_addr(&m);
    let mut a = Node::new().with_args(&["--bootstrap", &boot]);
    let mut b = Node::new().with_args(&["--bootstrap", &boot]);
    a.start();
    b.start();
    let reg = b.json(&["mailbox", "add", &m.code()]);
    assert!(reg[0]["quota"].as_u64().unwrap() > 0);
    assert_eq!(b.json(&["mailbox", "list"]).len(), 1);
    a.add(&b, "Bob");
    b.add(&a, "Alice");
    a.send("Bob", "hello");
    a.wait_status("Bob", 1, "delivered", T);

    // Bob goes away; Alice's message goes to his mailbox: ✓ (sent), not ✓✓.
    b.stop();
    let id = a.send("Bob", "kept by the mailbox");
    wait_for(T, "✓ sent via the mailbox", || {
        let h = a.history("Bob");
        h.iter()
            .any(|m| m["id"] == id.as_str() && m["status"] == "sent")
            .then_some(())
    });
    // Alice leaves too; Bob comes back and gets it from the mailbox.
    a.stop();
    b.start();
    let got = b.wait_received("Alice", 2, T);
    assert_eq!(got[1]["text"], "kept by the mailbox");
    assert_eq!(b.history("Alice").len(), 2, "shown once");
    // Alice returns and learns it was delivered (Bob's receipt waited for her).
    a.start();
    wait_for(T, "✓✓ after Bob fetched it", || {
        let h = a.history("Bob");
        h.iter()
            .any(|m| m["id"] == id.as_str() && m["status"] == "delivered")
            .then_some(())
    });
    // The mailbox saw only ciphertext, and let go of it once Bob had it.
    m.stop();
    let db = std::fs::read(m.dir.join("kith.redb")).unwrap();
    let needle = b"kept by the mailbox";
    assert!(
        !db.windows(needle.len()).any(|w| w == needle),
        "message text found in the mailbox's store"
    );
}

#[test]
fn registration_needs_a_mailbox_node() {
    let mut plain = Node::new();
    plain.start();
    let mut b = Node::new();
    b.start();
    let out = b.cli(&["mailbox", "add", &plain.code()]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(b.json(&["mailbox", "list"]).is_empty());
}
