//! Inbound envelopes: the rules by which a device answers a batch of envelopes a peer
//! delivered to it, binds the devices that write to it for the first time, and turns what
//! it opened into messages, receipts and group work. A core with no I/O: it reads no clock,
//! decrypts nothing and touches neither the store nor the network. The engine actor
//! (`actor/inbound.rs`) reads the store, runs Olm, passes the results in as plain values and
//! carries out the decisions ([`Verdict`]: go on, refuse, or refuse and penalise the peer).
//!
//! Data flow for one batch of envelopes from a peer:
//!
//! 1. Each envelope is routed by [`route`]: one whose hash was seen before is answered
//!    `Duplicate`; one addressed to another device's Curve25519 key goes to the mailbox core
//!    as a deposit (which answers `Rejected(WrongDevice)` and penalises the peer when this
//!    node keeps nothing for that key); the rest are opened.
//! 2. Opening (in the actor): a pre-key message is decrypted with the sessions of the device
//!    that owns the key it names, or with fresh ones for a new device; a normal message with
//!    the connection's device first, then with the other devices we have sessions with. No
//!    session opens it → `Rejected(Undecryptable)` ([`not_opened`]), without a penalty: the
//!    sender re-seals it.
//! 3. The plaintext is decoded ([`unseal`]): the sealed format checks its own limits (1 to
//!    `MAX_BODIES` bodies, texts up to `MAX_TEXT` bytes, 1 to `MAX_RECEIPT_IDS` ids per
//!    receipt, …). What does not decode is `Rejected(Malformed)` and penalised ([`BAD_SEAL`]).
//! 4. A device not known yet is bound to a person:
//!    - [`check_cert`]: the sealed message must carry the sender's certificate (without one
//!      → `Malformed`); the certificate must name the Curve25519 key the pre-key message
//!      came from and verify under its identity (otherwise `Malformed`, penalised:
//!      [`BAD_CERT`]).
//!    - [`bind`]: a device the store knows under another identity is refused
//!      (`Undecryptable`) with an identity warning to the user; a person who is neither a
//!      contact nor in one of our groups becomes a provisional contact (a *stranger*), but
//!      only while fewer than [`MAX_STRANGERS`] are kept ([`counts_strangers`] tells when the
//!      actor must count them); past that the envelope is `Undecryptable`.
//! 5. The bodies are planned by [`deliver`]: a blocked sender's envelope is opened but
//!    dropped, and answered `Accepted` as a mailbox would, so the sender stops retrying and
//!    never sees ✓✓ ([`Opened::Dropped`]). Otherwise texts are stored, receipts raise the
//!    status of our messages (read receipts only while ours are on), and group bodies go to
//!    the group rules; bodies of kinds this version does not know are skipped. The envelope
//!    is answered `Stored`.
//! 6. [`Batch`] gathers the answers in request order and tells which hashes to remember
//!    (a `Stored` one, and a deposit the mailbox `Accepted`). Texts a mailbox relayed (the
//!    sending device is not the connection's peer) are owed a *delivered* receipt: the batch
//!    collects them per conversation and [`Batch::finish`] returns them as receipt bodies of
//!    at most `MAX_RECEIPT_IDS` ids each.

use kith_proto::DecodeError;
use kith_proto::group::GroupOp;
use kith_proto::record::DeviceCert;
use kith_proto::wire::{Body, DeliveryResult, MAX_RECEIPT_IDS, ReceiptKind, RejectReason, Sealed};
use kith_store::Status;
use kith_types::{CurveKey, GroupId, IdentityKey, OpHash};

pub use crate::cores::mailbox::Verdict;

/// The stranger cap is the contacts core's rule.
pub use crate::cores::contacts::MAX_STRANGERS;

/// Why a peer is penalised.
pub const BAD_SEAL: &str = "malformed sealed message";
/// Why a peer is penalised.
pub const BAD_CERT: &str = "sender certificate does not verify";

