//! Catching up: a member asks another (or one of its mailboxes) for the frames it lacks.
//!
//! Gossipsub delivers a frame to the members connected at the time; a member that was away,
//! or lost a frame, catches up with a [`Request::GroupSync`]: it sends, per sender whose key
//! it holds, the seq up to which it holds every frame ([`SenderMark`]), and gets back the
//! frames after those marks (at most [`MAX_SYNC_FRAMES`] and
//! [`MAX_SYNC_BYTES`](kith_proto::groupwire::MAX_SYNC_BYTES), with `more` when cut). Each
//! member keeps [`KEEP_FRAMES_PER_SENDER`](rules::KEEP_FRAMES_PER_SENDER) frames per sender
//! to answer, and answers current members only. Frames that come back take the same checks
//! as gossiped ones (`take_frame`).
//!
//! A catch-up starts when:
//!
//! - a frame shows a gap in its sender's seqs (asked of the peer that handed it over, and
//!   of our mailboxes);
//! - a peer joins one of our topics (it may hold what we missed, and asks us in turn);
//! - a sender's first key arrives (the frames it sent before we knew its device were not
//!   kept);
//! - the round: every [`GROUP_SYNC_EVERY`] each group asks one connected member, which also
//!   covers messages lost at the tail, where no later frame shows a gap.
//!
//! [`SyncTimes`] bounds them: one request per group in flight (until answered or
//! [`SYNC_TIMEOUT`](rules::SYNC_TIMEOUT)), one per (group, peer) every
//! [`SYNC_GAP`](rules::SYNC_GAP); an answer with `more` is followed at once, while answers
//! bring something new. Those rules, the round's choice of
//! whom to dial and ask, the cut of an answer and what is pruned live in
//! [`crate::cores::group_sync`]; this file reads the store and sends and answers.
//!
//! The round also keeps the topic's mesh: a few member devices ([`GROUP_DIALS`]) and the
//! mailboxes of member devices ([`MEMBER_MAILBOX_DIALS`]) are dialled, and member devices
//! that do not have our current key yet (learned since) get it.

use std::collections::HashSet;

use crate::model::Fatal;
use kith_net::{Multiaddr, NetCommand, PeerId, Verdict};
use kith_proto::groupwire::{GroupFrame, MAX_SYNC_FRAMES, SenderMark};
use kith_proto::wire::{Refusal, Request, Response};
use kith_store::{Store, WriteTx, device_key};
use std::time::Instant;

use super::{GROUP_DIALS, GROUP_SYNC_EVERY, Now, member_devices};
use crate::actor::restored::restored_key;
use crate::actor::{After, Engine, Pending, State, decode_addrs};
use crate::cores::group_sync::{self as rules, Answer};
use kith_types::{GroupId, IdentityKey};

/// Mailboxes of member devices a member dials per group in its round, at most.
pub const MEMBER_MAILBOX_DIALS: usize = 16;

/// When catch-ups were asked, to space them out (by peer id).
pub(super) type SyncTimes = rules::SyncTimes<PeerId>;
impl Engine {
    /// Certificates gathered for [`CERT_BATCH_DELAY`](crate::cores::group_late::CERT_BATCH_DELAY)
    /// (or all, at a clean stop) go to the members.
    pub(in crate::actor) fn flush_late_certs(&mut self, all: bool) {
        let now = Now::read();
        let certs = self.st.groups.late_certs.take(now.at, all);
        if certs.is_empty() {
            return;
        }
        self.write_then("cannot pass member certificates on", |st, w, after| {
            st.pass_certs_on(w, &certs, now, after)
        });
    }

