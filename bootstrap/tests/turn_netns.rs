//! Calls through the operator's TURN relay, on networks the test makes itself: three network
//! namespaces, Alice's and Bob's each joined to the operator's by a veth pair, and no route
//! between Alice's and Bob's (the operator's namespace does not forward). Both register with
//! the operator's mailbox, get TURN credentials from it over libp2p, and call: the call can
//! only connect over relay candidates, and must carry the tone both ways.
//!
//! The same network without `[turn]` is the control: there the call cannot connect.
//!
//! Skipped, with a message, where namespaces cannot be made (not root, no iproute2). All
//! traffic stays inside the test's namespaces: the 10.x addresses below exist only there.
//! Uses the `kith` binary built next to this test (`cargo test --workspace` builds it).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hash::{BuildHasher, Hasher};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kith_calls::tone::{sine, tone_share_in_windows as tone_share};
use kith_calls::{read_wav, write_wav};
use serde_json::Value;

mod common;

// The CLI reaches each daemon through its socket, across namespaces.
use common::{BOOTSTRAP, kith, kith_bin, kith_json as json, wait_long as wait_for};

const T: Duration = Duration::from_secs(40);

/// Runs a command; the error is its stderr.
fn sh(prog: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {prog}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{prog} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn ip(args: &[&str]) -> Result<(), String> {
    sh("ip", args)
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

/// Alice's, the operator's and Bob's namespaces; deleted on drop (also on panic).
struct Net {
    alice: String,
    op: String,
    bob: String,
    /// The test-only subnet prefix, `10.N`: Alice on 10.N.1.2, the operator on 10.N.1.1
    /// and 10.N.2.1, Bob on 10.N.2.2.
    prefix: String,
    made: Vec<String>,
}

impl Net {
    fn create() -> Result<Self, String> {
        let r = random();
        let tag = format!("{:06x}", r as u32 & 0xff_ffff);
        // Test namespaces only: these addresses exist nowhere else.
        let prefix = format!("10.{}", 100 + (r >> 32) % 100);
        let mut net = Net {
            alice: format!("kith-turn-{tag}-a"),
            op: format!("kith-turn-{tag}-o"),
            bob: format!("kith-turn-{tag}-b"),
            prefix,
            made: Vec::new(),
        };
        for ns in [net.alice.clone(), net.op.clone(), net.bob.clone()] {
            ip(&["netns", "add", &ns])?;
            net.made.push(ns);
        }
        let p = &net.prefix;
        let (a, o, b) = (&net.alice, &net.op, &net.bob);
        let (va, voa, vb, vob) = (
            format!("kt{tag}a"),
            format!("kt{tag}oa"),
            format!("kt{tag}b"),
            format!("kt{tag}ob"),
        );
        ip(&[
            "link", "add", &va, "netns", a, "type", "veth", "peer", "name", &voa, "netns", o,
        ])?;
        ip(&[
            "link", "add", &vb, "netns", b, "type", "veth", "peer", "name", &vob, "netns", o,
        ])?;
        for (ns, dev, addr) in [
            (a, &va, format!("{p}.1.2/24")),
            (o, &voa, format!("{p}.1.1/24")),
            (b, &vb, format!("{p}.2.2/24")),
            (o, &vob, format!("{p}.2.1/24")),
        ] {
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
            ip(&["-n", ns, "addr", "add", &addr, "dev", dev])?;
            ip(&["-n", ns, "link", "set", dev, "up"])?;
        }
        // Bob reaches the operator's first address through it (delivered there, not
        // forwarded); neither Alice nor Bob has any route to the other's subnet.
        ip(&[
            "-n",
            b,
            "route",
            "add",
            &format!("{p}.1.1/32"),
            "via",
            &format!("{p}.2.1"),
        ])?;
        sh(
            "ip",
            &[
                "netns",
                "exec",
                o,
                "sh",
                "-c",
                "echo 0 > /proc/sys/net/ipv4/ip_forward",
            ],
        )?;
        Ok(net)
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in &self.made {
            if let Err(e) = ip(&["netns", "del", ns]) {
                eprintln!("turn_netns: cannot delete namespace {ns}: {e}");
            }
        }
    }
}

/// A process in a namespace, killed on drop, with its stderr in a file.
struct Proc {
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn spawn(ns: &str, prog: &Path, args: &[&str], log: PathBuf) -> Self {
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .arg(prog)
            .args(args)
            .env("KITH_LOG", "info,kith_engine=debug,kith_calls=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Proc { child, log }
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn current(dir: &Path) -> Value {
    json(dir, &["calls", "--current"])
        .into_iter()
        .next()
        .unwrap_or(Value::Null)
}

fn http_get(ns: &str, addr: &str, path: &str) -> Option<String> {
    // The metrics listen inside the operator's namespace: fetch from there.
    let out = Command::new("ip")
        .args(["netns", "exec", ns])
        .arg(std::env::current_exe().ok()?)
        .args([
            "--exact",
            "fetch_helper",
            "--nocapture",
            "--include-ignored",
        ])
        .env("KITH_FETCH", format!("{addr}{path}"))
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let start = text.find("HTTP/1.1")?;
    let end = text.rfind("\nFETCH-END").unwrap_or(text.len());
    Some(text[start..end].to_string())
}

/// Not a test: fetches `KITH_FETCH` (host:port/path) over plain HTTP and prints it, so the
/// test can read metrics from inside a namespace by running this binary there.
#[test]
#[ignore = "a helper the TURN test runs inside a namespace"]
fn fetch_helper() {
    let Ok(target) = std::env::var("KITH_FETCH") else {
        return;
    };
    let (addr, path) = target.split_at(target.find('/').unwrap());
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    println!("{out}\nFETCH-END");
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

struct Setup {
    _procs: Vec<Proc>,
    alice: PathBuf,
    bob: PathBuf,
    net: Net,
    metrics: String,
    tmp: tempfile::TempDir,
}

/// The three namespaces, the operator's node (with TURN when `turn`), and Alice's and
/// Bob's nodes registered with its mailbox and each other's contacts. `None` when
/// namespaces cannot be made.
fn setup(turn: bool) -> Option<Setup> {
    let net = match Net::create() {
        Ok(n) => n,
        Err(reason) => {
            eprintln!("skipping turn_netns: cannot create network namespaces: {reason}");
            return None;
        }
    };
    let tmp = tempfile::tempdir().unwrap();
    let p = net.prefix.clone();
    let data = tmp.path().join("boot");
    let cfg = tmp.path().join("bootstrap.toml");
    let metrics = format!("{p}.1.1:9464");
    let turn_section = if turn {
        format!(
            "[turn]\nenabled = true\nlisten = \"0.0.0.0:3478\"\npublic = \"{p}.1.1:3478\"\n\
             relay_ip = \"{p}.1.1\"\nmin_port = 40000\nmax_port = 40100\n\
             allow_private_peers = true\n"
        )
    } else {
        String::new()
    };
    std::fs::write(
        &cfg,
        format!(
            "data_dir = {data:?}\nlisten = [\"/ip4/{p}.1.1/tcp/4001\"]\nmetrics = \"{metrics}\"\n\
             [relay]\nallow_private_ips = true\n{turn_section}"
        ),
    )
    .unwrap();
    let mut procs = vec![Proc::spawn(
        &net.op,
        Path::new(BOOTSTRAP),
        &["--config", cfg.to_str().unwrap()],
        tmp.path().join("boot.log"),
    )];
    let id = wait_for(T, "the operator's node", || {
        let out = kith(&data, &["--json", "id"]);
        serde_json::from_slice::<Value>(&out.stdout).ok()
    });
    let boot_code = id["code"].as_str().unwrap().to_string();
    let boot_addr = format!(
        "/ip4/{p}.1.1/tcp/4001/p2p/{}",
        id["peer_id"].as_str().unwrap()
    );
    let kith = kith_bin();
    let mut node = |name: &str, ns: &str, addr: String| {
        let dir = tmp.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        procs.push(Proc::spawn(
            ns,
            &kith,
            &[
                "--data-dir",
                dir.to_str().unwrap(),
                "up",
                "--no-mdns",
                "--listen",
                &format!("/ip4/{addr}/tcp/4001"),
                "--bootstrap",
                &boot_addr,
            ],
            tmp.path().join(format!("{name}.log")),
        ));
        wait_for(T, "a node's API", || {
            self::kith(&dir, &["status"]).status.success().then_some(())
        });
        dir
    };
    let alice = node("alice", &net.alice.clone(), format!("{p}.1.2"));
    let bob = node("bob", &net.bob.clone(), format!("{p}.2.2"));
    for dir in [&alice, &bob] {
        let out = self::kith(dir, &["mailbox", "add", &boot_code]);
        assert!(
            out.status.success(),
            "mailbox add: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let code = |d: &Path| json(d, &["id"])[0]["code"].as_str().unwrap().to_string();
    json(&alice, &["contacts", "add", &code(&bob), "--name", "Bob"]);
    json(&bob, &["contacts", "add", &code(&alice), "--name", "Alice"]);
    Some(Setup {
        _procs: procs,
        alice,
        bob,
        net,
        metrics,
        tmp,
    })
}

impl Setup {
    fn logs(&self) -> String {
        let mut s = String::new();
        for p in &self._procs {
            s.push_str(&format!("--- {} ---\n{}\n", p.log.display(), p.logs()));
        }
        s
    }

    fn metrics(&self) -> String {
        http_get(&self.net.op, &self.metrics, "/metrics").unwrap_or_default()
    }
}

#[test]
fn a_call_between_networks_with_no_route_connects_through_turn() {
    let Some(s) = setup(true) else { return };
    // Both learn the operator's TURN server from its mailbox.
    for dir in [&s.alice, &s.bob] {
        wait_for(T, "TURN servers from the mailbox", || {
            let st = &json(dir, &["status"])[0];
            let urls = st["turn_servers"].as_array()?;
            urls.iter()
                .any(|u| u.as_str().is_some_and(|u| u.starts_with("turn:")))
                .then_some(())
        });
    }
    let dir = s.tmp.path();
    let (a_in, b_in) = (dir.join("a_in.wav"), dir.join("b_in.wav"));
    let (a_out, b_out) = (dir.join("a_out.wav"), dir.join("b_out.wav"));
    write_wav(&a_in, &sine(440.0, 8000.0, 48_000 * 30)).unwrap();
    write_wav(&b_in, &sine(660.0, 8000.0, 48_000 * 30)).unwrap();
    let arg = |p: &Path| p.to_str().unwrap().to_string();
    json(
        &s.alice,
        &[
            "call",
            "Bob",
            "--audio-in",
            &arg(&a_in),
            "--audio-out",
            &arg(&a_out),
        ],
    );
    wait_for(T, "Bob's phone to ring", || {
        (current(&s.bob)["state"] == "ringing").then_some(())
    });
    json(
        &s.bob,
        &[
            "answer",
            "--audio-in",
            &arg(&b_in),
            "--audio-out",
            &arg(&b_out),
        ],
    );
    let start = Instant::now();
    loop {
        let (a, b) = (current(&s.alice), current(&s.bob));
        if a["state"] == "connected" && b["state"] == "connected" {
            break;
        }
        assert!(
            start.elapsed() < T && !a.is_null(),
            "the call did not connect through TURN: {a} {b}\n{}",
            s.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Talk for a while (the length of the call, not a timing assertion).
    std::thread::sleep(Duration::from_secs(3));
    let m = s.metrics();
    json(&s.alice, &["hangup"]);
    wait_for(T, "the call to end", || {
        (current(&s.alice).is_null() && current(&s.bob).is_null()).then_some(())
    });
    let heard = |p: &Path| {
        wait_for(T, "a recording", || {
            read_wav(p).ok().filter(|v| v.len() >= 48_000)
        })
    };
    let to_bob = tone_share(&heard(&b_out), 440.0);
    let to_alice = tone_share(&heard(&a_out), 660.0);
    eprintln!("through TURN: tone shares to Bob {to_bob:.3}, to Alice {to_alice:.3}");
    assert!(
        to_bob > 0.5 && to_alice > 0.5,
        "the tones did not cross: {to_bob} {to_alice}"
    );
    // The operator saw the relays and the bytes.
    assert!(metric(&m, "kith_turn_allocations_total") >= 1, "{m}");
    assert!(
        metric(&m, "kith_turn_relayed_bytes_total") > 10_000,
        "relayed bytes: {m}"
    );
    assert_eq!(metric(&m, "kith_turn_refused_credentials_total"), 0, "{m}");
}

/// The control: the same networks without TURN. The call rings (signalling goes through
/// the operator's mailbox) but can never connect.
#[test]
fn without_turn_the_same_call_cannot_connect() {
    let Some(s) = setup(false) else { return };
    json(&s.alice, &["call", "Bob"]);
    wait_for(T, "Bob's phone to ring", || {
        (current(&s.bob)["state"] == "ringing").then_some(())
    });
    json(&s.bob, &["answer"]);
    // It ends (the media's connect timeout) without ever being connected.
    let mut states = Vec::new();
    wait_for(Duration::from_secs(60), "the call to fail", || {
        let c = current(&s.alice);
        if let Some(st) = c["state"].as_str() {
            states.push(st.to_string());
        }
        c.is_null().then_some(())
    });
    assert!(!states.iter().any(|s| s == "connected"), "{states:?}");
    let history = json(&s.alice, &["calls"]);
    assert_eq!(history[0]["outcome"], "failed", "{history:?}");
}
