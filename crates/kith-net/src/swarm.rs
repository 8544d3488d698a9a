//! Where every swarm of a node is built: the transport ([`build`], for the device's swarm
//! and the anonymous deposit swarms alike) and the device swarm's behaviours ([`behaviour`]).
//!
//! A real node's transport is TCP (with `TCP_NODELAY`) and QUIC, behind DNS resolution,
//! with Noise and Yamux on TCP; a simulation replaces it through
//! [`crate::NetOptions::transport`]. The device's swarm adds circuit relay v2 client
//! connections on top of either. Every connection attempt times out after
//! [`CONNECT_TIMEOUT`].

use std::time::Duration;

use kith_proto::signal::SIGNAL_PROTOCOL;
use kith_proto::wire::PROTOCOL;
use libp2p::allow_block_list::{self, BlockedPeers};
use libp2p::core::muxing::StreamMuxerBox;
use libp2p::core::transport::timeout::TransportTimeout;
use libp2p::core::upgrade::Version;
use libp2p::kad;
use libp2p::request_response;
use libp2p::swarm::{NetworkBehaviour, behaviour::toggle::Toggle};
use libp2p::{
    StreamProtocol, Swarm, Transport as _, autonat, connection_limits, dcutr, dns, identify,
    identity, noise, ping, quic, relay, tcp, yamux,
};

use crate::codec::{KithCodec, MediaCodec, SignalCodec};
use crate::config::{BoxedTransport, BuildError, NetConfig, NetError, TransportBuilder};
use crate::gossip::Gossip;

/// Request timeout for `/kith/msg/1`.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Timeout of a media request (one chunk).
const MEDIA_TIMEOUT: Duration = Duration::from_secs(30);
/// Timeout of a signal request.
const SIGNAL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a connection may take to be set up (libp2p's `SwarmBuilder` default).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A swarm for `behaviour` with key `key`, over `custom` or else TCP and QUIC; with
/// `relay`, relayed connections too. Connections nobody uses close after `idle`.
pub(crate) fn build<B: NetworkBehaviour>(
    key: &identity::Keypair,
    custom: Option<&TransportBuilder>,
    relay: Option<relay::client::Transport>,
    behaviour: B,
    idle: Duration,
) -> Result<Swarm<B>, NetError> {
    let setup = |e: &dyn std::fmt::Display| NetError::Setup(e.to_string());
    let base = match custom {
        Some(b) => b.build(key).map_err(|e| setup(&e))?,
        None => tcp_and_quic(key).map_err(|e| setup(&e))?,
    };
    let transport = match relay {
        Some(r) => r
            .upgrade(Version::V1Lazy)
            .authenticate(noise::Config::new(key).map_err(|e| setup(&e))?)
            .multiplex(yamux::Config::default())
            .map(|(p, c), _| (p, StreamMuxerBox::new(c)))
            .or_transport(base)
            .map(|either, _| either.into_inner())
            .boxed(),
        None => base,
    };
    Ok(Swarm::new(
        TransportTimeout::new(transport, CONNECT_TIMEOUT).boxed(),
        behaviour,
        key.public().to_peer_id(),
        libp2p::swarm::Config::with_tokio_executor().with_idle_connection_timeout(idle),
    ))
}

/// A real node's transport: TCP with Noise and Yamux, or QUIC, behind DNS.
fn tcp_and_quic(key: &identity::Keypair) -> Result<BoxedTransport, BuildError> {
    let tcp = tcp::tokio::Transport::new(tcp::Config::default().nodelay(true))
        .upgrade(Version::V1Lazy)
        .authenticate(noise::Config::new(key)?)
        .multiplex(yamux::Config::default())
        .map(|(p, c), _| (p, StreamMuxerBox::new(c)));
    let quic = quic::tokio::Transport::new(quic::Config::new(key))
        .map(|(p, c), _| (p, StreamMuxerBox::new(c)));
    let both = tcp.or_transport(quic).map(|either, _| either.into_inner());
    Ok(dns::tokio::Transport::system(both)?.boxed())
}

#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    pub(crate) blocked: allow_block_list::Behaviour<BlockedPeers>,
    pub(crate) limits: connection_limits::Behaviour,
    pub(crate) identify: identify::Behaviour,
    pub(crate) ping: ping::Behaviour,
    pub(crate) kad: crate::kad_use::Kad,
    pub(crate) msg: request_response::Behaviour<KithCodec>,
    pub(crate) signal: request_response::Behaviour<SignalCodec>,
    pub(crate) media: request_response::Behaviour<MediaCodec>,
    pub(crate) relay_client: Toggle<relay::client::Behaviour>,
    pub(crate) relay: Toggle<relay::Behaviour>,
    pub(crate) dcutr: Toggle<dcutr::Behaviour>,
    pub(crate) autonat: autonat::Behaviour,
    pub(crate) gossip: Gossip,
}

