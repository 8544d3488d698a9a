//! Bad input: a raw libp2p peer written for the test sends malformed, oversized and replayed
//! frames; the node keeps running, answers other peers normally and logs a typed error.
//!
//! And: the plaintext of a message never appears in the bytes on the wire (a recording TCP
//! proxy sits between two nodes).
//!
//! All traffic stays on 127.0.0.1.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, StreamExt};
use kith_proto::contact::ContactCard;
use kith_proto::wire::{
    DeliveryResult, Envelope, MAX_FRAME, PROTOCOL, Refusal, RejectReason, Request, Response,
    WIRE_VERSION,
};
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, StreamProtocol, Swarm, noise, tcp, yamux};

const T: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// The raw peer
// ---------------------------------------------------------------------------------------------

/// Raw bytes both ways: the test writes exactly the bytes it wants on a `/kith/msg/1` stream
/// (length prefix included, or not) and reads back whatever the node writes before it closes.
#[derive(Debug, Clone, Default)]
struct RawCodec;

impl request_response::Codec for RawCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<S>(&mut self, _: &StreamProtocol, _: &mut S) -> io::Result<Vec<u8>>
    where
        S: AsyncRead + Unpin + Send,
    {
        Err(io::Error::other("the raw test peer takes no requests"))
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
        req: Vec<u8>,
    ) -> io::Result<()>
    where
        S: AsyncWrite + Unpin + Send,
    {
        // The request-response handler closes our side of the stream afterwards.
        io.write_all(&req).await
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
        Err(io::Error::other("the raw test peer takes no requests"))
    }
}

/// A libp2p peer (TCP, Noise, Yamux) that speaks `/kith/msg/1` only as raw bytes.
struct RawPeer {
    swarm: Swarm<request_response::Behaviour<RawCodec>>,
    target: PeerId,
}

