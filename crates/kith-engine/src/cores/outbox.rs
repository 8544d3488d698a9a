//! The outbox: the rules by which queued bodies for one remote device are sealed into
//! envelopes, what each answer to a delivery does to the items it carried, when sessions
//! are started again, and whether a claimed pre-key bundle may open a session. A core with
//! no I/O: it encrypts nothing and touches neither the store nor the network. The engine
//! actor (`actor/outbox.rs`) reads the outbox and the devices from the store, runs Olm,
//! passes plain values in and carries out what the core decides.
//!
//! Data flow for one device's outbox:
//!
//! 1. A body queued for the device is an unsealed item. Once a session exists, the actor
//!    reads the outbox and [`plan_seal`] groups the *waiting* items ([`is_waiting`]: not
//!    sealed and not covered by an earlier item's envelope) into envelopes, in order: at
//!    most `MAX_BODIES` bodies and [`SEAL_BYTES`] of plaintext each, counting
//!    [`BODY_OVERHEAD`] bytes per body. An item without a body (which this node never
//!    writes for its own messages) is dropped.
//! 2. The actor encrypts each group's bodies as one sealed message; [`mark_sealed`] gives
//!    the envelope to the group's first item, which covers the whole group, and marks the
//!    others as covered.
//! 3. A `Delivered` answer that [`fits`] the request carries one result per envelope;
//!    [`answer`] tells what each does, in order:
//!    - `Stored`, `Duplicate` → the items are done and their messages rise to ✓✓
//!      (`Delivered`); through a mailbox, or answered `Accepted`, to ✓ (`Sent`) only, as ✓✓
//!      comes later in a receipt from the device.
//!    - `MailboxFull` → stop: the user is told ([`full_notice`]) and the device's delivery
//!      fails (it backs off, perhaps to another mailbox).
//!    - `Malformed` → the items are dropped.
//!    - any other refusal → [`refused`]: items that are mail this node keeps for someone
//!      else (no body to seal again) are dropped and the next result is read; otherwise
//!      the device could not open our envelope: stop and start new sessions.
//! 4. New sessions ([`reset_item`], for each outbox item): a sealed or covered item is
//!    unsealed, to be sealed again, and counts one reset; after [`MAX_RESETS`] it is
//!    dropped. Waiting items are left as they are.
//! 5. A claimed pre-key bundle is checked by [`check_bundle`]: it must validate and name
//!    the peer it came from and the device it was claimed for (otherwise the peer is
//!    penalised, [`BAD_BUNDLE`]); its identity must be the contact's (otherwise the user
//!    gets an identity warning, [`IDENTITY_CHANGED`], and messages are held). An accepted
//!    bundle opens an outbound session and the waiting items are sealed (step 1).

use kith_proto::wire::{DeliveryResult, Envelope, MAX_BODIES, RejectReason};
use kith_store::{OutboxItem, Status};
use kith_types::IdentityKey;

/// Most plaintext bytes sealed into one envelope (below the sealed-payload limit).
pub const SEAL_BYTES: usize = 56 * 1024;
/// Bytes counted for each body on top of its own length when filling an envelope.
pub const BODY_OVERHEAD: usize = 16;
/// Times an item is re-sealed after the receiver could not decrypt it, before it is dropped.
pub const MAX_RESETS: u8 = 3;
/// Why a peer is penalised for a pre-key bundle.
pub const BAD_BUNDLE: &str = "invalid pre-key bundle";
/// What the user is told when a contact's device shows another identity key.
pub const IDENTITY_CHANGED: &str = "the device at this contact's address has a different \
                                    identity key; messages are held until it is resolved";

/// Whether an item waits to be sealed: it has no envelope, and no earlier item's envelope
/// carries it.
pub fn is_waiting(item: &OutboxItem) -> bool {
    item.sealed.is_none() && !item.covered
}

/// What to do with a device's outbox once a session exists.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Sealing {
    /// Items with nothing to seal: remove them.
    pub drop: Vec<u64>,
    /// The waiting items grouped into envelopes, in order; each group is sealed as one.
    pub envelopes: Vec<Vec<(u64, OutboxItem)>>,
}

