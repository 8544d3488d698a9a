//! Reachability through a circuit relay, and AutoNAT's verdict, with separate processes.
//!
//! Nodes started with `--no-listen` cannot be dialled at all: the only way to reach them is
//! a relay slot they reserved. Everything runs on loopback.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

const T: Duration = Duration::from_secs(60);

fn addrs(n: &Node) -> Vec<String> {
    n.json(&["id"])[0]["addrs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

fn status(n: &Node) -> Value {
    n.json(&["status"]).remove(0)
}

#[test]
fn two_nodes_that_cannot_be_dialled_talk_through_a_relay() {
    let mut r = Node::new().with_args(&["--relay-server", "--private-ips"]);
    r.start();
    let relay = r.p2p_addr();
    let relay_id = r.json(&["id"])[0]["peer_id"].as_str().unwrap().to_string();
    // Neither listens anywhere: without the relay they could never connect.
    let mut a = Node::new()
        .without_listening()
        .with_args(&["--bootstrap", &relay]);
    let mut b = Node::new()
        .without_listening()
        .with_args(&["--bootstrap", &relay]);
    a.start();
    b.start();
    // Each reserves a slot by itself (it has no listener) and advertises only that.
    for n in [&a, &b] {
        let got = wait_for(T, "a relay address", || {
            let v = addrs(n);
            (!v.is_empty()).then_some(v)
        });
        assert!(
            got.iter()
                .all(|x| x.contains("/p2p-circuit") && x.contains(&relay_id)),
            "only relay addresses: {got:?}"
        );
        let s = status(n);
        assert_eq!(s["relays"][0], relay_id.as_str());
    }
    a.add(&b, "Bob");
    b.add(&a, "Alice");
    a.send("Bob", "through the relay");
    a.wait_status("Bob", 1, "delivered", T);
    let got = b.wait_received("Alice", 1, T);
    assert_eq!(got[0]["text"], "through the relay");
    b.send("Alice", "and back");
    b.wait_status("Alice", 1, "delivered", T);

    // A named relay (--relay) works the same for a node with nothing else to go on.
    let mut c = Node::new()
        .without_listening()
        .with_args(&["--relay", &relay]);
    c.start();
    wait_for(T, "Carol's relay address", || {
        addrs(&c)
            .iter()
            .any(|x| x.contains("/p2p-circuit"))
            .then_some(())
    });
    c.add(&a, "Alice");
    a.add(&c, "Carol");
    a.send("Carol", "hello Carol");
    a.wait_status("Carol", 1, "delivered", T);
    assert_eq!(c.wait_received("Alice", 1, T)[0]["text"], "hello Carol");
}

#[test]
fn autonat_tells_a_node_whether_it_can_be_dialled() {
    let mut r = Node::new().with_args(&["--relay-server", "--private-ips"]);
    r.start();
    let boot = r.p2p_addr();
    let mut open = Node::new().with_args(&["--bootstrap", &boot, "--private-ips"]);
    let mut hidden =
        Node::new()
            .without_listening()
            .with_args(&["--bootstrap", &boot, "--private-ips"]);
    open.start();
    hidden.start();
    wait_for(T, "the listening node found public", || {
        (status(&open)["reachability"] == "public").then_some(())
    });
    wait_for(T, "the node without a listener found private", || {
        (status(&hidden)["reachability"] == "private").then_some(())
    });
    // The public node needs no relay; the private one holds a slot.
    assert!(status(&open)["relays"].as_array().unwrap().is_empty());
    assert!(!status(&hidden)["relays"].as_array().unwrap().is_empty());
}
