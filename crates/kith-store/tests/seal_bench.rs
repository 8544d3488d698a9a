//! The cost of sealing rows at rest (issue 17): messages written (batches of 100 per
//! transaction, fsync skipped so the figure is the CPU cost, not the disk's) and read back,
//! clear against sealed. Prints figures; run with
//! `cargo test -p kith-store --release --test seal_bench -- --ignored --nocapture`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use kith_store::{Status, StorageSeal, Store, StoredMessage};
use kith_types::IdentityKey;

const N: u128 = 100_000;
const BATCH: u128 = 100;

fn run(sealed: bool) -> (f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let store = if sealed {
        Store::open_sealed(&path, 64 << 20, StorageSeal::new(&[7u8; 32])).unwrap()
    } else {
        Store::open(&path).unwrap()
    }
    .without_fsync();
    let conv = IdentityKey([1u8; 32]);
    let text = "a message of about the length people write, sixty-some bytes.";
    let start = Instant::now();
    for b in 0..N / BATCH {
        store
            .write(|w| {
                for i in 0..BATCH {
                    let id = b * BATCH + i;
                    w.append_message(
                        &conv,
                        &StoredMessage {
                            id,
                            outgoing: id.is_multiple_of(2),
                            text: text.into(),
                            sent_at_ms: 1,
                            stored_at_ms: 2,
                            status: Status::Delivered,
                        },
                    )?;
                }
                Ok(())
            })
            .unwrap();
    }
    let write = N as f64 / start.elapsed().as_secs_f64();
    let start = Instant::now();
    let all = store.read(|r| r.history(&conv, usize::MAX)).unwrap();
    assert_eq!(all.len() as u128, N);
    let read = N as f64 / start.elapsed().as_secs_f64();
    (write, read)
}

#[test]
#[ignore = "benchmark: prints figures"]
fn sealing_cost_on_store_writes_and_reads() {
    let (cw, cr) = run(false);
    let (sw, sr) = run(true);
    println!("clear:  {cw:>10.0} messages/s written, {cr:>10.0} messages/s read");
    println!("sealed: {sw:>10.0} messages/s written, {sr:>10.0} messages/s read");
    println!("sealed/clear: writes {:.2}, reads {:.2}", sw / cw, sr / cr);
}
