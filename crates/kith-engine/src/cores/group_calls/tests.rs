use super::*;

fn key(n: u8) -> IdentityKey {
    IdentityKey([n; 32])
}

const G: GroupId = GroupId([7; 16]);

fn sends(out: &[Out]) -> Vec<(IdentityKey, GroupCallMsg)> {
    out.iter()
        .filter_map(|o| match o {
            Out::Send(to, Body::GroupCall(m)) => Some((*to, m.clone())),
            _ => None,
        })
        .collect()
}

fn started(out: &[Out]) -> Vec<MediaOp> {
    out.iter()
        .filter_map(|o| match o {
            Out::Media(op) => Some(op.clone()),
            _ => None,
        })
        .collect()
}

fn states(out: &[Out]) -> Vec<(Option<IdentityKey>, &'static str)> {
    out.iter()
        .filter_map(|o| match o {
            Out::Room(u) => Some((u.peer, u.state)),
            _ => None,
        })
        .collect()
}

/// A (1) rings the group of A, B (2), C (3); B answers; the leg A–B is made.
fn a_rings_and_b_joins(now: Instant) -> (GroupCalls, GroupCalls, u128) {
    let (a, b, c) = (key(1), key(2), key(3));
    let mut ga = GroupCalls::default();
    let mut gb = GroupCalls::default();
    let out = ga.start(G, a, vec![b, c], 100, now, 1_000).unwrap();
    let rings = sends(&out);
    assert_eq!(rings.len(), 2, "the two others are rung");
    assert_eq!(states(&out), vec![(None, "ringing")]);
    let out = gb.ring(a, G, 100, 1_000, vec![a, c], false, now, 1_000);
    assert_eq!(states(&out), vec![(None, "ringing")]);
    let out = gb.answer().unwrap();
    let joins = sends(&out);
    assert_eq!(joins.len(), 2);
    assert!(
        joins
            .iter()
            .all(|(_, m)| matches!(m, GroupCallMsg::Join { room: 100, .. }))
    );
    // A is in the call: it offers B a leg.
    let out = ga.on_join(b, G, 100, 500);
    assert_eq!(started(&out), vec![MediaOp::StartCaller { call: 500 }]);
    let out = ga.local_sdp(500, "offer".into());
    let [(to, GroupCallMsg::Offer { call: 500, .. })] = sends(&out)[..] else {
        panic!("an offer to B: {out:?}");
    };
    assert_eq!(to, b);
    let out = gb.on_offer(a, 100, 500, "offer".into());
    assert_eq!(
        started(&out),
        vec![MediaOp::StartCallee {
            call: 500,
            offer: "offer".into()
        }]
    );
    let out = gb.local_sdp(500, "answer".into());
    assert!(matches!(
        sends(&out)[..],
        [(_, GroupCallMsg::Answer { call: 500, .. })]
    ));
    let out = ga.on_answer(b, 100, 500, "answer".into());
    assert_eq!(
        started(&out),
        vec![MediaOp::Answer {
            call: 500,
            sdp: "answer".into()
        }]
    );
    (ga, gb, 500)
}

#[test]
fn a_member_who_answers_gets_a_leg_from_the_one_who_rang() {
    let now = Instant::now();
    let (mut ga, mut gb, leg) = a_rings_and_b_joins(now);
    let out = ga.media_connected(leg, 2_000);
    assert_eq!(
        states(&out),
        vec![(Some(key(2)), "joined"), (None, "connected")]
    );
    let out = gb.media_connected(leg, 2_000);
    assert_eq!(
        states(&out),
        vec![(Some(key(1)), "joined"), (None, "connected")]
    );
    // B hangs up: A hears it, the leg stops, and A, alone, ends too.
    let out = gb.hangup(5_000).unwrap();
    assert!(
        sends(&out)
            .iter()
            .all(|(_, m)| matches!(m, GroupCallMsg::Leave { room: 100 }))
    );
    assert!(started(&out).contains(&MediaOp::Stop { call: leg }));
    let out = ga.on_leave(key(2), 100, 5_000);
    assert!(started(&out).contains(&MediaOp::Stop { call: leg }));
    assert!(ga.active().is_none(), "the last one left");
    assert!(out.iter().any(|o| matches!(
        o,
        Out::RoomRecord(GroupCallRecord {
            outcome: Outcome::RemoteHungUp,
            talked_with: 1,
            ..
        })
    )));
}

