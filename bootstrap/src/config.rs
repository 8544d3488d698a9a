//! The operator's configuration file.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use kith_engine::{MailboxConfig, Multiaddr, ReachConfig, RelayServerConfig};
use serde::Deserialize;

use crate::turn::TurnConfig;

/// An example configuration, printed by `--print-config`.
pub const EXAMPLE: &str = r#"# kith-bootstrap configuration
data_dir = "/var/lib/kith-bootstrap"
listen = ["/ip4/0.0.0.0/tcp/4001", "/ip4/0.0.0.0/udp/4001/quic-v1"]
# Other bootstrap nodes to join the DHT through (with their /p2p/ ids).
bootstrap = []
# Addresses others reach this node at when they differ from the listen addresses (a port
# forward, a DNS name such as "/dns4/kith.example.org/tcp/4001").
external = []
# Prometheus metrics (/metrics) and health check (/health); keep it on a private address.
metrics = "127.0.0.1:9464"

[mailbox]
retention_days = 30
max_messages_per_device = 10000
# Ciphertext bytes kept per device (256 MiB).
max_bytes_per_device = 268435456
max_devices = 100000
# Devices of one identity served at once (identities are free to make: max_devices and
# invite tokens are what bound strangers in all).
max_devices_per_identity = 8
# Group topics one device may have kept that no other device watches (of 1024 in all).
topics_per_device = 128
# Media (files, voice notes) kept for a device whose sender could not reach it: sealed
# chunks (this server has no key), per device at most this many bytes (1 GiB) and files,
# for at most media_retention_days. A file that would go over is refused whole; what is
# kept is never pushed out for it (its sender then keeps serving it itself).
max_media_bytes_per_device = 1073741824
max_media_files_per_device = 256
media_retention_days = 14
# "open": any device may register; "invite": only with one of the tokens below.
registration = "open"
invite_tokens = []
# Push wake-ups: devices may give an endpoint the mailbox POSTs to (no content) when mail
# arrives while they are away. Endpoints on loopback, private or link-local addresses and
# plain-http ones are refused unless allowed here (allowing them lets devices make this
# server send requests into its own network).
push_allow_private = false
push_allow_http = false

# Circuit relay (v2) for nodes behind NAT: they reserve a slot here and are dialled through
# this node; hole punching (DCUtR) then tries to connect them directly.
[relay]
enabled = true
max_reservations = 1024
max_circuits = 256
max_circuits_per_peer = 8
# A relayed connection is closed after this long or this many bytes; the peers dial again.
max_circuit_secs = 1800
max_circuit_bytes = 67108864
# Answer AutoNAT probes from (and relay for) peers on private or loopback addresses too.
# Leave off on the internet; turn on for a LAN-only community or a test.
allow_private_ips = false

# What one peer may make this node do and hold (every node, mailbox or not).
[limits]
# Requests one peer may make a minute; more are answered "busy", and a peer far over it is
# blocked for a while.
requests_per_minute = 600
# Requests a minute of a device of someone this node's user knows (a contact, a fellow group
# member) seen delivering its own messages.
known_requests_per_minute = 6000
# Requests of one connection open at once.
request_streams = 32
# DHT records held for others, in all (each at most 8 KiB), and how many one peer may put
# here an hour.
dht_records = 16384
dht_puts_per_hour = 60
# Connections open at once, in all: devices registered here keep one each while online.
max_connections = 16384

# TURN and STUN for calls: devices registered with this mailbox get time-limited credentials
# over their libp2p connection and relay calls through here when no direct path works.
[turn]
enabled = false
# UDP address the server listens on.
listen = "0.0.0.0:3478"
# host:port devices are told to use (reachable by them; a DNS name or the public address).
public = "turn.example.org:3478"
realm = "kith"
# Relays bind this address and are announced with relay_ip (this server's public address).
relay_bind = "0.0.0.0"
relay_ip = "203.0.113.10"
min_port = 49152
max_port = 65535
max_allocations = 1024
max_allocations_per_user = 4
# Relayed traffic, both directions together, in kbit/s: per device and in all. Over the cap
# packets are dropped (an Opus call uses about 50 kbit/s each way).
user_kbps = 512
total_kbps = 100000
# How long a credential works (seconds); devices ask again before the end.
credential_lifetime_secs = 43200
# Relay to peers on loopback, private and link-local addresses. Leave off on the internet:
# it would let users reach this server's own network.
allow_private_peers = false
"#;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    data_dir: PathBuf,
    #[serde(default)]
    listen: Vec<String>,
    #[serde(default)]
    bootstrap: Vec<String>,
    #[serde(default)]
    external: Vec<String>,
    metrics: Option<String>,
    #[serde(default)]
    mailbox: MailboxFile,
    #[serde(default)]
    relay: RelayFile,
    #[serde(default)]
    limits: LimitsFile,
    #[serde(default)]
    turn: TurnFile,
}

