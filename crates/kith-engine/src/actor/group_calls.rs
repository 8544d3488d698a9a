//! Group calls: the engine's I/O around the group call core
//! ([`crate::cores::group_calls`]); each leg (a direct call with one member) has its own
//! media task, like a 1:1 call's.
//!
//! Data flow:
//!
//! 1. `call` with `group` set (`kith call --group Friends`): the group must be one this
//!    user is a member of, of at most [`MAX_GROUP_CALL`] members, and no other call going
//!    on; the core rings the other members.
//! 2. A [`GroupCallMsg`] from a peer (opened like any message, in the batch's
//!    transaction): handed to the core only when the group is one we are a member of, of
//!    at most [`MAX_GROUP_CALL`] members, and the sender is a member of it (the core also
//!    keeps to the members named when the call rang). Blocked people never get here.
//! 3. The core's outs go the way a 1:1 call's do ([`State::call_outs`]); a leg's media
//!    task is started with the call's sound options, its recording (`--audio-out
//!    rec.wav`) going to `rec-<member>.wav`, one file per member.

use std::path::{Path, PathBuf};

use kith_calls::{MediaEvent, Role};
use kith_proto::group_call::{GroupCallMsg, MAX_GROUP_CALL};

use super::calls::{ContactLookup, call_error, call_hex, direction_str, read_history};
use super::*;
use crate::command::{AnswerParams, CallIdParams, CallParams, Done};
use crate::cores::calls::{CallError, Out as CallOut};
use crate::cores::group_calls::{GroupCallRecord, RoomUpdate};

/// The store's meta key of the group call history.
const GROUP_HISTORY: &str = "group_call_history";

/// The call a media event is about.
pub(super) fn media_call(ev: &MediaEvent) -> u128 {
    match ev {
        MediaEvent::LocalSdp { call, .. }
        | MediaEvent::Connected { call }
        | MediaEvent::Reconnecting { call }
        | MediaEvent::Quality { call, .. }
        | MediaEvent::Notice { call, .. }
        | MediaEvent::Ended { call, .. } => *call,
    }
}

/// `rec.wav` → `rec-<member>.wav`: one recording per leg.
fn leg_file(path: &Path, peer: &IdentityKey) -> PathBuf {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ext = path
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    path.with_file_name(format!("{stem}-{}{ext}", peer.short()))
}

impl super::calls::CallState {
    /// Starts the media task of a group call's leg with `peer`.
    pub(super) fn start_leg(&mut self, call: u128, peer: IdentityKey, role: Role) {
        if self.legs.len() + 1 >= MAX_GROUP_CALL {
            return;
        }
        let opts = kith_calls::MediaOptions {
            ice_servers: self.turn.ice_servers(now_ms() / 1000),
            audio_out: self.opts.audio_out.as_deref().map(|p| leg_file(p, &peer)),
            video_out: self.opts.video_out.as_deref().map(|p| leg_file(p, &peer)),
            ..self.opts.clone()
        };
        let h = kith_calls::spawn(call, role, opts, self.media_tx.clone());
        if let Some(old) = self.legs.insert(call, h) {
            old.stop();
        }
    }
}

impl State {
    /// A group call message from `conv` (opened, not blocked), in the batch's transaction.
    pub(super) fn on_group_call(
        &mut self,
        w: &mut WriteTx<'_>,
        conv: IdentityKey,
        m: GroupCallMsg,
        after: &mut Vec<After>,
    ) -> Result<(), Fatal> {
        let now = now_ms();
        let me = self.me;
        // The group of the message, or of the call going on.
        let group = match &m {
            GroupCallMsg::Ring { group, .. } | GroupCallMsg::Join { group, .. } => Some(*group),
            _ => self
                .calls
                .room
                .active()
                .filter(|r| r.room == m.room())
                .map(|r| r.group),
        };
        let Some(members) = group
            .and_then(|g| self.groups.states.get(&g))
            .map(|s| s.members.clone())
            .filter(|ms| {
                ms.contains(&me) && ms.contains(&conv) && conv != me && ms.len() <= MAX_GROUP_CALL
            })
        else {
            debug!("dropped a group call message from outside the group");
            return Ok(());
        };
        let room = &mut self.calls.room;
        let outs = match m {
            GroupCallMsg::Ring {
                group,
                room: id,
                sent_at_ms,
            } => {
                let others = members.into_iter().filter(|k| *k != me).collect();
                let busy = self.calls.core.active().is_some();
                room.ring(
                    conv,
                    group,
                    id,
                    sent_at_ms,
                    others,
                    busy,
                    Instant::now(),
                    now,
                )
            }
            GroupCallMsg::Join { group, room: id } => {
                let leg = self.ids.next_id().0;
                room.on_join(conv, group, id, leg)
            }
            GroupCallMsg::Offer {
                room: id,
                call,
                sdp,
            } => room.on_offer(conv, id, call, sdp),
            GroupCallMsg::Answer {
                room: id,
                call,
                sdp,
            } => room.on_answer(conv, id, call, sdp),
            GroupCallMsg::Leave { room: id } => room.on_leave(conv, id, now),
        };
        self.call_outs(w, outs, after)
    }

