//! The hops of a DHT lookup: how many rounds of Kademlia's iterative lookup it takes, over
//! the routing tables the nodes really hold.
//!
//! Kademlia's own statistics count requests (libp2p's `QueryStats::num_requests`), which
//! grow with the parallelism α and with peers that do not answer, not with the length of
//! the path to the record. Path length is measured here instead, the textbook way, on a
//! snapshot of every running node's routing table ([`crate::SimNet::routing_table`], told
//! every 5 s):
//!
//! - round 1 asks the [`ALPHA`] peers of the asking node's table closest to the key; every
//!   next round asks the α closest not asked yet among the [`K`] closest peers learnt so
//!   far, and each running peer asked answers with the `K` closest peers of its own table
//!   (a node that is down answers nothing, as in a real lookup it times out);
//! - the lookup has arrived in the round that asks one of the `K` running nodes closest to
//!   the key (where a publication lands, with a replication factor of `K`); 0 rounds when
//!   the asking node is one of them.
//!
//! A lookup that runs out of peers to ask, or takes more than [`MAX_ROUNDS`], is
//! unreached. Partitions are not modelled: a node across one counts as reachable.

use std::collections::{BTreeMap, HashMap, HashSet};

use libp2p::PeerId;
use libp2p::kad::{KBucketDistance, KBucketKey, RecordKey};

/// Requests in flight per round (Kademlia's α, libp2p's default parallelism).
pub const ALPHA: usize = 3;
/// Peers a node answers with and a record is replicated to (libp2p's default `K_VALUE`).
pub const K: usize = 20;
/// Rounds after which a lookup counts as unreached.
pub const MAX_ROUNDS: u32 = 20;

/// Every running node's routing table, at one moment.
#[derive(Debug, Default, Clone)]
pub struct Tables {
    tables: HashMap<PeerId, Vec<PeerId>>,
}

impl Tables {
    /// A snapshot of these running nodes' tables.
    pub fn new(tables: impl IntoIterator<Item = (PeerId, Vec<PeerId>)>) -> Self {
        Self {
            tables: tables.into_iter().collect(),
        }
    }

    /// Nodes in the snapshot.
    pub fn len(&self) -> usize {
        self.tables.len()
    }

    /// No node in the snapshot.
    pub fn is_empty(&self) -> bool {
        self.tables.is_empty()
    }

    /// The size of every node's table, sorted.
    pub fn sizes(&self) -> Vec<f64> {
        let mut v: Vec<f64> = self.tables.values().map(|t| t.len() as f64).collect();
        v.sort_by(f64::total_cmp);
        v
    }

    /// Rounds `from`'s lookup of `key` takes over these tables (see the module docs);
    /// `None` when it does not arrive.
    pub fn rounds(&self, from: &PeerId, key: &[u8]) -> Option<u32> {
        let target = KBucketKey::new(RecordKey::new(&key));
        let dist = |p: &PeerId| KBucketKey::from(*p).distance(&target);
        let mut running: Vec<(KBucketDistance, &PeerId)> =
            self.tables.keys().map(|p| (dist(p), p)).collect();
        running.sort();
        let goal: HashSet<&PeerId> = running.iter().take(K).map(|(_, p)| *p).collect();
        if goal.contains(from) {
            return Some(0);
        }
        // The closest peers learnt so far (at most K), and those asked.
        let mut known: BTreeMap<KBucketDistance, PeerId> = BTreeMap::new();
        let mut asked: HashSet<PeerId> = HashSet::from([*from]);
        let learn = |known: &mut BTreeMap<KBucketDistance, PeerId>, peers: &[PeerId]| {
            for p in peers {
                known.insert(dist(p), *p);
            }
            while known.len() > K {
                known.pop_last();
            }
        };
        learn(&mut known, self.tables.get(from).map_or(&[], Vec::as_slice));
        for round in 1..=MAX_ROUNDS {
            let ask: Vec<PeerId> = known
                .values()
                .filter(|p| !asked.contains(*p))
                .take(ALPHA)
                .copied()
                .collect();
            if ask.is_empty() {
                return None;
            }
            if ask.iter().any(|p| goal.contains(p)) {
                return Some(round);
            }
            for p in &ask {
                asked.insert(*p);
                if let Some(t) = self.tables.get(p) {
                    let mut closest: Vec<(KBucketDistance, PeerId)> =
                        t.iter().map(|q| (dist(q), *q)).collect();
                    closest.sort();
                    closest.truncate(K);
                    let peers: Vec<PeerId> = closest.into_iter().map(|(_, q)| q).collect();
                    learn(&mut known, &peers);
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peers(n: usize) -> Vec<PeerId> {
        (0..n).map(|_| PeerId::random()).collect()
    }

    #[test]
    fn full_tables_arrive_in_one_round_and_empty_ones_never() {
        let all = peers(30);
        // Everyone knows everyone: the first round asks the closest nodes themselves.
        let full = Tables::new(all.iter().map(|p| (*p, all.clone())));
        let key = b"some user";
        for p in &all {
            assert!(full.rounds(p, key).is_some_and(|r| r <= 1), "{p}");
        }
        // Nobody knows anybody: only the nodes closest to the key arrive (in 0 rounds).
        let empty = Tables::new(all.iter().map(|p| (*p, Vec::new())));
        let arrived = all.iter().filter_map(|p| empty.rounds(p, key)).count();
        assert_eq!(arrived, K);
    }

    #[test]
    fn a_ring_takes_a_round_per_link() {
        // Each node knows only the next: a lookup walks the ring, a round per node, until it
        // asks one of the K closest to the key.
        let all = peers(60);
        let n = all.len();
        let tables = Tables::new((0..n).map(|i| (all[i], vec![all[(i + 1) % n]])));
        let key = b"k";
        let target = KBucketKey::new(RecordKey::new(&key));
        let mut by_distance = all.clone();
        by_distance.sort_by_key(|p| KBucketKey::from(*p).distance(&target));
        let goal: HashSet<PeerId> = by_distance.into_iter().take(K).collect();
        for i in 0..n {
            let steps = (0..n).find(|s| goal.contains(&all[(i + s) % n]));
            let want = steps.map(|s| s as u32).filter(|s| *s <= MAX_ROUNDS);
            assert_eq!(tables.rounds(&all[i], key), want, "node {i}");
        }
    }
}
