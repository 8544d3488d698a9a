//! What strangers can make a mailbox hold (issue 14, hole 7), against real `kith up
//! --mailbox` processes: clients written for the test from the project's crates register
//! devices of identities they make up, watch topics and set push endpoints, as an attacker
//! would. Invite tokens, devices per identity and in all, topics per device, and the
//! wake-up limit across new push endpoints.
//!
//! All traffic stays on 127.0.0.1.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use futures::StreamExt;
use kith_crypto::{Device, Identity};
use kith_net::codec::KithCodec;
use kith_proto::record::DeviceCert;
use kith_proto::wire::{
    DeliveryResult, Envelope, PROTOCOL, Refusal, RejectReason, Request, Response,
};
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, StreamProtocol, Swarm, identity, noise, tcp, yamux};

const T: Duration = Duration::from_secs(30);
const TOKEN: &str = "invite-123456";

/// A device made up by the test: its own libp2p key and a certificate from `identity`,
/// speaking `/kith/msg/1` with the project's codec.
struct Client {
    key: identity::Keypair,
    device: Device,
    cert: DeviceCert,
    swarm: Swarm<request_response::Behaviour<KithCodec>>,
    target: PeerId,
}

/// The mailbox's peer id and loopback address.
fn target(m: &Node) -> (PeerId, Multiaddr) {
    let addr: Multiaddr = m.p2p_addr().parse().unwrap();
    let Some(Protocol::P2p(peer)) = addr.iter().last() else {
        panic!("no /p2p/ in {addr}")
    };
    (peer, addr)
}

impl Client {
    /// A new device of `id`, connected to the mailbox `m`.
    async fn new(id: &Identity, m: &Node) -> Self {
        let key = identity::Keypair::generate_ed25519();
        let device = Device::generate(id, key.public().to_peer_id().to_bytes()).unwrap();
        let (target, addr) = target(m);
        Self::connect(key, device, target, addr).await
    }

    async fn connect(
        key: identity::Keypair,
        device: Device,
        target: PeerId,
        addr: Multiaddr,
    ) -> Self {
        let mut swarm = libp2p::SwarmBuilder::with_existing_identity(key.clone())
            .with_tokio()
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                yamux::Config::default,
            )
            .unwrap()
            .with_behaviour(|_| {
                request_response::Behaviour::with_codec(
                    KithCodec::default(),
                    [(StreamProtocol::new(PROTOCOL), ProtocolSupport::Outbound)],
                    request_response::Config::default().with_request_timeout(T),
                )
            })
            .unwrap()
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(300)))
            .build();
        swarm.dial(addr).unwrap();
        tokio::time::timeout(T, async {
            loop {
                match swarm.select_next_some().await {
                    SwarmEvent::ConnectionEstablished { peer_id, .. } if peer_id == target => {
                        break;
                    }
                    SwarmEvent::OutgoingConnectionError { error, .. } => {
                        panic!("cannot connect to the mailbox: {error}")
                    }
                    _ => {}
                }
            }
        })
        .await
        .expect("connected in time");
        Self {
            key,
            cert: device.cert().clone(),
            device,
            swarm,
            target,
        }
    }

    async fn ask(&mut self, req: Request) -> Response {
        let id = self
            .swarm
            .behaviour_mut()
            .send_request(&self.target, Ok(req));
        tokio::time::timeout(T, async {
            loop {
                if let SwarmEvent::Behaviour(ev) = self.swarm.select_next_some().await {
                    match ev {
                        request_response::Event::Message {
                            message:
                                request_response::Message::Response {
                                    request_id,
                                    response,
                                },
                            ..
                        } if request_id == id => return response,
                        request_response::Event::OutboundFailure {
                            request_id, error, ..
                        } if request_id == id => panic!("request failed: {error}"),
                        _ => {}
                    }
                }
            }
        })
        .await
        .expect("answered in time")
    }

    /// Registers, proving it holds its key with a pre-key of the mailbox
    /// (docs/protocol.md, "Mailbox registration").
    async fn register(&mut self, token: Option<&str>) -> Response {
        let bundle = match self.ask(Request::ClaimPrekey).await {
            Response::Prekey(bundle) => bundle,
            other => return other,
        };
        let binding = kith_proto::wire::registration_binding(
            &self.target.to_bytes(),
            &self.cert.peer_id,
            &self.cert.curve25519,
        );
        let proof = self.device.prove_key(&bundle, &binding).unwrap();
        self.ask(Request::RegisterProven {
            cert: self.cert.clone(),
            token: token.map(str::to_string),
            proof,
        })
        .await
    }
}

