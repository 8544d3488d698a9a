//! Issue 14, holes 2 and 3 (and the mailbox sentence of hole 7): attacks on a mailbox and on
//! the mail it relays, run by a modified client built from the project's own crates — a raw
//! libp2p peer that speaks `/kith/msg/1` with its own identity, device and Olm account —
//! against real `kith up` processes. All traffic stays on 127.0.0.1.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io;
use std::time::Duration;

use common::*;
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, StreamExt};
use kith_crypto::{Device, Identity};
use kith_proto::record::DeviceCert;
use kith_proto::wire::{MAX_FRAME, PROTOCOL, Refusal, Request, Response, registration_binding};
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, StreamProtocol, Swarm, noise, tcp, yamux};

const T: Duration = Duration::from_secs(30);
const W: Duration = Duration::from_secs(60);

/// Typed requests out (framed), raw response bytes back.
#[derive(Debug, Clone, Default)]
struct Codec;

impl request_response::Codec for Codec {
    type Protocol = StreamProtocol;
    type Request = Request;
    type Response = Vec<u8>;

    async fn read_request<S>(&mut self, _: &StreamProtocol, _: &mut S) -> io::Result<Request>
    where
        S: AsyncRead + Unpin + Send,
    {
        Err(io::Error::other("the attacker takes no requests"))
    }

    async fn read_response<S>(&mut self, _: &StreamProtocol, io: &mut S) -> io::Result<Vec<u8>>
    where
        S: AsyncRead + Unpin + Send,
    {
        let mut buf = Vec::new();
        io.take(MAX_FRAME as u64 + 5).read_to_end(&mut buf).await?;
        Ok(buf)
    }

    async fn write_request<S>(
        &mut self,
        _: &StreamProtocol,
        io: &mut S,
        req: Request,
    ) -> io::Result<()>
    where
        S: AsyncWrite + Unpin + Send,
    {
        let body = req.encode().map_err(io::Error::other)?;
        let mut out = (body.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(&body);
        io.write_all(&out).await
    }

    async fn write_response<S>(
        &mut self,
        _: &StreamProtocol,
        _: &mut S,
        _: Vec<u8>,
    ) -> io::Result<()>
    where
        S: AsyncWrite + Unpin + Send,
    {
        Err(io::Error::other("the attacker sends no responses"))
    }
}

/// The attacker: a libp2p peer (TCP, Noise, Yamux) with its own Kith identity and device.
struct Attacker {
    swarm: Swarm<request_response::Behaviour<Codec>>,
    identity: Identity,
    device: Device,
}

impl Attacker {
    fn new() -> Self {
        let swarm = libp2p::SwarmBuilder::with_new_identity()
            .with_tokio()
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                yamux::Config::default,
            )
            .expect("tcp transport")
            .with_behaviour(|_| {
                request_response::Behaviour::with_codec(
                    Codec,
                    [(StreamProtocol::new(PROTOCOL), ProtocolSupport::Outbound)],
                    request_response::Config::default()
                        .with_request_timeout(Duration::from_secs(20)),
                )
            })
            .expect("behaviour")
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(300)))
            .build();
        let identity = Identity::generate();
        let device = Device::generate(&identity, swarm.local_peer_id().to_bytes()).unwrap();
        Self {
            swarm,
            identity,
            device,
        }
    }

    fn peer_id(&self) -> PeerId {
        *self.swarm.local_peer_id()
    }

    /// Sends `req` to `target` at `addr` (a loopback address) and returns its answer.
    async fn ask(&mut self, (target, addr): &(PeerId, Multiaddr), req: Request) -> Response {
        use request_response::{Event, Message};
        assert!(
            addr.iter().any(|p| match p {
                Protocol::Ip4(ip) => ip.is_loopback(),
                Protocol::Ip6(ip) => ip.is_loopback(),
                _ => false,
            }),
            "refusing to dial a non-loopback address: {addr}"
        );
        self.swarm.add_peer_address(*target, addr.clone());
        let id = self.swarm.behaviour_mut().send_request(target, req);
        let swarm = &mut self.swarm;
        let got = tokio::time::timeout(T, async move {
            loop {
                match swarm.select_next_some().await {
                    SwarmEvent::Behaviour(Event::Message {
                        message:
                            Message::Response {
                                request_id,
                                response,
                            },
                        ..
                    }) if request_id == id => return Ok(response),
                    SwarmEvent::Behaviour(Event::OutboundFailure {
                        request_id, error, ..
                    }) if request_id == id => return Err(error.to_string()),
                    _ => {}
                }
            }
        })
        .await
        .unwrap_or_else(|_| Err("no answer in time".into()))
        .expect("an answer");
        assert!(got.len() >= 4, "a framed response");
        Response::decode(&got[4..]).expect("a well-formed response")
    }

    /// A certificate of the attacker's own identity naming this connection's peer id and
    /// someone else's keys.
    fn certify(&self, victim: &DeviceCert) -> DeviceCert {
        let mut cert = DeviceCert {
            identity: self.identity.public(),
            peer_id: self.peer_id().to_bytes(),
            curve25519: victim.curve25519,
            ed25519: victim.ed25519,
            created_ms: victim.created_ms + 1,
            signature: Vec::new(),
        };
        cert.signature = self.identity.sign(&cert.signing_bytes().unwrap());
        cert
    }
}

