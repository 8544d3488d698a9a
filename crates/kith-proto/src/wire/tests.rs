use super::*;
use proptest::prelude::*;

#[test]
fn request_roundtrip() {
    let r = Request::Deliver {
        envelopes: vec![Envelope {
            to_device: CurveKey([3; 32]),
            kind: 1,
            ciphertext: vec![1, 2, 3],
        }],
    };
    assert_eq!(Request::decode(&r.encode().unwrap()).unwrap(), r);
}

#[test]
fn unknown_version_is_typed() {
    let mut b = Request::ClaimPrekey.encode().unwrap();
    b[0] = 9;
    assert_eq!(Request::decode(&b), Err(DecodeError::UnsupportedVersion(9)));
}

#[test]
fn empty_batch_rejected() {
    let b = Request::Deliver { envelopes: vec![] }.encode().unwrap();
    assert!(matches!(Request::decode(&b), Err(DecodeError::Invalid(_))));
}

#[test]
fn debug_hides_text() {
    let s = Sealed {
        version: 1,
        sender: None,
        bodies: vec![Body::Text {
            id: 1,
            sent_at_ms: 2,
            text: "secret words".into(),
        }],
    };
    assert!(!format!("{s:?}").contains("secret"));
}

#[test]
fn group_wants_are_size_checked() {
    let sealed = |n: usize| Sealed {
        version: 1,
        sender: None,
        bodies: vec![Body::GroupWant {
            group: GroupId([7; 16]),
            ops: vec![kith_types::OpHash([1; 32]); n],
        }],
    };
    let back = Sealed::decode(&sealed(3).encode().unwrap()).unwrap();
    assert_eq!(back, sealed(3));
    assert!(Sealed::decode(&sealed(0).encode().unwrap()).is_err());
    assert!(Sealed::decode(&sealed(MAX_UPDATE_OPS + 1).encode().unwrap()).is_err());
}

fn set_push(url: &str) -> Result<Request, DecodeError> {
    Request::decode(
        &Request::SetPush {
            endpoint: Some(url.into()),
        }
        .encode()
        .unwrap(),
    )
}

#[test]
fn push_endpoints_are_checked_on_decode() {
    for ok in [
        "https://push.example.org/up/abc?token=x",
        "http://127.0.0.1:8080/x",
        "HTTPS://[::1]:443/",
        "https://ntfy.sh",
    ] {
        assert!(set_push(ok).is_ok(), "{ok}");
    }
    for bad in [
        "",
        "ftp://example.org/x",
        "https://",
        "https:///path",
        "https://user:pw@example.org/",
        "https://example.org:99999/",
        "https://example.org:/",
        "https://exa mple.org/",
        "https://[::1/",
        "https://[zz]/",
        "javascript:alert(1)",
        "https://example.org/\u{0}",
    ] {
        assert!(
            matches!(set_push(bad), Err(DecodeError::Invalid(_))),
            "{bad}"
        );
    }
    let long = format!("https://example.org/{}", "a".repeat(MAX_PUSH_ENDPOINT));
    assert!(matches!(set_push(&long), Err(DecodeError::Invalid(_))));
    let clear = Request::SetPush { endpoint: None };
    assert_eq!(Request::decode(&clear.encode().unwrap()).unwrap(), clear);
}

#[test]
fn debug_hides_push_endpoints_and_tokens() {
    let r = Request::SetPush {
        endpoint: Some("https://push.example.org/up/SECRET".into()),
    };
    assert!(!format!("{r:?}").contains("SECRET"));
    assert!(!format!("{r:?}").contains("example"));
}

fn topic(i: usize) -> String {
    crate::groupwire::group_topic(&GroupId([i as u8; 16]))
}

