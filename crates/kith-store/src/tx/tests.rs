use super::*;

fn msg(id: u128) -> StoredMessage {
    StoredMessage {
        id,
        outgoing: true,
        text: format!("m{id}"),
        sent_at_ms: 1,
        stored_at_ms: 2,
        status: Status::Pending,
    }
}

/// A store that skips fsync (simulations) still keeps every commit once it is closed
/// and opened again, across many commits (redb reuses pages only after durable ones).
#[test]
fn a_store_without_fsync_keeps_its_commits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let conv = IdentityKey([9u8; 32]);
    {
        let store = Store::open(&path).unwrap().without_fsync();
        for id in 1..=(3 * crate::SYNC_EVERY as u128 + 5) {
            store
                .write(|w| w.append_message(&conv, &msg(id)).map(|_| ()))
                .unwrap();
        }
    }
    let store = Store::open(&path).unwrap();
    let n = 3 * crate::SYNC_EVERY as usize + 5;
    let all = store.read(|r| r.history(&conv, 10_000)).unwrap();
    assert_eq!(all.len(), n);
    assert_eq!(all.last().map(|(_, m)| m.id), Some(n as u128));
}

#[test]
fn messages_dedupe_and_status_only_rises() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("s.redb")).unwrap();
    let conv = IdentityKey([7u8; 32]);
    store
        .write(|w| {
            assert_eq!(w.append_message(&conv, &msg(10))?, Some(1));
            assert_eq!(w.append_message(&conv, &msg(5))?, Some(2));
            assert_eq!(w.append_message(&conv, &msg(10))?, None);
            assert_eq!(
                w.raise_status(&conv, 10, true, Status::Delivered)?,
                Some(Status::Delivered)
            );
            assert_eq!(w.raise_status(&conv, 10, true, Status::Sent)?, None);
            assert_eq!(w.raise_status(&conv, 5, false, Status::Read)?, None);
            Ok(())
        })
        .unwrap();
    drop(store);
    let store = Store::open(&dir.path().join("s.redb")).unwrap();
    let h = store.read(|r| r.history(&conv, 10)).unwrap();
    assert_eq!(h.iter().map(|(_, m)| m.id).collect::<Vec<_>>(), vec![10, 5]);
    assert_eq!(h[0].1.status, Status::Delivered);
    let h = store.read(|r| r.history(&conv, 1)).unwrap();
    assert_eq!(h[0].1.id, 5);
}

#[test]
fn failed_write_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("s.redb")).unwrap();
    let conv = IdentityKey([1u8; 32]);
    let r: Result<(), StoreError> = store.write(|w| {
        w.append_message(&conv, &msg(1))?;
        Err(StoreError::Injected("test"))
    });
    assert!(r.is_err());
    assert!(store.read(|r| r.history(&conv, 10)).unwrap().is_empty());
}

fn item() -> OutboxItem {
    OutboxItem {
        conversation: NO_CONVERSATION,
        message_ids: vec![1],
        sealed: None,
        body: Some(vec![1]),
        queued_ms: 0,
        resets: 0,
        covers: 0,
        covered: false,
    }
}

#[test]
fn outbox_devices_and_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("s.redb")).unwrap();
    let item = item();
    store
        .write(|w| {
            w.push_outbox(&DeviceKey([3; 32]), &item)?;
            w.push_outbox(&DeviceKey([3; 32]), &item)?;
            w.push_outbox(&DeviceKey([255; 32]), &item)?;
            w.push_outbox(&DeviceKey([1; 32]), &item)?;
            Ok(())
        })
        .unwrap();
    let devs = store.read(|r| r.outbox_devices()).unwrap();
    assert_eq!(
        devs,
        vec![DeviceKey([1; 32]), DeviceKey([3; 32]), DeviceKey([255; 32])]
    );
    let items = store.read(|r| r.outbox(&DeviceKey([3; 32]), 10)).unwrap();
    assert_eq!(
        items.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        vec![1, 2]
    );
}

