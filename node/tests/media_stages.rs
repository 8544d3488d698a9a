#![allow(clippy::unwrap_used, clippy::expect_used)]

//! The ceiling of each stage a media chunk goes through, one core each, in this process:
//! what the two-daemon benchmark (`media_bench.rs`) cannot beat whatever the protocol.
//! Ignored by default; run it with
//!
//! ```text
//! KITH_BENCH_MIB=256 cargo test -p kith --release --test media_stages -- --ignored --nocapture
//! ```
//!
//! Per 256 KiB chunk, the sender reads the sealed chunk from disk and Noise encrypts it
//! (ChaCha20-Poly1305: counted at what [`seal_chunk`]'s XChaCha20-Poly1305 costs per byte,
//! an upper bound, since libp2p's Noise uses ring's faster assembly); the receiver Noise
//! decrypts it, hashes it (BLAKE3), writes it and syncs every 8 MiB. CPU stages are timed
//! in CPU seconds of this thread, so the figures hold on a loaded machine. The plain TCP copy it is compared with costs
//! the kernel's copy into and out of the socket only.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::time::Instant;

use kith_proto::media::{CHUNK, hash, open_chunk, seal_chunk};

fn mib() -> usize {
    std::env::var("KITH_BENCH_MIB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(256)
}

fn data(size: usize) -> Vec<u8> {
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
}

/// CPU seconds this thread used so far (user and system), so that a stage's figure holds
/// on a machine other processes load too.
fn thread_cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    (f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0)) as f64 / 100.0
}

/// Runs `f` over every chunk of `bytes`; returns MB per CPU second of this thread.
fn rate(bytes: &[u8], mut f: impl FnMut(u32, &[u8])) -> f64 {
    let start = thread_cpu();
    for (i, c) in bytes.chunks(CHUNK).enumerate() {
        f(i as u32, c);
    }
    bytes.len() as f64 / 1e6 / (thread_cpu() - start).max(0.01)
}

/// Runs `f` over every chunk of `bytes`; returns MB/s of wall time (for a stage that waits
/// on the disk).
fn wall_rate(bytes: &[u8], mut f: impl FnMut(u32, &[u8])) -> f64 {
    let start = Instant::now();
    for (i, c) in bytes.chunks(CHUNK).enumerate() {
        f(i as u32, c);
    }
    bytes.len() as f64 / 1e6 / start.elapsed().as_secs_f64()
}

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
    len as f64 / 1e6 / start.elapsed().as_secs_f64()
}

#[test]
#[ignore = "benchmark: run with --ignored --nocapture"]
fn media_stage_ceilings() {
    let size = mib() << 20;
    let bytes = data(size);
    let key = [7u8; 32];
    let count = size.div_ceil(CHUNK) as u32;
    let sealed: Vec<Vec<u8>> = bytes
        .chunks(CHUNK)
        .enumerate()
        .map(|(i, c)| seal_chunk(&key, i as u32, count, c))
        .collect();

    let tcp = plain_tcp_copy(&bytes);
    let seal = rate(&bytes, |i, c| {
        std::hint::black_box(seal_chunk(&key, i, count, c));
    });
    let open = {
        let start = thread_cpu();
        for (i, s) in sealed.iter().enumerate() {
            std::hint::black_box(open_chunk(&key, i as u32, count, s.clone()).unwrap());
        }
        size as f64 / 1e6 / (thread_cpu() - start).max(0.01)
    };
    let blake = rate(&bytes, |_, c| {
        std::hint::black_box(hash(c));
    });
    let copy = rate(&bytes, |_, c| {
        std::hint::black_box(c.to_vec());
    });

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stage.part");
    let file = File::create(&path).unwrap();
    let mut at = 0u64;
    let write_cpu = thread_cpu();
    let write = wall_rate(&bytes, |i, c| {
        file.write_all_at(c, at).unwrap();
        at += c.len() as u64;
        if (i + 1) % 32 == 0 {
            file.sync_data().unwrap();
        }
    });
    file.sync_all().unwrap();
    let write_cpu = size as f64 / 1e6 / (thread_cpu() - write_cpu).max(0.01);
    let file = File::open(&path).unwrap();
    let mut buf = vec![0u8; CHUNK];
    let mut at = 0u64;
    let read = rate(&bytes, |_, c| {
        file.read_exact_at(&mut buf[..c.len()], at).unwrap();
        at += c.len() as u64;
    });

    // Nanoseconds of CPU per byte, for the sum of the stages of each side (the receiver no
    // longer opens chunks: that figure is shown for the record).
    let ns = |mbs: f64| 1e3 / mbs;
    let sender = ns(read) + ns(seal);
    let receiver = ns(seal) + ns(blake) + ns(write_cpu) + 2.0 * ns(copy);
    println!(
        "media stages: {} MiB; plain TCP copy {tcp:.0} MB/s (wall); per CPU second of one \
         core: Noise-like seal {seal:.0} MB/s, open {open:.0} MB/s, BLAKE3 {blake:.0} MB/s, \
         copy {copy:.0} MB/s, write {write_cpu:.0} MB/s (write+fsync/8MiB {write:.0} MB/s \
         wall), read (cached) {read:.0} MB/s; sender's chain (read, Noise) {:.0} MB/s on one \
         core, receiver's chain (Noise, BLAKE3, write, 2 copies) {:.0} MB/s on one core; \
         both on two cores at best {:.0} MB/s = {:.1} % of the plain copy",
        mib(),
        1e3 / sender,
        1e3 / receiver,
        2e3 / (sender + receiver),
        100.0 * 2e3 / (sender + receiver) / tcp,
    );
}
