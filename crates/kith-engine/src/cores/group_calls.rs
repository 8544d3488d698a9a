//! Group calls: a mesh of direct calls between the members who join, with no I/O. Like
//! [`super::calls`], it is handed the time and returns what to do ([`Out`]); each direct
//! call ("leg") has its own media task, started and fed through [`MediaOp`]s with the
//! leg's call id.
//!
//! Rules:
//!
//! - **Members only.** The actor hands over only signalling from a device of a member of
//!   the group, in a group this user is a member of, of at most [`MAX_GROUP_CALL`] people.
//!   A leg is only ever made with a member named when the call rang.
//! - **One call at a time,** 1:1 or group: a ring that comes while busy is kept as missed.
//! - **Ringing** lasts as long as a 1:1 call's; a ring older than that when it arrives is
//!   kept as missed at once. It stops when every member who was in the call has left.
//! - **Joining.** The one who rang is in the call at once; a member who answers says so
//!   to every member ([`GroupCallMsg::Join`]); every member already in the call offers a
//!   leg to the one who joined. Two members who offer each other a leg at once (both
//!   joined at the same time) keep the leg with the larger call id, on both sides.
//! - **Leaving.** Hanging up tells every member ([`GroupCallMsg::Leave`]) and stops every
//!   leg; a leg whose media ends (the member crashed or went away) is dropped, and the call
//!   goes on with the others. Declining a ringing group call tells nobody: the others talk
//!   on.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use kith_proto::group_call::{GroupCallMsg, MAX_GROUP_CALL};
use kith_proto::wire::Body;
use kith_types::{BoundedSet, GroupId, IdentityKey};
use serde::{Deserialize, Serialize};

use super::calls::{CallError, Direction, MAX_ENDED, MediaOp, Out, Outcome, RING_TIMEOUT};

/// Where one leg (a direct call with one member) is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LegPhase {
    /// Our offer is being made or is on its way.
    Offering,
    /// Descriptions exchanged; media is connecting.
    Connecting,
    /// Media flows.
    Connected,
    /// Media lost its link and is trying to get it back.
    Reconnecting,
}

/// A direct call with one member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Leg {
    /// The leg's call id (its media task's).
    pub call: u128,
    /// We offered it.
    pub outgoing: bool,
    /// Where it is.
    pub phase: LegPhase,
}

/// The group call going on.
#[derive(Clone, Debug)]
pub struct Room {
    /// The group call's id.
    pub room: u128,
    /// The group.
    pub group: GroupId,
    /// Who rang.
    pub host: IdentityKey,
    /// We rang, or they did.
    pub direction: Direction,
    /// We are in the call (we rang, or answered).
    pub joined: bool,
    /// When it started ringing (monotonic).
    pub since: Instant,
    /// When it started ringing (ms).
    pub started_ms: u64,
    /// When the first leg connected (ms).
    pub connected_ms: Option<u64>,
    /// Our sound is muted.
    pub muted: bool,
    /// The legs, by member.
    pub legs: BTreeMap<IdentityKey, Leg>,
    /// The other members of the group when it rang (at most [`MAX_GROUP_CALL`] − 1).
    members: Vec<IdentityKey>,
    /// Members known to be in the call (rang, joined, or a leg with us).
    present: BTreeSet<IdentityKey>,
}

impl Room {
    /// The other members of the group when the call rang.
    pub fn members(&self) -> &[IdentityKey] {
        &self.members
    }

    /// The state watchers see.
    pub fn state(&self) -> &'static str {
        if !self.joined {
            return "ringing";
        }
        let phases = || self.legs.values().map(|l| l.phase);
        if phases().any(|p| p == LegPhase::Connected) {
            "connected"
        } else if phases().any(|p| p == LegPhase::Reconnecting) {
            "reconnecting"
        } else if self.connected_ms.is_none() && self.direction == Direction::Outgoing {
            "ringing"
        } else {
            "connecting"
        }
    }
}

