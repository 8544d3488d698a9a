//! Tests on a LAN the test makes itself: two network namespaces joined by a veth pair.
//!
//! - mDNS: two nodes find each other with no address given.
//! - Presence: when one node's cable is pulled (its link goes down: no FIN, no reset), its
//!   contact shows it offline within 60 s.
//!
//! Skipped, with a message, where namespaces cannot be made (not root, no iproute2).
//!
//! mDNS runs only inside the test's namespaces: nothing is sent on the host's networks. The CLI
//! reaches each daemon through the Unix socket in its data directory, which works across
//! network namespaces.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs::File;
use std::hash::{BuildHasher, Hasher};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{KITH, run, wait_for};
use serde_json::Value;

const T: Duration = Duration::from_secs(30);

/// Runs `ip ARGS`; the error is its stderr.
fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn random() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

/// Two network namespaces joined by a veth pair; deleted on drop (also on panic).
struct Lan {
    namespaces: Vec<String>,
    /// The veth ends, with their namespace and address.
    ends: [(String, String, String); 2],
}

impl Lan {
    fn create() -> Result<Self, String> {
        let r = random();
        let tag = format!("{:08x}", r as u32);
        let subnet = 1 + (r >> 32) % 250;
        let mut lan = Lan {
            namespaces: Vec::new(),
            ends: [
                (
                    format!("kith-test-{tag}-a"),
                    format!("kt{tag}a"),
                    format!("10.231.{subnet}.1"),
                ),
                (
                    format!("kith-test-{tag}-b"),
                    format!("kt{tag}b"),
                    format!("10.231.{subnet}.2"),
                ),
            ],
        };
        for (ns, _, _) in lan.ends.clone() {
            ip(&["netns", "add", &ns])?;
            lan.namespaces.push(ns);
        }
        let [(ns_a, dev_a, _), (ns_b, dev_b, _)] = &lan.ends;
        ip(&[
            "link", "add", dev_a, "netns", ns_a, "type", "veth", "peer", "name", dev_b, "netns",
            ns_b,
        ])?;
        Ok(lan)
    }

    /// Addresses, loopback, multicast and links up in both namespaces.
    fn configure(&self) -> Result<(), String> {
        for (ns, dev, addr) in &self.ends {
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
            ip(&["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", dev])?;
            ip(&["-n", ns, "link", "set", dev, "multicast", "on"])?;
            ip(&["-n", ns, "link", "set", dev, "up"])?;
        }
        Ok(())
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        // Deleting a namespace takes its veth end, and so the pair, with it.
        for ns in &self.namespaces {
            if let Err(e) = ip(&["netns", "del", ns]) {
                eprintln!("mdns_netns: cannot delete namespace {ns}: {e}");
            }
        }
    }
}

/// A `kith up` daemon with mDNS on, inside a network namespace; killed on drop.
struct Daemon {
    child: Child,
    dir: tempfile::TempDir,
}

impl Daemon {
    fn start(ns: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = File::create(dir.path().join("daemon.log")).expect("log file");
        let child = Command::new("ip")
            .args(["netns", "exec", ns, KITH, "--data-dir"])
            .arg(dir.path())
            .args(["up", "--listen", "/ip4/0.0.0.0/tcp/0"])
            .env("KITH_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn kith up in the namespace");
        let mut d = Daemon { child, dir };
        let start = Instant::now();
        loop {
            if run(d.path(), &["--json", "status"]).status.success() {
                break;
            }
            if let Ok(Some(status)) = d.child.try_wait() {
                panic!("the daemon in {ns} exited: {status}\n{}", d.logs());
            }
            if start.elapsed() > Duration::from_secs(20) {
                panic!("the daemon in {ns} did not answer\n{}", d.logs());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        d
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut full = vec!["--json"];
        full.extend_from_slice(args);
        let out = run(self.path(), &full);
        assert!(
            out.status.success(),
            "kith {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("json")
    }

    fn peer_id(&self) -> String {
        self.json(&["id"])["peer_id"]
            .as_str()
            .expect("peer_id")
            .to_string()
    }

    fn connected(&self) -> Vec<String> {
        self.json(&["status"])["connected_peers"]
            .as_array()
            .expect("connected_peers")
            .iter()
            .filter_map(|p| p.as_str().map(String::from))
            .collect()
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(self.path().join("daemon.log")).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn nodes_on_a_lan_find_each_other_with_mdns() {
    let lan = match Lan::create() {
        Ok(lan) => lan,
        Err(reason) => {
            eprintln!("skipping mdns_netns: cannot create network namespaces: {reason}");
            return;
        }
    };
    lan.configure().expect("configure the test LAN");

    // Declared after `lan`, so dropped (killed) before the namespaces are deleted.
    let a = Daemon::start(&lan.ends[0].0);
    let b = Daemon::start(&lan.ends[1].0);
    let (peer_a, peer_b) = (a.peer_id(), b.peer_id());
    assert_ne!(peer_a, peer_b);
    // No bootstrap, no contact: nothing but mDNS can bring them together.

    let start = Instant::now();
    loop {
        if a.connected().contains(&peer_b) {
            break;
        }
        if start.elapsed() > T {
            panic!(
                "A did not find B on the LAN within {T:?}\n--- A's log ---\n{}\n--- B's log ---\n{}",
                a.logs(),
                b.logs()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("mdns_netns: A found B in {:?}", start.elapsed());
    wait_for(T, "B to see A connected", || {
        b.connected().contains(&peer_a).then_some(())
    });
}

#[test]
fn a_pulled_cable_shows_offline_within_a_minute() {
    let lan = match Lan::create() {
        Ok(lan) => lan,
        Err(reason) => {
            eprintln!("skipping the pulled-cable test: cannot create network namespaces: {reason}");
            return;
        }
    };
    lan.configure().expect("configure the test LAN");
    let a = Daemon::start(&lan.ends[0].0);
    let b = Daemon::start(&lan.ends[1].0);
    let code = |d: &Daemon| d.json(&["id"])["code"].as_str().expect("code").to_string();
    b.json(&["contacts", "add", &code(&a), "--name", "Alice"]);
    a.json(&["contacts", "add", &code(&b), "--name", "Bob"]);
    let alice = |b: &Daemon| {
        // `contacts list --json` prints one object per line.
        let out = run(b.path(), &["--json", "contacts", "list"]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|c| c["name"] == "Alice")
            .expect("Alice listed")
    };
    wait_for(T, "B to see A online", || {
        (alice(&b)["presence"] == "online").then_some(())
    });
    // The cable: A's end of the link goes down. Nothing tells B.
    let (ns_a, dev_a, _) = &lan.ends[0];
    ip(&["-n", ns_a, "link", "set", dev_a, "down"]).expect("pull the cable");
    let pulled = Instant::now();
    wait_for(
        Duration::from_secs(65),
        "B to see A offline after the cable was pulled",
        || (alice(&b)["presence"] != "online").then_some(()),
    );
    eprintln!(
        "presence: A shown offline {:?} after the cable was pulled",
        pulled.elapsed()
    );
    let v = alice(&b);
    assert_eq!(v["presence"], "offline");
    assert!(v["last_seen"].is_u64(), "last seen kept: {v}");
}
