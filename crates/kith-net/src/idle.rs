//! Idle-link reaping: which connections nobody uses any more, so the actor can close them.
//!
//! libp2p closes a connection once no stream on it is open, but gossipsub holds a stream
//! open to every peer for as long as the connection lasts (libp2p issue 5190), so a node in
//! any group would keep every connection it ever made (each DHT query adds a dozen) until
//! the connection limit. [`Idle`] keeps what libp2p would keep without that: connections
//! with recent requests, signals, dials asked by the engine or gossip, and those the actor
//! names at each check (peers in a topic mesh, relays holding our slots), plus peers
//! holding a relay slot on this node or in a circuit it relays.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use libp2p::{PeerId, relay};

/// When each connected peer was last used, and what keeps a link open regardless.
pub(crate) struct Idle {
    /// How long a link may go unused.
    after: Duration,
    /// Connected peers and when each was last used (one entry per connected peer).
    used: HashMap<PeerId, Instant>,
    /// Peers holding a relay slot on this node.
    slot_holders: HashSet<PeerId>,
    /// Circuits this node relays, per end.
    circuits: HashMap<PeerId, u32>,
}

impl Idle {
    pub(crate) fn new(after: Duration) -> Self {
        Self {
            after,
            used: HashMap::new(),
            slot_holders: HashSet::new(),
            circuits: HashMap::new(),
        }
    }

    /// The peer was used now (only connected peers are tracked).
    pub(crate) fn touch(&mut self, peer: &PeerId) {
        if let Some(t) = self.used.get_mut(peer) {
            *t = Instant::now();
        }
    }

    pub(crate) fn connected(&mut self, peer: PeerId) {
        self.used.insert(peer, Instant::now());
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

    /// Peers unused for longer than `after` that nothing keeps.
    pub(crate) fn due(&self, keep: &HashSet<PeerId>) -> Vec<PeerId> {
        let now = Instant::now();
        self.used
            .iter()
            .filter(|(p, t)| {
                now.duration_since(**t) >= self.after
                    && !keep.contains(*p)
                    && !self.slot_holders.contains(*p)
                    && !self.circuits.contains_key(*p)
            })
            .map(|(p, _)| *p)
            .collect()
    }
}
