//! Calls: the engine's I/O around the call core ([`crate::cores::calls`]) and the media task
//! of the live call ([`kith_calls`]).
//!
//! Data flow:
//!
//! 1. A user command (`call`, `call.answer`, `call.decline`, `call.hangup`, `call.mute`)
//!    runs after the batch on the engine: it looks the contact up, runs the core and carries
//!    out what it says in one write transaction ([`State::call_outs`]).
//! 2. A signalling body from a peer (offer, answer, hang-up, decline) is opened like any
//!    message, inside the batch's transaction; [`State::on_call_body`] tells the core
//!    whether the sender is a contact the user added (a stranger's offer never rings;
//!    a blocked contact's envelopes never get here).
//! 3. The core's outs: bodies to send go through the ordinary outbox ([`State::enqueue`]):
//!    sealed with Olm to every device of the person, so the SDP with its DTLS fingerprint is
//!    bound to the identity we verified; media operations wait for the commit
//!    ([`After::CallMedia`]); history records are written in the same transaction; state
//!    updates become [`Event::Call`] for watchers.
//! 4. The media task runs on its own (one tokio task per call) and reports on a bounded
//!    channel the loop drains ([`Engine::on_media`]): its description (which goes out as an
//!    offer or answer), connected, reconnecting, quality (straight to watchers, no write),
//!    ended. Audio never passes through the engine and never waits on a commit.
//! 5. Every tick the core's ringing timer runs ([`Engine::calls_tick`]).

use std::collections::HashMap;
use std::net::IpAddr;

use kith_calls::{MediaEvent, MediaHandle, MediaOptions, Role};

use super::group_calls::media_call;
use super::*;
use crate::command::{AnswerParams, CallIdParams, CallParams, Done};
use crate::cores::calls::{
    CallError, CallRecord, Calls, Direction, MAX_HISTORY, MediaOp, Offer, Out as CallOut,
};
use crate::cores::group_calls::GroupCalls;

/// Capacity of the channel media tasks report on.
pub const MEDIA_EVENTS: usize = 256;
/// The store's meta key of the call history.
const HISTORY: &str = "call_history";
/// How long a stopping node waits for the call's media to finish its recording.
const STOP_WAIT: Duration = Duration::from_secs(2);
/// Most bytes of stored history read back.
const HISTORY_BYTES: usize = 1 << 20;

/// How calls are set up on this node.
#[derive(Debug, Clone)]
pub struct CallConfig {
    /// The address calls' UDP sockets bind (`0.0.0.0`: every interface but loopback;
    /// `127.0.0.1` for calls on one machine).
    pub bind: IpAddr,
    /// How long a call rings before it is missed or unanswered.
    pub ring: Duration,
}

impl Default for CallConfig {
    fn default() -> Self {
        Self {
            bind: IpAddr::from([0, 0, 0, 0]),
            ring: crate::cores::calls::RING_TIMEOUT,
        }
    }
}

/// The engine's side of calls.
pub(super) struct CallState {
    pub(super) core: Calls,
    /// The group call ([`crate::cores::group_calls`]).
    pub(super) room: GroupCalls,
    media: Option<MediaHandle>,
    /// The media tasks of the group call's legs, by call id (at most
    /// [`kith_proto::group_call::MAX_GROUP_CALL`] − 1).
    pub(super) legs: HashMap<u128, MediaHandle>,
    pub(super) media_tx: mpsc::Sender<MediaEvent>,
    /// Sound files and bind address of the live call's media.
    pub(super) opts: MediaOptions,
    /// TURN servers learnt from our mailboxes.
    pub(super) turn: super::turn::TurnServers,
    /// The live call's last quality figures (its id with them).
    quality: Option<(u128, CallQualityView)>,
}