    /// Catch-up: each group, at most every [`GROUP_SYNC_EVERY`], asks one connected member
    /// for what it lacks (this covers messages lost at the tail, where no later frame shows
    /// a gap), and keeps a few member devices connected so the topic's mesh holds. Sends
    /// the delivery receipts and the certificates that have waited long enough first.
    pub(in crate::actor) fn groups_tick(&mut self) {
        self.flush_group_receipts(false);
        self.flush_late_certs(false);
        if !self
            .st
            .groups
            .sync
            .round_due(Instant::now(), GROUP_SYNC_EVERY)
        {
            return;
        }
        let ids: Vec<GroupId> = self.st.groups.topics.values().copied().collect();
        for id in ids {
            let Some(state) = self.st.groups.states.get(&id) else {
                continue;
            };
            if !state.members.contains(&self.st.me) {
                continue;
            }
            let members = state.members.clone();
            let devices = self
                .store
                .read(|r| member_devices(r.devices()?, &members))
                .unwrap_or_default();
            // A sender must reach every member device with its key: members whose devices
            // are still unknown are looked up in the DHT (rate-limited). Members who only
            // read need no lookups: a sender's key arrives with its device's certificate.
            let sending = self
                .store
                .read(|r| r.group(&id))
                .ok()
                .flatten()
                .is_some_and(|row| row.out_session.is_some());
            if sending {
                let known: HashSet<IdentityKey> = devices.iter().map(|(_, d)| d.identity).collect();
                let me = self.st.me;
                for m in members.iter().filter(|m| **m != me && !known.contains(*m)) {
                    self.lookup_identity(*m);
                }
            }
            // Member devices that do not have our current key yet (learned since): share it.
            let unshared: Vec<IdentityKey> = self
                .store
                .read(|r| r.group(&id))
                .ok()
                .flatten()
                .filter(|row| row.out_session.is_some())
                .map(|row| {
                    devices
                        .iter()
                        .filter(|(k, _)| !row.out_shared.contains(k.as_bytes()))
                        .map(|(_, d)| d.identity)
                        .collect()
                })
                .unwrap_or_default();
            if !unshared.is_empty() {
                self.write_then("cannot share a group key", |st, w, after| {
                    for who in &unshared {
                        st.group_devices_appeared(w, *who, after)?;
                    }
                    Ok(())
                });
            }
            // The mailboxes of member devices (from their user records): one that keeps the
            // group's frames for its user hears them only while connected to someone on the
            // topic, so members keep a few of them connected while that user is away.
            let mut mailboxes: Vec<(PeerId, Vec<Multiaddr>)> = Vec::new();
            for m in devices.iter().flat_map(|(_, d)| d.mailboxes.iter()) {
                if mailboxes.len() >= MEMBER_MAILBOX_DIALS {
                    break;
                }
                if let Ok(p) = PeerId::from_bytes(&m.peer_id)
                    && p != self.st.net.local_peer()
                    && !mailboxes.iter().any(|(q, _)| *q == p)
                {
                    mailboxes.push((p, decode_addrs(&m.addrs)));
                }
            }
            // Dialled also when connected, which marks the link as in use (not idle).
            for (peer, addrs) in mailboxes {
                self.st.net_send(NetCommand::Dial { peer, addrs });
            }
            let mut connected: Vec<PeerId> = Vec::new();
            let mut others: Vec<(PeerId, Vec<Multiaddr>)> = Vec::new();
            for (_, d) in devices {
                let Ok(p) = PeerId::from_bytes(&d.peer_id) else {
                    continue;
                };
                if self.st.connected.contains(&p) {
                    connected.push(p);
                } else {
                    others.push((p, decode_addrs(&d.addrs)));
                }
            }
            let round = rules::plan_round(&connected, others, GROUP_DIALS, &mut self.st.rng);
            for (peer, addrs) in round.dial {
                self.st.net_send(NetCommand::Dial { peer, addrs });
            }
            if let Some(p) = round.ask {
                self.group_sync(id, p);
            }
        }
    }

    /// Asks `peer` for the frames of group `id` that this node lacks (at most one request
    /// per group in flight, and one per peer every [`SYNC_GAP`](rules::SYNC_GAP)).
    pub(in crate::actor) fn group_sync(&mut self, id: GroupId, peer: PeerId) {
        let now = Instant::now();
        if !self.st.groups.sync.may_ask(id, peer, now) {
            return;
        }
        let Some(have) = sync_marks(&self.store, &id) else {
            return;
        };
        if have.is_empty() {
            return;
        }
        let tag = self.st.tag();
        let req = NetCommand::Request {
            tag,
            peer,
            addrs: Vec::new(),
            req: Request::GroupSync { group: id, have },
        };
        if self.st.net.send(req).is_ok() {
            self.st.groups.sync.asked(id, now);
            self.st
                .pending
                .insert(tag, Pending::GroupSync { group: id });
        }
    }

    /// A peer joined one of our group topics: catch up with it (it may hold what we missed,
    /// and asks us in turn).
    pub(in crate::actor) fn on_gossip_joined(&mut self, peer: PeerId, topic: &str) {
        if let Some(id) = self.st.groups.topics.get(topic).copied() {
            self.group_sync(id, peer);
        }
    }

    /// A catch-up request failed or was answered.
    pub(in crate::actor) fn group_sync_done(&mut self, id: GroupId) {
        self.st.groups.sync.done(&id);
    }
}

