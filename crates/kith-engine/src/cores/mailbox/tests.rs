use super::*;
use kith_net::Keypair;
use kith_proto::wire::Envelope;

const MS: Duration = Duration::from_millis(1);
const DEV: DeviceKey = DeviceKey([7; 32]);

fn peer(n: u8) -> PeerId {
    let Ok(k) = Keypair::ed25519_from_bytes([n; 32]) else {
        unreachable!("any 32 bytes are an ed25519 secret key")
    };
    k.public().to_peer_id()
}

fn cert_of(p: PeerId, identity: u8) -> DeviceCert {
    DeviceCert {
        identity: kith_types::IdentityKey([identity; 32]),
        peer_id: p.to_bytes(),
        curve25519: kith_types::CurveKey([3; 32]),
        ed25519: [4; 32],
        created_ms: 0,
        signature: vec![0; 64],
    }
}

fn serving(cfg: MailboxConfig) -> MailboxService {
    MailboxService::new(Some(cfg))
}

fn with_tokens() -> MailboxConfig {
    MailboxConfig {
        tokens: Some(vec!["invite".into()]),
        ..MailboxConfig::default()
    }
}

fn registration(p: PeerId, cert: &DeviceCert) -> Registration<'_> {
    Registration {
        peer: p,
        cert,
        token: Some("invite"),
        bound_to: None,
        key_registered: false,
        key_elsewhere: false,
        proof: KeyProof::Valid,
        devices: 0,
        identity_devices: 0,
    }
}

fn kept_item(queued_ms: u64) -> OutboxItem {
    OutboxItem {
        conversation: kith_store::NO_CONVERSATION,
        message_ids: Vec::new(),
        sealed: Some(Envelope {
            to_device: kith_types::CurveKey([3; 32]),
            kind: 1,
            ciphertext: vec![0; 10],
        }),
        body: None,
        queued_ms,
        resets: 0,
        covers: 1,
        covered: false,
    }
}

#[test]
fn a_registration_with_the_right_token_and_its_own_certificate_is_accepted() {
    let mut m = serving(with_tokens());
    let p = peer(1);
    let cert = cert_of(p, 9);
    assert!(!m.hands_over(&p, true));
    assert_eq!(m.register(&registration(p, &cert)), Verdict::Accept(()));
    assert!(m.hands_over(&p, true), "registered on this connection");
    assert_eq!(m.registered_peers(), vec![p]);
    m.disconnected(&p);
    assert!(!m.hands_over(&p, true), "a new connection registers again");
}

#[test]
fn a_wrong_or_missing_token_is_refused_and_penalised() {
    let mut m = serving(with_tokens());
    let p = peer(1);
    let cert = cert_of(p, 9);
    for token in [Some("guess"), Some(""), None] {
        let r = Registration {
            token,
            ..registration(p, &cert)
        };
        assert_eq!(
            m.register(&r),
            Verdict::Penalize(Refusal::Unauthorized, WRONG_TOKEN)
        );
    }
    assert!(
        !m.hands_over(&p, true),
        "a refused registration counts for nothing"
    );
    // Without tokens configured, none is needed.
    let mut open = serving(MailboxConfig::default());
    let r = Registration {
        token: None,
        ..registration(p, &cert)
    };
    assert_eq!(open.register(&r), Verdict::Accept(()));
}

#[test]
fn another_peers_certificate_is_refused_and_penalised() {
    let mut m = serving(with_tokens());
    let (me, other) = (peer(1), peer(2));
    let cert = cert_of(other, 9);
    assert_eq!(
        m.register(&registration(me, &cert)),
        Verdict::Penalize(Refusal::Invalid, ANOTHER_PEER)
    );
    assert!(!m.hands_over(&me, true) && !m.hands_over(&other, true));
    // The token is checked first: a wrong token with another's certificate is a token
    // failure.
    let r = Registration {
        token: Some("guess"),
        ..registration(me, &cert)
    };
    assert_eq!(
        m.register(&r),
        Verdict::Penalize(Refusal::Unauthorized, WRONG_TOKEN)
    );
}

