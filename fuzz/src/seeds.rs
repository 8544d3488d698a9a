//! Seed corpora: real encodings of every kind of value the targets decode, signed with fixed
//! test keys so the fuzzer starts past the signature checks. `tests/corpus.rs` writes them
//! to `corpus/<target>/seed-*` (`KITH_WRITE_SEEDS=1 cargo test`) and checks they decode.

use ed25519_dalek::{Signer, SigningKey};
use kith_proto::codec;
use kith_proto::contact::ContactCard;
use kith_proto::group::{GroupOp, OpKind};
use kith_proto::groupwire::{GroupContent, GroupFrame, GroupPlain, SenderMark};
use kith_proto::record::{DeviceCert, MailboxRef, PrekeyBundle, RecordDevice, UserRecord};
use kith_proto::signal::{Presence, Profile, Signal, SignalAnswer, TypingState};
use kith_proto::wire::{
    Body, DeliveryResult, Envelope, ReceiptKind, RejectReason, Request, Response, Sealed,
};
use kith_types::GroupId;
use kith_types::{CurveKey, IdentityKey, OpHash};
use sha2::{Digest, Sha256};

/// The clock at which the seed records are valid.
pub const NOW_MS: u64 = 1_700_000_000_000;

fn key(i: u8) -> SigningKey {
    SigningKey::from_bytes(&[i; 32])
}

fn pk(i: u8) -> IdentityKey {
    IdentityKey(key(i).verifying_key().to_bytes())
}

/// A device certificate of identity `i`, signed.
pub fn cert(i: u8) -> DeviceCert {
    let olm = key(i.wrapping_add(100));
    let mut c = DeviceCert {
        identity: pk(i),
        peer_id: vec![0, 36, 8, 1, 18, 32, i, 2, 3, 4],
        curve25519: CurveKey([i; 32]),
        ed25519: olm.verifying_key().to_bytes(),
        created_ms: NOW_MS - 5,
        signature: Vec::new(),
    };
    c.signature = key(i).sign(&c.signing_bytes().unwrap()).to_bytes().to_vec();
    c
}

/// A pre-key bundle of identity `i`'s device, signed by its Olm key.
pub fn bundle(i: u8, is_fallback: bool) -> PrekeyBundle {
    let olm = key(i.wrapping_add(100));
    let one_time_key = [i.wrapping_add(1); 32];
    PrekeyBundle {
        cert: cert(i),
        one_time_key,
        is_fallback,
        signature: olm
            .sign(&PrekeyBundle::signing_bytes(&one_time_key, is_fallback))
            .to_bytes()
            .to_vec(),
    }
}

/// A valid user record of identity `i` (valid at [`NOW_MS`]).
pub fn record(i: u8, full: bool) -> UserRecord {
    let mut rec = UserRecord {
        version: 1,
        identity: pk(i),
        devices: vec![RecordDevice {
            cert: cert(i),
            addrs: vec![vec![4, 127, 0, 0, 1, 6, 0x1f, 0x90]],
            mailboxes: if full {
                vec![MailboxRef {
                    peer_id: vec![0, 36, 8, 1, 18, 32, 9],
                    addrs: vec![vec![4, 127, 0, 0, 1, 6, 0x1f, 0x91]],
                }]
            } else {
                Vec::new()
            },
            prekey: full.then(|| bundle(i, true)),
        }],
        issued_ms: NOW_MS - 1000,
        expires_ms: NOW_MS + 3_600_000,
        signature: Vec::new(),
    };
    rec.signature = key(i)
        .sign(&rec.signing_bytes().unwrap())
        .to_bytes()
        .to_vec();
    rec
}

fn op(g: GroupId, parents: Vec<OpHash>, by: u8, kind: OpKind) -> GroupOp {
    let k = key(by);
    GroupOp::new(g, parents, pk(by), NOW_MS, kind, |m| {
        k.sign(m).to_bytes().to_vec()
    })
    .unwrap()
}

/// A group's ops: its `Create` and one op of every other kind, all signed.
pub fn ops() -> Vec<GroupOp> {
    let create = op(
        GroupId::default(),
        vec![],
        1,
        OpKind::Create {
            name: "Family".into(),
            members: vec![pk(2), pk(3)],
        },
    );
    let g = GroupOp::group_id_of(&create).unwrap();
    let root = vec![create.hash().unwrap()];
    let mut out = vec![create];
    for (by, kind) in [
        (1, OpKind::Add(pk(4))),
        (1, OpKind::Remove(pk(3))),
        (1, OpKind::Promote(pk(2))),
        (1, OpKind::Demote(pk(2))),
        (1, OpKind::Rename("Kin".into())),
        (1, OpKind::Describe("line one\nline two".into())),
        (2, OpKind::Leave),
    ] {
        out.push(op(g, root.clone(), by, kind));
    }
    out
}

/// A group frame header (valid).
pub fn frame() -> GroupFrame {
    GroupFrame {
        version: 1,
        sender: CurveKey([3; 32]),
        session: "abcDEF012+/=".into(),
        seq: 4,
        lamport: 9,
        ciphertext: vec![0xa5; 48],
    }
}

