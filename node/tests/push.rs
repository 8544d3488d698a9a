//! Push wake-ups and the mailbox byte quota, with real `kith up` processes on loopback.
//!
//! The push "server" is a tiny HTTP receiver on 127.0.0.1 run by the test: it records the
//! full bytes of every request, so the test can check a wake-up says nothing about the mail.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
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

/// A loopback HTTP server that answers 200 to everything and keeps each request's bytes.
struct Receiver {
    port: u16,
    got: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Receiver {
    fn start() -> Self {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let got = Arc::new(Mutex::new(Vec::new()));
        let g = got.clone();
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(mut s) = conn else { return };
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                // Read the head, then as many body bytes as Content-Length says.
                while let Ok(n) = s.read(&mut chunk) {
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                        let len = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + len || buf.len() > 1 << 20 {
                            break;
                        }
                    }
                }
                g.lock().unwrap().push(buf);
                let _ = s.write_all(
                    b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
            }
        });
        Self { port, got }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/up/SECRET-TOKEN?x=1", self.port)
    }

    fn requests(&self) -> Vec<Vec<u8>> {
        self.got.lock().unwrap().clone()
    }
}

fn contains(hay: &[u8], needle: &str) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

fn statuses(a: &Node, with: &str) -> Vec<String> {
    a.history(with)
        .iter()
        .filter(|m| m["from"] == "me")
        .map(|m| m["status"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn an_offline_device_is_woken_without_content_at_most_once_per_window() {
    let rx = Receiver::start();
    let mut m = Node::new().with_args(&["--mailbox", "--push-allow-private", "--push-allow-http"]);
    m.start();
    let boot = peer_addr(&m);
    let mut a = Node::new().with_args(&["--bootstrap", &boot]);
    let mut b = Node::new().with_args(&["--bootstrap", &boot]);
    a.start();
    b.start();
    b.add_mailbox(&[&m.code()]);
    let set = b.json(&["push", "set", &rx.url()]);
    assert_eq!(set[0]["set"], true);
    assert_eq!(set[0]["host"], "127.0.0.1");
    assert_eq!(set[0]["mailboxes"][0]["status"], "accepted");
    // The URL's secret part is never shown back or logged.
    let shown = b.cli(&["push"]);
    assert!(shown.status.success());
    assert!(!String::from_utf8_lossy(&shown.stdout).contains("SECRET-TOKEN"));

    a.add(&b, "Bob");
    b.add(&a, "Alice");
    a.send("Bob", "warm up");
    a.wait_status("Bob", 1, "delivered", T);
    assert!(rx.requests().is_empty(), "no wake-up while Bob is online");

    b.stop();
    let text = "a secret canary text";
    let id = a.send("Bob", text);
    wait_for(T, "✓ sent via the mailbox", || {
        let s = statuses(&a, "Bob");
        (s.len() == 2 && s[1] == "sent").then_some(())
    });
    let first = wait_for(T, "a wake-up POST", || rx.requests().first().cloned());
    assert!(
        first.starts_with(b"POST /up/SECRET-TOKEN?x=1 "),
        "{:?}",
        String::from_utf8_lossy(&first)
    );
    let alice = a.json(&["id"]);
    for secret in [
        text,
        id.as_str(),
        alice[0]["peer_id"].as_str().unwrap(),
        alice[0]["code"].as_str().unwrap(),
        alice[0]["identity"].as_str().unwrap(),
        "Alice",
    ] {
        assert!(!contains(&first, secret), "the wake-up carries {secret:?}");
    }

    // More mail inside the window: no more wake-ups.
    for i in 0..4 {
        a.send("Bob", &format!("more {i}"));
    }
    wait_for(T, "all ✓ sent", || {
        let s = statuses(&a, "Bob");
        (s.len() == 6 && s[1..].iter().all(|s| s == "sent")).then_some(())
    });
    // Give a stray POST time to show up before counting.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(rx.requests().len(), 1, "one wake-up per window");
    let logs = m.logs();
    assert!(
        !logs.contains("SECRET-TOKEN"),
        "the push URL leaked into the log"
    );
    assert!(!logs.contains(text));

    // Bob comes back and gets everything.
    b.start();
    let got = b.wait_received("Alice", 6, T);
    assert_eq!(got.len(), 6, "every message once");
    assert_eq!(got[1]["text"], text);
    a.wait_status("Bob", 6, "delivered", T);
    assert!(!b.logs().contains("SECRET-TOKEN"));

    // Clearing stops wake-ups at the mailbox too.
    let cleared = b.json(&["push", "clear"]);
    assert_eq!(cleared[0]["set"], false);
    assert_eq!(cleared[0]["mailboxes"][0]["status"], "cleared");
}

#[test]
fn a_mailbox_refuses_private_and_plain_http_endpoints_unless_allowed() {
    let rx = Receiver::start();
    let mut m = Node::new().with_args(&["--mailbox"]);
    m.start();
    let mut b = Node::new();
    b.start();
    b.add_mailbox(&[&m.code()]);
    for url in [rx.url(), format!("https://127.0.0.1:{}/up/x", rx.port)] {
        let out = b.cli(&["push", "set", &url]);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("refuses this endpoint"), "{err}");
        assert!(!err.contains("SECRET-TOKEN"));
    }
    let shown = b.json(&["push"]);
    assert!(
        shown[0]["mailboxes"][0]["status"]
            .as_str()
            .unwrap()
            .starts_with("refused"),
        "{shown:?}"
    );
    // A malformed URL is refused by the device itself.
    let out = b.cli(&["push", "set", "ftp://example.org/x"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid push endpoint"));
    assert!(rx.requests().is_empty());
}

#[test]
fn byte_quota_refuses_deposits_until_the_device_drains() {
    // One envelope of a short message is well under 1 KiB; 2 KiB holds a few.
    let mut m = Node::new().with_args(&["--mailbox", "--mailbox-quota-bytes", "2048"]);
    m.start();
    let boot = peer_addr(&m);
    let mut a = Node::new().with_args(&["--bootstrap", &boot]);
    let mut b = Node::new().with_args(&["--bootstrap", &boot]);
    a.start();
    b.start();
    b.add_mailbox(&[&m.code()]);
    let list = b.json(&["mailbox", "list"]);
    assert_eq!(list[0]["quota_bytes"], 2048);
    assert_eq!(list[0]["used_bytes"], 0);
    assert_eq!(list[0]["used_messages"], 0);
    a.add(&b, "Bob");
    b.add(&a, "Alice");
    a.send("Bob", "warm up");
    a.wait_status("Bob", 1, "delivered", T);
    b.stop();
    // Each send is its own envelope of about 400 bytes (300 of text): only some fit.
    let filler = "x".repeat(300);
    for i in 0..10 {
        a.send("Bob", &format!("{i} {filler}"));
    }
    wait_for(T, "the mailbox full: the rest pending", || {
        let s = statuses(&a, "Bob");
        let sent = s.iter().filter(|s| *s == "sent").count();
        (sent > 0 && sent < 10 && a.logs().contains("mailbox is full")).then_some(())
    });
    let s = statuses(&a, "Bob");
    let kept = s.iter().filter(|s| *s == "sent").count();
    assert!(kept < 10, "the byte quota must refuse some: {s:?}");
    assert_eq!(
        s.iter().filter(|s| *s == "pending").count(),
        10 - kept,
        "refused messages stay pending: {s:?}"
    );
    // Envelopes held (several messages sent together may share one).
    let held = m.json(&["status"])[0]["outbox"].as_u64().unwrap();
    assert!(
        held > 0 && held as usize <= kept,
        "{held} envelopes for {kept} messages"
    );

    // Bob returns: his registration answer shows what was kept (a mailbox hands kept mail
    // over only after the device registered on its connection), then everything arrives.
    b.start();
    let got = b.wait_received("Alice", 11, T);
    assert_eq!(got.len(), 11, "every message once");
    a.wait_status("Bob", 11, "delivered", T);
    let list = b.json(&["mailbox", "list"]);
    assert!(
        list[0]["used_messages"].as_u64().unwrap() > 0
            && list[0]["used_bytes"].as_u64().unwrap() > 0,
        "figures from the reconnect's registration: {list:?}"
    );
    // Drained: the mailbox holds nothing, and new mail fits again.
    wait_for(T, "the mailbox drained", || {
        (m.json(&["status"])[0]["outbox"] == 0).then_some(())
    });
    b.stop();
    a.send("Bob", "after the drain");
    wait_for(T, "✓ sent after the drain", || {
        let s = statuses(&a, "Bob");
        (s.len() == 12 && s[11] == "sent").then_some(())
    });
    b.start();
    b.wait_received("Alice", 12, T);
    let list = b.json(&["mailbox", "list"]);
    assert_eq!(list[0]["used_messages"], 1, "{list:?}");
}
