//! How a node is started: the engine's configuration.

use super::*;

/// How to start a node.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Where keys and the store live.
    pub data_dir: PathBuf,
    /// Addresses to listen on.
    pub listen: Vec<Multiaddr>,
    /// DHT bootstrap peers.
    pub bootstrap: Vec<Multiaddr>,
    /// LAN discovery.
    pub mdns: bool,
    /// Serve as a mailbox: keep envelopes for devices that register.
    pub mailbox: Option<MailboxConfig>,
    /// Reachability: relays to hold a slot on, a relay to serve, AutoNAT settings.
    pub reach: ReachConfig,
    /// The store's page cache, bytes (`kith_store::DEFAULT_CACHE_BYTES` for a node).
    pub store_cache: usize,
    /// Every store commit is made durable with fsync: `true` for a real node. A simulation
    /// of hundreds of nodes on one disk turns it off (then one commit in
    /// `kith_store::SYNC_EVERY` still is), as their fsyncs would queue behind each other.
    pub store_fsync: bool,
    /// The network's transport, observer and timings: `Default` for a real node;
    /// simulations (`net-sim`) replace the transport and watch the network.
    pub net: kith_net::NetOptions,
    /// How calls are set up (where their media binds).
    pub calls: super::CallConfig,
}

/// How the node stays reachable and helps others be reachable.
#[derive(Debug, Clone, Default)]
pub struct ReachConfig {
    /// Circuit relays to hold a slot on (each ending in `/p2p/<relay id>`). Without any, the
    /// node picks relay servers among its peers when it cannot be dialled directly.
    pub relays: Vec<Multiaddr>,
    /// Serve as a circuit relay for others.
    pub relay_server: Option<kith_net::RelayServerConfig>,
    /// Treat private and loopback addresses as reachable (a LAN-only network, tests).
    pub private_ips: bool,
    /// Addresses others reach this node at, besides its listen addresses.
    pub external: Vec<Multiaddr>,
}
