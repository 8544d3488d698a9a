//! A flood: one hostile peer at ten times every rate limit while two honest nodes talk
//! (issue 14). Alice and Bob are `kith up` daemons on loopback (Bob also a mailbox,
//! `--mailbox`), contacts of each other and members of one group. The attacker is a raw
//! libp2p peer in this process with one peer id, speaking Kith's protocols with the node's
//! own codecs, aimed at Bob:
//!
//! - `/kith/msg/1` requests at 100/s (the limit is 600 a minute): junk envelopes for Bob's
//!   device, pre-key claims (the mailbox's limit is 10 a minute) each followed by a proven
//!   registration of a fresh device, and watches of topics;
//! - `/kith/signal/1` signals at 50/s (the limit is 5 a second): presence and profile asks;
//! - DHT records, valid and signed by fresh identities, put to Bob 10 a minute (the limit is
//!   60 an hour);
//! - gossipsub frames of junk at 100/s on every group topic Bob announces (a stranger's frame
//!   is invalid: the first costs the peer its gossip score).
//!
//! When Bob cuts the attacker off, it dials again at once (every 100 ms) with the same key;
//! with `KITH_FLOOD_SYBIL=1` it comes back with a fresh key instead (a new peer each time).
//!
//! Measured, in three phases of the same run (quiet, flood, quiet again): the latency of
//! Alice's messages to Bob (from `send` to Alice's "delivered" event: Bob committed it and
//! acknowledged), of her group messages (from `group.send` to Bob's event showing it), the
//! CPU time Bob used, and what the attacker got: answers served, refused as busy, cut off.
//!
//! Alice talks at a steady pace, a round (one message to Bob, one to the group) every 150 ms
//! (KITH_FLOOD_PACE_MS; 400 requests a minute to Bob: under the 600 a minute a stranger may
//! make, and Bob knows Alice, so she may make 6,000),
//! for KITH_FLOOD_SECS (60) in each phase. The attacker runs on a thread of its own, so its
//! work does not delay the stamping of the honest events.
//!
//! Run: `cargo bench -p kith --bench flood` (env: KITH_FLOOD_SECS, KITH_FLOOD_PACE_MS, KITH_FLOOD_WARMUP seconds
//! of flood before measuring (3), KITH_FLOOD_SYBIL). Prints its figures and whether flood
//! latency stayed within 2× of quiet; asserts nothing about time.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kith_api::Client;
use kith_api::methods::{self, SendParams};
use kith_crypto::{Device, Identity};
use kith_engine::command::{GroupCreateParams, GroupParams, GroupSendParams};
use kith_net::codec::{KithCodec, SignalCodec};
use kith_proto::record::{RecordDevice, UserRecord, user_record_key};
use kith_proto::signal::{Presence, Signal};
use kith_proto::wire::{PROTOCOL, Request, Response};
use kith_types::CurveKey;
use libp2p::identity::Keypair;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, StreamProtocol, Swarm, gossipsub, kad};
use support::events::*;
use support::peer::{Filler, node_addr, swarm};
use support::*;
use tokio::sync::mpsc;

/// What the attacker sends, each a tenth of a second's worth per tick of `TICK`.
const TICK: Duration = Duration::from_millis(10);
/// `/kith/msg/1` requests a second: ten times 600 a minute.
const REQUESTS_PER_SEC: u64 = 100;
/// Signals a second: ten times 5 a second.
const SIGNALS_PER_SEC: u64 = 50;
/// DHT records a minute: ten times 60 an hour.
const RECORDS_PER_MIN: u64 = 10;
/// Group frames a second on each topic (strangers may send none).
const FRAMES_PER_SEC: u64 = 100;