/// Where an envelope of a batch goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Seen before: answered `Duplicate`, nothing else done.
    Duplicate,
    /// For another device: a deposit for the mailbox core.
    Deposit,
    /// For this device: open it.
    Open,
}

/// Where an envelope goes: `seen` tells whether its hash was seen before, `to` is the
/// Curve25519 key it is addressed to, `mine` this device's.
pub fn route(seen: bool, to: &CurveKey, mine: &CurveKey) -> Route {
    if seen {
        Route::Duplicate
    } else if to != mine {
        Route::Deposit
    } else {
        Route::Open
    }
}

/// The answer to an envelope no session of ours opens: the sender re-seals it, so no penalty.
pub fn not_opened() -> DeliveryResult {
    DeliveryResult::Rejected(RejectReason::Undecryptable)
}

/// Decodes a decrypted plaintext; what does not decode (or breaks the sealed format's
/// limits) is malformed and penalised. The decoding error comes back for the log.
pub fn unseal(plaintext: &[u8]) -> (Verdict<RejectReason, Sealed>, Option<DecodeError>) {
    match Sealed::decode(plaintext) {
        Ok(s) => (Verdict::Accept(s), None),
        Err(e) => (
            Verdict::Penalize(RejectReason::Malformed, BAD_SEAL),
            Some(e),
        ),
    }
}

/// Checks the certificate a new device sent with its first message, which came from the
/// Curve25519 key `curve`: it must be there, name that key, and verify.
pub fn check_cert<'a>(
    cert: Option<&'a DeviceCert>,
    curve: &CurveKey,
) -> Verdict<RejectReason, &'a DeviceCert> {
    let Some(cert) = cert else {
        return Verdict::Refuse(RejectReason::Malformed);
    };
    if cert.curve25519 != *curve || cert.validate().is_err() {
        return Verdict::Penalize(RejectReason::Malformed, BAD_CERT);
    }
    Verdict::Accept(cert)
}

/// What the store knows about a new device's person, for [`bind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewDevice {
    /// The identity the certificate names.
    pub identity: IdentityKey,
    /// The identity the store has this device under, if it knows the device.
    pub known_as: Option<IdentityKey>,
    /// The person is a contact (added by the user or a stranger kept before).
    pub contact: bool,
    /// The person is a member of one of our groups.
    pub in_group: bool,
    /// Provisional contacts kept now; read only when [`counts_strangers`] says so (else 0).
    pub strangers: usize,
}

/// Whether the number of strangers matters for a new device's person: it does for one who
/// is neither a contact nor in one of our groups.
pub fn counts_strangers(contact: bool, in_group: bool) -> bool {
    !contact && !in_group
}

/// What becomes of a new device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binding {
    /// Bind it to the certificate's identity; a `stranger` also becomes a provisional
    /// contact (and the user is told of the new contact).
    Bind {
        /// The person is not a contact yet.
        stranger: bool,
    },
    /// The store knows the device under another identity: refuse it and warn the user.
    IdentityChanged,
    /// A new stranger, with [`MAX_STRANGERS`] kept already: refuse it.
    TooManyStrangers,
}

impl Binding {
    /// The answer to the envelope when the device is not bound.
    pub fn refusal(&self) -> Option<RejectReason> {
        match self {
            Binding::Bind { .. } => None,
            Binding::IdentityChanged | Binding::TooManyStrangers => {
                Some(RejectReason::Undecryptable)
            }
        }
    }
}

/// Decides whether a new device (its certificate checked by [`check_cert`]) is bound.
pub fn bind(d: NewDevice) -> Binding {
    if d.known_as.is_some_and(|id| id != d.identity) {
        return Binding::IdentityChanged;
    }
    if !d.contact && !crate::cores::contacts::may_add_stranger(d.strangers, d.in_group) {
        return Binding::TooManyStrangers;
    }
    Binding::Bind {
        stranger: !d.contact,
    }
}