/// A change watchers see: of the call (`peer` none) or of one member in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomUpdate {
    /// The group call.
    pub room: u128,
    /// The group.
    pub group: GroupId,
    /// The member this is about (`joined`, `reconnecting`, `left`), or none for the call.
    pub peer: Option<IdentityKey>,
    /// Which way the call went.
    pub direction: Direction,
    /// For the call: `ringing`, `connecting`, `connected`, `reconnecting`, `ended`.
    pub state: &'static str,
    /// How it ended, when `ended`.
    pub outcome: Option<Outcome>,
}

/// One group call in the history (stored).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupCallRecord {
    /// The group call's id.
    pub room: u128,
    /// The group.
    pub group: GroupId,
    /// Who rang.
    pub host: IdentityKey,
    /// Which way.
    pub direction: Direction,
    /// When it started ringing (ms).
    pub started_ms: u64,
    /// How long we were connected to someone (ms).
    pub duration_ms: u64,
    /// How it ended.
    pub outcome: Outcome,
    /// How many members we talked with.
    pub talked_with: u32,
}

/// The group call of this device.
#[derive(Debug)]
pub struct GroupCalls {
    ring: Duration,
    room: Option<Room>,
    ended: BoundedSet<u128>,
    /// Members we had a connected leg with in the live call.
    talked: BTreeSet<IdentityKey>,
}

impl Default for GroupCalls {
    fn default() -> Self {
        Self::with_ring(RING_TIMEOUT)
    }
}

fn send(to: IdentityKey, m: GroupCallMsg) -> Out {
    Out::Send(to, Body::GroupCall(m))
}

impl GroupCalls {
    /// No group call; one rings for `ring`.
    pub fn with_ring(ring: Duration) -> Self {
        Self {
            ring,
            room: None,
            ended: BoundedSet::new(MAX_ENDED),
            talked: BTreeSet::new(),
        }
    }

    /// The group call going on.
    pub fn active(&self) -> Option<&Room> {
        self.room.as_ref()
    }

    /// The member a leg's call id is with, if it is one of ours.
    pub fn leg_peer(&self, call: u128) -> Option<IdentityKey> {
        let r = self.room.as_ref()?;
        r.legs
            .iter()
            .find(|(_, l)| l.call == call)
            .map(|(who, _)| *who)
    }

    fn update(r: &Room, peer: Option<IdentityKey>, state: &'static str) -> Out {
        Out::Room(RoomUpdate {
            room: r.room,
            group: r.group,
            peer,
            direction: r.direction,
            state,
            outcome: None,
        })
    }

    fn end(&mut self, outcome: Outcome, now_ms: u64, out: &mut Vec<Out>) {
        let Some(r) = self.room.take() else {
            return;
        };
        self.ended.insert(r.room);
        for leg in r.legs.values() {
            out.push(Out::Media(MediaOp::Stop { call: leg.call }));
        }
        let talked = std::mem::take(&mut self.talked);
        out.push(Out::RoomRecord(GroupCallRecord {
            room: r.room,
            group: r.group,
            host: r.host,
            direction: r.direction,
            started_ms: r.started_ms,
            duration_ms: r.connected_ms.map_or(0, |c| now_ms.saturating_sub(c)),
            outcome,
            talked_with: u32::try_from(talked.len()).unwrap_or(u32::MAX),
        }));
        out.push(Out::Room(RoomUpdate {
            room: r.room,
            group: r.group,
            peer: None,
            direction: r.direction,
            state: "ended",
            outcome: Some(outcome),
        }));
    }

