//! `/kith/media/1` on the device's swarm: fetching a file's index and chunks.
//!
//! - **Inbound requests** pass a per-peer gate ([`MEDIA_REQUESTS_PER_MINUTE`]; over it they
//!   are answered `Busy` here, and far over it count strikes), then go to the engine, which
//!   decides whether the asker was sent the file and serves it from disk. At most
//!   [`MAX_MEDIA_PENDING`] answers are owed at once, [`MAX_MEDIA_PER_PEER`] to one peer;
//!   more are answered `Busy` (the asker retries).
//! - **Outbound requests** carry the engine's tag; their answer or failure comes back as
//!   [`NetEvent::MediaAnswered`] (through the path all request-response protocols share).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use kith_proto::media::{MediaRefusal, MediaRequest, MediaResponse};
use libp2p::request_response::{self, OutboundRequestId, ResponseChannel};
use libp2p::{Multiaddr, PeerId};
use tracing::debug;

use super::Actor;
use super::requests::{HandOver, Left, Proto, hand_over};
use crate::api::NetEvent;
use crate::codec::Inbound;
use crate::limits::{Gate, Pass};
use kith_types::BoundedMap;

/// Media requests one peer may make a minute (a chunk is 256 KiB: about 125 MiB/s).
pub const MEDIA_REQUESTS_PER_MINUTE: u32 = 30_000;
/// Most media answers owed by the engine at once (each up to a 256 KiB chunk once it is
/// read, so this bounds the chunks waiting to go out at 16 MiB); more requests are answered
/// `Busy`.
pub const MAX_MEDIA_PENDING: usize = 64;
/// Most media answers owed to one peer at once (the rest is left to other peers).
pub const MAX_MEDIA_PER_PEER: usize = 16;
/// Most of our media requests in flight that the actor keeps a tag for.
const MAX_MEDIA_OUT: usize = 4096;

/// The media protocol's state in the network actor.
pub(crate) struct MediaState {
    out: BoundedMap<OutboundRequestId, u64>,
    owed: HashMap<u64, (PeerId, ResponseChannel<MediaResponse>)>,
    gate: Gate,
}

impl Default for MediaState {
    fn default() -> Self {
        Self {
            out: BoundedMap::new(MAX_MEDIA_OUT),
            owed: HashMap::new(),
            gate: Gate::new(MEDIA_REQUESTS_PER_MINUTE, Duration::from_secs(60)),
        }
    }
}

/// `/kith/media/1`.
const MEDIA: Proto<MediaResponse> = Proto {
    bad_request: "malformed media request",
    bad_answer: "malformed media answer",
    tag: |a, id| a.media.out.remove(id),
    event: |tag, peer, result| NetEvent::MediaAnswered { tag, peer, result },
    refuse: |a, channel| {
        let _ = a
            .swarm
            .behaviour_mut()
            .media
            .send_response(channel, MediaResponse::Refused(MediaRefusal::Busy));
    },
};

impl Actor {
    pub(super) fn ask_media(
        &mut self,
        tag: u64,
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        req: MediaRequest,
    ) {
        let id = self
            .swarm
            .behaviour_mut()
            .media
            .send_request_with_addresses(&peer, Ok(req), addrs);
        self.media.out.insert(id, tag);
    }

    pub(super) fn answer_media(&mut self, id: u64, resp: MediaResponse) {
        if let Some((_, ch)) = self.media.owed.remove(&id) {
            let _ = self.swarm.behaviour_mut().media.send_response(ch, resp);
        }
    }

    fn refuse_media(&mut self, channel: ResponseChannel<MediaResponse>) {
        let _ = self
            .swarm
            .behaviour_mut()
            .media
            .send_response(channel, MediaResponse::Refused(MediaRefusal::Busy));
    }

    pub(super) async fn on_media(
        &mut self,
        ev: request_response::Event<Inbound<MediaRequest>, MediaResponse>,
    ) -> Result<(), ()> {
        match self.on_rr(ev, &MEDIA).await? {
            Some(Left::Request {
                peer,
                request: req,
                channel,
            }) => {
                let pass = self.media.gate.pass(peer, Instant::now());
                if pass != Pass::Serve {
                    if pass == Pass::Strike {
                        self.penalize(peer, "media requests far over the rate limit");
                    }
                    self.refuse_media(channel);
                    return Ok(());
                }
                if self.media.owed.len() >= MAX_MEDIA_PENDING {
                    self.media.owed.retain(|_, (_, ch)| ch.is_open());
                }
                let of_peer = self.media.owed.values().filter(|(p, _)| *p == peer).count();
                if self.media.owed.len() >= MAX_MEDIA_PENDING || of_peer >= MAX_MEDIA_PER_PEER {
                    self.refuse_media(channel);
                    return Ok(());
                }
                self.next_inbound += 1;
                let id = self.next_inbound;
                match hand_over(&self.events, NetEvent::MediaAsked { id, peer, req }) {
                    HandOver::Sent => {
                        self.media.owed.insert(id, (peer, channel));
                    }
                    HandOver::Busy => {
                        debug!(%peer, "the engine is busy; media request refused as busy");
                        self.refuse_media(channel);
                    }
                    HandOver::Closed => return Err(()),
                }
            }
            Some(Left::InboundFailure { .. }) => {
                self.media.owed.retain(|_, (_, ch)| ch.is_open());
            }
            None => {}
        }
        Ok(())
    }
}
