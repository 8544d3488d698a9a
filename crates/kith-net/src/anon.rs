//! Deposits that do not say who deposits.
//!
//! An envelope names only its recipient, but the connection it travels on is authenticated
//! with the sender device's libp2p key, whose peer id is listed in the sender's public user
//! record. A mailbox receiving deposits on the device's own connection could therefore tell
//! who writes to whom. So each deposit with a contact's mailbox goes through a swarm of its
//! own, dial-only, with a key made for it and dropped with it once the answer (or the
//! failure) is in: the mailbox sees a peer id that appears in no record and never again, so
//! two deposits (to two recipients, or to the same one) share nothing it could link them by.
//! At most [`MAX_DEPOSITS`] are in flight; a deposit past that fails at once (the engine
//! retries it like any failed delivery). The cost of a fresh identity is one key, one swarm
//! and one handshake per deposit (see `deposit_swarms_are_cheap` below for the swarm's part).
//!
//! What is left for the mailbox to see is the connection's IP address (hiding it needs a
//! mix network or Tor, which Kith does not do) and the timing of deposits.
//!
//! The swarm speaks only `/kith/msg/1`, outbound only (it refuses inbound streams), over
//! the same transport as the device's swarm ([`crate::swarm::build`]: TCP and QUIC with DNS,
//! or a simulation's). It has no relay transport: a mailbox reachable only through a relay
//! gets deposits on the device's own swarm instead (the engine decides).

use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kith_proto::wire::{PROTOCOL, Request};
use libp2p::request_response::{self, OutboundRequestId};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, StreamProtocol, Swarm, connection_limits, identity};

use crate::codec::KithCodec;
use crate::config::{NetError, TransportBuilder};

/// Most deposits in flight at once, each with its own swarm and key.
pub const MAX_DEPOSITS: usize = 64;
/// Most connections one deposit swarm makes (it dials one mailbox).
const MAX_CONNECTIONS: u32 = 2;
/// How long an unused deposit connection stays open (the swarm is dropped before that).
const IDLE: Duration = Duration::from_secs(60);

#[derive(NetworkBehaviour)]
pub(crate) struct AnonBehaviour {
    pub(crate) limits: connection_limits::Behaviour,
    pub(crate) msg: request_response::Behaviour<KithCodec>,
}

/// One deposit: its own swarm with a fresh random key, and the one request it carries.
pub(crate) struct Deposit {
    swarm: Swarm<AnonBehaviour>,
    /// Names this deposit among those in flight (request ids are per swarm, so every
    /// deposit's single request has the same one).
    key: u64,
    /// The engine's tag for the answer.
    pub(crate) tag: u64,
    /// The mailbox it goes to.
    pub(crate) peer: PeerId,
    born: Instant,
}

impl Deposit {
    /// A new swarm with a new random key, over `transport` (or else TCP and QUIC), sending
    /// `req` to `peer`.
    fn new(
        request_timeout: Duration,
        transport: Option<&TransportBuilder>,
        tag: u64,
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        req: Request,
    ) -> Result<Self, NetError> {
        let behaviour = AnonBehaviour {
            limits: connection_limits::Behaviour::new(
                connection_limits::ConnectionLimits::default()
                    .with_max_established(Some(MAX_CONNECTIONS))
                    .with_max_established_per_peer(Some(1))
                    .with_max_pending_incoming(Some(0)),
            ),
            msg: request_response::Behaviour::with_codec(
                KithCodec::default(),
                [(
                    StreamProtocol::new(PROTOCOL),
                    request_response::ProtocolSupport::Outbound,
                )],
                request_response::Config::default()
                    .with_request_timeout(request_timeout)
                    .with_max_concurrent_streams(4),
            ),
        };
        let key = identity::Keypair::generate_ed25519();
        let mut swarm = crate::swarm::build(&key, transport, None, behaviour, IDLE)?;
        let _: OutboundRequestId =
            swarm
                .behaviour_mut()
                .msg
                .send_request_with_addresses(&peer, Ok(req), addrs);
        Ok(Self {
            swarm,
            key: 0,
            tag,
            peer,
            born: Instant::now(),
        })
    }

    /// This deposit's throwaway peer id.
    pub(crate) fn local_peer_id(&self) -> PeerId {
        *self.swarm.local_peer_id()
    }
}

