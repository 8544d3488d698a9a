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
use kith_crypto::{Device, Identity, PeerSessions};
use kith_proto::record::DeviceCert;
use kith_proto::wire::{
    Body, DeliveryResult, Envelope, MAX_FRAME, PROTOCOL, Refusal, Request, Response, Sealed,
    registration_binding,
};
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
    b.add_mailbox(&[&m.code()]);
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

/// Deposits `envelopes` at the mailbox; each must be kept.
async fn deposit(eve: &mut Attacker, mailbox: &(PeerId, Multiaddr), envelopes: Vec<Envelope>) {
    let n = envelopes.len();
    match eve.ask(mailbox, Request::Deliver { envelopes }).await {
        Response::Delivered { results } => {
            assert_eq!(results, vec![DeliveryResult::Accepted; n], "deposits kept")
        }
        other => panic!("deposit: {other:?}"),
    }
}

/// How many items the node's outbox holds (a mailbox's kept mail included).
fn outbox(node: &Node) -> u64 {
    node.json(&["status"])[0]["outbox"].as_u64().unwrap()
}

/// Issue 14, hole 3: "a mailbox never drops kept mail on a device's `Undecryptable`". An
/// envelope Bob cannot open now (here: bytes no session of his opens) stays at his mailbox,
/// behind his other mail, instead of being deleted when Bob refuses it — its sender deleted
/// its own copy when the mailbox took it. Before the fix the mailbox dropped it.
#[test]
fn a_mailbox_keeps_mail_its_device_could_not_open() {
    let (m, a, mut b) = mailbox_alice_bob();
    let mailbox = peer_and_addr(&m);
    let rt = runtime();
    let mut eve = Attacker::new();
    let bob_curve = rt.block_on(async {
        match eve.ask(&peer_and_addr(&b), Request::ClaimPrekey).await {
            Response::Prekey(bundle) => bundle.cert.curve25519,
            other => panic!("claim: {other:?}"),
        }
    });
    b.stop();
    rt.block_on(deposit(
        &mut eve,
        &mailbox,
        vec![Envelope {
            to_device: bob_curve,
            kind: 1,
            ciphertext: vec![0x5a; 40],
        }],
    ));
    a.send("Bob", "behind it");
    wait_for(W, "Alice's message kept by the mailbox", || {
        (a.history("Bob").last()?["status"] == "sent").then_some(())
    });
    assert_eq!(outbox(&m), 2);
    b.start();
    // Both went to Bob in one batch: Alice's was taken, the other refused and kept.
    a.wait_status("Bob", 2, "delivered", W);
    wait_for(W, "the mailbox to settle", || {
        (outbox(&m) <= 1).then_some(())
    });
    assert_eq!(outbox(&m), 1, "the envelope Bob could not open is kept");
    let got = b.wait_received("Alice", 2, W);
    assert_eq!(got[1]["text"], "behind it");
}

/// Issue 14, hole 7: "Five bad envelopes relayed by a contact's mailbox strike the author,
/// never the mailbox." Eve writes to Bob once properly (so Bob knows her device), then sends
/// five envelopes that open but hold no valid sealed message, all through Bob's mailbox
/// while he is away. Bob strikes Eve's device for each, and never his mailbox. Before the
/// fix each struck the mailbox, and the fifth blocked it.
#[test]
fn bad_envelopes_relayed_by_a_mailbox_strike_their_author_not_the_mailbox() {
    let (m, _a, mut b) = mailbox_alice_bob();
    let mailbox = peer_and_addr(&m);
    let rt = runtime();
    let mut eve = Attacker::new();
    let bundle = rt.block_on(async {
        match eve.ask(&peer_and_addr(&b), Request::ClaimPrekey).await {
            Response::Prekey(bundle) => bundle,
            other => panic!("claim: {other:?}"),
        }
    });
    let mut s = PeerSessions::new(bundle.cert.curve25519);
    s.open_outbound(&eve.device, &bundle).unwrap();
    let hello = Sealed {
        version: 1,
        sender: Some(eve.device.cert().clone()),
        bodies: vec![Body::Text {
            id: 1,
            sent_at_ms: 1,
            text: "hello from Eve".into(),
        }],
    };
    let mut envelopes = vec![s.encrypt(&hello.encode().unwrap()).unwrap()];
    for i in 0..5u8 {
        envelopes.push(s.encrypt(&[0xee, i, 0xee, 0xee]).unwrap());
    }
    b.stop();
    rt.block_on(deposit(&mut eve, &mailbox, envelopes));
    assert_eq!(outbox(&m), 6);
    b.start();
    // The five bad ones were answered as malformed (and so dropped by the mailbox).
    wait_for(W, "the mailbox to hand everything over", || {
        (outbox(&m) == 0).then_some(())
    });
    let eve_id = eve.peer_id().to_string();
    let m_id = mailbox.0.to_string();
    let log = b.plain_logs();
    let struck: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("peer penalised"))
        .collect();
    assert!(
        !struck.iter().any(|l| l.contains(&m_id)),
        "the mailbox was struck:\n{}",
        struck.join("\n")
    );
    assert_eq!(
        struck.iter().filter(|l| l.contains(&eve_id)).count(),
        5,
        "each bad envelope strikes its author:\n{}",
        struck.join("\n")
    );
}

