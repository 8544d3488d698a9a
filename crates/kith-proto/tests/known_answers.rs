//! Known-answer tests: the byte format is a contract. If one of these fails, the encoding
//! changed, and nodes of this version can no longer read what older ones wrote or sent; bump
//! the version and keep a decoder for the old one instead of editing the expected bytes.

#![allow(clippy::unwrap_used)]

use hex::encode as hex;
use kith_proto::codec;
use kith_proto::contact::ContactCard;
use kith_proto::wire::{
    Body, DeliveryResult, Envelope, ReceiptKind, Refusal, Request, Response, Sealed,
};

#[test]
fn request_frame_bytes() {
    let req = Request::Deliver {
        envelopes: vec![Envelope {
            to_device: kith_types::CurveKey([0xab; 32]),
            kind: 1,
            ciphertext: vec![1, 2, 3],
        }],
    };
    let bytes = req.encode().unwrap();
    assert_eq!(
        hex(&bytes),
        "010101".to_string() // version 1, variant Deliver, 1 envelope
            + "20" + &"ab".repeat(32) /* to_device as a 32-byte string */
            + "01" /* kind */ + "03010203" /* ciphertext */
    );
    assert_eq!(Request::decode(&bytes).unwrap(), req);
    assert_eq!(hex(Request::ClaimPrekey.encode().unwrap()), "0100");
}

#[test]
fn response_frame_bytes() {
    let resp = Response::Delivered {
        results: vec![DeliveryResult::Stored, DeliveryResult::Duplicate],
    };
    assert_eq!(hex(resp.encode().unwrap()), "0101020001");
}

#[test]
fn mailbox_push_and_quota_bytes() {
    // SetPush is Request variant 3; Some is 01, then the string with its varint length.
    let req = Request::SetPush {
        endpoint: Some("https://a.b/c".into()),
    };
    let bytes = req.encode().unwrap();
    assert_eq!(hex(&bytes), "0103010d".to_string() + &hex(b"https://a.b/c"));
    assert_eq!(Request::decode(&bytes).unwrap(), req);
    assert_eq!(
        hex(Request::SetPush { endpoint: None }.encode().unwrap()),
        "010300"
    );
    // Registration is Response variant 4, PushSet 5; Refused(EndpointRefused) is 02 04.
    let resp = Response::Registration {
        max_messages: 10,
        max_bytes: 300,
        used_messages: 1,
        used_bytes: 7,
    };
    let bytes = resp.encode().unwrap();
    assert_eq!(hex(&bytes), "01040afb2c010107");
    assert_eq!(Response::decode(&bytes).unwrap(), resp);
    assert_eq!(hex(Response::PushSet.encode().unwrap()), "0105");
    assert_eq!(
        hex(Response::Refused(Refusal::EndpointRefused)
            .encode()
            .unwrap()),
        "010204"
    );
    // The older answer still decodes.
    assert_eq!(
        Response::decode(&[1, 3, 10]).unwrap(),
        Response::Registered { quota: 10 }
    );
}

#[test]
fn mailbox_watch_bytes() {
    // Watch is Request variant 5, TopicSync 6; Watching is Response variant 7. (Topics are
    // strings with a varint length; the mailbox, not the decoder, checks their form.)
    let req = Request::Watch {
        topics: vec!["ab".into()],
    };
    let bytes = req.encode().unwrap();
    assert_eq!(hex(&bytes), "0105010261".to_string() + "62");
    assert_eq!(Request::decode(&bytes).unwrap(), req);
    let req = Request::TopicSync {
        topic: "t".into(),
        have: vec![],
    };
    let bytes = req.encode().unwrap();
    assert_eq!(hex(&bytes), "0106017400");
    assert_eq!(Request::decode(&bytes).unwrap(), req);
    let resp = Response::Watching { topics: 3 };
    assert_eq!(hex(resp.encode().unwrap()), "010703");
}

#[test]
fn sealed_payload_bytes() {
    let s = Sealed {
        version: 1,
        sender: None,
        bodies: vec![
            Body::Text {
                id: 5,
                sent_at_ms: 7,
                text: "hi".into(),
            },
            Body::Receipt {
                kind: ReceiptKind::Read,
                ids: vec![5],
                at_ms: 9,
            },
        ],
    };
    let bytes = s.encode().unwrap();
    assert_eq!(hex(&bytes), "0100020005070268690101010509");
    assert_eq!(Sealed::decode(&bytes).unwrap(), s);
}

#[test]
fn contact_code_text() {
    let card = ContactCard {
        version: 1,
        identity: kith_types::IdentityKey([7; 32]),
        peer_id: vec![0, 1, 2],
        addrs: vec![vec![4, 127, 0, 0, 1]],
    };
    let code = card.to_code().unwrap();
    assert_eq!(code, EXPECTED_CODE);
    assert_eq!(ContactCard::from_code(EXPECTED_CODE).unwrap(), card);
    // The codec's integer encoding (varint) is part of the contract too.
    assert_eq!(hex(codec::encode(&300u64).unwrap()), "fb2c01");
}

const EXPECTED_CODE: &str =
    "kith1BZoZFKyzwqxHPbtvYgRTzzXCuaM3pKFtopgq47UWzNpxuixQiEMKy4ppGgfpCBE7Sk";

/// Members find each other's frames by topic name, so nodes of every version must derive the
/// same name from a group id: `kith/g/` and the first 16 bytes of the hash in lowercase hex.
#[test]
fn group_topic_name() {
    assert_eq!(
        kith_proto::groupwire::group_topic(&kith_types::GroupId([1; 16])),
        "kith/g/db1387373cb83040bd4c615eb21fde64"
    );
}

#[test]
fn mailbox_registration_proof_bytes() {
    // RegisterProven is Request variant 7; the binding a device encrypts to its mailbox is
    // the tag, both peer ids length-prefixed (u32 big-endian), and the key.
    let req = Request::RegisterProven {
        cert: kith_proto::record::DeviceCert {
            identity: kith_types::IdentityKey([0; 32]),
            peer_id: vec![1],
            curve25519: kith_types::CurveKey([2; 32]),
            ed25519: [3; 32],
            created_ms: 0,
            signature: vec![],
        },
        token: None,
        proof: vec![9],
    };
    assert!(hex(req.encode().unwrap()).starts_with("0107"));
    let b = kith_proto::wire::registration_binding(
        &[0xaa],
        &[0xbb, 0xcc],
        &kith_types::CurveKey([7; 32]),
    );
    assert_eq!(
        hex(&b),
        hex(b"kith-mailbox-register-v1") + "00000001aa" + "00000002bbcc" + &"07".repeat(32)
    );
}
