//! One-to-one calls: the call state machine, with no I/O. It is handed the time (monotonic
//! for the ringing timer, wall-clock ms for what is stored and compared with the sender's
//! clock) and returns what to do ([`Out`]): signalling bodies to send through the ordinary
//! E2EE outbox, media operations for the call's media task, state updates for watchers, and
//! history records to store.
//!
//! Rules:
//!
//! - **One call at a time.** Dialling while in a call is refused; an offer that arrives
//!   while in a call is answered [`Body::CallDecline`] `busy` and kept as a missed call.
//! - **Contacts only.** An offer from a stranger (a provisional contact, someone who wrote
//!   first) is dropped without a word and never rings; how often that happens is counted
//!   per person with a rate limit so a flood costs one log line per window. Blocked
//!   contacts never get here: the inbound core drops everything they send.
//! - **Ringing** lasts [`RING_TIMEOUT`]: the caller then gives up ("no answer") and says so
//!   with [`Body::CallHangup`]; the callee stops ringing and keeps a missed call. An offer
//!   older than that when it arrives (it waited in a mailbox while the callee was offline)
//!   is kept as missed at once, never rung.
//! - **Glare.** When both sides call each other at once, the call with the larger id wins on
//!   both sides: the side whose own call has the smaller id drops it and takes the other
//!   call as answered (both people wanted to talk); the other side ignores the losing offer.
//! - **Signalling order.** The caller's media task makes the offer; it goes out when its
//!   candidates are gathered ([`Calls::local_sdp`]). The callee's media task starts when the
//!   person answers and its answer goes back the same way. Media connected → `connected`;
//!   a lost link → `reconnecting`; media that ends on its own (failed, timed out) ends the
//!   call and tells the peer.
//! - **ICE restart.** Once answered, a new description from the caller's media task is an ICE
//!   restart: it goes out as a [`Body::CallOffer`] of the same call, which the callee's core
//!   hands to its media task ([`MediaOp::Restart`]) instead of ringing; the callee's new
//!   description goes back as a [`Body::CallAnswer`], which the caller's core hands to its
//!   media task. A node that does not know restarts ignores such an offer (its call is live).

use std::time::{Duration, Instant};

use kith_proto::wire::Body;
use kith_types::{BoundedSet, IdentityKey, RateLimit};
use serde::{Deserialize, Serialize};

/// How long a call rings before it counts as missed (callee) or unanswered (caller), by
/// default.
pub const RING_TIMEOUT: Duration = Duration::from_secs(45);
/// Calls kept in the history (older ones are dropped).
pub const MAX_HISTORY: usize = 500;
/// Ended call ids remembered, so a late or repeated offer of an ended call never rings.
pub const MAX_ENDED: usize = 1024;
/// A stranger's dropped offers are logged at most once per this period (per person).
pub const STRANGER_LOG_EVERY: Duration = Duration::from_secs(60);
/// People whose dropped offers are tracked for the log limit.
pub const MAX_STRANGER_KEYS: usize = 1024;

/// Which way a call goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// We called.
    Outgoing,
    /// They called.
    Incoming,
}

/// Where a live call is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Outgoing: our offer is being made (candidates gathered).
    Dialing,
    /// Ringing (the offer went out, or came in and is not answered yet).
    Ringing,
    /// Answered; media is connecting.
    Connecting,
    /// Media flows.
    Connected,
    /// Media lost its link and is trying to get it back.
    Reconnecting,
}

impl Phase {
    /// The state name watchers see.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Dialing | Phase::Connecting => "connecting",
            Phase::Ringing => "ringing",
            Phase::Connected => "connected",
            Phase::Reconnecting => "reconnecting",
        }
    }
}

/// How a call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Talked; we hung up.
    HungUp,
    /// Talked; they hung up.
    RemoteHungUp,
    /// We (callee) or they (caller's view) declined.
    Declined,
    /// The callee was in another call.
    Busy,
    /// Outgoing, not answered within the ringing time (or the callee was offline).
    NoAnswer,
    /// Incoming, not answered (timed out, the caller gave up, or we were busy or away).
    Missed,
    /// Outgoing, we gave up before it was answered.
    Cancelled,
    /// The media could not connect.
    Failed,
    /// Talked, then the link was lost for good (the other side crashed or went away).
    Lost,
}