#[test]
fn a_device_stays_bound_to_its_identity_and_the_device_cap_holds() {
    let mut m = serving(MailboxConfig {
        max_devices: 2,
        ..with_tokens()
    });
    let p = peer(1);
    let cert = cert_of(p, 9);
    let rebound = Registration {
        bound_to: Some(kith_types::IdentityKey([8; 32])),
        ..registration(p, &cert)
    };
    assert_eq!(m.register(&rebound), Verdict::Refuse(Refusal::Invalid));
    let same = Registration {
        bound_to: Some(kith_types::IdentityKey([9; 32])),
        devices: 1,
        ..registration(p, &cert)
    };
    assert_eq!(m.register(&same), Verdict::Accept(()));
    let full = Registration {
        devices: 2,
        ..registration(p, &cert)
    };
    assert_eq!(m.register(&full), Verdict::Refuse(Refusal::Busy));
    // A device registered already registers again (on each connection) when full.
    let again = Registration {
        key_registered: true,
        ..full
    };
    assert_eq!(m.register(&again), Verdict::Accept(()));
}

/// Issue 14, hole 2: a registrant that cannot prove it holds the key, or that names a
/// key bound to another device, never takes the slot.
#[test]
fn a_key_needs_a_proof_and_is_never_rebound_to_another_device() {
    let mut m = serving(with_tokens());
    let p = peer(1);
    let cert = cert_of(p, 9);
    let missing = Registration {
        proof: KeyProof::Missing,
        ..registration(p, &cert)
    };
    assert_eq!(m.register(&missing), Verdict::Refuse(Refusal::Invalid));
    let forged = Registration {
        proof: KeyProof::Invalid,
        ..registration(p, &cert)
    };
    assert_eq!(
        m.register(&forged),
        Verdict::Penalize(Refusal::Invalid, NO_KEY_PROOF)
    );
    let taken = Registration {
        key_elsewhere: true,
        key_registered: true,
        ..registration(p, &cert)
    };
    assert_eq!(
        m.register(&taken),
        Verdict::Penalize(Refusal::Invalid, KEY_TAKEN)
    );
    assert!(!m.hands_over(&p, true), "none of them registered");
    assert_eq!(m.register(&registration(p, &cert)), Verdict::Accept(()));
}

#[test]
fn invite_tokens_never_reach_debug_output() {
    let m = serving(with_tokens());
    let shown = format!("{m:?}");
    assert!(!shown.contains("invite"), "{shown}");
    assert!(shown.contains("tokens: Some(1)"), "{shown}");
    let p = peer(1);
    let cert = cert_of(p, 9);
    let r = Registration {
        token: Some("invite-secret"),
        ..registration(p, &cert)
    };
    let shown = format!("{r:?}");
    assert!(!shown.contains("invite-secret"), "{shown}");
}

#[test]
fn a_node_that_is_no_mailbox_refuses_everything_of_the_service() {
    let mut m = MailboxService::new(None);
    let p = peer(1);
    let cert = cert_of(p, 9);
    assert_eq!(
        m.register(&registration(p, &cert)),
        Verdict::Refuse(Refusal::Invalid)
    );
    assert_eq!(
        m.deposit(Some((DEV, Kept::default())), 1),
        Verdict::Penalize(RejectReason::WrongDevice, NOT_REGISTERED)
    );
    assert_eq!(
        m.push_verdict(true, None),
        PushVerdict::Refuse(Refusal::Invalid)
    );
    assert_eq!(m.expiry_cutoff(1_000_000), None);
    assert!(m.hands_over(&p, true), "its own outbox is not gated");
    assert!(!m.wake(DEV, true, true, Instant::now()));
}

#[test]
fn deposits_are_refused_at_exactly_the_quota_in_count_and_in_bytes() {
    let m = serving(MailboxConfig {
        quota: 3,
        max_bytes: 1000,
        ..MailboxConfig::default()
    });
    let kept = |messages, bytes| Some((DEV, Kept { messages, bytes }));
    assert_eq!(m.deposit(kept(2, 0), 1), Verdict::Accept(DEV));
    assert_eq!(
        m.deposit(kept(3, 0), 1),
        Verdict::Refuse(RejectReason::MailboxFull),
        "the quota-th envelope is the last kept"
    );
    assert_eq!(
        m.deposit(kept(0, 900), 100),
        Verdict::Accept(DEV),
        "to the byte"
    );
    assert_eq!(
        m.deposit(kept(0, 900), 101),
        Verdict::Refuse(RejectReason::MailboxFull),
        "one byte over"
    );
    assert_eq!(m.deposit(kept(0, 1000), 0), Verdict::Accept(DEV));
    assert_eq!(
        m.deposit(kept(0, u64::MAX), 1),
        Verdict::Refuse(RejectReason::MailboxFull),
        "no overflow"
    );
    assert_eq!(
        m.deposit(None, 1),
        Verdict::Penalize(RejectReason::WrongDevice, NOT_REGISTERED),
        "a key not registered here"
    );
}

