#![allow(clippy::unwrap_used, clippy::expect_used)]

//! Media throughput between two `kith up` processes on loopback, beside a plain TCP copy of
//! the same bytes (the machine's limit). Ignored by default; run it with
//!
//! ```text
//! KITH_BENCH_MIB=256 cargo test -p kith --release --test media_bench -- --ignored --nocapture
//! ```

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::*;

fn mib() -> usize {
    std::env::var("KITH_BENCH_MIB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(256)
}

/// Copies `bytes` over a loopback TCP connection; returns the seconds it took.
fn plain_tcp_copy(bytes: &[u8]) -> f64 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let len = bytes.len();
    let reader = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = vec![0u8; 1 << 20];
        let mut got = 0;
        while got < len {
            let n = s.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            got += n;
        }
        got
    });
    let start = Instant::now();
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(bytes).unwrap();
    drop(s);
    assert_eq!(reader.join().unwrap(), len);
    start.elapsed().as_secs_f64()
}

/// The peak resident memory of a process, in KiB (VmHWM).
fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

#[test]
#[ignore = "benchmark: run with --ignored --nocapture"]
fn media_throughput_on_loopback() {
    let size = mib() << 20;
    let (a, b) = pair();
    b.json(&["media", "auto-download", "0"]);
    let tmp = tempfile::tempdir().unwrap();
    let bytes: Vec<u8> = {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut v = Vec::with_capacity(size + 8);
        while v.len() < size {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            v.extend_from_slice(&x.to_le_bytes());
        }
        v.truncate(size);
        v
    };
    let src = tmp.path().join("big.bin");
    std::fs::write(&src, &bytes).unwrap();

    let tcp = plain_tcp_copy(&bytes);
    let rss_a0 = peak_rss_kib(a.child.as_ref().unwrap().id());
    let rss_b0 = peak_rss_kib(b.child.as_ref().unwrap().id());

    let start = Instant::now();
    let id = a.json(&["send", "Bob", "--file", src.to_str().unwrap()])[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let import = start.elapsed().as_secs_f64();
    wait_for(Duration::from_secs(60), "the file message", || {
        b.history("Alice")
            .into_iter()
            .find(|m| m["id"] == id.as_str())
    });
    let start = Instant::now();
    b.json(&["download", &id]);
    let got = wait_for(Duration::from_secs(1800), "the whole file", || {
        b.json(&["media"])
            .into_iter()
            .find(|m| m["id"] == id.as_str() && m["state"] == "ready")
    });
    let transfer = start.elapsed().as_secs_f64();
    assert_eq!(b.saved(got["id"].as_str().unwrap()).len(), size);
    let rss_a = peak_rss_kib(a.child.as_ref().unwrap().id());
    let rss_b = peak_rss_kib(b.child.as_ref().unwrap().id());
    let mb = size as f64 / 1e6;
    println!(
        "media bench: {} MiB; sender import (read, seal, hash, copy) {:.2} s = {:.1} MB/s; \
         transfer (fetch, check, open, write, fsync every 8 MiB) {:.2} s = {:.1} MB/s; \
         plain TCP copy {:.2} s = {:.1} MB/s; media/TCP = {:.1} %; \
         peak RSS sender {} -> {} MiB, receiver {} -> {} MiB",
        mib(),
        import,
        mb / import,
        transfer,
        mb / transfer,
        tcp,
        mb / tcp,
        100.0 * tcp / transfer,
        rss_a0 / 1024,
        rss_a / 1024,
        rss_b0 / 1024,
        rss_b / 1024,
    );
}
