//! Group typing indicators: "Ada is typing…" in a group, with no I/O and no clock.
//!
//! A member that types in a group sends [`Signal::GroupTyping`](kith_proto::signal::Signal)
//! to the connected devices of the other members, pairwise on `/kith/signal/1`: never
//! stored, never mailboxed, never published on the group's topic (a typing frame there
//! would take a place in the sender's sequence that members keep and catch up on). The
//! receiver checks, in the actor, that the sending device belongs to a member of a group it
//! is in itself; this core only decides:
//!
//! - **Sending** ([`GroupTyping::send`]): the same state at most once per [`TYPING_RESEND`]
//!   per group, any two at least [`TYPING_GAP`] apart, a stop at once (the pairwise rules of
//!   the presence core), for at most [`MAX_TYPING_GROUPS`] groups at a time.
//! - **Showing** ([`GroupTyping::received`], [`GroupTyping::tick`]): a member shows as
//!   typing for [`TYPING_TTL`] after its last signal, unless it says it stopped; at most
//!   [`MAX_SHOWN`] (group, member) pairs are tracked, the oldest dropped first.

use std::time::Instant;

use kith_proto::signal::TypingState;
use kith_types::{BoundedMap, GroupId, IdentityKey};

pub use super::presence::{TYPING_GAP, TYPING_RESEND, TYPING_TTL};

/// Most groups whose last typing signal this user sent is remembered (for the throttle).
pub const MAX_TYPING_GROUPS: usize = 1024;
/// Most (group, member) typing indicators shown at once.
pub const MAX_SHOWN: usize = 4096;

/// What to show: a member of a group started or stopped typing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shown {
    /// The group.
    pub group: GroupId,
    /// The member.
    pub member: IdentityKey,
    /// What they do now (`Stopped` when it ran out).
    pub state: TypingState,
}

/// The group typing state of one node.
#[derive(Debug)]
pub struct GroupTyping {
    /// The last state this user sent per group, and when.
    sent: BoundedMap<GroupId, (TypingState, Instant)>,
    /// Members shown typing, until when.
    shown: BoundedMap<(GroupId, IdentityKey), Instant>,
}

impl Default for GroupTyping {
    fn default() -> Self {
        Self {
            sent: BoundedMap::new(MAX_TYPING_GROUPS),
            shown: BoundedMap::new(MAX_SHOWN),
        }
    }
}

impl GroupTyping {
    /// This user types in `group`: whether to send the signal now.
    pub fn send(&mut self, group: GroupId, state: TypingState, now: Instant) -> bool {
        if let Some((last, at)) = self.sent.get(&group) {
            let since = now.saturating_duration_since(*at);
            let repeat = *last == state && since < TYPING_RESEND;
            let too_soon = state != TypingState::Stopped && since < TYPING_GAP;
            if repeat || too_soon {
                return false;
            }
        }
        self.sent.insert(group, (state, now));
        true
    }

    /// A member of `group` (checked by the caller) signalled `state`: what to show.
    pub fn received(
        &mut self,
        group: GroupId,
        member: IdentityKey,
        state: TypingState,
        now: Instant,
    ) -> Shown {
        match state {
            TypingState::Stopped => {
                self.shown.remove(&(group, member));
            }
            _ => {
                self.shown.insert((group, member), now + TYPING_TTL);
            }
        }
        Shown {
            group,
            member,
            state,
        }
    }

    /// Indicators that ran out (shown as stopped), and old throttle entries forgotten.
    pub fn tick(&mut self, now: Instant) -> Vec<Shown> {
        let mut out = Vec::new();
        self.shown.retain(|(group, member), until| {
            let keep = *until > now;
            if !keep {
                out.push(Shown {
                    group: *group,
                    member: *member,
                    state: TypingState::Stopped,
                });
            }
            keep
        });
        self.sent
            .retain(|_, (_, at)| now.saturating_duration_since(*at) < TYPING_TTL);
        out
    }

    /// Members shown typing in `group` now.
    pub fn typing_in(&self, group: &GroupId, now: Instant) -> Vec<IdentityKey> {
        self.shown
            .iter()
            .filter(|((g, _), until)| g == group && **until > now)
            .map(|((_, m), _)| *m)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ms(base: Instant, n: u64) -> Instant {
        base + Duration::from_millis(n)
    }

    #[test]
    fn sending_is_throttled_per_group_and_a_stop_goes_at_once() {
        let t0 = Instant::now();
        let mut g = GroupTyping::default();
        let (a, b) = (GroupId::from([1; 16]), GroupId::from([2; 16]));
        assert!(g.send(a, TypingState::Typing, t0));
        assert!(!g.send(a, TypingState::Typing, ms(t0, 100)));
        // Another group has its own throttle.
        assert!(g.send(b, TypingState::Typing, ms(t0, 100)));
        let resend = TYPING_RESEND.as_millis() as u64;
        assert!(!g.send(a, TypingState::Typing, ms(t0, resend - 1)));
        assert!(g.send(a, TypingState::Typing, ms(t0, resend)));
        assert!(g.send(a, TypingState::Stopped, ms(t0, resend + 1)));
        assert!(!g.send(a, TypingState::Stopped, ms(t0, resend + 2)));
    }

    #[test]
    fn an_indicator_shows_until_its_ttl_or_a_stop_and_stays_bounded() {
        let t0 = Instant::now();
        let mut g = GroupTyping::default();
        let grp = GroupId::from([1; 16]);
        let ada = IdentityKey::from([5; 32]);
        let s = g.received(grp, ada, TypingState::Typing, t0);
        assert_eq!(s.state, TypingState::Typing);
        assert_eq!(g.typing_in(&grp, t0), vec![ada]);
        let ttl = TYPING_TTL.as_millis() as u64;
        assert!(g.tick(ms(t0, ttl - 1)).is_empty());
        let gone = g.tick(ms(t0, ttl));
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].state, TypingState::Stopped);
        assert!(g.typing_in(&grp, ms(t0, ttl)).is_empty());
        // A stop removes it at once (nothing more to expire).
        g.received(grp, ada, TypingState::Typing, t0);
        g.received(grp, ada, TypingState::Stopped, t0);
        assert!(g.tick(ms(t0, ttl)).is_empty());
        // A flood of members never grows the state past its bound.
        for i in 0..(MAX_SHOWN + 10) {
            let mut k = [0u8; 32];
            k[..8].copy_from_slice(&(i as u64).to_le_bytes());
            g.received(grp, IdentityKey::from(k), TypingState::Typing, t0);
        }
        assert_eq!(g.typing_in(&grp, t0).len(), MAX_SHOWN);
    }
}