impl Outcome {
    /// The name shown in history and events.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::HungUp => "hung_up",
            Outcome::RemoteHungUp => "remote_hung_up",
            Outcome::Declined => "declined",
            Outcome::Busy => "busy",
            Outcome::NoAnswer => "no_answer",
            Outcome::Missed => "missed",
            Outcome::Cancelled => "cancelled",
            Outcome::Failed => "failed",
            Outcome::Lost => "lost",
        }
    }
}

/// One call in the history (stored).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallRecord {
    /// The call id.
    pub call: u128,
    /// The other person.
    pub peer: IdentityKey,
    /// Which way it went.
    pub direction: Direction,
    /// When it started ringing (ms, our clock; for a late offer, the caller's).
    pub started_ms: u64,
    /// How long media was connected (ms); 0 if never.
    pub duration_ms: u64,
    /// How it ended.
    pub outcome: Outcome,
}

/// The live call.
#[derive(Clone, PartialEq, Eq)]
pub struct Active {
    /// The call id.
    pub call: u128,
    /// The other person.
    pub peer: IdentityKey,
    /// Which way.
    pub direction: Direction,
    /// Where it is.
    pub phase: Phase,
    /// When ringing started (monotonic).
    pub since: Instant,
    /// When ringing started (ms).
    pub started_ms: u64,
    /// When media connected (ms), if it did.
    pub connected_ms: Option<u64>,
    /// Whether our sound is muted.
    pub muted: bool,
    /// Incoming, not answered yet: the caller's offer.
    offer: Option<String>,
    /// A media task runs for this call.
    media: bool,
}

impl std::fmt::Debug for Active {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The offer's SDP names addresses and keys: left out.
        f.debug_struct("Active")
            .field("call", &format_args!("{:x}", self.call))
            .field("direction", &self.direction)
            .field("phase", &self.phase)
            .field("muted", &self.muted)
            .finish_non_exhaustive()
    }
}

/// What the media task of the live call should do.
#[derive(Clone, PartialEq, Eq)]
pub enum MediaOp {
    /// Start as the caller (make the offer).
    StartCaller {
        /// The call.
        call: u128,
    },
    /// Start as the callee, answering this offer.
    StartCallee {
        /// The call.
        call: u128,
        /// The caller's SDP.
        offer: String,
    },
    /// The callee's answer for the caller's task.
    Answer {
        /// The call.
        call: u128,
        /// The callee's SDP.
        sdp: String,
    },
    /// The caller restarted ICE: answer its new offer.
    Restart {
        /// The call.
        call: u128,
        /// The caller's new SDP.
        offer: String,
    },
    /// Mute or unmute.
    Mute {
        /// The call.
        call: u128,
        /// Muted.
        muted: bool,
    },
    /// Stop the media.
    Stop {
        /// The call.
        call: u128,
    },
}

impl std::fmt::Debug for MediaOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MediaOp::StartCaller { call } => write!(f, "StartCaller({call:x})"),
            MediaOp::StartCallee { call, .. } => write!(f, "StartCallee({call:x})"),
            MediaOp::Answer { call, .. } => write!(f, "Answer({call:x})"),
            MediaOp::Restart { call, .. } => write!(f, "Restart({call:x})"),
            MediaOp::Mute { call, muted } => write!(f, "Mute({call:x}, {muted})"),
            MediaOp::Stop { call } => write!(f, "Stop({call:x})"),
        }
    }
}

/// A change watchers see.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Update {
    /// The call.
    pub call: u128,
    /// The other person.
    pub peer: IdentityKey,
    /// Which way.
    pub direction: Direction,
    /// `connecting`, `ringing`, `connected`, `reconnecting` or `ended`.
    pub state: &'static str,
    /// How it ended, when `ended`.
    pub outcome: Option<Outcome>,
}

