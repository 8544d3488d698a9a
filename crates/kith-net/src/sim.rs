//! What a simulation (`net-sim`) gives a node's network to shape its memory links, to
//! change a few settings that a thousand nodes in one process cannot afford, and to watch
//! it: [`SimNet`].
//!
//! A simulation makes one [`SimNet`] per node and passes a clone in
//! [`crate::NetConfig::sim`] every time the node starts; the clones share their counters, so
//! they add up over restarts. It is read only with [`crate::NetConfig::memory`]; a node on
//! TCP and QUIC ignores it, and a node without it behaves as it always has.
//!
//! - **Shaping**: [`SimNet::shape`] applies to every memory link the node opens or accepts
//!   (both its swarms); see [`crate::shaped`] for the model.
//! - **Settings**: [`SimNet::idle_timeout`] replaces the node's idle-connection timeout and
//!   [`SimNet::kad_bootstrap_every`] Kademlia's periodic bootstrap interval (five minutes);
//!   [`SimNet::skip_fsync`] lets the node's store commit without fsync (read by the engine).
//!   Each bootstrap connects a node to a few dozen to a few hundred peers, which is cheap
//!   for one machine and not for a thousand in one process.
//! - **Traffic**: [`SimNet::traffic`] gives the bytes the node wrote and read on its
//!   links, Noise and Yamux included.
//! - **DHT lookups**: [`SimNet::lookup`] asks the node's Kademlia for a user's record, as
//!   the engine does for a contact it cannot reach; [`SimNet::lookups`] lists the finished
//!   ones with Kademlia's own statistics (requests sent, which stand in for hops, and time).
//!   Their answers go to the engine tagged with [`LOOKUP_TAG`], which it does not know and
//!   drops.
//! - **Gossip copies**: [`SimNet::gossip`] counts the group messages the node's gossipsub
//!   received, every copy and the first ones, so a simulation can report duplicates.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kith_proto::record::user_record_key;
use tokio::sync::mpsc;

use crate::actor::{NetCommand, NetError};
use crate::shaped::{LinkShape, Traffic, mix};

/// The high bit marks the tags of lookups made through [`SimNet::lookup`].
pub const LOOKUP_TAG: u64 = 1 << 63;
/// Most finished lookups kept (older ones are dropped).
pub const MAX_LOOKUPS: usize = 100_000;
/// Most lookups in flight tracked per node.
const MAX_IN_FLIGHT: usize = 4096;

/// A finished DHT lookup.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lookup {
    /// A valid record was found.
    pub found: bool,
    /// Requests the query sent until the first valid record came (or in all, when none did):
    /// a stand-in for the hops a lookup takes.
    pub requests: u32,
    /// Time until the first valid record came (or until the query ended, when none did).
    pub time: Duration,
    /// Time until the query ended, which is when the engine gets its answer.
    pub time_to_end: Duration,
}

/// Shaping and counters for a node's memory links; cheap to clone (clones share counters).
#[derive(Debug, Clone, Default)]
pub struct SimNet {
    /// How the node's links behave; `None` leaves them instant (bytes are still counted).
    pub shape: Option<LinkShape>,
    /// How long an idle connection stays open, instead of the node's usual two minutes. A
    /// joining node's Kademlia bootstrap connects it to a few hundred peers; with a thousand
    /// nodes in one process starting within two minutes that is nearly a full mesh, which
    /// a simulation can shorten this way.
    pub idle_timeout: Option<Duration>,
    /// How often Kademlia refreshes its routing table with a bootstrap, instead of every
    /// five minutes.
    pub kad_bootstrap_every: Option<Duration>,
    /// The node's store commits without fsync (but now and then): hundreds of nodes in one
    /// process share one disk, so each node's fsyncs queue behind all the others', which a
    /// node on its own device never sees. Read by the engine.
    pub skip_fsync: bool,
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    traffic: Arc<Traffic>,
    /// Links opened so far (each link end draws from its own seed).
    links: AtomicU64,
    next_lookup: AtomicU64,
    /// The running network's command queue (weak: it must not keep the network alive).
    net: Mutex<Option<mpsc::WeakSender<NetCommand>>>,
    lookups: Mutex<Lookups>,
    gossip: Arc<GossipCounts>,
}

/// Gossipsub messages counted for a simulation.
#[derive(Debug, Default)]
pub(crate) struct GossipCounts {
    /// Message ids gossipsub computed: one per message this node published and one per copy
    /// it received (gossipsub computes the id of every copy before its duplicate check).
    pub(crate) ids: AtomicU64,
    /// Messages this node published.
    pub(crate) published: AtomicU64,
    /// Messages gossipsub passed on as new (first copies).
    pub(crate) first: AtomicU64,
}

/// Gossip messages a node received: see [`SimNet::gossip`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GossipReceived {
    /// Every copy that arrived, duplicates and invalid ones included.
    pub copies: u64,
    /// Messages that were new to the node.
    pub first: u64,
}

impl GossipReceived {
    /// Copies beyond the first (duplicates, plus the rare copy refused as invalid).
    pub fn duplicates(&self) -> u64 {
        self.copies.saturating_sub(self.first)
    }
}

#[derive(Debug, Default)]
struct Lookups {
    /// Lookups in flight that found a record: requests and time to the first one.
    first: HashMap<u64, (u32, Duration)>,
    done: VecDeque<Lookup>,
}

impl SimNet {
    /// Links shaped by `shape` (or instant with `None`), with fresh counters.
    pub fn new(shape: Option<LinkShape>) -> Self {
        Self {
            shape,
            idle_timeout: None,
            kad_bootstrap_every: None,
            skip_fsync: false,
            shared: Arc::default(),
        }
    }