/// Groups a device's outbox (all of it, in order) into envelopes. The items before the
/// first waiting one are already sealed and are left out; from there on, consecutive items
/// share an envelope up to `MAX_BODIES` bodies and [`SEAL_BYTES`] of plaintext.
pub fn plan_seal(outbox: Vec<(u64, OutboxItem)>) -> Sealing {
    let mut plan = Sealing::default();
    let mut group: Vec<(u64, OutboxItem)> = Vec::new();
    let mut bytes = 0usize;
    for (seq, item) in outbox.into_iter().skip_while(|(_, it)| !is_waiting(it)) {
        let Some(len) = item.body.as_ref().map(|b| b.len() + BODY_OVERHEAD) else {
            plan.drop.push(seq);
            continue;
        };
        if !group.is_empty() && (group.len() >= MAX_BODIES || bytes + len > SEAL_BYTES) {
            plan.envelopes.push(std::mem::take(&mut group));
            bytes = 0;
        }
        bytes += len;
        group.push((seq, item));
    }
    if !group.is_empty() {
        plan.envelopes.push(group);
    }
    plan
}

/// Records that one envelope carries `group`: its first item holds it and covers the
/// group, the others are covered.
pub fn mark_sealed(group: &mut [(u64, OutboxItem)], env: &Envelope) {
    let n = u32::try_from(group.len()).unwrap_or(u32::MAX);
    for (i, (_, item)) in group.iter_mut().enumerate() {
        if i == 0 {
            item.sealed = Some(env.clone());
            item.covers = n;
            item.covered = false;
        } else {
            item.sealed = None;
            item.covers = 0;
            item.covered = true;
        }
    }
}

/// Whether a `Delivered` answer fits the request: one result per envelope sent.
pub fn fits(results: usize, envelopes: usize) -> bool {
    results == envelopes
}

/// What one result of a `Delivered` answer does to the items of its envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Done: remove the items and raise their messages to this state.
    Raise(Status),
    /// The mailbox is full: stop reading results, tell the user, fail the delivery.
    Full,
    /// The recipient refused it as malformed: remove the items.
    Malformed,
    /// Otherwise refused: see [`refused`].
    Refused,
}

/// What a result does; `via_mailbox` tells whether the request went to a mailbox.
pub fn answer(result: DeliveryResult, via_mailbox: bool) -> Answer {
    match result {
        DeliveryResult::Stored | DeliveryResult::Duplicate | DeliveryResult::Accepted => {
            if via_mailbox || result == DeliveryResult::Accepted {
                Answer::Raise(Status::Sent)
            } else {
                Answer::Raise(Status::Delivered)
            }
        }
        DeliveryResult::Rejected(RejectReason::MailboxFull) => Answer::Full,
        DeliveryResult::Rejected(RejectReason::Malformed) => Answer::Malformed,
        _ => Answer::Refused,
    }
}

/// After a refusal, with `relayed` telling whether the envelope held mail this node keeps
/// for someone else (those items are kept, [`keep_refused`]): whether to stop and start new
/// sessions.
pub fn refused(relayed: bool) -> bool {
    !relayed
}

/// Mail a mailbox keeps for a device that the device refused (`Undecryptable`, say: it may
/// open later, and its sender deleted its copy when the mailbox took it) is never dropped
/// for that (issue 14, hole 3): it goes to the back of the device's outbox, counted in
/// `resets`, and leaves only when the device takes it or with the mailbox's retention.
pub fn keep_refused(item: &mut OutboxItem) {
    item.resets = item.resets.saturating_add(1);
}

/// Whether a delivery batch that took nothing (`taken`) and had kept mail refused
/// (`kept_back`) waits before the next: so refused kept mail is offered again after a
/// pause, never in a loop.
pub fn back_off_after_refusals(taken: bool, kept_back: bool) -> bool {
    kept_back && !taken
}

/// Whether an outbox item is mail kept for someone else, which cannot be sealed again.
pub fn is_relayed(item: &OutboxItem) -> bool {
    item.body.is_none()
}

/// What the user is told when a contact's mailbox is full.
pub fn full_notice(contact: &str) -> String {
    format!("{contact}'s mailbox is full; trying another mailbox or later")
}

/// What starting new sessions does to one outbox item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reset {
    /// It was waiting: nothing changes.
    Waiting,
    /// It was unsealed, to be sealed again: store it.
    Unsealed,
    /// It was re-sealed [`MAX_RESETS`] times already: remove it.
    Drop,
}

/// Applies a session reset to one item (changing it only when the answer is `Unsealed`).
pub fn reset_item(item: &mut OutboxItem) -> Reset {
    // Mail kept for someone else cannot be sealed again: it stays as it is.
    if is_waiting(item) || is_relayed(item) {
        return Reset::Waiting;
    }
    if item.resets >= MAX_RESETS {
        return Reset::Drop;
    }
    item.sealed = None;
    item.covers = 0;
    item.covered = false;
    item.resets += 1;
    Reset::Unsealed
}

