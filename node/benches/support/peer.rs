//! Raw libp2p peers for the benchmarks, each with its own peer id: senders that deposit
//! envelopes with a mailbox, devices that register with it and take their mail back, all
//! speaking `/kith/msg/1` with the node's own codec. They dial loopback addresses only.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::StreamExt;
use kith_api::Client;
use kith_api::methods::{self, NoParams};
use kith_crypto::{Device, Identity};
use kith_net::codec::KithCodec;
use kith_proto::record::DeviceCert;
use kith_proto::wire::{DeliveryResult, Envelope, PROTOCOL, Request, Response};
use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, Event, Message, ProtocolSupport};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, StreamProtocol, Swarm, noise, tcp, yamux};

use super::{Daemon, sock};

/// How long a peer waits to connect, or for one answer.
pub const T: Duration = Duration::from_secs(60);

/// The daemon's peer id and its loopback address (with `/p2p/`).
pub async fn node_addr(d: &Daemon) -> (PeerId, Multiaddr) {
    let mut c = Client::connect(&sock(&d.dir)).await.unwrap();
    let id = c.call::<methods::Id>(NoParams {}).await.unwrap();
    let peer: PeerId = id.peer_id.parse().unwrap();
    let addr = format!("/ip4/127.0.0.1/tcp/{}/p2p/{peer}", d.port)
        .parse()
        .unwrap();
    (peer, addr)
}

/// A swarm with its own `key` over TCP, Noise and Yamux, running `behaviour`. It never
/// closes an idle connection itself (the node may).
pub fn swarm<B: NetworkBehaviour>(key: Keypair, behaviour: impl FnOnce(&Keypair) -> B) -> Swarm<B> {
    libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .expect("tcp transport")
        .with_behaviour(behaviour)
        .expect("behaviour")
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(3600)))
        .build()
}

/// Dials `addr`, which must be on 127.0.0.0/8, and waits until the connection to `node` is up.
pub async fn dial<B: NetworkBehaviour>(
    swarm: &mut Swarm<B>,
    node: PeerId,
    addr: &Multiaddr,
) -> Result<(), String> {
    assert!(
        addr.iter()
            .any(|p| matches!(p, Protocol::Ip4(ip) if ip.is_loopback())),
        "refusing to dial a non-loopback address: {addr}"
    );
    swarm.dial(addr.clone()).map_err(|e| e.to_string())?;
    tokio::time::timeout(T, async {
        loop {
            match swarm.select_next_some().await {
                SwarmEvent::ConnectionEstablished { peer_id, .. } if peer_id == node => {
                    return Ok(());
                }
                SwarmEvent::OutgoingConnectionError { error, .. } => return Err(error.to_string()),
                _ => {}
            }
        }
    })
    .await
    .unwrap_or_else(|_| Err("no connection in time".into()))
}

/// A peer connected to one node, speaking `/kith/msg/1` both ways.
pub struct MsgPeer {
    pub swarm: Swarm<request_response::Behaviour<KithCodec>>,
    pub node: PeerId,
}

impl MsgPeer {
    /// Connects to `node` at `addr` as the peer `key`.
    pub async fn connect(key: Keypair, node: PeerId, addr: &Multiaddr) -> Self {
        match Self::try_connect(key, node, addr).await {
            Ok(p) => p,
            Err(e) => panic!("cannot connect to {addr}: {e}"),
        }
    }

    /// Connects to `node` at `addr` as the peer `key`, or says why not.
    pub async fn try_connect(key: Keypair, node: PeerId, addr: &Multiaddr) -> Result<Self, String> {
        let mut swarm = swarm(key, |_| {
            request_response::Behaviour::with_codec(
                KithCodec::default(),
                [(StreamProtocol::new(PROTOCOL), ProtocolSupport::Full)],
                request_response::Config::default()
                    .with_request_timeout(T)
                    .with_max_concurrent_streams(256),
            )
        });
        dial(&mut swarm, node, addr).await?;
        Ok(Self { swarm, node })
    }

    /// One request, one answer.
    pub async fn request(&mut self, req: Request) -> Result<Response, String> {
        let mut answer = None;
        self.pipeline(std::iter::once(req), 1, |r, _| answer = Some(r))
            .await;
        answer.unwrap_or_else(|| Err("no answer".into()))
    }

