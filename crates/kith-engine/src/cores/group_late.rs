//! Member devices learned late: the rules for frames whose sending device is not known yet,
//! and for the certificates an admin passes on. A core with no I/O: it reads no clock (the
//! caller passes `Instant`s) and touches neither the store nor the network.
//!
//! In a group made of people who are not each other's contacts, a member learns the other
//! members' devices from the ops (with the certificates the admin knew when it sent them)
//! and from certificates the admin passes on when it learns them later. A sender's first
//! frame can therefore arrive before its device's certificate.
//!
//! - [`UnknownSenders`] holds such frames (bounded: per sender, per publisher and in all;
//!   for at most [`HOLD_FOR`]) until the certificate arrives; the actor then takes them
//!   as if they had just come. A frame dropped from the holding (full, expired) is fetched
//!   again by the next catch-up, as before the holding existed: the holding only saves time.
//!   Who can fill it: anyone on the topic, with made-up sender keys. The bounds keep one
//!   publisher to [`MAX_PER_PUBLISHER`] frames, and nothing held is trusted: a frame
//!   taken from the holding goes through every check of a fresh one.
//! - [`CertBatch`] gathers the certificates an admin learns late for [`CERT_BATCH_DELAY`],
//!   so that an admin who learns 255 member devices in a burst sends each member one body
//!   with many certificates, not 255 bodies (255 × 255 in all).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use kith_types::{CurveKey, GroupId};

/// Most frames held from unknown senders, in all.
pub const MAX_HELD: usize = 1024;
/// Most frames held for one sending device.
pub const MAX_PER_SENDER: usize = 64;
/// Most frames held that one peer handed over (published or relayed).
pub const MAX_PER_PUBLISHER: usize = 128;
/// How long a frame waits for its sender's certificate.
pub const HOLD_FOR: Duration = Duration::from_secs(120);
/// Most distinct senders checked for a certificate per call of [`UnknownSenders::senders`].
pub const CHECK_PER_ROUND: usize = 64;

/// How long an admin gathers late certificates before passing them on.
pub const CERT_BATCH_DELAY: Duration = Duration::from_millis(300);
/// Most certificates gathered; more flush the batch at once.
pub const MAX_CERT_BATCH: usize = 512;

/// A frame held until its sender's device is known.
pub struct Waiting<F, P> {
    /// The group the frame was for.
    pub group: GroupId,
    /// The frame.
    pub frame: F,
    /// The peer that published it (gossip), if known.
    pub author: Option<P>,
    /// The peer that handed it over.
    pub source: Option<P>,
    at: Instant,
}

/// Frames of unknown sending devices, oldest first.
pub struct UnknownSenders<F, P> {
    queue: VecDeque<(CurveKey, Waiting<F, P>)>,
    per_sender: HashMap<CurveKey, usize>,
    per_publisher: HashMap<P, usize>,
}

impl<F, P: std::fmt::Debug> std::fmt::Debug for Waiting<F, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Waiting")
            .field("group", &self.group)
            .field("author", &self.author)
            .finish_non_exhaustive()
    }
}

impl<F, P> std::fmt::Debug for UnknownSenders<F, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnknownSenders")
            .field("held", &self.queue.len())
            .finish()
    }
}

impl<F, P> Default for UnknownSenders<F, P> {
    fn default() -> Self {
        Self {
            queue: VecDeque::new(),
            per_sender: HashMap::new(),
            per_publisher: HashMap::new(),
        }
    }
}

impl<F, P: Clone + Eq + std::hash::Hash> UnknownSenders<F, P> {
    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// How many frames are held.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Holds a frame of `sender` (unknown device). Returns false (not held) when the sender
    /// or the peer that handed it over has its share already; when the holding is full the
    /// oldest frame makes room.
    pub fn hold(
        &mut self,
        sender: CurveKey,
        group: GroupId,
        frame: F,
        author: Option<P>,
        source: Option<P>,
        now: Instant,
    ) -> bool {
        if self.per_sender.get(&sender).copied().unwrap_or(0) >= MAX_PER_SENDER {
            return false;
        }
        let by = author.clone().or_else(|| source.clone());
        if let Some(p) = &by
            && self.per_publisher.get(p).copied().unwrap_or(0) >= MAX_PER_PUBLISHER
        {
            return false;
        }
        while self.queue.len() >= MAX_HELD {
            self.pop_front();
        }
        *self.per_sender.entry(sender).or_default() += 1;
        if let Some(p) = by {
            *self.per_publisher.entry(p).or_default() += 1;
        }
        self.queue.push_back((
            sender,
            Waiting {
                group,
                frame,
                author,
                source,
                at: now,
            },
        ));
        true
    }

    /// Drops the frames held longer than [`HOLD_FOR`]; returns how many.
    pub fn expire(&mut self, now: Instant) -> usize {
        let mut n = 0;
        while self
            .queue
            .front()
            .is_some_and(|(_, w)| now.saturating_duration_since(w.at) >= HOLD_FOR)
        {
            self.pop_front();
            n += 1;
        }
        n
    }

