//! Reachability: which circuit-relay slots to hold, and what AutoNAT says about us.
//!
//! A node that other nodes cannot dial (behind NAT, or started without listen addresses)
//! stays reachable by reserving a slot on a circuit relay (libp2p circuit relay v2): it
//! listens on `<relay address>/p2p/<relay id>/p2p-circuit`, that address goes into its user
//! record, and peers dial it through the relay. DCUtR then tries to replace the relayed
//! connection with a direct one by hole punching.
//!
//! This module is the decision part, with no I/O: the actor feeds it what it sees (relay
//! servers found through identify, listeners opening and closing, AutoNAT's verdict) and asks
//! it which reservations to make now ([`Reach::due`]).
//!
//! - Relays the user named (`--relay`) are always held, and retried every [`RELAY_RETRY`]
//!   while they fail.
//! - Otherwise, when AutoNAT says the node is private, or it has no direct listener at all,
//!   it holds up to [`MAX_AUTO_RELAYS`] slots on relay servers it is connected to (bootstrap
//!   nodes run one), chosen in a fixed order (by peer id) so a restart picks the same ones.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::core::transport::ListenerId;
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};

/// Most automatic relay reservations held at once.
pub const MAX_AUTO_RELAYS: usize = 2;
/// Most relay servers remembered as candidates.
pub const MAX_RELAY_CANDIDATES: usize = 64;
/// How long to wait before trying a relay again after a reservation attempt.
pub const RELAY_RETRY: Duration = Duration::from_secs(30);

/// Whether other nodes can dial this one directly, as far as AutoNAT knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Reachability {
    /// No verdict yet (no AutoNAT server answered, or the answers disagree).
    #[default]
    Unknown,
    /// Peers dialled us back on one of our addresses.
    Public,
    /// Dial-backs failed: we are behind NAT or a firewall.
    Private,
}

impl Reachability {
    /// A short lowercase name (`unknown`, `public`, `private`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Public => "public",
            Self::Private => "private",
        }
    }
}

/// Reservation bookkeeping; see the module docs.
#[derive(Debug)]
pub(crate) struct Reach {
    /// Relays named by the user: their id and an address with `/p2p/<id>`.
    explicit: Vec<(PeerId, Multiaddr)>,
    /// Relay servers seen (identify listed the hop protocol), with an address to reach them.
    candidates: HashMap<PeerId, Multiaddr>,
    /// Open circuit listeners and the relay each is on.
    active: HashMap<ListenerId, PeerId>,
    /// When a reservation on a relay was last attempted (only for relays we know of).
    last_try: HashMap<PeerId, Instant>,
    /// AutoNAT's verdict.
    pub nat: Reachability,
    /// Whether the node has a listener of its own (not through a relay).
    pub direct: bool,
}

impl Reach {
    /// Bookkeeping for the relays the user named. Each address must end in `/p2p/<id>`;
    /// others are returned as refused.
    pub fn new(relays: &[Multiaddr], direct: bool) -> (Self, Vec<Multiaddr>) {
        let mut explicit = Vec::new();
        let mut refused = Vec::new();
        for a in relays {
            match peer_of(a) {
                Some(p) if !is_circuit(a) => explicit.push((p, a.clone())),
                _ => refused.push(a.clone()),
            }
        }
        (
            Self {
                explicit,
                candidates: HashMap::new(),
                active: HashMap::new(),
                last_try: HashMap::new(),
                nat: Reachability::Unknown,
                direct,
            },
            refused,
        )
    }

    /// A relay server seen at `addr` (a direct address, without `/p2p`).
    pub fn candidate(&mut self, peer: PeerId, addr: Multiaddr) {
        if is_circuit(&addr) {
            return;
        }
        if self.candidates.len() >= MAX_RELAY_CANDIDATES && !self.candidates.contains_key(&peer) {
            return;
        }
        let addr = with_peer(addr, peer);
        self.candidates.insert(peer, addr);
    }

    /// Whether automatic reservations are wanted now.
    pub fn wants_relay(&self) -> bool {
        self.nat == Reachability::Private || !self.direct
    }

