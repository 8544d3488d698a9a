//! Mailbox service: the group topics registered devices watch, and the group frames kept on
//! them for those devices while they are away.
//!
//! A mailbox cannot open group frames and does not know the groups: it keeps what arrives
//! on a watched topic, per topic, in arrival order, bounded by a frame count and a byte
//! count (oldest evicted first) and by age. Frames are keyed by a digest of the topic and an
//! arrival number; an index by (topic, sender device, seq) keeps one copy of each frame and
//! answers "what does this device lack" without reading the frames themselves.

use kith_types::{CurveKey, DeviceKey};
use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::tx::{dec, enc};
use crate::*;

/// What each registered device watches: (device key, topic) → ().
pub(crate) const MAILBOX_WATCHES: TableDefinition<(DeviceKey, &str), ()> =
    TableDefinition::new("mailbox_watches");
/// How many devices watch each topic (only topics with at least one).
pub(crate) const WATCHED_TOPICS: TableDefinition<&str, u64> =
    TableDefinition::new("watched_topics");
/// Kept frames: (topic digest, arrival number) → [`KeptFrame`].
pub(crate) const TOPIC_FRAMES: SealedDef<(&[u8; 32], u64)> = SealedDef::new("topic_frames");
/// One copy per frame: (topic digest, sender device, seq) → arrival number.
pub(crate) const TOPIC_FRAME_INDEX: TableDefinition<(&[u8; 32], CurveKey, u64), u64> =
    TableDefinition::new("topic_frame_index");
/// Per topic digest: (frames kept, frame bytes kept, next arrival number), changed in the
/// same transaction as the rows it counts.
pub(crate) const TOPIC_USAGE: TableDefinition<&[u8; 32], (u64, u64, u64)> =
    TableDefinition::new("topic_usage");

/// The key under which a topic's frames are kept.
pub fn topic_digest(topic: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"kith-kept-topic-v1");
    h.update(topic.as_bytes());
    h.finalize().into()
}

/// A frame as a mailbox keeps it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
struct KeptFrame {
    /// The sending device's Curve25519 key (a byte string, as `serde_bytes` wrote it).
    sender: CurveKey,
    seq: u64,
    at_ms: u64,
    #[serde(with = "serde_bytes")]
    frame: Vec<u8>,
}

/// How much a mailbox keeps per topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TopicLimits {
    /// Most frames kept per topic.
    pub max_frames: u64,
    /// Most frame bytes kept per topic.
    pub max_bytes: u64,
    /// Frames that arrived before this time (ms) are dropped.
    pub expire_before_ms: u64,
}

/// What a topic holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TopicUsage {
    /// Frames kept.
    pub frames: u64,
    /// Frame bytes kept.
    pub bytes: u64,
}

/// Topics whose watchers went from none to some, or from some to none, in a
/// [`WriteTx::set_watches`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WatchChange {
    /// Watched now by this device and nobody before.
    pub started: Vec<String>,
    /// Watched by nobody any more.
    pub stopped: Vec<String>,
}

/// Frames a device lacks, and whether more are kept than fit.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Lacking {
    /// Encoded frames, oldest first.
    pub frames: Vec<Vec<u8>>,
    /// The answer was cut at a limit.
    pub more: bool,
}