    /// Up to [`CHECK_PER_ROUND`] distinct senders with frames held, oldest first.
    pub fn senders(&self) -> Vec<CurveKey> {
        let mut out: Vec<CurveKey> = Vec::new();
        for (s, _) in &self.queue {
            if !out.contains(s) {
                out.push(*s);
                if out.len() >= CHECK_PER_ROUND {
                    break;
                }
            }
        }
        out
    }

    /// Takes every frame held for `sender` (its device became known), oldest first.
    pub fn take(&mut self, sender: &CurveKey) -> Vec<Waiting<F, P>> {
        if !self.per_sender.contains_key(sender) {
            return Vec::new();
        }
        let mut out = Vec::new();
        let mut keep = VecDeque::with_capacity(self.queue.len());
        for (s, w) in self.queue.drain(..) {
            if &s == sender {
                out.push(w);
            } else {
                keep.push_back((s, w));
            }
        }
        self.queue = keep;
        self.per_sender.remove(sender);
        for w in &out {
            if let Some(p) = w.author.as_ref().or(w.source.as_ref()) {
                release(&mut self.per_publisher, p);
            }
        }
        out
    }

    fn pop_front(&mut self) {
        if let Some((s, w)) = self.queue.pop_front() {
            release(&mut self.per_sender, &s);
            if let Some(p) = w.author.as_ref().or(w.source.as_ref()) {
                release(&mut self.per_publisher, p);
            }
        }
    }
}

fn release<K: Eq + std::hash::Hash + Clone>(counts: &mut HashMap<K, usize>, k: &K) {
    if let Some(n) = counts.get_mut(k) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            counts.remove(k);
        }
    }
}

/// Certificates an admin learned late, gathered before they are passed on.
///
/// The rule: a certificate learned when none was passed on for [`CERT_BATCH_DELAY`] goes at
/// once (a lone member added, or the first of a burst: nobody waits for it); the ones that
/// follow within the delay are gathered and go together when it is over (the actor's tick),
/// when the batch is full, or before the admin's next message to a group (so a member never
/// sees a file or a text that points at devices it has not been told about yet). An admin
/// who learns 255 member devices over a few seconds thus sends each member one body per
/// [`CERT_BATCH_DELAY`], not one per certificate.
#[derive(Debug)]
pub struct CertBatch<C> {
    certs: Vec<C>,
    since: Option<Instant>,
    last_sent: Option<Instant>,
}

impl<C> Default for CertBatch<C> {
    fn default() -> Self {
        Self {
            certs: Vec::new(),
            since: None,
            last_sent: None,
        }
    }
}

impl<C: PartialEq> CertBatch<C> {
    /// Adds a certificate (once); true when the batch must go now: it is full, or nothing
    /// was passed on in the last [`CERT_BATCH_DELAY`].
    pub fn add(&mut self, cert: C, now: Instant) -> bool {
        if !self.certs.contains(&cert) {
            self.certs.push(cert);
        }
        self.since.get_or_insert(now);
        self.certs.len() >= MAX_CERT_BATCH
            || self
                .last_sent
                .is_none_or(|t| now.saturating_duration_since(t) >= CERT_BATCH_DELAY)
    }

    /// The batch, when it is due (gathered for [`CERT_BATCH_DELAY`]) or `all`.
    pub fn take(&mut self, now: Instant, all: bool) -> Vec<C> {
        match self.since {
            Some(t) if all || now.saturating_duration_since(t) >= CERT_BATCH_DELAY => {
                self.since = None;
                self.last_sent = Some(now);
                std::mem::take(&mut self.certs)
            }
            _ => Vec::new(),
        }
    }

