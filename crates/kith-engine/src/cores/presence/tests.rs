//! The presence core driven directly, with a fake clock: schedules to the millisecond,
//! what each privacy setting lets out, and the caps.

use super::*;

const ALICE: Identity = kith_types::IdentityKey([1; 32]);
const BOB: Identity = kith_types::IdentityKey([2; 32]);

struct Clock {
    start: Instant,
}

impl Clock {
    fn new() -> Self {
        Self {
            start: Instant::now(),
        }
    }

    /// The time `ms` milliseconds after the start (wall clock at 1,000,000 ms then).
    fn at(&self, ms: u64) -> Now {
        Now {
            at: self.start + Duration::from_millis(ms),
            unix_ms: 1_000_000 + ms,
        }
    }
}

fn social(c: &Clock) -> Social<u32> {
    Social::new(Privacy::default(), None, HashSet::new(), c.start)
}

fn presence(online: bool, last_seen_ms: Option<u64>) -> Signal {
    Signal::Presence(Presence {
        online,
        last_seen_ms,
        profile_version: 0,
    })
}

fn presences(out: &[Out<u32>]) -> Vec<(u32, Presence)> {
    out.iter()
        .filter_map(|o| match o {
            Out::Send {
                peer,
                signal: Signal::Presence(p),
            } => Some((*peer, *p)),
            _ => None,
        })
        .collect()
}

fn shown_offline(out: &[Out<u32>]) -> bool {
    out.iter()
        .any(|o| matches!(o, Out::ShowPresence { online: false, .. }))
}

/// The typing throttle to the millisecond: the same state again only after
/// TYPING_RESEND, another state only after TYPING_GAP, a stop at once.
#[test]
fn typing_throttle_to_the_millisecond() {
    let c = Clock::new();
    let mut s = social(&c);
    s.connected(10, (ALICE, true), c.at(0));
    s.connected(11, (ALICE, true), c.at(0));
    let sends = |out: Vec<Out<u32>>| out.len();
    let t = |ms: u64| c.at(ms).at;
    assert_eq!(sends(s.typing(ALICE, TypingState::Typing, t(0))), 2);
    let resend = TYPING_RESEND.as_millis() as u64;
    assert_eq!(
        sends(s.typing(ALICE, TypingState::Typing, t(resend - 1))),
        0
    );
    assert_eq!(sends(s.typing(ALICE, TypingState::Typing, t(resend))), 2);
    let gap = TYPING_GAP.as_millis() as u64;
    let base = resend;
    assert_eq!(
        sends(s.typing(ALICE, TypingState::Recording, t(base + gap - 1))),
        0,
        "another state waits for the gap"
    );
    assert_eq!(
        sends(s.typing(ALICE, TypingState::Recording, t(base + gap))),
        2
    );
    assert_eq!(
        sends(s.typing(ALICE, TypingState::Stopped, t(base + gap + 1))),
        2,
        "a stop always goes"
    );
    assert_eq!(
        sends(s.typing(ALICE, TypingState::Stopped, t(base + gap + 2))),
        0,
        "but not the same stop twice within the resend time"
    );
    // Nobody connected: nothing to send, but the throttle still counts.
    assert!(s.typing(BOB, TypingState::Typing, t(0)).is_empty());
}

#[test]
fn a_typing_indicator_shows_until_its_ttl_then_stops() {
    let c = Clock::new();
    let mut s = social(&c);
    let out = s.signal(
        None,
        10,
        Some((ALICE, true)),
        Signal::Typing(TypingState::Typing),
        c.at(0),
    );
    assert_eq!(
        out,
        vec![Out::ShowTyping {
            identity: ALICE,
            state: TypingState::Typing
        }]
    );
    let ttl = TYPING_TTL.as_millis() as u64;
    assert_eq!(
        s.shown(&ALICE, c.at(ttl - 1).at).1,
        Some(TypingState::Typing)
    );
    assert!(s.tick(c.at(ttl - 1)).is_empty());
    assert_eq!(s.shown(&ALICE, c.at(ttl).at).1, None);
    assert_eq!(
        s.tick(c.at(ttl)),
        vec![Out::ShowTyping {
            identity: ALICE,
            state: TypingState::Stopped
        }]
    );
    assert!(s.tick(c.at(ttl + 1)).is_empty(), "stopped once");
}

