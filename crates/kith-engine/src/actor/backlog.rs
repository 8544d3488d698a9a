//! Network commands that found the network actor's queue full. The engine never waits on
//! the network (its queue is bounded and sends are `try_send`), so a command with no room
//! is kept here, in order, and offered again before anything newer on every send and on
//! every tick. The backlog is bounded too: over [`NET_BACKLOG`] the newest command is
//! dropped and counted, and the first drop of each overflow is logged. Requests whose
//! answers the engine waits for do not come here: a request that cannot be sent fails at
//! once and its caller's retry rules apply (delivery backs off, a lookup is retried later).

use std::collections::VecDeque;

use kith_net::{NetCommand, NetHandle, Offer};
use tracing::warn;

/// Most network commands kept while the network actor's queue is full.
pub const NET_BACKLOG: usize = 8192;

/// The commands waiting for room in the network actor's queue.
#[derive(Debug, Default)]
pub(super) struct Backlog {
    queue: VecDeque<NetCommand>,
    /// Commands dropped because the backlog was full, since the node started.
    dropped: u64,
    /// Whether the backlog overflowed since it last emptied (one log line per overflow).
    overflowing: bool,
}

impl Backlog {
    /// Sends `cmd` after whatever waits, or keeps it if the network has no room.
    pub(super) fn send(&mut self, net: &NetHandle, cmd: NetCommand) {
        self.flush(net);
        if !self.queue.is_empty() {
            self.keep(cmd);
            return;
        }
        if let Offer::Full(cmd) = net.offer(cmd) {
            self.keep(*cmd);
        }
    }

    /// Offers the waiting commands again, oldest first, until the network has no room.
    pub(super) fn flush(&mut self, net: &NetHandle) {
        while let Some(cmd) = self.queue.pop_front() {
            if let Offer::Full(cmd) = net.offer(cmd) {
                self.queue.push_front(*cmd);
                return;
            }
        }
        self.overflowing = false;
    }

    fn keep(&mut self, cmd: NetCommand) {
        if self.queue.len() >= NET_BACKLOG {
            self.dropped = self.dropped.saturating_add(1);
            if !self.overflowing {
                self.overflowing = true;
                warn!(
                    kept = self.queue.len(),
                    dropped_total = self.dropped,
                    "the network is not keeping up: dropping commands (peers time out and retry)"
                );
            }
            return;
        }
        self.queue.push_back(cmd);
    }
}
