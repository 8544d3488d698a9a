#![allow(clippy::unwrap_used, clippy::expect_used)]

//! Media held at mailboxes, between separate `kith up` processes on loopback: a file sent
//! while the recipient is away is deposited (sealed) at the recipient's mailbox; the sender
//! is then killed, and the recipient still gets the file, identical, from its mailbox. A
//! mailbox refuses media for devices not registered with it, and files over a device's
//! media quota; a hostile peer's unfilled files do not keep honest files out.

mod common;
#[path = "common/stranger.rs"]
mod stranger;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use kith_proto::media::{CHUNK, MediaRefusal, MediaRequest, MediaResponse, TAG, hash};
use libp2p::{Multiaddr, PeerId};
use serde_json::Value;
use stranger::ask_as_stranger as ask;

const T: Duration = Duration::from_secs(90);

/// `len` bytes of a fixed pseudo-random stream (xorshift), different per `seed`.
fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn peer_addr(n: &Node) -> String {
    let id = n.json(&["id"]);
    format!(
        "{}/p2p/{}",
        n.listen_addr(),
        id[0]["peer_id"].as_str().unwrap()
    )
}

fn send_file(a: &Node, to: &str, path: &Path) -> String {
    a.json(&["send", to, "--file", path.to_str().unwrap()])[0]["id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn attachment(n: &Node, with: &str, id: &str) -> Option<Value> {
    n.history(with)
        .into_iter()
        .find(|m| m["id"] == id)
        .map(|m| m["attachment"].clone())
}

/// The sealed chunks a mailbox keeps, per file folder in `media/held/`.
fn held_chunks(m: &Node) -> Vec<usize> {
    let Ok(dirs) = std::fs::read_dir(m.dir.join("media").join("held")) else {
        return Vec::new();
    };
    dirs.flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| {
            std::fs::read_dir(e.path())
                .map(|d| {
                    d.flatten()
                        .filter(|f| !f.file_name().to_string_lossy().ends_with(".tmp"))
                        .count()
                })
                .unwrap_or(0)
        })
        .collect()
}

/// A mailbox (with `extra` arguments), and Alice and Bob who know each other; Bob is
/// registered with the mailbox, and a first message went through.
fn trio(extra: &[&str]) -> (Node, Node, Node) {
    let mut args = vec!["--mailbox"];
    args.extend_from_slice(extra);
    let mut m = Node::new().with_args(&args);
    m.start();
    let boot = peer_addr(&m);
    let mut a = Node::new().with_args(&["--bootstrap", &boot]);
    let mut b = Node::new().with_args(&["--bootstrap", &boot]);
    a.start();
    b.start();
    b.add_mailbox(&[&m.code()]);
    a.add(&b, "Bob");
    b.add(&a, "Alice");
    a.send("Bob", "hello");
    a.wait_status("Bob", 1, "delivered", T);
    (m, a, b)
}

/// Fails without deposits: Alice is gone when Bob comes back, and only the mailbox has the
/// chunks.
#[test]
fn a_file_waits_at_the_mailbox_when_the_sender_is_gone() {
    let (m, mut a, mut b) = trio(&[]);
    b.stop();
    let tmp = tempfile::tempdir().unwrap();
    let bytes = data(3 * 1024 * 1024 + 1234, 7);
    let chunks = bytes.len().div_ceil(CHUNK);
    let src = write_file(tmp.path(), "notes.bin", &bytes);
    let id = send_file(&a, "Bob", &src);

    // Alice's node hands every sealed chunk to Bob's mailbox, then dies.
    wait_for(T, "every chunk at the mailbox", || {
        (held_chunks(&m) == vec![chunks]).then_some(())
    });
    a.kill9();

    // Bob comes back, gets the message from his mailbox and the file from it too.
    b.start();
    b.wait_received("Alice", 2, T);
    let got = wait_for(T, "the file here", || {
        attachment(&b, "Alice", &id).filter(|a| a["state"] == "ready")
    });
    assert_eq!(got["size"], bytes.len() as u64);
    let out = tmp.path().join("saved.bin");
    b.json(&["save", &id, "--to", out.to_str().unwrap()]);
    assert_eq!(
        hash(&std::fs::read(&out).unwrap()),
        hash(&bytes),
        "identical bytes"
    );

    // Bob told the mailbox he has it: it lets the chunks go.
    wait_for(T, "the mailbox let the file go", || {
        held_chunks(&m).is_empty().then_some(())
    });
    // The mailbox never saw the plaintext.
    let needle = &bytes[1000..1064];
    for e in walk(&m.dir) {
        let content = std::fs::read(&e).unwrap_or_default();
        assert!(
            !content.windows(needle.len()).any(|w| w == needle),
            "plaintext found at the mailbox in {}",
            e.display()
        );
    }
}