/// A mailbox's kept envelope of `n` ciphertext bytes.
fn kept(n: usize) -> OutboxItem {
    OutboxItem {
        conversation: NO_CONVERSATION,
        message_ids: Vec::new(),
        sealed: Some(kith_proto::wire::Envelope {
            to_device: CurveKey([9; 32]),
            kind: 1,
            ciphertext: vec![7; n],
        }),
        body: None,
        queued_ms: 0,
        resets: 0,
        covers: 1,
        covered: false,
    }
}

#[test]
fn kept_bytes_follow_the_outbox() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("s.redb");
    let store = Store::open(&p).unwrap();
    let mut own = kept(50);
    own.conversation = IdentityKey([4; 32]);
    own.body = Some(vec![1]);
    let dev = DeviceKey([3; 32]);
    store
        .write(|w| {
            w.push_outbox(&dev, &kept(100))?;
            let s2 = w.push_outbox(&dev, &kept(30))?;
            w.push_outbox(&dev, &own)?;
            assert_eq!(w.mailbox_bytes(&dev)?, 130);
            w.take_outbox(&dev, s2)?;
            Ok(())
        })
        .unwrap();
    assert_eq!(store.read(|r| r.mailbox_bytes(&dev)).unwrap(), 100);
    // A failed transaction leaves the counter as it was.
    let _ = store.write(|w| {
        w.push_outbox(&dev, &kept(1000))?;
        Err::<(), _>(StoreError::Injected("test"))
    });
    drop(store);
    let store = Store::open(&p).unwrap();
    assert_eq!(store.read(|r| r.mailbox_bytes(&dev)).unwrap(), 100);
    store
        .write(|w| {
            w.recount_mailbox_bytes()?;
            assert_eq!(w.mailbox_bytes(&dev)?, 100);
            // Re-sealing (a session reset) clears a kept envelope: it no longer counts.
            let (seq, mut item) = w.outbox(&dev, 1)?.remove(0);
            item.sealed = None;
            w.update_outbox(&dev, seq, &item)?;
            assert_eq!(w.mailbox_bytes(&dev)?, 0);
            w.update_outbox(&dev, seq, &kept(40))?;
            assert_eq!(w.mailbox_bytes(&dev)?, 40);
            w.remove_device(&dev)?;
            assert_eq!(w.mailbox_bytes(&dev)?, 0);
            Ok(())
        })
        .unwrap();
}

#[test]
fn outbox_len_follows_the_outbox_and_is_recounted_for_older_stores() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let store = Store::open(&path).unwrap();
    let item = item();
    let (a, b, c) = (DeviceKey([1; 32]), DeviceKey([2; 32]), DeviceKey([3; 32]));
    let lens = |store: &Store| {
        store
            .read(|r| Ok([r.outbox_len(&a)?, r.outbox_len(&b)?, r.outbox_len(&c)?]))
            .unwrap()
    };
    store
        .write(|w| {
            for _ in 0..3 {
                w.push_outbox(&a, &item)?;
            }
            w.push_outbox(&b, &item)?;
            w.push_outbox(&c, &item)?;
            w.push_outbox(&c, &item)?;
            assert!(w.take_outbox(&a, 2)?.is_some());
            assert!(w.take_outbox(&a, 2)?.is_none());
            w.update_outbox(&a, 3, &item)?;
            w.remove_device(&b)?;
            w.take_outbox(&c, 1)?;
            w.take_outbox(&c, 2)?;
            Ok(())
        })
        .unwrap();
    assert_eq!(lens(&store), [2, 0, 0]);
    assert_eq!(store.read(|r| r.outbox(&a, 10)).unwrap().len(), 2);

    // A store from before the counter: no counts, no mark. Opening it counts once.
    store
        .write(|w| {
            w.push_outbox(&c, &item)?;
            // What the counter cache holds is written now, then wiped with the table.
            w.flush_counters()?;
            w.forget_all_counters();
            w.txn.open_table(OUTBOX_LEN)?.retain(|_, _| false)?;
            w.txn.open_table(META.def)?.remove("outbox_len_counted")?;
            Ok(())
        })
        .unwrap();
    assert_eq!(lens(&store), [0, 0, 0]);
    drop(store);
    let store = Store::open(&path).unwrap();
    assert_eq!(lens(&store), [2, 0, 1]);
}

