//! This device's fallback pre-key: when it is replaced, how long the replaced one still opens
//! sessions, and which pre-key messages may open a session from it.
//!
//! The fallback key is the pre-key a user record publishes (so a sender can open a session
//! with a device that is away) and the one a peer gets past the claim limit. It is replaced
//! every [`ROTATE_MS`] of the device's running time; the replaced key keeps opening sessions
//! for [`OVERLAP_MS`] more (senders may hold a record or a kept envelope made with it), then
//! it is retired and messages on it no longer open. Unlike a one-time key, a fallback key is
//! not used up by a session, so every session opened from it is remembered (by the store,
//! `prekey_sessions`) until the key is retired: a replayed pre-key message then cannot open a
//! second session, however long ago its envelope hash left the seen table. At most
//! [`MAX_SESSIONS`] are remembered; past that, new sessions from fallback keys are refused
//! (the sender claims a one-time key instead) until a retirement frees room.

use serde::{Deserialize, Serialize};

const DAY_MS: u64 = 24 * 3600 * 1000;
/// How often the fallback key is replaced.
pub const ROTATE_MS: u64 = 7 * DAY_MS;
/// How long a replaced fallback key still opens sessions (at most [`ROTATE_MS`]: vodozemac
/// keeps one previous fallback key).
pub const OVERLAP_MS: u64 = 7 * DAY_MS;
/// Most sessions from fallback keys remembered at once.
pub const MAX_SESSIONS: u64 = 65_536;

/// The fallback key's schedule, kept in the store's meta table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fallback {
    /// When the current fallback key was made (or first seen by this schedule).
    pub made_ms: u64,
    /// The replaced key and when it is retired.
    pub previous: Option<([u8; 32], u64)>,
}

/// What to do with the fallback key now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Nothing yet.
    Keep,
    /// No schedule yet (a new device, or one from before rotation): start it now.
    Start(Fallback),
    /// Replace the current key (`current`, if any, becomes the previous one).
    Rotate,
    /// Retire the previous key, and forget the sessions opened from it.
    Retire([u8; 32]),
}

/// What the schedule says at `now`.
pub fn step(schedule: Option<&Fallback>, now: u64) -> Step {
    let Some(f) = schedule else {
        return Step::Start(Fallback {
            made_ms: now,
            previous: None,
        });
    };
    match f.previous {
        Some((key, until)) if now >= until => Step::Retire(key),
        // The previous key's overlap is not over: no rotation before it is retired.
        Some(_) => Step::Keep,
        None if now >= f.made_ms.saturating_add(ROTATE_MS) => Step::Rotate,
        None => Step::Keep,
    }
}

/// The schedule after a rotation at `now` that replaced `old`.
pub fn rotated(old: Option<[u8; 32]>, now: u64) -> Fallback {
    Fallback {
        made_ms: now,
        previous: old.map(|k| (k, now.saturating_add(OVERLAP_MS))),
    }
}

/// The schedule after the previous key was retired.
pub fn retired(f: Fallback) -> Fallback {
    Fallback {
        previous: None,
        ..f
    }
}

/// Whether a pre-key message that would open a new session from one of our fallback keys
/// may.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admit {
    /// Open it (and remember the session).
    Open,
    /// A session was already opened from it: a replay, answered `Duplicate`.
    Replay,
    /// Too many are remembered: refused.
    Full,
}

/// Decides [`Admit`] from whether the session was seen and how many are remembered.
pub fn admit(seen: bool, remembered: u64) -> Admit {
    if seen {
        Admit::Replay
    } else if remembered >= MAX_SESSIONS {
        Admit::Full
    } else {
        Admit::Open
    }
}

#[cfg(test)]
mod tests {
    use kith_crypto::{Device, Identity, PeerSessions};

    use super::*;

    fn device() -> Device {
        Device::generate(&Identity::generate(), vec![1, 2, 3]).unwrap()
    }

    /// Drives a real device by the schedule with a fake clock: the fallback key is replaced
    /// after [`ROTATE_MS`]; a first message made from the replaced key (as from a record
    /// fetched before) still opens until [`OVERLAP_MS`] later, and not after.
    #[test]
    fn the_fallback_key_rotates_on_schedule_and_the_old_one_opens_only_within_the_overlap() {
        let alice = device();
        let mut bob = device();
        let t0 = 1_000_000;
        let mut schedule = match step(None, t0) {
            Step::Start(f) => f,
            s => panic!("{s:?}"),
        };
        let k0 = bob.fallback_key().unwrap();
        // The published bundle, as a sender fetched it before the rotation.
        let bundle = bob.claim_prekey(true);
        assert_eq!(bundle.one_time_key, k0);
        let bob_curve = bob.curve_key();
        let first = || {
            let mut a2b = PeerSessions::new(bob_curve);
            a2b.open_outbound(&alice, &bundle).unwrap();
            a2b.encrypt(b"first").unwrap()
        };
        let opens = |bob: &mut Device, env| {
            PeerSessions::new(alice.curve_key())
                .decrypt(bob, &env)
                .is_ok()
        };
        let run = |bob: &mut Device, schedule: &mut Fallback, now| {
            let s = step(Some(schedule), now);
            match s {
                Step::Rotate => {
                    let old = bob.fallback_key();
                    bob.rotate_fallback();
                    *schedule = rotated(old, now);
                }
                Step::Retire(_) => {
                    assert!(bob.retire_previous_fallback());
                    *schedule = retired(*schedule);
                }
                Step::Keep | Step::Start(_) => {}
            }
            s
        };
        assert_eq!(run(&mut bob, &mut schedule, t0 + ROTATE_MS - 1), Step::Keep);
        assert_eq!(bob.fallback_key(), Some(k0));
        assert_eq!(run(&mut bob, &mut schedule, t0 + ROTATE_MS), Step::Rotate);
        let k1 = bob.fallback_key().unwrap();
        assert_ne!(k1, k0, "a new fallback key");
        assert_eq!(
            bob.claim_prekey(true).one_time_key,
            k1,
            "the record gets the new key"
        );
        // Within the overlap the old key still opens a first message.
        let t1 = t0 + ROTATE_MS;
        assert!(opens(&mut bob, first()));
        assert_eq!(
            run(&mut bob, &mut schedule, t1 + OVERLAP_MS - 1),
            Step::Keep
        );
        assert!(opens(&mut bob, first()));
        // After it, not any more.
        assert_eq!(
            run(&mut bob, &mut schedule, t1 + OVERLAP_MS),
            Step::Retire(k0)
        );
        assert!(!opens(&mut bob, first()));
        // And the next rotation comes ROTATE_MS after the last.
        assert_eq!(run(&mut bob, &mut schedule, t1 + ROTATE_MS - 1), Step::Keep);
        assert_eq!(run(&mut bob, &mut schedule, t1 + ROTATE_MS), Step::Rotate);
        assert_ne!(bob.fallback_key(), Some(k1));
    }

    #[test]
    fn replays_are_refused_and_the_memory_is_bounded() {
        assert_eq!(admit(false, 0), Admit::Open);
        assert_eq!(admit(true, 0), Admit::Replay);
        assert_eq!(admit(false, MAX_SESSIONS - 1), Admit::Open);
        assert_eq!(admit(false, MAX_SESSIONS), Admit::Full);
    }

    #[test]
    fn the_overlap_fits_vodozemacs_single_previous_key() {
        const { assert!(OVERLAP_MS <= ROTATE_MS) };
        // A clock that went back neither rotates nor retires.
        let f = rotated(Some([1; 32]), 100);
        assert_eq!(step(Some(&f), 50), Step::Keep);
    }
}
