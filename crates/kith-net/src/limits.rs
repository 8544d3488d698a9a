//! What a peer may make this node do and hold: the operator's knobs ([`NetLimits`], with a
//! real node's defaults) and the per-peer gate every inbound `/kith/msg/1` request and every
//! DHT record put to us passes ([`Gate`]). The gate is the decision part, with no I/O and the
//! time passed in; the actor answers and penalises as it says.
//!
//! - A peer may make [`NetLimits::requests_per_minute`] requests a minute; past that they
//!   are answered `Refused(Busy)` without reaching the engine, and every further
//!   `requests_per_minute` refusals in one window count a strike (five block it,
//!   `crate::strikes`). Another peer is served meanwhile: the count is per peer, for up to
//!   [`MAX_GATED_PEERS`] peers. A peer the engine vouches for (`NetCommand::Vouch`: a device
//!   of a contact the user added or of a fellow group member, seen delivering its own
//!   messages) gets [`NetLimits::known_requests_per_minute`] instead for [`VOUCH_TTL`], so a
//!   burst between two people who know each other is not refused as busy.
//! - At most [`NetLimits::request_streams`] requests of one connection are open at once
//!   (libp2p's `max_concurrent_streams`); each reads its frame into a buffer that grows with
//!   the bytes that arrive ([`crate::codec`]).
//! - The DHT: at most [`NetLimits::dht_records`] records are held in all (one per identity:
//!   a record's key is its identity's), and one peer may put
//!   [`NetLimits::dht_puts_per_hour`] records an hour; more are dropped the same way.
//! - A node AutoNAT finds private runs Kademlia as a client ([`kad_mode`]): it neither
//!   answers DHT queries nor stores records for others.

use std::time::{Duration, Instant};

use kith_types::{BoundedMap, RateLimit};
use libp2p::PeerId;
use libp2p::kad;

use crate::reach::Reachability;

/// Most peers whose request counts are tracked (the oldest window goes first).
pub const MAX_GATED_PEERS: usize = 8192;

/// Limits on what peers may make this node do and hold. `Default` is a real node's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetLimits {
    /// Requests (`/kith/msg/1`) one peer may make a minute; more are refused as busy.
    pub requests_per_minute: u32,
    /// Requests a minute of a peer the engine vouches for (a device of someone the user
    /// knows).
    pub known_requests_per_minute: u32,
    /// Requests of one connection open at once.
    pub request_streams: usize,
    /// DHT records held for others, in all.
    pub dht_records: usize,
    /// DHT records one peer may put here an hour.
    pub dht_puts_per_hour: u32,
    /// Connections open at once, in all (a community node serving many devices needs more).
    pub max_connections: u32,
}

/// Requests a peer may make a minute, by default (ten a second on average).
pub const REQUESTS_PER_MINUTE: u32 = 600;
/// Requests a known peer may make a minute, by default (a hundred a second on average).
pub const KNOWN_REQUESTS_PER_MINUTE: u32 = 6000;
/// How long a vouch lasts (renewed by every batch the peer delivers of its own).
pub const VOUCH_TTL: Duration = Duration::from_secs(3600);
/// Requests of one connection open at once, by default.
pub const REQUEST_STREAMS: usize = 32;
/// DHT records held for others, by default (at most 8 KiB each: 128 MiB).
pub const DHT_RECORDS: usize = 16_384;
/// DHT records one peer may put here an hour, by default.
pub const DHT_PUTS_PER_HOUR: u32 = 60;
/// Connections open at once, by default.
pub const MAX_CONNECTIONS: u32 = 4096;

impl Default for NetLimits {
    fn default() -> Self {
        Self {
            requests_per_minute: REQUESTS_PER_MINUTE,
            known_requests_per_minute: KNOWN_REQUESTS_PER_MINUTE,
            request_streams: REQUEST_STREAMS,
            dht_records: DHT_RECORDS,
            dht_puts_per_hour: DHT_PUTS_PER_HOUR,
            max_connections: MAX_CONNECTIONS,
        }
    }
}

/// What to do with one request of a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pass {
    /// Serve it.
    Serve,
    /// Refuse it as busy.
    Busy,
    /// Refuse it as busy, and count a strike: the peer keeps going far over its rate.
    Strike,
}

/// At most `max` events per window per peer (a vouched peer: `known.0`); see the module
/// docs.
#[derive(Debug)]
pub(crate) struct Gate {
    max: u32,
    window: Duration,
    rate: RateLimit<PeerId>,
    /// The rate of vouched peers, if this gate has one.
    known: Option<(u32, RateLimit<PeerId>)>,
    /// Vouched peers, until when.
    vouched: BoundedMap<PeerId, Instant>,
    /// Refusals in the peer's current window, and when that window began.
    refused: BoundedMap<PeerId, (Instant, u32)>,
}

impl Gate {
    /// At most `max` events per `window` per peer.
    pub(crate) fn new(max: u32, window: Duration) -> Self {
        Self {
            max: max.max(1),
            window,
            rate: RateLimit::new(max, window, MAX_GATED_PEERS),
            known: None,
            vouched: BoundedMap::new(MAX_GATED_PEERS),
            refused: BoundedMap::new(MAX_GATED_PEERS),
        }
    }