/// Issue 14, hole 3: "relayed envelopes find their session by an index, in constant work".
/// The index is by ratchet key, and the first envelope of a new ratchet chain carries a key
/// the recipient has not seen; the seal names its sender's Curve25519 key inside (a hint only
/// the recipient reads), so that envelope too finds its session in one lookup. Eve first
/// makes Bob hold sessions with 300 devices whose store keys sort before Alice's (first
/// messages from made-up devices, ground to sort first), so bounded trial decryption (the
/// first 256 devices by key) never reaches Alice. Then Alice's first message of a new chain
/// arrives through Bob's mailbox. Before the hint Bob answered it `Undecryptable` and never
/// showed it (the mailbox kept it for ever).
#[test]
fn the_first_relayed_envelope_of_a_new_chain_finds_its_session_past_256_others() {
    const FAKES: usize = 300;
    let (m, a, mut b) = mailbox_alice_bob();
    let bob = peer_and_addr(&b);
    let alice_key = kith_store::device_key(&peer_and_addr(&a).0.to_bytes());
    let rt = runtime();
    let mut eve = Attacker::new();
    rt.block_on(async {
        let mut envelopes = Vec::with_capacity(FAKES);
        for i in 0..FAKES {
            // A device whose store key (SHA-256 of its peer id) sorts before Alice's.
            let peer = loop {
                let p = PeerId::random();
                if kith_store::device_key(&p.to_bytes()) < alice_key {
                    break p;
                }
            };
            let identity = Identity::generate();
            let device = Device::generate(&identity, peer.to_bytes()).unwrap();
            // Bob hands one-time keys out 10 a minute; after that, his fallback key.
            let bundle = match eve.ask(&bob, Request::ClaimPrekey).await {
                Response::Prekey(bundle) => bundle,
                other => panic!("claim: {other:?}"),
            };
            let mut s = PeerSessions::new(bundle.cert.curve25519);
            s.open_outbound(&device, &bundle).unwrap();
            let hello = Sealed {
                version: 1,
                sender: Some(device.cert().clone()),
                bodies: vec![Body::Text {
                    id: 1000 + i as u128,
                    sent_at_ms: 1,
                    text: format!("hello {i}"),
                }],
            };
            envelopes.push(s.encrypt(&hello.encode().unwrap()).unwrap());
        }
        for chunk in envelopes.chunks(100) {
            match eve
                .ask(
                    &bob,
                    Request::Deliver {
                        envelopes: chunk.to_vec(),
                    },
                )
                .await
            {
                Response::Delivered { results } => assert!(
                    results.iter().all(|r| *r == DeliveryResult::Stored),
                    "Bob opens the made-up devices' first messages: {results:?}"
                ),
                other => panic!("deliver: {other:?}"),
            }
        }
    });
    // Alice's next message starts a new ratchet chain once she has read Bob's reply.
    b.send("Alice", "reply");
    b.wait_status("Alice", 1, "delivered", W);
    b.stop();
    a.send("Bob", "on a new chain");
    wait_for(W, "Alice's message kept by the mailbox", || {
        (a.history("Bob").last()?["status"] == "sent").then_some(())
    });
    assert_eq!(outbox(&m), 1);
    b.start();
    let got = b.wait_received("Alice", 2, W);
    assert_eq!(got[1]["text"], "on a new chain");
    a.wait_status("Bob", 2, "delivered", W);
}