impl CallState {
    pub(super) fn new(cfg: &CallConfig, media_tx: mpsc::Sender<MediaEvent>) -> Self {
        Self {
            core: Calls::with_ring(cfg.ring),
            room: GroupCalls::with_ring(cfg.ring),
            media: None,
            legs: HashMap::new(),
            media_tx,
            opts: MediaOptions {
                bind: cfg.bind,
                ..MediaOptions::default()
            },
            turn: Default::default(),
            quality: None,
        }
    }

    /// A leg's media task ended by itself.
    pub(super) fn forget_leg(&mut self, call: u128) {
        self.legs.remove(&call);
    }

    /// The media task of a call or of a group call's leg.
    fn handle(&self, call: u128) -> Option<&MediaHandle> {
        self.legs
            .get(&call)
            .or(self.media.as_ref().filter(|h| h.call() == call))
    }

    /// Carries out a media operation (after the commit).
    pub(super) fn media_op(&mut self, op: MediaOp) {
        match op {
            MediaOp::StartCaller { call } => self.start(call, Role::Caller),
            MediaOp::StartCallee { call, offer } => self.start(call, Role::Callee { offer }),
            MediaOp::Answer { call, sdp } => {
                if let Some(h) = self.handle(call) {
                    h.remote_answer(sdp);
                }
            }
            MediaOp::Restart { call, offer } => {
                if let Some(h) = self.handle(call) {
                    h.remote_offer(offer);
                }
            }
            MediaOp::Mute { call, muted } => {
                if let Some(h) = self.handle(call) {
                    h.mute(muted);
                }
            }
            MediaOp::Stop { call } => {
                if let Some(h) = self.legs.remove(&call) {
                    h.stop();
                } else if let Some(h) = self.media.as_ref().filter(|h| h.call() == call) {
                    h.stop();
                    self.media = None;
                }
            }
        }
    }

    fn start(&mut self, call: u128, role: Role) {
        if let Some(peer) = self.room.leg_peer(call) {
            self.start_leg(call, peer, role);
            return;
        }
        if let Some(old) = self.media.take() {
            old.stop();
        }
        let opts = MediaOptions {
            ice_servers: self.turn.ice_servers(now_ms() / 1000),
            ..self.opts.clone()
        };
        self.media = Some(kith_calls::spawn(call, role, opts, self.media_tx.clone()));
    }
}

pub(super) fn call_error(e: CallError) -> EngineError {
    EngineError::Call(e.to_string())
}

/// A call id as shown: 32 hex digits.
pub(super) fn call_hex(call: u128) -> String {
    format!("{call:032x}")
}

pub(super) fn direction_str(d: Direction) -> &'static str {
    match d {
        Direction::Outgoing => "outgoing",
        Direction::Incoming => "incoming",
    }
}

impl State {
    /// Carries out what the call core decided, inside a write transaction.
    pub(super) fn call_outs(
        &mut self,
        w: &mut WriteTx<'_>,
        outs: Vec<CallOut>,
        after: &mut Vec<After>,
    ) -> Result<(), Fatal> {
        for out in outs {
            match out {
                CallOut::Send(peer, body) => {
                    if !self.social.blocked.contains(&peer) {
                        self.enqueue(w, &peer, &body, Vec::new(), after)?;
                    }
                }
                CallOut::Media(op) => after.push(After::CallMedia(op)),
                CallOut::Emit(u) => {
                    let contact = w.contact(&u.peer)?.map(|c| c.name).unwrap_or_default();
                    after.push(After::Event(Event::Call {
                        call: call_hex(u.call),
                        contact,
                        direction: direction_str(u.direction).into(),
                        state: u.state.into(),
                        outcome: u.outcome.map(|o| o.as_str().into()),
                        group: None,
                    }));
                }
                CallOut::Room(u) => self.room_event(w, u, after)?,
                CallOut::RoomRecord(r) => self.room_record(w, r)?,
                CallOut::Record(r) => {
                    let mut history = read_history(w.meta(HISTORY)?);
                    history.push(r);
                    let over = history.len().saturating_sub(MAX_HISTORY);
                    history.drain(..over);
                    w.set_meta(HISTORY, &kith_proto::codec::encode(&history)?)?;
                }
            }
        }
        Ok(())
    }

