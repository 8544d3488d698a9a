//! The TURN and STUN service (`[turn]` in the configuration): the webrtc-rs project's TURN
//! server (`turn` crate) on one UDP socket, with Kith's rules around it.
//!
//! - **Who may relay.** Only devices registered with this node's mailbox: the mailbox hands
//!   them time-limited credentials over the authenticated libp2p connection
//!   (`Request::TurnCredentials`, [`kith_engine::turn::issue`]), and this server recomputes
//!   each credential from its user name with the same secret ([`kith_engine::turn::verify`]).
//!   The secret is made fresh at every start and never leaves the process.
//! - **Bounds.** At most `max_allocations` relays in all and `max_allocations_per_user` per
//!   device; relayed traffic is policed per device and in all (token buckets in kbit/s: what
//!   goes over is dropped, as a congested link would); relay ports come from a configured
//!   range; peers on loopback, private and link-local addresses are not relayed to unless
//!   the operator allows it (otherwise a user could reach the server's own network).
//! - **Metrics.** Allocations now and in all, relayed bytes, bytes dropped over a cap,
//!   refused credentials ([`TurnStats`], shown on `/metrics`).
//! - STUN binding requests are answered without credentials (server-reflexive candidates).
//!
//! Which device an allocation belongs to: the server checks a request's credentials (the
//! auth handler) and then, in the same request, asks for the relay socket (the relay
//! generator). It handles one listening socket's requests one after the other, so the
//! relay generator takes the user the auth handler just saw ([`Shared::last_user`]); this
//! module runs exactly one listening socket, which keeps that true.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use tokio::net::UdpSocket;
use turn::auth::{AuthHandler, generate_auth_key};
use turn::relay::RelayAddressGenerator;
use turn::server::Server;
use turn::server::config::{ConnConfig, ServerConfig};
use webrtc_util::Conn;

/// The checked `[turn]` section.
#[derive(Debug, Clone)]
pub struct TurnConfig {
    /// Where the server listens (UDP).
    pub listen: SocketAddr,
    /// What devices are told to use (`host:port`).
    pub public: String,
    /// The realm.
    pub realm: String,
    /// The address relays bind.
    pub relay_bind: IpAddr,
    /// The address relays are announced with (reachable by the devices' peers).
    pub relay_ip: IpAddr,
    /// Relay ports, inclusive.
    pub ports: (u16, u16),
    /// Relays at once, in all.
    pub max_allocations: usize,
    /// Relays at once, per device.
    pub max_allocations_per_user: usize,
    /// Relayed traffic per device, kbit/s (both directions together).
    pub user_kbps: u64,
    /// Relayed traffic in all, kbit/s.
    pub total_kbps: u64,
    /// How long a credential works.
    pub credential_lifetime: Duration,
    /// Relay to peers on loopback, private and link-local addresses.
    pub allow_private_peers: bool,
}

impl TurnConfig {
    /// The URLs devices are told.
    pub fn urls(&self) -> Vec<String> {
        vec![
            format!("turn:{}?transport=udp", self.public),
            format!("stun:{}", self.public),
        ]
    }
}

/// What the service counts (for `/metrics`).
#[derive(Debug, Default)]
pub struct TurnStats {
    /// Relays open now.
    pub allocations: AtomicU64,
    /// Relays opened since the start.
    pub allocations_total: AtomicU64,
    /// Relays refused (over a limit, no port free).
    pub allocations_refused: AtomicU64,
    /// Bytes relayed (both directions).
    pub relayed_bytes: AtomicU64,
    /// Bytes dropped over a bandwidth cap or to a peer not allowed.
    pub dropped_bytes: AtomicU64,
    /// Requests whose credentials were refused (malformed, expired, forged).
    pub refused_credentials: AtomicU64,
}

/// A token bucket in bytes per second; a burst of one second (at least 64 KiB).
#[derive(Debug)]
struct Bucket {
    rate: f64,
    state: Mutex<(f64, Instant)>,
}

impl Bucket {
    fn kbps(kbps: u64) -> Self {
        let rate = kbps as f64 * 1000.0 / 8.0;
        Self {
            rate,
            state: Mutex::new((rate.max(65_536.0), Instant::now())),
        }
    }

    /// Takes `n` bytes if the bucket holds them.
    fn take(&self, n: usize) -> bool {
        let Ok(mut s) = self.state.lock() else {
            return false;
        };
        let now = Instant::now();
        let burst = self.rate.max(65_536.0);
        let refill = now.saturating_duration_since(s.1).as_secs_f64() * self.rate;
        s.0 = (s.0 + refill).min(burst);
        s.1 = now;
        if s.0 >= n as f64 {
            s.0 -= n as f64;
            true
        } else {
            false
        }
    }
}

/// One device's relays and bucket.
#[derive(Debug)]
struct User {
    bucket: Arc<Bucket>,
    relays: usize,
}