#[tokio::main]
async fn main() {
    let secs = Duration::from_secs(env_usize("KITH_FLOOD_SECS", 60) as u64);
    let warmup = Duration::from_secs(env_usize("KITH_FLOOD_WARMUP", 3) as u64);
    let sybil = std::env::var("KITH_FLOOD_SYBIL").is_ok_and(|v| v == "1");

    let a = daemon().await;
    let b = daemon_with(&["--mailbox"]).await;
    let mut ca = Client::connect(&sock(&a.dir)).await.unwrap();
    let mut cb = Client::connect(&sock(&b.dir)).await.unwrap();
    befriend(&mut ca, &mut cb).await;

    let (watch_a, mut delivered) = stamped(&a, delivered_ids).await;
    let (watch_b, mut received) = stamped(&b, group_message_texts).await;

    // The session, then the group (Bob joins it when Alice's update reaches him).
    let id = send(&mut ca, "warm up".into()).await;
    wait_for(&mut delivered, &id).await;
    ca.call::<methods::GroupCreate>(GroupCreateParams {
        name: "Flood".into(),
        members: vec!["Bob".into()],
    })
    .await
    .unwrap();
    let start = Instant::now();
    while cb
        .call::<methods::GroupInfo>(GroupParams {
            group: "Flood".into(),
        })
        .await
        .is_err()
    {
        assert!(start.elapsed() < T, "Bob never joined the group");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    group_send(&mut ca, "group warm up".into()).await;
    wait_for(&mut received, "group warm up").await;

    let mut run = Phases {
        ca: &mut ca,
        delivered: &mut delivered,
        received: &mut received,
        bob: b.pid(),
        secs,
        pace: Duration::from_millis(env_usize("KITH_FLOOD_PACE_MS", PACE_MS) as u64),
    };
    let quiet = run.measure("quiet").await;

    let (bob_peer, bob_addr) = node_addr(&b).await;
    let stats = Arc::new(Stats::default());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let attacker = {
        let stats = stats.clone();
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(flood(bob_peer, bob_addr, sybil, stats, stop_rx))
        })
    };
    tokio::time::sleep(warmup).await;
    let flooded = run.measure("flood").await;
    let flood_secs = stats.since_start().as_secs_f64();
    stop_tx.send_replace(true);
    tokio::task::spawn_blocking(move || attacker.join().unwrap())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = run.measure("quiet again").await;

    println!(
        "\nattacker ({}), over {flood_secs:.1} s:",
        if sybil {
            "a fresh key each time it is cut off"
        } else {
            "one peer id"
        }
    );
    stats.print(flood_secs);
    for (what, pick) in [
        ("1:1 send→delivered", 0usize),
        ("group send→received", 1usize),
    ] {
        let q = [&quiet.lat[pick], &after.lat[pick]];
        let f = &flooded.lat[pick];
        for p in [0.50, 0.95] {
            let quiet_ms = q.iter().map(|l| ms(pct(l, p))).fold(0.0, f64::max);
            let flood_ms = ms(pct(f, p));
            println!(
                "{what} p{:.0}: quiet {quiet_ms:.2} ms (the worse of the two quiet phases), flood {flood_ms:.2} ms: {:.2}× ({})",
                p * 100.0,
                flood_ms / quiet_ms,
                if flood_ms <= 2.0 * quiet_ms {
                    "within 2×"
                } else {
                    "OVER 2×"
                }
            );
        }
    }
    println!(
        "Bob's CPU: quiet {:.1} ms/s, flood {:.1} ms/s, quiet again {:.1} ms/s",
        quiet.cpu_per_sec(),
        flooded.cpu_per_sec(),
        after.cpu_per_sec()
    );
    watch_a.abort();
    watch_b.abort();
}

/// How long the benchmark waits for anything.
const T: Duration = Duration::from_secs(60);

/// One phase's figures.
struct Phase {
    /// Latencies: 1:1 (send → delivered), group (send → Bob's event); sorted.
    lat: [Vec<Duration>; 2],
    /// Bob's CPU time over the phase.
    cpu: Duration,
    wall: Duration,
}

impl Phase {
    fn cpu_per_sec(&self) -> f64 {
        ms(self.cpu) / self.wall.as_secs_f64()
    }
}

struct Phases<'a> {
    ca: &'a mut Client,
    delivered: &'a mut mpsc::Receiver<(String, Instant)>,
    received: &'a mut mpsc::Receiver<(String, Instant)>,
    bob: u32,
    secs: Duration,
    pace: Duration,
}

/// One round of Alice's talk each this often, by default (KITH_FLOOD_PACE_MS).
const PACE_MS: usize = 150;