#[test]
fn watch_and_topic_sync_round_trip_and_sizes_are_checked() {
    let mark = SenderMark {
        sender: kith_types::CurveKey([5; 32]),
        seq: 9,
    };
    for ok in [
        Request::Watch { topics: vec![] },
        Request::Watch {
            topics: (0..MAX_WATCH_TOPICS).map(topic).collect(),
        },
        Request::TopicSync {
            topic: topic(1),
            have: vec![],
        },
        Request::TopicSync {
            topic: topic(1),
            have: vec![mark; MAX_SYNC_MARKS],
        },
    ] {
        assert_eq!(Request::decode(&ok.encode().unwrap()).unwrap(), ok);
    }
    for bad in [
        Request::Watch {
            topics: (0..=MAX_WATCH_TOPICS).map(topic).collect(),
        },
        Request::Watch {
            topics: vec!["x".repeat(MAX_TOPIC_LEN + 1)],
        },
        Request::TopicSync {
            topic: "x".repeat(MAX_TOPIC_LEN + 1),
            have: vec![],
        },
        Request::TopicSync {
            topic: topic(1),
            have: vec![mark; MAX_SYNC_MARKS + 1],
        },
    ] {
        assert!(matches!(
            Request::decode(&bad.encode().unwrap()),
            Err(DecodeError::Invalid(_))
        ));
    }
    // Debug shows counts, not which topics a device watches.
    let w = Request::Watch {
        topics: vec![topic(3)],
    };
    assert!(!format!("{w:?}").contains("kith/g/"));
    let t = Request::TopicSync {
        topic: topic(3),
        have: vec![mark],
    };
    assert!(!format!("{t:?}").contains("kith/g/"));
    let ack = Response::Watching { topics: 3 };
    assert_eq!(Response::decode(&ack.encode().unwrap()).unwrap(), ack);
}

proptest! {
    /// Garbage after the Watch and TopicSync variant bytes (5 and 6): typed errors or
    /// values within the limits, never a panic.
    #[test]
    fn garbage_watch_and_topic_sync_never_panic(
        variant in 5u8..=6,
        body in proptest::collection::vec(any::<u8>(), 0..4096),
    ) {
        let mut bytes = vec![WIRE_VERSION, variant];
        bytes.extend_from_slice(&body);
        match Request::decode(&bytes) {
            Ok(Request::Watch { topics }) => {
                prop_assert!(topics.len() <= MAX_WATCH_TOPICS);
                prop_assert!(topics.iter().all(|t| t.len() <= MAX_TOPIC_LEN));
            }
            Ok(Request::TopicSync { topic, have }) => {
                prop_assert!(topic.len() <= MAX_TOPIC_LEN && have.len() <= MAX_SYNC_MARKS);
            }
            Ok(other) => prop_assert!(false, "decoded as {other:?}"),
            Err(_) => {}
        }
    }

    /// A valid Watch with one byte changed anywhere.
    #[test]
    fn mutated_watch_never_panics(i in 0usize..4096, v in any::<u8>()) {
        let r = Request::Watch { topics: (0..64).map(topic).collect() };
        let mut b = r.encode().unwrap();
        let n = b.len();
        b[i % n] = v;
        let _ = Request::decode(&b);
    }
}

proptest! {
    #[test]
    fn arbitrary_push_endpoints_never_panic(url in "\\PC{0,1100}") {
        let _ = check_push_endpoint(&url);
        let _ = set_push(&url);
    }

    #[test]
    fn arbitrary_frames_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = Request::decode(&bytes);
        let _ = Response::decode(&bytes);
        let _ = Sealed::decode(&bytes);
    }

    #[test]
    fn mutated_frames_never_panic(i in 0usize..64, v in any::<u8>()) {
        let r = Request::Deliver { envelopes: vec![Envelope { to_device: CurveKey([1; 32]), kind: 0, ciphertext: vec![7; 40] }] };
        let mut b = r.encode().unwrap();
        let n = b.len();
        b[i % n] = v;
        let _ = Request::decode(&b);
    }
}

#[test]
fn sealed_envelopes_decode_and_unknown_kinds_are_refused() {
    let deliver = |kind| Request::Deliver {
        envelopes: vec![Envelope {
            to_device: CurveKey([1; 32]),
            kind,
            ciphertext: vec![7; 40],
        }],
    };
    // Bare Olm envelopes (older nodes, mail kept before the seal) and sealed ones both read.
    for kind in 0..=MAX_ENVELOPE_KIND {
        let r = deliver(kind);
        assert_eq!(Request::decode(&r.encode().unwrap()).unwrap(), r);
    }
    assert!(Request::decode(&deliver(MAX_ENVELOPE_KIND + 1).encode().unwrap()).is_err());
}

