//! The call core driven directly with a fake clock: ringing, timeouts, busy, decline,
//! hang-up by either side, glare, strangers, late offers, media failure.

#![allow(clippy::unwrap_used)]

use super::*;

const BOB: IdentityKey = IdentityKey([2; 32]);
const CAROL: IdentityKey = IdentityKey([3; 32]);
const T0_MS: u64 = 1_000_000;

fn offer(from: IdentityKey, call: u128, sent_at_ms: u64) -> Offer {
    Offer {
        from,
        contact: true,
        call,
        sent_at_ms,
        sdp: "v=0 offer".into(),
    }
}

fn states(out: &[Out]) -> Vec<&'static str> {
    out.iter()
        .filter_map(|o| match o {
            Out::Emit(u) => Some(u.state),
            _ => None,
        })
        .collect()
}

fn record(out: &[Out]) -> Option<&CallRecord> {
    out.iter().find_map(|o| match o {
        Out::Record(r) => Some(r),
        _ => None,
    })
}

fn sent(out: &[Out]) -> Vec<&Body> {
    out.iter()
        .filter_map(|o| match o {
            Out::Send(_, b) => Some(b),
            _ => None,
        })
        .collect()
}

/// Alice's side dialled Bob and her offer went out.
fn ringing_out(c: &mut Calls, now: Instant) {
    let out = c.dial(BOB, 7, now, T0_MS).unwrap();
    assert_eq!(out[0], Out::Media(MediaOp::StartCaller { call: 7 }));
    assert_eq!(states(&out), ["connecting"]);
    let out = c.local_sdp(7, "v=0 mine".into(), T0_MS);
    assert!(matches!(
        sent(&out)[..],
        [Body::CallOffer {
            call: 7,
            sent_at_ms: T0_MS,
            ..
        }]
    ));
    assert_eq!(states(&out), ["ringing"]);
}

#[test]
fn a_call_rings_is_answered_connects_and_is_hung_up() {
    let now = Instant::now();
    // Bob's side.
    let mut c = Calls::new();
    let out = c.offer(offer(BOB, 9, T0_MS), now, T0_MS);
    assert_eq!(states(&out), ["ringing"]);
    assert!(sent(&out).is_empty(), "nothing goes back while it rings");
    let out = c.answer(None).unwrap();
    assert!(
        matches!(&out[0], Out::Media(MediaOp::StartCallee { call: 9, offer }) if offer == "v=0 offer")
    );
    let out = c.local_sdp(9, "v=0 answer".into(), T0_MS);
    assert!(matches!(sent(&out)[..], [Body::CallAnswer { call: 9, .. }]));
    assert_eq!(states(&c.media_connected(9, T0_MS + 1000)), ["connected"]);
    let out = c.hangup(None, T0_MS + 61_000).unwrap();
    assert!(matches!(sent(&out)[..], [Body::CallHangup { call: 9 }]));
    assert!(out.contains(&Out::Media(MediaOp::Stop { call: 9 })));
    let r = record(&out).unwrap();
    assert_eq!(
        (r.outcome, r.duration_ms, r.direction),
        (Outcome::HungUp, 60_000, Direction::Incoming)
    );
    assert!(c.active().is_none());
}

#[test]
fn the_callers_side_connects_on_the_answer_and_ends_on_remote_hangup() {
    let now = Instant::now();
    let mut c = Calls::new();
    ringing_out(&mut c, now);
    // An answer from someone else, or for another call, changes nothing.
    assert!(c.remote_answer(CAROL, 7, "x".into()).is_empty());
    assert!(c.remote_answer(BOB, 8, "x".into()).is_empty());
    let out = c.remote_answer(BOB, 7, "v=0 answer".into());
    assert_eq!(
        out[0],
        Out::Media(MediaOp::Answer {
            call: 7,
            sdp: "v=0 answer".into()
        })
    );
    c.media_connected(7, T0_MS + 500);
    assert_eq!(states(&c.media_reconnecting(7)), ["reconnecting"]);
    c.media_connected(7, T0_MS + 900);
    let out = c.remote_hangup(BOB, 7, T0_MS + 10_500);
    let r = record(&out).unwrap();
    assert_eq!((r.outcome, r.duration_ms), (Outcome::RemoteHungUp, 10_000));
    assert!(sent(&out).is_empty(), "nothing goes back to a hang-up");
}

