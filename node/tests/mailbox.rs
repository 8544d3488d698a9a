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
    let reg = b.add_mailbox(&[&m.code()]);
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

/// A bootstrap node and two started nodes that joined the DHT through it:
/// (bootstrap, its address, alice, bob).
fn dht_trio() -> (Node, String, Node, Node) {
    let mut boot = Node::new();
    boot.start();
    let boot_addr = peer_addr(&boot);
    let mut a = Node::new().with_args(&["--bootstrap", &boot_addr]);
    let mut b = Node::new().with_args(&["--bootstrap", &boot_addr]);
    a.start();
    b.start();
    (boot, boot_addr, a, b)
}

/// Starts a mailbox node and registers `b` with it.
fn mailbox_for(b: &Node, extra: &[&str]) -> Node {
    let mut args = vec!["--mailbox"];
    args.extend_from_slice(extra);
    let mut m = Node::new().with_args(&args);
    m.start();
    b.add_mailbox(&[&m.code()]);
    m
}

fn statuses(a: &Node, with: &str) -> Vec<String> {
    a.history(with)
        .iter()
        .filter(|m| m["from"] == "me")
        .map(|m| m["status"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn second_mailbox_takes_over_when_one_is_gone_for_good() {
    let (_boot, boot_addr, a, mut b) = dht_trio();
    let mut m1 = mailbox_for(&b, &["--bootstrap", &boot_addr]);
    // The second one is given by its address rather than its code.
    let mut m2 = Node::new().with_args(&["--mailbox", "--bootstrap", &boot_addr]);
    m2.start();
    b.add_mailbox(&[&m2.p2p_addr()]);
    assert_eq!(b.json(&["mailbox", "list"]).len(), 2);
    let out = b.cli(&["mailbox", "add", "/ip4/127.0.0.1/tcp/1"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "an address without /p2p/ is refused"
    );
    a.add(&b, "Bob");
    b.add(&a, "Alice");
    b.stop();
    m1.kill9();
    for i in 0..5 {
        a.send("Bob", &format!("via the other mailbox {i}"));
    }
    wait_for(T, "all ✓ sent", || {
        let s = statuses(&a, "Bob");
        (s.len() == 5 && s.iter().all(|s| s == "sent")).then_some(())
    });
    b.start();
    let got = b.wait_received("Alice", 5, T);
    assert_eq!(got.len(), 5);
    a.wait_status("Bob", 5, "delivered", T);
}

#[test]
fn full_mailbox_refuses_and_the_sender_keeps_the_rest() {
    let (_boot, boot_addr, a, mut b) = dht_trio();
    let _m = mailbox_for(&b, &["--bootstrap", &boot_addr, "--mailbox-quota", "3"]);
    a.add(&b, "Bob");
    b.add(&a, "Alice");
    // With a session open, each send below is sealed in its own envelope (the quota counts
    // envelopes).
    a.send("Bob", "warm up");
    a.wait_status("Bob", 1, "delivered", T);
    // Alice watches her node's events: the refusal is shown to her, not only logged.
    let mut watch = std::process::Command::new(KITH)
        .arg("--data-dir")
        .arg(&a.dir)
        .args(["--json", "watch"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let events = lines_of(watch.stdout.take().unwrap());
    b.stop();
    for i in 0..5 {
        a.send("Bob", &format!("m{i}"));
    }
    // The mailbox takes three; the other two stay pending in Alice's outbox.
    wait_for(T, "three ✓ sent", || {
        let s = statuses(&a, "Bob");
        (s.iter().filter(|s| *s == "sent").count() == 3).then_some(())
    });
    assert_eq!(
        statuses(&a, "Bob")
            .iter()
            .filter(|s| *s == "pending")
            .count(),
        2
    );
    wait_for(T, "the refusal in Alice's log", || {
        a.logs().contains("mailbox is full").then_some(())
    });
    let notice = wait_for(T, "a notice for Alice", || {
        let line = events
            .recv_timeout(std::time::Duration::from_millis(200))
            .ok()?;
        let ev: serde_json::Value = serde_json::from_str(&line).ok()?;
        (ev["event"] == "notice").then_some(ev)
    });
    assert_eq!(notice["contact"], "Bob");
    assert!(
        notice["detail"]
            .as_str()
            .unwrap()
            .contains("Bob's mailbox is full")
    );
    let _ = watch.kill();
    let _ = watch.wait();
    // Bob returns: everything arrives, once.
    b.start();
    assert_eq!(b.wait_received("Alice", 6, T).len(), 6);
    a.wait_status("Bob", 6, "delivered", T);
}

#[test]
fn kill9_of_the_mailbox_during_a_burst_loses_nothing() {
    const N: usize = 1000;
    let (_boot, boot_addr, a, mut b) = dht_trio();
    let mut m = mailbox_for(&b, &["--bootstrap", &boot_addr]);
    a.add(&b, "Bob");
    b.add(&a, "Alice");
    a.send("Bob", "warm up");
    a.wait_status("Bob", 1, "delivered", T);
    b.stop();
    let a_dir = a.dir.clone();
    let sender = std::thread::spawn(move || {
        (0..N)
            .map(|i| {
                let out = run(&a_dir, &["--json", "send", "Bob", &format!("burst {i}")]);
                assert!(out.status.success());
                let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
                v["id"].as_str().unwrap().to_string()
            })
            .collect::<Vec<_>>()
    });
    // Kill the mailbox once it holds part of the burst.
    let held = wait_for(T, "part of the burst at the mailbox", || {
        let n = m.json(&["status"])[0]["outbox"].as_u64().unwrap_or(0);
        (n >= 50).then_some(n)
    });
    m.kill9();
    assert!(
        (held as usize) < N,
        "the mailbox must die in the middle of the burst"
    );
    let ids = sender.join().unwrap();
    m.start();
    wait_for(
        Duration::from_secs(120),
        "every message ✓ sent or better",
        || {
            let s = statuses(&a, "Bob");
            (s.len() == N + 1 && s.iter().all(|s| s != "pending")).then_some(())
        },
    );
    // The byte counter (kept in the same transactions as the envelopes) matches what is
    // kept, after the kill -9 and everything deposited since.
    m.stop();
    {
        let store = kith_engine::open_store(&m.dir, None).unwrap();
        let (counted, kept) = store
            .read(|r| {
                let (mut counted, mut kept) = (0u64, 0u64);
                for dev in r.outbox_devices()? {
                    counted += r.mailbox_bytes(&dev)?;
                    for (_, item) in r.outbox(&dev, usize::MAX)? {
                        kept += item.kept_bytes();
                    }
                }
                Ok((counted, kept))
            })
            .unwrap();
        assert!(kept > 0);
        assert_eq!(
            counted, kept,
            "byte counter drifted from the kept envelopes"
        );
    }
    m.start();
    b.start();
    let got = b.wait_received("Alice", N + 1, Duration::from_secs(120));
    assert_eq!(got.len(), N + 1, "every message exactly once");
    let got_ids: Vec<&str> = got[1..].iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(
        got_ids,
        ids.iter().map(String::as_str).collect::<Vec<_>>(),
        "in order"
    );
}

#[test]
fn mail_past_its_retention_is_dropped() {
    let (_boot, boot_addr, a, mut b) = dht_trio();
    let mut m = mailbox_for(&b, &["--bootstrap", &boot_addr, "--mailbox-retention", "1"]);
    a.add(&b, "Bob");
    b.add(&a, "Alice");
    a.send("Bob", "warm up");
    a.wait_status("Bob", 1, "delivered", T);
    b.stop();
    let id = a.send("Bob", "too late");
    wait_for(T, "✓ sent via the mailbox", || {
        let h = a.history("Bob");
        h.iter()
            .any(|m| m["id"] == id.as_str() && m["status"] == "sent")
            .then_some(())
    });
    assert_eq!(m.json(&["status"])[0]["outbox"], 1);
    // Retention is checked when the mailbox starts (and every 30 minutes); let the one
    // second of retention pass (waiting on the clock is the point here).
    std::thread::sleep(Duration::from_millis(1500));
    m.stop();
    m.start();
    assert_eq!(m.json(&["status"])[0]["outbox"], 0, "expired mail is gone");
    assert!(m.logs().contains("past their retention"));
}