    fn held(&self, peer: &PeerId) -> bool {
        self.active.values().any(|p| p == peer)
    }

    fn recently_tried(&self, peer: &PeerId, now: Instant) -> bool {
        self.last_try
            .get(peer)
            .is_some_and(|t| now.duration_since(*t) < RELAY_RETRY)
    }

    /// The reservations to make now: circuit addresses to listen on, with their relay.
    pub fn due(&mut self, now: Instant) -> Vec<(PeerId, Multiaddr)> {
        let mut out = Vec::new();
        for (p, a) in &self.explicit {
            if !self.held(p) && !self.recently_tried(p, now) {
                out.push((*p, a.clone().with(Protocol::P2pCircuit)));
            }
        }
        if self.wants_relay() {
            let explicit: Vec<PeerId> = self.explicit.iter().map(|(p, _)| *p).collect();
            let auto_held = self
                .active
                .values()
                .filter(|p| !explicit.contains(p))
                .count();
            let mut free = MAX_AUTO_RELAYS.saturating_sub(auto_held);
            let mut peers: Vec<&PeerId> = self.candidates.keys().collect();
            peers.sort();
            for p in peers {
                if free == 0 {
                    break;
                }
                if explicit.contains(p) || self.held(p) || self.recently_tried(p, now) {
                    continue;
                }
                if let Some(a) = self.candidates.get(p) {
                    out.push((*p, a.clone().with(Protocol::P2pCircuit)));
                    free -= 1;
                }
            }
        }
        for (p, _) in &out {
            self.last_try.insert(*p, now);
        }
        // Only relays we still know of keep a retry time.
        let known: Vec<PeerId> = self
            .candidates
            .keys()
            .chain(self.explicit.iter().map(|(p, _)| p))
            .copied()
            .collect();
        self.last_try.retain(|p, _| known.contains(p));
        out
    }

    /// A circuit listener was opened on `relay`.
    pub fn opened(&mut self, id: ListenerId, relay: PeerId) {
        self.active.insert(id, relay);
    }

    /// A listener closed; true when it was a circuit listener.
    pub fn closed(&mut self, id: ListenerId) -> bool {
        self.active.remove(&id).is_some()
    }

    /// The peer stopped being a relay candidate (it went away).
    pub fn gone(&mut self, peer: &PeerId) {
        self.candidates.remove(peer);
    }

    /// Relays we hold (or are requesting) a slot on.
    pub fn relays(&self) -> Vec<PeerId> {
        let mut v: Vec<PeerId> = self.active.values().copied().collect();
        v.sort();
        v.dedup();
        v
    }
}

/// Whether others could dial `a`: not unspecified, and (unless `private_ok`) not loopback,
/// private, link-local or shared (CGNAT) either.
pub fn usable(a: &Multiaddr, private_ok: bool) -> bool {
    a.iter().all(|p| match p {
        Protocol::Ip4(ip) => {
            let o = ip.octets();
            !ip.is_unspecified()
                && (private_ok
                    || !(ip.is_loopback()
                        || ip.is_private()
                        || ip.is_link_local()
                        || (o[0] == 100 && (64..128).contains(&o[1]))))
        }
        Protocol::Ip6(ip) => {
            let s = ip.segments();
            !ip.is_unspecified()
                && (private_ok
                    || !(ip.is_loopback()
                        || (s[0] & 0xfe00) == 0xfc00
                        || (s[0] & 0xffc0) == 0xfe80))
        }
        _ => true,
    })
}

/// Whether an address goes through a relay.
pub fn is_circuit(a: &Multiaddr) -> bool {
    a.iter().any(|p| matches!(p, Protocol::P2pCircuit))
}

/// The peer id at the end of an address, if any.
fn peer_of(a: &Multiaddr) -> Option<PeerId> {
    match a.iter().last() {
        Some(Protocol::P2p(p)) => Some(p),
        _ => None,
    }
}