    /// Tells watchers about the group call.
    pub(super) fn room_event(
        &mut self,
        w: &mut WriteTx<'_>,
        u: RoomUpdate,
        after: &mut Vec<After>,
    ) -> Result<(), Fatal> {
        let who = u.peer.unwrap_or_else(|| {
            self.calls
                .room
                .active()
                .filter(|r| r.room == u.room)
                .map_or(u.peer.unwrap_or(self.me), |r| r.host)
        });
        let contact = self.member_name(w, &who)?;
        let group = self.groups.states.get(&u.group).map(|g| g.name.clone());
        let state = match (u.peer, u.state) {
            (Some(_), s) => format!("member_{s}"),
            (None, s) => s.to_string(),
        };
        after.push(After::Event(Event::Call {
            call: call_hex(u.room),
            contact,
            direction: direction_str(u.direction).into(),
            state,
            outcome: u.outcome.map(|o| o.as_str().into()),
            group: Some(group.unwrap_or_else(|| format!("~{}", u.group.to_hex()))),
        }));
        Ok(())
    }

    /// Stores a group call in the history.
    pub(super) fn room_record(
        &mut self,
        w: &mut WriteTx<'_>,
        r: GroupCallRecord,
    ) -> Result<(), Fatal> {
        let mut history: Vec<GroupCallRecord> = read_history(w.meta(GROUP_HISTORY)?);
        history.push(r);
        let over = history
            .len()
            .saturating_sub(crate::cores::calls::MAX_HISTORY);
        history.drain(..over);
        w.set_meta(GROUP_HISTORY, &kith_proto::codec::encode(&history)?)
            .map_err(Fatal::from)
    }

    /// The group call going on, as `call.current` shows it.
    pub(super) fn room_view(&self, w: &impl ContactLookup) -> Option<CallView> {
        let r = self.calls.room.active()?;
        let name = |k: &IdentityKey| match w.name_of(k) {
            n if n.is_empty() => format!("~{}", k.short()),
            n => n,
        };
        Some(CallView {
            call: call_hex(r.room),
            contact: if r.host == self.me {
                "me".into()
            } else {
                name(&r.host)
            },
            direction: direction_str(r.direction).into(),
            state: r.state().into(),
            muted: r.muted,
            group: self.groups.states.get(&r.group).map(|g| g.name.clone()),
            participants: r
                .legs
                .iter()
                .filter(|(_, l)| l.phase == crate::cores::group_calls::LegPhase::Connected)
                .map(|(k, _)| name(k))
                .collect(),
            quality: None,
        })
    }
}

impl Engine {
    /// `call` with `group`: ring the other members of a group.
    pub(super) fn group_call_dial(&mut self, p: CallParams) -> Result<CallView, EngineError> {
        let id = self.group_by_query(&p.to)?;
        let me = self.st.me;
        let members = match self.st.groups.states.get(&id) {
            Some(s) if s.members.contains(&me) => s.members.clone(),
            _ => {
                return Err(EngineError::GroupRefused(
                    "you are not a member of this group".into(),
                ));
            }
        };
        if members.len() > MAX_GROUP_CALL {
            return Err(call_error(CallError::Refused(format!(
                "a group call takes at most {MAX_GROUP_CALL} people; this group has {}",
                members.len()
            ))));
        }
        if self.st.calls.core.active().is_some() {
            return Err(call_error(CallError::Busy));
        }
        let others: Vec<IdentityKey> = members
            .into_iter()
            .filter(|k| *k != me && !self.st.social.blocked.contains(k))
            .collect();
        self.set_call_media(p.media);
        let room = self.st.ids.next_id().0;
        let outs = self
            .st
            .calls
            .room
            .start(id, me, others, room, Instant::now(), now_ms())
            .map_err(call_error)?;
        self.room_then(outs)?
            .ok_or_else(|| EngineError::Internal("the call did not start".into()))
    }

