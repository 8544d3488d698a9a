//! Group ops, group frames and `Body::GroupWant` encode exactly as they did when their
//! identity keys, op hashes and sender devices were `serde_bytes` arrays (the old
//! `kith_proto::group::Key`): bytes made with that layout decode into the typed structs and
//! encode back to the same bytes, and the other way round.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use ed25519_dalek::{Signer, SigningKey};
use kith_proto::codec;
use kith_proto::group::{GroupOp, OpKind};
use kith_proto::groupwire::{GroupFrame, SenderMark};
use kith_proto::wire::Body;
use kith_types::{CurveKey, GroupId, IdentityKey, OpHash};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The removed `kith_proto::group::Key`: 32 bytes as a serde byte string.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct OldKey(#[serde(with = "serde_bytes")] [u8; 32]);

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum OldKind {
    Create { name: String, members: Vec<OldKey> },
    Add(OldKey),
    Remove(OldKey),
    Promote(OldKey),
    Demote(OldKey),
    Rename(String),
    Describe(String),
    Leave,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct OldOp {
    #[serde(with = "serde_bytes")]
    group: [u8; 16],
    parents: Vec<OldKey>,
    author: OldKey,
    at_ms: u64,
    kind: OldKind,
    #[serde(with = "serde_bytes")]
    signature: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct OldFrame {
    version: u8,
    sender: OldKey,
    session: String,
    seq: u64,
    lamport: u64,
    #[serde(with = "serde_bytes")]
    ciphertext: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct OldMark {
    sender: OldKey,
    seq: u64,
}

/// `Body` up to `GroupWant` (variant 5): the others stand in as unit variants, which serde
/// numbers the same.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum OldBody {
    Text,
    Receipt,
    GroupUpdate,
    GroupKey,
    GroupReceipt,
    GroupWant {
        #[serde(with = "serde_bytes")]
        group: [u8; 16],
        ops: Vec<OldKey>,
    },
}

fn old_bytes<T: Serialize>(v: &T) -> Vec<u8> {
    codec::encode(v).unwrap()
}

/// The typed kind with the same content.
fn typed_kind(kind: &OldKind) -> OpKind {
    match kind {
        OldKind::Create { name, members } => OpKind::Create {
            name: name.clone(),
            members: members.iter().map(|m| IdentityKey(m.0)).collect(),
        },
        OldKind::Add(m) => OpKind::Add(IdentityKey(m.0)),
        OldKind::Remove(m) => OpKind::Remove(IdentityKey(m.0)),
        OldKind::Promote(m) => OpKind::Promote(IdentityKey(m.0)),
        OldKind::Demote(m) => OpKind::Demote(IdentityKey(m.0)),
        OldKind::Rename(n) => OpKind::Rename(n.clone()),
        OldKind::Describe(d) => OpKind::Describe(d.clone()),
        OldKind::Leave => OpKind::Leave,
    }
}

/// An op in the old layout, signed by `key` (the signature is over the signing bytes, which
/// the typed op computes; that it verifies after decoding shows they are unchanged too).
fn old_signed(key: &SigningKey, group: [u8; 16], parents: Vec<OldKey>, kind: OldKind) -> OldOp {
    let author = OldKey(key.verifying_key().to_bytes());
    let typed = GroupOp::new(
        GroupId(group),
        parents.iter().map(|p| OpHash(p.0)).collect(),
        IdentityKey(author.0),
        77,
        typed_kind(&kind),
        |m| key.sign(m).to_bytes().to_vec(),
    )
    .unwrap();
    OldOp {
        group,
        parents,
        author,
        at_ms: 77,
        kind,
        signature: typed.signature,
    }
}

fn assert_same_bytes(old: &OldOp) -> GroupOp {
    let bytes = old_bytes(old);
    // Decodes (the signature verifies) into the typed op, which encodes to the same bytes.
    let op = GroupOp::decode(&bytes).unwrap();
    assert_eq!(op.encode().unwrap(), bytes);
    // Its hash is the SHA-256 of those bytes, as before.
    let digest: [u8; 32] = Sha256::digest(&bytes).into();
    assert_eq!(op.hash().unwrap(), OpHash(digest));
    // And the typed encoding decodes in the old layout to the same op.
    let back: OldOp = codec::decode(&op.encode().unwrap(), usize::MAX).unwrap();
    assert_eq!(&back, old);
    op
}

#[test]
fn group_ops_in_the_old_layout_decode_and_re_encode_to_the_same_bytes() {
    let key = SigningKey::from_bytes(&[9; 32]);
    let parents = vec![OldKey([1; 32]), OldKey([2; 32])];
    let kinds = [
        OldKind::Add(OldKey([5; 32])),
        OldKind::Remove(OldKey([6; 32])),
        OldKind::Promote(OldKey([7; 32])),
        OldKind::Demote(OldKey([8; 32])),
        OldKind::Rename("n".into()),
        OldKind::Describe("d".into()),
        OldKind::Leave,
    ];
    for kind in kinds {
        let op = assert_same_bytes(&old_signed(&key, [4; 16], parents.clone(), kind));
        assert_eq!(op.author, IdentityKey(key.verifying_key().to_bytes()));
        assert_eq!(op.parents, vec![OpHash([1; 32]), OpHash([2; 32])]);
    }
    // A create (no parents, no group) with members.
    let create = old_signed(
        &key,
        [0; 16],
        Vec::new(),
        OldKind::Create {
            name: "Kith".into(),
            members: vec![OldKey([3; 32]), OldKey([4; 32])],
        },
    );
    let op = assert_same_bytes(&create);
    assert!(matches!(
        &op.kind,
        OpKind::Create { members, .. } if members == &[IdentityKey([3; 32]), IdentityKey([4; 32])]
    ));
}
#[test]
fn group_frames_and_marks_in_the_old_layout_re_encode_to_the_same_bytes() {
    let old = OldFrame {
        version: 1,
        sender: OldKey([0xc5; 32]),
        session: "abcDEF012+/".into(),
        seq: 3,
        lamport: 8,
        ciphertext: vec![0xee; 40],
    };
    let bytes = old_bytes(&old);
    let frame = GroupFrame::decode(&bytes).unwrap();
    assert_eq!(frame.sender, CurveKey([0xc5; 32]));
    assert_eq!(frame.encode().unwrap(), bytes);

    let mark = OldMark {
        sender: OldKey([0x11; 32]),
        seq: 12,
    };
    let bytes = old_bytes(&mark);
    let typed: SenderMark = codec::decode(&bytes, usize::MAX).unwrap();
    assert_eq!(typed.sender, CurveKey([0x11; 32]));
    assert_eq!(codec::encode(&typed).unwrap(), bytes);
}

#[test]
fn group_wants_in_the_old_layout_re_encode_to_the_same_bytes() {
    let old = OldBody::GroupWant {
        group: [7; 16],
        ops: vec![OldKey([1; 32]), OldKey([0xfe; 32])],
    };
    let bytes = old_bytes(&old);
    let body: Body = codec::decode(&bytes, usize::MAX).unwrap();
    match &body {
        Body::GroupWant { group, ops } => {
            assert_eq!(*group, GroupId([7; 16]));
            assert_eq!(ops, &[OpHash([1; 32]), OpHash([0xfe; 32])]);
        }
        other => panic!("decoded as {other:?}"),
    }
    assert_eq!(codec::encode(&body).unwrap(), bytes);
    let back: OldBody = codec::decode(&codec::encode(&body).unwrap(), usize::MAX).unwrap();
    assert_eq!(back, old);
}
