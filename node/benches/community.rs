//! A community node at many users (issue 19): one `kith-bootstrap` on loopback with D
//! devices connected and registered at its mailbox at once, then deposits for them while
//! they stay connected, so every deposit is also drained (the mailbox hands it to the
//! connected device, which answers `Stored`, and the mailbox deletes it).
//!
//! Every device and sender is a raw libp2p peer in this process with its own peer id (TCP,
//! Noise, Yamux, `/kith/msg/1` with the node's codec); devices connect and register in steps
//! of K so the node's limit of 256 pending inbound connections is never reached. The bench
//! raises its open-file limit (which the node inherits) to fit, and gives the node's config
//! room for the connections (`[limits] max_connections`).
//!
//! Printed: the node's resident memory before and with the devices (per connected device);
//! envelopes accepted durably per second with all of them connected; the latency of each
//! deposit request (p50, p99: what one user waits for ✓); the node's CPU time per deposited
//! envelope; how fast the deposits were drained to the devices.
//!
//! Needs the `kith-bootstrap` binary beside `kith` (`cargo build --release -p
//! kith-bootstrap` for `cargo bench`). Run: `cargo bench -p kith --bench community`. Knobs:
//! KITH_BENCH_DEVICES (10000), KITH_BENCH_STEP (200), KITH_BENCH_N (200000 envelopes),
//! KITH_BENCH_SENDERS (32), KITH_BENCH_BATCH (16), KITH_BENCH_SETTLE (3 s),
//! KITH_BENCH_NODE_WRAP (a profiler to run the node under, e.g. `heaptrack -o FILE`),
//! KITH_BENCH_BOOTSTRAP (another `kith-bootstrap` binary to run), KITH_BENCH_MARKS
//! (1000,5000: device counts at which the node's memory is also read during the ramp).
//! Prints its figures; asserts nothing about time or memory.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use kith_api::Client;
use kith_api::methods::{self, NoParams};
use kith_proto::wire::MAX_BATCH;
use libp2p::{Multiaddr, PeerId};
use support::load::{Load, deposit};
use support::peer::Recipient;
use support::*;

/// A `kith-bootstrap` on loopback with a temporary data directory.
struct Bootstrap {
    dir: PathBuf,
    child: Child,
    _tmp: tempfile::TempDir,
}