#[test]
fn the_registration_answer_gives_the_quota_and_what_is_kept() {
    let m = serving(MailboxConfig {
        quota: usize::MAX,
        max_bytes: 1000,
        ..MailboxConfig::default()
    });
    let kept = Kept {
        messages: 5,
        bytes: 50,
    };
    assert!(matches!(
        m.registration_answer(kept),
        Response::Registration {
            max_messages: u32::MAX,
            max_bytes: 1000,
            used_messages: 5,
            used_bytes: 50,
        }
    ));
}

/// A device is woken at most once per WAKE_EVERY, to the millisecond, however many
/// deposits come; only when it is away and gave an endpoint; and a new endpoint may be
/// woken at once.
#[test]
fn wake_ups_at_most_once_per_wake_every_to_the_millisecond() {
    let t0 = Instant::now();
    let mut m = serving(MailboxConfig::default());
    assert!(!m.wake(DEV, false, true, t0), "no endpoint");
    assert!(!m.wake(DEV, true, false, t0), "connected");
    assert!(m.wake_due(&DEV, t0), "nothing counted by a refusal");
    assert!(m.wake(DEV, true, true, t0));
    let mut now = t0;
    while now < t0 + WAKE_EVERY - MS {
        now += Duration::from_millis(997);
        let now = now.min(t0 + WAKE_EVERY - MS);
        assert!(!m.wake_due(&DEV, now));
        assert!(!m.wake(DEV, true, true, now));
    }
    assert!(!m.wake(DEV, true, true, t0 + WAKE_EVERY - MS));
    assert!(m.wake_due(&DEV, t0 + WAKE_EVERY));
    assert!(m.wake(DEV, true, true, t0 + WAKE_EVERY));
    assert!(!m.wake(DEV, true, true, t0 + WAKE_EVERY + MS));
    assert!(m.wake(DEV, true, true, t0 + 2 * WAKE_EVERY));
    // Another device has its own window.
    assert!(m.wake(DeviceKey([8; 32]), true, true, t0 + WAKE_EVERY + MS));
}

/// Setting a push endpoint (again and again) does not reset the wake-up limit: a device
/// cannot make its mailbox wake it (or a third party's endpoint) more often than once
/// per WAKE_EVERY.
#[test]
fn a_new_push_endpoint_does_not_reset_the_wake_up_limit() {
    let t0 = Instant::now();
    let mut m = serving(MailboxConfig::default());
    assert!(m.wake(DEV, true, true, t0));
    for n in 1..10u32 {
        let now = t0 + n * MS;
        assert_eq!(
            m.push_verdict(true, Some("https://push.example/x")),
            PushVerdict::Set
        ); // parse only
        assert!(!m.wake_due(&DEV, now), "set {n} times, still not due");
        assert!(!m.wake(DEV, true, true, now));
    }
    assert!(m.wake(DEV, true, true, t0 + WAKE_EVERY));
}

/// Devices per identity: an identity's devices past the cap are refused as busy while
/// another identity registers; a device registered already comes back; the global cap
/// holds whatever the identity.
#[test]
fn devices_per_identity_and_in_all_are_capped() {
    let mut m = serving(MailboxConfig {
        max_devices: 4,
        max_devices_per_identity: 2,
        ..with_tokens()
    });
    let (p, q) = (peer(1), peer(2));
    let (third, other) = (cert_of(p, 9), cert_of(q, 10));
    let over = Registration {
        identity_devices: 2,
        devices: 2,
        ..registration(p, &third)
    };
    assert_eq!(m.register(&over), Verdict::Refuse(Refusal::Busy));
    let back = Registration {
        key_registered: true,
        ..over
    };
    assert_eq!(m.register(&back), Verdict::Accept(()));
    let another = Registration {
        identity_devices: 0,
        devices: 2,
        ..registration(q, &other)
    };
    assert_eq!(m.register(&another), Verdict::Accept(()));
    let full = Registration {
        devices: 4,
        ..another
    };
    assert_eq!(m.register(&full), Verdict::Refuse(Refusal::Busy));
}