#[test]
fn ringing_times_out_after_45_s_as_no_answer_for_the_caller_and_missed_for_the_callee() {
    let now = Instant::now();
    let mut caller = Calls::new();
    ringing_out(&mut caller, now);
    let mut callee = Calls::new();
    callee.offer(offer(BOB, 9, T0_MS), now, T0_MS);

    let almost = now + RING_TIMEOUT - Duration::from_millis(1);
    assert!(caller.tick(almost, T0_MS).is_empty());
    assert!(callee.tick(almost, T0_MS).is_empty());

    let late = now + RING_TIMEOUT;
    let out = caller.tick(late, T0_MS + 45_000);
    assert_eq!(record(&out).unwrap().outcome, Outcome::NoAnswer);
    assert!(
        matches!(sent(&out)[..], [Body::CallHangup { call: 7 }]),
        "the callee is told"
    );
    assert!(out.contains(&Out::Media(MediaOp::Stop { call: 7 })));
    let out = callee.tick(late, T0_MS + 45_000);
    assert_eq!(record(&out).unwrap().outcome, Outcome::Missed);
    assert!(sent(&out).is_empty());
    assert!(
        !out.iter().any(|o| matches!(o, Out::Media(_))),
        "no media ever ran"
    );
}

#[test]
fn an_offer_that_waited_longer_than_the_ringing_time_is_missed_at_once() {
    let now = Instant::now();
    let mut c = Calls::new();
    let out = c.offer(offer(BOB, 9, T0_MS), now, T0_MS + 45_000);
    assert_eq!(states(&out), ["ended"]);
    let r = record(&out).unwrap();
    assert_eq!((r.outcome, r.started_ms), (Outcome::Missed, T0_MS));
    assert!(c.active().is_none(), "it never rings");
    // The same offer again (a retry) is not recorded twice.
    assert!(
        c.offer(offer(BOB, 9, T0_MS), now, T0_MS + 46_000)
            .is_empty()
    );
}

#[test]
fn a_caller_who_gives_up_leaves_a_missed_call() {
    let now = Instant::now();
    let mut c = Calls::new();
    c.offer(offer(BOB, 9, T0_MS), now, T0_MS);
    let out = c.remote_hangup(BOB, 9, T0_MS + 5000);
    assert_eq!(record(&out).unwrap().outcome, Outcome::Missed);
    // A hang-up that comes before its offer (reordered) keeps the offer from ringing.
    assert!(c.remote_hangup(BOB, 10, T0_MS + 6000).is_empty());
    assert!(
        c.offer(offer(BOB, 10, T0_MS + 5500), now, T0_MS + 6000)
            .is_empty()
    );
    assert!(c.active().is_none());
}

#[test]
fn busy_while_in_a_call() {
    let now = Instant::now();
    let mut c = Calls::new();
    ringing_out(&mut c, now);
    assert_eq!(c.dial(CAROL, 8, now, T0_MS), Err(CallError::Busy));
    let out = c.offer(offer(CAROL, 11, T0_MS), now, T0_MS);
    assert!(matches!(
        sent(&out)[..],
        [Body::CallDecline {
            call: 11,
            busy: true
        }]
    ));
    assert_eq!(record(&out).unwrap().outcome, Outcome::Missed);
    assert_eq!(c.active().unwrap().call, 7, "our call goes on");

    // The caller's side of a busy answer.
    let out = c.remote_decline(BOB, 7, true, T0_MS + 100);
    assert_eq!(record(&out).unwrap().outcome, Outcome::Busy);
    assert_eq!(states(&out), ["ended"]);
}

