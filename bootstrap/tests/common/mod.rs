//! What the operator tests share: the binaries, free loopback ports, waiting, and
//! processes that are killed when the test ends (also when it fails).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BOOTSTRAP: &str = env!("CARGO_BIN_EXE_kith-bootstrap");

pub fn kith_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let p = exe.parent().unwrap().parent().unwrap().join("kith");
    assert!(
        p.exists(),
        "the kith binary is not built at {}; run `cargo test --workspace`",
        p.display()
    );
    p
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `f` every 50 ms until it gives a value; fails the test after `limit`.
pub fn wait_long<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// [`wait_long`] with 30 seconds.
pub fn wait_for<T>(what: &str, f: impl FnMut() -> Option<T>) -> T {
    wait_long(Duration::from_secs(30), what, f)
}

pub fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

/// Runs a `kith` CLI command on a data directory.
pub fn kith(dir: &Path, args: &[&str]) -> Output {
    Command::new(kith_bin())
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .output()
        .unwrap()
}

/// A `kith` CLI command with `--json` that must succeed: its JSON lines.
pub fn kith_json(dir: &Path, args: &[&str]) -> Vec<serde_json::Value> {
    let mut full = vec!["--json"];
    full.extend_from_slice(args);
    let out = kith(dir, &full);
    assert!(
        out.status.success(),
        "kith {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A child process killed (SIGKILL) when dropped.
pub struct Kill(pub Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `kith-bootstrap` with a configuration file.
pub fn start_bootstrap(cfg: &Path) -> Kill {
    Kill(
        Command::new(BOOTSTRAP)
            .arg("--config")
            .arg(cfg)
            .env("KITH_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// Starts a `kith` daemon listening on loopback `port`, joining through `bootstrap` when
/// given, and waits until its API answers.
pub fn start_kith(dir: &Path, port: u16, bootstrap: Option<&str>) -> Kill {
    let mut cmd = Command::new(kith_bin());
    cmd.arg("--data-dir")
        .arg(dir)
        .args(["up", "--no-mdns", "--listen"])
        .arg(format!("/ip4/127.0.0.1/tcp/{port}"));
    if let Some(b) = bootstrap {
        cmd.args(["--bootstrap", b]);
    }
    let child = Kill(
        cmd.stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for("the daemon's API", || {
        kith(dir, &["status"]).status.success().then_some(())
    });
    child
}
