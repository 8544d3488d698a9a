//! The two request-response protocols on the device's swarm, `/kith/msg/1` and
//! `/kith/signal/1`, and `/kith/msg/1` on the deposit swarms.
//!
//! - **Inbound requests** that decode go to the engine with an id it answers by; those that
//!   do not are answered at once (`Refused(Invalid)`, `Ignored`) and count a strike against
//!   the peer. A peer over its request rate is answered `Refused(Busy)` here, and one far
//!   over it counts strikes ([`crate::limits`]). At most [`MAX_PENDING_INBOUND`] requests
//!   wait for the engine (more are refused as busy), and a request that finds the engine's
//!   event queue full is answered `Refused(Busy)` at once ([`hand_over`]): the actor never
//!   waits for the engine there, so one slow engine batch does not stall every connection
//!   (issue 14, hole 3).
//! - **Signals** are rate-limited per peer (a token bucket, [`SIGNALS_PER_SEC`] with bursts
//!   of [`SIGNAL_BURST`]); most are answered `Ok` here and only passed on (dropped when the
//!   engine is busy); a profile request waits for the engine's answer.
//! - **Outbound results** of all three take one path ([`Actor::outbound_done`]): the tag the
//!   engine gave comes back with the answer or the failure as text, and an answer that did
//!   not decode counts a strike against the peer that sent it. What differs between the
//!   protocols (their tags, events, strikes and refusals) is one [`Proto`] each, and the
//!   device swarm's two protocols share the first steps of every event ([`Actor::on_rr`]).

use std::time::Instant;

use kith_proto::signal::{Signal, SignalAnswer};
use kith_proto::wire::{Refusal, Response};
use libp2p::PeerId;
use libp2p::request_response::{
    self, InboundFailure, Message, OutboundFailure, OutboundRequestId, ResponseChannel,
};
use libp2p::swarm::SwarmEvent;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::Actor;
use crate::anon::AnonBehaviourEvent;
use crate::api::NetEvent;
use crate::api::RequestFailure;
use crate::codec::{BadFrame, Inbound, InboundSignal};
use crate::limits::Pass;

/// Most inbound requests waiting for the engine's answer; more are refused as busy.
pub const MAX_PENDING_INBOUND: usize = 4096;
/// Signals a peer may send per second, on average ...
pub const SIGNALS_PER_SEC: f64 = 5.0;
/// ... and in a burst. Beyond that they are answered `Ignored` and never reach the engine.
pub const SIGNAL_BURST: f64 = 20.0;
/// Most signal requests waiting for the engine's answer, and most peers rate-tracked.
pub(crate) const MAX_SIGNAL_STATE: usize = 8192;

/// A request-response event, as this actor sorts them.
enum Rr<Req, Resp> {
    /// A peer asks.
    Request {
        peer: PeerId,
        request: Req,
        channel: ResponseChannel<Resp>,
    },
    /// Our request `id` was answered, or failed.
    Outbound {
        peer: PeerId,
        id: OutboundRequestId,
        result: Result<Resp, OutboundFailure>,
    },
    /// Answering a peer's request failed.
    InboundFailure { peer: PeerId, error: InboundFailure },
    /// An answer went out.
    Sent,
}