#[test]
fn decline_tells_the_caller_and_ends_for_both() {
    let now = Instant::now();
    let mut callee = Calls::new();
    callee.offer(offer(BOB, 9, T0_MS), now, T0_MS);
    assert_eq!(
        callee.decline(Some(8), T0_MS),
        Err(CallError::NothingRinging)
    );
    let out = callee.decline(Some(9), T0_MS).unwrap();
    assert!(matches!(
        sent(&out)[..],
        [Body::CallDecline {
            call: 9,
            busy: false
        }]
    ));
    assert_eq!(record(&out).unwrap().outcome, Outcome::Declined);
    assert_eq!(callee.answer(None), Err(CallError::NothingRinging));

    let mut caller = Calls::new();
    ringing_out(&mut caller, now);
    assert!(
        caller.remote_decline(CAROL, 7, false, T0_MS).is_empty(),
        "only the callee"
    );
    let out = caller.remote_decline(BOB, 7, false, T0_MS);
    assert_eq!(record(&out).unwrap().outcome, Outcome::Declined);
}

#[test]
fn hanging_up_a_ringing_outgoing_call_cancels_it() {
    let now = Instant::now();
    let mut c = Calls::new();
    ringing_out(&mut c, now);
    let out = c.hangup(None, T0_MS + 3000).unwrap();
    assert!(matches!(sent(&out)[..], [Body::CallHangup { call: 7 }]));
    assert_eq!(record(&out).unwrap().outcome, Outcome::Cancelled);
    assert_eq!(c.hangup(None, T0_MS), Err(CallError::NoCall));
}

#[test]
fn glare_the_larger_call_id_wins_on_both_sides() {
    let now = Instant::now();
    // Alice dialled Bob with id 7; Bob dialled Alice with id 9 at the same moment.
    let mut alice = Calls::new();
    ringing_out(&mut alice, now);
    let out = alice.offer(offer(BOB, 9, T0_MS), now, T0_MS);
    // Bob's call wins: Alice drops hers and takes his as answered.
    assert_eq!(out[0], Out::Media(MediaOp::Stop { call: 7 }));
    assert!(matches!(
        &out[1],
        Out::Media(MediaOp::StartCallee { call: 9, .. })
    ));
    assert_eq!(states(&out), ["connecting"]);
    assert_eq!(alice.active().unwrap().call, 9);
    assert!(record(&out).is_none(), "the dropped call is not history");

    // Bob's side: Alice's offer (7) loses against his own call (9) and is ignored.
    let alice_id = IdentityKey([1; 32]);
    let mut bob = Calls::new();
    bob.dial(alice_id, 9, now, T0_MS).unwrap();
    bob.local_sdp(9, "v=0".into(), T0_MS);
    assert!(bob.offer(offer(alice_id, 7, T0_MS), now, T0_MS).is_empty());
    assert_eq!(bob.active().unwrap().call, 9);
    // Alice's answer to 9 arrives and Bob connects.
    assert!(
        !bob.remote_answer(alice_id, 9, "v=0 answer".into())
            .is_empty()
    );
}

#[test]
fn a_strangers_offer_never_rings_and_is_counted() {
    let now = Instant::now();
    let mut c = Calls::new();
    for i in 0..100u128 {
        let mut o = offer(CAROL, i, T0_MS);
        o.contact = false;
        assert!(c.offer(o, now, T0_MS).is_empty());
    }
    assert!(c.active().is_none());
    assert_eq!(c.dropped, 100);
}

#[test]
fn media_that_fails_ends_the_call_and_tells_the_peer() {
    let now = Instant::now();
    let mut c = Calls::new();
    ringing_out(&mut c, now);
    c.remote_answer(BOB, 7, "a".into());
    let out = c.media_ended(7, T0_MS + 20_000);
    assert!(matches!(sent(&out)[..], [Body::CallHangup { call: 7 }]));
    assert_eq!(record(&out).unwrap().outcome, Outcome::Failed);
    assert!(
        !out.iter().any(|o| matches!(o, Out::Media(_))),
        "its media is gone already"
    );
    // Media of a call that already ended changes nothing.
    assert!(c.media_ended(7, T0_MS + 20_001).is_empty());
}