    /// The user rings `group`, whose other members are `others` (checked by the actor:
    /// we are a member, at most [`MAX_GROUP_CALL`] people), with the new id `room`.
    pub fn start(
        &mut self,
        group: GroupId,
        me: IdentityKey,
        others: Vec<IdentityKey>,
        room: u128,
        now: Instant,
        now_ms: u64,
    ) -> Result<Vec<Out>, CallError> {
        if self.room.is_some() {
            return Err(CallError::Busy);
        }
        if others.is_empty() || others.len() >= MAX_GROUP_CALL {
            return Err(CallError::Refused(format!(
                "a group call needs 2 to {MAX_GROUP_CALL} members"
            )));
        }
        let mut out: Vec<Out> = others
            .iter()
            .map(|m| {
                send(
                    *m,
                    GroupCallMsg::Ring {
                        group,
                        room,
                        sent_at_ms: now_ms,
                    },
                )
            })
            .collect();
        let r = Room {
            room,
            group,
            host: me,
            direction: Direction::Outgoing,
            joined: true,
            since: now,
            started_ms: now_ms,
            connected_ms: None,
            muted: false,
            legs: BTreeMap::new(),
            members: others,
            present: BTreeSet::new(),
        };
        out.push(Self::update(&r, None, "ringing"));
        self.room = Some(r);
        self.talked.clear();
        Ok(out)
    }

    /// A member rang `group` (checked by the actor); `others` are the group's members
    /// but us (the one who rang among them); `busy` when a 1:1 call is going on.
    #[allow(clippy::too_many_arguments)]
    pub fn ring(
        &mut self,
        from: IdentityKey,
        group: GroupId,
        room: u128,
        sent_at_ms: u64,
        others: Vec<IdentityKey>,
        busy: bool,
        now: Instant,
        now_ms: u64,
    ) -> Vec<Out> {
        if self.ended.contains(&room) || self.room.as_ref().is_some_and(|r| r.room == room) {
            return Vec::new();
        }
        let missed = |started_ms| {
            vec![
                Out::RoomRecord(GroupCallRecord {
                    room,
                    group,
                    host: from,
                    direction: Direction::Incoming,
                    started_ms,
                    duration_ms: 0,
                    outcome: Outcome::Missed,
                    talked_with: 0,
                }),
                Out::Room(RoomUpdate {
                    room,
                    group,
                    peer: None,
                    direction: Direction::Incoming,
                    state: "ended",
                    outcome: Some(Outcome::Missed),
                }),
            ]
        };
        let ring_ms = u64::try_from(self.ring.as_millis()).unwrap_or(u64::MAX);
        if sent_at_ms.saturating_add(ring_ms) <= now_ms {
            self.ended.insert(room);
            return missed(sent_at_ms);
        }
        if busy || self.room.is_some() {
            self.ended.insert(room);
            return missed(now_ms);
        }
        let r = Room {
            room,
            group,
            host: from,
            direction: Direction::Incoming,
            joined: false,
            since: now,
            started_ms: now_ms,
            connected_ms: None,
            muted: false,
            legs: BTreeMap::new(),
            members: others,
            present: BTreeSet::from([from]),
        };
        let out = vec![Self::update(&r, None, "ringing")];
        self.room = Some(r);
        self.talked.clear();
        out
    }

    /// The user answers the ringing group call: the members hear that we joined.
    pub fn answer(&mut self) -> Result<Vec<Out>, CallError> {
        let r = self
            .room
            .as_mut()
            .filter(|r| !r.joined)
            .ok_or(CallError::NothingRinging)?;
        r.joined = true;
        let (group, room) = (r.group, r.room);
        let mut out: Vec<Out> = r
            .members
            .iter()
            .map(|m| send(*m, GroupCallMsg::Join { group, room }))
            .collect();
        out.push(Self::update(r, None, "connecting"));
        Ok(out)
    }

    fn room_of(&mut self, from: &IdentityKey, room: u128) -> Option<&mut Room> {
        self.room
            .as_mut()
            .filter(|r| r.room == room && r.members.contains(from))
    }

    /// `from` joined: if we are in the call, we offer it a leg (`new_call` its id).
    pub fn on_join(
        &mut self,
        from: IdentityKey,
        group: GroupId,
        room: u128,
        new_call: u128,
    ) -> Vec<Out> {
        let Some(r) = self.room_of(&from, room).filter(|r| r.group == group) else {
            return Vec::new();
        };
        r.present.insert(from);
        if !r.joined || r.legs.contains_key(&from) || r.legs.len() + 1 >= MAX_GROUP_CALL {
            return Vec::new();
        }
        r.legs.insert(
            from,
            Leg {
                call: new_call,
                outgoing: true,
                phase: LegPhase::Offering,
            },
        );
        vec![Out::Media(MediaOp::StartCaller { call: new_call })]
    }

