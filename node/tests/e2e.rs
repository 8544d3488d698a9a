#![allow(clippy::unwrap_used, clippy::expect_used)]

//! End-to-end tests: separate `kith up` processes on loopback, driven through the CLI.

mod common;

use std::time::Duration;

use common::*;

const T: Duration = Duration::from_secs(30);

#[test]
fn messages_both_ways_reach_read() {
    let (a, b) = pair();
    let id1 = a.send("Bob", "hello bob");
    let got = b.wait_received("Alice", 1, T);
    assert_eq!(got[0]["text"], "hello bob");
    assert_eq!(got[0]["id"], id1.as_str());
    assert_eq!(got[0]["from"], "Alice");
    a.wait_status("Bob", 1, "delivered", T);

    b.send("Alice", "hi alice");
    let got = a.wait_received("Bob", 1, T);
    assert_eq!(got[0]["text"], "hi alice");

    // Bob opens the conversation: Alice sees "read".
    let r = b.json(&["read", "Alice"]);
    assert_eq!(r[0]["marked"], 1);
    a.wait_status("Bob", 1, "read", T);
    // Reading again marks nothing new.
    assert_eq!(b.json(&["read", "Alice"])[0]["marked"], 0);

    // Both see the same safety number.
    let va = a.json(&["verify", "Bob"]);
    let vb = b.json(&["verify", "Alice"]);
    assert_eq!(va[0]["safety_number"], vb[0]["safety_number"]);
    assert_eq!(va[0]["safety_number"].as_str().unwrap().len(), 71);
}