#[test]
fn call_bodies_round_trip_are_size_checked_and_hide_their_sdp() {
    let sealed = |bodies: Vec<Body>| Sealed {
        version: 1,
        sender: None,
        bodies,
    };
    let ok = sealed(vec![
        Body::CallOffer {
            call: 7,
            sent_at_ms: 9,
            sdp: "v=0 a=fingerprint:sha-256 AB:CD".into(),
            video: false,
        },
        Body::CallAnswer {
            call: 7,
            sdp: "v=0".into(),
        },
        Body::CallCandidates {
            call: 7,
            candidates: vec!["candidate:1 1 udp 1 127.0.0.1 5000 typ host".into()],
        },
        Body::CallHangup { call: 7 },
        Body::CallDecline {
            call: 7,
            busy: true,
        },
    ]);
    assert_eq!(Sealed::decode(&ok.encode().unwrap()).unwrap(), ok);
    assert!(
        !format!("{ok:?}").contains("fingerprint"),
        "no SDP in Debug"
    );

    let long = "x".repeat(MAX_CALL_SDP + 1);
    let too_long = sealed(vec![Body::CallAnswer { call: 7, sdp: long }]);
    assert!(Sealed::decode(&too_long.encode().unwrap()).is_err());
    let no_candidates = sealed(vec![Body::CallCandidates {
        call: 7,
        candidates: vec![],
    }]);
    assert!(Sealed::decode(&no_candidates.encode().unwrap()).is_err());
    let many = sealed(vec![Body::CallCandidates {
        call: 7,
        candidates: vec!["c".into(); MAX_CALL_CANDIDATES + 1],
    }]);
    assert!(Sealed::decode(&many.encode().unwrap()).is_err());
}

#[test]
fn call_bodies_follow_the_existing_variants() {
    // Appended at the end of `Body`: an existing body still encodes with its old index,
    // and the first call body takes the next one (6).
    let hangup = codec::encode(&Body::CallHangup { call: 1 }).unwrap();
    assert_eq!(hangup[0], 9);
    let offer = codec::encode(&Body::CallOffer {
        call: 1,
        sent_at_ms: 0,
        sdp: String::new(),
        video: false,
    })
    .unwrap();
    assert_eq!(offer[0], 6);
}

/// TURN credentials: the request is variant 8, the answer variant 8 (appended after the
/// others); the answer's bounds are checked on decode; Debug never shows a credential.
#[test]
fn turn_credentials_round_trip_within_bounds() {
    let req = Request::TurnCredentials;
    let bytes = req.encode().unwrap();
    assert_eq!(bytes, [WIRE_VERSION, 8]);
    assert_eq!(Request::decode(&bytes).unwrap(), req);
    let server = TurnServer {
        urls: vec![
            "turn:127.0.0.1:3478?transport=udp".into(),
            "stun:127.0.0.1:3478".into(),
        ],
        username: "1700000000:12D3KooW".into(),
        credential: "c2VjcmV0".into(),
        expires_s: 1_700_000_000,
    };
    let resp = Response::TurnServers {
        servers: vec![server.clone()],
    };
    let bytes = resp.encode().unwrap();
    assert_eq!(bytes[..2], [WIRE_VERSION, 8]);
    assert_eq!(Response::decode(&bytes).unwrap(), resp);
    assert!(!format!("{resp:?}").contains("c2VjcmV0"));
    let bad = |s: TurnServer| {
        Response::decode(&Response::TurnServers { servers: vec![s] }.encode().unwrap()).is_err()
    };
    assert!(bad(TurnServer {
        urls: vec![],
        ..server.clone()
    }));
    assert!(bad(TurnServer {
        urls: vec!["http://x".into()],
        ..server.clone()
    }));
    assert!(bad(TurnServer {
        credential: "x".repeat(MAX_TURN_FIELD + 1),
        ..server.clone()
    }));
    let five = Response::TurnServers {
        servers: vec![server; MAX_TURN_SERVERS + 1],
    };
    assert!(Response::decode(&five.encode().unwrap()).is_err());
}
