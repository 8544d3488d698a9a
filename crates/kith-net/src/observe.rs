//! What a network tells an observer ([`NetObserver`]): the counts a simulation reads and a
//! real node has no use for. Every method has an empty default, and a node without an
//! observer ([`crate::NetOptions::observer`]) does none of this work.
//!
//! - **Start**: [`NetObserver::started`] hands over a weak handle on the network, with which
//!   the observer may send commands (such as [`crate::NetCommand::ProbeRecord`]) without
//!   keeping a stopped network alive.
//! - **Gossip copies**: gossipsub computes a message id for every message a node publishes
//!   and for every copy it receives, before its duplicate check; the copies received are
//!   therefore ids less publications, and [`NetObserver::gossip_new`] counts the first
//!   copies, so a simulation can report duplicates.
//! - **DHT lookups**: [`NetObserver::lookup_done`] gets every finished record lookup, the
//!   engine's and the probes, with Kademlia's own statistics.
//! - **Routing table**: [`NetObserver::routing_table`] gets the peers in the node's
//!   Kademlia routing table every few seconds, for a simulation to measure how full the
//!   tables are and how many rounds a lookup over them takes.

use std::time::Duration;

use libp2p::PeerId;

use crate::api::WeakNetHandle;

/// Told what a network does; see the module docs. Called on the network's task: keep it
/// cheap (counters, a bounded list).
pub trait NetObserver: Send + Sync + 'static {
    /// The network is running; `net` reaches it while it runs.
    fn started(&self, _net: WeakNetHandle) {}
    /// Gossipsub computed a message id (for a message published here or a copy received).
    fn gossip_message_id(&self) {}
    /// This node published a gossip message.
    fn gossip_published(&self) {}
    /// Gossipsub passed a message on as new (its first copy here).
    fn gossip_new(&self) {}
    /// A DHT record lookup ended.
    fn lookup_done(&self, _lookup: &Lookup) {}
    /// The peers in the node's Kademlia routing table now (every few seconds).
    fn routing_table(&self, _peers: Vec<PeerId>) {}
}

/// A finished DHT record lookup.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lookup {
    /// Asked with [`crate::NetCommand::ProbeRecord`] (not by the engine).
    pub probe: bool,
    /// A valid record was found.
    pub found: bool,
    /// Requests the query sent until the first valid record came (or in all, when none did):
    /// a stand-in for the hops a lookup takes.
    pub requests: u32,
    /// Time until the first valid record came (or until the query ended, when none did).
    pub time: Duration,
    /// Time until the query ended, which is when the engine gets its answer.
    pub time_to_end: Duration,
    /// Requests the query sent in all, until it ended.
    pub requests_to_end: u32,
}