    /// A call signalling body from `conv` (opened, not blocked), in the batch's transaction.
    pub(super) fn on_call_body(
        &mut self,
        w: &mut WriteTx<'_>,
        conv: IdentityKey,
        body: Body,
        after: &mut Vec<After>,
    ) -> Result<(), Fatal> {
        let now_ms = now_ms();
        let outs = match body {
            Body::CallOffer {
                call,
                sent_at_ms,
                sdp,
                ..
            } => {
                let contact = w.contact(&conv)?.is_some_and(|c| c.added_by_user);
                let offer = Offer {
                    from: conv,
                    contact,
                    call,
                    sent_at_ms,
                    sdp,
                };
                self.calls.core.elsewhere = self.calls.room.active().is_some();
                self.calls.core.offer(offer, Instant::now(), now_ms)
            }
            Body::CallAnswer { call, sdp } => self.calls.core.remote_answer(conv, call, sdp),
            Body::CallHangup { call } => self.calls.core.remote_hangup(conv, call, now_ms),
            Body::CallDecline { call, busy } => {
                self.calls.core.remote_decline(conv, call, busy, now_ms)
            }
            Body::GroupCall(m) => return self.on_group_call(w, conv, m, after),
            // Candidates come inside the descriptions; trickle is not used yet.
            _ => Vec::new(),
        };
        self.call_outs(w, outs, after)
    }

    fn call_view(&self, w: &impl ContactLookup) -> Option<CallView> {
        if self.calls.room.active().is_some() {
            return self.room_view(w);
        }
        let a = self.calls.core.active()?;
        Some(CallView {
            call: call_hex(a.call),
            contact: w.name_of(&a.peer),
            direction: direction_str(a.direction).into(),
            state: a.phase.as_str().into(),
            muted: a.muted,
            group: None,
            participants: Vec::new(),
            quality: self
                .calls
                .quality
                .filter(|(c, _)| *c == a.call)
                .map(|(_, q)| q),
        })
    }
}

/// Finds a contact's name (in a write transaction or a read).
pub(super) trait ContactLookup {
    fn name_of(&self, who: &IdentityKey) -> String;
}

impl ContactLookup for Store {
    fn name_of(&self, who: &IdentityKey) -> String {
        self.read(|r| r.contact(who))
            .ok()
            .flatten()
            .map(|c| c.name)
            .unwrap_or_default()
    }
}

pub(super) fn read_history<T: serde::de::DeserializeOwned>(bytes: Option<Vec<u8>>) -> Vec<T> {
    bytes
        .and_then(|b| kith_proto::codec::decode(&b, HISTORY_BYTES).ok())
        .unwrap_or_default()
}

/// Finds the call a user named by id (or its start).
fn parse_call(given: &Option<String>, active: Option<u128>) -> Result<Option<u128>, EngineError> {
    let Some(s) = given else {
        return Ok(None);
    };
    let s = s.trim().to_ascii_lowercase();
    match active {
        Some(a) if !s.is_empty() && call_hex(a).starts_with(&s) => Ok(Some(a)),
        _ => Err(EngineError::Call(format!("no call {s} is going on"))),
    }
}

impl Engine {
    /// Runs the call core on a user command and carries out its outs; returns the view of
    /// the live call afterwards.
    pub(super) fn call_then(
        &mut self,
        f: impl FnOnce(&mut Calls, Instant, u64) -> Result<Vec<CallOut>, CallError>,
    ) -> Result<Option<CallView>, EngineError> {
        let outs = f(&mut self.st.calls.core, Instant::now(), now_ms()).map_err(call_error)?;
        if !self.write_then("cannot store a call change", |st, w, after| {
            st.call_outs(w, outs, after)
        }) {
            return Err(EngineError::Internal("the store could not commit".into()));
        }
        Ok(self.st.call_view(&self.store))
    }