/// A contact whose only device falls silent (no disconnect comes) shows offline at the
/// first silence check at or after PRESENCE_TIMEOUT, with its last seen.
#[test]
fn a_contact_goes_offline_after_presence_timeout_of_silence() {
    let c = Clock::new();
    let mut s = social(&c);
    s.profile_stored(ALICE, 0);
    let out = s.signal(
        None,
        10,
        Some((ALICE, true)),
        presence(true, Some(5)),
        c.at(0),
    );
    assert!(out.contains(&Out::ShowPresence {
        identity: ALICE,
        online: true,
        last_seen: None
    }));
    assert_eq!(s.shown(&ALICE, c.at(0).at).0, Shown::Online);
    let timeout = PRESENCE_TIMEOUT.as_millis() as u64;
    let check = SILENCE_CHECK.as_millis() as u64;
    let mut ms = check;
    while ms < timeout {
        assert!(!shown_offline(&s.tick(c.at(ms))), "still online at {ms} ms");
        ms += check;
    }
    let out = s.tick(c.at(timeout));
    let at = c.at(timeout).unix_ms;
    assert_eq!(
        out.iter()
            .filter(|o| !matches!(o, Out::Send { .. }))
            .cloned()
            .collect::<Vec<_>>(),
        vec![
            Out::StoreLastSeen {
                identity: ALICE,
                at_ms: at
            },
            Out::ShowPresence {
                identity: ALICE,
                online: false,
                last_seen: Some(at)
            },
        ]
    );
    assert_eq!(s.shown(&ALICE, c.at(timeout).at).0, Shown::Away);
    assert!(!shown_offline(&s.tick(c.at(timeout + check))), "once");
}

#[test]
fn a_device_heard_again_stays_online() {
    let c = Clock::new();
    let mut s = social(&c);
    s.profile_stored(ALICE, 0);
    s.signal(None, 10, Some((ALICE, true)), presence(true, None), c.at(0));
    let timeout = PRESENCE_TIMEOUT.as_millis() as u64;
    s.signal(
        None,
        10,
        Some((ALICE, true)),
        presence(true, None),
        c.at(timeout - 1),
    );
    assert!(!shown_offline(&s.tick(c.at(timeout))));
    assert!(!shown_offline(&s.tick(c.at(2 * timeout - 2))));
    // Silent long enough now, but the next check is a SILENCE_CHECK after the last.
    assert!(!shown_offline(&s.tick(c.at(2 * timeout - 1))));
    let check = SILENCE_CHECK.as_millis() as u64;
    assert!(shown_offline(&s.tick(c.at(2 * timeout - 2 + check))));
}

#[test]
fn offline_only_when_the_last_device_goes() {
    let c = Clock::new();
    let mut s = social(&c);
    s.profile_stored(ALICE, 0);
    s.signal(None, 10, Some((ALICE, true)), presence(true, None), c.at(0));
    s.signal(None, 11, Some((ALICE, true)), presence(true, None), c.at(0));
    assert!(s.disconnected(&10, c.at(5)).is_empty());
    assert_eq!(s.shown(&ALICE, c.at(5).at).0, Shown::Online);
    assert_eq!(
        s.disconnected(&11, c.at(6)),
        vec![Out::ShowPresence {
            identity: ALICE,
            online: false,
            last_seen: None
        }],
        "no last seen: they do not share it"
    );
    assert!(s.disconnected(&11, c.at(7)).is_empty(), "an unknown device");
}

