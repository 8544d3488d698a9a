//! Idle-link reaping: which connections nobody uses any more, so the actor can close them.
//!
//! libp2p closes a connection once no stream on it is open, but gossipsub holds a stream
//! open to every peer for as long as the connection lasts (libp2p issue 5190), so a node in
//! any group would keep every connection it ever made (each DHT query adds a dozen) until
//! the connection limit. [`Idle`] keeps what libp2p would keep without that: connections
//! with recent requests, signals, dials asked by the engine or gossip, and those the actor
//! names at each check (peers in a topic mesh, relays holding our slots), plus peers
//! holding a relay slot on this node or in a circuit it relays.
//!
//! Recent DHT traffic ([`crate::kad_use`]) keeps a link too, but only for the
//! [`DHT_KEEP`] peers that used the DHT with us last: a node that many peers query (a
//! bootstrap, a community node) does not keep a link to every one of them for that alone.
//! Before, DHT traffic did not count at all, so a link used only by Kademlia was closed
//! `after` it opened however busy, and the next query that needed it dialled it again.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use libp2p::{PeerId, relay};

/// Most links kept open by recent DHT traffic alone (the peers that used the DHT with us
/// last); about the routing table of a node in a network of a few thousand.
pub(crate) const DHT_KEEP: usize = 128;

/// When a connected peer was last used.
#[derive(Clone, Copy)]
struct Used {
    /// By anything but the DHT (or since the link opened).
    any: Instant,
    /// By the DHT.
    dht: Option<Instant>,
}

/// When each connected peer was last used, and what keeps a link open regardless.
pub(crate) struct Idle {
    /// How long a link may go unused.
    after: Duration,
    /// Most links kept by DHT traffic alone.
    dht_keep: usize,
    /// Connected peers and when each was last used (one entry per connected peer).
    used: HashMap<PeerId, Used>,
    /// Peers holding a relay slot on this node.
    slot_holders: HashSet<PeerId>,
    /// Circuits this node relays, per end.
    circuits: HashMap<PeerId, u32>,
}

impl Idle {
    pub(crate) fn new(after: Duration, dht_keep: usize) -> Self {
        Self {
            after,
            dht_keep,
            used: HashMap::new(),
            slot_holders: HashSet::new(),
            circuits: HashMap::new(),
        }
    }

    /// The peer was used now (only connected peers are tracked).
    pub(crate) fn touch(&mut self, peer: &PeerId) {
        if let Some(u) = self.used.get_mut(peer) {
            u.any = Instant::now();
        }
    }

    /// The peer asked or answered a DHT request at `now` (only connected peers are
    /// tracked).
    pub(crate) fn touch_dht(&mut self, peer: &PeerId, now: Instant) {
        if let Some(u) = self.used.get_mut(peer) {
            u.dht = Some(now);
        }
    }

    /// A link to `peer` opened at `now` (or is counted from `now` again).
    pub(crate) fn connected(&mut self, peer: PeerId, now: Instant) {
        self.used.insert(
            peer,
            Used {
                any: now,
                dht: None,
            },
        );
    }

    pub(crate) fn gone(&mut self, peer: &PeerId) {
        self.used.remove(peer);
        self.slot_holders.remove(peer);
        self.circuits.remove(peer);
    }

    /// What the relay service did: slot holders and circuit ends are kept.
    pub(crate) fn relay_event(&mut self, ev: &relay::Event) {
        match ev {
            relay::Event::ReservationReqAccepted { src_peer_id, .. }
                if self.used.contains_key(src_peer_id) =>
            {
                self.slot_holders.insert(*src_peer_id);
            }
            relay::Event::ReservationClosed { src_peer_id }
            | relay::Event::ReservationTimedOut { src_peer_id } => {
                self.slot_holders.remove(src_peer_id);
            }
            relay::Event::CircuitReqAccepted {
                src_peer_id,
                dst_peer_id,
            } => {
                for p in [src_peer_id, dst_peer_id] {
                    if self.used.contains_key(p) {
                        *self.circuits.entry(*p).or_default() += 1;
                    }
                }
            }
            relay::Event::CircuitClosed {
                src_peer_id,
                dst_peer_id,
                ..
            } => {
                for p in [src_peer_id, dst_peer_id] {
                    if let Some(n) = self.circuits.get_mut(p) {
                        *n = n.saturating_sub(1);
                        if *n == 0 {
                            self.circuits.remove(p);
                        }
                    }
                }
            }
            _ => {}
        }
    }

    /// Peers unused for longer than `after` that nothing keeps: those the DHT used within
    /// `after` are kept, the [`DHT_KEEP`] most recent of them only.
    pub(crate) fn due(&self, keep: &HashSet<PeerId>, now: Instant) -> Vec<PeerId> {
        let fresh = |t: Instant| now.saturating_duration_since(t) < self.after;
        let mut due = Vec::new();
        let mut by_dht: Vec<(Instant, PeerId)> = Vec::new();
        for (p, u) in &self.used {
            if fresh(u.any)
                || keep.contains(p)
                || self.slot_holders.contains(p)
                || self.circuits.contains_key(p)
            {
                continue;
            }
            match u.dht.filter(|t| fresh(*t)) {
                Some(t) => by_dht.push((t, *p)),
                None => due.push(*p),
            }
        }
        if by_dht.len() > self.dht_keep {
            // The most recent first; the rest go.
            by_dht.sort_unstable_by_key(|(t, _)| std::cmp::Reverse(*t));
            due.extend(by_dht.drain(self.dht_keep..).map(|(_, p)| p));
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// DHT traffic keeps a link (it did not before: links used only by Kademlia were closed
    /// `after` they opened), but only for the `dht_keep` peers that used the DHT last.
    #[test]
    fn dht_use_keeps_a_link_up_to_the_limit() {
        let after = Duration::from_secs(120);
        let ms = Duration::from_millis;
        let t0 = Instant::now();
        let mut idle = Idle::new(after, 2);
        let mut peers: Vec<PeerId> = (0..4).map(|_| PeerId::random()).collect();
        peers.sort();
        for p in &peers {
            idle.connected(*p, t0);
        }
        let none = HashSet::new();
        let sorted = |mut v: Vec<PeerId>| {
            v.sort();
            v
        };
        // Nothing used them: all due once `after` is over.
        assert!(idle.due(&none, t0 + after - ms(1)).is_empty());
        assert_eq!(sorted(idle.due(&none, t0 + after)), peers);
        // peers[0] used the DHT, then peers[1], then peers[2]; peers[3] nothing.
        for (k, p) in peers[..3].iter().enumerate() {
            idle.touch_dht(p, t0 + ms(10 * (k as u64 + 1)));
        }
        assert_eq!(
            sorted(idle.due(&none, t0 + after)),
            vec![peers[0], peers[3]],
            "the two latest DHT users are kept, no more"
        );
        // Kept ones stay kept; others keep theirs in the count.
        let keep: HashSet<PeerId> = [peers[2]].into_iter().collect();
        assert_eq!(
            sorted(idle.due(&keep, t0 + after)),
            vec![peers[3]],
            "peers[2] is kept anyway, so peers[0] and peers[1] are the two"
        );
        // A DHT use counts for `after`, like any other.
        assert_eq!(sorted(idle.due(&none, t0 + ms(30) + after)), peers);
        // A peer that is not connected is not tracked.
        let stranger = PeerId::random();
        idle.touch_dht(&stranger, t0);
        assert!(!idle.due(&none, t0 + after).contains(&stranger));
    }
}
