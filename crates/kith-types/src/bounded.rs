//! Bounded state: a map that never grows past its capacity, and a per-key rate limit built
//! on it. Every map a peer can make a node grow (keyed by peer, device, tag or topic) is one
//! of these, with its capacity a named constant at the place that owns it.
//!
//! When a [`BoundedMap`] is full, inserting a new key evicts the entry inserted (or
//! replaced) longest ago: the newest state is the most useful, and one flood of new keys
//! costs the honest entries only their age, never the whole map (the "clear when full"
//! habit this replaces lost everything at once). Neither type reads a clock: times are
//! arguments.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::time::{Duration, Instant};

/// A map with a fixed capacity; over it, the oldest entry goes.
#[derive(Debug, Clone)]
pub struct BoundedMap<K, V> {
    cap: usize,
    next: u64,
    entries: HashMap<K, (u64, V)>,
    /// Insertion number → key, oldest first.
    order: BTreeMap<u64, K>,
}

impl<K: Eq + Hash + Clone, V> BoundedMap<K, V> {
    /// An empty map holding at most `cap` entries (at least one).
    pub fn new(cap: usize) -> Self {
        Self {
            cap: cap.max(1),
            next: 0,
            entries: HashMap::new(),
            order: BTreeMap::new(),
        }
    }

    /// The most entries it holds.
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Inserts or replaces `key` (which becomes the newest entry). Returns the entry evicted
    /// to make room, if one was.
    pub fn insert(&mut self, key: K, value: V) -> Option<(K, V)> {
        let n = self.next;
        self.next += 1;
        if let Some((old, _)) = self.entries.insert(key.clone(), (n, value)) {
            self.order.remove(&old);
            self.order.insert(n, key);
            return None;
        }
        self.order.insert(n, key);
        if self.entries.len() > self.cap {
            return self.pop_oldest();
        }
        None
    }

    /// Removes and returns the oldest entry.
    pub fn pop_oldest(&mut self) -> Option<(K, V)> {
        let (_, key) = self.order.pop_first()?;
        let (_, v) = self.entries.remove(&key)?;
        Some((key, v))
    }

    /// The value for `key`.
    pub fn get(&self, key: &K) -> Option<&V> {
        self.entries.get(key).map(|(_, v)| v)
    }

    /// The value for `key`, to change in place (its age stays).
    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        self.entries.get_mut(key).map(|(_, v)| v)
    }

    /// Whether `key` is there.
    pub fn contains_key(&self, key: &K) -> bool {
        self.entries.contains_key(key)
    }

    /// Removes `key`.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        let (n, v) = self.entries.remove(key)?;
        self.order.remove(&n);
        Some(v)
    }

    /// Keeps only the entries for which `keep` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(&K, &mut V) -> bool) {
        let order = &mut self.order;
        self.entries.retain(|k, (n, v)| {
            let kept = keep(k, v);
            if !kept {
                order.remove(n);
            }
            kept
        });
    }

    /// How many entries it holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Removes every entry.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.order.clear();
    }

    /// The entries, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.entries.iter().map(|(k, (_, v))| (k, v))
    }

    /// The keys, in no particular order.
    pub fn keys(&self) -> impl Iterator<Item = &K> {
        self.entries.keys()
    }
}

/// A bounded set: a [`BoundedMap`] with no values.
#[derive(Debug, Clone)]
pub struct BoundedSet<K>(BoundedMap<K, ()>);

impl<K: Eq + Hash + Clone> BoundedSet<K> {
    /// An empty set holding at most `cap` keys.
    pub fn new(cap: usize) -> Self {
        Self(BoundedMap::new(cap))
    }

    /// Adds `key` (as the newest); returns the key evicted to make room, if one was.
    pub fn insert(&mut self, key: K) -> Option<K> {
        self.0.insert(key, ()).map(|(k, ())| k)
    }

    /// Whether `key` is there.
    pub fn contains(&self, key: &K) -> bool {
        self.0.contains_key(key)
    }

    /// Removes `key`; whether it was there.
    pub fn remove(&mut self, key: &K) -> bool {
        self.0.remove(key).is_some()
    }

    /// How many keys it holds.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The keys, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &K> {
        self.0.keys()
    }
}

/// At most `max` events per `window` for each key, for a bounded number of keys.
///
/// A key's window opens at its first event and lasts `window`; events past `max` in it are
/// refused. Keys whose window has passed are dropped first when the map is full, then the
/// oldest.
#[derive(Debug, Clone)]
pub struct RateLimit<K> {
    window: Duration,
    max: u32,
    seen: BoundedMap<K, (Instant, u32)>,
}