fn envelope(kind: u8) -> Envelope {
    Envelope {
        to_device: CurveKey([5; 32]),
        kind,
        ciphertext: vec![7; 40],
    }
}

fn marks() -> Vec<SenderMark> {
    vec![
        SenderMark {
            sender: CurveKey([3; 32]),
            seq: 4,
        },
        SenderMark {
            sender: CurveKey([4; 32]),
            seq: 300,
        },
    ]
}

/// A 1×1 PNG header (signature and IHDR).
pub fn tiny_png() -> Vec<u8> {
    let mut v = vec![0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];
    v.extend_from_slice(&[0, 0, 0, 13]);
    v.extend_from_slice(b"IHDR");
    v.extend_from_slice(&1u32.to_be_bytes());
    v.extend_from_slice(&1u32.to_be_bytes());
    v.extend_from_slice(&[8, 6, 0, 0, 0, 0x1f, 0x15, 0xc4, 0x89]);
    v
}

/// Image headers: PNG, JPEG (an APP0 then SOF0), and WebP in its three forms.
pub fn images() -> Vec<Vec<u8>> {
    let jpeg = vec![
        0xff, 0xd8, 0xff, 0xe0, 0, 16, b'J', b'F', b'I', b'F', 0, 1, 1, 0, 0, 1, 0, 1, 0, 0, 0xff,
        0xc0, 0, 17, 8, 0, 2, 0, 3, 3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1, 0xff, 0xd9,
    ];
    let riff = |chunk: &[u8]| {
        let mut v = b"RIFF".to_vec();
        v.extend_from_slice(&((chunk.len() + 4) as u32).to_le_bytes());
        v.extend_from_slice(b"WEBP");
        v.extend_from_slice(chunk);
        v
    };
    let mut vp8x = b"VP8X".to_vec();
    vp8x.extend_from_slice(&10u32.to_le_bytes());
    vp8x.extend_from_slice(&[0, 0, 0, 0, 1, 0, 0, 2, 0, 0]);
    let mut vp8l = b"VP8L".to_vec();
    vp8l.extend_from_slice(&5u32.to_le_bytes());
    vp8l.extend_from_slice(&[0x2f, 0x01, 0x40, 0x00, 0x00]);
    let mut vp8 = b"VP8 ".to_vec();
    vp8.extend_from_slice(&10u32.to_le_bytes());
    vp8.extend_from_slice(&[0x30, 0x01, 0x00, 0x9d, 0x01, 0x2a, 0x02, 0x00, 0x03, 0x00]);
    vec![tiny_png(), jpeg, riff(&vp8x), riff(&vp8l), riff(&vp8)]
}

/// `kith1` and base58 of `card` with its checksum appended (as [`ContactCard::to_code`]
/// writes it), for any bytes.
pub fn code_of(card: &[u8]) -> String {
    let mut bytes = card.to_vec();
    bytes.extend_from_slice(&Sha256::digest(card)[..4]);
    format!(
        "{}{}",
        kith_proto::contact::PREFIX,
        bs58::encode(bytes).into_string()
    )
}