#[test]
fn two_members_who_offer_each_other_at_once_keep_the_larger_call() {
    let now = Instant::now();
    let (a, b, c) = (key(1), key(2), key(3));
    let mut gb = GroupCalls::default();
    let mut gc = GroupCalls::default();
    gb.ring(a, G, 100, 1_000, vec![a, c], false, now, 1_000);
    gc.ring(a, G, 100, 1_000, vec![a, b], false, now, 1_000);
    gb.answer().unwrap();
    gc.answer().unwrap();
    // Each hears the other's join and offers a leg.
    assert_eq!(gb.on_join(c, G, 100, 700).len(), 1);
    assert_eq!(gc.on_join(b, G, 100, 900).len(), 1);
    // C's offer (900) reaches B: B's own (700) loses; B's reaches C: ignored.
    let out = gb.on_offer(c, 100, 900, "c".into());
    assert_eq!(
        started(&out),
        vec![
            MediaOp::Stop { call: 700 },
            MediaOp::StartCallee {
                call: 900,
                offer: "c".into()
            }
        ]
    );
    assert!(gc.on_offer(b, 100, 700, "b".into()).is_empty());
    assert_eq!(gb.leg_peer(900), Some(c));
    assert_eq!(gc.leg_peer(900), Some(b));
}

#[test]
fn someone_not_in_the_group_gets_no_leg_and_stops_nothing() {
    let now = Instant::now();
    let (mut ga, _, leg) = a_rings_and_b_joins(now);
    let eve = key(9);
    assert!(ga.on_join(eve, G, 100, 800).is_empty());
    assert!(ga.on_offer(eve, 100, 801, "x".into()).is_empty());
    assert!(ga.on_leave(eve, 100, 2_000).is_empty());
    assert!(ga.on_answer(eve, 100, leg, "x".into()).is_empty());
    // A join for another group's id with the same room changes nothing either.
    assert!(ga.on_join(key(3), GroupId([8; 16]), 100, 802).is_empty());
    assert_eq!(ga.active().map(|r| r.legs.len()), Some(1));
}

#[test]
fn a_late_or_busy_ring_is_missed_and_an_unanswered_one_times_out() {
    let now = Instant::now();
    let mut g = GroupCalls::with_ring(Duration::from_secs(45));
    // Sent 50 s ago (it waited in a mailbox).
    let out = g.ring(key(1), G, 1, 0, vec![key(1)], false, now, 50_000);
    assert_eq!(states(&out), vec![(None, "ended")]);
    assert!(g.active().is_none());
    // Busy in a 1:1 call.
    let out = g.ring(key(1), G, 2, 50_000, vec![key(1)], true, now, 50_000);
    assert_eq!(states(&out), vec![(None, "ended")]);
    // Rings, nobody answers.
    g.ring(key(1), G, 3, 50_000, vec![key(1)], false, now, 50_000);
    assert!(g.tick(now + Duration::from_secs(10), 60_000).is_empty());
    let out = g.tick(now + Duration::from_secs(46), 96_000);
    assert!(out.iter().any(|o| matches!(
        o,
        Out::RoomRecord(GroupCallRecord {
            outcome: Outcome::Missed,
            ..
        })
    )));
    // The one who rang gives up before: missed at once.
    g.ring(
        key(1),
        G,
        4,
        100_000,
        vec![key(1), key(3)],
        false,
        now,
        100_000,
    );
    let out = g.on_leave(key(1), 4, 100_500);
    assert_eq!(states(&out), vec![(None, "ended")]);
}

#[test]
fn a_lost_leg_is_dropped_and_the_call_goes_on_with_the_others() {
    let now = Instant::now();
    let (mut ga, _, leg) = a_rings_and_b_joins(now);
    ga.media_connected(leg, 2_000);
    // C joins too.
    assert_eq!(ga.on_join(key(3), G, 100, 600).len(), 1);
    ga.media_connected(600, 2_500);
    // B's daemon dies: its leg's media ends.
    let out = ga.media_ended(leg, 9_000);
    assert_eq!(states(&out), vec![(Some(key(2)), "left")]);
    let r = ga.active().expect("still in the call with C");
    assert_eq!(r.legs.len(), 1);
    assert_eq!(r.state(), "connected");
    // Mute reaches the remaining leg.
    assert_eq!(
        started(&ga.mute(true).unwrap()),
        vec![MediaOp::Mute {
            call: 600,
            muted: true
        }]
    );
}