/// Who an opened envelope is from, as the actor found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sender {
    /// The person (the conversation).
    pub identity: IdentityKey,
    /// The user blocked this person.
    pub blocked: bool,
    /// A mailbox relayed the envelope (the device is not the connection's peer).
    pub relayed: bool,
}

/// One thing to do for an opened envelope, in the order the sender wrote the bodies.
#[derive(Debug)]
pub enum Step {
    /// Call signalling (offer, answer, candidates, hang-up, decline): for the call core.
    Call(Body),
    /// Store a text (and tell the user if it is new).
    Text {
        /// The message id.
        id: u128,
        /// When the sender wrote it.
        sent_at_ms: u64,
        /// The text.
        text: String,
    },
    /// Store a file message (and fetch the file when auto-download says so).
    Media {
        /// The message id.
        id: u128,
        /// When the sender wrote it.
        sent_at_ms: u64,
        /// The file.
        manifest: Box<kith_proto::media::Manifest>,
        /// The caption.
        caption: String,
    },
    /// Raise our messages' status to `status` (and tell the user of each raised).
    Status {
        /// Our messages' ids.
        ids: Vec<u128>,
        /// Delivered or read.
        status: Status,
    },
    /// Group membership ops and member certificates.
    GroupUpdate {
        /// The signed ops.
        ops: Vec<GroupOp>,
        /// Member devices' certificates.
        devices: Vec<DeviceCert>,
    },
    /// The sender device's group session key.
    GroupKey {
        /// The group.
        group: GroupId,
        /// The Megolm session key (secret).
        key: Vec<u8>,
        /// The first frame it opens.
        seq: u64,
    },
    /// A member asks for ops it lacks.
    GroupWant {
        /// The group.
        group: GroupId,
        /// The ops' hashes.
        ops: Vec<OpHash>,
    },
    /// Receipts for our group messages.
    GroupReceipt {
        /// The group.
        group: GroupId,
        /// Delivered or read.
        kind: ReceiptKind,
        /// Our messages' ids.
        ids: Vec<u128>,
    },
    /// A message action (a reply or forward to store; a reaction, edit, delete or timer
    /// for `cores::chat` to judge).
    Chat(kith_proto::chat::ChatAction),
}

/// What an opened envelope leads to.
#[derive(Debug)]
pub enum Opened {
    /// The sender is blocked: nothing is kept or shown.
    Dropped,
    /// Carry these out, in order.
    Deliver(Vec<Step>),
}

impl Opened {
    /// The answer to the envelope once the steps are carried out.
    pub fn answer(&self) -> DeliveryResult {
        match self {
            // As a mailbox answers ("accepted, not delivered"): the sender stops retrying,
            // shows ✓ forever, and a mailbox that relayed it lets go of it.
            Opened::Dropped => DeliveryResult::Accepted,
            Opened::Deliver(_) => DeliveryResult::Stored,
        }
    }
}