    /// `call`: ring every device of a contact.
    pub(super) fn call_dial(&mut self, p: CallParams) -> Result<CallView, EngineError> {
        if p.group {
            return self.group_call_dial(p);
        }
        if self.st.calls.room.active().is_some() {
            return Err(call_error(CallError::Busy));
        }
        let c = self
            .store
            .read(|r| r.contact_by_name(&p.to))
            .map_err(internal)?
            .ok_or_else(|| EngineError::UnknownContact(p.to.clone()))?;
        if self.st.social.blocked.contains(&c.identity) {
            return Err(EngineError::Blocked(c.name));
        }
        if self.st.calls.core.active().is_some() {
            return Err(call_error(CallError::Busy));
        }
        self.set_call_media(p.media);
        let call = self.st.ids.next_id().0;
        let peer = c.identity;
        self.call_then(|core, now, ms| core.dial(peer, call, now, ms))?
            .ok_or_else(|| EngineError::Internal("the call did not start".into()))
    }

    /// `call.answer`.
    pub(super) fn call_answer(&mut self, p: AnswerParams) -> Result<CallView, EngineError> {
        if self.st.calls.room.active().is_some() {
            return self.group_call_answer(p);
        }
        let active = self.st.calls.core.active().map(|a| a.call);
        let call = parse_call(&p.call, active)?;
        self.set_call_media(p.media);
        self.call_then(|core, _, _| core.answer(call))?
            .ok_or_else(|| EngineError::Internal("the call ended".into()))
    }

    /// `call.decline`.
    pub(super) fn call_decline(&mut self, p: CallIdParams) -> Result<Done, EngineError> {
        if self.st.calls.room.active().is_some() {
            return self.group_call_hangup(p);
        }
        let call = parse_call(&p.call, self.st.calls.core.active().map(|a| a.call))?;
        self.call_then(|core, _, ms| core.decline(call, ms))?;
        Ok(Done { ok: true })
    }

    /// `call.hangup`.
    pub(super) fn call_hangup(&mut self, p: CallIdParams) -> Result<Done, EngineError> {
        if self.st.calls.room.active().is_some() {
            return self.group_call_hangup(p);
        }
        let call = parse_call(&p.call, self.st.calls.core.active().map(|a| a.call))?;
        self.call_then(|core, _, ms| core.hangup(call, ms))?;
        Ok(Done { ok: true })
    }

    /// `call.mute`.
    pub(super) fn call_mute(&mut self, muted: bool) -> Result<CallView, EngineError> {
        if self.st.calls.room.active().is_some() {
            return self
                .call_then(|_, _, _| Ok(Vec::new()))
                .and_then(|_| self.group_call_mute(muted));
        }
        self.call_then(|core, _, _| core.mute(muted))?
            .ok_or_else(|| call_error(CallError::NoCall))
    }

    /// `call.current`.
    pub(super) fn call_current(&self) -> Option<CallView> {
        self.st.call_view(&self.store)
    }

    /// `calls`: the history, newest first.
    pub(super) fn call_history(&self) -> Result<Vec<CallRecordView>, EngineError> {
        let history: Vec<CallRecord> =
            read_history(self.store.read(|r| r.meta(HISTORY)).map_err(internal)?);
        let mut all: Vec<CallRecordView> = history
            .into_iter()
            .map(|r| CallRecordView {
                call: call_hex(r.call),
                contact: self.store.name_of(&r.peer),
                direction: direction_str(r.direction).into(),
                started_at: r.started_ms,
                duration_ms: r.duration_ms,
                outcome: r.outcome.as_str().into(),
                missed: r.outcome == crate::cores::calls::Outcome::Missed,
                group: None,
            })
            .collect();
        all.extend(self.group_call_history()?);
        all.sort_by_key(|r| std::cmp::Reverse(r.started_at));
        Ok(all)
    }