/// What to do.
#[derive(Debug, PartialEq, Eq)]
pub enum Out {
    /// Queue this body for every device of the person (E2EE, through the outbox).
    Send(IdentityKey, Body),
    /// Tell the media task.
    Media(MediaOp),
    /// Tell watchers.
    Emit(Update),
    /// Store this call in the history.
    Record(CallRecord),
    /// Tell watchers about the group call ([`super::group_calls`]).
    Room(super::group_calls::RoomUpdate),
    /// Store this group call in the history.
    RoomRecord(super::group_calls::GroupCallRecord),
}

/// Why a user's call command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// Already in a call.
    #[error("already in a call; `kith hangup` first")]
    Busy,
    /// No call is ringing (or none with that id).
    #[error("no call is ringing")]
    NothingRinging,
    /// No call is going on.
    #[error("no call is going on")]
    NoCall,
    /// The call cannot be made (the reason is said).
    #[error("{0}")]
    Refused(String),
}

/// The offer as the actor found it.
#[derive(Clone)]
pub struct Offer {
    /// Who sent it.
    pub from: IdentityKey,
    /// Whether they are a contact the user added (not a stranger).
    pub contact: bool,
    /// The call.
    pub call: u128,
    /// When the caller dialled (caller's clock, ms).
    pub sent_at_ms: u64,
    /// The caller's SDP.
    pub sdp: String,
}

impl std::fmt::Debug for Offer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Offer")
            .field("call", &format_args!("{:x}", self.call))
            .field("contact", &self.contact)
            .field("sdp_len", &self.sdp.len())
            .finish_non_exhaustive()
    }
}

/// The calls of this device.
#[derive(Debug)]
pub struct Calls {
    /// How long a call rings ([`RING_TIMEOUT`] unless configured).
    ring: Duration,
    active: Option<Active>,
    ended: BoundedSet<u128>,
    strangers: RateLimit<IdentityKey>,
    /// Offers from strangers dropped so far.
    pub dropped: u64,
    /// A group call is going on (set by the actor): an offer is answered busy.
    pub elsewhere: bool,
}

impl Default for Calls {
    fn default() -> Self {
        Self::new()
    }
}

impl Calls {
    /// No call going on.
    pub fn new() -> Self {
        Self::with_ring(RING_TIMEOUT)
    }

    /// No call going on; calls ring for `ring`.
    pub fn with_ring(ring: Duration) -> Self {
        Self {
            ring,
            active: None,
            ended: BoundedSet::new(MAX_ENDED),
            strangers: RateLimit::once_per(STRANGER_LOG_EVERY, MAX_STRANGER_KEYS),
            dropped: 0,
            elsewhere: false,
        }
    }

    /// The live call.
    pub fn active(&self) -> Option<&Active> {
        self.active.as_ref()
    }

    fn update(a: &Active, state: &'static str, outcome: Option<Outcome>) -> Out {
        Out::Emit(Update {
            call: a.call,
            peer: a.peer,
            direction: a.direction,
            state,
            outcome,
        })
    }

    /// Ends the live call with `outcome`: record, stop media, tell watchers.
    fn end(&mut self, outcome: Outcome, now_ms: u64, out: &mut Vec<Out>) {
        let Some(a) = self.active.take() else {
            return;
        };
        self.ended.insert(a.call);
        if a.media {
            out.push(Out::Media(MediaOp::Stop { call: a.call }));
        }
        out.push(Out::Record(CallRecord {
            call: a.call,
            peer: a.peer,
            direction: a.direction,
            started_ms: a.started_ms,
            duration_ms: a.connected_ms.map_or(0, |c| now_ms.saturating_sub(c)),
            outcome,
        }));
        out.push(Self::update(&a, "ended", Some(outcome)));
    }

    /// The user calls `peer` (a contact, checked by the actor) with the new id `call`.
    pub fn dial(
        &mut self,
        peer: IdentityKey,
        call: u128,
        now: Instant,
        now_ms: u64,
    ) -> Result<Vec<Out>, CallError> {
        if self.active.is_some() {
            return Err(CallError::Busy);
        }
        let a = Active {
            call,
            peer,
            direction: Direction::Outgoing,
            phase: Phase::Dialing,
            since: now,
            started_ms: now_ms,
            connected_ms: None,
            muted: false,
            offer: None,
            media: true,
        };
        let out = vec![
            Out::Media(MediaOp::StartCaller { call }),
            Self::update(&a, a.phase.as_str(), None),
        ];
        self.active = Some(a);
        Ok(out)
    }

