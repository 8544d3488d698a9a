//! A simulated node's network: its links and what the simulation reads of them,
//! all through [`SimNet`], which plugs into kith-net's seam ([`kith_net::NetOptions`]).
//!
//! A simulation makes one [`SimNet`] per node and passes [`SimNet::options`] every time the
//! node starts; the clones share their counters and cuts, so they add up (and hold) over
//! restarts.
//!
//! - **Links**: in-process memory links (`/memory/<n>` addresses, the default) or loopback
//!   TCP ([`SimNet::tcp`]), with Noise and Yamux as on a real node. Each link end is wrapped
//!   below Noise by [`shaped`] (latency, jitter, loss and bandwidth from a seed when
//!   [`SimNet::shape`] is set, and byte counters either way) and above Yamux by [`cut`],
//!   which closes and refuses links to the peers [`SimNet::cut`] names: a partition.
//!   Both the node's swarms use them (its own and the anonymous deposit swarm).
//! - **Settings**: [`SimNet::idle_timeout`] replaces the node's idle-connection timeout and
//!   [`SimNet::kad_bootstrap_every`] Kademlia's periodic bootstrap interval (five minutes).
//!   Each bootstrap connects a node to a few dozen to a few hundred peers, which is cheap
//!   for one machine and not for a thousand in one process.
//! - **Traffic**: [`SimNet::traffic`] gives the bytes the node wrote and read on its
//!   links, Noise and Yamux included; [`SimNet::open_links`] and [`SimNet::links_opened`]
//!   count link ends.
//! - **DHT lookups**: [`SimNet::lookup`] asks the node's Kademlia for a user's record, as
//!   the engine does for a contact it cannot reach (a probe the engine never hears of,
//!   [`kith_net::NetCommand::ProbeRecord`]); [`SimNet::lookups`] lists the finished probes
//!   with Kademlia's own statistics (requests sent and time); [`SimNet::routing_table`]
//!   gives the peers in its Kademlia routing table, from which [`crate::paths`] works out
//!   how many rounds a lookup takes (the hops).
//! - **Gossip copies**: [`SimNet::gossip`] counts the group messages the node's gossipsub
//!   received, every copy and the first ones, so a simulation can report duplicates.
//!
//! Store durability is not the network's business: whoever builds a node chooses it
//! (`EngineConfig::store_fsync`).

pub mod cut;
pub mod shaped;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kith_net::{
    BoxedTransport, BuildError, IDLE_TIMEOUT, Lookup, NetCommand, NetError, NetObserver,
    NetOptions, PeerId, TransportBuilder, WeakNetHandle,
};
use kith_proto::record::user_record_key;
use libp2p::Transport as _;
use libp2p::core::ConnectedPoint;
use libp2p::core::muxing::StreamMuxerBox;
use libp2p::core::upgrade::Version;
use libp2p::{identity, noise, tcp, yamux};

use cut::Cuts;
use shaped::{LinkShape, Shaped, Traffic, mix};

/// Most finished lookups kept (older ones are dropped).
pub const MAX_LOOKUPS: usize = 100_000;

/// A node's simulated network; cheap to clone (clones share counters and cuts).
#[derive(Debug, Clone, Default)]
pub struct SimNet {
    /// How the node's links behave; `None` leaves them instant (bytes are still counted).
    pub shape: Option<LinkShape>,
    /// Loopback TCP links instead of memory links.
    pub tcp: bool,
    /// How long an idle connection stays open, instead of the node's usual two minutes. A
    /// joining node's Kademlia bootstrap connects it to a few hundred peers; with a thousand
    /// nodes in one process starting within two minutes that is nearly a full mesh, which
    /// a simulation can shorten this way.
    pub idle_timeout: Option<Duration>,
    /// How often Kademlia refreshes its routing table with a bootstrap, instead of every
    /// five minutes.
    pub kad_bootstrap_every: Option<Duration>,
    shared: Arc<Shared>,
}

/// What the clones of a [`SimNet`] share; also the node's [`NetObserver`].
#[derive(Debug, Default)]
struct Shared {
    traffic: Arc<Traffic>,
    /// Links opened so far (each link end draws from its own seed).
    links: AtomicU64,
    /// The running network (weak: it must not keep the network alive).
    net: Mutex<Option<WeakNetHandle>>,
    /// Finished probes, the latest [`MAX_LOOKUPS`].
    lookups: Mutex<VecDeque<Lookup>>,
    /// The peers in the node's Kademlia routing table, as last told (every 5 s).
    table: Mutex<Vec<PeerId>>,
    gossip: GossipCounts,
    cuts: Arc<Cuts>,
}

/// Gossipsub messages counted for a simulation.
#[derive(Debug, Default)]
struct GossipCounts {
    /// Message ids gossipsub computed: one per message this node published and one per copy
    /// it received (gossipsub computes the id of every copy before its duplicate check).
    ids: AtomicU64,
    /// Messages this node published.
    published: AtomicU64,
    /// Messages gossipsub passed on as new (first copies).
    first: AtomicU64,
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

impl NetObserver for Shared {
    fn started(&self, net: WeakNetHandle) {
        if let Ok(mut n) = self.net.lock() {
            *n = Some(net);
        }
    }

    fn gossip_message_id(&self) {
        self.gossip.ids.fetch_add(1, Ordering::Relaxed);
    }

    fn gossip_published(&self) {
        self.gossip.published.fetch_add(1, Ordering::Relaxed);
    }

    fn gossip_new(&self) {
        self.gossip.first.fetch_add(1, Ordering::Relaxed);
    }

