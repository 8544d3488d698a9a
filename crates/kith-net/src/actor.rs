use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kith_proto::record::{UserRecord, user_record_key};
use kith_proto::signal::{SIGNAL_PROTOCOL, Signal, SignalAnswer};
use kith_proto::wire::{PROTOCOL, Refusal, Request, Response};
use kith_types::now_ms;
use libp2p::allow_block_list::{self, BlockedPeers};
use libp2p::gossipsub;
use libp2p::kad::{self, store::RecordStore};
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, OutboundRequestId, ResponseChannel};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent, behaviour::toggle::Toggle};
use libp2p::{
    Multiaddr, PeerId, StreamProtocol, Swarm, autonat, connection_limits, dcutr, identify,
    identity, noise, ping, relay, tcp, yamux,
};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::anon::{Anon, AnonBehaviourEvent};
use crate::codec::{BadFrame, KithCodec, SignalCodec};
use crate::reach::{Reach, Reachability, is_circuit};

/// Capacity of the command channel (engine → network).
pub const COMMAND_QUEUE: usize = 4096;
/// Capacity of the event channel (network → engine).
pub const EVENT_QUEUE: usize = 1024;
/// Most inbound requests waiting for the engine's answer; more are refused as busy.
pub const MAX_PENDING_INBOUND: usize = 4096;
/// Strikes after which a peer is disconnected and blocked.
pub const STRIKES_TO_BLOCK: u32 = 5;
/// How long a blocked peer stays blocked.
pub const BLOCK_FOR: Duration = Duration::from_secs(600);
/// Most peers with strikes remembered.
const MAX_STRIKE_ENTRIES: usize = 8192;
/// Request timeout for `/kith/msg/1`.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Most peers whose dialled address is remembered (to reserve relay slots on them).
const MAX_DIALED: usize = 4096;
/// Signals a peer may send per second, on average ...
pub const SIGNALS_PER_SEC: f64 = 5.0;
/// ... and in a burst. Beyond that they are answered `Ignored` and never reach the engine.
pub const SIGNAL_BURST: f64 = 20.0;
/// Timeout of a signal request.
const SIGNAL_TIMEOUT: Duration = Duration::from_secs(10);
/// Most signal requests waiting for the engine's answer, and most peers rate-tracked.
const MAX_SIGNAL_STATE: usize = 8192;

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
    /// Use in-process memory links (`/memory/<n>` addresses) instead of TCP and QUIC: for
    /// simulations of many nodes in one process (`net-sim`).
    pub memory: bool,
    /// With `memory`: shaping and counters for the memory links ([`crate::SimNet`]).
    pub sim: Option<crate::SimNet>,
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

/// Commands from the engine.
#[derive(Debug)]
#[non_exhaustive]
pub enum NetCommand {
    /// Send a request; the answer comes back as [`NetEvent::Response`] with `tag`.
    Request {
        tag: u64,
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        req: Request,
    },
    /// Like [`NetCommand::Request`], but from a throwaway identity instead of this device's
    /// (for deposits with a contact's mailbox; see [`crate::anon`]). The answer comes back as
    /// [`NetEvent::Response`] with `tag`.
    Deposit {
        tag: u64,
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        req: Request,
    },
    /// Answer inbound request `id`.
    Respond { id: u64, resp: Response },
    /// Connect to a peer (to learn its addresses, or to flush its outbox).
    Dial { peer: PeerId, addrs: Vec<Multiaddr> },
    /// Publish a record in the DHT.
    /// With a `tag`, [`NetEvent::Published`] tells when a DHT peer has stored it.
    PutRecord {
        key: Vec<u8>,
        value: Vec<u8>,
        tag: Option<u64>,
    },
    /// Look a record up; the answer is [`NetEvent::Record`] with `tag`.
    GetRecord { tag: u64, key: Vec<u8> },
    /// Count a protocol violation against a peer.
    Penalize { peer: PeerId, reason: &'static str },
    /// Send a signal (presence, typing, a profile request) on `/kith/signal/1`. With a `tag`,
    /// the answer comes back as [`NetEvent::SignalAnswered`].
    Signal {
        tag: Option<u64>,
        peer: PeerId,
        signal: Signal,
    },
    /// Answer inbound signal `id` (one that [`NetEvent::Signal`] gave an id).
    AnswerSignal { id: u64, answer: SignalAnswer },
    /// Cut (or restore) every link with these peers, as a network partition would: their
    /// connections close and new ones are refused. For simulations (`net-sim`) and tests.
    CutLinks { peers: Vec<PeerId>, cut: bool },
    /// These links are in use (a mailbox's registered devices): not closed as idle.
    Keep { peers: Vec<PeerId> },
    /// Join a gossipsub topic (a group's).
    Subscribe { topic: String },
    /// Leave a gossipsub topic.
    Unsubscribe { topic: String },
    /// Publish on a topic; [`NetEvent::GossipSent`] tells how it went.
    Publish {
        tag: u64,
        topic: String,
        data: Vec<u8>,
    },
    /// The engine's verdict on a [`NetEvent::Gossip`] message: only accepted messages are
    /// forwarded; rejected ones count against the peer that sent them (gossipsub scoring).
    Validated {
        id: GossipId,
        source: PeerId,
        verdict: Verdict,
    },
}

/// A gossipsub message id (a hash of its content).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GossipId(gossipsub::MessageId);

/// What the engine made of a gossiped message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Valid: forward it.
    Accept,
    /// Invalid: drop it and penalise the sender.
    Reject,
    /// Not for forwarding (e.g. not understood yet), no penalty.
    Ignore,
}

/// Events for the engine.
#[derive(Debug)]
#[non_exhaustive]
pub enum NetEvent {
    /// A new listen address.
    Listening { addr: Multiaddr },
    /// A request to answer with [`NetCommand::Respond`].
    InboundRequest { id: u64, peer: PeerId, req: Request },
    /// The outcome of [`NetCommand::Request`].
    Response {
        tag: u64,
        peer: PeerId,
        result: Result<Response, String>,
    },
    /// First connection to a peer.
    Connected { peer: PeerId },
    /// Last connection to a peer closed.
    Disconnected { peer: PeerId },
    /// Addresses a peer says it listens on (identify) or was found at (mDNS).
    PeerAddrs { peer: PeerId, addrs: Vec<Multiaddr> },
    /// A listen address went away (e.g. a relay reservation ended).
    ListenerGone { addr: Multiaddr },
    /// AutoNAT changed its verdict.
    Reachability { status: Reachability },
    /// A signal from a peer, within its rate. With an `id` the engine answers it with
    /// [`NetCommand::AnswerSignal`]; without, it was answered already.
    Signal {
        id: Option<u64>,
        peer: PeerId,
        signal: Signal,
    },
    /// The answer to a tagged [`NetCommand::Signal`].
    SignalAnswered {
        tag: u64,
        peer: PeerId,
        result: Result<SignalAnswer, String>,
    },
    /// A tagged [`NetCommand::PutRecord`] finished: stored by at least one peer, or not.
    Published { tag: u64, ok: bool },
    /// The outcome of [`NetCommand::GetRecord`]: the newest valid record found, if any.
    Record { tag: u64, value: Option<Vec<u8>> },
    /// A message on a topic we joined, to validate with [`NetCommand::Validated`].
    Gossip {
        id: GossipId,
        /// The peer that forwarded it to us.
        source: PeerId,
        /// The peer that published it (its signature was checked).
        author: Option<PeerId>,
        topic: String,
        data: Vec<u8>,
    },
    /// The outcome of [`NetCommand::Publish`]: sent to at least one peer, or why not.
    GossipSent {
        tag: u64,
        result: Result<(), String>,
    },
    /// A connected peer joined a topic we are in (a chance to catch up with it).
    GossipJoined { peer: PeerId, topic: String },
}