impl<Req, Resp> From<request_response::Event<Req, Resp>> for Rr<Req, Resp> {
    fn from(ev: request_response::Event<Req, Resp>) -> Self {
        use request_response::Event;
        match ev {
            Event::Message {
                peer,
                message:
                    Message::Request {
                        request, channel, ..
                    },
                ..
            } => Self::Request {
                peer,
                request,
                channel,
            },
            Event::Message {
                peer,
                message:
                    Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => Self::Outbound {
                peer,
                id: request_id,
                result: Ok(response),
            },
            Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => Self::Outbound {
                peer,
                id: request_id,
                result: Err(error),
            },
            Event::InboundFailure { peer, error, .. } => Self::InboundFailure { peer, error },
            Event::ResponseSent { .. } => Self::Sent,
        }
    }
}

/// The peer a request-response event is about.
pub(super) fn rr_peer<Req, Resp>(ev: &request_response::Event<Req, Resp>) -> PeerId {
    match ev {
        request_response::Event::Message { peer, .. }
        | request_response::Event::OutboundFailure { peer, .. }
        | request_response::Event::InboundFailure { peer, .. }
        | request_response::Event::ResponseSent { peer, .. } => *peer,
    }
}

/// The frame a failed stream refused, if that is why it failed.
fn bad_frame(e: &std::io::Error) -> Option<&BadFrame> {
    e.get_ref().and_then(|r| r.downcast_ref::<BadFrame>())
}

/// What the shared path needs to know of one request-response protocol.
pub(super) struct Proto<Resp> {
    /// The strike against a peer whose request did not decode ...
    pub(super) bad_request: &'static str,
    /// ... and against one whose answer did not decode.
    pub(super) bad_answer: &'static str,
    /// Takes the engine's tag for one of our requests, if it wants to hear of its end.
    pub(super) tag: fn(&mut Actor, &OutboundRequestId) -> Option<u64>,
    /// The engine's event for the end of one of our requests.
    pub(super) event: fn(u64, PeerId, Result<Resp, RequestFailure>) -> NetEvent,
    /// Answers a request that did not decode.
    pub(super) refuse: fn(&mut Actor, ResponseChannel<Resp>),
}

/// `/kith/msg/1` on the device's swarm.
const MSG: Proto<Response> = Proto {
    bad_request: "malformed request",
    bad_answer: "malformed response",
    tag: |a, id| a.outbound.remove(id),
    event: response,
    refuse: |a, channel| {
        let _ = a
            .swarm
            .behaviour_mut()
            .msg
            .send_response(channel, Response::Refused(Refusal::Invalid));
    },
};

/// `/kith/signal/1`.
const SIGNAL: Proto<SignalAnswer> = Proto {
    bad_request: "malformed signal",
    bad_answer: "malformed signal answer",
    tag: |a, id| a.signal_out.remove(id),
    event: |tag, peer, result| NetEvent::SignalAnswered { tag, peer, result },
    refuse: |a, channel| a.answer_signal(channel, SignalAnswer::Ignored),
};

/// What the shared path leaves to a protocol's own handler.
pub(super) enum Left<Req, Resp> {
    /// A peer asks, and its request decoded.
    Request {
        peer: PeerId,
        request: Req,
        channel: ResponseChannel<Resp>,
    },
    /// Answering a peer's request failed.
    InboundFailure { peer: PeerId, error: InboundFailure },
}

impl Actor {
    /// The path every request-response event of the device's swarm takes first: the end
    /// of one of our requests ends here ([`Actor::outbound_done`]), and a request that did
    /// not decode counts a strike and is refused; a decoded request and a failed answer are
    /// left to the protocol's handler.
    pub(super) async fn on_rr<Req, Resp>(
        &mut self,
        ev: request_response::Event<Inbound<Req>, Resp>,
        p: &Proto<Resp>,
    ) -> Result<Option<Left<Req, Resp>>, ()> {
        Ok(match Rr::from(ev) {
            Rr::Request {
                peer,
                request: Err(error),
                channel,
            } => {
                warn!(%peer, error = %BadFrame(error), "{}", p.bad_request);
                self.penalize(peer, p.bad_request);
                (p.refuse)(self, channel);
                None
            }
            Rr::Request {
                peer,
                request: Ok(request),
                channel,
            } => Some(Left::Request {
                peer,
                request,
                channel,
            }),
            Rr::Outbound { peer, id, result } => {
                self.outbound_done(peer, id, result, p).await?;
                None
            }
            Rr::InboundFailure { peer, error } => Some(Left::InboundFailure { peer, error }),
            Rr::Sent => None,
        })
    }