macro_rules! topic_reads {
    ($t:ty) => {
        impl $t {
            /// The topics a device registered with this mailbox watches, in order.
            pub fn watches(&self, dev: &DeviceKey) -> Result<Vec<String>, StoreError> {
                let dev = *dev;
                let t = self.table(MAILBOX_WATCHES)?;
                let mut out = Vec::new();
                for row in t.range((dev, "")..)? {
                    let (k, _) = row?;
                    let (d, topic) = k.value();
                    if d != dev {
                        break;
                    }
                    out.push(topic.to_string());
                }
                Ok(out)
            }

            /// Whether a device watches a topic.
            pub fn watches_topic(&self, dev: &DeviceKey, topic: &str) -> Result<bool, StoreError> {
                let t = self.table(MAILBOX_WATCHES)?;
                Ok(t.get((*dev, topic))?.is_some())
            }

            /// How many devices watch a topic.
            pub fn topic_watchers(&self, topic: &str) -> Result<u64, StoreError> {
                let t = self.table(WATCHED_TOPICS)?;
                Ok(t.get(topic)?.map_or(0, |n| n.value()))
            }

            /// Every topic some device watches.
            pub fn watched_topics(&self) -> Result<Vec<String>, StoreError> {
                let t = self.table(WATCHED_TOPICS)?;
                let mut out = Vec::new();
                for row in t.iter()? {
                    let (k, n) = row?;
                    if n.value() > 0 {
                        out.push(k.value().to_string());
                    }
                }
                Ok(out)
            }

            /// What a topic holds now.
            pub fn topic_usage(&self, topic: &str) -> Result<TopicUsage, StoreError> {
                let t = self.table(TOPIC_USAGE)?;
                let (frames, bytes, _) = t
                    .get(&topic_digest(topic))?
                    .map_or((0, 0, 0), |v| v.value());
                Ok(TopicUsage { frames, bytes })
            }

            /// The frames kept on `topic` that a device holding `have` (sender device, every
            /// seq up to this one) lacks: every frame of a sender not listed, and those after
            /// its mark. Oldest first, at most `max_frames` frames and `max_bytes` bytes;
            /// `more` when some were left out.
            pub fn topic_frames_lacking(
                &self,
                topic: &str,
                have: &[(CurveKey, u64)],
                max_frames: usize,
                max_bytes: usize,
            ) -> Result<Lacking, StoreError> {
                let digest = topic_digest(topic);
                let marks: std::collections::HashMap<CurveKey, u64> =
                    have.iter().copied().collect();
                // The index is small rows: pick the arrival numbers first, read frames after.
                let index = self.table(TOPIC_FRAME_INDEX)?;
                let mut wanted = Vec::new();
                for row in index.range(
                    (&digest, CurveKey([0u8; 32]), 0u64)
                        ..=(&digest, CurveKey([255u8; 32]), u64::MAX),
                )? {
                    let (k, arrival) = row?;
                    let (_, sender, seq) = k.value();
                    if marks.get(&sender).is_none_or(|m| seq > *m) {
                        wanted.push(arrival.value());
                    }
                }
                wanted.sort_unstable();
                let frames = self.table(TOPIC_FRAMES)?;
                let mut out = Lacking::default();
                let mut bytes = 0usize;
                for arrival in wanted {
                    let Some(v) = frames.get((&digest, arrival))? else {
                        continue;
                    };
                    let kept: KeptFrame = dec(v.value())?;
                    if out.frames.len() >= max_frames || bytes + kept.frame.len() > max_bytes {
                        out.more = true;
                        break;
                    }
                    bytes += kept.frame.len();
                    out.frames.push(kept.frame);
                }
                Ok(out)
            }
        }
    };
}