impl RawPeer {
    /// Connects to `target` at `addr`, which must be a loopback address.
    async fn connect(target: PeerId, addr: Multiaddr) -> Self {
        assert!(
            addr.iter().any(|p| match p {
                Protocol::Ip4(ip) => ip.is_loopback(),
                Protocol::Ip6(ip) => ip.is_loopback(),
                _ => false,
            }),
            "refusing to dial a non-loopback address: {addr}"
        );
        let mut swarm = libp2p::SwarmBuilder::with_new_identity()
            .with_tokio()
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                yamux::Config::default,
            )
            .expect("tcp transport")
            .with_behaviour(|_| {
                request_response::Behaviour::with_codec(
                    RawCodec,
                    [(StreamProtocol::new(PROTOCOL), ProtocolSupport::Outbound)],
                    request_response::Config::default()
                        .with_request_timeout(Duration::from_secs(20)),
                )
            })
            .expect("behaviour")
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(300)))
            .build();
        swarm.dial(addr.clone()).expect("dial the node");
        tokio::time::timeout(T, async {
            loop {
                match swarm.select_next_some().await {
                    SwarmEvent::ConnectionEstablished { peer_id, .. } if peer_id == target => {
                        break;
                    }
                    SwarmEvent::OutgoingConnectionError { error, .. } => {
                        panic!("raw peer cannot connect to {addr}: {error}")
                    }
                    _ => {}
                }
            }
        })
        .await
        .expect("raw peer connects in time");
        Self { swarm, target }
    }

    fn peer_id(&self) -> PeerId {
        *self.swarm.local_peer_id()
    }

    /// Opens a `/kith/msg/1` stream, writes `bytes`, closes the write side and returns what the
    /// node wrote back until it closed the stream, or why the stream failed.
    async fn exchange(&mut self, bytes: Vec<u8>) -> Result<Vec<u8>, String> {
        use request_response::{Event, Message};
        let target = self.target;
        let id = self.swarm.behaviour_mut().send_request(&target, bytes);
        let swarm = &mut self.swarm;
        tokio::time::timeout(T, async move {
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
    }

    /// Sends `bytes` and expects a well-formed response frame back.
    async fn request(&mut self, what: &str, bytes: Vec<u8>) -> Response {
        let got = self
            .exchange(bytes)
            .await
            .unwrap_or_else(|e| panic!("{what}: no response from the node: {e}"));
        unframe_response(&got).unwrap_or_else(|e| panic!("{what}: bad response: {e}"))
    }

    /// Sends `bytes` and expects the node to refuse the request as a whole with a typed
    /// `Refused(Invalid)` answer.
    async fn refused(&mut self, what: &str, bytes: Vec<u8>) {
        match self.exchange(bytes).await {
            Ok(b) => assert_eq!(
                unframe_response(&b),
                Ok(Response::Refused(Refusal::Invalid)),
                "{what}: a bad frame must get a typed refusal"
            ),
            Err(e) => panic!("{what}: expected a typed refusal, the stream failed: {e}"),
        }
    }

    /// Like [`RawPeer::refused`], but the node may also cut the connection (the strike that
    /// gets the peer blocked).
    async fn refused_or_cut(&mut self, what: &str, bytes: Vec<u8>) {
        match self.exchange(bytes).await {
            Ok(b) => assert_eq!(
                unframe_response(&b),
                Ok(Response::Refused(Refusal::Invalid)),
                "{what}: a bad frame must get a typed refusal"
            ),
            Err(e) => eprintln!("{what}: connection cut: {e}"),
        }
    }
}

/// `[u32 BE length][body]`.
fn framed(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

fn unframe_response(bytes: &[u8]) -> Result<Response, String> {
    if bytes.len() < 4 {
        return Err(format!("{} bytes, no length prefix", bytes.len()));
    }
    let (len, body) = bytes.split_at(4);
    let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
    if len != body.len() {
        return Err(format!("length prefix {len}, body {} bytes", body.len()));
    }
    Response::decode(body).map_err(|e| e.to_string())
}

/// The peer id and a loopback address of a running node, from `kith --json id`.
fn peer_and_addr(node: &Node) -> (PeerId, Multiaddr) {
    let id = &node.json(&["id"])[0];
    let peer: PeerId = id["peer_id"]
        .as_str()
        .expect("peer_id")
        .parse()
        .expect("peer id parses");
    let addr = id["addrs"]
        .as_array()
        .expect("addrs")
        .iter()
        .filter_map(|a| a.as_str()?.parse::<Multiaddr>().ok())
        .find(|a| {
            a.iter()
                .any(|p| matches!(p, Protocol::Ip4(ip) if ip.is_loopback()))
        })
        .unwrap_or_else(|| {
            format!("{}/p2p/{peer}", node.listen_addr())
                .parse()
                .expect("addr")
        });
    (peer, addr)
}

/// The peak virtual memory of a process, in kB (Linux only).
fn vm_peak_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmPeak:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn assert_alive(node: &mut Node, after: &str) {
    let logs = node.logs();
    let child = node.child.as_mut().expect("node was started");
    match child.try_wait() {
        Ok(None) => {}
        Ok(Some(status)) => panic!("the node died after {after}: {status}\n{logs}"),
        Err(e) => panic!("cannot check the node after {after}: {e}"),
    }
}

/// Bad frames (a) to (c): each must be refused from its bytes alone, with a typed refusal.
async fn send_bad_frames(raw: &mut RawPeer) {
    // (a) A length prefix claiming 2^31 bytes, then a few bytes and the end of the stream.
    // The node must refuse it from the prefix alone, before allocating.
    let mut oversized = (1u32 << 31).to_be_bytes().to_vec();
    oversized.extend_from_slice(&[WIRE_VERSION, 0, 0, 0]);
    raw.refused("oversized frame", oversized).await;

    // (b) The right length, a known version byte, and a garbage body.
    raw.refused("garbage body", garbage_frame()).await;

    // (c) A well-formed claim under an unknown version byte.
    let mut unknown = Request::ClaimPrekey.encode().expect("encode");
    unknown[0] = 9;
    raw.refused("unknown version", framed(&unknown)).await;
}

fn garbage_frame() -> Vec<u8> {
    let mut garbage = vec![WIRE_VERSION];
    garbage.extend((0u8..200).map(|i| i.wrapping_mul(37) ^ 0xde));
    framed(&garbage)
}

fn claim_frame() -> Vec<u8> {
    framed(&Request::ClaimPrekey.encode().expect("encode"))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Waits until `node`'s log (colours removed) satisfies `ok`; panics with the log otherwise.
fn wait_log(node: &Node, what: &str, ok: impl Fn(&str) -> bool) -> String {
    let start = std::time::Instant::now();
    loop {
        let log = node.plain_logs();
        if ok(&log) {
            return log;
        }
        if start.elapsed() > T {
            panic!("timed out after {T:?} waiting for {what} in the node's log:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn malformed_oversized_and_replayed_frames_are_refused_and_the_node_keeps_serving() {
    let (a, mut b) = pair();
    let (bob_peer, bob_addr) = peer_and_addr(&b);
    let bob_pid = b.child.as_ref().expect("bob runs").id();
    let peak_before = vm_peak_kb(bob_pid);

    let rt = runtime();
    rt.block_on(async {
        let mut raw = RawPeer::connect(bob_peer, bob_addr).await;

        // A well-formed claim first: it tells us Bob's device key, so the envelopes below get
        // past the "wrong device" check and into decryption.
        let bundle = match raw.request("claim", claim_frame()).await {
            Response::Prekey(bundle) => bundle,
            other => panic!("claim: expected a pre-key bundle, got {other:?}"),
        };

        // (a) oversized, (b) garbage body, (c) unknown version: typed refusals.
        send_bad_frames(&mut raw).await;

        // (d) A well-formed delivery whose envelope is for Bob's device but is not Olm.
        let deliver = framed(
            &Request::Deliver {
                envelopes: vec![Envelope {
                    to_device: bundle.cert.curve25519,
                    kind: 0,
                    ciphertext: (0u8..=255).rev().cycle().take(300).collect(),
                }],
            }
            .encode()
            .expect("encode"),
        );
        let expected = vec![DeliveryResult::Rejected(RejectReason::Undecryptable)];
        match raw.request("garbage envelope", deliver.clone()).await {
            Response::Delivered { results } => assert_eq!(results, expected),
            other => panic!("garbage envelope: expected per-envelope results, got {other:?}"),
        }

        // (e) The same frame again (a replay): refused the same way, not stored as a duplicate.
        match raw.request("replayed envelope", deliver).await {
            Response::Delivered { results } => assert_eq!(results, expected),
            other => panic!("replayed envelope: expected per-envelope results, got {other:?}"),
        }

        // The node still serves this peer on the same connection.
        match raw.request("claim after bad frames", claim_frame()).await {
            Response::Prekey(again) => assert_eq!(again.cert, bundle.cert),
            other => panic!("claim after bad frames: expected a bundle, got {other:?}"),
        }
    });
    drop(rt);

    assert_alive(&mut b, "bad frames");

    // Refused before allocation: the 2 GiB claim never showed up in Bob's address space.
    if let (Some(before), Some(after)) = (peak_before, vm_peak_kb(bob_pid)) {
        assert!(
            after.saturating_sub(before) < 1024 * 1024,
            "Bob's peak virtual memory grew from {before} kB to {after} kB"
        );
    }

    // Other peers are served normally.
    let id = a.send("Bob", "still there?");
    let got = b.wait_received("Alice", 1, T);
    assert_eq!(got[0]["text"], "still there?");
    assert_eq!(got[0]["id"], id.as_str());
    a.wait_status("Bob", 1, "delivered", T);
    assert_alive(&mut b, "the normal exchange");
}

#[test]
fn bad_frames_are_logged_as_typed_errors_and_a_repeat_offender_is_blocked() {
    let mut node = Node::new();
    node.start();
    let (peer, addr) = peer_and_addr(&node);
    let rt = runtime();
    let mut raw = rt.block_on(async {
        let mut raw = RawPeer::connect(peer, addr).await;
        send_bad_frames(&mut raw).await;
        raw
    });
    let raw_id = raw.peer_id().to_string();

    // Each bad frame is logged as a typed error naming the raw peer, and counted against it.
    let too_large = format!(
        "bad frame: input of {} bytes is over the {MAX_FRAME}-byte limit",
        1u64 << 31
    );
    let wanted = [
        too_large.as_str(),
        "bad frame: malformed input",
        "bad frame: unsupported version 9",
    ];
    let logged = |log: &str, w: &str| {
        log.lines()
            .any(|l| l.contains("malformed request") && l.contains(&raw_id) && l.contains(w))
    };
    wait_log(&node, "a typed error for each bad frame", |log| {
        wanted.iter().all(|w| logged(log, w))
    });
    wait_log(&node, "penalties for the raw peer", |log| {
        log.lines()
            .filter(|l| l.contains("peer penalised") && l.contains(&raw_id))
            .count()
            >= 3
    });

    // Two more make five strikes: the peer is cut off and blocked.
    rt.block_on(async {
        raw.refused("garbage body (4)", garbage_frame()).await;
        raw.refused_or_cut("garbage body (5)", garbage_frame())
            .await;
    });
    wait_log(&node, "the raw peer blocked", |log| {
        log.lines()
            .any(|l| l.contains("peer blocked") && l.contains(&raw_id))
    });
    let start = std::time::Instant::now();
    rt.block_on(async {
        while raw.exchange(claim_frame()).await.is_ok() {
            assert!(
                start.elapsed() < T,
                "the blocked peer is still served after {T:?}"
            );
        }
    });
    assert_alive(&mut node, "blocking a peer");
}

// ---------------------------------------------------------------------------------------------
// The recording proxy
// ---------------------------------------------------------------------------------------------

/// What one proxied connection carried: `up` from the dialer to the target, `down` back.
#[derive(Debug, Default)]
struct Recorded {
    up: Vec<u8>,
    down: Vec<u8>,
}

/// A TCP proxy on 127.0.0.1 that forwards to 127.0.0.1:`target` and records every byte.
struct Proxy {
    port: u16,
    conns: Arc<Mutex<Vec<Recorded>>>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    fn start(target: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy bind");
        let port = listener.local_addr().expect("proxy addr").port();
        let conns: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (c, s) = (conns.clone(), stop.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                let idx = {
                    let mut all = c.lock().expect("lock");
                    all.push(Recorded::default());
                    all.len() - 1
                };
                let (Ok(client2), Ok(server2)) = (client.try_clone(), server.try_clone()) else {
                    continue;
                };
                let (c1, c2) = (c.clone(), c.clone());
                std::thread::spawn(move || pump(client, server, &c1, idx, true));
                std::thread::spawn(move || pump(server2, client2, &c2, idx, false));
            }
        });
        Self { port, conns, stop }
    }

    fn addr(&self) -> Multiaddr {
        format!("/ip4/127.0.0.1/tcp/{}", self.port)
            .parse()
            .expect("proxy multiaddr")
    }

    fn bytes_up(&self) -> usize {
        self.conns
            .lock()
            .expect("lock")
            .iter()
            .map(|r| r.up.len())
            .sum()
    }

    fn bytes_down(&self) -> usize {
        self.conns
            .lock()
            .expect("lock")
            .iter()
            .map(|r| r.down.len())
            .sum()
    }

    /// Every direction of every connection that contains `needle`.
    fn find(&self, needle: &[u8]) -> Vec<String> {
        let all = self.conns.lock().expect("lock");
        let mut hits = Vec::new();
        for (i, r) in all.iter().enumerate() {
            for (dir, bytes) in [("up", &r.up), ("down", &r.down)] {
                if bytes.windows(needle.len()).any(|w| w == needle) {
                    hits.push(format!("connection {i} {dir}"));
                }
            }
        }
        hits
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream, rec: &Mutex<Vec<Recorded>>, idx: usize, up: bool) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Ok(mut all) = rec.lock() {
            let r = &mut all[idx];
            let side = if up { &mut r.up } else { &mut r.down };
            side.extend_from_slice(&buf[..n]);
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

#[test]
fn plaintext_never_appears_on_the_wire() {
    const CANARY: &str = "PLAINTEXT-CANARY-7f3a";
    let mut alice = Node::new();
    let mut bob = Node::new();
    alice.start();
    bob.start();
    let proxy = Proxy::start(bob.port);

    // Bob's contact code, with the proxy as his only address. Only Alice adds Bob, so the
    // connection is hers, through the proxy.
    let card = ContactCard::from_code(&bob.code()).expect("Bob's code decodes");
    let code = ContactCard {
        addrs: vec![proxy.addr().to_vec()],
        ..card
    }
    .to_code()
    .expect("code encodes");
    alice.json(&["contacts", "add", &code, "--name", "Bob"]);

    // A long text, so the delivery is unmistakable in the byte counts.
    let text = format!("{CANARY} ").repeat(400);
    let up_before = proxy.bytes_up();
    let id = alice.send("Bob", &text);
    alice.wait_status("Bob", 1, "delivered", T);

    // Bob got it (from a contact he has not added: named by the node).
    let name = wait_for(T, "Alice in Bob's contacts", || {
        bob.json(&["contacts", "list"])
            .into_iter()
            .find(|c| c["added_by_user"] == false)
            .and_then(|c| c["name"].as_str().map(String::from))
    });
    let got = bob.wait_received(&name, 1, T);
    assert_eq!(got[0]["text"], text.as_str());
    assert_eq!(got[0]["id"], id.as_str());

    // The message went through the proxy...
    let up = proxy.bytes_up() - up_before;
    assert!(
        up >= text.len(),
        "only {up} bytes went from Alice to Bob through the proxy during the send; \
         the {}-byte message took another path",
        text.len()
    );
    assert!(
        proxy.bytes_down() > 0,
        "nothing came back through the proxy"
    );
    // The recording is searchable: the one cleartext part of a connection, the protocol
    // negotiation before Noise, is found in it.
    assert!(
        !proxy.find(b"/noise").is_empty(),
        "the proxy's recording does not even show the cleartext handshake"
    );
    // ...and its text is nowhere in it, in either direction.
    for needle in [CANARY, "CANARY-7f3a", "PLAINTEXT-CANARY"] {
        let hits = proxy.find(needle.as_bytes());
        assert!(
            hits.is_empty(),
            "the plaintext {needle:?} is visible on the wire: {hits:?}"
        );
    }
    eprintln!(
        "proxy recorded {} bytes up, {} bytes down; no plaintext",
        proxy.bytes_up(),
        proxy.bytes_down()
    );
}

/// Regression: one envelope a device could not open made its mailbox start over with all the
/// other mail it kept for that device, and that mail was lost.
#[test]
fn garbage_left_at_a_mailbox_does_not_cost_the_device_its_other_mail() {
    const W: Duration = Duration::from_secs(60);
    let mut m = Node::new().with_args(&["--mailbox"]);
    m.start();
    let (m_peer, m_addr) = peer_and_addr(&m);
    let boot = m_addr.to_string();
    let mut a = Node::new().with_args(&["--bootstrap", &boot]);
    let mut b = Node::new().with_args(&["--bootstrap", &boot]);
    a.start();
    b.start();
    b.add_mailbox(&[&m.code()]);
    a.add(&b, "Bob");
    b.add(&a, "Alice");
    a.send("Bob", "warm up");
    a.wait_status("Bob", 1, "delivered", W);
    let (bob_peer, bob_addr) = peer_and_addr(&b);
    let rt = runtime();
    let bob_curve = rt.block_on(async {
        let mut raw = RawPeer::connect(bob_peer, bob_addr).await;
        match raw.request("claim", claim_frame()).await {
            Response::Prekey(bundle) => bundle.cert.curve25519,
            other => panic!("claim: expected a pre-key bundle, got {other:?}"),
        }
    });
    b.stop();
    // A stranger leaves garbage for Bob at his mailbox, which keeps it (it cannot tell):
    // more than one delivery batch of it, so Alice's message goes out in a later batch.
    rt.block_on(async {
        let mut raw = RawPeer::connect(m_peer, m_addr).await;
        for part in 0..2u8 {
            let envelopes: Vec<Envelope> = (0..150u8)
                .map(|i| Envelope {
                    to_device: bob_curve,
                    kind: 1,
                    ciphertext: vec![part, i, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a],
                })
                .collect();
            let deposit = framed(&Request::Deliver { envelopes }.encode().expect("encode"));
            match raw.request("deposit", deposit).await {
                Response::Delivered { results } => {
                    assert!(results.iter().all(|r| *r == DeliveryResult::Accepted))
                }
                other => panic!("deposit: expected per-envelope results, got {other:?}"),
            }
        }
    });
    // Alice's real message waits behind it.
    a.send("Bob", "behind the garbage");
    wait_for(W, "Alice's message kept by the mailbox", || {
        let h = a.history("Bob");
        (h.last()?["status"] == "sent").then_some(())
    });
    b.start();
    let got = b.wait_received("Alice", 2, W);
    assert_eq!(got[1]["text"], "behind the garbage");
    a.wait_status("Bob", 2, "delivered", W);
}

#[test]
fn a_stranger_cannot_register_as_someone_else_nor_leave_mail_for_strangers() {
    const W: Duration = Duration::from_secs(60);
    let mut m = Node::new().with_args(&["--mailbox"]);
    m.start();
    let (m_peer, m_addr) = peer_and_addr(&m);
    let boot = m_addr.to_string();
    let mut a = Node::new().with_args(&["--bootstrap", &boot]);
    let mut b = Node::new().with_args(&["--bootstrap", &boot]);
    a.start();
    b.start();
    b.add_mailbox(&[&m.code()]);
    a.add(&b, "Bob");
    b.add(&a, "Alice");
    a.send("Bob", "warm up");
    a.wait_status("Bob", 1, "delivered", W);
    // Bob's device certificate is public (his pre-key bundle and user record carry it).
    let (bob_peer, bob_addr) = peer_and_addr(&b);
    let rt = runtime();
    let bob_cert = rt.block_on(async {
        let mut raw = RawPeer::connect(bob_peer, bob_addr).await;
        match raw.request("claim", claim_frame()).await {
            Response::Prekey(bundle) => bundle.cert,
            other => panic!("claim: expected a pre-key bundle, got {other:?}"),
        }
    });
    b.stop();
    a.send("Bob", "for Bob only");
    wait_for(W, "Alice's message kept by the mailbox", || {
        (a.history("Bob").last()?["status"] == "sent").then_some(())
    });
    let outbox_before = m.json(&["status"])[0]["outbox"].as_u64().unwrap();
    assert!(outbox_before >= 1);
    rt.block_on(async {
        let mut raw = RawPeer::connect(m_peer, m_addr).await;
        // Registering with Bob's certificate from another connection: refused.
        let register = framed(
            &Request::Register {
                cert: bob_cert.clone(),
                token: None,
            }
            .encode()
            .expect("encode"),
        );
        assert_eq!(
            raw.request("register as Bob", register).await,
            Response::Refused(Refusal::Invalid)
        );
        // Mail for a device the mailbox does not serve: refused envelope by envelope.
        let deposit = framed(
            &Request::Deliver {
                envelopes: vec![Envelope {
                    to_device: kith_types::CurveKey([7; 32]),
                    kind: 1,
                    ciphertext: vec![1, 2, 3],
                }],
            }
            .encode()
            .expect("encode"),
        );
        assert_eq!(
            raw.request("deposit for nobody", deposit).await,
            Response::Delivered {
                results: vec![DeliveryResult::Rejected(RejectReason::WrongDevice)]
            }
        );
    });
    // Nothing changed at the mailbox: still one device, Bob's mail still there for him.
    let st = &m.json(&["status"])[0];
    assert_eq!(st["mailbox_users"], 1);
    assert_eq!(st["outbox"].as_u64().unwrap(), outbox_before);
    b.start();
    let got = b.wait_received("Alice", 2, W);
    assert_eq!(got[1]["text"], "for Bob only");
}

/// A push endpoint is only taken from a device registered with the mailbox (known by the
/// connection's peer id); malformed ones are refused as invalid frames.
#[test]
fn set_push_from_an_unregistered_device_is_refused() {
    let mut m = Node::new().with_args(&["--mailbox", "--push-allow-private", "--push-allow-http"]);
    m.start();
    let (m_peer, m_addr) = peer_and_addr(&m);
    let rt = runtime();
    rt.block_on(async {
        let mut raw = RawPeer::connect(m_peer, m_addr).await;
        let set = |url: &str| {
            framed(
                &Request::SetPush {
                    endpoint: Some(url.into()),
                }
                .encode()
                .expect("encode"),
            )
        };
        assert_eq!(
            raw.request("unregistered set", set("https://127.0.0.1:9/up/x"))
                .await,
            Response::Refused(Refusal::Unauthorized)
        );
        assert_eq!(
            raw.request(
                "unregistered clear",
                framed(
                    &Request::SetPush { endpoint: None }
                        .encode()
                        .expect("encode")
                )
            )
            .await,
            Response::Refused(Refusal::Unauthorized)
        );
        raw.refused_or_cut("bad scheme", set("gopher://127.0.0.1/x"))
            .await;
    });
    assert_alive(&mut m, "SetPush frames");
}

/// A mailbox keeps group frames only for a device registered with it (known by the
/// connection's peer id), only on topics that look like group topics, and hands them only
/// to a device that watches the topic; malformed requests are refused as invalid frames.
#[test]
fn watch_and_topic_sync_need_a_registered_device_and_a_watched_group_topic() {
    use kith_crypto::{Device, Identity};
    use kith_proto::groupwire::group_topic;
    let mut m = Node::new().with_args(&["--mailbox"]);
    m.start();
    let (m_peer, m_addr) = peer_and_addr(&m);
    let rt = runtime();
    rt.block_on(async {
        let mut raw = RawPeer::connect(m_peer, m_addr).await;
        let enc = |r: &Request| framed(&r.encode().expect("encode"));
        let watch = |topics: Vec<String>| enc(&Request::Watch { topics });
        let sync = |topic: &str| {
            enc(&Request::TopicSync {
                topic: topic.into(),
                have: vec![],
            })
        };
        let topic = group_topic(&kith_types::GroupId([9; 16]));
        let unauthorized = Response::Refused(Refusal::Unauthorized);
        assert_eq!(
            raw.request("unregistered watch", watch(vec![topic.clone()]))
                .await,
            unauthorized
        );
        assert_eq!(
            raw.request("unregistered sync", sync(&topic)).await,
            unauthorized
        );
        // Register this raw peer as a device of a new identity.
        // It proves it holds its key with a pre-key of the mailbox (docs/protocol.md).
        let device = Device::generate(&Identity::generate(), raw.peer_id().to_bytes()).unwrap();
        let bundle = match raw.request("claim", claim_frame()).await {
            Response::Prekey(bundle) => bundle,
            other => panic!("claim: {other:?}"),
        };
        let binding = kith_proto::wire::registration_binding(
            &m_peer.to_bytes(),
            &device.cert().peer_id,
            &device.cert().curve25519,
        );
        let register = enc(&Request::RegisterProven {
            cert: device.cert().clone(),
            token: None,
            proof: device.prove_key(&bundle, &binding).unwrap(),
        });
        match raw.request("register", register).await {
            Response::Registration { .. } => {}
            other => panic!("register: {other:?}"),
        }
        // Registered, but not a group topic: refused as invalid, nothing kept.
        for bad in ["kith/g/NOT-HEX-AT-ALL-0000000000000000", "anything", ""] {
            assert_eq!(
                raw.request("not a group topic", watch(vec![bad.into()]))
                    .await,
                Response::Refused(Refusal::Invalid),
                "{bad:?}"
            );
        }
        // A topic it does not watch: no frames for it.
        assert_eq!(
            raw.request("sync an unwatched topic", sync(&topic)).await,
            unauthorized
        );
        // Watching it (a repeat counts once): answered, with nothing kept yet.
        assert_eq!(
            raw.request("watch", watch(vec![topic.clone(), topic.clone()]))
                .await,
            Response::Watching { topics: 1 }
        );
        assert_eq!(
            raw.request("sync", sync(&topic)).await,
            Response::GroupFrames {
                frames: vec![],
                more: false
            }
        );
        // Replaced by an empty set: the topic is no longer handed out.
        assert_eq!(
            raw.request("unwatch", watch(vec![])).await,
            Response::Watching { topics: 0 }
        );
        assert_eq!(
            raw.request("sync after unwatching", sync(&topic)).await,
            unauthorized
        );
        // Over the size limits, or garbage after the variant byte: invalid frames.
        let many: Vec<String> = (0..=256).map(|i| format!("kith/g/{i:032x}")).collect();
        raw.refused_or_cut("too many topics", watch(many)).await;
        raw.refused_or_cut(
            "garbage watch",
            framed(&[WIRE_VERSION, 5, 0xff, 0xff, 0xff, 0xff, 0x0f]),
        )
        .await;
    });
    assert_alive(&mut m, "Watch and TopicSync frames");
}