/// `[turn]`: the TURN/STUN service.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct TurnFile {
    enabled: bool,
    listen: String,
    public: Option<String>,
    realm: String,
    relay_bind: String,
    relay_ip: Option<String>,
    min_port: u16,
    max_port: u16,
    max_allocations: usize,
    max_allocations_per_user: usize,
    user_kbps: u64,
    total_kbps: u64,
    credential_lifetime_secs: u64,
    allow_private_peers: bool,
}

impl Default for TurnFile {
    fn default() -> Self {
        Self {
            enabled: false,
            listen: "0.0.0.0:3478".into(),
            public: None,
            realm: "kith".into(),
            relay_bind: "0.0.0.0".into(),
            relay_ip: None,
            min_port: 49152,
            max_port: 65535,
            max_allocations: 1024,
            max_allocations_per_user: 4,
            user_kbps: 512,
            total_kbps: 100_000,
            credential_lifetime_secs: 43_200,
            allow_private_peers: false,
        }
    }
}

impl TurnFile {
    /// The checked section, or `None` when the service is off.
    fn check(self) -> anyhow::Result<Option<TurnConfig>> {
        if !self.enabled {
            return Ok(None);
        }
        let listen: SocketAddr = self
            .listen
            .parse()
            .with_context(|| format!("[turn] listen {:?} is not ip:port", self.listen))?;
        let public = match self.public {
            Some(p) => p,
            None if !listen.ip().is_unspecified() => listen.to_string(),
            None => bail!("[turn] public is needed when listen is on every interface"),
        };
        if public.is_empty()
            || public.len() > 200
            || public.contains(['?', '/', ' '])
            || !public.contains(':')
        {
            bail!("[turn] public must be host:port");
        }
        let relay_bind: IpAddr = self
            .relay_bind
            .parse()
            .with_context(|| format!("[turn] relay_bind {:?} is not an IP", self.relay_bind))?;
        let relay_ip: IpAddr = match self.relay_ip {
            Some(ip) => ip
                .parse()
                .with_context(|| format!("[turn] relay_ip {ip:?} is not an IP"))?,
            None if !relay_bind.is_unspecified() => relay_bind,
            None if !listen.ip().is_unspecified() => listen.ip(),
            None => bail!("[turn] relay_ip is needed when relays bind every interface"),
        };
        if self.min_port == 0 || self.max_port < self.min_port {
            bail!("[turn] min_port must be 1 or more and max_port at least min_port");
        }
        if self.max_allocations == 0
            || self.max_allocations_per_user == 0
            || self.user_kbps < 64
            || self.total_kbps < self.user_kbps
        {
            bail!(
                "[turn] limits must be at least 1, user_kbps at least 64 and total_kbps at \
                 least user_kbps"
            );
        }
        if !(60..=7 * 24 * 3600).contains(&self.credential_lifetime_secs) {
            bail!("[turn] credential_lifetime_secs must be 60 to 604800");
        }
        Ok(Some(TurnConfig {
            listen,
            public,
            realm: self.realm,
            relay_bind,
            relay_ip,
            ports: (self.min_port, self.max_port),
            max_allocations: self.max_allocations,
            max_allocations_per_user: self.max_allocations_per_user,
            user_kbps: self.user_kbps,
            total_kbps: self.total_kbps,
            credential_lifetime: Duration::from_secs(self.credential_lifetime_secs),
            allow_private_peers: self.allow_private_peers,
        }))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RelayFile {
    #[serde(default = "default_true")]
    enabled: bool,
    #[serde(default = "default_reservations")]
    max_reservations: usize,
    #[serde(default = "default_circuits")]
    max_circuits: usize,
    #[serde(default = "default_circuits_per_peer")]
    max_circuits_per_peer: usize,
    #[serde(default = "default_circuit_secs")]
    max_circuit_secs: u64,
    #[serde(default = "default_circuit_bytes")]
    max_circuit_bytes: u64,
    #[serde(default)]
    allow_private_ips: bool,
}

impl Default for RelayFile {
    fn default() -> Self {
        Self {
            enabled: true,
            max_reservations: default_reservations(),
            max_circuits: default_circuits(),
            max_circuits_per_peer: default_circuits_per_peer(),
            max_circuit_secs: default_circuit_secs(),
            max_circuit_bytes: default_circuit_bytes(),
            allow_private_ips: false,
        }
    }
}

fn default_true() -> bool {
    true
}
fn default_reservations() -> usize {
    RelayServerConfig::default().max_reservations
}
fn default_circuits() -> usize {
    RelayServerConfig::default().max_circuits
}
fn default_circuits_per_peer() -> usize {
    RelayServerConfig::default().max_circuits_per_peer
}
fn default_circuit_secs() -> u64 {
    RelayServerConfig::default().max_circuit_duration.as_secs()
}
fn default_circuit_bytes() -> u64 {
    RelayServerConfig::default().max_circuit_bytes
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MailboxFile {
    #[serde(default = "default_retention")]
    retention_days: u64,
    #[serde(default = "default_quota")]
    max_messages_per_device: usize,
    #[serde(default = "default_quota_bytes")]
    max_bytes_per_device: u64,
    #[serde(default = "default_max_devices")]
    max_devices: usize,
    #[serde(default = "default_devices_per_identity")]
    max_devices_per_identity: usize,
    #[serde(default = "default_topics_per_device")]
    topics_per_device: usize,
    #[serde(default = "default_media_bytes")]
    max_media_bytes_per_device: u64,
    #[serde(default = "default_media_files")]
    max_media_files_per_device: usize,
    #[serde(default = "default_media_retention")]
    media_retention_days: u64,
    #[serde(default = "default_registration")]
    registration: String,
    #[serde(default)]
    invite_tokens: Vec<String>,
    #[serde(default)]
    push_allow_private: bool,
    #[serde(default)]
    push_allow_http: bool,
}

impl Default for MailboxFile {
    fn default() -> Self {
        Self {
            retention_days: default_retention(),
            max_messages_per_device: default_quota(),
            max_bytes_per_device: default_quota_bytes(),
            max_devices: default_max_devices(),
            max_devices_per_identity: default_devices_per_identity(),
            topics_per_device: default_topics_per_device(),
            max_media_bytes_per_device: default_media_bytes(),
            max_media_files_per_device: default_media_files(),
            media_retention_days: default_media_retention(),
            registration: default_registration(),
            invite_tokens: Vec::new(),
            push_allow_private: false,
            push_allow_http: false,
        }
    }
}

fn default_media_bytes() -> u64 {
    kith_engine::MAILBOX_MEDIA_BYTES
}

fn default_media_files() -> usize {
    kith_engine::MAILBOX_MEDIA_FILES
}

fn default_media_retention() -> u64 {
    kith_engine::MAILBOX_MEDIA_RETENTION.as_secs() / (24 * 3600)
}

fn default_retention() -> u64 {
    30
}
fn default_quota() -> usize {
    10_000
}
fn default_quota_bytes() -> u64 {
    kith_engine::MAILBOX_QUOTA_BYTES
}
fn default_max_devices() -> usize {
    100_000
}
fn default_devices_per_identity() -> usize {
    kith_engine::MAILBOX_DEVICES_PER_IDENTITY
}
fn default_topics_per_device() -> usize {
    kith_engine::MAILBOX_TOPICS_PER_DEVICE
}

/// `[limits]`: what one peer may make this node do and hold.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct LimitsFile {
    requests_per_minute: u32,
    known_requests_per_minute: u32,
    request_streams: usize,
    dht_records: usize,
    dht_puts_per_hour: u32,
    max_connections: u32,
}

/// Connections a community node keeps open at once, by default.
const BOOTSTRAP_CONNECTIONS: u32 = 16_384;

impl Default for LimitsFile {
    fn default() -> Self {
        let d = kith_engine::NetLimits::default();
        Self {
            requests_per_minute: d.requests_per_minute,
            known_requests_per_minute: d.known_requests_per_minute,
            request_streams: d.request_streams,
            dht_records: d.dht_records,
            dht_puts_per_hour: d.dht_puts_per_hour,
            max_connections: BOOTSTRAP_CONNECTIONS,
        }
    }
}

fn default_registration() -> String {
    "open".into()
}

/// The checked configuration.
#[derive(Debug)]
pub struct Config {
    pub data_dir: PathBuf,
    pub listen: Vec<Multiaddr>,
    pub bootstrap: Vec<Multiaddr>,
    pub metrics: Option<SocketAddr>,
    retention: Duration,
    quota: usize,
    max_bytes: u64,
    max_devices: usize,
    max_devices_per_identity: usize,
    topics_per_device: usize,
    tokens: Option<Vec<String>>,
    limits: kith_engine::NetLimits,
    relay: Option<RelayServerConfig>,
    allow_private_ips: bool,
    external: Vec<Multiaddr>,
    push: kith_engine::PushPolicy,
    /// The TURN/STUN service, when on.
    pub turn: Option<TurnConfig>,
    media_bytes: u64,
    media_files: usize,
    media_retention: Duration,
}

fn addrs(v: &[String], what: &str) -> anyhow::Result<Vec<Multiaddr>> {
    v.iter()
        .map(|s| {
            s.parse()
                .with_context(|| format!("{what} address {s:?} is not a multiaddr"))
        })
        .collect()
}

impl Config {
    /// Reads and checks the file.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("in {}", path.display()))
    }

    /// Parses and checks configuration text.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let f: File = toml::from_str(text).context("not a valid configuration")?;
        let mut listen = addrs(&f.listen, "listen")?;
        if listen.is_empty() {
            listen = addrs(
                &[
                    "/ip4/0.0.0.0/tcp/4001".into(),
                    "/ip4/0.0.0.0/udp/4001/quic-v1".into(),
                ],
                "listen",
            )?;
        }
        let metrics = f
            .metrics
            .map(|m| {
                m.parse::<SocketAddr>()
                    .with_context(|| format!("metrics address {m:?} is not host:port"))
            })
            .transpose()?;
        let tokens = match f.mailbox.registration.as_str() {
            "open" => None,
            "invite" => {
                if f.mailbox.invite_tokens.is_empty() {
                    bail!("registration = \"invite\" needs at least one invite token");
                }
                if let Err(e) = kith_engine::check_invite_tokens(&f.mailbox.invite_tokens) {
                    bail!("{e}");
                }
                Some(f.mailbox.invite_tokens)
            }
            other => bail!("registration must be \"open\" or \"invite\", not {other:?}"),
        };
        if f.mailbox.retention_days == 0 || f.mailbox.retention_days > 365 {
            bail!("retention_days must be 1 to 365");
        }
        if f.mailbox.max_messages_per_device == 0 {
            bail!("max_messages_per_device must be at least 1");
        }
        let r = &f.relay;
        if r.enabled
            && (r.max_reservations == 0
                || r.max_circuits == 0
                || r.max_circuits_per_peer == 0
                || r.max_circuit_secs == 0
                || r.max_circuit_bytes < 64 * 1024)
        {
            bail!(
                "[relay] limits must be at least 1 (and max_circuit_bytes at least 65536); \
                 set enabled = false to turn the relay off"
            );
        }
        let relay = r.enabled.then(|| RelayServerConfig {
            max_reservations: r.max_reservations,
            max_circuits: r.max_circuits,
            max_circuits_per_peer: r.max_circuits_per_peer,
            max_circuit_duration: Duration::from_secs(r.max_circuit_secs),
            max_circuit_bytes: r.max_circuit_bytes,
        });
        let l = &f.limits;
        if l.requests_per_minute == 0
            || l.request_streams == 0
            || l.dht_records == 0
            || l.dht_puts_per_hour == 0
            || l.max_connections == 0
        {
            bail!("[limits] must each be at least 1");
        }
        if f.mailbox.media_retention_days == 0 || f.mailbox.media_retention_days > 365 {
            bail!("media_retention_days must be 1 to 365");
        }
        if f.mailbox.max_bytes_per_device < 64 * 1024 {
            bail!("max_bytes_per_device must be at least 65536 (one envelope)");
        }
        let turn = f.turn.check()?;
        Ok(Self {
            turn,
            data_dir: f.data_dir,
            listen,
            bootstrap: addrs(&f.bootstrap, "bootstrap")?,
            metrics,
            retention: Duration::from_secs(f.mailbox.retention_days * 24 * 3600),
            quota: f.mailbox.max_messages_per_device,
            max_bytes: f.mailbox.max_bytes_per_device,
            max_devices: f.mailbox.max_devices.max(1),
            max_devices_per_identity: f.mailbox.max_devices_per_identity.max(1),
            topics_per_device: f.mailbox.topics_per_device,
            tokens,
            limits: kith_engine::NetLimits {
                requests_per_minute: f.limits.requests_per_minute,
                known_requests_per_minute: f.limits.known_requests_per_minute,
                request_streams: f.limits.request_streams,
                dht_records: f.limits.dht_records,
                dht_puts_per_hour: f.limits.dht_puts_per_hour,
                max_connections: f.limits.max_connections,
            },
            relay,
            allow_private_ips: f.relay.allow_private_ips,
            external: addrs(&f.external, "external")?,
            push: kith_engine::PushPolicy {
                allow_private: f.mailbox.push_allow_private,
                allow_http: f.mailbox.push_allow_http,
            },
            media_bytes: f.mailbox.max_media_bytes_per_device,
            media_files: f.mailbox.max_media_files_per_device,
            media_retention: Duration::from_secs(f.mailbox.media_retention_days * 24 * 3600),
        })
    }

