//! The contacts core driven directly: every rule with plain values, no store and no network.

use super::*;

const ME: IdentityKey = IdentityKey([1; 32]);
const BOB: IdentityKey = IdentityKey([2; 32]);
const CAROL: IdentityKey = IdentityKey([3; 32]);

fn card(identity: IdentityKey, addrs: Vec<Vec<u8>>) -> ContactCard {
    ContactCard {
        version: 1,
        identity,
        peer_id: PeerId::random().to_bytes(),
        addrs,
    }
}

fn code_of(card: &ContactCard) -> String {
    card.to_code().unwrap()
}

fn contact(identity: IdentityKey, name: &str, added_by_user: bool) -> Contact {
    Contact {
        identity,
        name: name.into(),
        added_ms: 5,
        added_by_user,
        peer_hint: Vec::new(),
        addr_hints: Vec::new(),
    }
}

fn read(identity: IdentityKey, name: &str) -> Code {
    read_code(&code_of(&card(identity, Vec::new())), name, &ME).unwrap()
}

fn incoming(id: u128, status: Status) -> StoredMessage {
    StoredMessage {
        id,
        outgoing: false,
        text: "hi".into(),
        sent_at_ms: 1,
        stored_at_ms: 1,
        status,
    }
}

#[test]
fn names_are_trimmed_and_bounded() {
    assert_eq!(valid_name("  bob \t").unwrap(), "bob");
    assert_eq!(
        valid_name(&"é".repeat(MAX_NAME)).unwrap().chars().count(),
        MAX_NAME
    );
    let too_long = EngineError::BadName(format!("1 to {MAX_NAME} characters"));
    assert_eq!(valid_name(&"é".repeat(MAX_NAME + 1)), Err(too_long.clone()));
    assert_eq!(valid_name("   "), Err(too_long.clone()));
    assert_eq!(valid_name(""), Err(too_long));
    let control = Err(EngineError::BadName("no control characters".into()));
    assert_eq!(valid_name("bo\u{7}b"), control);
    assert_eq!(valid_name("bo\nb"), control);
}

#[test]
fn texts_are_one_to_max_text_bytes() {
    let bad = Err(EngineError::BadText { max: MAX_TEXT });
    assert_eq!(check_text(""), bad);
    assert_eq!(check_text("x"), Ok(()));
    assert_eq!(check_text(&"x".repeat(MAX_TEXT)), Ok(()));
    assert_eq!(check_text(&"x".repeat(MAX_TEXT + 1)), bad);
}

#[test]
fn reading_a_code_checks_code_owner_name_then_peer() {
    assert!(matches!(
        read_code("kith1nonsense", "bob", &ME),
        Err(EngineError::BadCode(_))
    ));
    // Our own code is refused before the name is looked at.
    let own = code_of(&card(ME, Vec::new()));
    assert_eq!(read_code(&own, "", &ME).unwrap_err(), EngineError::OwnCode);
    let bob = code_of(&card(BOB, Vec::new()));
    assert!(matches!(
        read_code(&bob, "", &ME),
        Err(EngineError::BadName(_))
    ));
    let mut bad_peer = card(BOB, Vec::new());
    bad_peer.peer_id = vec![0xff; 3];
    assert_eq!(
        read_code(&code_of(&bad_peer), "bob", &ME).unwrap_err(),
        EngineError::BadCode("bad peer id".into())
    );
    let c = read_code(&bob, " bob ", &ME).unwrap();
    assert_eq!(c.name, "bob");
    assert_eq!(c.peer.to_bytes(), c.card.peer_id);
}

#[test]
fn a_new_code_is_added() {
    let code = read(BOB, "bob");
    assert!(check_add(&code, &Existing::default()).is_ok());
    let c = added_contact(&code, 42);
    assert_eq!(c.identity, BOB);
    assert_eq!(c.name, "bob");
    assert_eq!(c.added_ms, 42);
    assert!(c.added_by_user);
    assert_eq!(c.peer_hint, code.card.peer_id);
}

#[test]
fn a_known_name_with_another_key_is_an_identity_change_with_a_warning() {
    let code = read(BOB, "bob");
    let carol_as_bob = contact(CAROL, "bob", true);
    let refused = check_add(
        &code,
        &Existing {
            by_name: Some(&carol_as_bob),
            ..Existing::default()
        },
    )
    .unwrap_err();
    assert_eq!(refused, AddRefused::IdentityChanged("bob".into()));
    let (error, warning) = refused.into_parts();
    assert_eq!(error, EngineError::IdentityChanged("bob".into()));
    assert!(matches!(
        warning,
        Some(Event::IdentityWarning { contact, .. }) if contact == "bob"
    ));
}

#[test]
fn a_device_of_another_identity_is_refused() {
    let code = read(BOB, "bob");
    let refused = check_add(
        &code,
        &Existing {
            device_identity: Some(CAROL),
            ..Existing::default()
        },
    )
    .unwrap_err();
    assert!(matches!(
        refused,
        AddRefused::Error(EngineError::BadCode(_))
    ));
    assert!(refused.into_parts().1.is_none());
}

