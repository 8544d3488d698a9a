//! Presence, last seen, typing, profiles, privacy and blocking between separate processes on
//! loopback. A and B are contacts; C knows A's code but A never added C (a stranger to A).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

const T: Duration = Duration::from_secs(30);

/// How `n` lists its contact `name`.
fn contact(n: &Node, name: &str) -> Value {
    n.json(&["contacts", "list"])
        .into_iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no contact {name}"))
}

fn wait_presence(n: &Node, name: &str, what: &str, f: impl Fn(&Value) -> bool) -> Value {
    wait_for(T, what, || {
        let c = contact(n, name);
        f(&c).then_some(c)
    })
}

/// A valid 2×2 PNG (signature, IHDR, an IDAT of zlib-compressed zero rows, IEND).
fn png() -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        // The CRC is not checked by the header reader; any value keeps the layout.
        out.extend_from_slice(&[0, 0, 0, 0]);
    }
    let mut v = vec![0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&2u32.to_be_bytes());
    ihdr.extend_from_slice(&2u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(&mut v, b"IHDR", &ihdr);
    chunk(
        &mut v,
        b"IDAT",
        &[
            0x78, 0x9c, 0x63, 0x60, 0x00, 0x02, 0x00, 0x00, 0x05, 0x00, 0x01,
        ],
    );
    chunk(&mut v, b"IEND", &[]);
    v
}

