//! Kademlia, noting which peers it talks with, so the idle reaper ([`crate::idle`]) counts
//! DHT traffic as use of a link.
//!
//! libp2p's Kademlia tells the swarm about a query's results and about inbound requests,
//! but not which peer asked or answered: that is only known inside the behaviour, where
//! each connection's handler reports a request it received or an answer it got
//! (`on_connection_handler_event`, with the peer's id). [`Kad`] wraps the behaviour,
//! passes everything through unchanged, and notes the peer of every such report. The
//! actor takes the notes at its tick ([`Kad::take_used`]) and marks those links as used.
//!
//! Without this, a link used only by the DHT (the peers a lookup or a publication asks,
//! and those asking us) was closed `idle` after it opened however busy it was, and
//! re-dialled by the next query that needed it: a Noise handshake and several round trips
//! each time.

use std::collections::HashSet;
use std::ops::{Deref, DerefMut};
use std::task::{Context, Poll};

use libp2p::PeerId;
use libp2p::core::transport::PortUse;
use libp2p::core::{Endpoint, Multiaddr};
use libp2p::kad::{self, store::MemoryStore};
use libp2p::swarm::{
    ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler, THandlerInEvent,
    THandlerOutEvent, ToSwarm,
};

/// Most peers noted between two takes. Only connected peers report, so the connection
/// limit bounds this already; past it, further peers wait for the next take.
const MAX_NOTED: usize = 8192;

/// libp2p's Kademlia behaviour, with a note of the peers whose connections carried a DHT
/// request or answer since the last [`Kad::take_used`]. Derefs to the inner behaviour.
pub(crate) struct Kad {
    inner: kad::Behaviour<MemoryStore>,
    used: HashSet<PeerId>,
}

impl Kad {
    pub(crate) fn new(inner: kad::Behaviour<MemoryStore>) -> Self {
        Self {
            inner,
            used: HashSet::new(),
        }
    }

    /// The peers that used the DHT with us since the last call.
    pub(crate) fn take_used(&mut self) -> HashSet<PeerId> {
        std::mem::take(&mut self.used)
    }
}

impl Deref for Kad {
    type Target = kad::Behaviour<MemoryStore>;
    fn deref(&self) -> &Self::Target {
        &self.inner
    }
}

impl DerefMut for Kad {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.inner
    }
}

impl NetworkBehaviour for Kad {
    type ConnectionHandler = THandler<kad::Behaviour<MemoryStore>>;
    type ToSwarm = kad::Event;

    fn handle_pending_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        self.inner
            .handle_pending_inbound_connection(connection_id, local_addr, remote_addr)
    }

    fn handle_established_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.inner.handle_established_inbound_connection(
            connection_id,
            peer,
            local_addr,
            remote_addr,
        )
    }

    fn handle_pending_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        maybe_peer: Option<PeerId>,
        addresses: &[Multiaddr],
        effective_role: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        self.inner.handle_pending_outbound_connection(
            connection_id,
            maybe_peer,
            addresses,
            effective_role,
        )
    }

    fn handle_established_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        role_override: Endpoint,
        port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.inner.handle_established_outbound_connection(
            connection_id,
            peer,
            addr,
            role_override,
            port_use,
        )
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        self.inner.on_swarm_event(event)
    }

    fn on_connection_handler_event(
        &mut self,
        peer_id: PeerId,
        connection_id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        // Every report is a request the peer sent us, an answer to one of ours, one of ours
        // that failed on this link, or the first sign that the peer speaks the protocol
        // (libp2p does not let us tell them apart): each is traffic the DHT made.
        if self.used.len() < MAX_NOTED {
            self.used.insert(peer_id);
        }
        self.inner
            .on_connection_handler_event(peer_id, connection_id, event)
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        self.inner.poll(cx)
    }
}