/// The peer id and a loopback address of a running node, from `kith --json id`.
fn peer_and_addr(node: &Node) -> (PeerId, Multiaddr) {
    let id = &node.json(&["id"])[0];
    let peer: PeerId = id["peer_id"].as_str().unwrap().parse().unwrap();
    let addr: Multiaddr = format!("{}/p2p/{peer}", node.listen_addr())
        .parse()
        .unwrap();
    (peer, addr)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// A mailbox M, Alice and Bob (registered with M), contacts who have talked once.
fn mailbox_alice_bob() -> (Node, Node, Node) {
    let mut m = Node::new().with_args(&["--mailbox"]);
    m.start();
    let boot = m.p2p_addr();
    let mut a = Node::new().with_args(&["--bootstrap", &boot]);
    let mut b = Node::new().with_args(&["--bootstrap", &boot]);
    a.start();
    b.start();
    b.json(&["mailbox", "add", &m.code()]);
    a.add(&b, "Bob");
    b.add(&a, "Alice");
    a.send("Bob", "warm up");
    a.wait_status("Bob", 1, "delivered", W);
    (m, a, b)
}

/// Issue 14, hole 2: "A mailbox slot can be hijacked." The attacker's own identity
/// certifies Bob's Curve25519 key under the attacker's peer id and registers it with Bob's
/// mailbox — unproven, and with a proof made by the attacker's own Olm account. Before the
/// fix the mailbox took it: mail deposited for Bob went to the attacker's slot and Bob never
/// got it. Now both are refused, and Bob gets every message exactly once.
#[test]
fn an_attacker_cannot_take_over_a_victims_mailbox_slot() {
    let (m, a, mut b) = mailbox_alice_bob();
    let mailbox = peer_and_addr(&m);
    let bob = peer_and_addr(&b);
    let rt = runtime();
    let mut eve = Attacker::new();
    // Bob's certificate is public (his pre-key bundle and user record carry it).
    let bob_cert = rt.block_on(async {
        match eve.ask(&bob, Request::ClaimPrekey).await {
            Response::Prekey(bundle) => bundle.cert,
            other => panic!("claim: expected a pre-key bundle, got {other:?}"),
        }
    });
    b.stop();
    let forged = eve.certify(&bob_cert);
    rt.block_on(async {
        let unproven = Request::Register {
            cert: forged.clone(),
            token: None,
        };
        assert_eq!(
            eve.ask(&mailbox, unproven).await,
            Response::Refused(Refusal::Invalid),
            "an unproven registration of Bob's key"
        );
        // A proof from the attacker's own account: it names the attacker's key, not Bob's.
        let bundle = match eve.ask(&mailbox, Request::ClaimPrekey).await {
            Response::Prekey(bundle) => bundle,
            other => panic!("claim at the mailbox: {other:?}"),
        };
        let binding =
            registration_binding(&mailbox.0.to_bytes(), &forged.peer_id, &forged.curve25519);
        let proof = eve.device.prove_key(&bundle, &binding).unwrap();
        let proven = Request::RegisterProven {
            cert: forged.clone(),
            token: None,
            proof,
        };
        assert_eq!(
            eve.ask(&mailbox, proven).await,
            Response::Refused(Refusal::Invalid),
            "a registration of Bob's key with the attacker's proof"
        );
    });
    // Mail for Bob while he is away: kept for him, not for the attacker.
    a.send("Bob", "one");
    a.send("Bob", "two");
    wait_for(W, "Alice's messages kept by the mailbox", || {
        let h = a.history("Bob");
        (h.len() == 3 && h.iter().skip(1).all(|m| m["status"] == "sent")).then_some(())
    });
    let st = &m.json(&["status"])[0];
    assert_eq!(st["mailbox_users"], 1, "only Bob's device is registered");
    b.start();
    a.wait_status("Bob", 3, "delivered", W);
    let got: Vec<String> = b
        .history("Alice")
        .iter()
        .filter(|m| m["from"] != "me")
        .map(|m| m["text"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(got, ["warm up", "one", "two"], "every message exactly once");
}
