//! The checks behind every fuzz target, as plain functions: each takes arbitrary bytes, runs
//! a decoder that reads peer bytes, and asserts what must hold. A panic here is a bug
//! (either a decoder that panics, or one whose accepted values do not survive a round trip).
//!
//! The targets in `fuzz_targets/` are one line each; `tests/corpus.rs` replays every seed and
//! every kept corpus file through the same functions without libFuzzer, and
//! [`seeds`] builds the seed corpora from real encodings.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use kith_proto::codec::{self, DecodeError};
use kith_proto::contact::ContactCard;
use kith_proto::group::GroupOp;
use kith_proto::groupwire::{GroupFrame, GroupPlain};
use kith_proto::record::{DeviceCert, MAX_USER_RECORD, PrekeyBundle, UserRecord};
use kith_proto::signal::{self, Signal, SignalAnswer};
use kith_proto::wire::{Body, Request, Response, Sealed};

pub mod media_frames;
pub mod seeds;

pub use media_frames::media;

/// The clock the record checks use (the seeds are valid then).
pub const NOW_MS: u64 = seeds::NOW_MS;

/// Re-encodes a value that decoded, decodes it again and asserts it is the same value and
/// encodes to the same bytes; also formats it with `Debug` (hand-written for several types)
/// to make sure that cannot panic. The re-encoding is not compared with the input: bincode
/// accepts an integer written in a longer varint form than needed, so one value has several
/// encodings (docs/fuzzing.md says why that is harmless here).
fn stable<T: PartialEq + std::fmt::Debug>(
    value: &T,
    encode: impl Fn(&T) -> Result<Vec<u8>, kith_proto::EncodeError>,
    decode: impl Fn(&[u8]) -> Result<T, DecodeError>,
) -> Vec<u8> {
    let _ = format!("{value:?}");
    let bytes = encode(value).expect("a decoded value encodes");
    let again = decode(&bytes).expect("a re-encoded value decodes");
    assert_eq!(&again, value, "round trip changed the value");
    let bytes2 = encode(&again).expect("a decoded value encodes");
    assert_eq!(bytes, bytes2, "the encoding is not stable");
    bytes
}

#[cfg(feature = "net")]
pub mod net;

/// `/kith/msg/1` request frame bodies (what a peer or a mailbox client sends).
pub fn wire_request(data: &[u8]) {
    if let Ok(req) = Request::decode(data) {
        let _ = stable(&req, Request::encode, Request::decode);
    }
}

/// `/kith/msg/1` response frame bodies (what a peer or a mailbox answers).
pub fn wire_response(data: &[u8]) {
    if let Ok(resp) = Response::decode(data) {
        if let Response::Prekey(bundle) = &resp {
            // What a sender does next with a claimed pre-key.
            let _ = bundle.validate();
        }
        let _ = stable(&resp, Response::encode, Response::decode);
    }
}

/// The sealed plaintext inside an Olm message, and what the receiver checks next.
pub fn sealed(data: &[u8]) {
    if let Ok(s) = Sealed::decode(data) {
        // The signature checks of the certificates and ops inside are fuzzed by the
        // `user_record` and `group_op` targets; here they would only slow every run down.
        for body in &s.bodies {
            if let Body::GroupUpdate { ops, .. } = body {
                for op in ops {
                    let _ = op.hash();
                }
            }
        }
        let _ = stable(&s, Sealed::encode, Sealed::decode);
    }
}

/// A user record fetched from the DHT; also device certificates and pre-key bundles alone.
pub fn user_record(data: &[u8]) {
    let _ = UserRecord::decode_valid(data, NOW_MS);
    if let Ok(rec) = codec::decode::<UserRecord>(data, MAX_USER_RECORD) {
        // At its own issue time, so the signature checks are reached whatever the dates.
        let valid = rec.validate(rec.issued_ms.saturating_add(1)).is_ok();
        let bytes = stable(&rec, codec::encode, |b| codec::decode(b, MAX_USER_RECORD));
        if valid {
            let again = UserRecord::decode_valid(&bytes, rec.issued_ms.saturating_add(1));
            assert_eq!(
                again.as_ref(),
                Ok(&rec),
                "a valid record stopped being valid"
            );
        }
    }
    if let Ok(cert) = codec::decode::<DeviceCert>(data, 4096) {
        let _ = cert.validate();
        stable(&cert, codec::encode, |b| codec::decode(b, 4096));
    }
    if let Ok(bundle) = codec::decode::<PrekeyBundle>(data, 4096) {
        let _ = bundle.validate();
        stable(&bundle, codec::encode, |b| codec::decode(b, 4096));
    }
}