    /// What a media task reported.
    pub(super) fn on_media(&mut self, ev: MediaEvent) {
        if self.st.calls.room.leg_peer(media_call(&ev)).is_some() {
            return self.on_leg_media(ev);
        }
        let now = now_ms();
        let core = &mut self.st.calls.core;
        let outs = match ev {
            MediaEvent::LocalSdp { call, sdp } => core.local_sdp(call, sdp, now),
            MediaEvent::Connected { call } => core.media_connected(call, now),
            MediaEvent::Reconnecting { call } => core.media_reconnecting(call),
            MediaEvent::Quality { call, q } => {
                let v = CallQualityView {
                    rtt_ms: q.rtt_ms.round() as u32,
                    loss_permille: (q.loss * 1000.0).round() as u32,
                    jitter_ms: q.jitter_ms.round() as u32,
                    recv_kbps: q.recv_kbps.round() as u32,
                    send_kbps: q.send_kbps.round() as u32,
                    packets: q.packets,
                };
                self.st.calls.quality = Some((call, v));
                let _ = self.st.events.send(Event::CallQuality {
                    call: call_hex(call),
                    rtt_ms: v.rtt_ms,
                    loss_permille: v.loss_permille,
                    jitter_ms: v.jitter_ms,
                    recv_kbps: v.recv_kbps,
                    send_kbps: v.send_kbps,
                    packets: v.packets,
                });
                return;
            }
            MediaEvent::Notice { call, text } => {
                // Logged by the media task; `kith watch` shows it once.
                let contact = core
                    .active()
                    .filter(|a| a.call == call)
                    .map(|a| self.store.name_of(&a.peer))
                    .unwrap_or_default();
                let _ = self.st.events.send(Event::Notice {
                    contact,
                    detail: text,
                });
                return;
            }
            MediaEvent::Ended { call, reason } => {
                debug!(%reason, "call media ended");
                if self
                    .st
                    .calls
                    .media
                    .as_ref()
                    .is_some_and(|h| h.call() == call)
                {
                    self.st.calls.media = None;
                }
                core.media_ended(call, now)
            }
        };
        if !outs.is_empty() {
            self.write_then("cannot store a call change", |st, w, after| {
                st.call_outs(w, outs, after)
            });
        }
    }

    /// A clean stop: hangs up the call going on and waits (up to [`STOP_WAIT`]) for its
    /// media task to end, so its output file is complete.
    pub(super) async fn calls_shutdown(&mut self, media: &mut mpsc::Receiver<MediaEvent>) {
        if self.st.calls.room.active().is_some() {
            let mut legs = self.st.calls.legs.len();
            if let Err(e) = self.group_call_hangup(CallIdParams::default()) {
                debug!(error = %e, "no group hang-up at stop");
            }
            let deadline = tokio::time::Instant::now() + STOP_WAIT;
            while legs > 0 {
                match tokio::time::timeout_at(deadline, media.recv()).await {
                    Ok(Some(MediaEvent::Ended { .. })) => legs -= 1,
                    Ok(Some(_)) => {}
                    _ => break,
                }
            }
        }
        if self.st.calls.core.active().is_none() {
            return;
        }
        let had_media = self.st.calls.media.is_some();
        if let Err(e) = self.call_then(|core, _, ms| core.hangup(None, ms)) {
            debug!(error = %e, "no hang-up at stop");
        }
        if !had_media {
            return;
        }
        let deadline = tokio::time::Instant::now() + STOP_WAIT;
        while let Ok(Some(ev)) = tokio::time::timeout_at(deadline, media.recv()).await {
            if matches!(ev, MediaEvent::Ended { .. }) {
                break;
            }
        }
    }

    /// The ringing timer.
    pub(super) fn calls_tick(&mut self) {
        let mut outs = self.st.calls.core.tick(Instant::now(), now_ms());
        outs.extend(self.st.calls.room.tick(Instant::now(), now_ms()));
        if !outs.is_empty() {
            self.write_then("cannot store a call change", |st, w, after| {
                st.call_outs(w, outs, after)
            });
        }
    }
}
