//! Penalties: peers that break the protocol (a malformed frame, an invalid DHT record) get
//! strikes, and [`STRIKES_TO_BLOCK`] of them block the peer for [`BLOCK_FOR`]. This is the
//! decision part, with no I/O and the time passed in; the actor blocks and unblocks in the
//! swarm as it says.
//!
//! Both tables are bounded: strikes are kept for at most [`MAX_STRIKE_ENTRIES`] peers (all
//! forgotten when a new one would go over), and blocks for as many (the oldest is lifted
//! early when a new one would go over).

use kith_types::BoundedMap;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

use libp2p::PeerId;

/// Strikes after which a peer is disconnected and blocked.
pub const STRIKES_TO_BLOCK: u32 = 5;
/// How long a blocked peer stays blocked.
pub const BLOCK_FOR: Duration = Duration::from_secs(600);
/// Most peers with strikes remembered, and most blocks held.
const MAX_STRIKE_ENTRIES: usize = 8192;

/// What a strike did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Struck {
    /// The peer's strikes, this one included.
    pub(crate) strikes: u32,
    /// Block the peer now.
    pub(crate) block: bool,
    /// Lift this older block now (the table of blocks was full).
    pub(crate) unblock: Option<PeerId>,
}

/// Strikes per peer and the blocks they led to.
#[derive(Debug)]
pub(crate) struct Strikes {
    strikes: BoundedMap<PeerId, u32>,
    blocked_until: VecDeque<(Instant, PeerId)>,
}

impl Default for Strikes {
    fn default() -> Self {
        Self {
            strikes: BoundedMap::new(MAX_STRIKE_ENTRIES),
            blocked_until: VecDeque::new(),
        }
    }
}

impl Strikes {
    /// Counts a strike against `peer` at `now`.
    pub(crate) fn strike(&mut self, peer: PeerId, now: Instant) -> Struck {
        let strikes = self.strikes.get(&peer).copied().unwrap_or(0) + 1;
        self.strikes.insert(peer, strikes);
        let mut out = Struck {
            strikes,
            block: false,
            unblock: None,
        };
        if strikes >= STRIKES_TO_BLOCK {
            self.strikes.remove(&peer);
            out.block = true;
            self.blocked_until.push_back((now + BLOCK_FOR, peer));
            if self.blocked_until.len() > MAX_STRIKE_ENTRIES {
                out.unblock = self.blocked_until.pop_front().map(|(_, p)| p);
            }
        }
        out
    }

    /// The blocks that are over at `now`, to lift.
    pub(crate) fn expired(&mut self, now: Instant) -> Vec<PeerId> {
        let mut out = Vec::new();
        while let Some((t, p)) = self.blocked_until.front().copied() {
            if t > now {
                break;
            }
            self.blocked_until.pop_front();
            out.push(p);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fifth_strike_blocks_for_ten_minutes() {
        let mut s = Strikes::default();
        let peer = PeerId::random();
        let t0 = Instant::now();
        for n in 1..STRIKES_TO_BLOCK {
            let r = s.strike(peer, t0);
            assert_eq!((r.strikes, r.block), (n, false));
        }
        let r = s.strike(peer, t0);
        assert!(r.block && r.unblock.is_none());
        assert!(
            s.expired(t0 + BLOCK_FOR - Duration::from_millis(1))
                .is_empty()
        );
        assert_eq!(s.expired(t0 + BLOCK_FOR), vec![peer]);
        assert!(s.expired(t0 + BLOCK_FOR).is_empty(), "lifted once");
        // Counting starts again after a block.
        assert_eq!(s.strike(peer, t0).strikes, 1);
    }
}