#[test]
fn a_goodbye_carries_the_time_but_never_one_from_the_future() {
    let c = Clock::new();
    let mut s = social(&c);
    s.profile_stored(ALICE, 0);
    s.signal(
        None,
        10,
        Some((ALICE, true)),
        presence(true, Some(1)),
        c.at(0),
    );
    let now = c.at(100);
    let out = s.signal(
        None,
        10,
        Some((ALICE, true)),
        presence(false, Some(u64::MAX)),
        now,
    );
    assert_eq!(
        out,
        vec![
            Out::StoreLastSeen {
                identity: ALICE,
                at_ms: now.unix_ms
            },
            Out::ShowPresence {
                identity: ALICE,
                online: false,
                last_seen: Some(now.unix_ms)
            }
        ]
    );
}

#[test]
fn a_contact_that_stops_sharing_last_seen_has_it_forgotten() {
    let c = Clock::new();
    let mut s = social(&c);
    s.profile_stored(ALICE, 0);
    let forget = Out::ForgetLastSeen { identity: ALICE };
    // First word since start: whatever was kept may be stale.
    assert!(
        s.signal(None, 10, Some((ALICE, true)), presence(true, None), c.at(0))
            .contains(&forget)
    );
    assert!(
        !s.signal(None, 10, Some((ALICE, true)), presence(true, None), c.at(1))
            .contains(&forget)
    );
    s.signal(
        None,
        10,
        Some((ALICE, true)),
        presence(true, Some(1)),
        c.at(2),
    );
    assert!(
        s.signal(None, 10, Some((ALICE, true)), presence(true, None), c.at(3))
            .contains(&forget)
    );
}

/// With last seen and online set to nobody, no presence this node sends (on connect,
/// heartbeat, settings change or goodbye) reveals either, to contacts or strangers.
#[test]
fn nobody_never_reveals_last_seen_or_online() {
    let c = Clock::new();
    let mut s = social(&c);
    let nobody = Privacy {
        last_seen: Audience::Nobody,
        online: Audience::Nobody,
        ..Privacy::default()
    };
    let mut sent = presences(&s.set_privacy(nobody, c.at(0)));
    sent.extend(presences(&s.connected(10, (ALICE, true), c.at(0))));
    sent.extend(presences(&s.connected(11, (BOB, false), c.at(0))));
    for ms in (0..=3 * HEARTBEAT.as_millis() as u64).step_by(500) {
        sent.extend(presences(&s.tick(c.at(ms))));
    }
    sent.extend(presences(&s.set_profile(
        s.edit_profile(Some("A".into()), None, None, 5).unwrap(),
        c.at(1),
    )));
    sent.extend(
        s.goodbye(c.at(2))
            .into_iter()
            .filter_map(|(p, sig)| match sig {
                Signal::Presence(x) => Some((p, x)),
                _ => None,
            }),
    );
    assert!(
        sent.len() >= 7,
        "heartbeats and the rest went: {}",
        sent.len()
    );
    for (peer, p) in sent {
        assert!(!p.online, "online shown to {peer}");
        assert_eq!(p.last_seen_ms, None, "last seen shown to {peer}");
    }
}

/// Heartbeats go only to devices allowed to see something: a contact the user added
/// always (even when hidden), a stranger only when online or last seen is `everyone`.
#[test]
fn heartbeats_only_to_those_allowed_to_see_them_on_schedule() {
    let c = Clock::new();
    let mut s = social(&c);
    s.connected(10, (ALICE, true), c.at(0));
    s.connected(20, (BOB, false), c.at(0));
    let hb = HEARTBEAT.as_millis() as u64;
    assert!(
        presences(&s.tick(c.at(hb - 1))).is_empty(),
        "not before HEARTBEAT"
    );
    let out = presences(&s.tick(c.at(hb)));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, 10);
    assert!(out[0].1.online);
    assert_eq!(out[0].1.last_seen_ms, Some(c.at(hb).unix_ms));
    assert!(presences(&s.tick(c.at(2 * hb - 1))).is_empty());
    let mut p = s.privacy.clone();
    p.last_seen = Audience::Everyone;
    s.set_privacy(p, c.at(2 * hb - 1));
    let out = presences(&s.tick(c.at(2 * hb)));
    assert_eq!(
        out.iter().map(|(p, _)| *p).collect::<Vec<_>>(),
        vec![10, 20]
    );
    let stranger = out[1].1;
    assert!(!stranger.online, "online is for contacts");
    assert_eq!(stranger.last_seen_ms, Some(c.at(2 * hb).unix_ms));
}