/// The seeds of every target, by target name.
pub fn all() -> Vec<(&'static str, Vec<Vec<u8>>)> {
    let requests = vec![
        Request::ClaimPrekey,
        Request::Deliver {
            envelopes: vec![envelope(0), envelope(1)],
        },
        Request::Register {
            cert: cert(1),
            token: Some("invite-token".into()),
        },
        Request::Register {
            cert: cert(2),
            token: None,
        },
        Request::SetPush {
            endpoint: Some("https://push.example.invalid:8443/up?token=abc".into()), // parse only
        },
        Request::SetPush {
            endpoint: Some("http://[::1]:80/x".into()),
        },
        Request::SetPush { endpoint: None },
        Request::GroupSync {
            group: GroupId([7; 16]),
            have: marks(),
        },
        Request::Watch {
            topics: vec![kith_proto::groupwire::group_topic(&GroupId([7; 16]))],
        },
        Request::TopicSync {
            topic: kith_proto::groupwire::group_topic(&GroupId([7; 16])),
            have: marks(),
        },
        Request::TurnCredentials,
    ];
    let responses = [
        Response::Prekey(bundle(1, false)),
        Response::Delivered {
            results: vec![
                DeliveryResult::Stored,
                DeliveryResult::Duplicate,
                DeliveryResult::Rejected(RejectReason::MailboxFull),
                DeliveryResult::Accepted,
            ],
        },
        Response::Refused(kith_proto::wire::Refusal::EndpointRefused),
        Response::Registered { quota: 1000 },
        Response::Registration {
            max_messages: 5000,
            max_bytes: 64 << 20,
            used_messages: 3,
            used_bytes: 400,
        },
        Response::PushSet,
        Response::GroupFrames {
            frames: vec![frame(), frame()],
            more: true,
        },
        Response::Watching { topics: 2 },
        Response::TurnServers {
            servers: vec![kith_proto::wire::TurnServer {
                urls: vec![
                    "turn:127.0.0.1:3478?transport=udp".into(),
                    "stun:127.0.0.1:3478".into(),
                ],
                username: "1700000000:12D3KooWExample".into(),
                credential: "c2VjcmV0c2VjcmV0c2VjcmV0cw==".into(),
                expires_s: 1_700_000_000,
            }],
        },
    ];
    let g = GroupOp::group_id_of(&ops()[0]).unwrap();
    let sealed = [
        Sealed {
            version: 1,
            sender: Some(cert(1)),
            bodies: vec![Body::Text {
                id: 0x0123_4567_89ab_cdef,
                sent_at_ms: NOW_MS,
                text: "hello there 👋".into(),
            }],
        },
        Sealed {
            version: 1,
            sender: None,
            bodies: vec![
                Body::Receipt {
                    kind: ReceiptKind::Read,
                    ids: vec![1, 2, 3],
                    at_ms: NOW_MS,
                },
                Body::GroupKey {
                    group: g,
                    key: vec![9; 100],
                    seq: 1,
                },
                Body::GroupReceipt {
                    group: g,
                    kind: ReceiptKind::Delivered,
                    ids: vec![u128::MAX],
                    at_ms: 1,
                },
                Body::GroupWant {
                    group: g,
                    ops: vec![OpHash([1; 32])],
                },
            ],
        },
        Sealed {
            version: 1,
            sender: None,
            bodies: vec![Body::GroupUpdate {
                ops: ops(),
                devices: vec![cert(1), cert(2)],
            }],
        },
    ];
    let signals = vec![
        Signal::Presence(Presence {
            online: true,
            last_seen_ms: Some(NOW_MS),
            profile_version: 9,
        })
        .encode(),
        Signal::Typing(TypingState::Recording).encode(),
        Signal::GetProfile.encode(),
        SignalAnswer::Ok.encode(),
        SignalAnswer::Ignored.encode(),
        SignalAnswer::Profile(Profile {
            version: 1,
            name: "Ada".into(),
            about: "about\nme".into(),
            avatar: Some(tiny_png()),
        })
        .encode(),
    ];
    let plain = GroupPlain {
        group: g,
        seq: 4,
        lamport: 9,
        content: GroupContent::Text {
            id: 5,
            sent_at_ms: NOW_MS,
            text: "hi all".into(),
        },
    };
    let card = ContactCard {
        version: 1,
        identity: pk(1),
        peer_id: cert(1).peer_id,
        addrs: vec![vec![4, 127, 0, 0, 1, 6, 0x1f, 0x90]],
    };
    let card_bytes = codec::encode(&card).unwrap();
    let tag = |t: u8, v: Vec<u8>| [vec![t], v].concat();
    vec![
        (
            "wire_request",
            requests.iter().map(|r| r.encode().unwrap()).collect(),
        ),
        (
            "wire_response",
            responses.iter().map(|r| r.encode().unwrap()).collect(),
        ),
        (
            "sealed",
            sealed.iter().map(|s| s.encode().unwrap()).collect(),
        ),
        (
            "user_record",
            vec![
                codec::encode(&record(1, false)).unwrap(),
                codec::encode(&record(2, true)).unwrap(),
                codec::encode(&cert(3)).unwrap(),
                codec::encode(&bundle(3, true)).unwrap(),
            ],
        ),
        (
            "contact_code",
            vec![
                tag(0, card.to_code().unwrap().into_bytes()),
                tag(1, card_bytes),
            ],
        ),
        (
            "group_op",
            ops().iter().map(|o| o.encode().unwrap()).collect(),
        ),
        (
            "group_frame",
            vec![
                tag(0, frame().encode().unwrap()),
                tag(1, plain.encode().unwrap()),
            ],
        ),
        ("signal", signals.into_iter().map(Result::unwrap).collect()),
        ("avatar", images()),
        ("media", crate::media_frames::seeds()),
    ]
}

/// Seeds of the `net_frame` target: the request, response and signal seeds as they travel
/// on a stream (a `u32` big-endian length first), after the byte that picks the protocol
/// and direction.
pub fn net_frame() -> Vec<Vec<u8>> {
    let all = all();
    let of = |name: &str| {
        all.iter()
            .find(|(n, _)| *n == name)
            .map(|(_, s)| s.clone())
            .unwrap_or_default()
    };
    let framed = |mode: u8, body: &[u8]| {
        let mut v = vec![mode];
        v.extend_from_slice(&(body.len() as u32).to_be_bytes());
        v.extend_from_slice(body);
        v
    };
    let mut out = Vec::new();
    out.extend(of("wire_request").iter().map(|b| framed(0, b)));
    out.extend(of("wire_response").iter().map(|b| framed(1, b)));
    for b in of("signal") {
        let mode = if Signal::decode(&b).is_ok() { 2 } else { 3 };
        out.push(framed(mode, &b));
    }
    out
}
