//! Mailboxes keep group messages for their offline users: real processes on loopback, mDNS
//! off. The member who was away gets the group's messages from its mailbox when no other
//! member is online to hand them over.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

/// Deadline for one step (a condition polled until it holds).
const T: Duration = Duration::from_secs(60);

/// The texts of a group's messages as `n` shows them, in display order.
fn texts(n: &Node, group: &str) -> Vec<String> {
    n.json(&["history", "--group", group, "--limit", "1000"])
        .into_iter()
        .filter(|i| i["kind"] == "message")
        .map(|i| i["text"].as_str().unwrap().to_string())
        .collect()
}

/// How many times the mailbox logged that it kept a group frame.
fn kept(m: &Node) -> usize {
    m.logs().matches("kept group frame").count()
}

#[test]
fn mailbox_hands_group_messages_to_a_member_when_no_other_member_is_online() {
    // The mailbox logs each frame it keeps (at debug level, without content).
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
    c.add_mailbox(&[&m.code()]);
    a.add(&b, "Bob");
    a.add(&c, "Carol");
    b.add(&a, "Ada");
    c.add(&a, "Ada");

    let g = &a.json(&["group", "create", "Trip", "--members", "Bob,Carol"])[0];
    let id = g["id"].as_str().unwrap().to_string();
    for (n, who) in [(&b, "B"), (&c, "C")] {
        wait_for(T, &format!("{who} is in the group"), || {
            n.json(&["groups"])
                .into_iter()
                .find(|g: &Value| g["id"] == id.as_str() && g["members"] == 3)
        });
    }
    // A first message reaches C directly: C has A's group key from here on.
    a.json(&["send", "--group", "Trip", "before"]);
    wait_for(T, "C has the first message", || {
        (texts(&c, &id[..8]) == ["before"]).then_some(())
    });
    // C told its mailbox to keep the group's topic (its first Watch, right after
    // registering, had none), and a frame from A reaches the mailbox: the path A → M works.
    wait_for(T, "the mailbox watches C's group topic", || {
        m.plain_logs()
            .lines()
            .any(|l| l.contains("a device watches group topics") && l.contains("topics=1"))
            .then_some(())
    });
    a.json(&["send", "--group", "Trip", "warm"]);
    wait_for(T, "the mailbox keeps a frame and C has it too", || {
        (kept(&m) >= 1 && texts(&c, &id[..8]) == ["before", "warm"]).then_some(())
    });

    // C goes away; A writes three messages. Nobody else keeps them for C but B, and B goes
    // away too before C is back.
    c.stop();
    let before = kept(&m);
    for t in ["one", "two", "three"] {
        a.json(&["send", "--group", "Trip", t]);
    }
    wait_for(T, "the mailbox keeps the three frames", || {
        (kept(&m) >= before + 3).then_some(())
    });
    wait_for(T, "B has the three messages", || {
        (texts(&b, "Trip").len() == 5).then_some(())
    });
    a.stop();
    b.stop();

    // C comes back with no member online: only its mailbox can hand the messages over.
    c.start();
    let got = wait_for(T, "C has the three messages from its mailbox", || {
        let t = texts(&c, &id[..8]);
        (t.len() >= 5).then_some(t)
    });
    assert_eq!(
        got,
        ["before", "warm", "one", "two", "three"],
        "each once, in order"
    );

    // The mailbox saw only ciphertext.
    m.stop();
    let db = std::fs::read(m.dir.join("kith.redb")).unwrap();
    for needle in [&b"three"[..], b"before"] {
        assert!(
            !db.windows(needle.len()).any(|w| w == needle),
            "message text found in the mailbox's store"
        );
    }
}