#[test]
fn mute_goes_to_the_media_task() {
    let now = Instant::now();
    let mut c = Calls::new();
    assert_eq!(c.mute(true), Err(CallError::NoCall));
    ringing_out(&mut c, now);
    assert_eq!(
        c.mute(true).unwrap(),
        vec![Out::Media(MediaOp::Mute {
            call: 7,
            muted: true
        })]
    );
    assert!(c.active().unwrap().muted);
}

#[test]
fn a_connected_call_whose_media_ends_on_its_own_is_lost() {
    let now = Instant::now();
    let mut c = Calls::new();
    ringing_out(&mut c, now);
    c.remote_answer(BOB, 7, "a".into());
    c.media_connected(7, T0_MS + 100);
    let out = c.media_ended(7, T0_MS + 5100);
    let r = record(&out).unwrap();
    assert_eq!((r.outcome, r.duration_ms), (Outcome::Lost, 5000));
    assert!(matches!(sent(&out)[..], [Body::CallHangup { call: 7 }]));
}

#[test]
fn debug_output_leaves_the_sdp_out() {
    let now = Instant::now();
    let mut c = Calls::new();
    let mut o = offer(BOB, 9, T0_MS);
    o.sdp = "v=0 a=fingerprint:sha-256 SECRET c=IN IP4 192.0.2.7".into(); // parse only
    assert!(!format!("{o:?}").contains("SECRET"));
    c.offer(o, now, T0_MS);
    assert!(!format!("{c:?}").contains("SECRET"));
    assert!(!format!("{:?}", c.active().unwrap()).contains("192.0.2.7")); // parse only
}

/// ICE restart: once answered, the caller's new description goes out as an offer of the
/// same call; the callee's core hands it to its media task (it never rings again) and its
/// new description goes back as an answer, which reaches the caller's media task.
#[test]
fn an_ice_restart_goes_through_signalling_and_never_rings() {
    let now = Instant::now();
    // Alice (caller).
    let mut a = Calls::new();
    ringing_out(&mut a, now);
    a.remote_answer(BOB, 7, "v=0 answer".into());
    a.media_connected(7, T0_MS + 500);
    assert_eq!(states(&a.media_reconnecting(7)), ["reconnecting"]);
    let out = a.local_sdp(7, "v=0 restart".into(), T0_MS + 9_000);
    assert!(
        matches!(sent(&out)[..], [Body::CallOffer { call: 7, sdp, .. }] if sdp == "v=0 restart")
    );
    assert!(states(&out).is_empty(), "still reconnecting");
    let out = a.remote_answer(BOB, 7, "v=0 answer 2".into());
    assert_eq!(
        out,
        [Out::Media(MediaOp::Answer {
            call: 7,
            sdp: "v=0 answer 2".into()
        })]
    );
    assert_eq!(states(&a.media_connected(7, T0_MS + 10_000)), ["connected"]);

    // Bob (callee).
    let mut b = Calls::new();
    b.offer(offer(BOB, 9, T0_MS), now, T0_MS);
    // A repeated offer while it rings changes nothing.
    assert!(b.offer(offer(BOB, 9, T0_MS), now, T0_MS).is_empty());
    b.answer(None).unwrap();
    b.local_sdp(9, "v=0 answer".into(), T0_MS);
    b.media_connected(9, T0_MS + 500);
    // The restart offer, sent long after ringing ended: restarts, not missed.
    let late = T0_MS + 120_000;
    let out = b.offer(
        Offer {
            sdp: "v=0 restart".into(),
            ..offer(BOB, 9, late)
        },
        now,
        late,
    );
    assert_eq!(
        out,
        [Out::Media(MediaOp::Restart {
            call: 9,
            offer: "v=0 restart".into()
        })]
    );
    // From someone else it does nothing.
    assert!(b.offer(offer(CAROL, 9, late), now, late).is_empty());
    let out = b.local_sdp(9, "v=0 answer 2".into(), late);
    assert!(matches!(sent(&out)[..], [Body::CallAnswer { call: 9, sdp }] if sdp == "v=0 answer 2"));
    assert_eq!(b.active().map(|x| x.phase), Some(Phase::Connected));
}