/// A cheap handle to the network actor.
#[derive(Debug, Clone)]
pub struct NetHandle {
    tx: mpsc::Sender<NetCommand>,
    local_peer: PeerId,
    listen: Arc<Mutex<Vec<Multiaddr>>>,
    reach: Arc<Mutex<ReachInfo>>,
}

/// What the node knows of its own reachability.
#[derive(Debug, Clone, Default)]
pub struct ReachInfo {
    /// AutoNAT's verdict.
    pub status: Reachability,
    /// Relays holding a slot for us (or asked to).
    pub relays: Vec<PeerId>,
    /// Serving as a relay: slots held for others now.
    pub served_reservations: usize,
    /// Serving as a relay: connections relayed now.
    pub served_circuits: usize,
}

/// What became of a command offered to the network actor ([`NetHandle::offer`]).
#[derive(Debug)]
pub enum Offer {
    /// It is in the network actor's queue.
    Queued,
    /// The queue is full: here it is back.
    Full(Box<NetCommand>),
    /// The network actor has stopped; the command is dropped.
    Stopped,
}

impl NetHandle {
    /// Queues a command without waiting. A full queue is [`NetError::Busy`]; the engine's
    /// retry timers cover it.
    pub fn send(&self, cmd: NetCommand) -> Result<(), NetError> {
        self.tx.try_send(cmd).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => NetError::Busy,
            mpsc::error::TrySendError::Closed(_) => NetError::Stopped,
        })
    }

    /// Queues a command without waiting; a full queue hands the command back
    /// ([`Offer::Full`]) so the caller can keep it and send it later.
    pub fn offer(&self, cmd: NetCommand) -> Offer {
        match self.tx.try_send(cmd) {
            Ok(()) => Offer::Queued,
            Err(mpsc::error::TrySendError::Full(cmd)) => Offer::Full(Box::new(cmd)),
            Err(mpsc::error::TrySendError::Closed(_)) => Offer::Stopped,
        }
    }

    /// This device's peer id.
    pub fn local_peer(&self) -> PeerId {
        self.local_peer
    }

    /// The addresses the node listens on now (with its peer id appended by callers as needed).
    pub fn listen_addrs(&self) -> Vec<Multiaddr> {
        self.listen.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// AutoNAT's verdict and the relays we hold slots on.
    pub fn reachability(&self) -> ReachInfo {
        self.reach.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    blocked: allow_block_list::Behaviour<BlockedPeers>,
    limits: connection_limits::Behaviour,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    kad: kad::Behaviour<kad::store::MemoryStore>,
    msg: request_response::Behaviour<KithCodec>,
    signal: request_response::Behaviour<SignalCodec>,
    relay_client: relay::client::Behaviour,
    relay: Toggle<relay::Behaviour>,
    dcutr: dcutr::Behaviour,
    autonat: autonat::Behaviour,
    gossip: gossipsub::Behaviour<
        gossipsub::IdentityTransform,
        gossipsub::MaxCountSubscriptionFilter<gossipsub::AllowAllSubscriptionFilter>,
    >,
}

/// Largest gossipsub message (a group frame and gossipsub's own envelope).
pub const MAX_GOSSIP: usize = kith_proto::groupwire::MAX_GROUP_FRAME + 1024;
/// Most topics a peer may tell us it joined (groups are capped per user too).
pub const MAX_PEER_TOPICS: usize = 1024;

/// Gossipsub for group chats: see docs/architecture.md ("Groups") for why each setting.
pub(crate) fn make_gossip(
    key: &identity::Keypair,
    counts: Option<std::sync::Arc<crate::sim::GossipCounts>>,
) -> Result<
    gossipsub::Behaviour<
        gossipsub::IdentityTransform,
        gossipsub::MaxCountSubscriptionFilter<gossipsub::AllowAllSubscriptionFilter>,
    >,
    Box<dyn std::error::Error + Send + Sync>,
> {
    use sha2::Digest as _;
    let cfg = gossipsub::ConfigBuilder::default()
        // Every message signed by its publisher's peer key and checked on arrival.
        .validation_mode(gossipsub::ValidationMode::Strict)
        // Forward only what the engine found valid (a well-formed frame from a member).
        .validate_messages()
        // The same frame reached by two paths (or re-sent in a sync) has one id.
        .message_id_fn(move |m: &gossipsub::Message| {
            if let Some(c) = &counts {
                c.ids.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            gossipsub::MessageId::from(&sha2::Sha256::digest(&m.data)[..20])
        })
        .max_transmit_size(MAX_GOSSIP)
        // Small groups reach every member at once; big ones do not depend on the mesh
        // forming before the first message.
        .flood_publish(true)
        .mesh_n(6)
        .mesh_n_low(4)
        .mesh_n_high(12)
        .mesh_outbound_min(2)
        .heartbeat_interval(Duration::from_millis(700))
        .duplicate_cache_time(Duration::from_secs(300))
        .build()
        .map_err(|e| e.to_string())?;
    let filter = gossipsub::MaxCountSubscriptionFilter {
        filter: gossipsub::AllowAllSubscriptionFilter {},
        max_subscribed_topics: MAX_PEER_TOPICS,
        // A peer tells a new connection all its topics in one message: one within the
        // per-peer limit must be taken whole (gossipsub drops a message over this limit
        // entirely, so a node in more groups, or a mailbox keeping many topics, would go
        // unheard on every topic). 1,024 topics fit in one message (about 45 bytes each).
        max_subscriptions_per_request: MAX_PEER_TOPICS,
    };
    let mut g = gossipsub::Behaviour::new_with_subscription_filter(
        gossipsub::MessageAuthenticity::Signed(key.clone()),
        cfg,
        filter,
    )?;
    let params = gossipsub::PeerScoreParams {
        // Many honest members share an address (a household NAT, a carrier NAT, loopback in
        // tests): colocation says nothing here.
        ip_colocation_factor_weight: 0.0,
        ..Default::default()
    };
    g.with_peer_score(params, gossipsub::PeerScoreThresholds::default())?;
    Ok(g)
}

/// Score parameters of a group topic: invalid frames cost a lot; a quiet group costs nothing
/// (no penalty for mesh peers that deliver few messages: groups are often silent).
pub(crate) fn group_topic_params() -> gossipsub::TopicScoreParams {
    gossipsub::TopicScoreParams {
        topic_weight: 1.0,
        time_in_mesh_weight: 0.01,
        time_in_mesh_quantum: Duration::from_secs(1),
        time_in_mesh_cap: 3600.0,
        first_message_deliveries_weight: 1.0,
        first_message_deliveries_decay: 0.9,
        first_message_deliveries_cap: 100.0,
        mesh_message_deliveries_weight: 0.0,
        mesh_failure_penalty_weight: 0.0,
        invalid_message_deliveries_weight: -100.0,
        invalid_message_deliveries_decay: 0.9,
        ..Default::default()
    }
}

/// In-process memory links (`/memory/<n>`) with Noise and Yamux, for simulations; each link
/// end is wrapped in [`crate::shaped::Shaped`] (below Noise) to count bytes and, with a
/// shape, delay them.
pub(crate) fn memory_links(
    key: &identity::Keypair,
    sim: Option<&crate::SimNet>,
) -> Result<
    libp2p::core::transport::Boxed<(PeerId, libp2p::core::muxing::StreamMuxerBox)>,
    Box<dyn std::error::Error + Send + Sync>,
> {
    use libp2p::Transport as _;
    let sim = sim.cloned().unwrap_or_default();
    Ok(libp2p::core::transport::MemoryTransport::default()
        .map(move |link, _| {
            let seed = sim.next_link_seed();
            crate::shaped::Shaped::new(link, sim.shape, seed, sim.traffic_counters())
        })
        .upgrade(libp2p::core::upgrade::Version::V1)
        .authenticate(noise::Config::new(key)?)
        .multiplex(yamux::Config::default())
        .boxed())
}

/// The behaviours of a node's swarm, whatever its transport.
fn make_behaviour(
    key: &identity::Keypair,
    relay_client: relay::client::Behaviour,
    cfg: &NetConfig,
) -> Result<Behaviour, Box<dyn std::error::Error + Send + Sync>> {
    let peer = key.public().to_peer_id();
    let mut kcfg = kad::Config::new(StreamProtocol::new("/kith/kad/1"));
    kcfg.set_record_filtering(kad::StoreInserts::FilterBoth)
        .set_max_packet_size(16 * 1024)
        .set_record_ttl(Some(Duration::from_secs(48 * 3600)))
        .set_publication_interval(None)
        .set_query_timeout(Duration::from_secs(30));
    if let Some(every) =
        (cfg.sim.as_ref().filter(|_| cfg.memory)).and_then(|s| s.kad_bootstrap_every)
    {
        kcfg.set_periodic_bootstrap_interval(Some(every));
    }
    let store_cfg = kad::store::MemoryStoreConfig {
        max_records: 65_536,
        max_value_bytes: kith_proto::record::MAX_USER_RECORD,
        ..Default::default()
    };
    let mut kad = kad::Behaviour::with_config(
        peer,
        kad::store::MemoryStore::with_config(peer, store_cfg),
        kcfg,
    );
    // Nodes on loopback and LANs never see themselves confirmed as public, so they
    // would stay clients; Kith nodes serve the DHT unless told otherwise.
    kad.set_mode(Some(kad::Mode::Server));
    let relay = cfg.relay_server.as_ref().map(|r| {
        relay::Behaviour::new(
            peer,
            relay::Config {
                max_reservations: r.max_reservations,
                max_circuits: r.max_circuits,
                max_circuits_per_peer: r.max_circuits_per_peer,
                max_circuit_duration: r.max_circuit_duration,
                max_circuit_bytes: r.max_circuit_bytes,
                ..Default::default()
            },
        )
    });
    let autonat = autonat::Behaviour::new(
        peer,
        autonat::Config {
            boot_delay: Duration::from_secs(3),
            retry_interval: Duration::from_secs(60),
            throttle_server_period: Duration::from_secs(30),
            only_global_ips: !cfg.private_ips,
            ..Default::default()
        },
    );
    Ok(Behaviour {
        gossip: make_gossip(
            key,
            (cfg.sim.as_ref().filter(|_| cfg.memory)).map(|s| s.gossip_counters()),
        )?,
        signal: request_response::Behaviour::with_codec(
            SignalCodec,
            [(
                StreamProtocol::new(SIGNAL_PROTOCOL),
                request_response::ProtocolSupport::Full,
            )],
            request_response::Config::default()
                .with_request_timeout(SIGNAL_TIMEOUT)
                .with_max_concurrent_streams(32),
        ),
        relay_client,
        relay: Toggle::from(relay),
        dcutr: dcutr::Behaviour::new(peer),
        autonat,
        blocked: Default::default(),
        limits: connection_limits::Behaviour::new(
            connection_limits::ConnectionLimits::default()
                .with_max_established(Some(4096))
                .with_max_established_per_peer(Some(4))
                .with_max_pending_incoming(Some(256)),
        ),
        identify: identify::Behaviour::new(
            identify::Config::new("/kith/1.0.0".into(), key.public())
                .with_agent_version(format!("kith/{}", env!("CARGO_PKG_VERSION")))
                .with_push_listen_addr_updates(true),
        ),
        ping: ping::Behaviour::default(),
        kad,
        msg: request_response::Behaviour::with_codec(
            KithCodec,
            [(
                StreamProtocol::new(PROTOCOL),
                request_response::ProtocolSupport::Full,
            )],
            request_response::Config::default()
                .with_request_timeout(REQUEST_TIMEOUT)
                .with_max_concurrent_streams(256),
        ),
    })
}

/// Starts the network actor. Returns once every listen address is bound.
pub async fn spawn(
    cfg: NetConfig,
) -> Result<
    (
        NetHandle,
        mpsc::Receiver<NetEvent>,
        tokio::task::JoinHandle<()>,
    ),
    NetError,
> {
    let local_peer = cfg.keypair.public().to_peer_id();
    let idle_for = (cfg.sim.as_ref().filter(|_| cfg.memory))
        .and_then(|s| s.idle_timeout)
        .unwrap_or(Duration::from_secs(120));
    let idle = |c: libp2p::swarm::Config| c.with_idle_connection_timeout(idle_for);
    let mut swarm = if cfg.memory {
        // In-process links only (net-sim): `/memory/<n>` addresses, Noise and Yamux as usual.
        libp2p::SwarmBuilder::with_existing_identity(cfg.keypair.clone())
            .with_tokio()
            .with_other_transport(|key| memory_links(key, cfg.sim.as_ref()))
            .map_err(|e| NetError::Setup(e.to_string()))?
            .with_relay_client(noise::Config::new, yamux::Config::default)
            .map_err(|e| NetError::Setup(e.to_string()))?
            .with_behaviour(|key, relay_client| make_behaviour(key, relay_client, &cfg))
            .map_err(|e| NetError::Setup(e.to_string()))?
            .with_swarm_config(idle)
            .build()
    } else {
        libp2p::SwarmBuilder::with_existing_identity(cfg.keypair.clone())
            .with_tokio()
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                yamux::Config::default,
            )
            .map_err(|e| NetError::Setup(e.to_string()))?
            .with_quic()
            .with_dns()
            .map_err(|e| NetError::Setup(e.to_string()))?
            .with_relay_client(noise::Config::new, yamux::Config::default)
            .map_err(|e| NetError::Setup(e.to_string()))?
            .with_behaviour(|key, relay_client| make_behaviour(key, relay_client, &cfg))
            .map_err(|e| NetError::Setup(e.to_string()))?
            .with_swarm_config(idle)
            .build()
    };

    let mut listeners = Vec::new();
    for addr in &cfg.listen {
        let id = swarm
            .listen_on(addr.clone())
            .map_err(|e| NetError::Listen {
                addr: addr.clone(),
                reason: e.to_string(),
            })?;
        listeners.push(id);
    }
    // Wait until each listener reports its address (or fails).
    let listen = Arc::new(Mutex::new(Vec::new()));
    let mut early = Vec::new();
    let mut bound = 0usize;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while bound < cfg.listen.len() {
        let ev = tokio::time::timeout_at(deadline, swarm.select_next_some())
            .await
            .map_err(|_| NetError::Setup("timed out binding listen addresses".into()))?;
        match ev {
            SwarmEvent::NewListenAddr { address, .. } => {
                if let Ok(mut l) = listen.lock() {
                    l.push(address.clone());
                }
                bound += 1;
                early.push(NetEvent::Listening { addr: address });
            }
            SwarmEvent::ListenerError { error, .. }
            | SwarmEvent::ListenerClosed {
                reason: Err(error), ..
            } => {
                return Err(NetError::Setup(error.to_string()));
            }
            _ => {}
        }
    }

    for addr in &cfg.bootstrap {
        if let Some(Protocol::P2p(peer)) = addr.iter().last() {
            swarm.behaviour_mut().kad.add_address(&peer, addr.clone());
            swarm
                .behaviour_mut()
                .autonat
                .add_server(peer, Some(addr.clone()));
        }
        if let Err(e) = swarm.dial(addr.clone()) {
            warn!(%addr, error = %e, "cannot dial bootstrap peer");
        }
    }

    let mdns = if cfg.mdns {
        let port = listen.lock().ok().and_then(|l| {
            l.iter().find_map(|a| {
                a.iter().find_map(|p| match p {
                    Protocol::Tcp(port) => Some(port),
                    _ => None,
                })
            })
        });
        match port.map(|p| crate::mdns::start(local_peer, p)) {
            Some(Ok(m)) => Some(m),
            Some(Err(e)) => {
                warn!(error = %e, "mDNS unavailable; LAN discovery is off");
                None
            }
            None => None,
        }
    } else {
        None
    };

    for a in &cfg.external {
        swarm.add_external_address(a.clone());
    }
    // A relay server offers its service only at confirmed external addresses; its own
    // listen addresses are that, when they are global (or private ones are allowed).
    if cfg.relay_server.is_some() {
        let own: Vec<Multiaddr> = listen.lock().map(|l| l.clone()).unwrap_or_default();
        for a in own {
            if crate::reach::usable(&a, cfg.private_ips) {
                swarm.add_external_address(a);
            }
        }
    }
    let (reach, refused) = Reach::new(&cfg.relays, !cfg.listen.is_empty());
    if let Some(a) = refused.first() {
        return Err(NetError::Setup(format!(
            "relay address {a} must end in /p2p/<relay peer id>"
        )));
    }
    let reach_info = Arc::new(Mutex::new(ReachInfo::default()));
    let sim = cfg.memory.then(|| cfg.sim.clone().unwrap_or_default());
    let anon = Anon::new(REQUEST_TIMEOUT, sim.as_ref())?;

    let (cmd_tx, cmd_rx) = mpsc::channel(COMMAND_QUEUE);
    if let Some(s) = &sim {
        s.attach(&cmd_tx);
    }
    let (ev_tx, ev_rx) = mpsc::channel(EVENT_QUEUE);
    let mut actor = Actor {
        swarm,
        events: ev_tx,
        listen: listen.clone(),
        pending_inbound: HashMap::new(),
        next_inbound: 0,
        outbound: HashMap::new(),
        record_queries: HashMap::new(),
        put_queries: HashMap::new(),
        strikes: HashMap::new(),
        blocked_until: VecDeque::new(),
        reach,
        reach_info: reach_info.clone(),
        relay_server: cfg.relay_server.is_some(),
        private_ips: cfg.private_ips,
        sim,
        dialed: HashMap::new(),
        anon,
        anon_outbound: HashMap::new(),
        listeners,
        signal_out: HashMap::new(),
        signal_in: HashMap::new(),
        signal_rate: HashMap::new(),
        cut: HashSet::new(),
        idle: Idle::new(idle_for),
    };
    let task = tokio::spawn(async move {
        for ev in early {
            if actor.events.send(ev).await.is_err() {
                return;
            }
        }
        actor.run(cmd_rx, mdns).await;
    });
    Ok((
        NetHandle {
            tx: cmd_tx,
            local_peer,
            listen,
            reach: reach_info,
        },
        ev_rx,
        task,
    ))
}

/// A record's issue time and encoding.
type NewestRecord = (u64, Vec<u8>);

struct Actor {
    swarm: Swarm<Behaviour>,
    events: mpsc::Sender<NetEvent>,
    listen: Arc<Mutex<Vec<Multiaddr>>>,
    pending_inbound: HashMap<u64, ResponseChannel<Response>>,
    next_inbound: u64,
    outbound: HashMap<OutboundRequestId, u64>,
    /// Open tagged record publications.
    put_queries: HashMap<kad::QueryId, u64>,
    /// Open record lookups: the caller's tag and the newest valid record found so far.
    record_queries: HashMap<kad::QueryId, (u64, Option<NewestRecord>)>,
    strikes: HashMap<PeerId, u32>,
    blocked_until: VecDeque<(Instant, PeerId)>,
    /// Relay reservations and AutoNAT's verdict.
    reach: Reach,
    /// What the handle reports of `reach`.
    reach_info: Arc<Mutex<ReachInfo>>,
    /// Serving as a circuit relay.
    relay_server: bool,
    /// Private and loopback addresses count as reachable.
    private_ips: bool,
    /// In-process memory links (net-sim), with their shaping and counters.
    sim: Option<crate::SimNet>,
    /// The address we dialled each connected peer at (for reserving relay slots on it).
    dialed: HashMap<PeerId, Multiaddr>,
    /// Our own listeners (closed when the actor stops).
    listeners: Vec<libp2p::core::transport::ListenerId>,
    /// The swarm with a throwaway key that makes deposits.
    anon: Anon,
    /// Requests in flight on it, with the engine's tags.
    anon_outbound: HashMap<OutboundRequestId, u64>,
    /// Tagged signals in flight.
    signal_out: HashMap<OutboundRequestId, u64>,
    /// Inbound signals the engine still has to answer.
    signal_in: HashMap<u64, ResponseChannel<SignalAnswer>>,
    /// Per peer: signal tokens left and when they were counted.
    signal_rate: HashMap<PeerId, (f64, Instant)>,
    /// Peers whose links are cut ([`NetCommand::CutLinks`]); the strike timer leaves them.
    cut: HashSet<PeerId>,
    /// Idle-link reaping: see [`Idle`].
    idle: Idle,
}

/// Closes links nobody uses. libp2p closes a connection once no stream on it is open, but
/// gossipsub holds a stream open to every peer for as long as the connection lasts (libp2p
/// issue 5190), so a node in any group would keep every connection it ever made (each
/// DHT query adds a dozen) until the connection limit. This keeps what libp2p would keep
/// without that: connections with recent requests, signals, dials asked by the engine or
/// gossip, peers in a topic mesh, relays holding our slots and peers using ours.
struct Idle {
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
    fn new(after: Duration) -> Self {
        Self {
            after,
            used: HashMap::new(),
            slot_holders: HashSet::new(),
            circuits: HashMap::new(),
        }
    }

    /// The peer was used now (only connected peers are tracked).
    fn touch(&mut self, peer: &PeerId) {
        if let Some(t) = self.used.get_mut(peer) {
            *t = Instant::now();
        }
    }

    fn connected(&mut self, peer: PeerId) {
        self.used.insert(peer, Instant::now());
    }

    fn gone(&mut self, peer: &PeerId) {
        self.used.remove(peer);
        self.slot_holders.remove(peer);
        self.circuits.remove(peer);
    }

    /// What the relay service did: slot holders and circuit ends are kept.
    fn relay_event(&mut self, ev: &relay::Event) {
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
    fn due(&self, keep: &HashSet<PeerId>) -> Vec<PeerId> {
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

/// The peer a request-response event is about.
fn rr_peer<Req, Resp>(ev: &request_response::Event<Req, Resp>) -> Option<PeerId> {
    match ev {
        request_response::Event::Message { peer, .. }
        | request_response::Event::OutboundFailure { peer, .. }
        | request_response::Event::InboundFailure { peer, .. }
        | request_response::Event::ResponseSent { peer, .. } => Some(*peer),
    }
}

impl Actor {
    async fn run(
        &mut self,
        mut cmds: mpsc::Receiver<NetCommand>,
        mdns: Option<(crate::mdns::Mdns, crate::mdns::Discoveries)>,
    ) {
        let (_mdns_guard, mut mdns_rx) = match mdns {
            Some((g, rx)) => (Some(g), Some(rx)),
            None => (None, None),
        };
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        // Fails only when no bootstrap peer was given, which is fine.
        let _ = self.swarm.behaviour_mut().kad.bootstrap();
        self.reserve_relays();
        loop {
            tokio::select! {
                biased;
                cmd = cmds.recv() => match cmd {
                    Some(c) => self.on_command(c),
                    None => break,
                },
                ev = self.swarm.select_next_some() => {
                    if self.on_swarm(ev).await.is_err() {
                        break;
                    }
                }
                ev = self.anon.swarm.select_next_some() => {
                    if self.on_anon(ev).await.is_err() {
                        break;
                    }
                }
                Some((peer, addrs)) = async {
                    match mdns_rx.as_mut() {
                        Some(rx) => rx.recv().await,
                        None => std::future::pending().await,
                    }
                } => {
                    debug!(%peer, "found on the LAN");
                    self.dial(peer, addrs.clone());
                    if self.events.send(NetEvent::PeerAddrs { peer, addrs }).await.is_err() {
                        break;
                    }
                }
                _ = tick.tick() => {
                    self.close_idle();
                    self.unblock_expired();
                    self.reserve_relays();
                    self.rotate_anon();
                }
            }
        }
        // Close the listeners explicitly: a memory-link listener keeps its address taken in
        // the process until it is removed, which would stop a node restarted in the same
        // process (net-sim) from listening there again.
        for id in std::mem::take(&mut self.listeners) {
            self.swarm.remove_listener(id);
        }
        info!("network stopped");
    }

    fn dial(&mut self, peer: PeerId, addrs: Vec<Multiaddr>) {
        if self.swarm.is_connected(&peer) {
            return;
        }
        for a in &addrs {
            self.swarm.add_peer_address(peer, a.clone());
        }
        let opts = libp2p::swarm::dial_opts::DialOpts::peer_id(peer)
            .addresses(addrs)
            .extend_addresses_through_behaviour()
            .build();
        if let Err(e) = self.swarm.dial(opts) {
            debug!(%peer, error = %e, "dial not started");
        }
    }

    /// Closes the links nobody used for a while ([`Idle`]).
    fn close_idle(&mut self) {
        let mut keep: HashSet<PeerId> = self
            .swarm
            .behaviour()
            .gossip
            .all_mesh_peers()
            .copied()
            .collect();
        keep.extend(self.reach.relays());
        for peer in self.idle.due(&keep) {
            debug!(%peer, "closing an unused link");
            // Counted from now: a peer that does not go (a close in progress) is not asked
            // again at every tick.
            self.idle.connected(peer);
            let _ = self.swarm.disconnect_peer_id(peer);
        }
    }

    fn on_command(&mut self, cmd: NetCommand) {
        // A link the engine uses is not idle (and it is worth knowing when one must be made).
        let to = match &cmd {
            NetCommand::Request { peer, .. } => Some((peer, "request")),
            NetCommand::Signal { peer, .. } => Some((peer, "signal")),
            NetCommand::Dial { peer, .. } => Some((peer, "dial")),
            _ => None,
        };
        if let Some((peer, what)) = to {
            self.idle.touch(peer);
            debug!(%peer, what, connected = self.swarm.is_connected(peer), "engine asks");
        }
        match cmd {
            NetCommand::Request {
                tag,
                peer,
                addrs,
                req,
            } => {
                let id = self.swarm.behaviour_mut().msg.send_request_with_addresses(
                    &peer,
                    Ok(req),
                    addrs,
                );
                self.outbound.insert(id, tag);
            }
            NetCommand::Deposit {
                tag,
                peer,
                addrs,
                req,
            } => {
                let id = self
                    .anon
                    .swarm
                    .behaviour_mut()
                    .msg
                    .send_request_with_addresses(&peer, Ok(req), addrs);
                self.anon_outbound.insert(id, tag);
            }
            NetCommand::Respond { id, resp } => {
                if let Some(ch) = self.pending_inbound.remove(&id) {
                    let _ = self.swarm.behaviour_mut().msg.send_response(ch, resp);
                }
            }
            NetCommand::Dial { peer, addrs } => self.dial(peer, addrs),
            NetCommand::PutRecord { key, value, tag } => {
                let rec = kad::Record::new(key, value);
                match self
                    .swarm
                    .behaviour_mut()
                    .kad
                    .put_record(rec, kad::Quorum::One)
                {
                    Ok(qid) => {
                        if let Some(tag) = tag {
                            if self.put_queries.len() >= MAX_PENDING_INBOUND {
                                self.put_queries.clear();
                            }
                            self.put_queries.insert(qid, tag);
                        }
                    }
                    Err(e) => {
                        warn!(error = ?e, "cannot store own record");
                        if let Some(tag) = tag
                            && self
                                .events
                                .try_send(NetEvent::Published { tag, ok: false })
                                .is_err()
                        {
                            debug!("engine busy; record outcome dropped");
                        }
                    }
                }
            }
            NetCommand::GetRecord { tag, key } => {
                debug!(tag, "record lookup asked");
                let qid = self
                    .swarm
                    .behaviour_mut()
                    .kad
                    .get_record(kad::RecordKey::new(&key));
                self.record_queries.insert(qid, (tag, None));
            }
            NetCommand::Penalize { peer, reason } => self.penalize(peer, reason),
            NetCommand::Signal { tag, peer, signal } => {
                let id = self
                    .swarm
                    .behaviour_mut()
                    .signal
                    .send_request(&peer, Ok(signal));
                if let Some(tag) = tag {
                    if self.signal_out.len() >= MAX_SIGNAL_STATE {
                        self.signal_out.clear();
                    }
                    self.signal_out.insert(id, tag);
                }
            }
            NetCommand::Keep { peers } => {
                for p in &peers {
                    self.idle.touch(p);
                }
            }
            NetCommand::CutLinks { peers, cut } => {
                for p in peers {
                    if cut {
                        if self.cut.len() < MAX_SIGNAL_STATE {
                            self.cut.insert(p);
                        }
                        self.swarm.behaviour_mut().blocked.block_peer(p);
                    } else {
                        self.cut.remove(&p);
                        self.swarm.behaviour_mut().blocked.unblock_peer(p);
                    }
                }
            }
            NetCommand::AnswerSignal { id, answer } => {
                if let Some(ch) = self.signal_in.remove(&id) {
                    let _ = self.swarm.behaviour_mut().signal.send_response(ch, answer);
                }
            }
            NetCommand::Subscribe { topic } => {
                let t = gossipsub::IdentTopic::new(topic);
                let g = &mut self.swarm.behaviour_mut().gossip;
                if let Err(e) = g.subscribe(&t) {
                    warn!(error = ?e, "cannot join a group topic");
                }
                let _ = g.set_topic_params(t, group_topic_params());
            }
            NetCommand::Unsubscribe { topic } => {
                let t = gossipsub::IdentTopic::new(topic);
                self.swarm.behaviour_mut().gossip.unsubscribe(&t);
            }
            NetCommand::Publish { tag, topic, data } => {
                let t = gossipsub::IdentTopic::new(topic);
                if let Some(s) = &self.sim {
                    s.gossip_counters()
                        .published
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                let result = match self.swarm.behaviour_mut().gossip.publish(t, data) {
                    Ok(_) => Ok(()),
                    Err(e) => Err(e.to_string()),
                };
                if self
                    .events
                    .try_send(NetEvent::GossipSent { tag, result })
                    .is_err()
                {
                    debug!("engine busy; publish outcome dropped");
                }
            }
            NetCommand::Validated {
                id,
                source,
                verdict,
            } => {
                let acceptance = match verdict {
                    Verdict::Accept => gossipsub::MessageAcceptance::Accept,
                    Verdict::Reject => gossipsub::MessageAcceptance::Reject,
                    Verdict::Ignore => gossipsub::MessageAcceptance::Ignore,
                };
                self.swarm
                    .behaviour_mut()
                    .gossip
                    .report_message_validation_result(&id.0, &source, acceptance);
            }
        }
    }

    fn on_gossip(&mut self, ev: gossipsub::Event) -> Result<(), ()> {
        match ev {
            gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            } => {
                if let Some(s) = &self.sim {
                    s.gossip_counters()
                        .first
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                let ev = NetEvent::Gossip {
                    id: GossipId(message_id.clone()),
                    source: propagation_source,
                    author: message.source,
                    topic: message.topic.into_string(),
                    data: message.data,
                };
                // Never wait on the engine for gossip: if it is busy, the message is not
                // forwarded from here and members fetch it later (groups sync).
                if let Err(e) = self.events.try_send(ev) {
                    if matches!(e, mpsc::error::TrySendError::Closed(_)) {
                        return Err(());
                    }
                    self.swarm
                        .behaviour_mut()
                        .gossip
                        .report_message_validation_result(
                            &message_id,
                            &propagation_source,
                            gossipsub::MessageAcceptance::Ignore,
                        );
                }
            }
            gossipsub::Event::Subscribed { peer_id, topic } => {
                let _ = self.events.try_send(NetEvent::GossipJoined {
                    peer: peer_id,
                    topic: topic.into_string(),
                });
            }
            _ => {}
        }
        Ok(())
    }

    /// Takes `cost` of a peer's signal tokens; false when it has too few (it is flooding).
    fn signal_allowed(&mut self, peer: PeerId, cost: f64) -> bool {
        let now = Instant::now();
        if self.signal_rate.len() >= MAX_SIGNAL_STATE && !self.signal_rate.contains_key(&peer) {
            self.signal_rate.clear();
        }
        let (tokens, at) = self.signal_rate.entry(peer).or_insert((SIGNAL_BURST, now));
        *tokens =
            (*tokens + now.duration_since(*at).as_secs_f64() * SIGNALS_PER_SEC).min(SIGNAL_BURST);
        *at = now;
        if *tokens >= cost {
            *tokens -= cost;
            true
        } else {
            false
        }
    }

    async fn on_signal(
        &mut self,
        ev: request_response::Event<crate::codec::InboundSignal, SignalAnswer>,
    ) -> Result<(), ()> {
        use request_response::{Event, Message};
        match ev {
            Event::Message {
                peer,
                message:
                    Message::Request {
                        request, channel, ..
                    },
                ..
            } => {
                let signal = match request {
                    Ok(s) => s,
                    Err(error) => {
                        warn!(%peer, error = %BadFrame(error), "malformed signal");
                        self.penalize(peer, "malformed signal");
                        let _ = self
                            .swarm
                            .behaviour_mut()
                            .signal
                            .send_response(channel, SignalAnswer::Ignored);
                        return Ok(());
                    }
                };
                let cost = if matches!(signal, Signal::GetProfile) {
                    5.0
                } else {
                    1.0
                };
                if !self.signal_allowed(peer, cost) {
                    debug!(%peer, "signal over the rate limit");
                    let _ = self
                        .swarm
                        .behaviour_mut()
                        .signal
                        .send_response(channel, SignalAnswer::Ignored);
                    return Ok(());
                }
                let id = if matches!(signal, Signal::GetProfile) {
                    if self.signal_in.len() >= MAX_SIGNAL_STATE {
                        self.signal_in.retain(|_, ch| ch.is_open());
                    }
                    if self.signal_in.len() >= MAX_SIGNAL_STATE {
                        let _ = self
                            .swarm
                            .behaviour_mut()
                            .signal
                            .send_response(channel, SignalAnswer::Ignored);
                        return Ok(());
                    }
                    self.next_inbound += 1;
                    self.signal_in.insert(self.next_inbound, channel);
                    Some(self.next_inbound)
                } else {
                    let _ = self
                        .swarm
                        .behaviour_mut()
                        .signal
                        .send_response(channel, SignalAnswer::Ok);
                    None
                };
                // Never wait on the engine for a signal: if its queue is full, drop it.
                if let Err(e) = self.events.try_send(NetEvent::Signal { id, peer, signal }) {
                    if matches!(e, mpsc::error::TrySendError::Closed(_)) {
                        return Err(());
                    }
                    debug!(%peer, "engine busy; signal dropped");
                }
            }
            Event::Message {
                peer,
                message:
                    Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                if let Some(tag) = self.signal_out.remove(&request_id) {
                    self.emit(NetEvent::SignalAnswered {
                        tag,
                        peer,
                        result: Ok(response),
                    })
                    .await?;
                }
            }
            Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                self.penalize_bad_answer(peer, &error, "malformed signal answer");
                if let Some(tag) = self.signal_out.remove(&request_id) {
                    self.emit(NetEvent::SignalAnswered {
                        tag,
                        peer,
                        result: Err(error.to_string()),
                    })
                    .await?;
                }
            }
            Event::InboundFailure { .. } => {
                self.signal_in.retain(|_, ch| ch.is_open());
            }
            Event::ResponseSent { .. } => {}
        }
        Ok(())
    }

    /// Asks for the relay slots [`Reach::due`] wants now.
    fn reserve_relays(&mut self) {
        for (relay, addr) in self.reach.due(Instant::now()) {
            match self.swarm.listen_on(addr.clone()) {
                Ok(id) => {
                    debug!(%relay, "asking for a relay slot");
                    self.reach.opened(id, relay);
                }
                Err(e) => debug!(%relay, error = %e, "cannot ask for a relay slot"),
            }
        }
        self.share_reach();
    }

    fn share_reach(&self) {
        if let Ok(mut r) = self.reach_info.lock() {
            r.status = self.reach.nat;
            r.relays = self.reach.relays();
        }
    }

    /// Penalises a peer whose answer did not decode (the request failed on a bad frame).
    fn penalize_bad_answer(
        &mut self,
        peer: PeerId,
        error: &request_response::OutboundFailure,
        what: &'static str,
    ) {
        if let request_response::OutboundFailure::Io(e) = error
            && let Some(bad) = e.get_ref().and_then(|r| r.downcast_ref::<BadFrame>())
        {
            warn!(%peer, error = %bad, "{what}");
            self.penalize(peer, what);
        }
    }

    fn penalize(&mut self, peer: PeerId, reason: &'static str) {
        if self.strikes.len() >= MAX_STRIKE_ENTRIES && !self.strikes.contains_key(&peer) {
            self.strikes.clear();
        }
        let n = self.strikes.entry(peer).or_insert(0);
        *n += 1;
        warn!(%peer, reason, strikes = *n, "peer penalised");
        if *n >= STRIKES_TO_BLOCK {
            self.strikes.remove(&peer);
            self.swarm.behaviour_mut().blocked.block_peer(peer);
            self.blocked_until
                .push_back((Instant::now() + BLOCK_FOR, peer));
            if self.blocked_until.len() > MAX_STRIKE_ENTRIES
                && let Some((_, p)) = self.blocked_until.pop_front()
                && !self.cut.contains(&p)
            {
                self.swarm.behaviour_mut().blocked.unblock_peer(p);
            }
            warn!(%peer, "peer blocked for {} s", BLOCK_FOR.as_secs());
        }
    }

    fn unblock_expired(&mut self) {
        let now = Instant::now();
        while let Some((t, p)) = self.blocked_until.front().copied() {
            if t > now {
                break;
            }
            self.blocked_until.pop_front();
            if !self.cut.contains(&p) {
                self.swarm.behaviour_mut().blocked.unblock_peer(p);
            }
        }
    }

    /// Validates a user record for the DHT: right key, valid signatures, in date.
    fn valid_record(rec: &kad::Record) -> Option<UserRecord> {
        let user = UserRecord::decode_valid(&rec.value, now_ms()).ok()?;
        (user_record_key(&user.identity) == rec.key.to_vec()).then_some(user)
    }

    async fn emit(&mut self, ev: NetEvent) -> Result<(), ()> {
        self.events.send(ev).await.map_err(|_| ())
    }

    async fn on_swarm(&mut self, ev: SwarmEvent<BehaviourEvent>) -> Result<(), ()> {
        match ev {
            SwarmEvent::NewListenAddr { address, .. } => {
                if is_circuit(&address) {
                    info!(%address, "reachable through a relay");
                } else if self.relay_server && crate::reach::usable(&address, self.private_ips) {
                    self.swarm.add_external_address(address.clone());
                }
                if let Ok(mut l) = self.listen.lock()
                    && !l.contains(&address)
                {
                    l.push(address.clone());
                }
                self.emit(NetEvent::Listening { addr: address }).await?;
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                self.unlisten(&[address]).await?;
            }
            SwarmEvent::ListenerClosed {
                listener_id,
                addresses,
                reason,
            } => {
                if self.reach.closed(listener_id) {
                    match reason {
                        Ok(()) => info!("relay slot closed"),
                        Err(e) => info!(error = %e, "relay slot lost"),
                    }
                    self.share_reach();
                }
                self.unlisten(&addresses).await?;
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                num_established,
                endpoint,
                ..
            } => {
                if endpoint.is_dialer() && !endpoint.is_relayed() {
                    if self.dialed.len() >= MAX_DIALED && !self.dialed.contains_key(&peer_id) {
                        self.dialed.clear();
                    }
                    self.dialed
                        .insert(peer_id, endpoint.get_remote_address().clone());
                }
                if num_established.get() == 1 {
                    self.idle.connected(peer_id);
                    self.emit(NetEvent::Connected { peer: peer_id }).await?;
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => {
                self.dialed.remove(&peer_id);
                self.reach.gone(&peer_id);
                self.idle.gone(&peer_id);
                self.emit(NetEvent::Disconnected { peer: peer_id }).await?;
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => {
                debug!(peer = %peer_id, protocols = ?info.protocols, "identified");
                if info.protocols.contains(&relay::HOP_PROTOCOL_NAME) {
                    let at = self.dialed.get(&peer_id).cloned().or_else(|| {
                        info.listen_addrs
                            .iter()
                            .find(|a| !is_circuit(a) && a.len() < 256)
                            .cloned()
                    });
                    if let Some(at) = at {
                        self.reach.candidate(peer_id, at);
                        self.reserve_relays();
                    }
                }
                let addrs: Vec<Multiaddr> = info
                    .listen_addrs
                    .into_iter()
                    .filter(|a| a.len() < 256)
                    .take(kith_proto::record::MAX_ADDRS)
                    .collect();
                for a in &addrs {
                    self.swarm
                        .behaviour_mut()
                        .kad
                        .add_address(&peer_id, a.clone());
                }
                self.emit(NetEvent::PeerAddrs {
                    peer: peer_id,
                    addrs,
                })
                .await?;
            }
            SwarmEvent::Behaviour(BehaviourEvent::Msg(ev)) => {
                if let Some(p) = rr_peer(&ev) {
                    self.idle.touch(&p);
                }
                self.on_msg(ev).await?
            }
            SwarmEvent::Behaviour(BehaviourEvent::Gossip(ev)) => {
                if let gossipsub::Event::Message {
                    propagation_source, ..
                } = &ev
                {
                    self.idle.touch(propagation_source);
                }
                self.on_gossip(ev)?
            }
            SwarmEvent::Behaviour(BehaviourEvent::Signal(ev)) => {
                if let Some(p) = rr_peer(&ev) {
                    self.idle.touch(&p);
                }
                self.on_signal(ev).await?
            }
            SwarmEvent::Behaviour(BehaviourEvent::Kad(ev)) => {
                if let kad::Event::OutboundQueryProgressed { result, step, .. } = &ev
                    && step.last
                {
                    let kind = match result {
                        kad::QueryResult::Bootstrap(_) => "bootstrap",
                        kad::QueryResult::GetClosestPeers(_) => "closest peers",
                        kad::QueryResult::GetRecord(_) => "get record",
                        kad::QueryResult::PutRecord(_) => "put record",
                        kad::QueryResult::RepublishRecord(_) => "republish record",
                        _ => "other",
                    };
                    debug!(kind, "DHT query done");
                }
                self.on_kad(ev).await?
            }
            SwarmEvent::Behaviour(BehaviourEvent::Autonat(autonat::Event::StatusChanged {
                new,
                ..
            })) => {
                let status = match new {
                    autonat::NatStatus::Public(_) => Reachability::Public,
                    autonat::NatStatus::Private => Reachability::Private,
                    autonat::NatStatus::Unknown => Reachability::Unknown,
                };
                info!(status = status.as_str(), "reachability");
                self.reach.nat = status;
                self.reserve_relays();
                self.emit(NetEvent::Reachability { status }).await?;
            }
            SwarmEvent::Behaviour(BehaviourEvent::Dcutr(ev)) => match ev.result {
                Ok(_) => info!(peer = %ev.remote_peer_id, "direct connection by hole punching"),
                Err(e) => debug!(peer = %ev.remote_peer_id, error = %e, "hole punching failed"),
            },
            SwarmEvent::Behaviour(BehaviourEvent::RelayClient(
                relay::client::Event::ReservationReqAccepted {
                    relay_peer_id,
                    renewal: false,
                    ..
                },
            )) => {
                info!(relay = %relay_peer_id, "relay slot reserved");
            }
            SwarmEvent::Behaviour(BehaviourEvent::Relay(ev)) => {
                debug!(?ev, "relay service");
                self.idle.relay_event(&ev);
                if let Ok(mut r) = self.reach_info.lock() {
                    match ev {
                        relay::Event::ReservationReqAccepted { renewed: false, .. } => {
                            r.served_reservations += 1;
                        }
                        relay::Event::ReservationClosed { .. }
                        | relay::Event::ReservationTimedOut { .. } => {
                            r.served_reservations = r.served_reservations.saturating_sub(1);
                        }
                        relay::Event::CircuitReqAccepted { .. } => r.served_circuits += 1,
                        relay::Event::CircuitClosed { .. } => {
                            r.served_circuits = r.served_circuits.saturating_sub(1);
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Replaces the deposit swarm's key when it is old and nothing is in flight on it.
    fn rotate_anon(&mut self) {
        if !self.anon_outbound.is_empty() || !self.anon.due(Instant::now()) {
            return;
        }
        match Anon::new(REQUEST_TIMEOUT, self.sim.as_ref()) {
            Ok(a) => {
                debug!("new deposit identity");
                self.anon = a;
            }
            Err(e) => warn!(error = %e, "cannot make a new deposit identity"),
        }
    }

    async fn on_anon(&mut self, ev: SwarmEvent<AnonBehaviourEvent>) -> Result<(), ()> {
        use request_response::{Event, Message};
        let SwarmEvent::Behaviour(AnonBehaviourEvent::Msg(ev)) = ev else {
            return Ok(());
        };
        match ev {
            Event::Message {
                peer,
                message:
                    Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                if let Some(tag) = self.anon_outbound.remove(&request_id) {
                    self.emit(NetEvent::Response {
                        tag,
                        peer,
                        result: Ok(response),
                    })
                    .await?;
                }
            }
            Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                self.penalize_bad_answer(peer, &error, "malformed response");
                if let Some(tag) = self.anon_outbound.remove(&request_id) {
                    self.emit(NetEvent::Response {
                        tag,
                        peer,
                        result: Err(error.to_string()),
                    })
                    .await?;
                }
            }
            // Outbound only: no requests come in on this swarm.
            _ => {}
        }
        Ok(())
    }

    /// Listen addresses that went away: forget them and tell the engine.
    async fn unlisten(&mut self, gone: &[Multiaddr]) -> Result<(), ()> {
        if let Ok(mut l) = self.listen.lock() {
            l.retain(|a| !gone.contains(a));
        }
        for a in gone {
            self.emit(NetEvent::ListenerGone { addr: a.clone() })
                .await?;
        }
        Ok(())
    }

    async fn on_msg(
        &mut self,
        ev: request_response::Event<crate::codec::Inbound, Response>,
    ) -> Result<(), ()> {
        use request_response::{Event, Message};
        match ev {
            Event::Message {
                peer,
                message:
                    Message::Request {
                        request: Err(error),
                        channel,
                        ..
                    },
                ..
            } => {
                warn!(%peer, error = %BadFrame(error), "malformed request");
                self.penalize(peer, "malformed request");
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .msg
                    .send_response(channel, Response::Refused(Refusal::Invalid));
            }
            Event::Message {
                peer,
                message:
                    Message::Request {
                        request: Ok(request),
                        channel,
                        ..
                    },
                ..
            } => {
                if self.pending_inbound.len() >= MAX_PENDING_INBOUND {
                    let _ = self
                        .swarm
                        .behaviour_mut()
                        .msg
                        .send_response(channel, Response::Refused(Refusal::Busy));
                    return Ok(());
                }
                self.next_inbound += 1;
                let id = self.next_inbound;
                self.pending_inbound.insert(id, channel);
                self.emit(NetEvent::InboundRequest {
                    id,
                    peer,
                    req: request,
                })
                .await?;
            }
            Event::Message {
                peer,
                message:
                    Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                if let Some(tag) = self.outbound.remove(&request_id) {
                    self.emit(NetEvent::Response {
                        tag,
                        peer,
                        result: Ok(response),
                    })
                    .await?;
                }
            }
            Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                self.penalize_bad_answer(peer, &error, "malformed response");
                if let Some(tag) = self.outbound.remove(&request_id) {
                    self.emit(NetEvent::Response {
                        tag,
                        peer,
                        result: Err(error.to_string()),
                    })
                    .await?;
                }
            }
            Event::InboundFailure { peer, error, .. } => {
                if let request_response::InboundFailure::Io(e) = &error
                    && let Some(bad) = e.get_ref().and_then(|r| r.downcast_ref::<BadFrame>())
                {
                    warn!(%peer, error = %bad, "malformed request");
                    self.penalize(peer, "malformed request");
                } else {
                    debug!(%peer, %error, "inbound request failed");
                }
                // Answers the engine still owes for dead streams are dropped at respond time.
                self.pending_inbound.retain(|_, ch| ch.is_open());
            }
            Event::ResponseSent { .. } => {}
        }
        Ok(())
    }

    async fn on_kad(&mut self, ev: kad::Event) -> Result<(), ()> {
        match ev {
            kad::Event::InboundRequest {
                request:
                    kad::InboundRequest::PutRecord {
                        source,
                        record: Some(record),
                        ..
                    },
            } => match Self::valid_record(&record) {
                Some(user) => {
                    let store = self.swarm.behaviour_mut().kad.store_mut();
                    let newer = match store.get(&record.key) {
                        Some(old) => UserRecord::decode_valid(&old.value, now_ms())
                            .map(|o| o.issued_ms < user.issued_ms)
                            .unwrap_or(true),
                        None => true,
                    };
                    if newer && let Err(e) = store.put(record) {
                        debug!(error = ?e, "record store full");
                    }
                }
                None => self.penalize(source, "invalid DHT record"),
            },
            kad::Event::OutboundQueryProgressed {
                id,
                result: kad::QueryResult::PutRecord(res),
                step,
                ..
            } if step.last => {
                if let Some(tag) = self.put_queries.remove(&id) {
                    self.emit(NetEvent::Published {
                        tag,
                        ok: res.is_ok(),
                    })
                    .await?;
                }
            }
            kad::Event::OutboundQueryProgressed {
                id,
                result: kad::QueryResult::GetRecord(res),
                step,
                stats,
            } => {
                let Some(tag) = self.record_queries.get(&id).map(|(t, _)| *t) else {
                    return Ok(());
                };
                let mut found = false;
                if let Ok(kad::GetRecordOk::FoundRecord(peer_rec)) = res {
                    match Self::valid_record(&peer_rec.record) {
                        Some(user) => {
                            found = true;
                            if let Some((_, best)) = self.record_queries.get_mut(&id)
                                && best.as_ref().is_none_or(|(t, _)| *t < user.issued_ms)
                            {
                                *best = Some((user.issued_ms, peer_rec.record.value));
                            }
                        }
                        None => {
                            if let Some(p) = peer_rec.peer {
                                self.penalize(p, "invalid DHT record");
                            }
                        }
                    }
                }
                if let Some(sim) = &self.sim {
                    sim.lookup_step(tag, found, step.last, &stats);
                }
                if step.last
                    && let Some((tag, best)) = self.record_queries.remove(&id)
                {
                    self.emit(NetEvent::Record {
                        tag,
                        value: best.map(|(_, v)| v),
                    })
                    .await?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}
