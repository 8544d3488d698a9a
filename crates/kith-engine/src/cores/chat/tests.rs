use super::*;

const ALICE: IdentityKey = IdentityKey([1; 32]);
const BOB: IdentityKey = IdentityKey([2; 32]);
const MIN: u64 = 60_000;

fn alices(at: u64) -> Target {
    Target {
        author: ALICE,
        sent_at_ms: at,
    }
}

fn edit(target: u128, text: &str, at_ms: u64) -> ChatAction {
    ChatAction::Edit {
        target,
        text: text.into(),
        at_ms,
    }
}

fn react(target: u128, emoji: &str) -> ChatAction {
    ChatAction::React {
        target,
        emoji: emoji.into(),
    }
}

#[test]
fn only_the_author_edits_and_only_within_fifteen_minutes() {
    let t = alices(1_000_000);
    let mut m = MessageMeta::default();
    // A hostile contact cannot edit someone else's message.
    assert!(matches!(
        apply(&mut m, Some(&t), BOB, &edit(1, "forged", 1_000_001)),
        Applied::Refused(_)
    ));
    assert_eq!(m.edited_at_ms, 0);
    // The author, at exactly 15 minutes: yes; a millisecond later: no.
    assert_eq!(
        apply(
            &mut m,
            Some(&t),
            ALICE,
            &edit(1, "fixed", 1_000_000 + 15 * MIN)
        ),
        Applied::Done {
            text: Some("fixed".into())
        }
    );
    let mut m2 = MessageMeta::default();
    assert!(matches!(
        apply(
            &mut m2,
            Some(&t),
            ALICE,
            &edit(1, "late", 1_000_001 + 15 * MIN)
        ),
        Applied::Refused(_)
    ));
    // Own edits are judged against now.
    assert!(may_edit(&t, &ALICE, 1_000_000 + 15 * MIN).is_ok());
    assert!(may_edit(&t, &ALICE, 1_000_001 + 15 * MIN).is_err());
    assert!(may_edit(&t, &BOB, 1_000_000).is_err());
}

#[test]
fn the_latest_edit_wins_whatever_the_order() {
    let t = alices(0);
    let mut m = MessageMeta::default();
    assert!(matches!(
        apply(&mut m, Some(&t), ALICE, &edit(1, "second", 2000)),
        Applied::Done { .. }
    ));
    assert_eq!(
        apply(&mut m, Some(&t), ALICE, &edit(1, "first", 1000)),
        Applied::Unchanged
    );
    assert_eq!(m.edited_at_ms, 2000);
}

#[test]
fn only_the_author_deletes_for_everyone_within_the_limit() {
    let t = alices(0);
    let mut m = MessageMeta::default();
    let del = |at_ms| ChatAction::Delete { target: 1, at_ms };
    assert!(matches!(
        apply(&mut m, Some(&t), BOB, &del(1)),
        Applied::Refused(_)
    ));
    assert!(!m.deleted);
    assert!(matches!(
        apply(&mut m, Some(&t), ALICE, &del(DELETE_WINDOW_MS + 1)),
        Applied::Refused(_)
    ));
    apply(&mut m, Some(&t), BOB, &react(1, "👍"));
    assert_eq!(
        apply(&mut m, Some(&t), ALICE, &del(DELETE_WINDOW_MS)),
        Applied::Done {
            text: Some(String::new())
        }
    );
    assert!(m.deleted && m.reactions.is_empty());
    // A repeat changes nothing; a deleted message takes no edit or reaction.
    assert_eq!(apply(&mut m, Some(&t), ALICE, &del(5)), Applied::Unchanged);
    assert_eq!(
        apply(&mut m, Some(&t), ALICE, &edit(1, "back", 10)),
        Applied::Unchanged
    );
    assert_eq!(
        apply(&mut m, Some(&t), BOB, &react(1, "😮")),
        Applied::Unchanged
    );
    assert!(may_delete(&t, &BOB, 0).is_err());
}