/// The behaviours of a node's swarm, whatever its transport. A community node
/// ([`crate::NetOptions::community`]) gets no `relay_client` (pass `None`) and no DCUtR.
pub(crate) fn behaviour(
    key: &identity::Keypair,
    relay_client: Option<relay::client::Behaviour>,
    cfg: &NetConfig,
) -> Result<Behaviour, BuildError> {
    let community = cfg.options.community;
    let peer = key.public().to_peer_id();
    let mut kcfg = kad::Config::new(StreamProtocol::new("/kith/kad/1"));
    kcfg.set_record_filtering(kad::StoreInserts::FilterBoth)
        .set_max_packet_size(16 * 1024)
        .set_record_ttl(Some(Duration::from_secs(48 * 3600)))
        .set_publication_interval(None)
        .set_query_timeout(Duration::from_secs(30));
    if let Some(every) = cfg.options.kad_bootstrap_every {
        kcfg.set_periodic_bootstrap_interval(Some(every));
    }
    let store_cfg = kad::store::MemoryStoreConfig {
        max_records: cfg.options.limits.dht_records,
        max_value_bytes: kith_proto::record::MAX_USER_RECORD,
        ..Default::default()
    };
    let mut kad = kad::Behaviour::with_config(
        peer,
        kad::store::MemoryStore::with_config(peer, store_cfg),
        kcfg,
    );
    // Nodes on loopback and LANs never see themselves confirmed as public, so they
    // would stay clients; Kith nodes serve the DHT until AutoNAT finds them private
    // (`crate::limits::kad_mode`).
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
        gossip: crate::gossip::behaviour(key, cfg.options.observer.clone())?,
        signal: request_response::Behaviour::with_codec(
            SignalCodec::default(),
            [(
                StreamProtocol::new(SIGNAL_PROTOCOL),
                request_response::ProtocolSupport::Full,
            )],
            request_response::Config::default()
                .with_request_timeout(SIGNAL_TIMEOUT)
                .with_max_concurrent_streams(32),
        ),
        media: request_response::Behaviour::with_codec(
            MediaCodec::default(),
            [(
                StreamProtocol::new(kith_proto::media::MEDIA_PROTOCOL),
                request_response::ProtocolSupport::Full,
            )],
            request_response::Config::default()
                .with_request_timeout(MEDIA_TIMEOUT)
                .with_max_concurrent_streams(cfg.options.limits.request_streams.max(1)),
        ),
        relay_client: Toggle::from(relay_client),
        relay: Toggle::from(relay),
        dcutr: Toggle::from((!community).then(|| dcutr::Behaviour::new(peer))),
        autonat,
        blocked: Default::default(),
        limits: connection_limits::Behaviour::new(
            connection_limits::ConnectionLimits::default()
                .with_max_established(Some(cfg.options.limits.max_connections.max(1)))
                .with_max_established_per_peer(Some(4))
                .with_max_pending_incoming(Some(256)),
        ),
        identify: identify::Behaviour::new(
            identify::Config::new("/kith/1.0.0".into(), key.public())
                .with_agent_version(format!("kith/{}", env!("CARGO_PKG_VERSION")))
                .with_push_listen_addr_updates(true),
        ),
        ping: ping::Behaviour::default(),
        kad: crate::kad_use::Kad::new(kad),
        msg: request_response::Behaviour::with_codec(
            KithCodec::default(),
            [(
                StreamProtocol::new(PROTOCOL),
                request_response::ProtocolSupport::Full,
            )],
            request_response::Config::default()
                .with_request_timeout(REQUEST_TIMEOUT)
                .with_max_concurrent_streams(cfg.options.limits.request_streams.max(1)),
        ),
    })
}