/// Fails without durable deposits: Alice's node is killed (-9) while it hands a file's
/// chunks to Bob's mailbox. Started again, it takes the deposit up by itself, from the
/// chunks the mailbox had acknowledged (not from the start), and finishes it; Alice is gone
/// again when Bob comes back, and Bob gets identical bytes from his mailbox.
#[test]
fn a_deposit_cut_short_by_kill_9_goes_on_when_the_sender_starts_again() {
    let (m, mut a, mut b) = trio(&[]);
    b.stop();
    let tmp = tempfile::tempdir().unwrap();
    let bytes = data(128 * 1024 * 1024 + 99, 21);
    let chunks = bytes.len().div_ceil(CHUNK);
    let src = write_file(tmp.path(), "film.bin", &bytes);
    let id = send_file(&a, "Bob", &src);

    // Some chunks are at the mailbox (and Alice wrote down which): kill Alice.
    wait_for(T, "a part of the file at the mailbox", || {
        held_chunks(&m)
            .first()
            .is_some_and(|n| *n >= 48)
            .then_some(())
    });
    a.kill9();
    let held = held_chunks(&m).first().copied().unwrap_or(0);
    assert!(
        held < chunks,
        "the deposit ended before the kill: make the file larger"
    );

    // Started again (Bob still away), Alice finishes the deposit by herself.
    a.start();
    wait_for(
        Duration::from_secs(180),
        "every chunk at the mailbox",
        || (held_chunks(&m) == vec![chunks]).then_some(()),
    );
    let logs = a.plain_logs();
    let resumed = logs
        .lines()
        .find(|l| l.contains("resuming a deposit"))
        .unwrap_or_else(|| panic!("no resumed deposit in the log:\n{logs}"));
    let stored: usize = resumed
        .split("stored=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap();
    assert!(
        stored > 0 && stored <= held,
        "resumed from {stored} chunks acknowledged (the mailbox had {held})"
    );
    a.kill9();

    // Bob comes back while Alice is gone: the file comes from his mailbox, identical (it
    // is over the auto-download size: he asks for it).
    b.start();
    b.wait_received("Alice", 2, T);
    b.json(&["download", &id]);
    let got = wait_for(Duration::from_secs(180), "the file here", || {
        attachment(&b, "Alice", &id).filter(|a| a["state"] == "ready")
    });
    assert_eq!(got["size"], bytes.len() as u64);
    let out = tmp.path().join("saved.bin");
    b.json(&["save", &id, "--to", out.to_str().unwrap()]);
    assert_eq!(
        hash(&std::fs::read(&out).unwrap()),
        hash(&bytes),
        "identical bytes"
    );
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// A file over Bob's media quota at the mailbox is refused whole (nothing of it is kept),
/// while a smaller one is kept; media for a key not registered there is refused.
#[test]
fn a_mailbox_refuses_media_over_quota_and_for_unregistered_devices() {
    let (m, a, mut b) = trio(&["--mailbox-media-bytes", "4194304"]);
    b.stop();
    let tmp = tempfile::tempdir().unwrap();
    let big = data(5 * 1024 * 1024, 3);
    let src = write_file(tmp.path(), "big.bin", &big);
    send_file(&a, "Bob", &src);
    wait_for(T, "the deposit refused", || {
        a.logs()
            .contains("the recipient's mailbox does not keep the file")
            .then_some(())
    });
    assert!(held_chunks(&m).is_empty(), "nothing of a refused file kept");

    let small = data(600 * 1024, 4);
    let src = write_file(tmp.path(), "small.bin", &small);
    send_file(&a, "Bob", &src);
    wait_for(T, "the small file kept", || {
        (held_chunks(&m) == vec![3]).then_some(())
    });

    // A stranger (a fresh identity, registered nowhere) offering media for an unknown key
    // is refused, and cannot read what is kept for Bob either.
    let mid: PeerId = m.json(&["id"])[0]["peer_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let addr: Multiaddr = m.listen_addr().parse().unwrap();
    let index = hash(b"one chunk").to_vec();
    let root = hash(&index);
    let answers = tokio::runtime::Runtime::new().unwrap().block_on(ask(
        mid,
        addr,
        vec![
            MediaRequest::Hold {
                to: [9; 32],
                root,
                sealed: (TAG + 10) as u64,
                index,
            },
            MediaRequest::Put {
                to: [9; 32],
                root,
                index: 0,
                bytes: vec![1; TAG + 10],
            },
            MediaRequest::Index { root },
        ],
    ));
    for got in &answers[..2] {
        assert!(
            matches!(got, Ok(MediaResponse::Refused(MediaRefusal::Unauthorized))),
            "{got:?}"
        );
    }
    assert!(
        matches!(answers[2], Ok(MediaResponse::Refused(_))),
        "{:?}",
        answers[2]
    );
    assert_eq!(held_chunks(&m), vec![3], "nothing more kept");
}

/// Bob's Curve25519 key (public, in his certificate), as Alice's store has it; Alice is
/// stopped for the read.
fn curve_key_of(a: &mut Node, bob: &PeerId) -> [u8; 32] {
    a.stop();
    let store = kith_engine::open_store(&a.dir, None).unwrap();
    let dev = kith_store::device_key(&bob.to_bytes());
    let known = store.read(|r| r.device(&dev)).unwrap().unwrap();
    drop(store);
    a.start();
    known.cert.unwrap().curve25519.0
}

/// Regression (threat model, "Mailbox"): any peer may ask a mailbox to hold a file for a
/// registered device, and the whole declared size was charged to the device's media quota
/// at once. Eve declares 256 MiB files for Bob that she never fills; before the fix her
/// fourth took Bob's whole 1 GiB, and Alice's file to Bob was refused, so Bob never got it
/// once Alice was gone. Now Eve holds a few files (each charged only a bounded reservation;
/// they expire unfilled within minutes), and Alice's file is held and delivered.
#[test]
fn a_hostile_peers_unfilled_files_do_not_keep_honest_files_out() {
    let (m, mut a, mut b) = trio(&[]);
    let bob: PeerId = b.json(&["id"])[0]["peer_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    b.stop();
    let curve = curve_key_of(&mut a, &bob);

    // Eve asks the mailbox to hold unfilled 256 MiB files for Bob until it refuses.
    let mid: PeerId = m.json(&["id"])[0]["peer_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let addr: Multiaddr = m.listen_addr().parse().unwrap();
    let chunks = 1024u32;
    let holds = (0..12u32)
        .map(|f| {
            let index: Vec<u8> = (0..chunks)
                .flat_map(|i| hash(&[f.to_le_bytes(), i.to_le_bytes()].concat()))
                .collect();
            MediaRequest::Hold {
                to: curve,
                root: hash(&index),
                sealed: u64::from(chunks) * CHUNK as u64,
                index,
            }
        })
        .collect();
    let answers = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(ask(mid, addr, holds));
    let held = answers
        .iter()
        .take_while(|a| matches!(a, Ok(MediaResponse::Stored)))
        .count();
    assert!(held >= 1, "Eve's first file is held: {:?}", answers[0]);
    assert!(
        answers[held..]
            .iter()
            .all(|a| matches!(a, Ok(MediaResponse::Refused(MediaRefusal::Full)))),
        "then she is refused: {answers:?}"
    );

    // Alice's file to Bob is still held, whole, and reaches Bob after Alice is gone.
    let tmp = tempfile::tempdir().unwrap();
    let bytes = data(1024 * 1024 + 77, 11);
    let src = write_file(tmp.path(), "honest.bin", &bytes);
    let id = send_file(&a, "Bob", &src);
    wait_for(T, "Alice's chunks at the mailbox", || {
        (held_chunks(&m) == vec![bytes.len().div_ceil(CHUNK)]).then_some(())
    });
    a.kill9();
    b.start();
    wait_for(T, "the file at Bob's", || {
        attachment(&b, "Alice", &id).filter(|a| a["state"] == "ready")
    });
    let out = tmp.path().join("saved.bin");
    b.json(&["save", &id, "--to", out.to_str().unwrap()]);
    assert_eq!(hash(&std::fs::read(&out).unwrap()), hash(&bytes));
}

/// A contact's presence as `n` sees it.
fn presence(n: &Node, name: &str) -> String {
    n.json(&["contacts", "list"])
        .into_iter()
        .find(|c| c["name"] == name)
        .map(|c| c["presence"].as_str().unwrap_or_default().to_string())
        .unwrap_or_default()
}

/// A mailbox that logs the group topics it keeps for a device (at debug level), and three
/// nodes started with it as their bootstrap.
fn mailbox_and_three() -> (Node, Node, Node, Node) {
    let mut m = Node::new()
        .with_args(&["--mailbox"])
        .with_log("info,kith_engine=debug");
    m.start();
    let boot = peer_addr(&m);
    let [a, b, c] = std::array::from_fn(|_| {
        let mut n = Node::new().with_args(&["--bootstrap", &boot]);
        n.start();
        n
    });
    (m, a, b, c)
}

/// Whether group `gid`'s history at `n` holds a message with text `t`.
fn group_has(n: &Node, gid: &str, t: &str) -> bool {
    n.json(&["history", "--group", &gid[..8], "--limit", "1000"])
        .iter()
        .any(|i| i["text"] == t)
}

/// Fails without group deposits: Alice posts a file to a three-member group while Bob and
/// Carol are away. Both are registered at the same mailbox, which is handed one copy of
/// the sealed chunks, granted to each. Alice stops before they come back, and each gets
/// identical bytes from the mailbox alone.
#[test]
fn a_group_file_waits_at_the_mailbox_of_members_who_were_away() {
    // The mailbox logs the group topics it keeps for a device (at debug level).
    let (m, mut a, mut b, mut c) = mailbox_and_three();
    b.add_mailbox(&[&m.code()]);
    c.add_mailbox(&[&m.code()]);
    a.add(&b, "Bob");
    a.add(&c, "Carol");
    b.add(&a, "Ada");
    c.add(&a, "Ada");
    let gid = a.create_group("Trip", "Bob,Carol", 3, &[&b, &c]);
    let has_text = |n: &Node, t: &str| group_has(n, &gid, t);
    // Group keys reach both; their mailbox keeps the group's topic for each of them.
    wait_for(T, "members hear the group", || {
        a.json(&["send", "--group", "Trip", "hello"]);
        (has_text(&b, "hello") && has_text(&c, "hello")).then_some(())
    });
    wait_for(T, "the mailbox watches both members' group topic", || {
        let watching = m
            .plain_logs()
            .lines()
            .filter(|l| l.contains("a device watches group topics") && l.contains("topics=1"))
            .count();
        (watching >= 2).then_some(())
    });

    // Bob and Carol go away; Alice sees it, and posts a file.
    b.stop();
    c.stop();
    for who in ["Bob", "Carol"] {
        wait_for(T, "Alice sees them go", || {
            (presence(&a, who) == "offline").then_some(())
        });
    }
    std::thread::sleep(Duration::from_secs(2)); // their connections close too
    let tmp = tempfile::tempdir().unwrap();
    let bytes = data(2 * 1024 * 1024 + 4321, 11);
    let chunks = bytes.len().div_ceil(CHUNK);
    let src = write_file(tmp.path(), "map.bin", &bytes);
    let id = a.json(&["send", "--group", "Trip", "--file", src.to_str().unwrap()])[0]["id"]
        .as_str()
        .unwrap()
        .to_string();

    // One copy at the mailbox node for the two of them (its chunks sent once), then Alice
    // stops.
    let kept = |a: &Node| -> (u64, u64) {
        let field = |l: &str, k: &str| -> u64 {
            let v = l.split(k).nth(1).unwrap_or("0");
            v.split(|c: char| !c.is_ascii_digit())
                .next()
                .unwrap()
                .parse()
                .unwrap_or(0)
        };
        a.plain_logs()
            .lines()
            .filter(|l| l.contains("a file is kept at the recipient's mailbox"))
            .fold((0, 0), |(s, d), l| {
                (s + field(l, " sent="), d + field(l, " devices="))
            })
    };
    let (sent, _) = wait_for(T, "the file held and granted to both", || {
        let (sent, devices) = kept(&a);
        (held_chunks(&m) == vec![chunks] && devices >= 2).then_some((sent, devices))
    });
    assert_eq!(
        sent, chunks as u64,
        "each chunk sent to the mailbox node once"
    );
    a.stop();

    // Each comes back with no other member online: only the mailbox has the file.
    for n in [&mut c, &mut b] {
        n.start();
        let got = wait_for(T, "the group file from the mailbox", || {
            n.json(&["history", "--group", &gid[..8], "--limit", "1000"])
                .into_iter()
                .find(|i| i["id"] == id.as_str())
                .map(|i| i["attachment"].clone())
                .filter(|a| a["state"] == "ready")
        });
        assert_eq!(got["size"], bytes.len() as u64);
        assert_eq!(hash(&n.saved(&id)), hash(&bytes), "identical bytes");
    }
    // Both told the mailbox they have it: it lets the one copy go.
    wait_for(T, "the mailbox let the file go", || {
        held_chunks(&m).is_empty().then_some(())
    });
}

/// Bob's group has Alice and Carol, who are not each other's contacts (each is only a
/// provisional contact of the other, made by the group). Carol is away when Alice posts a
/// file; Alice knows Carol's mailbox from Carol's user record in the DHT and leaves the
/// sealed chunks there. Alice and Bob stop, and Carol gets identical bytes from her mailbox.
/// Fails when the records of people the user did not add are not taken (checked).
#[test]
fn a_group_file_reaches_the_mailbox_of_a_member_who_is_not_the_senders_contact() {
    let (m, mut a, mut b, mut c) = mailbox_and_three();
    c.add_mailbox(&[&m.code()]);
    b.add(&a, "Ada");
    b.add(&c, "Carol");
    a.add(&b, "Bob");
    c.add(&b, "Bob");
    let gid = b.create_group("Hike", "Ada,Carol", 3, &[&a, &c]);
    let has_text = |n: &Node, t: &str| group_has(n, &gid, t);
    wait_for(T, "members hear Alice", || {
        a.json(&["send", "--group", "Hike", "hello"]);
        (has_text(&b, "hello") && has_text(&c, "hello")).then_some(())
    });
    wait_for(T, "the mailbox watches Carol's group topic", || {
        m.plain_logs()
            .lines()
            .any(|l| l.contains("a device watches group topics") && l.contains("topics=1"))
            .then_some(())
    });
    assert!(
        !a.json(&["contacts", "list"])
            .iter()
            .any(|x| x["name"] == "Carol"),
        "Carol is not Alice's contact"
    );

    // Carol goes away; Alice posts a file, which Bob (online) fetches from her.
    c.stop();
    std::thread::sleep(Duration::from_secs(3)); // Alice's connections to Carol close
    let tmp = tempfile::tempdir().unwrap();
    let bytes = data(1024 * 1024 + 777, 23);
    let chunks = bytes.len().div_ceil(CHUNK);
    let src = write_file(tmp.path(), "route.gpx", &bytes);
    let id = a.json(&["send", "--group", "Hike", "--file", src.to_str().unwrap()])[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    wait_for(T, "Carol's mailbox holds the file", || {
        (held_chunks(&m) == vec![chunks]).then_some(())
    });
    wait_for(T, "Bob has the file", || {
        b.json(&["history", "--group", &gid[..8], "--limit", "1000"])
            .into_iter()
            .find(|i| i["id"] == id.as_str())
            .filter(|i| i["attachment"]["state"] == "ready")
    });
    a.stop();
    b.stop();

    // Carol comes back with no other member online: only her mailbox has the file.
    c.start();
    let got = wait_for(T, "the group file from Carol's mailbox", || {
        c.json(&["history", "--group", &gid[..8], "--limit", "1000"])
            .into_iter()
            .find(|i| i["id"] == id.as_str())
            .map(|i| i["attachment"].clone())
            .filter(|a| a["state"] == "ready")
    });
    assert_eq!(got["size"], bytes.len() as u64);
    assert_eq!(hash(&c.saved(&id)), hash(&bytes), "identical bytes");
}
