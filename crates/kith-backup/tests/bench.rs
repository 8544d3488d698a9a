//! Backup and restore throughput (issue 17: at least 50,000 messages/s each way). Ignored;
//! run with
//! `KITH_BACKUP_BENCH_N=100000 cargo test -p kith-backup --release --test bench -- --ignored --nocapture`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use kith_backup::{BackupKey, KdfParams};
use kith_store::{Status, Store, StoredMessage};
use kith_types::IdentityKey;

#[test]
#[ignore = "benchmark: prints figures"]
fn backup_and_restore_throughput() {
    let n: u64 = std::env::var("KITH_BACKUP_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let store = Store::open(&data.join(kith_backup::STORE_FILE)).unwrap();
    // 100 conversations, messages of 40 to 140 bytes of text, in transactions of 10,000.
    let mut i = 0u64;
    while i < n {
        let end = (i + 10_000).min(n);
        store
            .write(|w| {
                for j in i..end {
                    let conv = IdentityKey([(j % 100) as u8; 32]);
                    let text = format!("message {j} {}", "lorem ipsum ".repeat((j % 10) as usize));
                    w.append_message(
                        &conv,
                        &StoredMessage {
                            id: u128::from(j) << 16,
                            outgoing: j % 2 == 0,
                            text,
                            sent_at_ms: 1_700_000_000_000 + j,
                            stored_at_ms: 1_700_000_000_000 + j,
                            status: Status::Delivered,
                        },
                    )?;
                }
                Ok(())
            })
            .unwrap();
        i = end;
    }
    // The key derivation is timed apart: it costs the same for any size of backup.
    let t = Instant::now();
    let key = BackupKey::derive_new(b"passphrase", KdfParams::DEFAULT).unwrap();
    let kdf = t.elapsed();

    let file = dir.path().join("b.kbak");
    let t = Instant::now();
    let counts = kith_backup::create(&store.snapshot().unwrap(), &data, &key, &file).unwrap();
    let create = t.elapsed();
    let bytes = std::fs::metadata(&file).unwrap().len();

    let target = dir.path().join("restored");
    let t = Instant::now();
    kith_backup::restore(&file, &key, &target).unwrap();
    let restore = t.elapsed();

    let restored = Store::open(&target.join(kith_backup::STORE_FILE)).unwrap();
    let h = restored
        .read(|r| r.history(&IdentityKey([7; 32]), 5))
        .unwrap();
    assert_eq!(h.len(), 5);

    let rate = |d: std::time::Duration| n as f64 / d.as_secs_f64();
    println!(
        "messages: {n}, rows: {}, backup file: {bytes} bytes",
        counts.rows
    );
    println!(
        "argon2id (64 MiB, t=3, p=1): {:.0} ms",
        kdf.as_secs_f64() * 1e3
    );
    println!(
        "backup:  {:.2} s, {:.0} messages/s",
        create.as_secs_f64(),
        rate(create)
    );
    println!(
        "restore: {:.2} s, {:.0} messages/s (verify pass + write pass)",
        restore.as_secs_f64(),
        rate(restore)
    );
}