impl Phases<'_> {
    /// Rounds every `pace` for `secs`: a message to Bob, then one to the group.
    async fn measure(&mut self, name: &str) -> Phase {
        let cpu0 = cpu_sum(&[self.bob]);
        let t0 = Instant::now();
        let mut one = Vec::new();
        let mut group = Vec::new();
        let mut pace = tokio::time::interval(self.pace);
        pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut i = 0;
        while t0.elapsed() < self.secs {
            pace.tick().await;
            i += 1;
            let t = Instant::now();
            let id = send(self.ca, format!("{name} {i}")).await;
            one.push(wait_for(self.delivered, &id).await - t);
            let text = format!("{name} group {i}");
            let t = Instant::now();
            group_send(self.ca, text.clone()).await;
            group.push(wait_for(self.received, &text).await - t);
        }
        let phase = Phase {
            cpu: cpu_sum(&[self.bob]).saturating_sub(cpu0),
            wall: t0.elapsed(),
            lat: [one, group],
        };
        print_latency(&format!("{name:<11} 1:1  "), i, &mut phase.lat[0].clone());
        print_latency(&format!("{name:<11} group"), i, &mut phase.lat[1].clone());
        let mut phase = phase;
        phase.lat.iter_mut().for_each(|l| l.sort());
        phase
    }
}

async fn send(c: &mut Client, text: String) -> String {
    c.call::<methods::Send>(SendParams {
        to: "Bob".into(),
        text,
    })
    .await
    .unwrap()
    .id
}

async fn group_send(c: &mut Client, text: String) {
    c.call::<methods::GroupSend>(GroupSendParams {
        group: "Flood".into(),
        text,
    })
    .await
    .unwrap();
}

/// What the attacker did and got, counted as it goes.
#[derive(Default)]
struct Stats {
    started: std::sync::OnceLock<Instant>,
    requests: AtomicU64,
    served: AtomicU64,
    busy: AtomicU64,
    refused: AtomicU64,
    failed: AtomicU64,
    registered: AtomicU64,
    signals: AtomicU64,
    signals_taken: AtomicU64,
    records: AtomicU64,
    frames: AtomicU64,
    connections: AtomicU64,
    cut_off: AtomicU64,
    dials_failed: AtomicU64,
    not_sent: AtomicU64,
    keys: AtomicU64,
    /// When Bob first closed the attacker's connection (ms after the flood began, plus one).
    first_cut_ms: AtomicU64,
}

impl Stats {
    fn add(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    fn since_start(&self) -> Duration {
        self.started.get().map(|s| s.elapsed()).unwrap_or_default()
    }

    fn print(&self, secs: f64) {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        println!(
            "  requests sent {} ({:.0}/s): answered {} (registrations accepted {}), busy {}, refused otherwise {}, failed or cut {}",
            g(&self.requests),
            g(&self.requests) as f64 / secs,
            g(&self.served),
            g(&self.registered),
            g(&self.busy),
            g(&self.refused),
            g(&self.failed)
        );
        println!(
            "  signals sent {} ({:.0}/s), taken {}; DHT records put {}; group frames published {}",
            g(&self.signals),
            g(&self.signals) as f64 / secs,
            g(&self.signals_taken),
            g(&self.records),
            g(&self.frames)
        );
        println!(
            "  connections {}, closed by Bob {} (first after {}), dials refused {}, would-be sends while cut off {}, keys used {}",
            g(&self.connections),
            g(&self.cut_off),
            match g(&self.first_cut_ms) {
                0 => "never".to_string(),
                t => format!("{:.1} s", (t - 1) as f64 / 1000.0),
            },
            g(&self.dials_failed),
            g(&self.not_sent),
            g(&self.keys)
        );
    }
}

#[derive(NetworkBehaviour)]
struct Hostile {
    msg: request_response::Behaviour<KithCodec>,
    signal: request_response::Behaviour<SignalCodec>,
    kad: kad::Behaviour<kad::store::MemoryStore>,
    gossip: kith_net::gossip::Gossip,
}

fn hostile_swarm(key: Keypair) -> Swarm<Hostile> {
    swarm(key, |k| {
        let peer = k.public().to_peer_id();
        let rr = |p: &'static str| {
            (
                [(StreamProtocol::new(p), ProtocolSupport::Full)],
                request_response::Config::default()
                    .with_request_timeout(Duration::from_secs(10))
                    .with_max_concurrent_streams(1024),
            )
        };
        let (msg_p, msg_c) = rr(PROTOCOL);
        let (sig_p, sig_c) = rr(kith_proto::signal::SIGNAL_PROTOCOL);
        Hostile {
            msg: request_response::Behaviour::with_codec(KithCodec::default(), msg_p, msg_c),
            signal: request_response::Behaviour::with_codec(SignalCodec::default(), sig_p, sig_c),
            kad: kad::Behaviour::with_config(
                peer,
                kad::store::MemoryStore::new(peer),
                kad::Config::new(StreamProtocol::new("/kith/kad/1")),
            ),
            gossip: kith_net::gossip::behaviour(k, None).expect("gossipsub"),
        }
    })
}