/// Plans what an opened envelope's bodies lead to; `read_receipts` is our privacy setting
/// (with it off, read receipts are not shown either). Relayed texts are noted in `batch`
/// for a delivered receipt.
pub fn deliver(bodies: Vec<Body>, from: Sender, read_receipts: bool, batch: &mut Batch) -> Opened {
    if from.blocked {
        return Opened::Dropped;
    }
    let mut steps = Vec::with_capacity(bodies.len());
    for body in bodies {
        let step = match body {
            Body::Text {
                id,
                sent_at_ms,
                text,
            } => {
                if from.relayed {
                    batch.delivered(from.identity, id);
                }
                Step::Text {
                    id,
                    sent_at_ms,
                    text,
                }
            }
            Body::Media {
                id,
                sent_at_ms,
                manifest,
                caption,
            } => {
                if from.relayed {
                    batch.delivered(from.identity, id);
                }
                Step::Media {
                    id,
                    sent_at_ms,
                    manifest: Box::new(manifest),
                    caption,
                }
            }
            Body::Receipt { kind, ids, .. } => {
                let status = match kind {
                    ReceiptKind::Delivered => Status::Delivered,
                    ReceiptKind::Read if !read_receipts => continue,
                    ReceiptKind::Read => Status::Read,
                };
                Step::Status { ids, status }
            }
            Body::GroupUpdate { ops, devices } => Step::GroupUpdate { ops, devices },
            Body::GroupKey { group, key, seq } => Step::GroupKey { group, key, seq },
            Body::GroupWant { group, ops } => Step::GroupWant { group, ops },
            Body::GroupReceipt {
                group, kind, ids, ..
            } => Step::GroupReceipt { group, kind, ids },
            b @ (Body::CallOffer { .. }
            | Body::CallAnswer { .. }
            | Body::CallCandidates { .. }
            | Body::CallHangup { .. }
            | Body::CallDecline { .. }
            | Body::GroupCall(_)) => Step::Call(b),
            Body::Chat(action) => {
                if let kith_proto::chat::ChatAction::Message { id, .. } = &action
                    && from.relayed
                {
                    batch.delivered(from.identity, *id);
                }
                Step::Chat(action)
            }
            _ => continue,
        };
        steps.push(step);
    }
    Opened::Deliver(steps)
}

/// The answers to one batch of envelopes, in request order, and the delivered receipts
/// owed for texts a mailbox relayed.
#[derive(Debug, Default)]
pub struct Batch {
    results: Vec<DeliveryResult>,
    kept: usize,
    /// The connection's peer delivered a message of its own as a device of someone the user
    /// knows.
    known_sender: bool,
    /// Per conversation, in the order first seen: ids of relayed texts.
    receipts: Vec<(IdentityKey, Vec<u128>)>,
}

/// A finished batch.
#[derive(Debug)]
pub struct Answered {
    /// One answer per envelope, in request order.
    pub results: Vec<DeliveryResult>,
    /// Envelopes kept as a mailbox for other devices.
    pub kept: usize,
    /// Delivered receipts to queue: the conversation and the body.
    pub receipts: Vec<(IdentityKey, Body)>,
    /// The connection's peer is a device of someone the user knows (it delivered a message
    /// of its own and is a contact the user added or a fellow group member): the network
    /// layer gives it a known peer's request rate.
    pub known_sender: bool,
}

impl Batch {
    /// A batch of `len` envelopes.
    pub fn new(len: usize) -> Self {
        Self {
            results: Vec::with_capacity(len),
            ..Self::default()
        }
    }

    /// Records the answer to the next envelope, which went by `route`; returns whether its
    /// hash is remembered (a `Stored` envelope, or a deposit the mailbox `Accepted`), so a
    /// retry is answered `Duplicate`.
    pub fn answer(&mut self, route: Route, result: DeliveryResult) -> bool {
        self.results.push(result);
        match route {
            Route::Duplicate => false,
            Route::Deposit if result == DeliveryResult::Accepted => {
                self.kept += 1;
                true
            }
            Route::Deposit => false,
            Route::Open => result == DeliveryResult::Stored,
        }
    }

    /// The connection's peer delivered a message of its own as a device of someone the user
    /// knows (see [`Answered::known_sender`]).
    pub fn known_sender(&mut self) {
        self.known_sender = true;
    }

    /// A text `id` in conversation `conv` came through a mailbox: its sender is owed a
    /// delivered receipt.
    pub fn delivered(&mut self, conv: IdentityKey, id: u128) {
        match self.receipts.iter_mut().find(|(c, _)| *c == conv) {
            Some((_, ids)) => ids.push(id),
            None => self.receipts.push((conv, vec![id])),
        }
    }

