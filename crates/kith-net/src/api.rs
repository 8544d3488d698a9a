//! The engine's side of the network: the [`NetCommand`]s it sends, the [`NetEvent`]s it
//! gets back, and the [`NetHandle`] it holds. Both queues are bounded ([`COMMAND_QUEUE`],
//! [`EVENT_QUEUE`]); the engine never waits on the network (a full queue is
//! [`NetError::Busy`]), and inbound requests carry an id the engine answers with
//! [`NetCommand::Respond`].

use std::sync::{Arc, Mutex};

use kith_proto::media::{MediaRequest, MediaResponse};
use kith_proto::signal::{Signal, SignalAnswer};
use kith_proto::wire::{Request, Response};
use libp2p::{Multiaddr, PeerId, gossipsub};
use tokio::sync::mpsc;

use crate::config::NetError;
use crate::reach::Reachability;

/// Capacity of the command channel (engine → network).
pub const COMMAND_QUEUE: usize = 4096;
/// Capacity of the event channel (network → engine).
pub const EVENT_QUEUE: usize = 1024;

/// Commands from the engine.
#[derive(Debug)]
#[non_exhaustive]
pub enum NetCommand {
    /// Send a request; the answer comes back as [`NetEvent::Response`] with `tag`.
    Request {
        tag: u64,
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        req: Request,
    },
    /// Like [`NetCommand::Request`], but from a throwaway identity instead of this device's
    /// (for deposits with a contact's mailbox; see [`crate::anon`]). The answer comes back as
    /// [`NetEvent::Response`] with `tag`.
    Deposit {
        tag: u64,
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        req: Request,
    },
    /// Answer inbound request `id`.
    Respond { id: u64, resp: Response },
    /// Connect to a peer (to learn its addresses, or to flush its outbox).
    Dial { peer: PeerId, addrs: Vec<Multiaddr> },
    /// Publish a record in the DHT.
    /// With a `tag`, [`NetEvent::Published`] tells when a DHT peer has stored it.
    PutRecord {
        key: Vec<u8>,
        value: Vec<u8>,
        tag: Option<u64>,
    },
    /// Look a record up; the answer is [`NetEvent::Record`] with `tag`.
    GetRecord { tag: u64, key: Vec<u8> },
    /// Look a record up for the observer only: the outcome goes to
    /// [`crate::NetObserver::lookup_done`], the engine hears nothing of it. For simulations.
    ProbeRecord { key: Vec<u8> },
    /// Count a protocol violation against a peer.
    Penalize { peer: PeerId, reason: &'static str },
    /// The engine knows `peer` as a device of someone the user knows (a contact the user
    /// added, a fellow group member): for [`crate::limits::VOUCH_TTL`] its requests get
    /// [`crate::NetLimits::known_requests_per_minute`] instead of the stranger's rate.
    Vouch { peer: PeerId },
    /// Send a signal (presence, typing, a profile request) on `/kith/signal/1`. With a `tag`,
    /// the answer comes back as [`NetEvent::SignalAnswered`].
    Signal {
        tag: Option<u64>,
        peer: PeerId,
        signal: Signal,
    },
    /// Ask a peer for a file's index or chunk on `/kith/media/1`; the answer comes back as
    /// [`NetEvent::MediaAnswered`] with `tag`.
    Media {
        tag: u64,
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        req: MediaRequest,
    },
    /// Answer inbound media request `id` ([`NetEvent::MediaAsked`]).
    AnswerMedia { id: u64, resp: MediaResponse },
    /// Answer inbound signal `id` (one that [`NetEvent::Signal`] gave an id).
    AnswerSignal { id: u64, answer: SignalAnswer },
    /// These links are in use (a mailbox's registered devices): not closed as idle.
    Keep { peers: Vec<PeerId> },
    /// Join a gossipsub topic (a group's).
    Subscribe { topic: String },
    /// Leave a gossipsub topic.
    Unsubscribe { topic: String },
    /// Publish on a topic; [`NetEvent::GossipSent`] tells how it went.
    Publish {
        tag: u64,
        topic: String,
        data: Vec<u8>,
    },
    /// The engine's verdict on a [`NetEvent::Gossip`] message: only accepted messages are
    /// forwarded; rejected ones count against the peer that sent them (gossipsub scoring).
    Validated {
        id: GossipId,
        source: PeerId,
        verdict: Verdict,
    },
}

/// A gossipsub message id (a hash of its content).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GossipId(pub(crate) gossipsub::MessageId);

/// What the engine made of a gossiped message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Valid: forward it.
    Accept,
    /// Invalid: drop it and penalise the sender.
    Reject,
    /// Not for forwarding (e.g. not understood yet), no penalty.
    Ignore,
}

