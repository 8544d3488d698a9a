//! Group typing indicators: the engine's I/O for them ("Ada is typing…" in a group). The
//! rules (the send throttle, how long an indicator shows, the bounds) are in
//! [`crate::cores::group_typing`].
//!
//! Data flow:
//!
//! 1. `group.typing` (`kith typing --group NAME`, or the full-screen chat while the user
//!    types in a group): the group must be one this user is a member of; the core decides
//!    whether a signal goes now; it goes as [`Signal::GroupTyping`] to the connected
//!    devices of the other members (the group code keeps a few of them connected), not to
//!    blocked people. Nothing is stored, queued in the outbox or given to a mailbox.
//! 2. A [`Signal::GroupTyping`] from a peer (the network actor rate-limits signals per
//!    peer): the peer must be a known device of a member of that group, and this user a
//!    member too, and the member not blocked; otherwise it is dropped. The core keeps it
//!    for [`TYPING_TTL`](crate::cores::group_typing::TYPING_TTL) and the watchers get an
//!    [`Event::GroupTyping`] with the group's and the member's names.
//! 3. The tick: indicators that ran out go to the watchers as `stopped`.

use kith_proto::signal::{Signal, TypingState};

use super::groups::member_devices;
use super::*;
use crate::cores::group_typing::Shown;
use crate::cores::presence::{parse_typing, typing_name};

impl Engine {
    /// `group.typing` from the command table: `state` is `typing`, `recording` or
    /// `stopped`.
    pub(super) fn group_typing_cmd(&mut self, group: &str, state: &str) -> Result<(), EngineError> {
        let state = parse_typing(state)?;
        let id = self.group_by_query(group)?;
        let me = self.st.me;
        let members = match self.st.groups.states.get(&id) {
            Some(s) if s.members.contains(&me) => s.members.clone(),
            _ => {
                return Err(EngineError::GroupRefused(
                    "you are not a member of this group".into(),
                ));
            }
        };
        if !self.st.groups.typing.send(id, state, Instant::now()) {
            return Ok(());
        }
        let devices = self
            .store
            .read(|r| member_devices(r.devices()?, &members))
            .map_err(internal)?;
        for (_, d) in devices {
            // This user's other devices are not told that this user types.
            if d.identity == me || self.st.social.blocked.contains(&d.identity) {
                continue;
            }
            let Ok(peer) = PeerId::from_bytes(&d.peer_id) else {
                continue;
            };
            if self.st.connected.contains(&peer) {
                self.st.net_send(NetCommand::Signal {
                    tag: None,
                    peer,
                    signal: Signal::GroupTyping { group: id, state },
                });
            }
        }
        Ok(())
    }

    /// A group known by its exact name, or by a unique prefix of its id (4 hex digits or
    /// more).
    pub(super) fn group_by_query(&self, q: &str) -> Result<GroupId, EngineError> {
        let q = q.trim();
        if let Some(id) = self.st.groups.by_name(q) {
            return Ok(id);
        }
        let lower = q.to_ascii_lowercase();
        if lower.len() >= 4 && lower.bytes().all(|b| b.is_ascii_hexdigit()) {
            let mut hits = self
                .st
                .groups
                .states
                .keys()
                .filter(|id| id.to_hex().starts_with(&lower));
            if let (Some(id), None) = (hits.next(), hits.next()) {
                return Ok(*id);
            }
        }
        Err(EngineError::UnknownGroup(q.to_string()))
    }

    /// A [`Signal::GroupTyping`] from `peer`: shown when it comes from a member's device.
    pub(super) fn on_group_typing(&mut self, peer: PeerId, group: GroupId, state: TypingState) {
        let dev = device_key(&peer.to_bytes());
        let Some(member) = self
            .store
            .read(|r| Ok(r.device(&dev)?.map(|d| d.identity)))
            .ok()
            .flatten()
        else {
            return;
        };
        let me = self.st.me;
        let is_member = self
            .st
            .groups
            .states
            .get(&group)
            .is_some_and(|s| s.members.contains(&me) && s.members.contains(&member));
        if !is_member || member == me || self.st.social.blocked.contains(&member) {
            debug!("a group typing signal from a non-member dropped");
            return;
        }
        let shown = self
            .st
            .groups
            .typing
            .received(group, member, state, Instant::now());
        self.show_group_typing(shown);
    }

    /// Every tick: indicators that ran out.
    pub(super) fn group_typing_tick(&mut self) {
        for shown in self.st.groups.typing.tick(Instant::now()) {
            self.show_group_typing(shown);
        }
    }

    fn show_group_typing(&mut self, s: Shown) {
        let Some(name) = self.st.groups.states.get(&s.group).map(|g| g.name.clone()) else {
            return;
        };
        let member = self
            .store
            .read(|r| r.contact(&s.member))
            .ok()
            .flatten()
            .map(|c| c.name)
            .unwrap_or_else(|| format!("~{}", s.member.short()));
        let _ = self.st.events.send(Event::GroupTyping {
            group: name,
            group_id: s.group.to_hex(),
            member,
            state: typing_name(s.state).into(),
        });
    }
}
