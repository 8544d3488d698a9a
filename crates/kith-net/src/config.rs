//! How a network is started ([`NetConfig`]), the settings a node rarely changes
//! ([`NetOptions`]: transport, observer, timings), and the crate's error type.

use std::sync::Arc;
use std::time::Duration;

use libp2p::core::muxing::StreamMuxerBox;
use libp2p::core::transport::Boxed;
use libp2p::{Multiaddr, PeerId, identity};

use crate::limits::NetLimits;
use crate::observe::NetObserver;

/// Network failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// A listen address could not be bound.
    #[error("cannot listen on {addr}: {reason}")]
    Listen { addr: Multiaddr, reason: String },
    /// The transport could not be built.
    #[error("cannot start networking: {0}")]
    Setup(String),
    /// The command queue is full; the caller retries later.
    #[error("network busy")]
    Busy,
    /// The network actor has stopped.
    #[error("network stopped")]
    Stopped,
}

/// How to start the network.
#[derive(Debug)]
pub struct NetConfig {
    /// The device's libp2p key.
    pub keypair: identity::Keypair,
    /// Addresses to listen on.
    pub listen: Vec<Multiaddr>,
    /// Peers to join the DHT through.
    pub bootstrap: Vec<Multiaddr>,
    /// Announce and browse on the LAN with mDNS.
    pub mdns: bool,
    /// Circuit relays to hold a slot on (each address ends in `/p2p/<relay id>`).
    pub relays: Vec<Multiaddr>,
    /// Serve as a circuit relay for others, with these limits.
    pub relay_server: Option<RelayServerConfig>,
    /// Treat private and loopback addresses as reachable (a LAN-only network, tests): AutoNAT
    /// probes and answers peers there, and a relay server offers its service on them. Off,
    /// only global addresses count.
    pub private_ips: bool,
    /// Addresses others reach this node at, besides its listen addresses (a port forward, a
    /// DNS name). A relay server offers its service only once it has such an address.
    pub external: Vec<Multiaddr>,
    /// Transport, observer and timings; the defaults are a real node's.
    pub options: NetOptions,
}

/// Limits of the circuit relay a node serves (libp2p circuit relay v2, hop side).
#[derive(Debug, Clone)]
pub struct RelayServerConfig {
    /// Most reservations held at once.
    pub max_reservations: usize,
    /// Most relayed connections at once.
    pub max_circuits: usize,
    /// Most relayed connections per peer.
    pub max_circuits_per_peer: usize,
    /// Longest life of a relayed connection (the peers dial again after it).
    pub max_circuit_duration: Duration,
    /// Most bytes through one relayed connection, both ways.
    pub max_circuit_bytes: u64,
}

impl Default for RelayServerConfig {
    fn default() -> Self {
        Self {
            max_reservations: 1024,
            max_circuits: 256,
            max_circuits_per_peer: 8,
            max_circuit_duration: Duration::from_secs(30 * 60),
            max_circuit_bytes: 64 << 20,
        }
    }
}

/// How long an unused connection stays open by default.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// What a real node rarely changes, and a simulation of many nodes in one process does
/// (`net-sim`): the seam between kith-net and a simulator, and the operator's limits
/// ([`NetLimits`]). `Default` is a real node.
#[derive(Clone)]
pub struct NetOptions {
    /// The transport both swarms dial and listen with (the device's and the anonymous
    /// deposit swarm, [`crate::anon`]), instead of TCP and QUIC with DNS. Relayed
    /// connections are added on top of it as usual.
    pub transport: Option<TransportBuilder>,
    /// Told what the network does (gossip copies, DHT lookups) for a simulation to count.
    pub observer: Option<Arc<dyn NetObserver>>,
    /// How long a connection nobody uses stays open ([`IDLE_TIMEOUT`]).
    pub idle_timeout: Duration,
    /// How often Kademlia refreshes its routing table with a bootstrap; `None` is
    /// Kademlia's own interval (five minutes).
    pub kad_bootstrap_every: Option<Duration>,
    /// What peers may make the node do and hold (an operator's knobs, `kith up` flags and
    /// kith-bootstrap's config).
    pub limits: NetLimits,
    /// A community node (`kith-bootstrap`): reachable by itself, it holds no relay slots and
    /// never punches holes, so its connections carry no relay client (circuit STOP) and no
    /// DCUtR handler, and its Yamux connections keep small windows; see
    /// [`crate::swarm::behaviour`]. Everything it serves (DHT, mailbox, relay hop, AutoNAT
    /// answers, gossip for the topics it keeps) stays.
    pub community: bool,
}

impl Default for NetOptions {
    fn default() -> Self {
        Self {
            transport: None,
            observer: None,
            idle_timeout: IDLE_TIMEOUT,
            kad_bootstrap_every: None,
            limits: NetLimits::default(),
            community: false,
        }
    }
}

impl std::fmt::Debug for NetOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetOptions")
            .field("transport", &self.transport)
            .field("observer", &self.observer.is_some())
            .field("idle_timeout", &self.idle_timeout)
            .field("kad_bootstrap_every", &self.kad_bootstrap_every)
            .field("limits", &self.limits)
            .field("community", &self.community)
            .finish()
    }
}

/// An authenticated, multiplexed transport, boxed.
pub type BoxedTransport = Boxed<(PeerId, StreamMuxerBox)>;
/// What building a transport can fail with.
pub type BuildError = Box<dyn std::error::Error + Send + Sync>;

/// What a [`TransportBuilder`] calls.
type BuildFn = dyn Fn(&identity::Keypair) -> Result<BoxedTransport, BuildError> + Send + Sync;

/// Builds a swarm's transport from the swarm's key: see [`NetOptions::transport`].
#[derive(Clone)]
pub struct TransportBuilder(Arc<BuildFn>);

impl TransportBuilder {
    /// A builder that calls `f` for every swarm it makes.
    pub fn new(
        f: impl Fn(&identity::Keypair) -> Result<BoxedTransport, BuildError> + Send + Sync + 'static,
    ) -> Self {
        Self(Arc::new(f))
    }

    /// The transport of a swarm with this key.
    pub(crate) fn build(&self, key: &identity::Keypair) -> Result<BoxedTransport, BuildError> {
        (self.0)(key)
    }
}

impl std::fmt::Debug for TransportBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TransportBuilder(..)")
    }
}