impl<K: Eq + Hash + Clone> RateLimit<K> {
    /// At most `max` events per `window` per key, for up to `keys` keys.
    pub fn new(max: u32, window: Duration, keys: usize) -> Self {
        Self {
            window,
            max: max.max(1),
            seen: BoundedMap::new(keys),
        }
    }

    /// One event a window: "at most once per `every`".
    pub fn once_per(every: Duration, keys: usize) -> Self {
        Self::new(1, every, keys)
    }

    /// Whether an event for `key` at `now` is allowed; counts it if so.
    pub fn allow(&mut self, key: K, now: Instant) -> bool {
        let window = self.window;
        if let Some((start, n)) = self.seen.get_mut(&key)
            && now.saturating_duration_since(*start) < window
        {
            if *n >= self.max {
                return false;
            }
            *n += 1;
            return true;
        }
        if !self.seen.contains_key(&key) && self.seen.len() >= self.seen.capacity() {
            self.seen
                .retain(|_, (start, _)| now.saturating_duration_since(*start) < window);
        }
        self.seen.insert(key, (now, 1));
        true
    }

    /// Whether an event for `key` at `now` would be allowed, without counting it.
    pub fn would_allow(&self, key: &K, now: Instant) -> bool {
        match self.seen.get(key) {
            Some((start, n)) => {
                now.saturating_duration_since(*start) >= self.window || *n < self.max
            }
            None => true,
        }
    }

    /// Forgets `key` (its next event is allowed).
    pub fn forget(&mut self, key: &K) {
        self.seen.remove(key);
    }

    /// How many keys it tracks.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether it tracks none.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_map_evicts_the_oldest_entry() {
        let mut m = BoundedMap::new(3);
        assert_eq!(m.insert(1, "a"), None);
        assert_eq!(m.insert(2, "b"), None);
        assert_eq!(m.insert(3, "c"), None);
        // Replacing makes an entry the newest and evicts nothing.
        assert_eq!(m.insert(1, "a2"), None);
        assert_eq!(m.insert(4, "d"), Some((2, "b")));
        assert_eq!(m.insert(5, "e"), Some((3, "c")));
        assert_eq!(m.len(), 3);
        assert_eq!(m.get(&1), Some(&"a2"));
        assert!(!m.contains_key(&2));
        assert_eq!(m.remove(&4), Some("d"));
        assert_eq!(m.insert(6, "f"), None);
        assert_eq!(m.pop_oldest(), Some((1, "a2")));
    }

    #[test]
    fn retain_keeps_the_order_consistent() {
        let mut m = BoundedMap::new(4);
        for i in 0..4 {
            m.insert(i, i);
        }
        m.retain(|k, _| k % 2 == 1);
        assert_eq!(m.len(), 2);
        m.insert(10, 10);
        m.insert(11, 11);
        assert_eq!(m.insert(12, 12), Some((1, 1)));
        assert_eq!(m.insert(13, 13), Some((3, 3)));
        assert_eq!(m.len(), 4);
    }

    #[test]
    fn a_map_never_holds_more_than_its_capacity() {
        let mut m = BoundedMap::new(100);
        for i in 0..10_000u32 {
            m.insert(i % 777, i);
            assert!(m.len() <= 100);
        }
        let mut s = BoundedSet::new(2);
        s.insert("x");
        s.insert("y");
        assert_eq!(s.insert("z"), Some("x"));
        assert!(s.contains(&"z") && s.contains(&"y") && !s.contains(&"x"));
    }

    #[test]
    fn once_per_window_per_key() {
        let t0 = Instant::now();
        let every = Duration::from_secs(30);
        let mut r = RateLimit::once_per(every, 16);
        assert!(r.allow("a", t0));
        assert!(!r.would_allow(&"a", t0 + every - Duration::from_millis(1)));
        assert!(!r.allow("a", t0 + every - Duration::from_millis(1)));
        assert!(r.allow("b", t0));
        assert!(r.allow("a", t0 + every));
    }

    #[test]
    fn n_per_window_and_bounded_keys() {
        let t0 = Instant::now();
        let minute = Duration::from_secs(60);
        let mut r = RateLimit::new(10, minute, 4);
        for _ in 0..10 {
            assert!(r.allow(1, t0));
        }
        assert!(!r.allow(1, t0 + Duration::from_secs(59)));
        assert!(r.allow(1, t0 + minute));
        for k in 2..100 {
            r.allow(k, t0 + minute);
            assert!(r.len() <= 4);
        }
        r.forget(&99);
        assert!(r.allow(99, t0 + minute));
    }
}