    /// The end of our request `id` to `peer`: when the engine wants to hear of it (it gave
    /// a tag), the answer or the failure goes to it as the protocol's event; an answer that
    /// did not decode counts against `peer`.
    async fn outbound_done<Resp>(
        &mut self,
        peer: PeerId,
        id: OutboundRequestId,
        result: Result<Resp, OutboundFailure>,
        p: &Proto<Resp>,
    ) -> Result<(), ()> {
        let tag = (p.tag)(self, &id);
        if let Err(OutboundFailure::Io(e)) = &result
            && let Some(bad) = bad_frame(e)
        {
            warn!(%peer, error = %bad, "{}", p.bad_answer);
            self.penalize(peer, p.bad_answer);
        }
        if let Some(tag) = tag {
            self.emit((p.event)(tag, peer, result.map_err(RequestFailure::from)))
                .await?;
        }
        Ok(())
    }

    /// `/kith/msg/1` on the device's swarm.
    pub(super) async fn on_msg(
        &mut self,
        ev: request_response::Event<Inbound, Response>,
    ) -> Result<(), ()> {
        match self.on_rr(ev, &MSG).await? {
            Some(Left::Request {
                peer,
                request: req,
                channel,
            }) => {
                let pass = self.request_gate.pass(peer, Instant::now());
                if pass != Pass::Serve {
                    debug!(%peer, "request over the peer's rate");
                    if pass == Pass::Strike {
                        self.penalize(peer, "requests far over the rate limit");
                    }
                    let _ = self
                        .swarm
                        .behaviour_mut()
                        .msg
                        .send_response(channel, Response::Refused(Refusal::Busy));
                    return Ok(());
                }
                if self.pending_inbound.len() >= MAX_PENDING_INBOUND {
                    let _ = self
                        .swarm
                        .behaviour_mut()
                        .msg
                        .send_response(channel, Response::Refused(Refusal::Busy));
                    return Ok(());
                }
                self.next_inbound += 1;
                let id = self.next_inbound;
                match hand_over(&self.events, NetEvent::InboundRequest { id, peer, req }) {
                    HandOver::Sent => {
                        self.pending_inbound.insert(id, channel);
                    }
                    HandOver::Busy => {
                        debug!(%peer, "the engine is busy; request refused as busy");
                        let _ = self
                            .swarm
                            .behaviour_mut()
                            .msg
                            .send_response(channel, Response::Refused(Refusal::Busy));
                    }
                    HandOver::Closed => return Err(()),
                }
            }
            Some(Left::InboundFailure { peer, error }) => {
                if let InboundFailure::Io(e) = &error
                    && let Some(bad) = bad_frame(e)
                {
                    warn!(%peer, error = %bad, "{}", MSG.bad_request);
                    self.penalize(peer, MSG.bad_request);
                } else {
                    debug!(%peer, %error, "inbound request failed");
                }
                // Answers the engine still owes for dead streams are dropped at respond time.
                self.pending_inbound.retain(|_, ch| ch.is_open());
            }
            None => {}
        }
        Ok(())
    }

    /// `/kith/msg/1` on the deposit swarm: outbound only, no requests come in on it.
    /// `/kith/msg/1` on deposit `key`'s swarm: the deposit ends with its answer or failure
    /// (its swarm and key are dropped then).
    pub(super) async fn on_anon(
        &mut self,
        key: u64,
        ev: SwarmEvent<AnonBehaviourEvent>,
    ) -> Result<(), ()> {
        let SwarmEvent::Behaviour(AnonBehaviourEvent::Msg(ev)) = ev else {
            return Ok(());
        };
        let Rr::Outbound { peer, result, .. } = Rr::from(ev) else {
            return Ok(());
        };
        if let Err(OutboundFailure::Io(e)) = &result
            && let Some(bad) = bad_frame(e)
        {
            warn!(%peer, error = %bad, "{}", MSG.bad_answer);
            self.penalize(peer, MSG.bad_answer);
        }
        if let Some(tag) = self.anon.finish(key) {
            self.emit(response(tag, peer, result.map_err(RequestFailure::from)))
                .await?;
        }
        Ok(())
    }

    /// Answers a signal here, without the engine.
    fn answer_signal(&mut self, channel: ResponseChannel<SignalAnswer>, answer: SignalAnswer) {
        let _ = self
            .swarm
            .behaviour_mut()
            .signal
            .send_response(channel, answer);
    }