/// Contact codes: arbitrary text, and (past the checksum) arbitrary card bytes.
pub fn contact_code(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let code = if mode & 1 == 0 {
        String::from_utf8_lossy(rest).into_owned()
    } else {
        seeds::code_of(rest)
    };
    if let Ok(card) = ContactCard::from_code(&code) {
        let text = card.to_code().expect("a decoded card encodes");
        assert_eq!(
            ContactCard::from_code(&text).as_ref(),
            Ok(&card),
            "round trip changed the card"
        );
    }
}

/// Group ops (from a group update, a sync answer, or the store), checked alone.
pub fn group_op(data: &[u8]) {
    let decoded = GroupOp::decode(data);
    if let Ok(op) = codec::decode::<GroupOp>(data, kith_proto::group::MAX_OP) {
        let _ = op.hash();
        let _ = GroupOp::group_id_of(&op);
        let bytes = stable(&op, GroupOp::encode, |b| {
            codec::decode(b, kith_proto::group::MAX_OP)
        });
        if let Ok(checked) = decoded {
            assert_eq!(checked, op);
            assert_eq!(
                GroupOp::decode(&bytes),
                Ok(op),
                "a valid op stopped being valid"
            );
        }
    } else {
        assert!(decoded.is_err());
    }
}

/// Group frames (gossipsub, sync answers, mailbox topic sync) and the plaintext inside.
pub fn group_frame(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        if let Ok(f) = GroupFrame::decode(rest) {
            let _ = stable(&f, GroupFrame::encode, GroupFrame::decode);
        }
        return;
    }
    // The plaintext, checked against a frame whose header it names (so the later checks
    // are reached too).
    let Ok(p) = codec::decode::<GroupPlain>(rest, kith_proto::limits::MAX_CIPHERTEXT) else {
        assert!(GroupPlain::decode(rest, &Default::default(), &seeds::frame()).is_err());
        return;
    };
    let frame = GroupFrame {
        seq: p.seq,
        lamport: p.lamport,
        ..seeds::frame()
    };
    if let Ok(checked) = GroupPlain::decode(rest, &p.group, &frame) {
        assert_eq!(checked, p);
        let _ = stable(&p, GroupPlain::encode, |b| {
            GroupPlain::decode(b, &p.group, &frame)
        });
    }
}

/// `/kith/signal/1` frame bodies, both ways.
pub fn signal(data: &[u8]) {
    if let Ok(s) = Signal::decode(data) {
        let _ = stable(&s, Signal::encode, Signal::decode);
    }
    if let Ok(a) = SignalAnswer::decode(data) {
        let _ = stable(&a, SignalAnswer::encode, SignalAnswer::decode);
    }
}

/// Profile photos from a peer (the image header checks).
pub fn avatar(data: &[u8]) {
    let _ = signal::check_avatar(data);
}

/// Whether the decoder of `target` takes `data` as a whole (the seeds must all be taken).
pub fn accepts(target: &str, data: &[u8]) -> bool {
    match target {
        "wire_request" => Request::decode(data).is_ok(),
        "wire_response" => Response::decode(data).is_ok(),
        "sealed" => Sealed::decode(data).is_ok(),
        "user_record" => {
            UserRecord::decode_valid(data, NOW_MS).is_ok()
                || codec::decode::<DeviceCert>(data, 4096).is_ok_and(|c| c.validate().is_ok())
                || codec::decode::<PrekeyBundle>(data, 4096).is_ok_and(|b| b.validate().is_ok())
        }
        "contact_code" => data.split_first().is_some_and(|(&mode, rest)| {
            let code = if mode & 1 == 0 {
                String::from_utf8_lossy(rest).into_owned()
            } else {
                seeds::code_of(rest)
            };
            ContactCard::from_code(&code).is_ok()
        }),
        "group_op" => GroupOp::decode(data).is_ok(),
        "group_frame" => data.split_first().is_some_and(|(&mode, rest)| {
            if mode & 1 == 0 {
                GroupFrame::decode(rest).is_ok()
            } else {
                codec::decode::<GroupPlain>(rest, kith_proto::limits::MAX_CIPHERTEXT).is_ok_and(
                    |p| {
                        let frame = GroupFrame {
                            seq: p.seq,
                            lamport: p.lamport,
                            ..seeds::frame()
                        };
                        GroupPlain::decode(rest, &p.group, &frame).is_ok()
                    },
                )
            }
        }),
        "signal" => Signal::decode(data).is_ok() || SignalAnswer::decode(data).is_ok(),
        "avatar" => signal::check_avatar(data).is_ok(),
        "media" => media_frames::accepts(data),
        "net_frame" => data.split_first().is_some_and(|(&mode, rest)| {
            let Some((len, body)) = rest.split_first_chunk::<4>() else {
                return false;
            };
            u32::from_be_bytes(*len) as usize == body.len()
                && match mode % 4 {
                    0 => Request::decode(body).is_ok(),
                    1 => Response::decode(body).is_ok(),
                    2 => Signal::decode(body).is_ok(),
                    _ => SignalAnswer::decode(body).is_ok(),
                }
        }),
        _ => false,
    }
}