/// `addr` ending in `/p2p/<peer>`.
fn with_peer(addr: Multiaddr, peer: PeerId) -> Multiaddr {
    if peer_of(&addr).is_some() {
        addr
    } else {
        addr.with(Protocol::P2p(peer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relay_addr(port: u16) -> (PeerId, Multiaddr) {
        let p = PeerId::random();
        let a: Multiaddr = format!("/ip4/127.0.0.1/tcp/{port}").parse().unwrap();
        (p, a)
    }

    #[test]
    fn named_relays_are_held_and_retried_after_a_pause() {
        let (p, a) = relay_addr(1);
        let (mut r, refused) = Reach::new(&[a.clone().with(Protocol::P2p(p))], true);
        assert!(refused.is_empty());
        let t0 = Instant::now();
        let due = r.due(t0);
        assert_eq!(due.len(), 1);
        assert!(is_circuit(&due[0].1));
        // Not again while the attempt is fresh.
        assert!(r.due(t0 + Duration::from_secs(1)).is_empty());
        // Failed (no listener opened): retried after the pause.
        assert_eq!(r.due(t0 + RELAY_RETRY).len(), 1);
        // Held: not asked for again.
        r.opened(ListenerId::next(), p);
        assert!(r.due(t0 + RELAY_RETRY * 3).is_empty());
    }

    #[test]
    fn a_named_relay_needs_a_peer_id() {
        let (_, a) = relay_addr(2);
        let (_, refused) = Reach::new(&[a], true);
        assert_eq!(refused.len(), 1);
    }

    #[test]
    fn automatic_relays_only_when_unreachable_and_at_most_two() {
        let (mut r, _) = Reach::new(&[], true);
        for port in 0..5 {
            let (p, a) = relay_addr(port);
            r.candidate(p, a);
        }
        let t0 = Instant::now();
        assert!(
            r.due(t0).is_empty(),
            "public or unknown with a listener: no relay"
        );
        r.nat = Reachability::Private;
        let due = r.due(t0);
        assert_eq!(due.len(), MAX_AUTO_RELAYS);
        let ids: Vec<ListenerId> = due
            .iter()
            .map(|(p, _)| {
                let id = ListenerId::next();
                r.opened(id, *p);
                id
            })
            .collect();
        let later = t0 + RELAY_RETRY * 2;
        assert!(r.due(later).is_empty(), "two held already");
        // One closes: one replacement is asked for, not the one that just closed... unless
        // its pause is over, which it is here; either way exactly one.
        assert!(r.closed(ids[0]));
        assert!(!r.closed(ListenerId::next()), "not a circuit listener");
        assert_eq!(r.due(later).len(), 1);
    }

    #[test]
    fn no_listener_means_relay_even_without_a_verdict() {
        let (mut r, _) = Reach::new(&[], false);
        let (p, a) = relay_addr(9);
        r.candidate(p, a);
        assert_eq!(r.due(Instant::now()).len(), 1);
    }

    #[test]
    fn usable_addresses() {
        let ok = |s: &str, p| usable(&s.parse().unwrap(), p);
        assert!(ok("/ip4/203.0.113.7/tcp/1", false));
        assert!(ok("/dns4/kith.example/tcp/1", false));
        assert!(!ok("/ip4/127.0.0.1/tcp/1", false));
        assert!(ok("/ip4/127.0.0.1/tcp/1", true));
        assert!(!ok("/ip4/10.1.2.3/tcp/1", false));
        assert!(!ok("/ip4/100.64.0.1/tcp/1", false));
        assert!(!ok("/ip4/0.0.0.0/tcp/1", true));
        assert!(!ok("/ip6/fe80::1/tcp/1", false));
        assert!(!ok("/ip6/fd00::1/tcp/1", false));
        assert!(ok("/ip6/2001:db8::1/tcp/1", false));
    }

    #[test]
    fn candidates_are_bounded_and_circuits_ignored() {
        let (mut r, _) = Reach::new(&[], false);
        for port in 0..(MAX_RELAY_CANDIDATES as u16 + 10) {
            let (p, a) = relay_addr(port);
            r.candidate(p, a);
        }
        assert_eq!(r.candidates.len(), MAX_RELAY_CANDIDATES);
        let (mut r, _) = Reach::new(&[], false);
        let (p, a) = relay_addr(1);
        r.candidate(p, a.with(Protocol::P2pCircuit));
        assert!(r.candidates.is_empty());
    }
}