fn registered(r: &Response) -> bool {
    matches!(r, Response::Registration { .. })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// `n` group topics, distinct for each `salt`.
fn topics(salt: u8, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("kith/g/{salt:02x}{i:030x}"))
        .collect()
}

#[test]
fn an_invite_only_mailbox_refuses_registration_without_its_token() {
    let mut m = Node::new().with_args(&["--mailbox", "--mailbox-token", TOKEN]);
    m.start();
    runtime().block_on(async {
        let id = Identity::generate();
        let mut c = Client::new(&id, &m).await;
        assert_eq!(
            c.register(None).await,
            Response::Refused(Refusal::Unauthorized)
        );
        assert_eq!(
            c.register(Some("not-the-token")).await,
            Response::Refused(Refusal::Unauthorized)
        );
        let ok = c.register(Some(TOKEN)).await;
        assert!(registered(&ok), "{ok:?}");
    });
    // The real client: refused without the token, registered with it.
    let mut b = Node::new();
    b.start();
    let out = b.cli(&["mailbox", "add", &m.code()]);
    assert!(!out.status.success(), "registered without the token");
    let reg = b.add_mailbox(&[&m.code(), "--token", TOKEN]);
    assert!(reg[0]["quota"].as_u64().unwrap() > 0);
    assert!(!m.logs().contains(TOKEN), "the token leaked into the log");
}

#[test]
fn devices_per_identity_and_in_all_are_capped() {
    let mut m = Node::new().with_args(&[
        "--mailbox",
        "--mailbox-max-devices",
        "4",
        "--mailbox-devices-per-identity",
        "2",
    ]);
    m.start();
    runtime().block_on(async {
        let (x, y, z) = (
            Identity::generate(),
            Identity::generate(),
            Identity::generate(),
        );
        let mut x1 = Client::new(&x, &m).await;
        let mut x2 = Client::new(&x, &m).await;
        let mut x3 = Client::new(&x, &m).await;
        assert!(registered(&x1.register(None).await));
        assert!(registered(&x2.register(None).await));
        assert_eq!(
            x3.register(None).await,
            Response::Refused(Refusal::Busy),
            "a third device of one identity"
        );
        let mut y1 = Client::new(&y, &m).await;
        let mut y2 = Client::new(&y, &m).await;
        assert!(registered(&y1.register(None).await), "another identity");
        assert!(registered(&y2.register(None).await));
        let mut z1 = Client::new(&z, &m).await;
        assert_eq!(
            z1.register(None).await,
            Response::Refused(Refusal::Busy),
            "past the cap in all"
        );
        // A device registered already comes back (it registers on every connection).
        assert!(registered(&x1.register(None).await));
    });
}

#[test]
fn one_device_takes_no_more_than_its_share_of_watched_topics() {
    let mut m = Node::new().with_args(&["--mailbox", "--mailbox-topics-per-device", "4"]);
    m.start();
    runtime().block_on(async {
        let mut a = Client::new(&Identity::generate(), &m).await;
        assert!(registered(&a.register(None).await));
        assert_eq!(
            a.ask(Request::Watch {
                topics: topics(1, 5)
            })
            .await,
            Response::Refused(Refusal::Busy),
            "five topics only it watches, share four"
        );
        assert_eq!(
            a.ask(Request::Watch {
                topics: topics(1, 4)
            })
            .await,
            Response::Watching { topics: 4 }
        );
        // Topics another device watches cost nothing: four shared and four its own.
        let mut b = Client::new(&Identity::generate(), &m).await;
        assert!(registered(&b.register(None).await));
        let mut both = topics(1, 4);
        both.extend(topics(2, 4));
        assert_eq!(
            b.ask(Request::Watch { topics: both }).await,
            Response::Watching { topics: 8 }
        );
        let mut more = topics(1, 4);
        more.extend(topics(2, 5));
        assert_eq!(
            b.ask(Request::Watch { topics: more }).await,
            Response::Refused(Refusal::Busy)
        );
    });
}

/// Counts HTTP requests to a loopback push endpoint.
fn push_receiver() -> (String, Arc<Mutex<usize>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://127.0.0.1:{}/up/x", l.local_addr().unwrap().port());
    let got = Arc::new(Mutex::new(0));
    let g = got.clone();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut s) = conn else { return };
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            *g.lock().unwrap() += 1;
            let _ = s.write_all(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n");
        }
    });
    (url, got)
}

/// An anonymous deposit of a fresh envelope for the device with Curve25519 key `to`.
async fn deposit(sender: &mut Client, to: kith_types::CurveKey, n: &mut u8) {
    *n += 1;
    let env = Envelope {
        to_device: to,
        kind: 0,
        ciphertext: vec![*n; 64],
    };
    let r = sender
        .ask(Request::Deliver {
            envelopes: vec![env],
        })
        .await;
    assert!(matches!(r, Response::Delivered { .. }), "{r:?}");
}

