//! Deposits that do not say who deposits.
//!
//! An envelope names only its recipient, but the connection it travels on is authenticated
//! with the sender device's libp2p key, whose peer id is listed in the sender's public user
//! record. A mailbox receiving deposits on the device's own connection could therefore tell
//! who writes to whom. So deposits with a contact's mailbox go through a second, dial-only
//! swarm whose key is random, made at start and replaced every [`ROTATE_EVERY`] when no
//! request is in flight: the mailbox sees a throwaway peer id that appears in no record.
//!
//! What is left for the mailbox to see is the connection's IP address (hiding it needs a
//! mix network or Tor, which Kith does not do) and the timing of deposits.
//!
//! The swarm speaks only `/kith/msg/1`, outbound only (it refuses inbound streams), over
//! the same transport as the device's swarm ([`crate::swarm::build`]: TCP and QUIC with DNS,
//! or a simulation's). It has no relay transport: a mailbox reachable only through a relay
//! gets deposits on the device's own swarm instead (the engine decides).

use std::time::{Duration, Instant};

use kith_proto::wire::PROTOCOL;
use libp2p::request_response;
use libp2p::swarm::NetworkBehaviour;
use libp2p::{StreamProtocol, Swarm, connection_limits, identity};

use crate::codec::KithCodec;
use crate::config::{NetError, TransportBuilder};

/// How often the throwaway key is replaced (when nothing is in flight).
pub const ROTATE_EVERY: Duration = Duration::from_secs(3600);
/// Most connections the deposit swarm keeps.
const MAX_CONNECTIONS: u32 = 256;
/// How long an unused deposit connection stays open.
const IDLE: Duration = Duration::from_secs(60);

#[derive(NetworkBehaviour)]
pub(crate) struct AnonBehaviour {
    pub(crate) limits: connection_limits::Behaviour,
    pub(crate) msg: request_response::Behaviour<KithCodec>,
}

/// The deposit swarm and when its key was made.
pub(crate) struct Anon {
    pub(crate) swarm: Swarm<AnonBehaviour>,
    pub(crate) born: Instant,
}

impl Anon {
    /// A new swarm with a new random key, over `transport` (or else TCP and QUIC).
    pub(crate) fn new(
        request_timeout: Duration,
        transport: Option<&TransportBuilder>,
    ) -> Result<Self, NetError> {
        let behaviour = AnonBehaviour {
            limits: connection_limits::Behaviour::new(
                connection_limits::ConnectionLimits::default()
                    .with_max_established(Some(MAX_CONNECTIONS))
                    .with_max_established_per_peer(Some(1))
                    .with_max_pending_incoming(Some(0)),
            ),
            msg: request_response::Behaviour::with_codec(
                KithCodec::default(),
                [(
                    StreamProtocol::new(PROTOCOL),
                    request_response::ProtocolSupport::Outbound,
                )],
                request_response::Config::default()
                    .with_request_timeout(request_timeout)
                    .with_max_concurrent_streams(64),
            ),
        };
        let key = identity::Keypair::generate_ed25519();
        let swarm = crate::swarm::build(&key, transport, None, behaviour, IDLE)?;
        Ok(Self {
            swarm,
            born: Instant::now(),
        })
    }

    /// Whether the key is old enough to replace.
    pub(crate) fn due(&self, now: Instant) -> bool {
        now.duration_since(self.born) >= ROTATE_EVERY
    }
}
