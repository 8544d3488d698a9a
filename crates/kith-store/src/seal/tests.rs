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