#[test]
fn setting_a_push_endpoint_again_does_not_reset_the_wake_up_limit() {
    let (url, wakes) = push_receiver();
    let mut m = Node::new().with_args(&["--mailbox", "--push-allow-private", "--push-allow-http"]);
    m.start();
    runtime().block_on(async {
        let mut d = Client::new(&Identity::generate(), &m).await;
        assert!(registered(&d.register(None).await));
        let set = Request::SetPush {
            endpoint: Some(url.clone()),
        };
        assert_eq!(d.ask(set.clone()).await, Response::PushSet);
        let to = d.cert.curve25519;
        let mut sender = Client::new(&Identity::generate(), &m).await;
        let mut n = 0u8;
        // The device goes away; a deposit wakes it.
        let Client {
            key: d_key,
            device: d_device,
            swarm,
            ..
        } = d;
        drop(swarm);
        let start = std::time::Instant::now();
        while *wakes.lock().unwrap() == 0 {
            assert!(start.elapsed() < T, "no wake-up");
            deposit(&mut sender, to, &mut n).await;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        // Within the wake-up window (30 s) the device comes back, sets its endpoint again
        // and goes away: more deposits wake it no more.
        let (target, addr) = target(&m);
        let mut d = Client::connect(d_key, d_device, target, addr).await;
        assert!(registered(&d.register(None).await));
        assert_eq!(d.ask(set).await, Response::PushSet);
        drop(d);
        for _ in 0..8 {
            deposit(&mut sender, to, &mut n).await;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        assert!(
            start.elapsed() < Duration::from_secs(25),
            "too slow to test"
        );
    });
    assert_eq!(*wakes.lock().unwrap(), 1, "one wake-up per window");
}

/// Quotas hold inside one batch: a request of 16 envelopes for a device with room for 10
/// keeps exactly 10, then the byte quota cuts the next batch where it is reached, and a
/// second device's envelopes in the same requests count only against its own quota. (The
/// mailbox reads each device's counters once per transaction and keeps them in memory until
/// the commit: what it keeps must still be counted envelope by envelope.)
#[test]
fn a_batch_that_crosses_the_quota_is_cut_at_exactly_the_quota() {
    let mut m = Node::new().with_args(&[
        "--mailbox",
        "--mailbox-quota",
        "10",
        "--mailbox-quota-bytes",
        "2000",
    ]);
    m.start();
    runtime().block_on(async {
        // Two devices register and go away.
        let mut curves = Vec::new();
        for _ in 0..2 {
            let mut d = Client::new(&Identity::generate(), &m).await;
            assert!(registered(&d.register(None).await));
            curves.push(d.cert.curve25519);
        }
        let (a, b) = (curves[0], curves[1]);
        let mut sender = Client::new(&Identity::generate(), &m).await;
        let mut n = 0u32;
        let mut env = |to, size: usize| {
            n += 1;
            let mut ciphertext = n.to_le_bytes().to_vec();
            ciphertext.resize(size, 7);
            Envelope {
                to_device: to,
                kind: 0,
                ciphertext,
            }
        };
        let kept = |r: Response| match r {
            Response::Delivered { results } => results
                .iter()
                .map(|r| match r {
                    DeliveryResult::Accepted => 'k',
                    DeliveryResult::Rejected(RejectReason::MailboxFull) => 'F',
                    _ => '?',
                })
                .collect::<String>(),
            other => panic!("{other:?}"),
        };
        // 16 for a, interleaved with 2 for b: a keeps 10, b both.
        let mut envelopes: Vec<Envelope> = (0..16).map(|_| env(a, 100)).collect();
        envelopes.insert(3, env(b, 100));
        envelopes.push(env(b, 100));
        let r = sender.ask(Request::Deliver { envelopes }).await;
        assert_eq!(kept(r), "kkkkkkkkkkkFFFFFFk");
        // b has 200 bytes of 2,000: three of 500 fit, the fourth and fifth do not; a is
        // still full.
        let mut envelopes: Vec<Envelope> = (0..5).map(|_| env(b, 500)).collect();
        envelopes.push(env(a, 100));
        let r = sender.ask(Request::Deliver { envelopes }).await;
        assert_eq!(kept(r), "kkkFFF");
        // And in the next transaction, as committed.
        let r = sender
            .ask(Request::Deliver {
                envelopes: vec![env(b, 1), env(a, 1)],
            })
            .await;
        assert_eq!(kept(r), "kF");
    });
}