    /// A leg's media task made its description: the offer or the answer goes out.
    pub fn local_sdp(&mut self, call: u128, sdp: String) -> Vec<Out> {
        let Some(r) = self.room.as_mut() else {
            return Vec::new();
        };
        let room = r.room;
        let Some((who, leg)) = r.legs.iter().find(|(_, l)| l.call == call) else {
            return Vec::new();
        };
        let m = match leg.outgoing {
            true => GroupCallMsg::Offer { room, call, sdp },
            false => GroupCallMsg::Answer { room, call, sdp },
        };
        vec![send(*who, m)]
    }

    /// `from` offers us a leg.
    pub fn on_offer(&mut self, from: IdentityKey, room: u128, call: u128, sdp: String) -> Vec<Out> {
        let Some(r) = self.room_of(&from, room).filter(|r| r.joined) else {
            return Vec::new();
        };
        r.present.insert(from);
        let mut out = Vec::new();
        match r.legs.get(&from).copied() {
            // The member restarts ICE on the leg it offered.
            Some(l) if l.call == call && !l.outgoing => {
                return vec![Out::Media(MediaOp::Restart { call, offer: sdp })];
            }
            Some(l) if l.call == call => return Vec::new(),
            // Both offered at once: the larger id wins on both sides.
            Some(l) if l.outgoing && l.phase == LegPhase::Offering && l.call > call => {
                return Vec::new();
            }
            // Ours lost, or the member started over (a restart of its node).
            Some(l) => out.push(Out::Media(MediaOp::Stop { call: l.call })),
            None if r.legs.len() + 1 >= MAX_GROUP_CALL => return Vec::new(),
            None => {}
        }
        r.legs.insert(
            from,
            Leg {
                call,
                outgoing: false,
                phase: LegPhase::Connecting,
            },
        );
        out.push(Out::Media(MediaOp::StartCallee { call, offer: sdp }));
        out
    }

    /// `from` answered the leg we offered.
    pub fn on_answer(
        &mut self,
        from: IdentityKey,
        room: u128,
        call: u128,
        sdp: String,
    ) -> Vec<Out> {
        let Some(r) = self.room_of(&from, room) else {
            return Vec::new();
        };
        let Some(l) = r
            .legs
            .get_mut(&from)
            .filter(|l| l.call == call && l.outgoing)
        else {
            return Vec::new();
        };
        if l.phase == LegPhase::Offering {
            l.phase = LegPhase::Connecting;
        }
        vec![Out::Media(MediaOp::Answer { call, sdp })]
    }

    /// `from` left the call (or stopped ringing it).
    pub fn on_leave(&mut self, from: IdentityKey, room: u128, now_ms: u64) -> Vec<Out> {
        let Some(r) = self.room_of(&from, room) else {
            if self.room.as_ref().is_none_or(|r| r.room != room) {
                // Not live: a late ring of it never rings.
                self.ended.insert(room);
            }
            return Vec::new();
        };
        r.present.remove(&from);
        let mut out = Vec::new();
        if let Some(l) = r.legs.remove(&from) {
            out.push(Out::Media(MediaOp::Stop { call: l.call }));
            out.push(Self::update(r, Some(from), "left"));
        }
        if !r.joined && r.present.is_empty() {
            self.end(Outcome::Missed, now_ms, &mut out);
        } else {
            self.end_if_alone(now_ms, &mut out);
        }
        out
    }

    /// After talking, the last member left: the call is over for us too.
    fn end_if_alone(&mut self, now_ms: u64, out: &mut Vec<Out>) {
        if self
            .room
            .as_ref()
            .is_some_and(|r| r.joined && r.connected_ms.is_some() && r.legs.is_empty())
        {
            self.end(Outcome::RemoteHungUp, now_ms, out);
        }
    }

