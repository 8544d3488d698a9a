use super::*;
use crate::{Contact, Status, Store, StoredMessage};
use kith_types::IdentityKey;

const CANARY: &str = "zebra-canary-7f3a";
const NAME: &str = "okapi-canary-91bd";

fn msg(id: u128) -> StoredMessage {
    StoredMessage {
        id,
        outgoing: true,
        text: format!("{CANARY} {id}"),
        sent_at_ms: 1,
        stored_at_ms: 2,
        status: Status::Pending,
    }
}

fn contact(id: IdentityKey) -> Contact {
    Contact {
        identity: id,
        name: NAME.into(),
        added_ms: 1,
        added_by_user: true,
        peer_hint: Vec::new(),
        addr_hints: Vec::new(),
    }
}

fn fill(store: &Store, conv: IdentityKey) {
    store
        .write(|w| {
            w.put_contact(&contact(conv))?;
            for id in 1..=20 {
                w.append_message(&conv, &msg(id))?;
            }
            w.set_meta("profile", CANARY.as_bytes())
        })
        .unwrap();
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

fn check(store: &Store, conv: IdentityKey) {
    let h = store.read(|r| r.history(&conv, 100)).unwrap();
    assert_eq!(h.len(), 20);
    assert!(h[0].1.text.starts_with(CANARY));
    let c = store.read(|r| r.contact_by_name(NAME)).unwrap().unwrap();
    assert_eq!(c.identity, conv);
    assert_eq!(
        store.read(|r| r.meta("profile")).unwrap().as_deref(),
        Some(CANARY.as_bytes())
    );
}

#[test]
fn sealed_values_are_not_on_disk_and_open_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let conv = IdentityKey([7u8; 32]);
    let key = [3u8; 32];
    {
        let store = Store::open_sealed(&path, 1 << 20, StorageSeal::new(&key)).unwrap();
        fill(&store, conv);
        check(&store, conv);
    }
    let raw = std::fs::read(&path).unwrap();
    assert!(!contains(&raw, CANARY), "message text in clear");
    assert!(!contains(&raw, NAME), "contact name in clear");
    let store = Store::open_sealed(&path, 1 << 20, StorageSeal::new(&key)).unwrap();
    check(&store, conv);
    drop(store);
    // Without the key, or with another key, the store does not open, and stays as it was.
    assert!(matches!(Store::open(&path), Err(StoreError::NeedsKey)));
    assert!(matches!(
        Store::open_sealed(&path, 1 << 20, StorageSeal::new(&[4u8; 32])),
        Err(StoreError::Unsealable)
    ));
    let store = Store::open_sealed(&path, 1 << 20, StorageSeal::new(&key)).unwrap();
    check(&store, conv);
}

#[test]
fn a_clear_store_is_sealed_in_place_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let conv = IdentityKey([8u8; 32]);
    {
        let store = Store::open(&path).unwrap();
        fill(&store, conv);
    }
    assert!(contains(&std::fs::read(&path).unwrap(), CANARY));
    {
        let store = Store::open_sealed(&path, 1 << 20, StorageSeal::new(&[5u8; 32])).unwrap();
        check(&store, conv);
        // New rows after the pass are sealed too.
        store
            .write(|w| w.append_message(&conv, &msg(99)).map(|_| ()))
            .unwrap();
    }
    let store = Store::open_sealed(&path, 1 << 20, StorageSeal::new(&[5u8; 32])).unwrap();
    check_len(&store, conv, 21);
    drop(store);
    // The pass compacts the file: the old clear pages are gone.
    assert!(!contains(&std::fs::read(&path).unwrap(), CANARY));
}

fn check_len(store: &Store, conv: IdentityKey, n: usize) {
    assert_eq!(store.read(|r| r.history(&conv, 1000)).unwrap().len(), n);
}

#[test]
fn a_row_moved_to_another_key_does_not_open() {
    let s = StorageSeal::new(&[1u8; 32]);
    let sealed = s.seal("messages", b"k1", b"hello").unwrap();
    assert_eq!(s.open("messages", b"k1", &sealed).unwrap(), b"hello");
    assert!(s.open("messages", b"k2", &sealed).is_err());
    assert!(s.open("stories", b"k1", &sealed).is_err());
    assert!(s.open("messages", b"k1", &sealed[..10]).is_err());
    assert_eq!(format!("{s:?}"), "StorageSeal(..)");
}

fn opens() -> u64 {
    OPENS.with(|n| n.get())
}

fn outbox_item(n: u64) -> crate::OutboxItem {
    crate::OutboxItem {
        conversation: IdentityKey([9u8; 32]),
        message_ids: vec![u128::from(n)],
        sealed: None,
        body: Some(vec![7u8; 300]),
        queued_ms: n,
        resets: 0,
        covers: 1,
        covered: false,
    }
}

/// Appending a message or an outbox item finds the next sequence number from the last key
/// alone: no row is decrypted for it, whatever the length of the run.
#[test]
fn appending_decrypts_no_row_to_find_the_next_number() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let store = Store::open_sealed(&path, 1 << 20, StorageSeal::new(&[5u8; 32])).unwrap();
    let conv = IdentityKey([7u8; 32]);
    fill(&store, conv);
    let before = opens();
    store.write(|w| w.append_message(&conv, &msg(21))).unwrap();
    assert_eq!(opens(), before, "appending to 20 messages opened a row");
    check_len(&store, conv, 21);

    let dev = kith_types::DeviceKey([8u8; 32]);
    // Items `ns` pushed in one transaction; their sequence numbers.
    let push = |ns: std::ops::RangeInclusive<u64>| {
        store
            .write(|w| {
                ns.map(|n| w.push_outbox(&dev, &outbox_item(n)))
                    .collect::<Result<Vec<_>, _>>()
            })
            .unwrap()
    };
    assert_eq!(push(1..=3), vec![1, 2, 3]);
    // One push and then five in a transaction: what they open (the device's counters) does
    // not grow with the pushes.
    let before = opens();
    assert_eq!(push(4..=4), vec![4]);
    let one = opens() - before;
    let before = opens();
    assert_eq!(push(5..=9), vec![5, 6, 7, 8, 9]);
    assert_eq!(opens() - before, one, "each push opened a row");
    let items = store.read(|r| r.outbox(&dev, 100)).unwrap();
    assert_eq!(items.len(), 9);
    assert_eq!(items[8].1.queued_ms, 9);
}