    /// Our media task made its description: the offer or the answer goes out.
    pub fn local_sdp(&mut self, call: u128, sdp: String, now_ms: u64) -> Vec<Out> {
        let Some(a) = self.active.as_mut().filter(|a| a.call == call) else {
            return Vec::new();
        };
        match (a.direction, a.phase) {
            (Direction::Outgoing, Phase::Dialing) => {
                a.phase = Phase::Ringing;
                let peer = a.peer;
                let body = Body::CallOffer {
                    call,
                    sent_at_ms: now_ms,
                    sdp,
                    video: false,
                };
                let a = a.clone();
                vec![Out::Send(peer, body), Self::update(&a, "ringing", None)]
            }
            // An ICE restart's offer (the call was answered).
            (Direction::Outgoing, Phase::Connecting | Phase::Connected | Phase::Reconnecting) => {
                let body = Body::CallOffer {
                    call,
                    sent_at_ms: now_ms,
                    sdp,
                    video: false,
                };
                vec![Out::Send(a.peer, body)]
            }
            (Direction::Incoming, Phase::Connecting | Phase::Connected | Phase::Reconnecting) => {
                vec![Out::Send(a.peer, Body::CallAnswer { call, sdp })]
            }
            _ => Vec::new(),
        }
    }

    /// An offer arrived.
    pub fn offer(&mut self, o: Offer, now: Instant, now_ms: u64) -> Vec<Out> {
        if !o.contact {
            self.dropped += 1;
            if self.strangers.allow(o.from, now) {
                tracing::info!("dropped a call offer from someone who is not a contact");
            }
            return Vec::new();
        }
        if let Some(a) = self.active.as_ref().filter(|a| a.call == o.call) {
            // The caller restarts ICE on the call we answered.
            let restart = a.peer == o.from
                && a.direction == Direction::Incoming
                && a.media
                && matches!(
                    a.phase,
                    Phase::Connecting | Phase::Connected | Phase::Reconnecting
                );
            return match restart {
                true => vec![Out::Media(MediaOp::Restart {
                    call: o.call,
                    offer: o.sdp,
                })],
                false => Vec::new(),
            };
        }
        if self.ended.contains(&o.call) {
            return Vec::new();
        }
        let missed = |started_ms| CallRecord {
            call: o.call,
            peer: o.from,
            direction: Direction::Incoming,
            started_ms,
            duration_ms: 0,
            outcome: Outcome::Missed,
        };
        let ring_ms = u64::try_from(self.ring.as_millis()).unwrap_or(u64::MAX);
        if o.sent_at_ms.saturating_add(ring_ms) <= now_ms {
            // It waited (in a mailbox) longer than a call rings.
            self.ended.insert(o.call);
            return vec![
                Out::Record(missed(o.sent_at_ms)),
                Out::Emit(Update {
                    call: o.call,
                    peer: o.from,
                    direction: Direction::Incoming,
                    state: "ended",
                    outcome: Some(Outcome::Missed),
                }),
            ];
        }
        let mut out = Vec::new();
        if self.elsewhere && self.active.is_none() {
            self.ended.insert(o.call);
            return vec![
                Out::Send(
                    o.from,
                    Body::CallDecline {
                        call: o.call,
                        busy: true,
                    },
                ),
                Out::Record(missed(now_ms)),
            ];
        }
        if let Some(a) = &self.active {
            let glare = a.peer == o.from
                && a.direction == Direction::Outgoing
                && matches!(a.phase, Phase::Dialing | Phase::Ringing);
            if !glare {
                self.ended.insert(o.call);
                return vec![
                    Out::Send(
                        o.from,
                        Body::CallDecline {
                            call: o.call,
                            busy: true,
                        },
                    ),
                    Out::Record(missed(now_ms)),
                ];
            }
            if a.call > o.call {
                // Ours wins; they drop theirs when our offer reaches them.
                return Vec::new();
            }
            // Theirs wins: drop ours quietly and take theirs as answered.
            let ours = a.call;
            self.ended.insert(ours);
            out.push(Out::Media(MediaOp::Stop { call: ours }));
            self.active = None;
        }
        let answered = !out.is_empty();
        let a = Active {
            call: o.call,
            peer: o.from,
            direction: Direction::Incoming,
            phase: if answered {
                Phase::Connecting
            } else {
                Phase::Ringing
            },
            since: now,
            started_ms: now_ms,
            connected_ms: None,
            muted: false,
            offer: (!answered).then(|| o.sdp.clone()),
            media: answered,
        };
        if answered {
            out.push(Out::Media(MediaOp::StartCallee {
                call: o.call,
                offer: o.sdp,
            }));
        }
        out.push(Self::update(&a, a.phase.as_str(), None));
        self.active = Some(a);
        out
    }