    /// The relay and AutoNAT settings for the engine.
    pub fn reach_config(&self) -> ReachConfig {
        ReachConfig {
            relays: Vec::new(),
            relay_server: self.relay.clone(),
            private_ips: self.allow_private_ips,
            external: self.external.clone(),
        }
    }

    /// The mailbox settings for the engine.
    pub fn mailbox_config(&self) -> MailboxConfig {
        MailboxConfig {
            retention: self.retention,
            quota: self.quota,
            tokens: self.tokens.clone(),
            max_devices: self.max_devices,
            max_devices_per_identity: self.max_devices_per_identity,
            topics_per_device: self.topics_per_device,
            max_bytes: self.max_bytes,
            push: self.push,
            turn: None,
            media_bytes: self.media_bytes,
            media_files: self.media_files,
            media_retention: self.media_retention,
        }
    }

    /// What one peer may make this node do and hold.
    pub fn net_limits(&self) -> kith_engine::NetLimits {
        self.limits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_parses() {
        let c = Config::parse(EXAMPLE).unwrap();
        assert_eq!(c.listen.len(), 2);
        assert_eq!(c.mailbox_config().quota, 10_000);
        assert!(c.mailbox_config().tokens.is_none());
        assert_eq!(c.mailbox_config().max_bytes, 256 << 20);
        assert!(!c.mailbox_config().push.allow_private);
        assert!(!c.mailbox_config().push.allow_http);
    }

    #[test]
    fn limits_and_mailbox_bounds() {
        let d = Config::parse(EXAMPLE).unwrap();
        assert_eq!(
            d.net_limits(),
            kith_engine::NetLimits {
                max_connections: BOOTSTRAP_CONNECTIONS,
                ..kith_engine::NetLimits::default()
            }
        );
        assert_eq!(
            d.mailbox_config().max_devices_per_identity,
            kith_engine::MAILBOX_DEVICES_PER_IDENTITY
        );
        let c = Config::parse(
            "data_dir = \"/x\"\n[mailbox]\nmax_devices_per_identity = 2\n\
             topics_per_device = 5\n[limits]\nrequests_per_minute = 7\ndht_records = 9",
        )
        .unwrap();
        assert_eq!(c.mailbox_config().max_devices_per_identity, 2);
        assert_eq!(c.mailbox_config().topics_per_device, 5);
        assert_eq!(c.net_limits().requests_per_minute, 7);
        assert_eq!(c.net_limits().dht_records, 9);
        assert_eq!(c.net_limits().max_connections, BOOTSTRAP_CONNECTIONS);
        assert_eq!(
            c.net_limits().request_streams,
            kith_engine::net_limits::REQUEST_STREAMS
        );
        assert!(Config::parse("data_dir = \"/x\"\n[limits]\nrequests_per_minute = 0").is_err());
        assert!(Config::parse("data_dir = \"/x\"\n[limits]\nwhat = 1").is_err());
    }

    #[test]
    fn byte_quota_and_push_keys() {
        let c = Config::parse(
            "data_dir = \"/x\"\n[mailbox]\nmax_bytes_per_device = 1048576\n\
             push_allow_private = true\npush_allow_http = true",
        )
        .unwrap();
        assert_eq!(c.mailbox_config().max_bytes, 1 << 20);
        assert!(c.mailbox_config().push.allow_private && c.mailbox_config().push.allow_http);
        assert!(Config::parse("data_dir = \"/x\"\n[mailbox]\nmax_bytes_per_device = 10").is_err());
        let r = c.reach_config();
        assert_eq!(r.relay_server.unwrap().max_circuits, 256);
        assert!(!r.private_ips);
    }

    #[test]
    fn relay_can_be_turned_off_and_limits_are_checked() {
        let c = Config::parse("data_dir = \"/x\"\n[relay]\nenabled = false").unwrap();
        assert!(c.reach_config().relay_server.is_none());
        assert!(Config::parse("data_dir = \"/x\"\n[relay]\nmax_circuits = 0").is_err());
        assert!(Config::parse("data_dir = \"/x\"\n[relay]\nbogus = 1").is_err());
    }

    #[test]
    fn turn_section() {
        let d = Config::parse(EXAMPLE).unwrap();
        assert!(d.turn.is_none(), "off in the example");
        let on = EXAMPLE.replace("[turn]\nenabled = false", "[turn]\nenabled = true");
        let t = Config::parse(&on).unwrap().turn.unwrap();
        assert_eq!(t.public, "turn.example.org:3478");
        assert_eq!(t.ports, (49152, 65535));
        assert_eq!(t.credential_lifetime, Duration::from_secs(43_200));
        assert_eq!(
            t.urls(),
            [
                "turn:turn.example.org:3478?transport=udp",
                "stun:turn.example.org:3478"
            ]
        );
        // On one address, public and relay_ip default to it.
        let t =
            Config::parse("data_dir = \"/x\"\n[turn]\nenabled = true\nlisten = \"127.0.0.1:3478\"")
                .unwrap()
                .turn
                .unwrap();
        assert_eq!(t.public, "127.0.0.1:3478");
        assert_eq!(t.relay_ip.to_string(), "127.0.0.1");
        for bad in [
            "enabled = true",
            "enabled = true\nlisten = \"127.0.0.1:1\"\nmin_port = 9\nmax_port = 8",
            "enabled = true\nlisten = \"127.0.0.1:1\"\nuser_kbps = 0",
            "enabled = true\nlisten = \"127.0.0.1:1\"\ncredential_lifetime_secs = 1",
            "enabled = true\nlisten = \"127.0.0.1:1\"\npublic = \"x/y\"",
            "enabled = true\nlisten = \"nowhere\"",
            "bogus = 1",
        ] {
            let text = format!("data_dir = \"/x\"\n[turn]\n{bad}");
            assert!(Config::parse(&text).is_err(), "{bad}");
        }
    }

    #[test]
    fn mistakes_are_reported() {
        assert!(Config::parse("data_dir = 1").is_err());
        assert!(Config::parse("data_dir = \"/x\"\nlisten = [\"nonsense\"]").is_err());
        assert!(Config::parse("data_dir = \"/x\"\nunknown = 1").is_err());
        assert!(Config::parse("data_dir = \"/x\"\n[mailbox]\nregistration = \"invite\"").is_err());
        assert!(Config::parse("data_dir = \"/x\"\nmetrics = \"nope\"").is_err());
    }
}
