//! Group typing indicators between three separate processes on loopback: A has B and C as
//! contacts, B and C have only A. C watches; B (a member C does not know as a contact) and
//! A type in the group, and C sees who types where. A contact of C who is not a member
//! cannot type into the group. Nothing of it is stored.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::mpsc::Receiver;
use std::time::Duration;

use common::*;
use serde_json::Value;

const T: Duration = Duration::from_secs(60);

/// The next `group_typing` event on the watch that satisfies `f`, while `poke` runs
/// every 2.5 s (typing signals renew at most every 2 s, and go only to members connected
/// at the time).
fn wait_typing(
    rx: &Receiver<String>,
    what: &str,
    mut poke: impl FnMut(),
    f: impl Fn(&Value) -> bool,
) -> Value {
    wait_for(T, what, || {
        poke();
        let until = std::time::Instant::now() + Duration::from_millis(2_500);
        while let Some(left) = until.checked_duration_since(std::time::Instant::now()) {
            let Ok(line) = rx.recv_timeout(left) else {
                break;
            };
            let ev: Value = serde_json::from_str(&line).unwrap();
            if ev["event"] == "group_typing" && f(&ev) {
                return Some(ev);
            }
        }
        None
    })
}

#[test]
fn group_members_see_who_types_and_nothing_is_stored() {
    let mut a = Node::new();
    let mut b = Node::new();
    let mut c = Node::new();
    let mut d = Node::new();
    for n in [&mut a, &mut b, &mut c, &mut d] {
        n.start();
    }
    a.add(&b, "Bob");
    a.add(&c, "Carol");
    b.add(&a, "Ada");
    c.add(&a, "Ada");
    c.add(&d, "Dan");
    d.add(&c, "Carol");

    let id = a.create_group("Friends", "Bob,Carol", 3, &[&b, &c]);
    let b_on_c = c.json(&["group", "info", "Friends"])[0]["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap().to_string())
        .find(|n| n.starts_with('~'))
        .expect("B shows under a provisional name at C");

    let (mut watch, rx) = c.watch();
    wait_for(T, "C's watch subscribed", || {
        a.send("Carol", "probe");
        rx.recv_timeout(Duration::from_millis(500))
            .ok()
            .filter(|l| l.contains("\"probe\""))
    });

    // B types: C sees it, under the group's name and B's name at C.
    let ev = wait_typing(
        &rx,
        "B's typing at C",
        || {
            b.json(&["typing", "--group", "Friends"]);
        },
        |ev| ev["member"] == b_on_c.as_str() && ev["state"] == "typing",
    );
    assert_eq!(ev["group"], "Friends");
    assert_eq!(ev["group_id"], id.as_str());
    // B stops: C hears it.
    wait_typing(
        &rx,
        "B's stop at C",
        || {
            b.json(&["typing", "--group", &id[..8], "--stop"]);
        },
        |ev| ev["member"] == b_on_c.as_str() && ev["state"] == "stopped",
    );
    // A records: C sees A by its contact name; it runs out by itself.
    wait_typing(
        &rx,
        "A's recording at C",
        || {
            a.json(&["typing", "--group", "Friends", "--recording"]);
        },
        |ev| ev["member"] == "Ada" && ev["state"] == "recording",
    );
    wait_typing(
        &rx,
        "A's indicator runs out",
        || {},
        |ev| ev["member"] == "Ada" && ev["state"] == "stopped",
    );

    // D, C's contact but no member, cannot type into the group.
    let out = d.cli(&["typing", "--group", &id[..8]]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    // Nothing was stored: the group's history holds no trace of it.
    let hist = c.json(&["history", "--group", "Friends", "--limit", "1000"]);
    assert!(
        hist.iter().all(|m| !m.to_string().contains("typing")),
        "{hist:?}"
    );
    let _ = watch.kill();
    let _ = watch.wait();
}