#[test]
fn the_same_identity_under_another_name_is_already_a_contact() {
    let code = read(BOB, "robert");
    let bob = contact(BOB, "bob", true);
    let refused = check_add(
        &code,
        &Existing {
            by_identity: Some(&bob),
            device_identity: Some(BOB),
            ..Existing::default()
        },
    )
    .unwrap_err();
    assert_eq!(
        refused,
        AddRefused::Error(EngineError::AlreadyContact("bob".into()))
    );
}

#[test]
fn adding_again_or_over_a_provisional_contact_is_allowed() {
    // The same code under the same name again.
    let code = read(BOB, "bob");
    let bob = contact(BOB, "bob", true);
    let again = Existing {
        by_name: Some(&bob),
        device_identity: Some(BOB),
        by_identity: Some(&bob),
    };
    assert!(check_add(&code, &again).is_ok());
    // Someone who wrote first, now named by the user: the contact becomes a real one.
    let stranger = contact(BOB, &stranger_name(&BOB, 1), false);
    let over = Existing {
        by_identity: Some(&stranger),
        device_identity: Some(BOB),
        ..Existing::default()
    };
    assert!(check_add(&code, &over).is_ok());
    let c = added_contact(&code, 9);
    assert_eq!((c.name.as_str(), c.added_by_user), ("bob", true));
}

#[test]
fn code_addresses_go_first_without_duplicates_and_bounded() {
    let mut known = vec![vec![1], vec![2]];
    merge_addrs(&mut known, &[vec![3], vec![2], vec![4]]);
    assert_eq!(known, vec![vec![3], vec![4], vec![1], vec![2]]);
    let many: Vec<Vec<u8>> = (0..MAX_DEVICE_ADDRS as u8 + 5).map(|i| vec![i]).collect();
    let mut known = vec![vec![200]];
    merge_addrs(&mut known, &many);
    assert_eq!(known.len(), MAX_DEVICE_ADDRS);
    assert_eq!(known[..], many[..MAX_DEVICE_ADDRS]);
}

#[test]
fn strangers_are_named_by_fingerprint_then_numbered() {
    let short = BOB.short();
    assert_eq!(stranger_name(&BOB, 1), format!("~{short}"));
    assert_eq!(stranger_name(&BOB, 2), format!("~{short}-2"));
    assert_eq!(stranger_name(&BOB, 3), format!("~{short}-3"));
}

#[test]
fn strangers_are_capped_except_group_members() {
    assert!(may_add_stranger(0, false));
    assert!(may_add_stranger(MAX_STRANGERS - 1, false));
    assert!(!may_add_stranger(MAX_STRANGERS, false));
    assert!(may_add_stranger(MAX_STRANGERS, true));
}

#[test]
fn removing_drops_every_device_of_the_identity() {
    let device = |identity: IdentityKey| KnownDevice {
        identity,
        peer_id: PeerId::random().to_bytes(),
        cert: None,
        addrs: Vec::new(),
        mailboxes: Vec::new(),
        prekey: None,
    };
    let devices = vec![device(BOB), device(CAROL), device(BOB)];
    let dropped = devices_to_drop(&BOB, &devices);
    assert_eq!(
        dropped,
        vec![
            device_key(&devices[0].peer_id),
            device_key(&devices[2].peer_id)
        ]
    );
    assert!(devices_to_drop(&ME, &devices).is_empty());
}

#[test]
fn a_sent_text_is_stored_pending_and_sealed_as_text() {
    let (msg, body) = outgoing_text(7, "hello".into(), 1234);
    assert!(msg.outgoing);
    assert_eq!(msg.status, Status::Pending);
    assert_eq!((msg.id, msg.sent_at_ms, msg.stored_at_ms), (7, 1234, 1234));
    assert_eq!(msg.text, "hello");
    assert!(matches!(
        body,
        Body::Text { id: 7, sent_at_ms: 1234, ref text } if text == "hello"
    ));
}

#[test]
fn read_marks_incoming_messages_below_read() {
    let mut mine = incoming(1, Status::Pending);
    mine.outgoing = true;
    let history = [
        mine,
        incoming(2, Status::Delivered),
        incoming(3, Status::Read),
        incoming(4, Status::Pending),
    ];
    assert_eq!(unread(&history), vec![2, 4]);
}

#[test]
fn read_receipts_follow_privacy_and_blocks_and_are_chunked() {
    let ids: Vec<u128> = (0..(2 * MAX_RECEIPT_IDS + 1) as u128).collect();
    assert!(read_receipts(&ids, false, false, 1).is_empty());
    assert!(read_receipts(&ids, true, true, 1).is_empty());
    assert!(read_receipts(&[], true, false, 1).is_empty());
    let receipts = read_receipts(&ids, true, false, 77);
    let sizes: Vec<usize> = receipts
        .iter()
        .map(|b| match b {
            Body::Receipt {
                kind: ReceiptKind::Read,
                ids,
                at_ms: 77,
            } => ids.len(),
            _ => panic!("not a read receipt"),
        })
        .collect();
    assert_eq!(sizes, vec![MAX_RECEIPT_IDS, MAX_RECEIPT_IDS, 1]);
    let all: Vec<u128> = receipts
        .into_iter()
        .flat_map(|b| match b {
            Body::Receipt { ids, .. } => ids,
            _ => Vec::new(),
        })
        .collect();
    assert_eq!(all, ids);
}