#[test]
fn blocked_contacts_get_a_blank_presence_then_nothing() {
    let c = Clock::new();
    let mut s = social(&c);
    s.set_profile(
        s.edit_profile(Some("me".into()), None, None, 5).unwrap(),
        c.at(0),
    );
    s.connected(10, (ALICE, true), c.at(0));
    let out = s.block(ALICE);
    assert_eq!(
        presences(&out),
        vec![(
            10,
            Presence {
                online: false,
                last_seen_ms: None,
                profile_version: 0
            }
        )]
    );
    assert!(s.connected(10, (ALICE, true), c.at(1)).is_empty());
    assert!(s.typing(ALICE, TypingState::Typing, c.at(1).at).is_empty());
    assert!(presences(&s.tick(c.at(HEARTBEAT.as_millis() as u64))).is_empty());
    assert_eq!(
        s.signal(
            Some(7),
            10,
            Some((ALICE, true)),
            Signal::GetProfile,
            c.at(2)
        ),
        vec![Out::Answer {
            id: 7,
            answer: SignalAnswer::Ignored
        }]
    );
    s.unblock(&ALICE);
    assert_eq!(s.connected(10, (ALICE, true), c.at(3)).len(), 1);
}

#[test]
fn strangers_signals_are_ignored() {
    let c = Clock::new();
    let mut s = social(&c);
    assert_eq!(
        s.signal(Some(3), 10, None, presence(true, None), c.at(0)),
        vec![Out::Answer {
            id: 3,
            answer: SignalAnswer::Ignored
        }]
    );
    assert!(
        s.signal(None, 10, None, presence(true, None), c.at(0))
            .is_empty()
    );
    assert_eq!(s.shown(&ALICE, c.at(0).at).0, Shown::Away);
}

#[test]
fn the_photo_goes_only_to_those_the_setting_allows() {
    let c = Clock::new();
    let mut s = social(&c);
    let p = s.edit_profile(Some("me".into()), None, None, 5).unwrap();
    let with_photo = Profile {
        avatar: Some(vec![1, 2, 3]),
        ..p
    };
    s.set_profile(with_photo, c.at(0));
    let photo_for = |s: &mut Social<u32>, added: bool| match s
        .signal(
            Some(1),
            10,
            Some((ALICE, added)),
            Signal::GetProfile,
            c.at(1),
        )
        .pop()
    {
        Some(Out::Answer {
            answer: SignalAnswer::Profile(p),
            ..
        }) => p.avatar.is_some(),
        other => panic!("unexpected {other:?}"),
    };
    assert!(photo_for(&mut s, true));
    assert!(!photo_for(&mut s, false));
    let p = s.privacy.with("profile-photo", "nobody").unwrap();
    s.set_privacy(p, c.at(2));
    assert!(!photo_for(&mut s, true));
}

#[test]
fn a_newer_profile_is_asked_for_once_at_a_time() {
    let c = Clock::new();
    let mut s = social(&c);
    assert!(!s.knows_profile_of(&ALICE));
    s.profile_stored(ALICE, 5);
    let newer = |v| {
        Signal::Presence(Presence {
            online: true,
            last_seen_ms: None,
            profile_version: v,
        })
    };
    let ask = Out::AskProfile {
        peer: 10,
        identity: ALICE,
    };
    assert!(
        !s.signal(None, 10, Some((ALICE, true)), newer(5), c.at(0))
            .contains(&ask)
    );
    assert!(
        s.signal(None, 10, Some((ALICE, true)), newer(6), c.at(1))
            .contains(&ask)
    );
    s.asked(42, ALICE);
    assert!(
        !s.signal(None, 10, Some((ALICE, true)), newer(6), c.at(2))
            .contains(&ask)
    );
    assert_eq!(s.answered(42), Some(ALICE));
    assert_eq!(s.answered(42), None);
    s.profile_stored(ALICE, 6);
    assert!(
        !s.signal(None, 10, Some((ALICE, true)), newer(6), c.at(3))
            .contains(&ask)
    );
}