#[test]
fn presence_and_last_seen_reach_contacts_only_and_follow_privacy() {
    let (mut a, mut b) = pair();
    let mut c = Node::new();
    c.start();
    c.add(&a, "Alice");
    // B sees A online; C, a stranger to A, sees nothing.
    wait_presence(&b, "Alice", "B sees A online", |c| {
        c["presence"] == "online"
    });
    let seen_by_c = contact(&c, "Alice");
    assert_eq!(seen_by_c["presence"], "unknown");

    // A clean stop shows at once, with a last-seen time.
    a.stop();
    let v = wait_presence(&b, "Alice", "B sees A offline after a clean stop", |c| {
        c["presence"] == "offline" && c["last_seen"].is_u64()
    });
    let first_seen = v["last_seen"].as_u64().unwrap();
    assert!(contact(&c, "Alice")["last_seen"].is_null());

    // Killed: the socket closes and B notices (well within the 60 s bound).
    a.start();
    wait_presence(&b, "Alice", "A online again", |c| c["presence"] == "online");
    a.kill9();
    wait_for(
        Duration::from_secs(60),
        "B sees A gone after kill -9",
        || {
            let c = contact(&b, "Alice");
            (c["presence"] == "offline" && c["last_seen"].as_u64()? >= first_seen).then_some(())
        },
    );
    // Last seen is kept across B's restart.
    b.stop();
    b.start();
    assert!(contact(&b, "Alice")["last_seen"].is_u64());

    // Privacy: A hides online and last seen; B sees neither.
    a.start();
    wait_presence(&b, "Alice", "A online", |c| c["presence"] == "online");
    a.json(&["privacy", "set", "online", "nobody"]);
    a.json(&["privacy", "set", "last-seen", "nobody"]);
    let v = wait_presence(&b, "Alice", "A's presence hidden", |c| {
        c["presence"] != "online" && c["last_seen"].is_null()
    });
    assert_eq!(v["presence"], "unknown");
    a.stop();
    std::thread::sleep(Duration::from_secs(1));
    let v = contact(&b, "Alice");
    assert!(v["last_seen"].is_null(), "hidden last seen shown: {v}");
    // And back.
    a.start();
    a.json(&["privacy", "set", "online", "contacts"]);
    wait_presence(&b, "Alice", "A online once shown again", |c| {
        c["presence"] == "online"
    });
    let p = &a.json(&["privacy"])[0];
    assert_eq!(p["online"], "contacts");
    assert_eq!(p["last_seen"], "nobody");
    // A bad setting is a usage error.
    let out = a.cli(&["privacy", "set", "online", "sometimes"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn typing_shows_and_expires_and_profiles_reach_contacts() {
    let (a, b) = pair();
    wait_presence(&b, "Alice", "B sees A online", |c| {
        c["presence"] == "online"
    });
    a.json(&["typing", "Bob"]);
    wait_presence(&b, "Alice", "typing shown", |c| c["typing"] == "typing");
    // Nobody renews it: it goes away by itself.
    wait_presence(&b, "Alice", "typing expired", |c| c["typing"].is_null());
    a.json(&["typing", "Bob", "--recording"]);
    wait_presence(&b, "Alice", "recording shown", |c| {
        c["typing"] == "recording"
    });
    a.json(&["typing", "Bob", "--stop"]);
    wait_presence(&b, "Alice", "stopped", |c| c["typing"].is_null());

    // A profile with a photo reaches B, the photo as a file B can open.
    let photo = a.dir.join("me.png");
    std::fs::write(&photo, png()).unwrap();
    let p = &a.json(&[
        "profile",
        "set",
        "--name",
        "Ada",
        "--about",
        "maths",
        "--avatar",
        photo.to_str().unwrap(),
    ])[0];
    assert_eq!(p["name"], "Ada");
    let v = wait_presence(&b, "Alice", "A's profile at B", |c| {
        c["profile_name"] == "Ada" && c["avatar"].is_string()
    });
    assert_eq!(v["about"], "maths");
    // Kept sealed at rest: the file is not the photo; `kith photo` writes it out.
    let at_rest = std::fs::read(v["avatar"].as_str().unwrap()).unwrap();
    assert_ne!(at_rest, png());
    let out = b.dir.join("alice.png");
    b.json(&["photo", "Alice", "--to", out.to_str().unwrap()]);
    assert_eq!(std::fs::read(&out).unwrap(), png());
    // Something that is not an image is refused, and the profile stays.
    let junk = a.dir.join("junk.png");
    std::fs::write(&junk, b"this is not an image").unwrap();
    let out = a.cli(&["profile", "set", "--avatar", junk.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{:?}", out);
    assert_eq!(a.json(&["profile"])[0]["name"], "Ada");
    // Removing the photo and renaming reach B too.
    a.json(&["profile", "set", "--name", "Ada L.", "--no-avatar"]);
    let v = wait_presence(&b, "Alice", "rename at B", |c| {
        c["profile_name"] == "Ada L."
    });
    assert!(v["avatar"].is_null());
}

#[test]
fn blocking_drops_messages_and_presence_and_unblocking_restores_them() {
    let (a, b) = pair();
    wait_presence(&b, "Alice", "B sees A online", |c| {
        c["presence"] == "online"
    });
    wait_presence(&a, "Bob", "A sees B online", |c| c["presence"] == "online");
    let v = &b.json(&["block", "Alice"])[0];
    assert_eq!(v["blocked"], true);
    // B can no longer write to A.
    let out = b.cli(&["send", "Alice", "hi"]);
    assert_eq!(out.status.code(), Some(1));
    // A's message is taken (✓) but never delivered, and B never shows it.
    let id = a.send("Bob", "are you there?");
    wait_for(T, "✓ on A's side", || {
        a.history("Bob")
            .iter()
            .any(|m| m["id"] == id.as_str() && m["status"] == "sent")
            .then_some(())
    });
    // A sees nothing of B any more, and what A signals does not show at B.
    wait_presence(&a, "Bob", "B's presence gone at A", |c| {
        c["presence"] != "online" && c["last_seen"].is_null()
    });
    a.json(&["typing", "Bob"]);
    let out = b.cli(&["typing", "Alice"]);
    assert_eq!(out.status.code(), Some(1));
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        b.history("Alice")
            .iter()
            .all(|m| m["text"] != "are you there?")
    );
    let v = contact(&b, "Alice");
    assert!(v["typing"].is_null());
    assert_eq!(v["presence"], "unknown");
    assert!(
        a.history("Bob")
            .iter()
            .all(|m| m["id"] != id.as_str() || m["status"] == "sent"),
        "a blocked sender must never see ✓✓"
    );

    // Unblocked: messages and presence flow again.
    b.json(&["unblock", "Alice"]);
    let id2 = a.send("Bob", "hello again");
    wait_for(T, "✓✓ after unblock", || {
        a.history("Bob")
            .iter()
            .any(|m| m["id"] == id2.as_str() && m["status"] == "delivered")
            .then_some(())
    });
    let h = b.history("Alice");
    assert!(h.iter().any(|m| m["text"] == "hello again"));
    assert!(
        h.iter().all(|m| m["text"] != "are you there?"),
        "dropped stays dropped"
    );
    wait_presence(&a, "Bob", "A sees B again", |c| c["presence"] == "online");
}