    /// The gate of `/kith/msg/1` requests.
    pub(crate) fn requests(l: &NetLimits) -> Self {
        let window = Duration::from_secs(60);
        let known = l.known_requests_per_minute.max(l.requests_per_minute);
        Self {
            known: Some((known, RateLimit::new(known, window, MAX_GATED_PEERS))),
            ..Self::new(l.requests_per_minute, window)
        }
    }

    /// The gate of DHT records put to us.
    pub(crate) fn dht_puts(l: &NetLimits) -> Self {
        Self::new(l.dht_puts_per_hour, Duration::from_secs(3600))
    }

    /// `peer` is a device of someone the user knows, from `now` for [`VOUCH_TTL`]. (A gate
    /// without a known rate ignores it.)
    pub(crate) fn vouch(&mut self, peer: PeerId, now: Instant) {
        if self.known.is_some() {
            self.vouched.insert(peer, now + VOUCH_TTL);
        }
    }

    /// One event of `peer` at `now`.
    pub(crate) fn pass(&mut self, peer: PeerId, now: Instant) -> Pass {
        let vouched = self.vouched.get(&peer).is_some_and(|until| now < *until);
        let (allowed, max) = match &mut self.known {
            Some((max, rate)) if vouched => (rate.allow(peer, now), *max),
            _ => (self.rate.allow(peer, now), self.max),
        };
        if allowed {
            return Pass::Serve;
        }
        let n = match self.refused.get_mut(&peer) {
            Some((start, n)) if now.saturating_duration_since(*start) < self.window => {
                *n += 1;
                *n
            }
            _ => {
                self.refused.insert(peer, (now, 1));
                1
            }
        };
        if n % max.max(1) == 0 {
            Pass::Strike
        } else {
            Pass::Busy
        }
    }
}

/// How Kademlia runs given AutoNAT's verdict: a node others cannot dial is a client (it
/// asks, and neither answers nor stores for others); otherwise a server. Nodes on loopback
/// and LANs never see themselves confirmed public, so "unknown" serves too.
pub fn kad_mode(nat: Reachability) -> kad::Mode {
    match nat {
        Reachability::Private => kad::Mode::Client,
        _ => kad::Mode::Server,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(n: u8) -> PeerId {
        let Ok(k) = libp2p::identity::Keypair::ed25519_from_bytes([n; 32]) else {
            unreachable!("any 32 bytes are an ed25519 secret key")
        };
        k.public().to_peer_id()
    }

    /// A peer over its rate is refused, and strikes as it keeps going, while another peer
    /// is served; a new window serves it again.
    #[test]
    fn a_peer_over_its_rate_is_refused_while_another_is_served() {
        let (flooder, honest) = (peer(1), peer(2));
        let mut g = Gate::new(10, Duration::from_secs(60));
        let t0 = Instant::now();
        for _ in 0..10 {
            assert_eq!(g.pass(flooder, t0), Pass::Serve);
        }
        let refused: Vec<Pass> = (0..20).map(|_| g.pass(flooder, t0)).collect();
        assert!(refused.iter().all(|p| *p != Pass::Serve));
        assert_eq!(refused.iter().filter(|p| **p == Pass::Strike).count(), 2);
        assert_eq!(g.pass(honest, t0), Pass::Serve);
        assert_eq!(g.pass(flooder, t0 + Duration::from_secs(61)), Pass::Serve);
    }

    /// A peer the engine vouches for (a device of someone the user knows) gets the known
    /// rate until its vouch runs out; a stranger keeps the stranger's rate.
    #[test]
    fn a_vouched_peer_gets_the_known_rate_until_the_vouch_runs_out() {
        let (friend, stranger) = (peer(1), peer(2));
        let limits = NetLimits {
            requests_per_minute: 10,
            known_requests_per_minute: 100,
            ..NetLimits::default()
        };
        let mut g = Gate::requests(&limits);
        let t0 = Instant::now();
        g.vouch(friend, t0);
        g.vouch(stranger, t0 - VOUCH_TTL);
        let served = |g: &mut Gate, p: PeerId, at: Instant| {
            (0..150).filter(|_| g.pass(p, at) == Pass::Serve).count()
        };
        assert_eq!(served(&mut g, friend, t0), 100);
        assert_eq!(
            served(&mut g, stranger, t0),
            10,
            "an expired vouch counts for nothing"
        );
        // A minute later the vouch holds; after VOUCH_TTL it does not.
        assert_eq!(served(&mut g, friend, t0 + Duration::from_secs(61)), 100);
        let later = t0 + VOUCH_TTL + Duration::from_secs(120);
        assert_eq!(served(&mut g, friend, later), 10);
        // The DHT gate has no known rate: a vouch changes nothing there.
        let mut puts = Gate::dht_puts(&limits);
        puts.vouch(friend, t0);
        assert_eq!(
            served(&mut puts, friend, t0),
            limits.dht_puts_per_hour as usize
        );
    }

    #[test]
    fn a_private_node_is_a_dht_client() {
        assert_eq!(kad_mode(Reachability::Private), kad::Mode::Client);
        assert_eq!(kad_mode(Reachability::Public), kad::Mode::Server);
        assert_eq!(kad_mode(Reachability::Unknown), kad::Mode::Server);
    }
}