    fn ringing_incoming(&mut self, call: Option<u128>) -> Option<&mut Active> {
        self.active.as_mut().filter(|a| {
            a.direction == Direction::Incoming
                && a.phase == Phase::Ringing
                && call.is_none_or(|c| c == a.call)
        })
    }

    /// The user answers the ringing call (`call`, or whichever rings).
    pub fn answer(&mut self, call: Option<u128>) -> Result<Vec<Out>, CallError> {
        let a = self
            .ringing_incoming(call)
            .ok_or(CallError::NothingRinging)?;
        a.phase = Phase::Connecting;
        a.media = true;
        let offer = a.offer.take().unwrap_or_default();
        let call = a.call;
        let a = a.clone();
        Ok(vec![
            Out::Media(MediaOp::StartCallee { call, offer }),
            Self::update(&a, "connecting", None),
        ])
    }

    /// The user declines the ringing call.
    pub fn decline(&mut self, call: Option<u128>, now_ms: u64) -> Result<Vec<Out>, CallError> {
        let a = self
            .ringing_incoming(call)
            .ok_or(CallError::NothingRinging)?;
        let (peer, call) = (a.peer, a.call);
        let mut out = vec![Out::Send(peer, Body::CallDecline { call, busy: false })];
        self.end(Outcome::Declined, now_ms, &mut out);
        Ok(out)
    }

    /// The user hangs up (or gives up calling, or declines a ringing call).
    pub fn hangup(&mut self, call: Option<u128>, now_ms: u64) -> Result<Vec<Out>, CallError> {
        let a = self
            .active
            .as_ref()
            .filter(|a| call.is_none_or(|c| c == a.call))
            .ok_or(CallError::NoCall)?;
        if a.direction == Direction::Incoming && a.phase == Phase::Ringing {
            return self.decline(call, now_ms);
        }
        let outcome = match (a.direction, a.connected_ms) {
            (_, Some(_)) => Outcome::HungUp,
            (Direction::Outgoing, None) => Outcome::Cancelled,
            (Direction::Incoming, None) => Outcome::Failed,
        };
        let mut out = vec![Out::Send(a.peer, Body::CallHangup { call: a.call })];
        self.end(outcome, now_ms, &mut out);
        Ok(out)
    }

    /// Mutes or unmutes our sound.
    pub fn mute(&mut self, muted: bool) -> Result<Vec<Out>, CallError> {
        let a = self.active.as_mut().ok_or(CallError::NoCall)?;
        a.muted = muted;
        Ok(match a.media {
            true => vec![Out::Media(MediaOp::Mute {
                call: a.call,
                muted,
            })],
            false => Vec::new(),
        })
    }

    fn live_with(&mut self, from: IdentityKey, call: u128) -> Option<&mut Active> {
        self.active
            .as_mut()
            .filter(|a| a.peer == from && a.call == call)
    }

