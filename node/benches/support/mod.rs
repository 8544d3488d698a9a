//! Helpers shared by the benchmarks: daemons on loopback with temporary data directories.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kith_api::Client;
use kith_api::methods::{self, NoParams};

pub mod events;
pub mod load;
pub mod peer;

pub const KITH: &str = env!("CARGO_BIN_EXE_kith");

pub struct Daemon {
    pub dir: PathBuf,
    pub port: u16,
    extra: Vec<String>,
    child: Child,
    _tmp: tempfile::TempDir,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spawn(dir: &Path, port: u16, extra: &[String]) -> Child {
    Command::new(KITH)
        .arg("--data-dir")
        .arg(dir)
        .args(["up", "--no-mdns", "--listen"])
        .arg(format!("/ip4/127.0.0.1/tcp/{port}"))
        .args(extra)
        .env("KITH_LOG", "warn,libp2p_request_response=error")
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

async fn wait_api(dir: &Path) {
    let start = Instant::now();
    while Client::connect(&sock(dir)).await.is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "daemon did not start"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Starts `kith up` on a free loopback port with `extra` arguments.
pub async fn daemon_with(extra: &[&str]) -> Daemon {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let port = free_port();
    let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    let child = spawn(&dir, port, &extra);
    wait_api(&dir).await;
    Daemon {
        dir,
        port,
        extra,
        child,
        _tmp: tmp,
    }
}

impl Daemon {
    /// Stops the daemon (SIGKILL; the store is crash-safe).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Starts the daemon again on the same port and data directory.
    pub async fn restart(&mut self) {
        self.stop();
        self.child = spawn(&self.dir, self.port, &self.extra);
        wait_api(&self.dir).await;
    }
}

/// Starts `kith up` on a free loopback port.
pub async fn daemon() -> Daemon {
    daemon_with(&[]).await
}

pub fn sock(dir: &Path) -> PathBuf {
    dir.join(kith_api::SOCKET_NAME)
}

pub fn pct(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Milliseconds, for printing.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub fn env_usize(k: &str, d: usize) -> usize {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

/// Makes Alice (`ca`) and Bob (`cb`) contacts of each other, named "Bob" and "Alice".
pub async fn befriend(ca: &mut Client, cb: &mut Client) {
    let code_a = ca.call::<methods::Id>(NoParams {}).await.unwrap().code;
    let code_b = cb.call::<methods::Id>(NoParams {}).await.unwrap().code;
    for (c, code, name) in [(ca, code_b, "Bob"), (cb, code_a, "Alice")] {
        c.call::<methods::ContactsAdd>(methods::AddContactParams {
            code,
            name: name.into(),
        })
        .await
        .unwrap();
    }
}

/// Sends `per` messages to `to` from each of `conc` API connections at once, each waiting
/// for its previous `send` to be answered (so `conc` are in flight).
pub async fn send_concurrently(dir: &Path, to: &str, conc: usize, per: usize, prefix: &str) {
    let mut tasks = Vec::new();
    for w in 0..conc {
        let path = sock(dir);
        let to = to.to_string();
        let prefix = prefix.to_string();
        tasks.push(tokio::spawn(async move {
            let mut c = Client::connect(&path).await.unwrap();
            for i in 0..per {
                c.call::<kith_api::methods::Send>(kith_api::methods::SendParams {
                    to: to.clone(),
                    text: format!("{prefix} {w}-{i}"),
                })
                .await
                .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

/// Waits until the node behind `c` has nothing left to deliver.
pub async fn outbox_empty(c: &mut Client) {
    let start = Instant::now();
    while c.call::<methods::Status>(NoParams {}).await.unwrap().outbox > 0 {
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "benchmark stalled"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A `kB` line of `/proc/PID/status` (`VmRSS`, `VmHWM`, ...), Linux only.
pub fn proc_kb(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status
        .lines()
        .find(|l| l.split(':').next() == Some(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// User plus system CPU time a process has used so far (`/proc/PID/stat`), Linux only.
pub fn proc_cpu(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; the fields after its closing
    // parenthesis start with the state (field 3), so utime (14) and stime (15) are the
    // 12th and 13th of them.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_secs_f64(
        (utime + stime) as f64 / clock_ticks_per_second() as f64,
    ))
}

/// The kernel's clock tick for `/proc` times (`getconf CLK_TCK`, 100 on common Linux
/// systems, which is also the fallback).
fn clock_ticks_per_second() -> u64 {
    static TCK: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TCK.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .filter(|&t| t > 0)
            .unwrap_or(100)
    })
}

/// A process's resident memory in KiB.
pub fn rss(pid: u32) -> u64 {
    proc_kb(pid, "VmRSS").expect("/proc/PID/status has VmRSS")
}

/// How many peers the daemon at `c` says it is connected to.
pub async fn connected(c: &mut Client) -> usize {
    c.call::<methods::Status>(NoParams {})
        .await
        .unwrap()
        .connected_peers
        .len()
}

/// Raises this process's soft limit on open files to `want` (at most the hard limit); child
/// processes inherit it.
pub fn raise_nofile(want: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed by reference.
    #[allow(unsafe_code)]
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return;
        }
        if lim.rlim_cur < want {
            lim.rlim_cur = want.min(lim.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}
