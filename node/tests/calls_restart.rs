//! ICE restart: a call whose path dies mid-call comes back on a new one.
//!
//! Both daemons run in one network namespace the test makes (only its loopback is used).
//! Mid-call, blackhole routing rules in that namespace drop every UDP packet to or from the
//! ports the caller's call sockets use now — for good, as if the caller's address had
//! changed. Without an ICE restart the call is lost; with it, the caller makes a new offer
//! (new sockets, new candidates) through the E2EE signalling, the callee answers, and the
//! call goes `connected` → `reconnecting` → `connected` and carries sound again.
//!
//! Skipped, with a message, where namespaces or policy-routing rules cannot be made.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::hash::{BuildHasher, Hasher};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{KITH, run, wait_for};
use kith_calls::tone::{sine, tone_share};
use kith_calls::{read_wav, write_wav};
use serde_json::Value;

const T: Duration = Duration::from_secs(40);

fn sh(prog: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {prog}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).to_string())
    } else {
        Err(format!(
            "{prog} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A network namespace with its loopback up; deleted on drop.
struct Ns(String);

impl Ns {
    fn create() -> Result<Self, String> {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        let name = format!("kith-restart-{:08x}", h.finish() as u32);
        sh("ip", &["netns", "add", &name])?;
        let ns = Ns(name);
        sh("ip", &["-n", &ns.0, "link", "set", "lo", "up"])?;
        // Policy routing in the namespace: the `local` table moves behind the rules that
        // drop ports (loopback traffic is otherwise routed before any rule is read).
        sh(
            "ip",
            &["-n", &ns.0, "rule", "add", "pref", "100", "lookup", "local"],
        )?;
        sh("ip", &["-n", &ns.0, "rule", "del", "pref", "0"])?;
        Ok(ns)
    }

    /// Drops every UDP packet from or to `port` in the namespace (blackhole routing rules).
    fn drop_udp_port(&self, port: u16) -> Result<(), String> {
        let port = port.to_string();
        for (pref, dir) in [("10", "sport"), ("11", "dport")] {
            sh(
                "ip",
                &[
                    "-n",
                    &self.0,
                    "rule",
                    "add",
                    "pref",
                    pref,
                    "ipproto",
                    "udp",
                    dir,
                    &port,
                    "blackhole",
                ],
            )?;
        }
        Ok(())
    }

    /// The UDP ports process `pid` has open in the namespace.
    fn udp_ports(&self, pid: u32) -> Vec<u16> {
        let out = sh("ip", &["netns", "exec", &self.0, "ss", "-H", "-uanp"]).unwrap_or_default();
        out.lines()
            .filter(|l| l.contains(&format!("pid={pid},")))
            .filter_map(|l| {
                let local = l.split_whitespace().nth(3)?;
                local.rsplit(':').next()?.parse().ok()
            })
            .collect()
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        if let Err(e) = sh("ip", &["netns", "del", &self.0]) {
            eprintln!("calls_restart: cannot delete namespace {}: {e}", self.0);
        }
    }
}

/// A `kith up` daemon in the namespace; killed on drop.
struct Daemon {
    child: Child,
    dir: tempfile::TempDir,
}

impl Daemon {
    fn start(ns: &Ns, port: u16) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(dir.path().join("daemon.log")).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &ns.0, KITH, "--data-dir"])
            .arg(dir.path())
            .args(["up", "--no-mdns", "--listen"])
            .arg(format!("/ip4/127.0.0.1/tcp/{port}"))
            .args(["--call-bind", "127.0.0.1"])
            .env("KITH_LOG", "info,kith_calls=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let d = Daemon { child, dir };
        wait_for(Duration::from_secs(20), "the daemon's API", || {
            run(d.path(), &["--json", "status"])
                .status
                .success()
                .then_some(())
        });
        d
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn json(&self, args: &[&str]) -> Vec<Value> {
        let mut full = vec!["--json"];
        full.extend_from_slice(args);
        let out = run(self.path(), &full);
        assert!(
            out.status.success(),
            "kith {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    fn current(&self) -> Value {
        self.json(&["calls", "--current"])
            .into_iter()
            .next()
            .unwrap_or(Value::Null)
    }

    /// The pid of `kith up` itself (the child is `ip netns exec`, which execs it).
    fn pid(&self) -> u32 {
        self.child.id()
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

fn wait_state(d: &Daemon, state: &str, other: &Daemon) {
    let start = Instant::now();
    loop {
        let c = d.current();
        if c["state"] == state {
            return;
        }
        assert!(
            start.elapsed() < T && !c.is_null(),
            "the call did not get to {state} (now {c})\n--- caller ---\n{}\n--- callee ---\n{}",
            d.logs(),
            other.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_call_whose_path_dies_restarts_ice_and_carries_sound_again() {
    let ns = match Ns::create() {
        Ok(ns) => ns,
        Err(reason) => {
            eprintln!(
                "skipping calls_restart: cannot make a namespace with routing rules: {reason}"
            );
            return;
        }
    };
    let a = Daemon::start(&ns, common::free_port());
    let b = Daemon::start(&ns, common::free_port());
    let code = |d: &Daemon| d.json(&["id"])[0]["code"].as_str().unwrap().to_string();
    a.json(&["contacts", "add", &code(&b), "--name", "Bob"]);
    b.json(&["contacts", "add", &code(&a), "--name", "Alice"]);

    let tmp = tempfile::tempdir().unwrap();
    let (a_in, b_out) = (tmp.path().join("a_in.wav"), tmp.path().join("b_out.wav"));
    write_wav(&a_in, &sine(440.0, 8000.0, 48_000 * 60)).unwrap();
    let before = a.pid();
    let ports_before = ns.udp_ports(before);
    a.json(&["call", "Bob", "--audio-in", a_in.to_str().unwrap()]);
    wait_for(T, "Bob's phone to ring", || {
        (b.current()["state"] == "ringing").then_some(())
    });
    b.json(&["answer", "--audio-out", b_out.to_str().unwrap()]);
    wait_state(&a, "connected", &b);
    wait_state(&b, "connected", &a);

    // The caller's path dies: its call sockets' ports go dark for good.
    let call_ports: Vec<u16> = ns
        .udp_ports(before)
        .into_iter()
        .filter(|p| !ports_before.contains(p))
        .collect();
    assert!(!call_ports.is_empty(), "the call's sockets were not found");
    // The caller's events, to see `reconnecting` however short it is.
    let mut watch = Command::new(KITH)
        .arg("--data-dir")
        .arg(a.path())
        .args(["--json", "watch"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let events = common::lines_of(watch.stdout.take().unwrap());
    // Time for the watcher to subscribe (not a timing assertion: a late watcher misses the
    // `reconnecting` event and the test fails loudly rather than passing wrongly).
    std::thread::sleep(Duration::from_secs(1));
    for p in &call_ports {
        ns.drop_udp_port(*p).expect("a routing rule");
    }
    let cut = Instant::now();
    let mut seen = Vec::new();
    while !(seen.iter().any(|s| s == "reconnecting")
        && seen.last().is_some_and(|s| s == "connected"))
    {
        let Ok(line) = events.recv_timeout(T) else {
            panic!(
                "call states seen: {seen:?}\n--- caller ---\n{}\n--- callee ---\n{}",
                a.logs(),
                b.logs()
            );
        };
        let v: Value = serde_json::from_str(&line).unwrap();
        if v["event"] == "call"
            && let Some(s) = v["state"].as_str()
        {
            assert_ne!(s, "ended", "the call ended: {seen:?}\n{}", a.logs());
            seen.push(s.to_string());
        }
    }
    let _ = watch.kill();
    let _ = watch.wait();
    wait_state(&b, "connected", &a);
    eprintln!(
        "calls_restart: back on a new path {:?} after the old one died",
        cut.elapsed()
    );
    let new_ports: Vec<u16> = ns
        .udp_ports(before)
        .into_iter()
        .filter(|p| !ports_before.contains(p) && !call_ports.contains(p))
        .collect();
    assert!(!new_ports.is_empty(), "the restart made no new sockets");
    // Talk on the new path (the length of the call, not a timing assertion).
    std::thread::sleep(Duration::from_secs(3));
    a.json(&["hangup"]);
    wait_for(T, "the call to end", || b.current().is_null().then_some(()));
    let heard = wait_for(T, "Bob's recording", || {
        read_wav(&b_out).ok().filter(|s| s.len() >= 48_000 * 2)
    });
    // The recording is written as packets arrive: its last two seconds came after the restart.
    let tail = &heard[heard.len() - 48_000 * 2..];
    let share = tone_share(tail, 440.0);
    eprintln!("calls_restart: tone share after the restart {share:.3}");
    assert!(share > 0.5, "no sound after the restart: {share}");
    let history = a.json(&["calls"]);
    assert_eq!(history[0]["outcome"], "hung_up", "{history:?}");
}
