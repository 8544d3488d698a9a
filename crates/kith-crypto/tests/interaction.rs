//! Two devices exchange messages through a hostile channel (drops, reorders, duplicates);
//! every message that is not dropped opens exactly once, duplicates are refused, and nothing
//! panics. Sessions are saved and restored at random points, as the engine does per batch.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use kith_crypto::{Device, Identity, PeerSessions, StorageKey};
use kith_proto::wire::Envelope;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Step {
    /// Alice (true) or Bob (false) encrypts a new message.
    Send(bool),
    /// Deliver the queued message at this index (mod queue length) to its recipient.
    Deliver(usize),
    /// Deliver it again (a retry or a replay).
    Replay(usize),
    /// Drop it.
    Drop(usize),
    /// Save and restore both sides' sessions.
    Restart,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => any::<bool>().prop_map(Step::Send),
        4 => any::<usize>().prop_map(Step::Deliver),
        1 => any::<usize>().prop_map(Step::Replay),
        1 => any::<usize>().prop_map(Step::Drop),
        1 => Just(Step::Restart),
    ]
}

struct Side {
    device: Device,
    sessions: PeerSessions,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn hostile_channel(steps in proptest::collection::vec(step(), 1..120)) {
        let key = StorageKey::generate();
        let ida = Identity::generate();
        let idb = Identity::generate();
        let mut a = Side { device: Device::generate(&ida, vec![1]).unwrap(), sessions: PeerSessions::new(kith_types::CurveKey([0; 32])) };
        let mut b = Side { device: Device::generate(&idb, vec![2]).unwrap(), sessions: PeerSessions::new(kith_types::CurveKey([0; 32])) };
        a.sessions = PeerSessions::new(b.device.curve_key());
        b.sessions = PeerSessions::new(a.device.curve_key());
        // Alice opens the session from Bob's pre-key, as after a claim.
        let bundle = b.device.claim_prekey(false);
        a.sessions.open_outbound(&a.device, &bundle).unwrap();

        // In flight: (to_bob, payload, envelope); delivered payloads per side.
        let mut queue: Vec<(bool, u32, Envelope)> = Vec::new();
        let mut delivered: Vec<(bool, u32, Envelope)> = Vec::new();
        let mut seen_a = Vec::new();
        let mut seen_b = Vec::new();
        let mut next = 0u32;
        for s in steps {
            match s {
                Step::Send(from_alice) => {
                    let side = if from_alice { &mut a } else { &mut b };
                    if !side.sessions.has_session() {
                        continue; // Bob can only answer once Alice's first message arrived.
                    }
                    next += 1;
                    let env = side.sessions.encrypt(&next.to_be_bytes()).unwrap();
                    queue.push((from_alice, next, env));
                }
                Step::Deliver(i) | Step::Drop(i) if !queue.is_empty() => {
                    let (to_bob, n, env) = queue.remove(i % queue.len());
                    if matches!(s, Step::Drop(_)) {
                        continue;
                    }
                    let side = if to_bob { &mut b } else { &mut a };
                    let out = side.sessions.decrypt(&mut side.device, &env);
                    // Olm may refuse a message that arrives after a newer ratchet step made its
                    // chain unusable; it must never open it as something else.
                    if let Ok(d) = out {
                        prop_assert_eq!(d.plaintext, n.to_be_bytes().to_vec());
                        if to_bob { seen_b.push(n) } else { seen_a.push(n) }
                        delivered.push((to_bob, n, env));
                    }
                }
                Step::Replay(i) if !delivered.is_empty() => {
                    let (to_bob, _, env) = delivered[i % delivered.len()].clone();
                    let side = if to_bob { &mut b } else { &mut a };
                    prop_assert!(side.sessions.decrypt(&mut side.device, &env).is_err(), "a replay must not open twice");
                }
                Step::Restart => {
                    for side in [&mut a, &mut b] {
                        let remote = side.sessions.remote();
                        let pickles = side.sessions.pickles(&key);
                        side.sessions = PeerSessions::restore(remote, &pickles, &key).unwrap();
                        let p = side.device.pickle(&key);
                        side.device = Device::restore(&p, side.device.cert().clone(), &key).unwrap();
                    }
                }
                _ => {}
            }
        }
        // Nothing opened twice.
        for seen in [&mut seen_a, &mut seen_b] {
            let n = seen.len();
            seen.sort();
            seen.dedup();
            prop_assert_eq!(seen.len(), n);
        }
        // In-order delivery of everything still queued succeeds (the engine delivers in order).
        queue.sort_by_key(|q| q.1);
        for (to_bob, n, env) in queue {
            let side = if to_bob { &mut b } else { &mut a };
            if let Ok(d) = side.sessions.decrypt(&mut side.device, &env) {
                prop_assert_eq!(d.plaintext, n.to_be_bytes().to_vec());
            }
        }
    }
}