#[test]
fn watch_streams_messages_and_states() {
    let (a, b) = pair();
    let mut watch = std::process::Command::new(KITH)
        .arg("--data-dir")
        .arg(&b.dir)
        .args(["--json", "watch"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = watch.stdout.take().unwrap();
    let rx = lines_of(stdout);
    // The watch subscribes asynchronously: send until the first event arrives.
    let line = wait_for(T, "a message event on watch", || {
        a.send("Bob", "watched");
        rx.recv_timeout(Duration::from_millis(500)).ok()
    });
    let ev: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(ev["event"], "message");
    assert_eq!(ev["contact"], "Alice");
    assert_eq!(ev["text"], "watched");
    let _ = watch.kill();
    let _ = watch.wait();
}

#[test]
fn everything_survives_restart() {
    let (mut a, mut b) = pair();
    let code_a = a.code();
    a.send("Bob", "before restart");
    b.wait_received("Alice", 1, T);
    a.wait_status("Bob", 1, "delivered", T);
    a.stop();
    b.stop();
    a.start();
    b.start();
    // Same identity (the code may list other addresses, so compare the identity part).
    assert_eq!(a.json(&["id"])[0]["peer_id"], a.json(&["id"])[0]["peer_id"]);
    let again = a.code();
    let ident = |c: &str| {
        kith_proto::contact::ContactCard::from_code(c)
            .unwrap()
            .identity
    };
    assert_eq!(ident(&code_a), ident(&again));
    let contacts = a.json(&["contacts", "list"]);
    assert_eq!(contacts.len(), 1);
    assert_eq!(contacts[0]["name"], "Bob");
    let h = a.history("Bob");
    assert_eq!(h.len(), 1);
    assert_eq!(h[0]["status"], "delivered");
    assert_eq!(h[0]["text"], "before restart");
    // Sessions survive too: messages keep flowing both ways after the restart.
    b.send("Alice", "after restart");
    assert_eq!(a.wait_received("Bob", 1, T)[0]["text"], "after restart");
    a.send("Bob", "and back");
    b.wait_received("Alice", 2, T);
}

#[test]
fn offline_recipient_gets_messages_in_order_once() {
    let (a, mut b) = pair();
    a.send("Bob", "warm up");
    b.wait_received("Alice", 1, T);
    b.stop();
    let ids: Vec<String> = (1..=3)
        .map(|i| a.send("Bob", &format!("offline {i}")))
        .collect();
    let h = a.history("Bob");
    let pending: Vec<_> = h.iter().filter(|m| m["status"] == "pending").collect();
    assert_eq!(pending.len(), 3, "queued while Bob is away: {h:?}");
    b.start();
    a.wait_status("Bob", 4, "delivered", T);
    let got = b.wait_received("Alice", 4, T);
    let got_ids: Vec<&str> = got[1..].iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(got_ids, ids.iter().map(String::as_str).collect::<Vec<_>>());
    // Nothing shown twice.
    assert_eq!(b.history("Alice").len(), 4);
}

#[test]
fn kill9_during_burst_loses_and_duplicates_nothing() {
    let (a, mut b) = pair();
    const N: usize = 200;
    let a_dir = a.dir.clone();
    let sender = std::thread::spawn(move || {
        let mut ids = Vec::new();
        for i in 0..N {
            let out = run(&a_dir, &["--json", "send", "Bob", &format!("burst {i}")]);
            assert!(out.status.success());
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            ids.push(v["id"].as_str().unwrap().to_string());
        }
        ids
    });
    // Kill Bob once part of the burst has arrived.
    let at_kill = wait_for(T, "some of the burst at Bob", || {
        let n = b.history("Alice").len();
        (n >= 20).then_some(n)
    });
    b.kill9();
    assert!(at_kill < N, "Bob must be killed in the middle of the burst");
    let ids = sender.join().unwrap();
    b.start();
    let statuses = a.wait_status("Bob", N, "delivered", Duration::from_secs(90));
    assert_eq!(statuses.len(), N);
    let got = b.wait_received("Alice", N, T);
    assert_eq!(got.len(), N, "every message exactly once");
    let got_ids: Vec<&str> = got.iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(
        got_ids,
        ids.iter().map(String::as_str).collect::<Vec<_>>(),
        "in order"
    );
}

#[test]
fn cli_errors_have_documented_exit_codes() {
    let (a, _b) = pair();
    // Unknown contact: user error.
    let out = a.cli(&["send", "Nobody", "hi"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no contact named"));
    // A bad code: user error.
    let out = a.cli(&["contacts", "add", "kith1notacode", "--name", "X"]);
    assert_eq!(out.status.code(), Some(1));
    // Own code.
    let own = a.code();
    assert_eq!(
        a.cli(&["contacts", "add", &own, "--name", "Me"])
            .status
            .code(),
        Some(1)
    );
    // Usage error.
    assert_eq!(a.cli(&["send"]).status.code(), Some(1));
    // No daemon for this directory.
    let empty = tempfile::tempdir().unwrap();
    let out = run(empty.path(), &["status"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("kith up"));
    // A second daemon on the same data directory refuses to start.
    let out = std::process::Command::new(KITH)
        .arg("--data-dir")
        .arg(&a.dir)
        .args(["up", "--no-mdns", "--listen", "/ip4/127.0.0.1/tcp/0"])
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    // The first one still answers.
    assert!(a.cli(&["status"]).status.success());
}

#[test]
fn changed_identity_for_a_name_is_refused_with_a_warning() {
    let (a, _b) = pair();
    let mut impostor = Node::new();
    impostor.start();
    let out = a.cli(&["contacts", "add", &impostor.code(), "--name", "Bob"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("different identity key"), "{err}");
    // Bob is still the original contact.
    let verify_before = a.json(&["verify", "Bob"]);
    assert_ne!(
        verify_before[0]["theirs"].as_str().unwrap()[..16],
        impostor.json(&["id"])[0]["peer_id"].as_str().unwrap()[..16]
    );
    assert_eq!(a.json(&["contacts", "list"]).len(), 1);
    // After comparing safety numbers, the user removes the old contact and adds the new key.
    a.json(&["contacts", "remove", "Bob"]);
    assert!(a.json(&["contacts", "list"]).is_empty());
    a.json(&["contacts", "add", &impostor.code(), "--name", "Bob"]);
    a.send("Bob", "to the new key");
    wait_for(T, "the message at the new key", || {
        let c = impostor.json(&["contacts", "list"]);
        let name = c.first()?["name"].as_str()?.to_string();
        (!impostor.history(&name).is_empty()).then_some(())
    });
}

#[test]
fn dht_record_finds_a_contact_with_no_address() {
    // C is a plain node used as the DHT bootstrap.
    let mut c = Node::new();
    c.start();
    let c_id = c.json(&["id"])[0]["peer_id"].as_str().unwrap().to_string();
    let c_addr = format!("{}/p2p/{c_id}", c.listen_addr());
    let mut a = Node::new().with_args(&["--bootstrap", &c_addr]);
    let mut b = Node::new().with_args(&["--bootstrap", &c_addr]);
    a.start();
    b.start();
    // Bob's code without any address: Alice can only find him through his user record.
    let mut card = kith_proto::contact::ContactCard::from_code(&b.code()).unwrap();
    card.addrs.clear();
    let code = card.to_code().unwrap();
    a.json(&["contacts", "add", &code, "--name", "Bob"]);
    a.send("Bob", "found you");
    a.wait_status("Bob", 1, "delivered", Duration::from_secs(60));
    assert_eq!(
        b.wait_received(&first_contact(&b), 1, T)[0]["text"],
        "found you"
    );
    // With no address in the code, only the DHT (Kademlia peer routing or Bob's signed user
    // record, whichever answers first) can have told Alice where Bob is.
}

/// The name of a node's only contact (a provisional one when it was written to first).
fn first_contact(n: &Node) -> String {
    let c = n.json(&["contacts", "list"]);
    c[0]["name"].as_str().unwrap().to_string()
}

#[test]
fn chat_screen_sends_lines_and_reads_what_arrives() {
    use std::io::Write;
    let (a, b) = pair();
    let mut chat = std::process::Command::new(KITH)
        .arg("--data-dir")
        .arg(&b.dir)
        .args(["chat", "Alice"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = chat.stdin.take().unwrap();
    let stdout = chat.stdout.take().unwrap();
    let rx = lines_of(stdout);
    // Wait for the screen to be ready.
    wait_for(T, "chat prompt", || {
        rx.recv_timeout(Duration::from_millis(200))
            .ok()
            .filter(|l| l.contains("chatting with Alice"))
    });
    writeln!(stdin, "typed in the chat screen").unwrap();
    let got = a.wait_received("Bob", 1, T);
    assert_eq!(got[0]["text"], "typed in the chat screen");
    // A message arriving while the screen is open is shown and marked read.
    a.send("Bob", "to the open screen");
    wait_for(T, "incoming line on the chat screen", || {
        rx.recv_timeout(Duration::from_millis(200))
            .ok()
            .filter(|l| l.contains("to the open screen"))
    });
    a.wait_status("Bob", 1, "read", T);
    writeln!(stdin, "/quit").unwrap();
    let status = wait_for(T, "chat to exit", || chat.try_wait().ok().flatten());
    assert!(status.success());
}

/// Regression: a backlog whose envelopes add up to more than one frame (1 MiB) used to be
/// sent as one oversized request that failed and was retried unchanged forever.
#[test]
fn large_backlog_is_split_into_frames_that_fit() {
    let (a, mut b) = pair();
    a.send("Bob", "warm up");
    b.wait_received("Alice", 1, T);
    b.stop();
    let big = "x".repeat(40 * 1024);
    for i in 0..40 {
        a.send("Bob", &format!("{i} {big}"));
    }
    b.start();
    a.wait_status("Bob", 41, "delivered", Duration::from_secs(60));
    assert_eq!(b.wait_received("Alice", 41, T).len(), 41);
}

/// Concurrent sends land in one engine batch and are sealed together in one envelope; each
/// must still arrive exactly once, in the sender's order.
#[test]
fn concurrent_sends_sealed_together_arrive_once_in_order() {
    let (a, b) = pair();
    a.send("Bob", "open the session");
    a.wait_status("Bob", 1, "delivered", T);
    let threads: Vec<_> = (0..16)
        .map(|t| {
            let dir = a.dir.clone();
            std::thread::spawn(move || {
                for i in 0..5 {
                    let out = run(&dir, &["send", "Bob", &format!("t{t} m{i}")]);
                    assert!(out.status.success());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    a.wait_status("Bob", 81, "delivered", T);
    let got = b.wait_received("Alice", 81, T);
    assert_eq!(got.len(), 81, "each message exactly once");
    // Bob's order is Alice's order.
    let sent: Vec<String> = a
        .history("Bob")
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    let recv: Vec<String> = got
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(sent, recv);
}