    fn lookup_done(&self, lookup: &Lookup) {
        // The engine's own lookups are not the simulation's.
        if !lookup.probe {
            return;
        }
        if let Ok(mut l) = self.lookups.lock() {
            if l.len() >= MAX_LOOKUPS {
                l.pop_front();
            }
            l.push_back(*lookup);
        }
    }

    fn routing_table(&self, peers: Vec<PeerId>) {
        if let Ok(mut t) = self.table.lock() {
            *t = peers;
        }
    }
}

impl SimNet {
    /// Memory links shaped by `shape` (or instant with `None`), with fresh counters.
    pub fn new(shape: Option<LinkShape>) -> Self {
        Self {
            shape,
            ..Self::default()
        }
    }

    /// What the node's network is started with: these links, this observer, these timings.
    pub fn options(&self) -> NetOptions {
        let sim = self.clone();
        NetOptions {
            transport: Some(TransportBuilder::new(move |key| sim.transport(key))),
            observer: Some(self.shared.clone()),
            idle_timeout: self.idle_timeout.unwrap_or(IDLE_TIMEOUT),
            kad_bootstrap_every: self.kad_bootstrap_every,
            limits: kith_net::NetLimits::default(),
            community: false,
        }
    }

    /// The observer the node's network reports to.
    pub(crate) fn observer(&self) -> Arc<dyn NetObserver> {
        self.shared.clone()
    }

    /// The links of a swarm with this key: raw links wrapped in [`Shaped`], Noise, Yamux,
    /// then [`cut`]. Protocols are negotiated with [`Version::V1`] (a real node's TCP links
    /// use `V1Lazy`, a round trip less per new connection; tried here, DHT requests over
    /// shaped links stalled until they timed out, not looked into yet).
    pub(crate) fn transport(&self, key: &identity::Keypair) -> Result<BoxedTransport, BuildError> {
        let noise = noise::Config::new(key)?;
        let links = if self.tcp {
            tcp::tokio::Transport::new(tcp::Config::default().nodelay(true))
                .map(self.wrap())
                .upgrade(Version::V1)
                .authenticate(noise)
                .multiplex(yamux::Config::default())
                .map(|(p, m), _| (p, StreamMuxerBox::new(m)))
                .boxed()
        } else {
            libp2p::core::transport::MemoryTransport::default()
                .map(self.wrap())
                .upgrade(Version::V1)
                .authenticate(noise)
                .multiplex(yamux::Config::default())
                .map(|(p, m), _| (p, StreamMuxerBox::new(m)))
                .boxed()
        };
        Ok(cut::with_cuts(links, self.shared.cuts.clone()))
    }

    /// Wraps each raw link end this node opens or accepts in [`Shaped`].
    fn wrap<C>(&self) -> impl FnOnce(C, ConnectedPoint) -> Shaped<C> + Clone + Send + 'static {
        let sim = self.clone();
        move |link, _| {
            let seed = sim.next_link_seed();
            Shaped::new(link, sim.shape, seed, sim.shared.traffic.clone())
        }
    }

    /// Cuts (or restores) every link with these peers, as a network partition would: their
    /// connections close and new ones are refused, until restored.
    pub fn cut(&self, peers: &[PeerId], cut: bool) {
        self.shared.cuts.set(peers, cut);
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
    pub fn lookup(&self, identity: &kith_types::IdentityKey) -> Result<(), NetError> {
        let net = self
            .shared
            .net
            .lock()
            .ok()
            .and_then(|n| n.clone())
            .ok_or(NetError::Stopped)?;
        net.send(NetCommand::ProbeRecord {
            key: user_record_key(identity),
        })
    }

    /// The lookups finished so far (at most [`MAX_LOOKUPS`], the latest).
    pub fn lookups(&self) -> Vec<Lookup> {
        self.shared
            .lookups
            .lock()
            .map(|l| l.iter().copied().collect())
            .unwrap_or_default()
    }

    /// The peers in the node's Kademlia routing table, as its network last told (every
    /// 5 s while it runs; the last table before it stopped, when it is down).
    pub fn routing_table(&self) -> Vec<PeerId> {
        self.shared
            .table
            .lock()
            .map(|t| t.clone())
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

    /// The seed for the next link end this node opens or accepts.
    fn next_link_seed(&self) -> u64 {
        let n = self.shared.links.fetch_add(1, Ordering::Relaxed);
        mix(self.shape.map_or(0, |s| s.seed), n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(probe: bool, found: bool) -> Lookup {
        Lookup {
            probe,
            found,
            requests: 1,
            time: Duration::ZERO,
            time_to_end: Duration::ZERO,
            requests_to_end: 1,
        }
    }

    #[test]
    fn only_probes_are_recorded() {
        let sim = SimNet::new(None);
        // The engine's own lookups are not ours.
        sim.shared.lookup_done(&lookup(false, true));
        assert!(sim.lookups().is_empty());
        sim.shared.lookup_done(&lookup(true, true));
        sim.shared.lookup_done(&lookup(true, false));
        let l = sim.lookups();
        assert_eq!(l.len(), 2);
        assert!(l[0].found && !l[1].found, "{l:?}");
    }

    #[test]
    fn a_lookup_needs_a_running_network() {
        let sim = SimNet::new(None);
        assert!(matches!(
            sim.lookup(&kith_types::IdentityKey([0; 32])),
            Err(NetError::Stopped)
        ));
    }

    #[test]
    fn gossip_copies_leave_out_own_publications() {
        let sim = SimNet::new(None);
        let o = sim.observer();
        // One published (its id computed once), three copies received, two of them new.
        o.gossip_published();
        for _ in 0..4 {
            o.gossip_message_id();
        }
        o.gossip_new();
        o.gossip_new();
        let g = sim.gossip();
        assert_eq!((g.copies, g.first, g.duplicates()), (3, 2, 1));
    }
}