/// What is known about a claimed pre-key bundle and the device it was claimed for.
#[derive(Debug, Clone, Copy)]
pub struct Bundle<'a> {
    /// Whether the bundle's certificate and signature verify.
    pub valid: bool,
    /// The peer id the bundle's certificate names.
    pub peer_id: &'a [u8],
    /// The identity the bundle's certificate names.
    pub identity: &'a IdentityKey,
    /// The peer on the connection the bundle came over.
    pub connection: &'a [u8],
    /// The peer id of the device it was claimed for, as the store knows it.
    pub device_peer_id: &'a [u8],
    /// The identity the store has that device under (the contact's).
    pub device_identity: &'a IdentityKey,
}

/// What to do with a claimed pre-key bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BundleCheck {
    /// Learn the certificate and open a session with it.
    Accept,
    /// Penalise the peer ([`BAD_BUNDLE`]) and fail the delivery.
    Penalize,
    /// Warn the user ([`IDENTITY_CHANGED`]) and fail the delivery.
    IdentityWarning,
}

/// Checks a claimed pre-key bundle against the connection and the device.
pub fn check_bundle(b: Bundle<'_>) -> BundleCheck {
    if !b.valid || b.peer_id != b.connection || b.peer_id != b.device_peer_id {
        BundleCheck::Penalize
    } else if b.identity != b.device_identity {
        BundleCheck::IdentityWarning
    } else {
        BundleCheck::Accept
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(body: Option<usize>) -> OutboxItem {
        OutboxItem {
            conversation: IdentityKey([1; 32]),
            message_ids: vec![7],
            sealed: None,
            body: body.map(|n| vec![0; n]),
            queued_ms: 5,
            resets: 0,
            covers: 0,
            covered: false,
        }
    }

    fn env() -> Envelope {
        Envelope {
            to_device: kith_types::CurveKey([2; 32]),
            kind: 1,
            ciphertext: vec![3; 4],
        }
    }

    fn seqs(plan: &Sealing) -> Vec<Vec<u64>> {
        plan.envelopes
            .iter()
            .map(|g| g.iter().map(|(s, _)| *s).collect())
            .collect()
    }

    #[test]
    fn sealed_prefix_is_left_out() {
        let mut first = item(Some(10));
        first.sealed = Some(env());
        first.covers = 2;
        let mut second = item(Some(10));
        second.covered = true;
        let plan = plan_seal(vec![(1, first), (2, second), (3, item(Some(10)))]);
        assert_eq!(seqs(&plan), vec![vec![3]]);
        assert!(plan.drop.is_empty());
    }

    #[test]
    fn nothing_waiting_plans_nothing() {
        let mut first = item(Some(10));
        first.sealed = Some(env());
        assert_eq!(plan_seal(vec![(1, first)]), Sealing::default());
        assert_eq!(plan_seal(Vec::new()), Sealing::default());
    }

    #[test]
    fn items_without_body_are_dropped() {
        let plan = plan_seal(vec![
            (1, item(Some(3))),
            (2, item(None)),
            (3, item(Some(3))),
        ]);
        assert_eq!(plan.drop, vec![2]);
        assert_eq!(seqs(&plan), vec![vec![1, 3]]);
    }

    #[test]
    fn at_most_max_bodies_per_envelope() {
        let n = MAX_BODIES * 2 + 1;
        let outbox = (0..n as u64).map(|s| (s, item(Some(1)))).collect();
        let plan = plan_seal(outbox);
        let sizes: Vec<usize> = plan.envelopes.iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![MAX_BODIES, MAX_BODIES, 1]);
    }

    #[test]
    fn plaintext_counts_overhead_per_body() {
        // Two bodies that fill SEAL_BYTES exactly with their overhead share an envelope;
        // one byte more splits them.
        let half = SEAL_BYTES / 2 - BODY_OVERHEAD;
        let plan = plan_seal(vec![(1, item(Some(half))), (2, item(Some(half)))]);
        assert_eq!(seqs(&plan), vec![vec![1, 2]]);
        let plan = plan_seal(vec![(1, item(Some(half))), (2, item(Some(half + 1)))]);
        assert_eq!(seqs(&plan), vec![vec![1], vec![2]]);
    }

    #[test]
    fn an_oversized_body_still_gets_an_envelope() {
        let plan = plan_seal(vec![
            (1, item(Some(1))),
            (2, item(Some(SEAL_BYTES))),
            (3, item(Some(1))),
        ]);
        assert_eq!(seqs(&plan), vec![vec![1], vec![2], vec![3]]);
    }

    #[test]
    fn first_item_holds_the_envelope() {
        let mut group = vec![(1, item(Some(1))), (2, item(Some(1))), (3, item(Some(1)))];
        group[1].1.sealed = Some(env());
        mark_sealed(&mut group, &env());
        assert_eq!(group[0].1.sealed, Some(env()));
        assert_eq!(group[0].1.covers, 3);
        assert!(!group[0].1.covered);
        for (_, it) in &group[1..] {
            assert_eq!(it.sealed, None);
            assert_eq!(it.covers, 0);
            assert!(it.covered);
            assert!(!is_waiting(it));
        }
    }

    #[test]
    fn answers_raise_to_delivered_or_sent() {
        use DeliveryResult::*;
        assert_eq!(answer(Stored, false), Answer::Raise(Status::Delivered));
        assert_eq!(answer(Duplicate, false), Answer::Raise(Status::Delivered));
        assert_eq!(answer(Accepted, false), Answer::Raise(Status::Sent));
        for r in [Stored, Duplicate, Accepted] {
            assert_eq!(answer(r, true), Answer::Raise(Status::Sent));
        }
    }

    #[test]
    fn refusals() {
        use RejectReason::*;
        let r = DeliveryResult::Rejected;
        for via in [false, true] {
            assert_eq!(answer(r(MailboxFull), via), Answer::Full);
            assert_eq!(answer(r(Malformed), via), Answer::Malformed);
            assert_eq!(answer(r(Undecryptable), via), Answer::Refused);
            assert_eq!(answer(r(WrongDevice), via), Answer::Refused);
        }
        assert!(refused(false), "our own envelope: new sessions");
        assert!(!refused(true), "kept mail: kept, read on");
        let mut kept = item(None);
        keep_refused(&mut kept);
        assert_eq!(kept.resets, 1, "counted, not dropped");
        kept.resets = u8::MAX;
        keep_refused(&mut kept);
        assert_eq!(kept.resets, u8::MAX);
        assert!(back_off_after_refusals(false, true));
        assert!(!back_off_after_refusals(true, true), "others went: go on");
        assert!(!back_off_after_refusals(false, false));
        assert!(is_relayed(&item(None)));
        assert!(!is_relayed(&item(Some(1))));
        assert!(fits(2, 2));
        assert!(!fits(1, 2));
        assert_eq!(
            full_notice("Bob"),
            "Bob's mailbox is full; trying another mailbox or later"
        );
    }

    #[test]
    fn reset_unseals_counts_and_drops() {
        let mut waiting = item(Some(1));
        assert_eq!(reset_item(&mut waiting), Reset::Waiting);
        assert_eq!(waiting, item(Some(1)));

        let mut sealed = item(Some(1));
        sealed.sealed = Some(env());
        sealed.covers = 2;
        let mut covered = item(Some(1));
        covered.covered = true;
        for it in [&mut sealed, &mut covered] {
            assert_eq!(reset_item(it), Reset::Unsealed);
            assert!(is_waiting(it));
            assert_eq!(it.covers, 0);
            assert_eq!(it.resets, 1);
        }

        let mut it = item(Some(1));
        for n in 1..=MAX_RESETS {
            it.sealed = Some(env());
            assert_eq!(reset_item(&mut it), Reset::Unsealed);
            assert_eq!(it.resets, n);
        }
        it.sealed = Some(env());
        assert_eq!(reset_item(&mut it), Reset::Drop);
        assert_eq!(it.resets, MAX_RESETS);
    }

    #[test]
    fn bundle_checks() {
        let (peer, other) = (vec![1u8; 38], vec![2u8; 38]);
        let (alice, mallory) = (IdentityKey([3u8; 32]), IdentityKey([4u8; 32]));
        let good = Bundle {
            valid: true,
            peer_id: &peer,
            identity: &alice,
            connection: &peer,
            device_peer_id: &peer,
            device_identity: &alice,
        };
        assert_eq!(check_bundle(good), BundleCheck::Accept);
        let cases = [
            Bundle {
                valid: false,
                ..good
            },
            Bundle {
                connection: &other,
                ..good
            },
            Bundle {
                device_peer_id: &other,
                ..good
            },
            Bundle {
                identity: &mallory,
                valid: false,
                ..good
            },
        ];
        for b in cases {
            assert_eq!(check_bundle(b), BundleCheck::Penalize);
        }
        assert_eq!(
            check_bundle(Bundle {
                identity: &mallory,
                ..good
            }),
            BundleCheck::IdentityWarning
        );
    }
}
