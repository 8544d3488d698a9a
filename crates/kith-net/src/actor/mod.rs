//! The network actor: one task that owns the device's swarm and the anonymous deposit swarms,
//! and turns the engine's commands into swarm calls and swarm events into engine events.
//!
//! Data flow:
//!
//! 1. [`spawn`] builds the device's swarm ([`crate::swarm`]), binds every listen address, dials the
//!    bootstrap peers and starts mDNS; then the task runs [`Actor::run`].
//! 2. `run` waits, commands first, on: the engine's commands ([`command`]), the device
//!    swarm's events ([`Actor::on_swarm`], which hands requests and signals to [`requests`]
//!    and DHT events to [`records`]), the deposit swarms' events (a swarm and key per
//!    deposit, dropped with its answer: [`crate::anon`]), mDNS discoveries, and a
//!    five-second tick that closes idle links ([`crate::idle`]), lifts expired blocks
//!    ([`crate::strikes`]), asks for relay slots ([`crate::reach`]) and ends deposits that
//!    outlived their request.
//! 3. Events go to the engine on a bounded queue: the actor waits for room for answers the
//!    engine asked for, and drops gossip and signals when the engine is busy.
//! 4. The task ends when the engine drops its last [`NetHandle`]; it closes its listeners.

mod command;
mod media;
mod records;
mod requests;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kith_proto::signal::SignalAnswer;
use kith_proto::wire::Response;
use libp2p::kad;
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{OutboundRequestId, ResponseChannel};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, Swarm, autonat, gossipsub, identify, relay};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::actor::requests::{MAX_PENDING_INBOUND, MAX_SIGNAL_STATE};
use crate::anon::Deposits;
use crate::api::{
    COMMAND_QUEUE, EVENT_QUEUE, NetCommand, NetEvent, NetHandle, ReachInfo, RequestFailure,
};
use crate::config::{NetConfig, NetError, TransportBuilder};
use crate::idle::Idle;
use crate::limits::Gate;
use crate::observe::NetObserver;
use crate::reach::{Reach, Reachability, is_circuit};
use crate::strikes::{BLOCK_FOR, Strikes};
use crate::swarm::{Behaviour, BehaviourEvent, REQUEST_TIMEOUT};
use kith_types::BoundedMap;

use records::RecordQuery;

/// Most peers whose dialled address is remembered (to reserve relay slots on them).
const MAX_DIALED: usize = 4096;

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
    let idle_for = cfg.options.idle_timeout;
    // A community node holds no relay slots: no relay client, nor its transport.
    let (relay_transport, relay_client) = match cfg.options.community {
        true => (None, None),
        false => {
            let (t, b) = relay::client::new(local_peer);
            (Some(t), Some(b))
        }
    };
    let behaviour = crate::swarm::behaviour(&cfg.keypair, relay_client, &cfg)
        .map_err(|e| NetError::Setup(e.to_string()))?;
    let mut swarm = crate::swarm::build(
        &cfg.keypair,
        cfg.options.transport.as_ref(),
        relay_transport,
        behaviour,
        idle_for,
    )?;

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
    let metrics = crate::metrics::Metrics::new();

    let (cmd_tx, cmd_rx) = mpsc::channel(COMMAND_QUEUE);
    let (ev_tx, ev_rx) = mpsc::channel(EVENT_QUEUE);
    let mut actor = Actor {
        swarm,
        events: ev_tx,
        listen: listen.clone(),
        pending_inbound: HashMap::new(),
        next_inbound: 0,
        outbound: HashMap::new(),
        record_queries: HashMap::new(),
        put_queries: BoundedMap::new(MAX_PENDING_INBOUND),
        strikes: Strikes::default(),
        reach,
        reach_info: reach_info.clone(),
        relay_server: cfg.relay_server.is_some(),
        private_ips: cfg.private_ips,
        transport: cfg.options.transport.clone(),
        observer: cfg.options.observer.clone(),
        dialed: BoundedMap::new(MAX_DIALED),
        anon: Deposits::default(),
        listeners,
        signal_out: BoundedMap::new(MAX_SIGNAL_STATE),
        signal_in: HashMap::new(),
        signal_rate: BoundedMap::new(MAX_SIGNAL_STATE),
        request_gate: Gate::requests(&cfg.options.limits),
        put_gate: Gate::dht_puts(&cfg.options.limits),
        idle: Idle::new(idle_for, crate::idle::DHT_KEEP),
        media: media::MediaState::default(),
        metrics: metrics.clone(),
    };
    let task = tokio::spawn(async move {
        for ev in early {
            if actor.events.send(ev).await.is_err() {
                return;
            }
        }
        actor.run(cmd_rx, mdns).await;
    });
    let handle = NetHandle {
        tx: cmd_tx,
        local_peer,
        listen,
        reach: reach_info,
        metrics,
    };
    if let Some(o) = &cfg.options.observer {
        o.started(handle.downgrade());
    }
    Ok((handle, ev_rx, task))
}