#[test]
fn profile_versions_only_go_up() {
    let c = Clock::new();
    let s = social(&c);
    let p = s.edit_profile(Some(" A ".into()), None, None, 100).unwrap();
    assert_eq!((p.name.as_str(), p.version), ("A", 100));
    let mut s = s;
    s.set_profile(p, c.at(0));
    // A clock set back still gives a newer version.
    let p = s.edit_profile(None, Some("x".into()), None, 50).unwrap();
    assert_eq!(p.version, 101);
    assert!(
        s.edit_profile(Some("x".repeat(1000)), None, None, 200)
            .is_err()
    );
}

#[test]
fn typing_states_parse_and_name() {
    assert_eq!(parse_typing("recording").unwrap(), TypingState::Recording);
    assert!(parse_typing("singing").is_err());
    for t in [
        TypingState::Typing,
        TypingState::Recording,
        TypingState::Stopped,
    ] {
        assert_eq!(parse_typing(typing_name(t)).unwrap(), t);
    }
}

#[test]
fn maps_stay_within_their_caps() {
    let c = Clock::new();
    let mut s = social(&c);
    for i in 0..(MAX_DEVICES_ONLINE as u32 + 10) {
        s.signal(None, i, Some((ALICE, true)), presence(true, None), c.at(0));
    }
    let online = s.seen.get(&ALICE).map_or(0, |x| x.online.len());
    assert_eq!(online, MAX_DEVICES_ONLINE);
    for tag in 0..(MAX_PROFILE_ASKS as u64 + 10) {
        s.asked(tag, BOB);
    }
    assert!(s.profile_asks.len() <= MAX_PROFILE_ASKS);
}

/// Regression (issue 18): Alice added Bob first, so her greeting on connect went to a node
/// that did not know her and was dropped. When Bob then adds her (the connection stays
/// open), his greeting reaches her; she must answer it at once, or Bob sees her only after
/// her next heartbeat (up to 20 s later). Each side answers a device's first word only, so
/// the exchange stops after one round.
#[test]
fn the_first_presence_from_a_device_is_answered_at_once() {
    let c = Clock::new();
    let mut alice = social(&c);
    alice.profile_stored(BOB, 0);
    // Alice's node knew Bob when the connection opened: it greeted him (unheard).
    let greet = alice.connected(20, (BOB, true), c.at(0));
    assert_eq!(presences(&greet).len(), 1);
    // Long before any heartbeat, Bob's first presence arrives: Alice answers it.
    let out = alice.signal(None, 20, Some((BOB, true)), presence(true, None), c.at(10));
    let answers = presences(&out);
    assert_eq!(answers.len(), 1, "{out:?}");
    assert_eq!(answers[0].0, 20);
    assert!(answers[0].1.online);
    // A second presence from the same device is not answered (no ping-pong).
    let again = alice.signal(None, 20, Some((BOB, true)), presence(true, None), c.at(20));
    assert!(presences(&again).is_empty(), "{again:?}");
    // A goodbye is never answered.
    let mut other = social(&c);
    let bye = other.signal(
        None,
        21,
        Some((BOB, true)),
        presence(false, Some(5)),
        c.at(0),
    );
    assert!(presences(&bye).is_empty(), "{bye:?}");
    // And nothing went through the heartbeat schedule: it is not due yet.
    assert!(c.at(20).at < c.start + HEARTBEAT);
}
