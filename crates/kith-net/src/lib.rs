//! The libp2p side of a Kith node, driven by one actor.
//!
//! [`spawn`] builds the swarm (`swarm`: TCP and QUIC behind DNS, Noise, Yamux, relayed
//! connections on top) with these behaviours:
//!
//! - `/kith/media/1` request-response: a file's index and chunks (`actor/media.rs`).
//! - `/kith/msg/1` request-response: pre-key claims and envelope delivery; and
//!   `/kith/signal/1`: presence, typing, profile requests, rate-limited per peer. Both use
//!   one length-prefixed codec ([`codec`]) that checks a frame's size before allocating it.
//! - Kademlia (`/kith/kad/1`): signed user records. Inserts are filtered: every record put
//!   to us or fetched by us is validated ([`kith_proto::record::UserRecord`]) and an invalid
//!   one is dropped and its sender penalised.
//! - gossipsub for group chats ([`gossip`]), every message validated by the engine before
//!   it is forwarded.
//! - identify, whose listen addresses feed Kademlia and the engine's address book; ping.
//! - allow/block list and connection limits: a peer that keeps sending bad frames is cut off
//!   and blocked for a while (`strikes`); links nobody uses are closed (`idle`).
//! - what peers may make the node do and hold ([`limits`]): requests and DHT puts per
//!   peer and minute or hour, streams per connection, DHT records in all; a node AutoNAT
//!   finds private is a DHT client.
//! - optional mDNS on the LAN ([`mdns`], the `mdns-sd` crate).
//! - reachability ([`reach`]): circuit relay v2 client (slots on relays the user named, or
//!   picked automatically when AutoNAT says we are private or we have no listener), DCUtR
//!   hole punching to upgrade relayed connections, AutoNAT (v1) as client and server, and
//!   optionally a circuit relay server with limits ([`RelayServerConfig`]).
//!
//! Deposits with a contact's mailbox leave from a second swarm with a throwaway key
//! ([`anon`]).
//!
//! Data flow: the engine sends [`NetCommand`]s on a bounded channel (with `try_send`, so it
//! never waits on the network); the actor answers with [`NetEvent`]s on another bounded
//! channel. Inbound requests carry an id; the engine answers with [`NetCommand::Respond`].
//!
//! Simulations (`net-sim`) run many nodes in one process through a seam in
//! [`NetOptions`]: they replace the transport ([`TransportBuilder`]), watch gossip and DHT
//! lookups through a [`NetObserver`], and shorten timings. A real node uses
//! `NetOptions::default()`, and kith-net holds no simulation code.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod actor;
pub mod anon;
mod api;
pub mod codec;
mod config;
pub mod gossip;
mod idle;
mod kad_use;
pub mod limits;
pub mod mdns;
pub mod metrics;
mod observe;
pub mod reach;
mod strikes;
mod swarm;

pub use actor::spawn;
pub use api::{
    COMMAND_QUEUE, EVENT_QUEUE, GossipId, NetCommand, NetEvent, NetHandle, Offer, PublishFailure,
    ReachInfo, RequestFailure, Verdict, WeakNetHandle,
};
pub use config::{
    BoxedTransport, BuildError, IDLE_TIMEOUT, NetConfig, NetError, NetOptions, RelayServerConfig,
    TransportBuilder,
};
pub use gossip::MAX_PEER_TOPICS;
pub use libp2p::{Multiaddr, PeerId, identity::Keypair, multiaddr::Protocol};
pub use limits::NetLimits;
pub use observe::{Lookup, NetObserver};
pub use reach::Reachability;