    /// A leg's media connected.
    pub fn media_connected(&mut self, call: u128, now_ms: u64) -> Vec<Out> {
        let Some(who) = self.leg_peer(call) else {
            return Vec::new();
        };
        let Some(r) = self.room.as_mut() else {
            return Vec::new();
        };
        let before = r.state();
        if let Some(l) = r.legs.get_mut(&who) {
            l.phase = LegPhase::Connected;
        }
        r.connected_ms.get_or_insert(now_ms);
        self.talked.insert(who);
        let mut out = vec![Self::update(r, Some(who), "joined")];
        if before != "connected" {
            out.push(Self::update(r, None, "connected"));
        }
        out
    }

    /// A leg's media lost its link.
    pub fn media_reconnecting(&mut self, call: u128) -> Vec<Out> {
        let Some(who) = self.leg_peer(call) else {
            return Vec::new();
        };
        let Some(r) = self.room.as_mut() else {
            return Vec::new();
        };
        if let Some(l) = r.legs.get_mut(&who) {
            l.phase = LegPhase::Reconnecting;
        }
        vec![Self::update(r, Some(who), "reconnecting")]
    }

    /// A leg's media task ended (failed, or the member went away): the leg is dropped and
    /// the call goes on with the others.
    pub fn media_ended(&mut self, call: u128, now_ms: u64) -> Vec<Out> {
        let Some(who) = self.leg_peer(call) else {
            return Vec::new();
        };
        let Some(r) = self.room.as_mut() else {
            return Vec::new();
        };
        r.legs.remove(&who);
        r.present.remove(&who);
        let mut out = vec![Self::update(r, Some(who), "left")];
        self.end_if_alone(now_ms, &mut out);
        out
    }

    /// The user hangs up (or declines the ringing group call).
    pub fn hangup(&mut self, now_ms: u64) -> Result<Vec<Out>, CallError> {
        let r = self.room.as_ref().ok_or(CallError::NoCall)?;
        let mut out = Vec::new();
        let outcome = if !r.joined {
            Outcome::Declined
        } else {
            let room = r.room;
            out.extend(
                r.members
                    .iter()
                    .map(|m| send(*m, GroupCallMsg::Leave { room })),
            );
            match (r.connected_ms, r.direction) {
                (Some(_), _) => Outcome::HungUp,
                (None, Direction::Outgoing) => Outcome::Cancelled,
                (None, Direction::Incoming) => Outcome::Failed,
            }
        };
        self.end(outcome, now_ms, &mut out);
        Ok(out)
    }

    /// Mutes or unmutes our sound on every leg.
    pub fn mute(&mut self, muted: bool) -> Result<Vec<Out>, CallError> {
        let r = self.room.as_mut().ok_or(CallError::NoCall)?;
        r.muted = muted;
        Ok(r.legs
            .values()
            .map(|l| {
                Out::Media(MediaOp::Mute {
                    call: l.call,
                    muted,
                })
            })
            .collect())
    }

    /// Time passed: an unanswered ring becomes missed; a call nobody joined ends.
    pub fn tick(&mut self, now: Instant, now_ms: u64) -> Vec<Out> {
        let Some(r) = &self.room else {
            return Vec::new();
        };
        if now.saturating_duration_since(r.since) < self.ring
            || r.connected_ms.is_some()
            || !r.legs.is_empty()
        {
            return Vec::new();
        }
        let mut out = Vec::new();
        if !r.joined {
            self.end(Outcome::Missed, now_ms, &mut out);
        } else {
            let room = r.room;
            let outcome = match r.direction {
                Direction::Outgoing => Outcome::NoAnswer,
                Direction::Incoming => Outcome::Failed,
            };
            out.extend(
                r.members
                    .iter()
                    .map(|m| send(*m, GroupCallMsg::Leave { room })),
            );
            self.end(outcome, now_ms, &mut out);
        }
        out
    }
}

#[cfg(test)]
mod tests;