/// A valid user record of a fresh identity, as anyone may make.
fn fresh_record() -> kad::Record {
    let identity = Identity::generate();
    let device = Device::generate(&identity, PeerId::random().to_bytes()).expect("device");
    let issued = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let mut rec = UserRecord {
        version: 1,
        identity: identity.public(),
        devices: vec![RecordDevice {
            cert: device.cert().clone(),
            addrs: Vec::new(),
            mailboxes: Vec::new(),
            prekey: None,
        }],
        issued_ms: issued,
        expires_ms: issued + 3_600_000,
        signature: Vec::new(),
    };
    rec.signature = identity.sign(&rec.signing_bytes().unwrap());
    kad::Record::new(
        user_record_key(&identity.public()),
        kith_proto::codec::encode(&rec).unwrap(),
    )
}

/// Floods `bob` until `stop` turns true; see the module docs.
async fn flood(
    bob: PeerId,
    addr: Multiaddr,
    sybil: bool,
    stats: Arc<Stats>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let _ = stats.started.set(Instant::now());
    let plain: Multiaddr = addr
        .iter()
        .filter(|p| !matches!(p, libp2p::multiaddr::Protocol::P2p(_)))
        .collect();
    let mut swarm = hostile_swarm(Keypair::generate_ed25519());
    Stats::add(&stats.keys);
    swarm.behaviour_mut().kad.add_address(&bob, plain.clone());
    swarm.dial(addr.clone()).unwrap();
    let mut connected = false;
    let mut curve: Option<CurveKey> = None;
    let mut topics: Vec<gossipsub::IdentTopic> = Vec::new();
    let mut filler = Filler::new(7);
    let mut tick = tokio::time::interval(TICK);
    let mut redial = tokio::time::interval(Duration::from_millis(100));
    let mut i: u64 = 0;
    // Per tick: requests, signals and frames a hundredth of their rate a second; a record
    // every 6 s.
    let per_tick = |rate: u64, i: u64| (rate * (i + 1)) / 100 - (rate * i) / 100;
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = redial.tick(), if !connected => {
                if sybil && stats.cut_off.load(Ordering::Relaxed) >= stats.keys.load(Ordering::Relaxed) {
                    swarm = hostile_swarm(Keypair::generate_ed25519());
                    Stats::add(&stats.keys);
                    swarm.behaviour_mut().kad.add_address(&bob, plain.clone());
                    topics.clear();
                }
                let _ = swarm.dial(addr.clone());
            }
            _ = tick.tick() => {
                i += 1;
                let sends = per_tick(REQUESTS_PER_SEC, i) + per_tick(SIGNALS_PER_SEC, i)
                    + per_tick(FRAMES_PER_SEC, i) * topics.len() as u64;
                if !connected {
                    stats.not_sent.fetch_add(sends, Ordering::Relaxed);
                    continue;
                }
                let b = swarm.behaviour_mut();
                for k in 0..per_tick(REQUESTS_PER_SEC, i) {
                    let req = match (curve, (i + k) % 3) {
                        (Some(to), 0) => Request::Deliver { envelopes: vec![filler.envelope(to, 200, 500)] },
                        (_, 2) => Request::Watch { topics: vec![format!("kith/g/{:032x}", i * 7 + k)] },
                        _ => Request::ClaimPrekey,
                    };
                    b.msg.send_request(&bob, Ok(req));
                    Stats::add(&stats.requests);
                }
                for k in 0..per_tick(SIGNALS_PER_SEC, i) {
                    let sig = if (i + k).is_multiple_of(2) {
                        Signal::Presence(Presence { online: true, last_seen_ms: None, profile_version: i })
                    } else {
                        Signal::GetProfile
                    };
                    b.signal.send_request(&bob, Ok(sig));
                    Stats::add(&stats.signals);
                }
                for t in &topics {
                    for _ in 0..per_tick(FRAMES_PER_SEC, i) {
                        let junk = filler.envelope(CurveKey::from([0; 32]), 100, 300).ciphertext;
                        if b.gossip.publish(t.clone(), junk).is_ok() {
                            Stats::add(&stats.frames);
                        }
                    }
                }
                if i.is_multiple_of(6000 / RECORDS_PER_MIN.max(1)) {
                    b.kad.put_record_to(fresh_record(), std::iter::once(bob), kad::Quorum::One);
                    Stats::add(&stats.records);
                }
            }
            ev = swarm.select_next_some() => match ev {
                SwarmEvent::ConnectionEstablished { peer_id, .. } if peer_id == bob => {
                    connected = true;
                    Stats::add(&stats.connections);
                }
                SwarmEvent::ConnectionClosed { peer_id, num_established: 0, .. } if peer_id == bob => {
                    connected = false;
                    Stats::add(&stats.cut_off);
                    let at = stats.since_start().as_millis() as u64 + 1;
                    let _ = stats.first_cut_ms.compare_exchange(0, at, Ordering::Relaxed, Ordering::Relaxed);
                }
                SwarmEvent::OutgoingConnectionError { .. } => Stats::add(&stats.dials_failed),
                SwarmEvent::Behaviour(HostileEvent::Msg(request_response::Event::Message {
                    message: request_response::Message::Response { response, .. }, ..
                })) => match response {
                    Response::Prekey(bundle) => {
                        Stats::add(&stats.served);
                        curve = Some(bundle.cert.curve25519);
                        // A fresh device proves its key with the bundle and registers.
                        let identity = Identity::generate();
                        let me = *swarm.local_peer_id();
                        let device = Device::generate(&identity, me.to_bytes()).expect("device");
                        let binding = kith_proto::wire::registration_binding(
                            &bob.to_bytes(), &device.cert().peer_id, &device.cert().curve25519);
                        if let Ok(proof) = device.prove_key(&bundle, &binding) {
                            swarm.behaviour_mut().msg.send_request(&bob, Ok(Request::RegisterProven {
                                cert: device.cert().clone(), token: None, proof,
                            }));
                            Stats::add(&stats.requests);
                        }
                    }
                    Response::Registered { .. } | Response::Registration { .. } => {
                        Stats::add(&stats.served);
                        Stats::add(&stats.registered);
                    }
                    Response::Refused(kith_proto::wire::Refusal::Busy) => Stats::add(&stats.busy),
                    Response::Refused(_) => Stats::add(&stats.refused),
                    _ => Stats::add(&stats.served),
                },
                SwarmEvent::Behaviour(HostileEvent::Msg(request_response::Event::OutboundFailure { .. })) => {
                    Stats::add(&stats.failed)
                }
                SwarmEvent::Behaviour(HostileEvent::Signal(request_response::Event::Message {
                    message: request_response::Message::Response { response, .. }, ..
                })) if !matches!(response, kith_proto::signal::SignalAnswer::Ignored) => {
                    Stats::add(&stats.signals_taken);
                }
                SwarmEvent::Behaviour(HostileEvent::Gossip(gossipsub::Event::Subscribed { peer_id, topic })) if peer_id == bob => {
                    let t = gossipsub::IdentTopic::new(topic.into_string());
                    let _ = swarm.behaviour_mut().gossip.subscribe(&t);
                    if !topics.iter().any(|k| k.hash() == t.hash()) {
                        topics.push(t);
                    }
                }
                _ => {}
            }
        }
    }
}