/// What the auth handler, the relay generator and the relays share.
#[derive(Debug)]
struct Shared {
    cfg: TurnConfig,
    secret: Vec<u8>,
    stats: Arc<TurnStats>,
    global: Bucket,
    /// The device whose request the server is handling (see the module docs).
    last_user: Mutex<Option<String>>,
    /// Devices with relays open (at most `max_allocations` entries).
    users: Mutex<HashMap<String, User>>,
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

struct Auth(Arc<Shared>);

impl AuthHandler for Auth {
    fn auth_handle(
        &self,
        username: &str,
        realm: &str,
        _src: SocketAddr,
    ) -> Result<Vec<u8>, turn::Error> {
        let s = &self.0;
        match kith_engine::turn::verify(&s.secret, username, now_s(), s.cfg.credential_lifetime) {
            Ok((user, password)) => {
                if let Ok(mut last) = s.last_user.lock() {
                    *last = Some(user.to_owned());
                }
                Ok(generate_auth_key(username, realm, &password))
            }
            Err(e) => {
                s.stats.refused_credentials.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut last) = s.last_user.lock() {
                    *last = None;
                }
                Err(turn::Error::Other(format!("credentials refused: {e}")))
            }
        }
    }
}

/// Whether a relay may send to (and take from) `ip`.
fn public_peer(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || (a == 100 && (64..128).contains(&b))
                || a == 0)
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => public_peer(IpAddr::V4(v4)),
            None => {
                let first = v6.segments()[0];
                !(v6.is_loopback()
                    || v6.is_unspecified()
                    || v6.is_multicast()
                    || (first & 0xfe00) == 0xfc00
                    || (first & 0xffc0) == 0xfe80)
            }
        },
    }
}

struct Relays(Arc<Shared>);

#[async_trait]
impl RelayAddressGenerator for Relays {
    fn validate(&self) -> Result<(), turn::Error> {
        Ok(())
    }

    async fn allocate_conn(
        &self,
        use_ipv4: bool,
        requested_port: u16,
    ) -> Result<(Arc<dyn Conn + Send + Sync>, SocketAddr), turn::Error> {
        let s = &self.0;
        let refuse = |why: &str| {
            s.stats.allocations_refused.fetch_add(1, Ordering::Relaxed);
            Err(turn::Error::Other(why.to_owned()))
        };
        if !use_ipv4 && s.cfg.relay_bind.is_ipv4() {
            return refuse("IPv6 relays are not offered");
        }
        let user = s.last_user.lock().ok().and_then(|u| u.clone());
        let Some(user) = user else {
            return refuse("no authenticated user");
        };
        let bucket = {
            let Ok(mut users) = s.users.lock() else {
                return refuse("internal");
            };
            let open: usize = users.values().map(|u| u.relays).sum();
            if open >= s.cfg.max_allocations {
                drop(users);
                return refuse("too many relays");
            }
            let u = users.entry(user.clone()).or_insert_with(|| User {
                bucket: Arc::new(Bucket::kbps(s.cfg.user_kbps)),
                relays: 0,
            });
            if u.relays >= s.cfg.max_allocations_per_user {
                drop(users);
                return refuse("too many relays for one device");
            }
            u.relays += 1;
            Arc::clone(&u.bucket)
        };
        let (lo, hi) = s.cfg.ports;
        let span = u32::from(hi - lo) + 1;
        let mut socket = None;
        let tries = if requested_port != 0 { 1 } else { 16 };
        for _ in 0..tries {
            let port = if requested_port != 0 {
                requested_port
            } else {
                lo + (rand::random::<u32>() % span) as u16
            };
            if port < lo || port > hi {
                break;
            }
            if let Ok(sock) = UdpSocket::bind(SocketAddr::new(s.cfg.relay_bind, port)).await {
                socket = Some((sock, port));
                break;
            }
        }
        let Some((socket, port)) = socket else {
            release(s, &user);
            return refuse("no relay port free");
        };
        s.stats.allocations.fetch_add(1, Ordering::Relaxed);
        s.stats.allocations_total.fetch_add(1, Ordering::Relaxed);
        let conn = Metered {
            socket,
            shared: Arc::clone(s),
            user,
            bucket,
            released: AtomicBool::new(false),
        };
        Ok((Arc::new(conn), SocketAddr::new(s.cfg.relay_ip, port)))
    }
}

/// One relay closed: its device has one fewer.
fn release(s: &Shared, user: &str) {
    if let Ok(mut users) = s.users.lock()
        && let Some(u) = users.get_mut(user)
    {
        u.relays = u.relays.saturating_sub(1);
        if u.relays == 0 {
            users.remove(user);
        }
    }
}

/// A relay socket that counts and polices what passes.
struct Metered {
    socket: UdpSocket,
    shared: Arc<Shared>,
    user: String,
    bucket: Arc<Bucket>,
    released: AtomicBool,
}