/// Why one of our requests got no answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RequestFailure {
    /// The peer could not be dialled.
    #[error("cannot reach the peer")]
    Dial,
    /// No answer in time.
    #[error("no answer in time")]
    Timeout,
    /// The connection closed before the answer came.
    #[error("the connection closed")]
    ConnectionClosed,
    /// The peer does not speak the protocol.
    #[error("the peer does not speak the protocol")]
    Unsupported,
    /// The stream failed (a bad frame from the peer among others).
    #[error("stream error")]
    Stream(#[source] std::io::Error),
}

impl From<libp2p::request_response::OutboundFailure> for RequestFailure {
    fn from(e: libp2p::request_response::OutboundFailure) -> Self {
        use libp2p::request_response::OutboundFailure as F;
        match e {
            F::DialFailure => Self::Dial,
            F::Timeout => Self::Timeout,
            F::ConnectionClosed => Self::ConnectionClosed,
            F::UnsupportedProtocols => Self::Unsupported,
            F::Io(e) => Self::Stream(e),
        }
    }
}

/// Why a group frame was not published now.
#[derive(Debug, thiserror::Error)]
#[error("not published")]
pub struct PublishFailure(#[source] pub libp2p::gossipsub::PublishError);

/// Events for the engine.
#[derive(Debug)]
#[non_exhaustive]
pub enum NetEvent {
    /// A new listen address.
    Listening { addr: Multiaddr },
    /// A request to answer with [`NetCommand::Respond`].
    InboundRequest { id: u64, peer: PeerId, req: Request },
    /// The outcome of [`NetCommand::Request`].
    Response {
        tag: u64,
        peer: PeerId,
        result: Result<Response, RequestFailure>,
    },
    /// First connection to a peer.
    Connected { peer: PeerId },
    /// Last connection to a peer closed.
    Disconnected { peer: PeerId },
    /// Addresses a peer says it listens on (identify) or was found at (mDNS).
    PeerAddrs { peer: PeerId, addrs: Vec<Multiaddr> },
    /// A listen address went away (e.g. a relay reservation ended).
    ListenerGone { addr: Multiaddr },
    /// AutoNAT changed its verdict.
    Reachability { status: Reachability },
    /// A signal from a peer, within its rate. With an `id` the engine answers it with
    /// [`NetCommand::AnswerSignal`]; without, it was answered already.
    Signal {
        id: Option<u64>,
        peer: PeerId,
        signal: Signal,
    },
    /// A peer asks for a file's index or chunk, within its rate; answer with
    /// [`NetCommand::AnswerMedia`].
    MediaAsked {
        id: u64,
        peer: PeerId,
        req: MediaRequest,
    },
    /// The outcome of [`NetCommand::Media`].
    MediaAnswered {
        tag: u64,
        peer: PeerId,
        result: Result<MediaResponse, RequestFailure>,
    },
    /// The answer to a tagged [`NetCommand::Signal`].
    SignalAnswered {
        tag: u64,
        peer: PeerId,
        result: Result<SignalAnswer, RequestFailure>,
    },
    /// A tagged [`NetCommand::PutRecord`] finished: stored by at least one peer, or not.
    Published { tag: u64, ok: bool },
    /// The outcome of [`NetCommand::GetRecord`]: the newest valid record found, if any.
    Record { tag: u64, value: Option<Vec<u8>> },
    /// A message on a topic we joined, to validate with [`NetCommand::Validated`].
    Gossip {
        id: GossipId,
        /// The peer that forwarded it to us.
        source: PeerId,
        /// The peer that published it (its signature was checked).
        author: Option<PeerId>,
        topic: String,
        data: Vec<u8>,
    },
    /// The outcome of [`NetCommand::Publish`]: sent to at least one peer, or why not.
    GossipSent {
        tag: u64,
        result: Result<(), PublishFailure>,
    },
    /// A connected peer joined a topic we are in (a chance to catch up with it).
    GossipJoined { peer: PeerId, topic: String },
}

/// A cheap handle to the network actor.
#[derive(Debug, Clone)]
pub struct NetHandle {
    pub(crate) tx: mpsc::Sender<NetCommand>,
    pub(crate) local_peer: PeerId,
    pub(crate) listen: Arc<Mutex<Vec<Multiaddr>>>,
    pub(crate) reach: Arc<Mutex<ReachInfo>>,
    pub(crate) metrics: Arc<crate::metrics::Metrics>,
}

/// What the node knows of its own reachability.
#[derive(Debug, Clone, Default)]
pub struct ReachInfo {
    /// AutoNAT's verdict.
    pub status: Reachability,
    /// Relays holding a slot for us (or asked to).
    pub relays: Vec<PeerId>,
    /// Serving as a relay: slots held for others now.
    pub served_reservations: usize,
    /// Serving as a relay: connections relayed now.
    pub served_circuits: usize,
}

/// What became of a command offered to the network actor ([`NetHandle::offer`]).
#[derive(Debug)]
pub enum Offer {
    /// It is in the network actor's queue.
    Queued,
    /// The queue is full: here it is back.
    Full(Box<NetCommand>),
    /// The network actor has stopped; the command is dropped.
    Stopped,
}

impl NetHandle {
    /// Queues a command without waiting. A full queue is [`NetError::Busy`]; the engine's
    /// retry timers cover it.
    pub fn send(&self, cmd: NetCommand) -> Result<(), NetError> {
        try_send(&self.tx, cmd)
    }

    /// Queues a command without waiting; a full queue hands the command back
    /// ([`Offer::Full`]) so the caller can keep it and send it later.
    pub fn offer(&self, cmd: NetCommand) -> Offer {
        match self.tx.try_send(cmd) {
            Ok(()) => Offer::Queued,
            Err(mpsc::error::TrySendError::Full(cmd)) => Offer::Full(Box::new(cmd)),
            Err(mpsc::error::TrySendError::Closed(_)) => Offer::Stopped,
        }
    }

    /// A handle that does not keep the network running.
    pub fn downgrade(&self) -> WeakNetHandle {
        WeakNetHandle(self.tx.downgrade())
    }

    /// This device's peer id.
    pub fn local_peer(&self) -> PeerId {
        self.local_peer
    }

    /// The addresses the node listens on now (with its peer id appended by callers as needed).
    pub fn listen_addrs(&self) -> Vec<Multiaddr> {
        self.listen.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// The node's metrics (libp2p's and Kith's).
    pub fn metrics(&self) -> Arc<crate::metrics::Metrics> {
        self.metrics.clone()
    }

    /// AutoNAT's verdict and the relays we hold slots on.
    pub fn reachability(&self) -> ReachInfo {
        self.reach.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

/// A handle that reaches the network while it runs, and does not keep it running (the
/// network stops when its last [`NetHandle`] is dropped).
#[derive(Debug, Clone)]
pub struct WeakNetHandle(mpsc::WeakSender<NetCommand>);

impl WeakNetHandle {
    /// Queues a command without waiting, like [`NetHandle::send`];
    /// [`NetError::Stopped`] once the network has stopped.
    pub fn send(&self, cmd: NetCommand) -> Result<(), NetError> {
        let tx = self.0.upgrade().ok_or(NetError::Stopped)?;
        try_send(&tx, cmd)
    }
}

fn try_send(tx: &mpsc::Sender<NetCommand>, cmd: NetCommand) -> Result<(), NetError> {
    tx.try_send(cmd).map_err(|e| match e {
        mpsc::error::TrySendError::Full(_) => NetError::Busy,
        mpsc::error::TrySendError::Closed(_) => NetError::Stopped,
    })
}
