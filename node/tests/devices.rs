//! Issue 17, linked devices, between real `kith` processes on loopback: a second device
//! linked with a one-time code; a contact's messages reach both devices; what one device
//! sends shows as sent on the other; read on one clears unread on the other; wrong and
//! replayed codes are refused; a removed device receives nothing more while the other
//! keeps working.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use kith_proto::link::LinkCode;
use serde_json::Value;

const T: Duration = Duration::from_secs(60);

/// Links the fresh, running node `n` to `a`'s identity as `name`, checks that both sides
/// showed the same words, and restarts `n` so it acts for the identity.
fn link(a: &Node, n: &mut Node, name: &str) {
    let (approved, shown) = n.link_to(a, name, &[]);
    assert_eq!(approved[0]["state"], "confirm", "{approved:?}");
    assert_eq!(approved[1]["state"], "linked", "{approved:?}");
    let words = approved[0]["words"].as_str().expect("words");
    assert!(
        shown
            .iter()
            .any(|v| v["state"] == "confirm" && v["words"] == words),
        "the new device showed other words: {shown:?}"
    );
    assert!(shown.iter().any(|v| v["state"] == "linked"), "{shown:?}");
}

fn identity(n: &Node) -> String {
    n.json(&["id"])[0]["identity"]
        .as_str()
        .expect("identity")
        .to_string()
}

fn texts(h: &[Value]) -> Vec<String> {
    h.iter()
        .filter_map(|m| m["text"].as_str().map(str::to_string))
        .collect()
}

/// Waits until `b`'s daemon applied a record of its contact's devices where `what`
/// (e.g. `added=1`) holds.
fn wait_devices_changed(b: &Node, what: &str) {
    wait_for(T, &format!("the contact's record ({what})"), || {
        b.plain_logs()
            .lines()
            .any(|l| l.contains("a contact's devices changed") && l.contains(what))
            .then_some(())
    });
}

fn wait_text(n: &Node, with: &str, text: &str, from_me: bool) -> Value {
    wait_for(T, &format!("{text:?} with {with}"), || {
        n.history(with)
            .into_iter()
            .find(|m| m["text"] == text && (m["from"] == "me") == from_me)
    })
}

#[test]
fn a_linked_device_gets_messages_sent_elsewhere_and_read_state() {
    let (a, b) = pair();
    let mut n = Node::new();
    n.start();
    link(&a, &mut n, "laptop");

    // The same person on both; the new device knows the contacts.
    assert_eq!(identity(&n), identity(&a));
    let devices = a.json(&["devices"]);
    assert_eq!(devices.len(), 2, "{devices:?}");
    assert!(devices.iter().any(|d| d["name"] == "laptop"), "{devices:?}");
    let contacts = n.json(&["contacts", "list"]);
    assert!(contacts.iter().any(|c| c["name"] == "Bob"), "{contacts:?}");

    // Bob learns the new device from Alice's record ("Alice linked a new device").
    wait_devices_changed(&b, "added=1");

    // A message from Bob reaches both devices.
    b.send("Alice", "hello, both of you");
    wait_text(&a, "Bob", "hello, both of you", false);
    wait_text(&n, "Bob", "hello, both of you", false);

    // What Alice sends from the phone shows as sent on the laptop, and the other way.
    a.send("Bob", "from the phone");
    wait_text(&n, "Bob", "from the phone", true);
    n.send("Bob", "from the laptop");
    wait_text(&b, "Alice", "from the laptop", false);
    wait_text(&a, "Bob", "from the laptop", true);

    // Read on the laptop clears unread on the phone.
    b.send("Alice", "read me");
    wait_text(&a, "Bob", "read me", false);
    wait_text(&n, "Bob", "read me", false);
    n.json(&["read", "Bob"]);
    wait_for(T, "read on the phone too", || {
        let m = wait_text(&a, "Bob", "read me", false);
        (m["status"] == "read").then_some(())
    });
}

#[test]
fn wrong_and_replayed_link_codes_are_refused() {
    let mut a = Node::new();
    a.start();
    let mut n = Node::new();
    n.start();
    let (mut child, _lines, code) = n.start_link("tablet");

    // The right device, the wrong secret: refused, and nothing linked.
    let mut wrong = LinkCode::from_code(&code).expect("code");
    wrong.secret[0] ^= 1;
    let wrong = wrong.to_code().expect("wrong code");
    let out = a.cli(&["devices", "approve", &wrong, "--yes"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(a.json(&["devices"]).len(), 1);

    // Garbage is not a code.
    let out = a.cli(&["devices", "approve", "kithlink1xyz", "--yes"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");

    // The right code links once...
    let approved = a.json(&["devices", "approve", &code, "--yes"]);
    assert_eq!(approved[1]["state"], "linked", "{approved:?}");
    assert!(child.wait().expect("kith link").success());

    // ...and never again: a third device replaying it is refused.
    let mut c = Node::new();
    c.start();
    let out = c.cli(&["devices", "approve", &code, "--yes"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(c.json(&["devices"]).len(), 1);
    a.stop();
}

#[test]
fn a_removed_device_gets_nothing_more_while_the_other_keeps_working() {
    let (a, b) = pair();
    let mut n = Node::new();
    n.start();
    link(&a, &mut n, "old-laptop");
    wait_devices_changed(&b, "added=1");
    b.send("Alice", "before");
    wait_text(&n, "Bob", "before", false);

    let removed = a.json(&["devices", "remove", "old-laptop"]);
    assert_eq!(removed[0]["name"], "old-laptop", "{removed:?}");
    assert_eq!(a.json(&["devices"]).len(), 1);
    wait_devices_changed(&b, "removed=1");

    b.send("Alice", "after");
    b.send("Alice", "after, again");
    wait_text(&a, "Bob", "after", false);
    wait_text(&a, "Bob", "after, again", false);
    // Bob keeps nothing queued for the removed device, and it never got the messages.
    let bob = b.json(&["contacts", "list"]);
    let alice = bob.iter().find(|c| c["name"] == "Alice").expect("Alice");
    assert_eq!(alice["pending"], 0, "{alice}");
    let h = texts(&n.history("Bob"));
    assert!(h.contains(&"before".to_string()), "{h:?}");
    assert!(!h.iter().any(|t| t.starts_with("after")), "{h:?}");

    // What Alice sends from the phone no longer goes to the removed device either.
    a.send("Bob", "phone only");
    wait_text(&b, "Alice", "phone only", false);
    let h = texts(&n.history("Bob"));
    assert!(!h.contains(&"phone only".to_string()), "{h:?}");
}