    /// Sets the sound and video files of the next call's media.
    pub(super) fn set_call_media(&mut self, m: crate::command::CallMedia) {
        let o = &mut self.st.calls.opts;
        o.audio_in = m.audio_in;
        o.audio_out = m.audio_out;
        o.audio_device = !m.no_audio_device;
        o.video = m.video || m.video_in.is_some();
        o.video_in = m.video_in;
        o.video_out = m.video_out;
    }

    fn room_then(&mut self, outs: Vec<CallOut>) -> Result<Option<CallView>, EngineError> {
        self.call_then(|_, _, _| Ok(outs))
    }

    /// `call.answer` while a group call rings.
    pub(super) fn group_call_answer(&mut self, p: AnswerParams) -> Result<CallView, EngineError> {
        self.set_call_media(p.media);
        let outs = self.st.calls.room.answer().map_err(call_error)?;
        self.room_then(outs)?
            .ok_or_else(|| EngineError::Internal("the call ended".into()))
    }

    /// `call.hangup` / `call.decline` in a group call.
    pub(super) fn group_call_hangup(&mut self, _p: CallIdParams) -> Result<Done, EngineError> {
        let outs = self.st.calls.room.hangup(now_ms()).map_err(call_error)?;
        self.room_then(outs)?;
        Ok(Done { ok: true })
    }

    /// `call.mute` in a group call.
    pub(super) fn group_call_mute(&mut self, muted: bool) -> Result<CallView, EngineError> {
        let outs = self.st.calls.room.mute(muted).map_err(call_error)?;
        self.room_then(outs)?
            .ok_or_else(|| call_error(CallError::NoCall))
    }

    /// A media event of a group call's leg.
    pub(super) fn on_leg_media(&mut self, ev: MediaEvent) {
        let now = now_ms();
        let room = &mut self.st.calls.room;
        let outs = match ev {
            MediaEvent::LocalSdp { call, sdp } => room.local_sdp(call, sdp),
            MediaEvent::Connected { call } => room.media_connected(call, now),
            MediaEvent::Reconnecting { call } => room.media_reconnecting(call),
            MediaEvent::Quality { .. } => return,
            MediaEvent::Notice { call, text } => {
                // The first leg's notice says it for the call (each leg opens the devices).
                let who = room.leg_peer(call);
                if room.active().is_some_and(|r| r.legs.len() <= 1)
                    && let Some(who) = who
                {
                    let contact = self.store.name_of(&who);
                    let _ = self.st.events.send(Event::Notice {
                        contact,
                        detail: text,
                    });
                }
                return;
            }
            MediaEvent::Ended { call, reason } => {
                debug!(%reason, "a group call leg's media ended");
                self.st.calls.forget_leg(call);
                self.st.calls.room.media_ended(call, now)
            }
        };
        if !outs.is_empty() {
            self.write_then("cannot store a call change", |st, w, after| {
                st.call_outs(w, outs, after)
            });
        }
    }

    /// The group call history, as `calls` lists it.
    pub(super) fn group_call_history(&self) -> Result<Vec<CallRecordView>, EngineError> {
        let history: Vec<GroupCallRecord> = read_history(
            self.store
                .read(|r| r.meta(GROUP_HISTORY))
                .map_err(internal)?,
        );
        Ok(history
            .into_iter()
            .map(|r| CallRecordView {
                call: call_hex(r.room),
                contact: if r.host == self.st.me {
                    "me".into()
                } else {
                    self.store.name_of(&r.host)
                },
                direction: direction_str(r.direction).into(),
                started_at: r.started_ms,
                duration_ms: r.duration_ms,
                outcome: r.outcome.as_str().into(),
                missed: r.outcome == crate::cores::calls::Outcome::Missed,
                group: Some(
                    self.st
                        .groups
                        .states
                        .get(&r.group)
                        .map_or_else(|| format!("~{}", r.group.to_hex()), |g| g.name.clone()),
                ),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_leg_records_to_its_own_file() {
        let k = IdentityKey([0xab; 32]);
        let p = leg_file(Path::new("/tmp/rec.wav"), &k);
        assert_eq!(p, Path::new(&format!("/tmp/rec-{}.wav", k.short())));
        let p = leg_file(Path::new("/tmp/rec"), &k);
        assert_eq!(p, Path::new(&format!("/tmp/rec-{}", k.short())));
    }
}
