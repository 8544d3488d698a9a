//! Mentions in a group between separate processes on loopback: A has B, C and D as
//! contacts, B and C have only A; the group is A, B and C. A mention is resolved by the
//! sender to members and carried in the message: the member named gets the message flagged
//! in its store (history, `kith groups`, `kith mentions`); the others do not, and a name
//! that is not a member's names nobody.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

const T: Duration = Duration::from_secs(60);

/// The group message of `n` with this text, once it is there.
fn message(n: &Node, text: &str) -> Value {
    wait_for(T, &format!("{text:?} arrives"), || {
        n.json(&["history", "--group", "Friends", "--limit", "100"])
            .into_iter()
            .find(|m| m["kind"] == "message" && m["text"] == text)
    })
}

fn listed(n: &Node) -> Value {
    n.json(&["groups"])
        .into_iter()
        .find(|g| g["name"] == "Friends")
        .unwrap()
}

#[test]
fn a_mention_is_flagged_for_the_member_named_only() {
    let mut a = Node::new();
    let mut b = Node::new();
    let mut c = Node::new();
    let mut d = Node::new();
    for n in [&mut a, &mut b, &mut c, &mut d] {
        n.start();
    }
    a.add(&b, "Bob");
    a.add(&c, "Carol");
    a.add(&d, "Dan");
    b.add(&a, "Ada");
    c.add(&a, "Ada");

    a.create_group("Friends", "Bob,Carol", 3, &[&b, &c]);

    // A names Bob (a member) and Dan (a contact, no member).
    let text = "lunch @bob? and @Dan";
    a.json(&["send", "--group", "Friends", text]);
    let at_b = message(&b, text);
    assert_eq!(at_b["mentioned"], true, "{at_b}");
    let at_c = message(&c, text);
    assert_eq!(at_c["mentioned"], false, "{at_c}");
    assert_eq!(listed(&b)["mentioned"], true);
    assert_eq!(listed(&c)["mentioned"], false);
    // `kith mentions` lists it at B, nothing at C.
    let m = b.json(&["mentions"]);
    assert_eq!(m.len(), 1, "{m:?}");
    assert_eq!(m[0]["group"], "Friends");
    assert_eq!(m[0]["from"], "Ada");
    assert_eq!(m[0]["text"], text);
    assert!(c.json(&["mentions"]).is_empty());

    // C's own name in a text is no mention of C: only the sender's resolution counts. C
    // names A by the name C gave A.
    let text2 = "@carol says: @ADA yes";
    c.json(&["send", "--group", "Friends", text2]);
    assert_eq!(message(&a, text2)["mentioned"], true);
    assert_eq!(message(&b, text2)["mentioned"], false);

    // A reply that names a member is a mention too, and stays a reply.
    let first = message(&b, text)["id"].as_str().unwrap().to_string();
    let text3 = "@bob about this one";
    a.json(&["send", "--group", "Friends", text3, "--reply-to", &first]);
    let at_b = message(&b, text3);
    assert_eq!(at_b["mentioned"], true, "{at_b}");
    assert_eq!(at_b["reply_to"], first.as_str(), "{at_b}");
    assert_eq!(message(&c, text3)["mentioned"], false);
    assert_eq!(b.json(&["mentions"]).len(), 2);

    // Search among the messages that name you: two match the words, one names B.
    let hits = b.json(&["search", "yes OR lunch"]);
    assert_eq!(hits.len(), 2, "{hits:?}");
    let hits = b.json(&["search", "yes OR lunch", "--mentions"]);
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!(hits[0]["id"], first.as_str());
    assert!(c.json(&["search", "lunch", "--mentions"]).is_empty());

    // Read, the list's flag goes; the message keeps its own.
    b.json(&["group", "read", "Friends"]);
    assert_eq!(listed(&b)["mentioned"], false);
    assert_eq!(message(&b, text)["mentioned"], true);
    assert!(b.json(&["mentions"]).iter().all(|m| m["read"] == true));
}