impl Drop for Bootstrap {
    fn drop(&mut self) {
        // The node runs in a process group of its own, with its wrapper if it has one: a
        // SIGTERM to the group lets a profiler write its data and the node shut down (a
        // SIGKILL to the wrapper alone left the node running and the profile cut short).
        let group = format!("-{}", self.child.id());
        let signal = |sig: &str| {
            let _ = Command::new("kill")
                .args([sig, "--", &group])
                .stderr(Stdio::null())
                .status();
        };
        signal("-TERM");
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // Whatever is still up after 30 s goes.
        signal("-KILL");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn bootstrap_bin() -> PathBuf {
    // KITH_BENCH_BOOTSTRAP runs another build of the node (e.g. one copied aside before a
    // change) under the same load.
    let bin = match std::env::var_os("KITH_BENCH_BOOTSTRAP") {
        Some(b) => PathBuf::from(b),
        None => Path::new(KITH).with_file_name("kith-bootstrap"),
    };
    assert!(
        bin.exists(),
        "{} is missing: build it first (`cargo build --release -p kith-bootstrap` for cargo \
         bench, `cargo build -p kith-bootstrap` for the dev profile)",
        bin.display()
    );
    bin
}

impl Bootstrap {
    /// Starts one with room for `conns` connections; returns it, its peer id and address.
    async fn start(conns: usize) -> (Self, PeerId, Multiaddr) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        let port = free_port();
        let config = tmp.path().join("bootstrap.toml");
        std::fs::write(
            &config,
            format!(
                "data_dir = {dir:?}\nlisten = [\"/ip4/127.0.0.1/tcp/{port}\"]\n\
                 metrics = \"127.0.0.1:{}\"\n\
                 [mailbox]\nmax_devices = {}\n\
                 [relay]\nallow_private_ips = true\n\
                 [limits]\nmax_connections = {conns}\n",
                free_port(),
                conns * 2
            ),
        )
        .unwrap();
        // KITH_BENCH_NODE_WRAP runs the node under a tool (e.g. `heaptrack -o /tmp/node`).
        let wrap = std::env::var("KITH_BENCH_NODE_WRAP").unwrap_or_default();
        let mut words = wrap.split_whitespace();
        let mut cmd = match words.next() {
            Some(tool) => {
                let mut c = Command::new(tool);
                c.args(words).arg(bootstrap_bin());
                c
            }
            None => Command::new(bootstrap_bin()),
        };
        let child = cmd
            .process_group(0)
            .arg("--config")
            .arg(&config)
            .env("KITH_LOG", "warn,libp2p_request_response=error")
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let start = Instant::now();
        let mut c = loop {
            if let Ok(c) = Client::connect(&sock(&dir)).await {
                break c;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "kith-bootstrap did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let id = c.call::<methods::Id>(NoParams {}).await.unwrap();
        let peer: PeerId = id.peer_id.parse().unwrap();
        let addr = format!("/ip4/127.0.0.1/tcp/{port}/p2p/{peer}")
            .parse()
            .unwrap();
        let b = Self {
            dir,
            child,
            _tmp: tmp,
        };
        (b, peer, addr)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

#[tokio::main]
async fn main() {
    let devices = env_usize("KITH_BENCH_DEVICES", 10_000).max(1);
    let step = env_usize("KITH_BENCH_STEP", 200).clamp(1, 250);
    let settle = Duration::from_secs(env_usize("KITH_BENCH_SETTLE", 3) as u64);
    let load = Load {
        envelopes: env_usize("KITH_BENCH_N", 200_000),
        senders: env_usize("KITH_BENCH_SENDERS", 32).max(1),
        batch: env_usize("KITH_BENCH_BATCH", 16).clamp(1, MAX_BATCH),
        in_flight: 1,
        size: (200, 500),
    };
    let conns = devices + load.senders + 1024;
    // Two descriptors per connection (ours and the node's) and room for the rest.
    raise_nofile(2 * conns as u64 + 4096);

    let (b, node, addr) = Bootstrap::start(conns).await;
    let pid = b.pid();
    let mut c = Client::connect(&sock(&b.dir)).await.unwrap();
    tokio::time::sleep(settle).await;
    let rss0 = rss(pid);

    // The devices come online, register, and stay, answering every delivery.
    let drained = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let mut curves = Vec::with_capacity(devices);
    let mut serving = Vec::with_capacity(devices);
    let mut marks: Vec<usize> = std::env::var("KITH_BENCH_MARKS")
        .unwrap_or_else(|_| "1000,5000".into())
        .split(',')
        .filter_map(|m| m.trim().parse().ok())
        .filter(|&m| m > 0 && m < devices)
        .collect();
    marks.sort_unstable();
    marks.reverse();
    let t0 = Instant::now();
    while curves.len() + failed.load(Ordering::SeqCst) < devices {
        // The node's memory at each mark, once the devices joined so far have settled.
        if marks.last().is_some_and(|&m| curves.len() >= m) {
            marks.pop();
            tokio::time::sleep(settle).await;
            let r = rss(pid);
            println!(
                "ramp     at {} devices: node RSS {:.1} MiB, {:.1} KiB per connected device",
                curves.len(),
                r as f64 / 1024.0,
                r.saturating_sub(rss0) as f64 / curves.len().max(1) as f64
            );
        }
        let want = step.min(devices - curves.len() - failed.load(Ordering::SeqCst));
        let mut joining = Vec::with_capacity(want);
        for _ in 0..want {
            let (addr, failed) = (addr.clone(), failed.clone());
            joining.push(tokio::spawn(async move {
                let r = Recipient::default();
                match r.try_register(node, &addr).await {
                    Ok(p) => Some((r.curve(), p)),
                    Err(e) => {
                        if failed.fetch_add(1, Ordering::SeqCst) < 3 {
                            eprintln!("a device could not register: {e}");
                        }
                        None
                    }
                }
            }));
        }
        for j in joining {
            if let Some((curve, p)) = j.await.unwrap() {
                curves.push(curve);
                let drained = drained.clone();
                serving.push(tokio::spawn(p.serve_with(curve, move |n| {
                    drained.fetch_add(n, Ordering::SeqCst);
                })));
            }
        }
    }
    let ramp = t0.elapsed();
    tokio::time::sleep(settle).await;
    let rss1 = rss(pid);
    let seen = connected(&mut c).await;
    let online = curves.len();
    println!(
        "devices  {online} connected and registered ({} failed), in steps of {step} in {:.1} s; \
         the node reports {seen} peers connected",
        failed.load(Ordering::SeqCst),
        ramp.as_secs_f64()
    );
    println!(
        "         node RSS {:.1} MiB before, {:.1} MiB with them: {:.1} KiB per connected device",
        rss0 as f64 / 1024.0,
        rss1 as f64 / 1024.0,
        rss1.saturating_sub(rss0) as f64 / online.max(1) as f64
    );

    // Deposits for them, spread over all of them, while they stay connected.
    let cpu0 = proc_cpu(pid).unwrap_or_default();
    let d = deposit(node, &addr, &curves, load).await;
    let cpu1 = proc_cpu(pid).unwrap_or_default();
    let t = &d.tally;
    let secs = t
        .last
        .map_or(0.0, |l| (l - d.first_request).as_secs_f64())
        .max(1e-9);
    let drained_by_end = drained.load(Ordering::SeqCst);
    let wait = Instant::now();
    while drained.load(Ordering::SeqCst) < t.accepted && wait.elapsed() < Duration::from_secs(120) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let all_drained = d.first_request.elapsed();
    let got = drained.load(Ordering::SeqCst);
    let seen_after = connected(&mut c).await;
    let rss2 = rss(pid);
    println!(
        "deposit  {} senders x {} envelopes per request (200-500 B), one request in flight each",
        load.senders, load.batch
    );
    println!(
        "         {} envelopes accepted durably in {secs:.2} s: {:.0} envelopes/s with {online} \
         devices connected ({} full, {} rejected, {} refused, {} failed)",
        t.accepted,
        t.accepted as f64 / secs,
        t.full,
        t.rejected,
        t.refused,
        t.failed
    );
    if !t.latencies.is_empty() {
        println!(
            "         deposit request latency p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms (n={})",
            ms(pct(&t.latencies, 0.50)),
            ms(pct(&t.latencies, 0.99)),
            ms(*t.latencies.last().unwrap()),
            t.latencies.len()
        );
    }
    println!(
        "         node CPU {:.1} s over the deposits: {:.1} us per envelope",
        (cpu1 - cpu0).as_secs_f64(),
        (cpu1 - cpu0).as_secs_f64() * 1e6 / t.accepted.max(1) as f64
    );
    println!(
        "drain    {drained_by_end} of them reached their devices by the last answer, {got} after \
         {:.2} s: {:.0} envelopes/s drained; the node still reports {seen_after} peers \
         connected; RSS {:.1} MiB",
        all_drained.as_secs_f64(),
        got as f64 / all_drained.as_secs_f64().max(1e-9),
        rss2 as f64 / 1024.0
    );
    for s in serving {
        s.abort();
    }
}
