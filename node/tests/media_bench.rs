#![allow(clippy::unwrap_used, clippy::expect_used)]

//! Media throughput between two `kith up` processes on loopback, beside two plain TCP
//! copies of the same bytes in the same run: memory to memory (the machine's limit), and
//! file to file, read from disk and written to a new file synced at the end (the same
//! durability as the transfer). Ignored by default; run it with
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

/// Copies the file `src` over a loopback TCP connection into a new file `dst`, read from
/// disk on one end and written on the other, synced once whole (the durability the transfer
/// has); returns the seconds it took.
fn plain_tcp_file_copy(src: &std::path::Path, dst: &std::path::Path) -> f64 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let len = std::fs::metadata(src).unwrap().len();
    let dst = dst.to_path_buf();
    let start = Instant::now();
    let writer = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut out = std::fs::File::create(&dst).unwrap();
        let mut buf = vec![0u8; 1 << 20];
        let mut got = 0u64;
        loop {
            let n = s.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            out.write_all(&buf[..n]).unwrap();
            got += n as u64;
        }
        out.sync_all().unwrap();
        got
    });
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let mut f = std::fs::File::open(src).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        s.write_all(&buf[..n]).unwrap();
    }
    drop(s);
    assert_eq!(writer.join().unwrap(), len);
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

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// CPU seconds a process used so far, user and system (all its threads).
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    ticks as f64 / 100.0
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

    let me = std::process::id();
    let cpu0 = cpu_secs(me);
    let tcp = plain_tcp_copy(&bytes);
    let cpu_tcp = cpu_secs(me) - cpu0;
    let cpu0 = cpu_secs(me);
    let copy = tmp.path().join("copy.bin");
    let tcp_file = plain_tcp_file_copy(&src, &copy);
    let cpu_tcp_file = cpu_secs(me) - cpu0;
    std::fs::remove_file(&copy).unwrap();
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
    let (pa, pb) = (
        a.child.as_ref().unwrap().id(),
        b.child.as_ref().unwrap().id(),
    );
    let (cpu_a0, cpu_b0) = (cpu_secs(pa), cpu_secs(pb));
    let start = Instant::now();
    b.json(&["download", &id]);
    let got = wait_for(Duration::from_secs(1800), "the whole file", || {
        b.json(&["media"])
            .into_iter()
            .find(|m| m["id"] == id.as_str() && m["state"] == "ready")
    });
    let transfer = start.elapsed().as_secs_f64();
    let (cpu_a, cpu_b) = (cpu_secs(pa) - cpu_a0, cpu_secs(pb) - cpu_b0);
    assert_eq!(b.saved(got["id"].as_str().unwrap()).len(), size);
    let rss_a = peak_rss_kib(a.child.as_ref().unwrap().id());
    let rss_b = peak_rss_kib(b.child.as_ref().unwrap().id());
    let mb = size as f64 / 1e6;
    println!(
        "media bench: {} MiB; sender import (read, seal, hash, copy) {:.2} s = {:.1} MB/s; \
         transfer (fetch, check, write, fsync every 8 MiB) {:.2} s = {:.1} MB/s; \
         plain TCP copy {:.2} s = {:.1} MB/s ({:.2} ns/byte of CPU); media/TCP = {:.1} %; \
         plain TCP copy file to file, synced {:.2} s = {:.1} MB/s ({:.2} ns/byte of CPU); \
         media/file copy = {:.1} %; \
         peak RSS sender {} -> {} MiB, receiver {} -> {} MiB; \
         CPU during the transfer: sender {:.2} s, receiver {:.2} s = {:.2} ns/byte in all, \
         so at most {:.0} MB/s on this machine's {} cores if CPU is the limit",
        mib(),
        import,
        mb / import,
        transfer,
        mb / transfer,
        tcp,
        mb / tcp,
        cpu_tcp * 1e9 / size as f64,
        100.0 * tcp / transfer,
        tcp_file,
        mb / tcp_file,
        cpu_tcp_file * 1e9 / size as f64,
        100.0 * tcp_file / transfer,
        rss_a0 / 1024,
        rss_a / 1024,
        rss_b0 / 1024,
        rss_b / 1024,
        cpu_a,
        cpu_b,
        (cpu_a + cpu_b) * 1e9 / size as f64,
        cores() as f64 * size as f64 / 1e6 / (cpu_a + cpu_b).max(1e-9),
        cores(),
    );
}