    /// Nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.certs.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn curve(n: u8) -> CurveKey {
        CurveKey([n; 32])
    }

    fn group() -> GroupId {
        GroupId([7; 16])
    }

    #[test]
    fn frames_wait_for_their_sender_and_come_back_in_order() {
        let mut h: UnknownSenders<u32, u8> = UnknownSenders::default();
        let t = Instant::now();
        assert!(h.hold(curve(1), group(), 1, Some(9), None, t));
        assert!(h.hold(curve(2), group(), 2, Some(9), None, t));
        assert!(h.hold(curve(1), group(), 3, None, Some(8), t));
        assert_eq!(h.senders(), vec![curve(1), curve(2)]);
        let got: Vec<u32> = h.take(&curve(1)).into_iter().map(|w| w.frame).collect();
        assert_eq!(got, vec![1, 3]);
        assert_eq!(h.len(), 1);
        assert!(h.take(&curve(1)).is_empty());
        assert_eq!(h.senders(), vec![curve(2)]);
    }

    #[test]
    fn one_publisher_cannot_fill_the_holding() {
        let mut h: UnknownSenders<u32, u8> = UnknownSenders::default();
        let t = Instant::now();
        let mut held = 0;
        for i in 0..(MAX_HELD as u32) {
            // A made-up sender key each time, all from peer 66.
            let mut k = [0u8; 32];
            k[..4].copy_from_slice(&i.to_le_bytes());
            if h.hold(CurveKey(k), group(), i, Some(66), None, t) {
                held += 1;
            }
        }
        assert_eq!(held, MAX_PER_PUBLISHER);
        // An honest member's frame still finds room.
        assert!(h.hold(curve(200), group(), 1, Some(5), None, t));
        assert_eq!(h.take(&curve(200)).len(), 1);
    }

    #[test]
    fn one_sender_has_a_share_and_the_oldest_make_room() {
        let mut h: UnknownSenders<u32, u16> = UnknownSenders::default();
        let t = Instant::now();
        for i in 0..(MAX_PER_SENDER as u32 + 5) {
            h.hold(curve(1), group(), i, Some(i as u16), None, t);
        }
        assert_eq!(h.len(), MAX_PER_SENDER);
        // Many publishers, many senders: the total stays bounded, oldest dropped first.
        for i in 0..(MAX_HELD as u32 * 2) {
            let mut k = [0u8; 32];
            k[..4].copy_from_slice(&(i + 10).to_le_bytes());
            h.hold(
                CurveKey(k),
                group(),
                i,
                Some(1000 + (i % 60000) as u16),
                None,
                t,
            );
        }
        assert_eq!(h.len(), MAX_HELD);
        assert!(h.take(&curve(1)).is_empty(), "the oldest made room");
        assert!(h.per_sender.len() <= MAX_HELD);
        assert!(h.per_publisher.len() <= MAX_HELD);
    }

    #[test]
    fn held_frames_expire() {
        let mut h: UnknownSenders<u32, u8> = UnknownSenders::default();
        let t = Instant::now();
        h.hold(curve(1), group(), 1, Some(1), None, t);
        h.hold(curve(2), group(), 2, Some(1), None, t + HOLD_FOR / 2);
        assert_eq!(h.expire(t + HOLD_FOR), 1);
        assert_eq!(h.len(), 1);
        assert_eq!(h.expire(t + HOLD_FOR * 2), 1);
        assert!(h.is_empty());
        assert!(h.per_publisher.is_empty() && h.per_sender.is_empty());
    }

    #[test]
    fn a_lone_certificate_goes_at_once_and_a_burst_goes_together() {
        let mut b: CertBatch<u32> = CertBatch::default();
        let t = Instant::now();
        // The first goes at once.
        assert!(b.add(1, t));
        assert_eq!(b.take(t, true), vec![1]);
        // The ones that follow within the delay wait, and go together after it.
        assert!(!b.add(2, t + Duration::from_millis(10)));
        assert!(!b.add(3, t + Duration::from_millis(100)));
        assert!(!b.add(2, t + Duration::from_millis(150)));
        assert!(b.take(t + Duration::from_millis(200), false).is_empty());
        let due = t + Duration::from_millis(10) + CERT_BATCH_DELAY;
        assert_eq!(b.take(due, false), vec![2, 3]);
        assert!(b.is_empty());
        assert!(b.take(due + CERT_BATCH_DELAY * 2, true).is_empty());
        // Quiet for the delay again: the next one goes at once.
        assert!(b.add(4, due + CERT_BATCH_DELAY));
        let sent = due + CERT_BATCH_DELAY;
        assert_eq!(b.take(sent, true), vec![4]);
        // A full batch goes at once.
        for i in 0..(MAX_CERT_BATCH as u32 - 1) {
            assert!(!b.add(i + 10, sent));
        }
        assert!(b.add(u32::MAX, sent), "a full batch goes at once");
        assert_eq!(b.take(sent, true).len(), MAX_CERT_BATCH);
    }

    /// The admin who learns 255 member devices, one every 10 ms (pre-key claims coming
    /// back), passes them on in a handful of bodies per member, not 255.
    #[test]
    fn a_burst_of_255_certificates_goes_in_few_batches() {
        let mut b: CertBatch<u32> = CertBatch::default();
        let t = Instant::now();
        let mut batches = 0;
        let mut passed = 0;
        let tick = Duration::from_millis(250);
        let mut next_tick = t + tick;
        for i in 0..255u32 {
            let now = t + Duration::from_millis(10 * u64::from(i));
            while next_tick <= now {
                let got = b.take(next_tick, false);
                if !got.is_empty() {
                    batches += 1;
                    passed += got.len();
                }
                next_tick += tick;
            }
            if b.add(i, now) {
                batches += 1;
                passed += b.take(now, true).len();
            }
        }
        passed += b.take(next_tick + CERT_BATCH_DELAY, true).len();
        batches += 1;
        assert_eq!(passed, 255);
        assert!(batches <= 12, "{batches} batches");
    }
}