impl State {
    /// A member asks for frames it lacks.
    pub(in crate::actor) fn answer_group_sync(
        &mut self,
        w: &WriteTx<'_>,
        peer: PeerId,
        group: GroupId,
        have: Vec<SenderMark>,
    ) -> Result<Response, Fatal> {
        let dev = device_key(&peer.to_bytes());
        let member = match w.device(&dev)? {
            Some(d) => self
                .groups
                .states
                .get(&group)
                .is_some_and(|s| s.members.contains(&d.identity)),
            None => false,
        };
        if !member {
            return Ok(Response::Refused(Refusal::Unauthorized));
        }
        let mut frames = Vec::new();
        let mut answer = Answer::default();
        'outer: for mark in have {
            let rows = w.group_frames_after(&group, &mark.sender, mark.seq, MAX_SYNC_FRAMES)?;
            for (_, row) in rows {
                if !answer.room(row.frame.len()) {
                    break 'outer;
                }
                if let Ok(f) = GroupFrame::decode(&row.frame) {
                    answer.add(row.frame.len());
                    frames.push(f);
                }
            }
        }
        Ok(Response::GroupFrames {
            frames,
            more: answer.more(),
        })
    }

    /// The answer to our catch-up request to a member.
    pub(in crate::actor) fn on_group_frames(
        &mut self,
        w: &mut WriteTx<'_>,
        peer: PeerId,
        group: GroupId,
        frames: Vec<GroupFrame>,
        more: bool,
        after: &mut Vec<After>,
    ) -> Result<(), Fatal> {
        self.groups.sync.done(&group);
        let new = self.receive_frames(w, group, frames, Now::read(), after)?;
        if !more {
            // A member's whole answer is in: our own frames sent before a restore are back.
            w.remove_meta(&restored_key(&group))?;
        }
        // Ask again only while answers bring something new: a peer that keeps answering
        // frames we hold (around a hole it cannot fill) does not keep us asking.
        if rules::follow_up(more, new) {
            self.groups.sync.forget(group, peer);
            after.push(After::GroupSync(group, peer));
        }
        Ok(())
    }

    /// Takes frames a member or a mailbox handed over (with the checks gossiped frames
    /// get); returns how many were not held before.
    pub(in crate::actor) fn take_frames(
        &mut self,
        w: &mut WriteTx<'_>,
        group: GroupId,
        frames: Vec<GroupFrame>,
        after: &mut Vec<After>,
    ) -> Result<usize, Fatal> {
        self.receive_frames(w, group, frames, Now::read(), after)
    }

    /// Takes frames handed over (see `take_frames`) at `now`.
    fn receive_frames(
        &mut self,
        w: &mut WriteTx<'_>,
        group: GroupId,
        frames: Vec<GroupFrame>,
        now: Now,
        after: &mut Vec<After>,
    ) -> Result<usize, Fatal> {
        let mut new = 0usize;
        for f in frames {
            let (sender, seq) = (f.sender, f.seq);
            let held = w.group_frame(&group, &sender, seq)?.is_some();
            if self.take_frame(w, group, f, None, None, now, after)? == Verdict::Accept
                && !held
                && w.group_frame(&group, &sender, seq)?.is_some()
            {
                new += 1;
            }
        }
        Ok(new)
    }

    /// A catch-up request was refused or answered wrongly.
    pub(in crate::actor) fn groups_sync_failed(&mut self, id: GroupId) {
        self.groups.sync.done(&id);
    }

    /// Drops frames beyond what is kept per sender.
    pub(in crate::actor) fn prune_group_frames(
        &mut self,
        w: &mut WriteTx<'_>,
    ) -> Result<(), Fatal> {
        for (id, _) in w.groups()? {
            for (sender, row) in w.group_senders(&id)? {
                if let Some(below) = rules::prune_below(row.max) {
                    w.drop_group_frames(&id, &sender, below)?;
                }
            }
        }
        Ok(())
    }
}

/// What this node holds of a group's frames, per sender whose key it has (the marks of a
/// catch-up request). `None` when the store cannot be read.
pub(in crate::actor) fn sync_marks(store: &Store, id: &GroupId) -> Option<Vec<SenderMark>> {
    let rows = store.read(|r| r.group_senders(id)).ok()?;
    Some(rules::marks(
        rows.into_iter()
            .map(|(sender, row)| (sender, row.keyed, row.contiguous)),
    ))
}
