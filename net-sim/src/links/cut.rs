//! Partitions: a node's links to the peers it is cut from close, and new ones are refused,
//! until the cut is lifted ([`crate::SimNet::cut`]).
//!
//! The cut lives in the node's transport, where the network cannot tell it from a real
//! partition: every authenticated connection (its peer id known once Noise is done) is
//! checked against the node's [`Cuts`] before the swarm sees it, and then wrapped in a
//! [`CutMuxer`] that fails the connection when its peer is cut later. A failed muxer is
//! how a broken link looks to libp2p: the connection closes with an error.
//!
//! [`Cuts`] keeps the cut peers and one entry per open connection (removed when the
//! connection is dropped); both are bounded by the simulation's nodes and links.

use std::collections::{HashMap, HashSet};
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures::task::AtomicWaker;
use kith_net::{BoxedTransport, PeerId};
use libp2p::Transport as _;
use libp2p::core::muxing::{StreamMuxer, StreamMuxerBox, StreamMuxerEvent, SubstreamBox};

/// The peers a node is cut from, and its open connections.
#[derive(Debug, Default)]
pub struct Cuts {
    state: Mutex<State>,
    next: AtomicU64,
}

#[derive(Debug, Default)]
struct State {
    cut: HashSet<PeerId>,
    links: HashMap<u64, Arc<Link>>,
}

/// One open connection, as its [`CutMuxer`] and [`Cuts`] share it.
#[derive(Debug)]
struct Link {
    peer: PeerId,
    cut: AtomicBool,
    /// Wakes the connection's task when the link is cut.
    waker: AtomicWaker,
}

impl Cuts {
    /// Cuts (or restores) the links with `peers`. Open connections to a cut peer fail now.
    pub fn set(&self, peers: &[PeerId], cut: bool) {
        let Ok(mut s) = self.state.lock() else {
            return;
        };
        for p in peers {
            if cut {
                s.cut.insert(*p);
            } else {
                s.cut.remove(p);
            }
        }
        if cut {
            for link in s.links.values().filter(|l| peers.contains(&l.peer)) {
                link.cut.store(true, Ordering::Relaxed);
                link.waker.wake();
            }
        }
    }

    /// A new connection with `peer`, refused when the link is cut.
    fn open(self: &Arc<Self>, peer: PeerId, inner: StreamMuxerBox) -> io::Result<CutMuxer> {
        let mut s = self
            .state
            .lock()
            .map_err(|_| io::Error::other("cut table poisoned"))?;
        if s.cut.contains(&peer) {
            return Err(io::Error::new(io::ErrorKind::ConnectionRefused, "link cut"));
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let link = Arc::new(Link {
            peer,
            cut: AtomicBool::new(false),
            waker: AtomicWaker::new(),
        });
        s.links.insert(id, link.clone());
        Ok(CutMuxer {
            inner,
            link,
            id,
            cuts: self.clone(),
        })
    }

    fn closed(&self, id: u64) {
        if let Ok(mut s) = self.state.lock() {
            s.links.remove(&id);
        }
    }
}

/// `links` with every connection checked against `cuts`.
pub fn with_cuts(links: BoxedTransport, cuts: Arc<Cuts>) -> BoxedTransport {
    links
        .and_then(move |(peer, muxer), _| {
            let opened = cuts.open(peer, muxer);
            futures::future::ready(opened.map(|m| (peer, StreamMuxerBox::new(m))))
        })
        .boxed()
}

/// A connection that fails once its link is cut.
pub struct CutMuxer {
    inner: StreamMuxerBox,
    link: Arc<Link>,
    id: u64,
    cuts: Arc<Cuts>,
}

impl std::fmt::Debug for CutMuxer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CutMuxer")
            .field("link", &self.link)
            .finish()
    }
}

impl CutMuxer {
    fn check(&self, cx: &mut Context<'_>) -> io::Result<()> {
        self.link.waker.register(cx.waker());
        if self.link.cut.load(Ordering::Relaxed) {
            return Err(io::Error::new(io::ErrorKind::ConnectionReset, "link cut"));
        }
        Ok(())
    }
}

impl Drop for CutMuxer {
    fn drop(&mut self) {
        self.cuts.closed(self.id);
    }
}

impl StreamMuxer for CutMuxer {
    type Substream = SubstreamBox;
    type Error = io::Error;

    fn poll_inbound(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::Substream, Self::Error>> {
        let this = self.get_mut();
        if let Err(e) = this.check(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut this.inner).poll_inbound(cx)
    }

    fn poll_outbound(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::Substream, Self::Error>> {
        let this = self.get_mut();
        if let Err(e) = this.check(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut this.inner).poll_outbound(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.get_mut().inner).poll_close(cx)
    }

    fn poll(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<StreamMuxerEvent, Self::Error>> {
        let this = self.get_mut();
        if let Err(e) = this.check(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut this.inner).poll(cx)
    }
}