topic_reads!(ReadTx);
topic_reads!(WriteTx<'_>);

impl WriteTx<'_> {
    pub(crate) fn create_topic_tables(&mut self) -> Result<(), StoreError> {
        self.table_mut(MAILBOX_WATCHES)?;
        self.table_mut(WATCHED_TOPICS)?;
        self.table_mut(TOPIC_FRAMES)?;
        self.table_mut(TOPIC_FRAME_INDEX)?;
        self.table_mut(TOPIC_USAGE)?;
        Ok(())
    }

    /// Replaces the topics a device watches; returns the topics that gained their first
    /// watcher or lost their last. The caller checks the topics' form and how many there
    /// are.
    pub fn set_watches(
        &mut self,
        dev: &DeviceKey,
        topics: &[String],
    ) -> Result<WatchChange, StoreError> {
        let old = self.watches(dev)?;
        let dev = *dev;
        let new: std::collections::BTreeSet<&str> = topics.iter().map(String::as_str).collect();
        let mut change = WatchChange::default();
        for topic in old.iter().filter(|t| !new.contains(t.as_str())) {
            self.table_mut(MAILBOX_WATCHES)?
                .remove((dev, topic.as_str()))?;
            let mut counts = self.table_mut(WATCHED_TOPICS)?;
            let n = counts.get(topic.as_str())?.map_or(0, |v| v.value());
            if n <= 1 {
                counts.remove(topic.as_str())?;
                change.stopped.push(topic.clone());
            } else {
                counts.insert(topic.as_str(), n - 1)?;
            }
        }
        for topic in new.iter().filter(|t| !old.iter().any(|o| o == *t)) {
            self.table_mut(MAILBOX_WATCHES)?.insert((dev, *topic), ())?;
            let mut counts = self.table_mut(WATCHED_TOPICS)?;
            let n = counts.get(*topic)?.map_or(0, |v| v.value());
            counts.insert(*topic, n + 1)?;
            if n == 0 {
                change.started.push(topic.to_string());
            }
        }
        Ok(change)
    }

    /// Keeps a frame that arrived on `topic` (from `sender`, with its `seq`). Returns false
    /// when that frame is kept already. Frames past the topic's limits go first, oldest
    /// first, so the new one fits; so do frames older than `limits.expire_before_ms`.
    pub fn keep_topic_frame(
        &mut self,
        topic: &str,
        sender: &CurveKey,
        seq: u64,
        frame: &[u8],
        now_ms: u64,
        limits: TopicLimits,
    ) -> Result<bool, StoreError> {
        let digest = topic_digest(topic);
        if self
            .table(TOPIC_FRAME_INDEX)?
            .get((&digest, *sender, seq))?
            .is_some()
        {
            return Ok(false);
        }
        let size = frame.len() as u64;
        self.evict_topic_frames(&digest, limits.expire_before_ms, |u| {
            u.frames.saturating_add(1) > limits.max_frames
                || u.bytes.saturating_add(size) > limits.max_bytes
        })?;
        let (frames, bytes, next) = self
            .table(TOPIC_USAGE)?
            .get(&digest)?
            .map_or((0, 0, 0), |v| v.value());
        let row = KeptFrame {
            sender: *sender,
            seq,
            at_ms: now_ms,
            frame: frame.to_vec(),
        };
        self.table_mut(TOPIC_FRAMES)?
            .insert((&digest, next), enc(&row)?.as_slice())?;
        self.table_mut(TOPIC_FRAME_INDEX)?
            .insert((&digest, *sender, seq), next)?;
        self.table_mut(TOPIC_USAGE)?.insert(
            &digest,
            (
                frames + 1,
                bytes.saturating_add(size),
                next.saturating_add(1),
            ),
        )?;
        Ok(true)
    }

    /// Drops a topic's oldest frames while they arrived before `before_ms` or `over` says
    /// the topic holds too much.
    fn evict_topic_frames(
        &mut self,
        digest: &[u8; 32],
        before_ms: u64,
        over: impl Fn(TopicUsage) -> bool,
    ) -> Result<u64, StoreError> {
        let mut dropped = 0u64;
        loop {
            let Some((frames, bytes, next)) =
                self.table(TOPIC_USAGE)?.get(digest)?.map(|v| v.value())
            else {
                return Ok(dropped);
            };
            let first = {
                let t = self.table(TOPIC_FRAMES)?;
                let mut it = t.range((digest, 0u64)..=(digest, u64::MAX))?;
                match it.next().transpose()? {
                    Some((k, v)) => Some((k.value().1, dec::<KeptFrame>(v.value())?)),
                    None => None,
                }
            };
            let Some((arrival, kept)) = first else {
                // Nothing left: the counters start again from zero (keeping `next`).
                if frames != 0 || bytes != 0 {
                    self.table_mut(TOPIC_USAGE)?.insert(digest, (0, 0, next))?;
                }
                return Ok(dropped);
            };
            if kept.at_ms >= before_ms && !over(TopicUsage { frames, bytes }) {
                return Ok(dropped);
            }
            self.table_mut(TOPIC_FRAMES)?.remove((digest, arrival))?;
            self.table_mut(TOPIC_FRAME_INDEX)?
                .remove((digest, kept.sender, kept.seq))?;
            self.table_mut(TOPIC_USAGE)?.insert(
                digest,
                (
                    frames.saturating_sub(1),
                    bytes.saturating_sub(kept.frame.len() as u64),
                    next,
                ),
            )?;
            dropped += 1;
        }
    }

    /// Drops every frame kept on a topic (nobody watches it any more).
    pub fn drop_topic(&mut self, topic: &str) -> Result<u64, StoreError> {
        let digest = topic_digest(topic);
        let mut n = 0u64;
        self.table_mut(TOPIC_FRAMES)?.retain_in(
            (&digest, 0u64)..=(&digest, u64::MAX),
            |_, _| {
                n += 1;
                false
            },
        )?;
        self.table_mut(TOPIC_FRAME_INDEX)?.retain_in(
            (&digest, CurveKey([0u8; 32]), 0u64)..=(&digest, CurveKey([255u8; 32]), u64::MAX),
            |_, _| false,
        )?;
        self.table_mut(TOPIC_USAGE)?.remove(&digest)?;
        Ok(n)
    }

    /// Drops frames kept longer than retention (arrived before `before_ms`) on every topic;
    /// returns how many.
    pub fn expire_topic_frames(&mut self, before_ms: u64) -> Result<u64, StoreError> {
        let digests: Vec<[u8; 32]> = {
            let t = self.table(TOPIC_USAGE)?;
            let mut v = Vec::new();
            for row in t.iter()? {
                v.push(*row?.0.value());
            }
            v
        };
        let mut n = 0u64;
        for d in digests {
            n += self.evict_topic_frames(&d, before_ms, |_| false)?;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T1: &str = "kith/g/00000000000000000000000000000001";
    const T2: &str = "kith/g/00000000000000000000000000000002";
    /// Two sender devices.
    const S1: CurveKey = CurveKey([1; 32]);
    const S2: CurveKey = CurveKey([2; 32]);

    /// A kept frame as written before its sender was typed decodes, and encodes the same.
    #[test]
    fn kept_frame_encoding_is_unchanged() {
        #[derive(Serialize)]
        struct Old {
            #[serde(with = "serde_bytes")]
            sender: [u8; 32],
            seq: u64,
            at_ms: u64,
            #[serde(with = "serde_bytes")]
            frame: Vec<u8>,
        }
        let old = enc(&Old {
            sender: [1; 32],
            seq: 2,
            at_ms: 3,
            frame: b"f".to_vec(),
        })
        .unwrap();
        let typed: KeptFrame = dec(&old).unwrap();
        assert_eq!(typed.sender, S1);
        assert_eq!(
            (typed.seq, typed.at_ms, typed.frame.as_slice()),
            (2, 3, &b"f"[..])
        );
        assert_eq!(enc(&typed).unwrap(), old);
    }

    fn limits(max_frames: u64, max_bytes: u64) -> TopicLimits {
        TopicLimits {
            max_frames,
            max_bytes,
            expire_before_ms: 0,
        }
    }

    fn open() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        (dir, store)
    }

    /// The frames a device holding nothing would get, oldest first.
    fn kept(store: &Store, topic: &str) -> Vec<Vec<u8>> {
        store
            .read(|r| r.topic_frames_lacking(topic, &[], usize::MAX, usize::MAX))
            .unwrap()
            .frames
    }

    #[test]
    fn watch_sets_replace_and_count_watchers() {
        let (_d, store) = open();
        let (a, b) = (DeviceKey([1; 32]), DeviceKey([2; 32]));
        store
            .write(|w| {
                let c = w.set_watches(&a, &[T1.into(), T2.into()])?;
                assert_eq!(c.started, vec![T1.to_string(), T2.to_string()]);
                assert!(c.stopped.is_empty());
                let c = w.set_watches(&b, &[T1.into()])?;
                assert!(c.started.is_empty() && c.stopped.is_empty());
                // A replaces its set: T2 loses its only watcher, T1 keeps B.
                let c = w.set_watches(&a, &[])?;
                assert_eq!(c.stopped, vec![T2.to_string()]);
                assert!(w.watches(&a)?.is_empty());
                assert!(w.watches_topic(&b, T1)? && !w.watches_topic(&a, T1)?);
                let c = w.set_watches(&b, &[T1.into(), T1.into()])?;
                assert_eq!(c, WatchChange::default(), "a repeat is one topic");
                Ok(())
            })
            .unwrap();
        // Durable, and the union is what is subscribed at startup.
        assert_eq!(
            store.read(|r| r.watched_topics()).unwrap(),
            vec![T1.to_string()]
        );
    }

    #[test]
    fn frames_are_kept_once_in_arrival_order() {
        let (_d, store) = open();
        let lim = limits(100, 1 << 20);
        store
            .write(|w| {
                assert!(w.keep_topic_frame(T1, &S1, 2, b"a2", 10, lim)?);
                assert!(w.keep_topic_frame(T1, &S1, 1, b"a1", 11, lim)?);
                assert!(w.keep_topic_frame(T1, &S2, 1, b"b1", 12, lim)?);
                // The same (sender, seq) again, whatever its bytes: kept once.
                assert!(!w.keep_topic_frame(T1, &S1, 2, b"a2", 13, lim)?);
                assert!(!w.keep_topic_frame(T1, &S1, 2, b"xx", 13, lim)?);
                // Another topic is kept apart.
                assert!(w.keep_topic_frame(T2, &S1, 2, b"a2", 13, lim)?);
                Ok(())
            })
            .unwrap();
        assert_eq!(
            kept(&store, T1),
            vec![b"a2".to_vec(), b"a1".to_vec(), b"b1".to_vec()]
        );
        assert_eq!(
            store.read(|r| r.topic_usage(T1)).unwrap(),
            TopicUsage {
                frames: 3,
                bytes: 6
            }
        );
        // What a device lacks: sender 1 up to 1 held; sender 2 not listed.
        let l = store
            .read(|r| r.topic_frames_lacking(T1, &[(S1, 1)], 10, 1000))
            .unwrap();
        assert_eq!(l.frames, vec![b"a2".to_vec(), b"b1".to_vec()]);
        assert!(!l.more);
        // Cut by count, then by bytes.
        let l = store
            .read(|r| r.topic_frames_lacking(T1, &[], 2, 1000))
            .unwrap();
        assert_eq!((l.frames.len(), l.more), (2, true));
        let l = store
            .read(|r| r.topic_frames_lacking(T1, &[], 10, 5))
            .unwrap();
        assert_eq!((l.frames.len(), l.more), (2, true));
        // Everything held: nothing.
        let l = store
            .read(|r| r.topic_frames_lacking(T1, &[(S1, 9), (S2, 9)], 10, 1000))
            .unwrap();
        assert_eq!(l, Lacking::default());
    }

    #[test]
    fn a_topic_keeps_at_most_its_frame_count_oldest_evicted_first() {
        let (_d, store) = open();
        let lim = limits(3, 1 << 20);
        store
            .write(|w| {
                for seq in 1..=5u64 {
                    w.keep_topic_frame(T1, &S1, seq, &[seq as u8; 4], seq, lim)?;
                }
                Ok(())
            })
            .unwrap();
        assert_eq!(kept(&store, T1), vec![vec![3u8; 4], vec![4; 4], vec![5; 4]]);
        assert_eq!(store.read(|r| r.topic_usage(T1)).unwrap().frames, 3);
        // An evicted frame is forgotten by the index too: it may be kept again.
        assert!(
            store
                .write(|w| w.keep_topic_frame(T1, &S1, 1, &[1; 4], 9, lim))
                .unwrap()
        );
        assert_eq!(kept(&store, T1), vec![vec![4u8; 4], vec![5; 4], vec![1; 4]]);
    }

    #[test]
    fn a_topic_keeps_at_most_its_bytes() {
        let (_d, store) = open();
        let lim = limits(100, 10);
        store
            .write(|w| {
                w.keep_topic_frame(T1, &S1, 1, &[1; 4], 1, lim)?;
                w.keep_topic_frame(T1, &S1, 2, &[2; 4], 2, lim)?;
                // 4 + 4 + 4 > 10: the oldest goes.
                w.keep_topic_frame(T1, &S1, 3, &[3; 4], 3, lim)?;
                Ok(())
            })
            .unwrap();
        assert_eq!(kept(&store, T1), vec![vec![2u8; 4], vec![3; 4]]);
        assert_eq!(
            store.read(|r| r.topic_usage(T1)).unwrap(),
            TopicUsage {
                frames: 2,
                bytes: 8
            }
        );
        // Filling one topic never touches another's frames.
        store
            .write(|w| w.keep_topic_frame(T2, &S1, 1, &[7; 4], 4, lim))
            .unwrap();
        assert_eq!(kept(&store, T1).len(), 2);
    }

    #[test]
    fn old_frames_expire_and_dropped_topics_are_empty() {
        let (_d, store) = open();
        let lim = limits(100, 1 << 20);
        store
            .write(|w| {
                w.keep_topic_frame(T1, &S1, 1, b"old", 100, lim)?;
                w.keep_topic_frame(T1, &S1, 2, b"new", 200, lim)?;
                w.keep_topic_frame(T2, &S1, 1, b"old", 100, lim)?;
                Ok(())
            })
            .unwrap();
        assert_eq!(store.write(|w| w.expire_topic_frames(150)).unwrap(), 2);
        assert_eq!(kept(&store, T1), vec![b"new".to_vec()]);
        assert!(kept(&store, T2).is_empty());
        assert_eq!(
            store.read(|r| r.topic_usage(T2)).unwrap(),
            TopicUsage::default()
        );
        // Expiry also runs as frames arrive.
        let late = TopicLimits {
            expire_before_ms: 250,
            ..lim
        };
        store
            .write(|w| w.keep_topic_frame(T1, &S1, 3, b"newer", 300, late))
            .unwrap();
        assert_eq!(kept(&store, T1), vec![b"newer".to_vec()]);
        assert_eq!(store.write(|w| w.drop_topic(T1)).unwrap(), 1);
        assert!(kept(&store, T1).is_empty());
        assert_eq!(
            store.read(|r| r.topic_usage(T1)).unwrap(),
            TopicUsage::default()
        );
        // Nothing of it is left in the index either.
        assert!(
            store
                .write(|w| w.keep_topic_frame(T1, &S1, 3, b"again", 400, lim))
                .unwrap()
        );
    }
}