#[test]
fn foreign_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("s.redb");
    std::fs::write(&p, vec![0x42u8; 8192]).unwrap();
    let err = Store::open(&p).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
}

#[test]
fn second_open_is_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("s.redb");
    let _a = Store::open(&p).unwrap();
    assert!(matches!(Store::open(&p), Err(StoreError::InUse)));
}

/// The typed ids are stored as the byte arrays the tables held before: a table written with
/// raw keys opens with typed ones (and a typed one with raw ones), so stores made by
/// earlier versions keep working.
#[test]
fn typed_id_tables_read_tables_written_with_raw_arrays() {
    use kith_types::{CurveKey, GroupId};
    use redb::{ReadableDatabase, ReadableTable, TableDefinition};
    type RawKey = (&'static [u8; 16], &'static [u8; 32], u64);
    const RAW: TableDefinition<RawKey, [u8; 32]> = TableDefinition::new("t");
    const TYPED: TableDefinition<(GroupId, CurveKey, u64), DeviceKey> = TableDefinition::new("t");
    let dir = tempfile::tempdir().unwrap();
    let db = redb::Database::create(dir.path().join("db")).unwrap();
    let w = db.begin_write().unwrap();
    w.open_table(RAW)
        .unwrap()
        .insert((&[1u8; 16], &[2u8; 32], 3), [4u8; 32])
        .unwrap();
    w.commit().unwrap();
    let r = db.begin_read().unwrap();
    let t = r.open_table(TYPED).unwrap();
    let got = t
        .get((GroupId([1; 16]), CurveKey([2; 32]), 3))
        .unwrap()
        .map(|v| v.value());
    assert_eq!(got, Some(DeviceKey([4; 32])));
    let first = t.iter().unwrap().next().unwrap().unwrap();
    assert_eq!(first.0.value(), (GroupId([1; 16]), CurveKey([2; 32]), 3));
}

fn device_with(curve: u8, peer: u8) -> KnownDevice {
    KnownDevice {
        identity: IdentityKey([peer; 32]),
        peer_id: vec![peer; 8],
        cert: Some(kith_proto::record::DeviceCert {
            identity: IdentityKey([peer; 32]),
            peer_id: vec![peer; 8],
            curve25519: CurveKey([curve; 32]),
            ed25519: [curve; 32],
            created_ms: 1,
            signature: vec![0; 64],
        }),
        addrs: Vec::new(),
        mailboxes: Vec::new(),
        prekey: None,
    }
}

/// Issue 14, hole 2: a Curve25519 key bound to one device is never rebound by another —
/// neither in the key → device map nor in the mailbox's registrations — and removing the
/// other device leaves the first binding alone.
#[test]
fn a_curve_key_is_never_rebound_to_another_device() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("s.redb")).unwrap();
    let (victim, attacker) = (DeviceKey([1; 32]), DeviceKey([2; 32]));
    store
        .write(|w| {
            w.put_device(&victim, &device_with(7, 1))?;
            assert!(w.curve_free_for(&CurveKey([7; 32]), &victim)?);
            assert!(!w.curve_free_for(&CurveKey([7; 32]), &attacker)?);
            assert!(matches!(
                w.put_device(&attacker, &device_with(7, 2)),
                Err(StoreError::CurveBound)
            ));
            w.put_mailbox_user(&CurveKey([7; 32]), &victim)?;
            assert!(matches!(
                w.put_mailbox_user(&CurveKey([7; 32]), &attacker),
                Err(StoreError::CurveBound)
            ));
            // The attacker's device, known without that key, goes: the victim's binding stays.
            w.put_device(&attacker, &device_with(8, 2))?;
            w.remove_device(&attacker)?;
            assert_eq!(w.device_by_curve(&CurveKey([7; 32]))?, Some(victim));
            assert_eq!(w.mailbox_user(&CurveKey([7; 32]))?, Some(victim));
            Ok(())
        })
        .unwrap();
}