    /// The callee's answer arrived (to our offer, or to an ICE restart's).
    pub fn remote_answer(&mut self, from: IdentityKey, call: u128, sdp: String) -> Vec<Out> {
        let Some(a) = self
            .live_with(from, call)
            .filter(|a| a.direction == Direction::Outgoing)
        else {
            return Vec::new();
        };
        if matches!(
            a.phase,
            Phase::Connecting | Phase::Connected | Phase::Reconnecting
        ) {
            return vec![Out::Media(MediaOp::Answer { call, sdp })];
        }
        if a.phase != Phase::Ringing {
            return Vec::new();
        }
        a.phase = Phase::Connecting;
        let a = a.clone();
        vec![
            Out::Media(MediaOp::Answer { call, sdp }),
            Self::update(&a, "connecting", None),
        ]
    }

    /// The peer hung up (or the caller gave up ringing).
    pub fn remote_hangup(&mut self, from: IdentityKey, call: u128, now_ms: u64) -> Vec<Out> {
        let Some(a) = self.live_with(from, call) else {
            // Not live: remember it, so its offer (if it comes later) never rings.
            self.ended.insert(call);
            return Vec::new();
        };
        let outcome = match (a.direction, a.phase, a.connected_ms) {
            (Direction::Incoming, Phase::Ringing, _) => Outcome::Missed,
            (_, _, Some(_)) => Outcome::RemoteHungUp,
            _ => Outcome::Failed,
        };
        let mut out = Vec::new();
        self.end(outcome, now_ms, &mut out);
        out
    }

    /// The callee declined (or was busy).
    pub fn remote_decline(
        &mut self,
        from: IdentityKey,
        call: u128,
        busy: bool,
        now_ms: u64,
    ) -> Vec<Out> {
        if self
            .live_with(from, call)
            .is_none_or(|a| a.direction != Direction::Outgoing || a.connected_ms.is_some())
        {
            return Vec::new();
        }
        let mut out = Vec::new();
        let outcome = if busy {
            Outcome::Busy
        } else {
            Outcome::Declined
        };
        self.end(outcome, now_ms, &mut out);
        out
    }

    /// Media connected.
    pub fn media_connected(&mut self, call: u128, now_ms: u64) -> Vec<Out> {
        let Some(a) = self.active.as_mut().filter(|a| a.call == call) else {
            return Vec::new();
        };
        a.phase = Phase::Connected;
        a.connected_ms.get_or_insert(now_ms);
        let a = a.clone();
        vec![Self::update(&a, "connected", None)]
    }

    /// Media lost its link.
    pub fn media_reconnecting(&mut self, call: u128) -> Vec<Out> {
        let Some(a) = self.active.as_mut().filter(|a| a.call == call) else {
            return Vec::new();
        };
        a.phase = Phase::Reconnecting;
        let a = a.clone();
        vec![Self::update(&a, "reconnecting", None)]
    }

    /// The media task ended. If the call is still live, the media failed: the call ends
    /// and the peer is told.
    pub fn media_ended(&mut self, call: u128, now_ms: u64) -> Vec<Out> {
        let Some(a) = self.active.as_mut().filter(|a| a.call == call) else {
            return Vec::new();
        };
        a.media = false;
        let peer = a.peer;
        let outcome = match a.connected_ms {
            Some(_) => Outcome::Lost,
            None => Outcome::Failed,
        };
        let mut out = vec![Out::Send(peer, Body::CallHangup { call })];
        self.end(outcome, now_ms, &mut out);
        out
    }

    /// Time passed: ringing times out.
    pub fn tick(&mut self, now: Instant, now_ms: u64) -> Vec<Out> {
        let Some(a) = &self.active else {
            return Vec::new();
        };
        if !matches!(a.phase, Phase::Dialing | Phase::Ringing)
            || now.saturating_duration_since(a.since) < self.ring
        {
            return Vec::new();
        }
        let mut out = Vec::new();
        match a.direction {
            Direction::Outgoing => {
                out.push(Out::Send(a.peer, Body::CallHangup { call: a.call }));
                self.end(Outcome::NoAnswer, now_ms, &mut out);
            }
            Direction::Incoming => self.end(Outcome::Missed, now_ms, &mut out),
        }
        out
    }
}

#[cfg(test)]
mod tests;