    /// `/kith/signal/1`.
    pub(super) async fn on_signal(
        &mut self,
        ev: request_response::Event<InboundSignal, SignalAnswer>,
    ) -> Result<(), ()> {
        match self.on_rr(ev, &SIGNAL).await? {
            Some(Left::Request {
                peer,
                request: signal,
                channel,
            }) => {
                let profile = matches!(signal, Signal::GetProfile);
                if !self.signal_allowed(peer, if profile { 5.0 } else { 1.0 }) {
                    debug!(%peer, "signal over the rate limit");
                    self.answer_signal(channel, SignalAnswer::Ignored);
                    return Ok(());
                }
                let id = if profile {
                    if self.signal_in.len() >= MAX_SIGNAL_STATE {
                        self.signal_in.retain(|_, ch| ch.is_open());
                    }
                    if self.signal_in.len() >= MAX_SIGNAL_STATE {
                        self.answer_signal(channel, SignalAnswer::Ignored);
                        return Ok(());
                    }
                    self.next_inbound += 1;
                    self.signal_in.insert(self.next_inbound, channel);
                    Some(self.next_inbound)
                } else {
                    self.answer_signal(channel, SignalAnswer::Ok);
                    None
                };
                // Never wait on the engine for a signal: if its queue is full, drop it.
                if let Err(e) = self.events.try_send(NetEvent::Signal { id, peer, signal }) {
                    if matches!(e, mpsc::error::TrySendError::Closed(_)) {
                        return Err(());
                    }
                    debug!(%peer, "engine busy; signal dropped");
                }
            }
            Some(Left::InboundFailure { .. }) => {
                self.signal_in.retain(|_, ch| ch.is_open());
            }
            None => {}
        }
        Ok(())
    }

    /// Takes `cost` of a peer's signal tokens; false when it has too few (it is flooding).
    fn signal_allowed(&mut self, peer: PeerId, cost: f64) -> bool {
        let now = Instant::now();
        let (tokens, at) = self
            .signal_rate
            .get(&peer)
            .copied()
            .unwrap_or((SIGNAL_BURST, now));
        let tokens =
            (tokens + now.duration_since(at).as_secs_f64() * SIGNALS_PER_SEC).min(SIGNAL_BURST);
        let allowed = tokens >= cost;
        let left = if allowed { tokens - cost } else { tokens };
        self.signal_rate.insert(peer, (left, now));
        allowed
    }
}

/// The engine's event for the end of a `/kith/msg/1` request.
fn response(tag: u64, peer: PeerId, result: Result<Response, RequestFailure>) -> NetEvent {
    NetEvent::Response { tag, peer, result }
}

/// What became of an event handed to the engine without waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum HandOver {
    /// It is in the engine's queue.
    Sent,
    /// The queue is full: answer the peer `Refused(Busy)`.
    Busy,
    /// The engine is gone.
    Closed,
}

/// Puts `ev` in the engine's event queue if there is room, never waiting.
pub(super) fn hand_over(events: &mpsc::Sender<NetEvent>, ev: NetEvent) -> HandOver {
    match events.try_send(ev) {
        Ok(()) => HandOver::Sent,
        Err(mpsc::error::TrySendError::Full(_)) => HandOver::Busy,
        Err(mpsc::error::TrySendError::Closed(_)) => HandOver::Closed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kith_proto::wire::Request;

    fn request(id: u64) -> NetEvent {
        NetEvent::InboundRequest {
            id,
            peer: PeerId::random(),
            req: Request::ClaimPrekey,
        }
    }

    /// Issue 14, hole 3: a full engine queue is answered busy at once, never waited on.
    #[test]
    fn a_full_engine_queue_is_busy_not_a_wait() {
        let (tx, mut rx) = mpsc::channel(2);
        assert_eq!(hand_over(&tx, request(1)), HandOver::Sent);
        assert_eq!(hand_over(&tx, request(2)), HandOver::Sent);
        assert_eq!(hand_over(&tx, request(3)), HandOver::Busy);
        assert!(rx.try_recv().is_ok());
        assert_eq!(hand_over(&tx, request(4)), HandOver::Sent, "room again");
        drop(rx);
        assert_eq!(hand_over(&tx, request(5)), HandOver::Closed);
    }
}