/// Issue 14, hole 3: an envelope a mailbox relayed finds its sender's device by its ratchet
/// key in one lookup, however many other devices have sessions and however their keys sort
/// (the trial order of old reached only the first 256 by key).
#[test]
fn a_relayed_envelope_finds_its_device_by_ratchet_key_past_256_others() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("s.redb")).unwrap();
    let contact = DeviceKey([0xff; 32]);
    let ratchet = [0x42; 32];
    store
        .write(|w| {
            for i in 0..300u32 {
                let mut k = [0u8; 32];
                k[..4].copy_from_slice(&i.to_be_bytes());
                w.put_sessions(&DeviceKey(k), &["pickle".to_string()])?;
            }
            w.put_sessions(&contact, &["pickle".to_string()])?;
            assert!(w.set_ratchet(&contact, &ratchet)?);
            Ok(())
        })
        .unwrap();
    store
        .read(|r| {
            assert!(
                !r.session_devices(256)?.contains(&contact),
                "past the first 256 devices by key"
            );
            assert_eq!(r.device_by_ratchet(&ratchet)?, Some(contact));
            Ok(())
        })
        .unwrap();
    // The device's next chain replaces its entry; a key never moves to another device.
    store
        .write(|w| {
            assert!(w.set_ratchet(&contact, &[0x43; 32])?);
            assert_eq!(w.device_by_ratchet(&ratchet)?, None, "one entry per device");
            assert!(!w.set_ratchet(&DeviceKey([1; 32]), &[0x43; 32])?);
            assert_eq!(w.device_by_ratchet(&[0x43; 32])?, Some(contact));
            w.remove_device(&contact)?;
            assert_eq!(w.device_by_ratchet(&[0x43; 32])?, None);
            Ok(())
        })
        .unwrap();
}

/// The outbox counters a transaction changes are held in memory until its commit
/// (`tx::counters`): what a later transaction reads is what the outbox holds, also for a
/// transaction that touches more devices than the cache holds at once, and also once the
/// store is opened again.
#[test]
fn outbox_counters_held_by_a_transaction_reach_the_tables_at_its_commit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let store = Store::open(&path).unwrap();
    let many = super::counters::MAX_CACHED + 10;
    let dev = |i: usize| {
        let mut k = [0u8; 32];
        k[..8].copy_from_slice(&(i as u64).to_le_bytes());
        DeviceKey(k)
    };
    store
        .write(|w| {
            // One device: appended to and drained in the same transaction.
            for n in 1..=5 {
                w.push_outbox(&dev(0), &kept(n * 10))?;
            }
            w.take_outbox(&dev(0), 1)?;
            w.take_outbox(&dev(0), 3)?;
            assert_eq!(w.outbox_len(&dev(0))?, 3);
            assert_eq!(w.mailbox_bytes(&dev(0))?, 20 + 40 + 50);
            // More devices than the cache holds: it is written back on the way.
            for i in 1..many {
                w.push_outbox(&dev(i), &kept(i % 100 + 1))?;
            }
            // One more for the first device, after the cache was emptied.
            w.push_outbox(&dev(0), &kept(1))?;
            Ok(())
        })
        .unwrap();
    let check = |store: &Store| {
        store
            .read(|r| {
                assert_eq!(r.outbox_len(&dev(0))?, 4);
                assert_eq!(r.mailbox_bytes(&dev(0))?, 111);
                for i in 1..many {
                    assert_eq!(r.outbox_len(&dev(i))?, 1, "device {i}");
                    assert_eq!(r.mailbox_bytes(&dev(i))?, (i % 100 + 1) as u64);
                }
                Ok(())
            })
            .unwrap()
    };
    check(&store);
    // Drained to nothing in one transaction.
    store
        .write(|w| {
            for (seq, _) in w.outbox(&dev(0), 10)? {
                w.take_outbox(&dev(0), seq)?;
            }
            assert_eq!(w.outbox_len(&dev(0))?, 0);
            Ok(())
        })
        .unwrap();
    store
        .read(|r| {
            assert_eq!(r.outbox_len(&dev(0))?, 0);
            assert_eq!(r.mailbox_bytes(&dev(0))?, 0);
            Ok(())
        })
        .unwrap();
    drop(store);
    let store = Store::open(&path).unwrap();
    for i in 1..many {
        assert_eq!(store.read(|r| r.outbox_len(&dev(i))).unwrap(), 1);
    }
}