#[test]
fn the_wake_up_memory_is_bounded() {
    let t0 = Instant::now();
    let mut m = serving(MailboxConfig::default());
    for i in 0..(MAX_WAKE_ENTRIES as u32 + 100) {
        let mut dev = [0u8; 32];
        dev[..4].copy_from_slice(&i.to_le_bytes());
        m.wake(DeviceKey(dev), true, true, t0);
    }
    assert!(m.wakes.len() <= MAX_WAKE_ENTRIES);
}

#[test]
fn pre_key_claims_past_the_limit_get_only_the_fallback_key_for_a_minute() {
    let t0 = Instant::now();
    let mut m = MailboxService::new(None);
    let (a, b) = (peer(1), peer(2));
    for i in 0..CLAIMS_PER_MINUTE {
        let now = t0 + Duration::from_secs(u64::from(i));
        assert!(m.may_claim_one_time_key(a, now), "claim {}", i + 1);
    }
    assert!(!m.may_claim_one_time_key(a, t0 + Duration::from_secs(10)));
    assert!(!m.may_claim_one_time_key(a, t0 + CLAIM_WINDOW - MS));
    assert!(
        m.may_claim_one_time_key(b, t0 + CLAIM_WINDOW - MS),
        "per peer"
    );
    assert!(
        m.may_claim_one_time_key(a, t0 + CLAIM_WINDOW),
        "a new minute"
    );
    for i in 0..(MAX_CLAIM_ENTRIES + 10) {
        let mut bytes = [0u8; 32];
        bytes[..8].copy_from_slice(&(i as u64).to_le_bytes());
        bytes[31] = 1;
        if let Ok(k) = Keypair::ed25519_from_bytes(bytes) {
            m.may_claim_one_time_key(k.public().to_peer_id(), t0);
        }
    }
    assert!(m.claims.len() <= MAX_CLAIM_ENTRIES);
}

#[test]
fn the_expiry_cutoff_is_the_retention_before_now() {
    let day = Duration::from_secs(24 * 3600);
    let m = serving(MailboxConfig {
        retention: day,
        ..MailboxConfig::default()
    });
    let now_ms = 10 * 86_400_000;
    let Some(cutoff) = m.expiry_cutoff(now_ms) else {
        unreachable!("a mailbox has a cutoff")
    };
    assert_eq!(cutoff, 9 * 86_400_000);
    assert!(is_expired(&kept_item(cutoff - 1), cutoff));
    assert!(!is_expired(&kept_item(cutoff), cutoff), "kept a full day");
    assert!(!is_expired(&kept_item(now_ms), cutoff));
    let own = OutboxItem {
        conversation: kith_types::IdentityKey([1; 32]),
        ..kept_item(0)
    };
    assert!(
        !is_expired(&own, cutoff),
        "the node's own messages never expire"
    );
    assert_eq!(
        m.expiry_cutoff(1000),
        Some(0),
        "early clocks do not underflow"
    );
}

#[test]
fn only_kept_mail_waits_for_a_registration() {
    let m = serving(MailboxConfig::default());
    let p = peer(1);
    assert!(
        m.hands_over(&p, false),
        "the mailbox's own messages go as usual"
    );
    assert!(!m.hands_over(&p, true));
}

#[test]
fn push_endpoints_only_from_registered_devices_and_by_policy() {
    let m = serving(MailboxConfig::default());
    let url = "https://push.example.org/up/abc";
    assert_eq!(
        m.push_verdict(false, Some(url)),
        PushVerdict::Refuse(Refusal::Unauthorized)
    );
    assert_eq!(m.push_verdict(true, Some(url)), PushVerdict::Set);
    assert_eq!(m.push_verdict(true, None), PushVerdict::Set, "clearing");
    assert_eq!(
        m.push_verdict(true, Some("http://push.example.org/x")),
        PushVerdict::BadEndpoint(EndpointError::PlainHttp)
    );
    assert_eq!(
        m.push_verdict(true, Some("https://127.0.0.1/x")),
        PushVerdict::BadEndpoint(EndpointError::Private)
    );
}

/// A filled media file is kept for the media retention.
#[test]
fn media_is_kept_for_its_retention() {
    let m = serving(MailboxConfig::default());
    assert_eq!(m.held_until(5), 5 + 14 * 24 * 3600 * 1000);
}