/// The deposits in flight.
#[derive(Default)]
pub(crate) struct Deposits {
    live: Vec<Deposit>,
    next_key: u64,
}

impl Deposits {
    /// Starts a deposit from a fresh identity; an error when [`MAX_DEPOSITS`] are in flight
    /// or the swarm cannot be made.
    pub(crate) fn start(
        &mut self,
        request_timeout: Duration,
        transport: Option<&TransportBuilder>,
        tag: u64,
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        req: Request,
    ) -> Result<PeerId, NetError> {
        if self.live.len() >= MAX_DEPOSITS {
            return Err(NetError::Setup("too many deposits in flight".into()));
        }
        let mut d = Deposit::new(request_timeout, transport, tag, peer, addrs, req)?;
        self.next_key += 1;
        d.key = self.next_key;
        let me = d.local_peer_id();
        self.live.push(d);
        Ok(me)
    }

    /// The next event of any deposit's swarm, with the request it belongs to; pending while
    /// there are none.
    pub(crate) fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<(u64, SwarmEvent<AnonBehaviourEvent>)> {
        for d in &mut self.live {
            if let Poll::Ready(Some(ev)) = d.swarm.poll_next_unpin(cx) {
                return Poll::Ready((d.key, ev));
            }
        }
        Poll::Pending
    }

    /// The next event of any deposit's swarm (see [`Deposits::poll_next`]).
    pub(crate) async fn next(&mut self) -> (u64, SwarmEvent<AnonBehaviourEvent>) {
        std::future::poll_fn(|cx| self.poll_next(cx)).await
    }

    /// Ends deposit `key` (its swarm and libp2p key are dropped): the engine's tag for it.
    pub(crate) fn finish(&mut self, key: u64) -> Option<u64> {
        let i = self.live.iter().position(|d| d.key == key)?;
        Some(self.live.swap_remove(i).tag)
    }

    /// Ends deposits older than `max_age` (a request that somehow never ended): their tags
    /// and mailboxes, for the engine to be told they failed.
    pub(crate) fn expire(&mut self, now: Instant, max_age: Duration) -> Vec<(u64, PeerId)> {
        let mut gone = Vec::new();
        self.live.retain(|d| {
            let keep = now.duration_since(d.born) < max_age;
            if !keep {
                gone.push((d.tag, d.peer));
            }
            keep
        });
        gone
    }

    /// How many are in flight.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.live.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> Request {
        Request::ClaimPrekey
    }

    #[tokio::test]
    async fn every_deposit_has_its_own_identity_and_the_pool_is_bounded() {
        let mut d = Deposits::default();
        let peer = PeerId::random();
        let t = Duration::from_secs(5);
        let mut ids = std::collections::HashSet::new();
        for tag in 0..MAX_DEPOSITS as u64 {
            let me = d.start(t, None, tag, peer, Vec::new(), req()).unwrap();
            assert!(ids.insert(me), "a deposit identity was reused");
        }
        assert_eq!(d.len(), MAX_DEPOSITS);
        assert!(d.start(t, None, 99, peer, Vec::new(), req()).is_err());
        let first = d.live[0].key;
        assert_eq!(d.finish(first), Some(0));
        assert_eq!(d.finish(first), None);
        assert_eq!(d.len(), MAX_DEPOSITS - 1);
        let gone = d.expire(Instant::now() + Duration::from_secs(3600), t);
        assert_eq!(gone.len(), MAX_DEPOSITS - 1);
        assert_eq!(d.len(), 0);
    }

    /// What a fresh identity per deposit costs on this side: a key and a swarm (the
    /// handshake with the mailbox comes on top). Prints the figure; run with `--ignored
    /// --nocapture`.
    #[tokio::test]
    #[ignore]
    async fn deposit_swarms_are_cheap() {
        const N: u32 = 200;
        let mut d = Deposits::default();
        let peer = PeerId::random();
        let start = Instant::now();
        for tag in 0..N {
            d.start(
                Duration::from_secs(5),
                None,
                u64::from(tag),
                peer,
                Vec::new(),
                req(),
            )
            .unwrap();
            let key = d.live[0].key;
            d.finish(key);
        }
        println!("one deposit swarm: {:?}", start.elapsed() / N);
    }
}