pub(crate) struct Actor {
    swarm: Swarm<Behaviour>,
    events: mpsc::Sender<NetEvent>,
    listen: Arc<Mutex<Vec<Multiaddr>>>,
    pending_inbound: HashMap<u64, ResponseChannel<Response>>,
    next_inbound: u64,
    outbound: HashMap<OutboundRequestId, u64>,
    /// Open tagged record publications.
    put_queries: BoundedMap<kad::QueryId, u64>,
    /// Open record lookups.
    record_queries: HashMap<kad::QueryId, RecordQuery>,
    /// Strikes and blocks ([`Strikes`]).
    strikes: Strikes,
    /// Requests per peer and minute ([`crate::limits`]).
    request_gate: Gate,
    /// DHT records put per peer and hour.
    put_gate: Gate,
    /// Relay reservations and AutoNAT's verdict.
    reach: Reach,
    /// What the handle reports of `reach`.
    reach_info: Arc<Mutex<ReachInfo>>,
    /// Serving as a circuit relay.
    relay_server: bool,
    /// Private and loopback addresses count as reachable.
    private_ips: bool,
    /// The transport a simulation gave (for new deposit swarms too).
    transport: Option<TransportBuilder>,
    /// Told what the network does ([`NetObserver`]).
    observer: Option<Arc<dyn NetObserver>>,
    /// The address we dialled each connected peer at (for reserving relay slots on it).
    dialed: BoundedMap<PeerId, Multiaddr>,
    /// Our own listeners (closed when the actor stops).
    listeners: Vec<libp2p::core::transport::ListenerId>,
    /// Deposits in flight, each from its own throwaway key.
    anon: Deposits,
    /// Tagged signals in flight.
    signal_out: BoundedMap<OutboundRequestId, u64>,
    /// Inbound signals the engine still has to answer.
    signal_in: HashMap<u64, ResponseChannel<SignalAnswer>>,
    /// Per peer: signal tokens left and when they were counted.
    signal_rate: BoundedMap<PeerId, (f64, Instant)>,
    /// Idle-link reaping: see [`Idle`].
    idle: Idle,
    /// `/kith/media/1`: requests in flight, answers owed, the per-peer gate.
    media: media::MediaState,
    metrics: Arc<crate::metrics::Metrics>,
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
                (id, ev) = self.anon.next() => {
                    if self.on_anon(id, ev).await.is_err() {
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
                    self.tell_routing_table();
                    self.close_idle();
                    self.unblock_expired();
                    self.reserve_relays();
                    if self.expire_deposits().await.is_err() {
                        break;
                    }
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

    /// Tells the observer, if any, which peers the Kademlia routing table holds.
    fn tell_routing_table(&mut self) {
        let Some(o) = self.observer.clone() else {
            return;
        };
        let peers: Vec<PeerId> = (self.swarm.behaviour_mut().kad.kbuckets())
            .flat_map(|b| b.iter().map(|e| *e.node.key.preimage()).collect::<Vec<_>>())
            .collect();
        o.routing_table(peers);
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

    /// Closes the links nobody used for a while ([`Idle`]). DHT traffic since the last
    /// tick counts as use now ([`crate::kad_use`]).
    fn close_idle(&mut self) {
        let now = Instant::now();
        for peer in self.swarm.behaviour_mut().kad.take_used() {
            self.idle.touch_dht(&peer, now);
        }
        let mut keep: HashSet<PeerId> = self
            .swarm
            .behaviour()
            .gossip
            .all_mesh_peers()
            .copied()
            .collect();
        keep.extend(self.reach.relays());
        for peer in self.idle.due(&keep, now) {
            debug!(%peer, "closing an unused link");
            // Counted from now: a peer that does not go (a close in progress) is not asked
            // again at every tick.
            self.idle.connected(peer, now);
            let _ = self.swarm.disconnect_peer_id(peer);
        }
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

    /// Counts a strike against a peer, and blocks or unblocks as [`Strikes`] says.
    fn penalize(&mut self, peer: PeerId, reason: &'static str) {
        self.metrics.kith.strikes.inc();
        let s = self.strikes.strike(peer, Instant::now());
        warn!(%peer, reason, strikes = s.strikes, "peer penalised");
        let blocked = &mut self.swarm.behaviour_mut().blocked;
        if s.block {
            blocked.block_peer(peer);
            warn!(%peer, "peer blocked for {} s", BLOCK_FOR.as_secs());
        }
        if let Some(p) = s.unblock {
            blocked.unblock_peer(p);
        }
    }

    fn unblock_expired(&mut self) {
        for p in self.strikes.expired(Instant::now()) {
            self.swarm.behaviour_mut().blocked.unblock_peer(p);
        }
    }

    async fn emit(&mut self, ev: NetEvent) -> Result<(), ()> {
        self.events.send(ev).await.map_err(|_| ())
    }

    async fn on_swarm(&mut self, ev: SwarmEvent<BehaviourEvent>) -> Result<(), ()> {
        self.metrics.record(&ev);
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
                    self.dialed
                        .insert(peer_id, endpoint.get_remote_address().clone());
                }
                if num_established.get() == 1 {
                    self.idle.connected(peer_id, Instant::now());
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
                self.idle.touch(&requests::rr_peer(&ev));
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
            SwarmEvent::Behaviour(BehaviourEvent::Media(ev)) => {
                self.idle.touch(&requests::rr_peer(&ev));
                self.on_media(ev).await?
            }
            SwarmEvent::Behaviour(BehaviourEvent::Signal(ev)) => {
                self.idle.touch(&requests::rr_peer(&ev));
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
                // A node others cannot dial asks the DHT but does not serve it.
                self.swarm
                    .behaviour_mut()
                    .kad
                    .set_mode(Some(crate::limits::kad_mode(status)));
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

    /// Deposits whose request never ended (the request timeout normally ends them): dropped,
    /// and the engine told they failed.
    async fn expire_deposits(&mut self) -> Result<(), ()> {
        for (tag, peer) in self.anon.expire(Instant::now(), 2 * REQUEST_TIMEOUT) {
            self.emit(NetEvent::Response {
                tag,
                peer,
                result: Err(RequestFailure::Timeout),
            })
            .await?;
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
}