    /// The answers, and the receipts (stamped `at_ms`) in chunks of `MAX_RECEIPT_IDS` ids.
    pub fn finish(self, at_ms: u64) -> Answered {
        let mut receipts = Vec::new();
        for (conv, ids) in self.receipts {
            for chunk in ids.chunks(MAX_RECEIPT_IDS) {
                let body = Body::Receipt {
                    kind: ReceiptKind::Delivered,
                    ids: chunk.to_vec(),
                    at_ms,
                };
                receipts.push((conv, body));
            }
        }
        Answered {
            results: self.results,
            kept: self.kept,
            receipts,
            known_sender: self.known_sender,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kith_crypto::Identity;

    const ALICE: IdentityKey = IdentityKey([2; 32]);

    /// A certificate signed by the identity made from `secret`, for the key `curve`.
    fn signed_cert(secret: u8, curve: CurveKey) -> DeviceCert {
        let id = Identity::from_secret(&[secret; 32]);
        let mut cert = DeviceCert {
            identity: id.public(),
            peer_id: vec![9; 38],
            curve25519: curve,
            ed25519: [4; 32],
            created_ms: 7,
            signature: Vec::new(),
        };
        let Ok(bytes) = cert.signing_bytes() else {
            unreachable!("a certificate encodes")
        };
        cert.signature = id.sign(&bytes);
        cert
    }

    fn text(id: u128) -> Body {
        Body::Text {
            id,
            sent_at_ms: 5,
            text: "hi".into(),
        }
    }

    fn receipt(kind: ReceiptKind, ids: Vec<u128>) -> Body {
        Body::Receipt {
            kind,
            ids,
            at_ms: 6,
        }
    }

    fn from(relayed: bool) -> Sender {
        Sender {
            identity: ALICE,
            blocked: false,
            relayed,
        }
    }

    fn steps(o: Opened) -> Vec<Step> {
        match o {
            Opened::Deliver(s) => s,
            Opened::Dropped => panic!("not dropped"),
        }
    }

    #[test]
    fn a_seen_hash_is_a_duplicate_before_anything_else() {
        let (mine, theirs) = (CurveKey([1; 32]), CurveKey([2; 32]));
        assert_eq!(route(true, &mine, &mine), Route::Duplicate);
        assert_eq!(route(true, &theirs, &mine), Route::Duplicate);
        assert_eq!(
            route(false, &theirs, &mine),
            Route::Deposit,
            "another device's"
        );
        assert_eq!(route(false, &mine, &mine), Route::Open);
    }

    #[test]
    fn an_envelope_for_another_device_is_wrong_device_and_a_strike_when_nothing_is_kept() {
        // The deposit rule is the mailbox core's: a node that keeps nothing for the key.
        let m = crate::cores::mailbox::MailboxService::new(None);
        assert_eq!(
            m.deposit(None, 10),
            Verdict::Penalize(
                RejectReason::WrongDevice,
                crate::cores::mailbox::NOT_REGISTERED
            )
        );
        let mut b = Batch::new(1);
        assert!(!b.answer(
            Route::Deposit,
            DeliveryResult::Rejected(RejectReason::WrongDevice)
        ));
        assert_eq!(b.finish(0).kept, 0);
    }

    #[test]
    fn what_no_session_opens_is_undecryptable_without_a_strike() {
        assert_eq!(
            not_opened(),
            DeliveryResult::Rejected(RejectReason::Undecryptable)
        );
    }

    #[test]
    fn a_plaintext_that_does_not_decode_is_malformed_and_a_strike() {
        let (v, e) = unseal(b"not a sealed message");
        assert_eq!(v, Verdict::Penalize(RejectReason::Malformed, BAD_SEAL));
        assert!(e.is_some());
        // The sealed format's limits: no bodies at all is malformed too.
        let empty = Sealed {
            version: 1,
            sender: None,
            bodies: Vec::new(),
        };
        let Ok(bytes) = empty.encode() else {
            unreachable!()
        };
        assert!(matches!(unseal(&bytes).0, Verdict::Penalize(..)));
        let over = Sealed {
            version: 1,
            sender: None,
            bodies: vec![receipt(ReceiptKind::Read, vec![1; MAX_RECEIPT_IDS + 1])],
        };
        let Ok(bytes) = over.encode() else {
            unreachable!()
        };
        assert!(matches!(unseal(&bytes).0, Verdict::Penalize(..)));
        let good = Sealed {
            version: 1,
            sender: None,
            bodies: vec![text(1)],
        };
        let Ok(bytes) = good.encode() else {
            unreachable!()
        };
        assert_eq!(unseal(&bytes), (Verdict::Accept(good), None));
    }

    #[test]
    fn a_new_device_needs_a_certificate_for_its_key_that_verifies() {
        let curve = CurveKey([3; 32]);
        assert_eq!(
            check_cert(None, &curve),
            Verdict::Refuse(RejectReason::Malformed),
            "no certificate: malformed, no strike"
        );
        let cert = signed_cert(8, curve);
        assert_eq!(check_cert(Some(&cert), &curve), Verdict::Accept(&cert));
        assert_eq!(
            check_cert(Some(&cert), &CurveKey([4; 32])),
            Verdict::Penalize(RejectReason::Malformed, BAD_CERT),
            "another key than the pre-key message's"
        );
        let mut forged = cert.clone();
        forged.created_ms += 1;
        assert_eq!(
            check_cert(Some(&forged), &curve),
            Verdict::Penalize(RejectReason::Malformed, BAD_CERT),
            "a signature that does not verify"
        );
    }

    fn new_device() -> NewDevice {
        NewDevice {
            identity: ALICE,
            known_as: None,
            contact: true,
            in_group: false,
            strangers: 0,
        }
    }

    #[test]
    fn a_device_stays_bound_to_its_first_identity() {
        let same = NewDevice {
            known_as: Some(ALICE),
            ..new_device()
        };
        assert_eq!(bind(same), Binding::Bind { stranger: false });
        let other = NewDevice {
            known_as: Some(IdentityKey([9; 32])),
            ..new_device()
        };
        assert_eq!(bind(other), Binding::IdentityChanged);
        assert_eq!(
            Binding::IdentityChanged.refusal(),
            Some(RejectReason::Undecryptable)
        );
        assert_eq!(Binding::Bind { stranger: true }.refusal(), None);
    }

    #[test]
    fn strangers_are_kept_up_to_the_cap_and_group_members_do_not_count() {
        assert!(counts_strangers(false, false));
        assert!(!counts_strangers(true, false));
        assert!(!counts_strangers(false, true));
        let stranger = |strangers| NewDevice {
            contact: false,
            strangers,
            ..new_device()
        };
        assert_eq!(
            bind(stranger(MAX_STRANGERS - 1)),
            Binding::Bind { stranger: true },
            "the last one that fits"
        );
        assert_eq!(bind(stranger(MAX_STRANGERS)), Binding::TooManyStrangers);
        assert_eq!(
            Binding::TooManyStrangers.refusal(),
            Some(RejectReason::Undecryptable)
        );
        let member = NewDevice {
            in_group: true,
            ..stranger(MAX_STRANGERS)
        };
        assert_eq!(
            bind(member),
            Binding::Bind { stranger: true },
            "a group member is not refused, but still becomes a provisional contact"
        );
        let contact = NewDevice {
            strangers: MAX_STRANGERS,
            ..new_device()
        };
        assert_eq!(bind(contact), Binding::Bind { stranger: false });
    }

    #[test]
    fn a_blocked_senders_envelope_is_dropped_and_answered_accepted() {
        let mut b = Batch::new(1);
        let blocked = Sender {
            blocked: true,
            ..from(true)
        };
        let o = deliver(vec![text(1)], blocked, true, &mut b);
        assert!(matches!(o, Opened::Dropped));
        assert_eq!(o.answer(), DeliveryResult::Accepted);
        assert!(
            !b.answer(Route::Open, o.answer()),
            "not remembered as stored"
        );
        let a = b.finish(0);
        assert!(a.receipts.is_empty(), "no receipt for a blocked sender");
        assert_eq!(a.results, vec![DeliveryResult::Accepted]);
    }

    #[test]
    fn bodies_become_steps_in_order_and_read_receipts_follow_privacy() {
        let mut b = Batch::new(1);
        let bodies = vec![
            text(1),
            receipt(ReceiptKind::Delivered, vec![7]),
            receipt(ReceiptKind::Read, vec![8]),
            Body::GroupKey {
                group: GroupId([5; 16]),
                key: vec![1],
                seq: 3,
            },
        ];
        let on = steps(deliver(bodies.clone(), from(false), true, &mut b));
        assert!(matches!(on[0], Step::Text { id: 1, .. }));
        assert!(matches!(&on[1], Step::Status { ids, status: Status::Delivered } if ids == &[7]));
        assert!(matches!(&on[2], Step::Status { ids, status: Status::Read } if ids == &[8]));
        assert!(matches!(on[3], Step::GroupKey { seq: 3, .. }));
        let off = steps(deliver(bodies, from(false), false, &mut b));
        assert_eq!(off.len(), 3, "read receipts are not shown with ours off");
        assert!(matches!(
            &off[1],
            Step::Status {
                status: Status::Delivered,
                ..
            }
        ));
        assert!(b.finish(0).receipts.is_empty(), "nothing was relayed");
    }

    #[test]
    fn relayed_texts_are_owed_delivered_receipts_in_chunks() {
        let mut b = Batch::new(2);
        let many: Vec<Body> = (0..MAX_RECEIPT_IDS as u128 + 1).map(text).collect();
        let o = deliver(many, from(true), true, &mut b);
        assert_eq!(o.answer(), DeliveryResult::Stored);
        let bob = Sender {
            identity: IdentityKey([3; 32]),
            ..from(true)
        };
        let _ = deliver(
            vec![text(99), receipt(ReceiptKind::Read, vec![1])],
            bob,
            true,
            &mut b,
        );
        let a = b.finish(42);
        let shape: Vec<_> = a
            .receipts
            .iter()
            .map(|(conv, body)| match body {
                Body::Receipt {
                    kind: ReceiptKind::Delivered,
                    ids,
                    at_ms: 42,
                } => (*conv, ids.len()),
                other => panic!("not a delivered receipt: {other:?}"),
            })
            .collect();
        assert_eq!(
            shape,
            vec![
                (ALICE, MAX_RECEIPT_IDS),
                (ALICE, 1),
                (IdentityKey([3; 32]), 1)
            ]
        );
    }

    #[test]
    fn results_keep_request_order_and_only_stored_or_kept_hashes_are_remembered() {
        let mut b = Batch::new(5);
        let remembered = [
            b.answer(Route::Duplicate, DeliveryResult::Duplicate),
            b.answer(Route::Open, DeliveryResult::Stored),
            b.answer(Route::Deposit, DeliveryResult::Accepted),
            b.answer(
                Route::Deposit,
                DeliveryResult::Rejected(RejectReason::MailboxFull),
            ),
            b.answer(
                Route::Open,
                DeliveryResult::Rejected(RejectReason::Undecryptable),
            ),
        ];
        assert_eq!(remembered, [false, true, true, false, false]);
        let a = b.finish(0);
        assert_eq!(a.kept, 1);
        assert_eq!(
            a.results,
            vec![
                DeliveryResult::Duplicate,
                DeliveryResult::Stored,
                DeliveryResult::Accepted,
                DeliveryResult::Rejected(RejectReason::MailboxFull),
                DeliveryResult::Rejected(RejectReason::Undecryptable),
            ]
        );
    }
}