    /// Bytes the node has written and read on its links: `(sent, received)`.
    pub fn traffic(&self) -> (u64, u64) {
        let t = &self.shared.traffic;
        (
            t.sent.load(Ordering::Relaxed),
            t.received.load(Ordering::Relaxed),
        )
    }

    /// Link ends of this node open now (one per connection, relayed ones aside).
    pub fn open_links(&self) -> u64 {
        self.shared.traffic.open.load(Ordering::Relaxed)
    }

    /// Link ends this node has opened or accepted so far.
    pub fn links_opened(&self) -> u64 {
        self.shared.links.load(Ordering::Relaxed)
    }

    /// Starts a DHT lookup of the record of the user with this identity key. Fails when
    /// the node is not running or its queue is full.
    pub fn lookup(&self, identity: &[u8; 32]) -> Result<(), NetError> {
        let tx = self
            .shared
            .net
            .lock()
            .ok()
            .and_then(|n| n.as_ref().and_then(mpsc::WeakSender::upgrade))
            .ok_or(NetError::Stopped)?;
        let n = self.shared.next_lookup.fetch_add(1, Ordering::Relaxed);
        tx.try_send(NetCommand::GetRecord {
            tag: LOOKUP_TAG | (n & !LOOKUP_TAG),
            key: user_record_key(identity),
        })
        .map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => NetError::Busy,
            mpsc::error::TrySendError::Closed(_) => NetError::Stopped,
        })
    }

    /// The lookups finished so far (at most [`MAX_LOOKUPS`], the latest).
    pub fn lookups(&self) -> Vec<Lookup> {
        self.shared
            .lookups
            .lock()
            .map(|l| l.done.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Gossip messages the node has received so far (over restarts).
    pub fn gossip(&self) -> GossipReceived {
        let g = &self.shared.gossip;
        GossipReceived {
            copies: g
                .ids
                .load(Ordering::Relaxed)
                .saturating_sub(g.published.load(Ordering::Relaxed)),
            first: g.first.load(Ordering::Relaxed),
        }
    }

    /// The counters gossipsub's message-id function and the network add to.
    pub(crate) fn gossip_counters(&self) -> Arc<GossipCounts> {
        self.shared.gossip.clone()
    }

    /// The counters the link wrapper adds to.
    pub(crate) fn traffic_counters(&self) -> Arc<Traffic> {
        self.shared.traffic.clone()
    }

    /// The seed for the next link end this node opens or accepts.
    pub(crate) fn next_link_seed(&self) -> u64 {
        let n = self.shared.links.fetch_add(1, Ordering::Relaxed);
        mix(self.shape.map_or(0, |s| s.seed), n)
    }

    /// Remembers the running network's command queue, for [`SimNet::lookup`].
    pub(crate) fn attach(&self, tx: &mpsc::Sender<NetCommand>) {
        if let Ok(mut n) = self.shared.net.lock() {
            *n = Some(tx.downgrade());
        }
    }

    /// A step of a GetRecord query: `found` when this step brought a valid record, `last`
    /// when the query is over. Only queries tagged [`LOOKUP_TAG`] are recorded.
    pub(crate) fn lookup_step(
        &self,
        tag: u64,
        found: bool,
        last: bool,
        stats: &libp2p::kad::QueryStats,
    ) {
        if tag & LOOKUP_TAG == 0 {
            return;
        }
        let Ok(mut l) = self.shared.lookups.lock() else {
            return;
        };
        let now = (stats.num_requests(), stats.duration().unwrap_or_default());
        if found && !l.first.contains_key(&tag) && l.first.len() < MAX_IN_FLIGHT {
            l.first.insert(tag, now);
        }
        if last {
            let first = l.first.remove(&tag);
            let (requests, time) = first.unwrap_or(now);
            if l.done.len() >= MAX_LOOKUPS {
                l.done.pop_front();
            }
            l.done.push_back(Lookup {
                found: first.is_some() || found,
                requests,
                time,
                time_to_end: now.1,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_tagged_lookups_are_recorded_and_a_miss_counts_as_not_found() {
        let sim = SimNet::new(None);
        let stats = libp2p::kad::QueryStats::empty();
        // The engine's own lookups are not ours.
        sim.lookup_step(7, true, false, &stats);
        sim.lookup_step(7, false, true, &stats);
        assert!(sim.lookups().is_empty());
        // Found, then the query ends.
        sim.lookup_step(LOOKUP_TAG | 1, true, false, &stats);
        sim.lookup_step(LOOKUP_TAG | 1, false, true, &stats);
        // Never found.
        sim.lookup_step(LOOKUP_TAG | 2, false, false, &stats);
        sim.lookup_step(LOOKUP_TAG | 2, false, true, &stats);
        let l = sim.lookups();
        assert_eq!(l.len(), 2);
        assert!(l[0].found && !l[1].found, "{l:?}");
    }

    #[test]
    fn a_lookup_needs_a_running_network() {
        let sim = SimNet::new(None);
        assert!(matches!(sim.lookup(&[0; 32]), Err(NetError::Stopped)));
        let (tx, mut rx) = mpsc::channel(1);
        sim.attach(&tx);
        sim.lookup(&[1; 32]).unwrap();
        assert!(matches!(
            rx.try_recv(),
            Ok(NetCommand::GetRecord { tag, .. }) if tag & LOOKUP_TAG != 0
        ));
        assert!(matches!(sim.lookup(&[1; 32]), Ok(())));
        assert!(
            matches!(sim.lookup(&[1; 32]), Err(NetError::Busy)),
            "queue full"
        );
        drop((tx, rx));
        assert!(
            matches!(sim.lookup(&[1; 32]), Err(NetError::Stopped)),
            "the handle does not keep a stopped network alive"
        );
    }
}