    /// Sends `reqs` with up to `depth` in flight, and calls `done` with each answer and how
    /// long it took, in the order they come.
    pub async fn pipeline(
        &mut self,
        reqs: impl IntoIterator<Item = Request>,
        depth: usize,
        mut done: impl FnMut(Result<Response, String>, Duration),
    ) {
        let mut reqs = reqs.into_iter();
        let mut flying = HashMap::new();
        loop {
            while flying.len() < depth.max(1) {
                let Some(req) = reqs.next() else { break };
                let id = self.swarm.behaviour_mut().send_request(&self.node, Ok(req));
                flying.insert(id, Instant::now());
            }
            if flying.is_empty() {
                return;
            }
            let ev = tokio::time::timeout(T, self.swarm.select_next_some()).await;
            let (id, answer) = match ev {
                Err(_) => panic!("no answer from the node in {T:?}"),
                Ok(SwarmEvent::Behaviour(Event::Message {
                    message:
                        Message::Response {
                            request_id,
                            response,
                        },
                    ..
                })) => (request_id, Ok(response)),
                Ok(SwarmEvent::Behaviour(Event::OutboundFailure {
                    request_id, error, ..
                })) => (request_id, Err(error.to_string())),
                Ok(_) => continue,
            };
            if let Some(sent) = flying.remove(&id) {
                done(answer, sent.elapsed());
            }
        }
    }

    /// Answers the node's deliveries as a device does (`Stored` for every envelope) for ever,
    /// and reports on `got` how many envelopes for `curve` arrived.
    pub async fn serve(self, curve: kith_types::CurveKey, got: tokio::sync::watch::Sender<usize>) {
        let mut n = 0;
        self.serve_with(curve, |new| {
            n += new;
            got.send_replace(n);
        })
        .await
    }

    /// Answers the node's deliveries as a device does (`Stored` for every envelope) for ever,
    /// calling `arrived` with how many envelopes for `curve` each delivery brought.
    pub async fn serve_with(mut self, curve: kith_types::CurveKey, mut arrived: impl FnMut(usize)) {
        loop {
            let ev = self.swarm.select_next_some().await;
            let SwarmEvent::Behaviour(Event::Message {
                message:
                    Message::Request {
                        request, channel, ..
                    },
                ..
            }) = ev
            else {
                continue;
            };
            let resp = match request {
                Ok(Request::Deliver { envelopes }) => {
                    arrived(envelopes.iter().filter(|e| e.to_device == curve).count());
                    Response::Delivered {
                        results: vec![DeliveryResult::Stored; envelopes.len()],
                    }
                }
                other => panic!("the device got an unexpected request: {other:?}"),
            };
            let _ = self.swarm.behaviour_mut().send_response(channel, resp);
        }
    }
}

/// A device as a mailbox sees it: a peer id and a certificate binding it to a Curve25519 key.
pub struct Recipient {
    pub key: Keypair,
    pub cert: DeviceCert,
    /// Its Olm account (to prove it holds its key when registering).
    pub device: Device,
}

impl Default for Recipient {
    fn default() -> Self {
        let key = Keypair::generate_ed25519();
        let device = Device::generate(&Identity::generate(), key.public().to_peer_id().to_bytes())
            .expect("device");
        Self {
            key,
            cert: device.cert().clone(),
            device,
        }
    }
}

impl Recipient {
    /// The key envelopes for this device are addressed to.
    pub fn curve(&self) -> kith_types::CurveKey {
        self.cert.curve25519
    }

    /// Connects as this device and registers with the mailbox `node`; returns the connected
    /// peer (drop it to go offline).
    pub async fn register(&self, node: PeerId, addr: &Multiaddr) -> MsgPeer {
        match self.try_register(node, addr).await {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        }
    }

    /// As [`Recipient::register`], or says why it failed.
    pub async fn try_register(&self, node: PeerId, addr: &Multiaddr) -> Result<MsgPeer, String> {
        let mut p = MsgPeer::try_connect(self.key.clone(), node, addr).await?;
        // The registration proves the device holds its key, with a pre-key of the mailbox.
        let bundle = match p.request(Request::ClaimPrekey).await {
            Ok(Response::Prekey(bundle)) => bundle,
            other => return Err(format!("pre-key claim refused: {other:?}")),
        };
        let binding = kith_proto::wire::registration_binding(
            &node.to_bytes(),
            &self.cert.peer_id,
            &self.cert.curve25519,
        );
        let proof = self.device.prove_key(&bundle, &binding).expect("proof");
        let req = Request::RegisterProven {
            cert: self.cert.clone(),
            token: None,
            proof,
        };
        match p.request(req).await {
            Ok(Response::Registered { .. } | Response::Registration { .. }) => Ok(p),
            other => Err(format!("registration refused: {other:?}")),
        }
    }
}

/// Distinct pseudo-random ciphertexts (the mailbox never opens them), from a seed.
pub struct Filler(u64);

impl Filler {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5851_f42d_4c95_7f2d)
    }

    /// splitmix64.
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// An envelope for `to` with a ciphertext of `min..=max` bytes.
    pub fn envelope(&mut self, to: kith_types::CurveKey, min: usize, max: usize) -> Envelope {
        let len = min + (self.next() as usize) % (max.saturating_sub(min) + 1);
        let mut ciphertext = Vec::with_capacity(len + 8);
        while ciphertext.len() < len {
            ciphertext.extend_from_slice(&self.next().to_le_bytes());
        }
        ciphertext.truncate(len.max(1));
        Envelope {
            to_device: to,
            kind: 1,
            ciphertext,
        }
    }
}