#[test]
fn one_reaction_per_person_changeable_and_removable() {
    let t = alices(0);
    let mut m = MessageMeta::default();
    apply(&mut m, Some(&t), BOB, &react(1, "👍"));
    apply(&mut m, Some(&t), ALICE, &react(1, "❤"));
    assert_eq!(
        apply(&mut m, Some(&t), BOB, &react(1, "👍")),
        Applied::Unchanged
    );
    apply(&mut m, Some(&t), BOB, &react(1, "😂"));
    assert_eq!(
        m.reactions,
        vec![(BOB, "😂".to_string()), (ALICE, "❤".to_string())]
    );
    apply(&mut m, Some(&t), BOB, &react(1, ""));
    assert_eq!(m.reactions, vec![(ALICE, "❤".to_string())]);
    assert_eq!(
        apply(&mut m, Some(&t), BOB, &react(1, "")),
        Applied::Unchanged
    );
}

#[test]
fn actions_before_their_message_are_held_then_judged_by_the_same_rules() {
    let mut m = MessageMeta::default();
    // Bob's forged edit and Alice's real one both come before the message.
    assert_eq!(
        apply(&mut m, None, BOB, &edit(1, "forged", 10)),
        Applied::Held
    );
    assert_eq!(
        apply(&mut m, None, ALICE, &edit(1, "real", 20)),
        Applied::Held
    );
    assert_eq!(apply(&mut m, None, BOB, &react(1, "👍")), Applied::Held);
    // A repeat is not held twice.
    assert_eq!(
        apply(&mut m, None, BOB, &react(1, "👍")),
        Applied::Unchanged
    );
    let text = arrived(&mut m, &alices(0));
    assert_eq!(text.as_deref(), Some("real"));
    assert_eq!(m.reactions, vec![(BOB, "👍".to_string())]);
    assert!(m.early.is_empty());
    // A delete before its message leaves a tombstone when it comes.
    let mut d = MessageMeta::default();
    apply(
        &mut d,
        None,
        ALICE,
        &ChatAction::Delete {
            target: 1,
            at_ms: 5,
        },
    );
    assert_eq!(arrived(&mut d, &alices(0)).as_deref(), Some(""));
    assert!(d.deleted);
    // A hostile delete before the message is refused when it comes.
    let mut h = MessageMeta::default();
    apply(
        &mut h,
        None,
        BOB,
        &ChatAction::Delete {
            target: 1,
            at_ms: 5,
        },
    );
    assert_eq!(arrived(&mut h, &alices(0)), None);
    assert!(!h.deleted);
}

#[test]
fn held_actions_are_bounded() {
    let mut m = MessageMeta::default();
    for i in 0..MAX_EARLY_PER_MESSAGE {
        assert_eq!(
            apply(&mut m, None, BOB, &edit(1, "x", i as u64)),
            Applied::Held
        );
    }
    assert!(matches!(
        apply(&mut m, None, BOB, &edit(1, "x", 99)),
        Applied::Refused(_)
    ));
    assert_eq!(m.early.len(), MAX_EARLY_PER_MESSAGE);
}

#[test]
fn the_latest_disappearing_timer_wins() {
    let mut s = ChatSettings::default();
    assert!(set_disappear(&mut s, 300, 10));
    assert_eq!(expires_at(&s, 1000), 1000 + 300_000);
    // An older setting that arrives late does not win.
    assert!(!set_disappear(&mut s, 86_400, 5));
    assert_eq!(s.disappear_secs, 300);
    // Not one of the choices.
    assert!(!set_disappear(&mut s, 7, 20));
    assert!(set_disappear(&mut s, 0, 30));
    assert_eq!(expires_at(&s, 1000), 0);
}

#[test]
fn timers_parse_and_name() {
    for (s, n) in [
        ("off", 0),
        ("5m", 300),
        ("1h", 3600),
        ("1d", 86_400),
        ("7d", 604_800),
        ("90d", 7_776_000),
    ] {
        assert_eq!(parse_disappear(s), Ok(n));
        assert_eq!(timer_name(n), s);
    }
    assert!(parse_disappear("2m").is_err());
    assert!(parse_disappear("13").is_err());
}