impl Metered {
    /// Whether `n` bytes to or from `peer` pass; counts them either way.
    fn pass(&self, n: usize, peer: SocketAddr) -> bool {
        let s = &self.shared;
        let ok = (s.cfg.allow_private_peers || public_peer(peer.ip()))
            && self.bucket.take(n)
            && s.global.take(n);
        let counter = if ok {
            &s.stats.relayed_bytes
        } else {
            &s.stats.dropped_bytes
        };
        counter.fetch_add(n as u64, Ordering::Relaxed);
        ok
    }

    fn release(&self) {
        if !self.released.swap(true, Ordering::Relaxed) {
            self.shared
                .stats
                .allocations
                .fetch_sub(1, Ordering::Relaxed);
            release(&self.shared, &self.user);
        }
    }
}

impl Drop for Metered {
    fn drop(&mut self) {
        self.release();
    }
}

#[async_trait]
impl Conn for Metered {
    async fn connect(&self, addr: SocketAddr) -> webrtc_util::Result<()> {
        Ok(self.socket.connect(addr).await?)
    }

    async fn recv(&self, buf: &mut [u8]) -> webrtc_util::Result<usize> {
        Ok(self.recv_from(buf).await?.0)
    }

    async fn recv_from(&self, buf: &mut [u8]) -> webrtc_util::Result<(usize, SocketAddr)> {
        loop {
            let (n, from) = self.socket.recv_from(buf).await?;
            if self.pass(n, from) {
                return Ok((n, from));
            }
        }
    }

    async fn send(&self, _buf: &[u8]) -> webrtc_util::Result<usize> {
        Err(webrtc_util::Error::Other("a relay sends to a peer".into()))
    }

    async fn send_to(&self, buf: &[u8], target: SocketAddr) -> webrtc_util::Result<usize> {
        if !self.pass(buf.len(), target) {
            // Dropped, as a full link would: UDP gives no word of it.
            return Ok(buf.len());
        }
        Ok(self.socket.send_to(buf, target).await?)
    }

    fn local_addr(&self) -> webrtc_util::Result<SocketAddr> {
        Ok(self.socket.local_addr()?)
    }

    fn remote_addr(&self) -> Option<SocketAddr> {
        None
    }

    async fn close(&self) -> webrtc_util::Result<()> {
        self.release();
        Ok(())
    }

    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync) {
        self
    }
}

/// The running service.
pub struct Turn {
    server: Server,
    /// What it counts.
    pub stats: Arc<TurnStats>,
    /// Where it listens.
    pub bound: SocketAddr,
    offer: kith_engine::turn::TurnOffer,
}

impl std::fmt::Debug for Turn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Turn")
            .field("bound", &self.bound)
            .finish_non_exhaustive()
    }
}

impl Turn {
    /// Binds the listening socket and starts the server with a fresh secret.
    pub async fn start(cfg: TurnConfig) -> anyhow::Result<Self> {
        let secret: [u8; 32] = rand::random();
        let socket = UdpSocket::bind(cfg.listen).await?;
        let bound = socket.local_addr()?;
        let stats = Arc::new(TurnStats::default());
        let offer = kith_engine::turn::TurnOffer {
            urls: cfg.urls(),
            secret: zeroize::Zeroizing::new(secret.to_vec()),
            lifetime: cfg.credential_lifetime,
        };
        let shared = Arc::new(Shared {
            global: Bucket::kbps(cfg.total_kbps),
            secret: secret.to_vec(),
            stats: Arc::clone(&stats),
            last_user: Mutex::new(None),
            users: Mutex::new(HashMap::new()),
            cfg: cfg.clone(),
        });
        let server = Server::new(ServerConfig {
            conn_configs: vec![ConnConfig {
                conn: Arc::new(socket),
                relay_addr_generator: Box::new(Relays(Arc::clone(&shared))),
            }],
            realm: cfg.realm.clone(),
            auth_handler: Arc::new(Auth(shared)),
            channel_bind_timeout: Duration::from_secs(0),
            alloc_close_notify: None,
        })
        .await?;
        Ok(Self {
            server,
            stats,
            bound,
            offer,
        })
    }

    /// What the mailbox hands out (URLs, the shared secret, the lifetime).
    pub fn offer(&self) -> kith_engine::turn::TurnOffer {
        self.offer.clone()
    }

    /// Closes every relay and the listening socket.
    pub async fn stop(self) {
        let _ = self.server.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_peers_are_told_apart() {
        // Parse only: these addresses are classified, never dialled.
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "172.16.0.1",
            "169.254.1.1",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!public_peer(private.parse().unwrap()), "{private}"); // parse only
        }
        for public in ["203.0.113.9", "2001:db8::1"] {
            assert!(public_peer(public.parse().unwrap()), "{public}"); // parse only
        }
    }

    #[test]
    fn a_bucket_passes_its_rate_and_drops_the_rest() {
        // 1 Mbit/s: 125 000 bytes a second, of which the first second's burst is free.
        let b = Bucket::kbps(1000);
        let passed = (0..200).filter(|_| b.take(1200)).count();
        assert!((100..=110).contains(&passed), "{passed}");
    }
}
