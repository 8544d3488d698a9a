//! The libp2p side of a Kith node, driven by one actor.
//!
//! [`spawn`] builds the swarm (TCP and QUIC, Noise, Yamux) with these behaviours:
//!
//! - `/kith/msg/1` request-response ([`codec::KithCodec`]): pre-key claims and envelope
//!   delivery. Frames are length-prefixed and size-checked before allocation.
//! - Kademlia (`/kith/kad/1`): signed user records. Inserts are filtered: every record put
//!   to us or fetched by us is validated ([`kith_proto::record::UserRecord`]) and an invalid
//!   one is dropped and its sender penalised.
//! - identify, whose listen addresses feed Kademlia and the engine's address book; ping.
//! - allow/block list and connection limits: a peer that keeps sending bad frames is cut off
//!   and blocked for a while.
//! - optional mDNS on the LAN ([`mdns`], the `mdns-sd` crate).
//! - reachability ([`reach`]): circuit relay v2 client (slots on relays the user named, or
//!   picked automatically when AutoNAT says we are private or we have no listener), DCUtR
//!   hole punching to upgrade relayed connections, AutoNAT (v1) as client and server, and
//!   optionally a circuit relay server with limits ([`RelayServerConfig`]).
//!
//! - for simulations only ([`NetConfig::memory`]): in-process memory links instead of TCP and
//!   QUIC, each wrapped below Noise by [`shaped::Shaped`] (latency, jitter, loss and bandwidth
//!   from a seed, and byte counters), with DHT lookup statistics, all through [`SimNet`];
//!   and [`gossip_sim`], nodes that run only the group gossip, for simulations of big groups.
//!
//! Data flow: the engine sends [`NetCommand`]s on a bounded channel (with `try_send`, so it
//! never waits on the network); the actor answers with [`NetEvent`]s on another bounded
//! channel. Inbound requests carry an id; the engine answers with [`NetCommand::Respond`].

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod actor;
pub mod anon;
pub mod codec;
pub mod gossip_sim;
pub mod mdns;
pub mod reach;
pub mod shaped;
pub mod sim;

pub use actor::{
    GossipId, MAX_PEER_TOPICS, NetCommand, NetConfig, NetError, NetEvent, NetHandle, Offer,
    ReachInfo, RelayServerConfig, Verdict, spawn,
};
pub use libp2p::{Multiaddr, PeerId, identity::Keypair, multiaddr::Protocol};
pub use reach::Reachability;
pub use shaped::LinkShape;
pub use sim::{Lookup, SimNet};
