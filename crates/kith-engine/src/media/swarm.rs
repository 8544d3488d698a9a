//! Many members fetching one group file: who asks whom for which chunk, and how the sender
//! keeps its upload near a couple of copies of the file.
//!
//! A group file is wanted by every member at about the same time. If each asked the sender
//! for every chunk, the sender would upload the file once per member. Instead:
//!
//! 1. **Members say what they hold.** `MediaRequest::Have` is answered with a bitmap, one
//!    bit per chunk (the length is fixed by the manifest's chunk count: at most 1 KiB). A
//!    download asks the members among its sources for theirs, a few each half second, and
//!    each map again once it is [`HAVE_EVERY`] old; a good chunk from a member sets its bit.
//! 2. **Chunks go to the members that hold them.** Each download walks its chunks from its
//!    own random starting point (so members start on different parts of the file) and asks
//!    for each chunk the least busy member whose map holds it, at most [`PER_SOURCE`]
//!    requests in flight per source (when every holder is busy or resting, the chunk waits
//!    for them); only a chunk no member is known to hold goes to a *seed* (the sender's
//!    device, source 0, or one of our mailboxes), and a chunk with no source available now
//!    waits for the next round. A member that said it held a chunk
//!    and answers `NotFound` rests (longer each time), one that sends a chunk failing its
//!    check is penalised and, after `MAX_BAD`, asked no more: lying costs the liar.
//! 3. **Members who ask us become sources.** A member the engine authorised that asks us
//!    for a file we are fetching too is fetching it as well: it joins the download's sources
//!    (at most [`MAX_SOURCES`]), so a member device learned after the download started, or
//!    one the engine's pick left out, is tried too.
//! 4. **The sender spreads before it repeats.** For a file it posted to a group, the
//!    sender serves each chunk to at most [`SPREAD_COPIES`] askers; later askers get `Busy`
//!    (and fetch it from the members that have it), unless nobody was served that chunk for
//!    [`SPREAD_REFILL`] (so the file still arrives when the members who got a chunk went
//!    away). That bounds the sender's upload near `SPREAD_COPIES` times the file, plus one
//!    copy of a chunk per `SPREAD_REFILL` while members still lack it.
//!
//! Nothing here is a security boundary: the engine decides who may fetch a file at all,
//! and the network actor bounds each peer's requests. It only decides where honest requests
//! go, with every map and table bounded by the manifest's chunk count and a fixed number of
//! sources and files.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use kith_net::{NetCommand, PeerId};
use kith_proto::media::{Hash, MediaRequest, have_bit, have_len};

use super::files::Partial;
use super::{MAX_BAD, Task};

/// Most sources one download holds (the engine's picks plus members who asked us).
pub const MAX_SOURCES: usize = 40;
/// Chunk requests in flight to one source per download.
pub const PER_SOURCE: usize = 4;
/// Chunks looked at per round of asking, from the first one not held.
const SCAN: u32 = 512;
/// A member's have-map is asked again once it is this old.
pub const HAVE_EVERY: Duration = Duration::from_secs(1);
/// Have requests sent per download per tick.
pub const HAVE_PER_TICK: usize = 8;
/// A have request not answered by then is forgotten.
const HAVE_DEADLINE: Duration = Duration::from_secs(10);
/// Askers the sender serves each chunk of a group file to before it sends them elsewhere.
pub const SPREAD_COPIES: u8 = 2;
/// After this long with nobody served a chunk, the sender serves it once more.
pub const SPREAD_REFILL: Duration = Duration::from_secs(90);
/// Group files whose chunks the sender counts (the least recently served goes first).
const MAX_SPREAD_FILES: usize = 16;

/// What a download knows of what one source holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Have {
    /// A seed: the sender's device or a mailbox, expected to hold the whole file.
    Seed,
    /// A member not asked yet.
    Unknown,
    /// A member asked at this time; no answer yet.
    Asked(Instant),
    /// A member's map, learned at this time.
    Map(Vec<u8>, Instant),
    /// A member that cannot say (an older version, or the request failed): asked blindly,
    /// one chunk at a time.
    Blind,
}

impl Have {
    /// Whether it is worth asking for chunk `i` (and how: `Some(true)` known to hold it,
    /// `Some(false)` a blind ask, `None` no).
    fn holds(&self, i: u32) -> Option<bool> {
        match self {
            Self::Map(bits, _) => have_bit(bits, i).then_some(true),
            Self::Blind => Some(false),
            _ => None,
        }
    }

    /// Whether its map should be asked for now.
    pub(super) fn due(&self, now: Instant) -> bool {
        match self {
            Self::Unknown => true,
            Self::Asked(at) => now.duration_since(*at) > HAVE_DEADLINE,
            Self::Map(_, at) => now.duration_since(*at) >= HAVE_EVERY,
            Self::Seed | Self::Blind => false,
        }
    }

    /// Notes that the member sent chunk `i` (it holds it).
    pub(super) fn got(&mut self, i: u32) {
        if let Self::Map(bits, _) = self {
            kith_proto::media::set_have_bit(bits, i, true);
        }
    }

    /// Notes that the member does not hold chunk `i` after all.
    pub(super) fn lacks(&mut self, i: u32) {
        if let Self::Map(bits, _) = self {
            kith_proto::media::set_have_bit(bits, i, false);
        }
    }

    /// Takes a have answer for a file of `count` chunks: a map of the right length, or
    /// `None` (none held) when the member has nothing yet.
    pub(super) fn answered(bits: Option<Vec<u8>>, count: u32, now: Instant) -> Self {
        match bits {
            Some(b) if b.len() == have_len(count) => Self::Map(b, now),
            Some(_) => Self::Blind,
            None => Self::Map(vec![0; have_len(count)], now),
        }
    }
}

/// Whether source `s` may be asked now: not resting, not banned, under `cap` requests.
fn open(rest: &[(Instant, u32, u32)], load: &[usize], s: usize, cap: usize, now: Instant) -> bool {
    rest.get(s).is_some_and(|r| r.0 <= now && r.2 < MAX_BAD)
        && load.get(s).is_some_and(|l| *l < cap)
}

/// The source to ask for chunk `i`: the least busy open member that holds it (none open:
/// none now, the chunk waits for them), else, when no member holds it, the first open seed
/// from `rr`, else an open member that cannot say what it holds with nothing in flight. A seed takes [`PER_SOURCE`] requests when there are members to ask
/// too, the whole window when there are none (a file from one contact).
fn choose(
    i: u32,
    have: &[Have],
    rest: &[(Instant, u32, u32)],
    load: &[usize],
    rr: usize,
    now: Instant,
) -> Option<usize> {
    let n = have.len();
    let order = || (0..n).map(|k| (rr + k) % n);
    let seed_cap = if have.iter().all(|h| *h == Have::Seed) {
        usize::MAX
    } else {
        PER_SOURCE
    };
    // A member not banned holds it: ask the least busy open one, or wait for one (the
    // seed is kept for chunks no member holds).
    let held = |s: &usize| {
        have.get(*s).and_then(|h| h.holds(i)) == Some(true)
            && rest.get(*s).is_some_and(|r| r.2 < MAX_BAD)
    };
    if order().any(|s| held(&s)) {
        return order()
            .filter(held)
            .filter(|s| open(rest, load, *s, PER_SOURCE, now))
            .min_by_key(|s| load.get(*s).copied().unwrap_or(usize::MAX));
    }
    order()
        .find(|s| have.get(*s) == Some(&Have::Seed) && open(rest, load, *s, seed_cap, now))
        .or_else(|| {
            order().find(|s| {
                have.get(*s).and_then(|h| h.holds(i)) == Some(false) && open(rest, load, *s, 1, now)
            })
        })
}

/// One download's view, for [`pick`].
pub(super) struct Plan<'a> {
    /// Chunks in the file.
    pub count: u32,
    /// Where this download's walk over the chunks starts.
    pub start: u32,
    /// Positions from `start` known held (all chunks before it are here).
    pub cursor: &'a mut u32,
    /// Chunks asked or being written now.
    pub busy: &'a HashSet<u32>,
    /// Per source: its rest, and what it holds.
    pub rest: &'a [(Instant, u32, u32)],
    pub have: &'a [Have],
    /// Per source: requests in flight (counted up as chunks are picked).
    pub load: &'a mut [usize],
    /// Where the round of sources stands.
    pub rr: &'a mut usize,
}

/// Picks up to `free` (chunk, source) requests.
pub(super) fn pick(
    p: Plan<'_>,
    held: impl Fn(u32) -> bool,
    free: usize,
    now: Instant,
) -> Vec<(u32, usize)> {
    let mut out = Vec::new();
    if p.count == 0 {
        return out;
    }
    let at = |pos: u32| (p.start.wrapping_add(pos)) % p.count;
    while *p.cursor < p.count && held(at(*p.cursor)) {
        *p.cursor += 1;
    }
    let end = p.cursor.saturating_add(SCAN).min(p.count);
    for pos in *p.cursor..end {
        if out.len() >= free {
            break;
        }
        let i = at(pos);
        if held(i) || p.busy.contains(&i) {
            continue;
        }
        if let Some(s) = choose(i, p.have, p.rest, p.load, *p.rr, now) {
            if let Some(l) = p.load.get_mut(s) {
                *l += 1;
            }
            *p.rr = p.rr.wrapping_add(1);
            out.push((i, s));
        }
    }
    out
}

/// Copies of one chunk served, and when the last went.
type Copies = (u8, Option<Instant>);

/// The sender's count of copies served per chunk of its group files.
#[derive(Default)]
pub(super) struct Spread {
    /// Per file: per chunk, copies served and when last; when the file was last served.
    files: HashMap<Hash, (Vec<Copies>, Instant)>,
}

impl Spread {
    /// Whether chunk `i` of file `root` (of `count` chunks) may be served now; counts it
    /// when it may.
    pub(super) fn allow(&mut self, root: Hash, count: u32, i: u32, now: Instant) -> bool {
        if i >= count {
            return false;
        }
        if self.files.len() >= MAX_SPREAD_FILES && !self.files.contains_key(&root) {
            let oldest = self.files.iter().min_by_key(|(_, v)| v.1).map(|(k, _)| *k);
            if let Some(k) = oldest {
                self.files.remove(&k);
            }
        }
        let (chunks, used) = self
            .files
            .entry(root)
            .or_insert_with(|| (vec![(0, None); count as usize], now));
        *used = now;
        let Some(c) = chunks.get_mut(i as usize) else {
            return false;
        };
        let refilled = c.1.is_none_or(|t| now.duration_since(t) >= SPREAD_REFILL);
        if c.0 < SPREAD_COPIES || refilled {
            c.0 = c.0.saturating_add(1);
            c.1 = Some(now);
            true
        } else {
            false
        }
    }
}

impl Task {
    /// Asks source `s` of download `root` for chunk `i`.
    pub(super) fn ask_of(&mut self, root: Hash, i: u32, s: usize, now: Instant) {
        self.next_tag += 1;
        let tag = self.next_tag;
        let Some(d) = self.active.get_mut(&root) else {
            return;
        };
        let Some((peer, addrs)) = d.fetch.sources.get(s).cloned() else {
            return;
        };
        d.in_flight.insert(tag, (Some(i), now, s));
        self.asked.insert(tag, root);
        self.net_send(NetCommand::Media {
            tag,
            peer,
            addrs,
            req: MediaRequest::Chunk { root, index: i },
        });
    }

    /// Asks up to [`HAVE_PER_TICK`] members among the sources of download `root` what they
    /// hold, those whose map is due, in turn; forgets have requests past their deadline.
    pub(super) fn ask_have(&mut self, root: Hash, now: Instant) {
        let mut asks = Vec::new();
        {
            let Some(d) = self.active.get_mut(&root) else {
                return;
            };
            let late: Vec<u64> = (d.have_asked.iter())
                .filter(|(_, (_, at))| now.duration_since(*at) > HAVE_DEADLINE)
                .map(|(t, _)| *t)
                .collect();
            for t in late {
                d.have_asked.remove(&t);
                self.asked.remove(&t);
            }
            if d.index.is_none() || d.part.as_ref().is_none_or(Partial::complete) {
                return;
            }
            let n = d.have.len();
            for k in 0..n {
                if asks.len() >= HAVE_PER_TICK {
                    break;
                }
                let s = (d.have_rr + k) % n;
                let ready = d.rest.get(s).is_some_and(|r| r.0 <= now && r.2 < MAX_BAD);
                if ready && d.have.get(s).is_some_and(|h| h.due(now)) {
                    asks.push(s);
                }
            }
            d.have_rr = d.have_rr.wrapping_add(asks.last().map_or(1, |s| s + 1));
        }
        for s in asks {
            self.next_tag += 1;
            let tag = self.next_tag;
            let Some(d) = self.active.get_mut(&root) else {
                return;
            };
            let Some((peer, addrs)) = d.fetch.sources.get(s).cloned() else {
                continue;
            };
            if let Some(h) = d.have.get_mut(s) {
                *h = Have::Asked(now);
            }
            d.have_asked.insert(tag, (s, now));
            self.asked.insert(tag, root);
            self.net_send(NetCommand::Media {
                tag,
                peer,
                addrs,
                req: MediaRequest::Have { root },
            });
        }
    }

    /// A member the engine let fetch file `root` asked us for it: when we are fetching it
    /// too, it becomes one of our sources (it is fetching as well), up to [`MAX_SOURCES`].
    pub(super) fn add_source(&mut self, root: &Hash, peer: PeerId) {
        let Some(d) = self.active.get_mut(root) else {
            return;
        };
        if d.fetch.sources.len() >= MAX_SOURCES || d.fetch.sources.iter().any(|(p, _)| *p == peer) {
            return;
        }
        d.fetch.sources.push((peer, Vec::new()));
        d.rest.push((Instant::now(), 0, 0));
        d.have.push(Have::Unknown);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(count: u32, held: &[u32], now: Instant) -> Have {
        let mut bits = vec![0; have_len(count)];
        for i in held {
            kith_proto::media::set_have_bit(&mut bits, *i, true);
        }
        Have::Map(bits, now)
    }

    /// Chunks go to members that hold them, the least busy first; the seed gets only the
    /// chunks nobody is known to hold, and members that hold nothing get no request.
    #[test]
    fn chunks_go_to_holders_and_the_seed_gets_the_rest() {
        let now = Instant::now();
        let count = 8;
        let have = vec![
            Have::Seed,
            map(count, &[0, 1, 2, 3], now),
            map(count, &[2, 3], now),
            map(count, &[], now),
        ];
        let rest = vec![(now, 0, 0); 4];
        let mut load = vec![0; 4];
        let (mut cursor, mut rr) = (0, 0);
        let busy = HashSet::new();
        let picks = pick(
            Plan {
                count,
                start: 0,
                cursor: &mut cursor,
                busy: &busy,
                rest: &rest,
                have: &have,
                load: &mut load,
                rr: &mut rr,
            },
            |_| false,
            16,
            now,
        );
        let of = |i: u32| picks.iter().find(|(c, _)| *c == i).map(|(_, s)| *s);
        assert_eq!(of(0), Some(1));
        assert_eq!(of(1), Some(1));
        assert_eq!(of(2), Some(2), "the less busy holder");
        assert_eq!(of(3), Some(2));
        // Chunks 4..8: nobody holds them; the seed takes PER_SOURCE of them.
        let seed: Vec<u32> = picks.iter().filter(|(_, s)| *s == 0).map(|p| p.0).collect();
        assert_eq!(seed.len(), PER_SOURCE);
        assert!(seed.iter().all(|c| *c >= 4));
        assert!(picks.iter().all(|(_, s)| *s != 3), "member 3 holds nothing");
        assert_eq!(load, vec![PER_SOURCE, 2, 2, 0]);
        // Holders busy: their chunks wait for them rather than go to the seed.
        let mut load = vec![0, PER_SOURCE, PER_SOURCE, 0];
        let (mut cursor, mut rr) = (0, 0);
        let plan = Plan {
            count,
            start: 0,
            cursor: &mut cursor,
            busy: &busy,
            rest: &rest,
            have: &have,
            load: &mut load,
            rr: &mut rr,
        };
        let picks = pick(plan, |i| i >= 4, 16, now);
        assert!(picks.is_empty(), "{picks:?}");
    }

    /// A file from one contact (only seeds): the whole window goes to the sender.
    #[test]
    fn without_members_the_sender_takes_the_window() {
        let now = Instant::now();
        let have = vec![Have::Seed];
        let rest = vec![(now, 0, 0)];
        let mut load = vec![0];
        let (mut cursor, mut rr) = (0, 0);
        let busy = HashSet::new();
        let plan = Plan {
            count: 40,
            start: 0,
            cursor: &mut cursor,
            busy: &busy,
            rest: &rest,
            have: &have,
            load: &mut load,
            rr: &mut rr,
        };
        let picks = pick(plan, |_| false, 16, now);
        assert_eq!(picks.len(), 16);
        assert_eq!(picks.first(), Some(&(0, 0)));
    }

    /// A resting or banned source is not asked; a chunk nobody can serve now waits.
    #[test]
    fn resting_sources_are_skipped() {
        let now = Instant::now();
        let later = now + Duration::from_secs(5);
        let have = vec![Have::Seed, map(4, &[0, 1, 2, 3], now), Have::Blind];
        let rest = vec![(later, 1, 0), (now, 0, MAX_BAD), (now, 0, 0)];
        let mut load = vec![0; 3];
        let (mut cursor, mut rr) = (0, 0);
        let busy = HashSet::from([1]);
        let picks = pick(
            Plan {
                count: 4,
                start: 3,
                cursor: &mut cursor,
                busy: &busy,
                rest: &rest,
                have: &have,
                load: &mut load,
                rr: &mut rr,
            },
            |i| i == 3,
            16,
            now,
        );
        // Chunk 3 is held, 1 is in flight; the blind member gets one chunk at a time.
        assert_eq!(picks, vec![(0, 2)]);
        assert_eq!(cursor, 1, "the walk starts at chunk 3, which is here");
    }

    /// A have answer is taken only with the manifest's length; a good chunk sets its bit
    /// and a "not found" clears it.
    #[test]
    fn have_answers_are_checked_against_the_chunk_count() {
        let now = Instant::now();
        assert_eq!(Have::answered(Some(vec![0xff; 3]), 80, now), Have::Blind);
        assert_eq!(Have::answered(None, 80, now), Have::Map(vec![0; 10], now));
        let mut h = Have::answered(Some(vec![0; 10]), 80, now);
        h.got(79);
        assert_eq!(h.holds(79), Some(true));
        h.lacks(79);
        assert_eq!(h.holds(79), None);
        assert!(!h.due(now) && h.due(now + HAVE_EVERY));
        assert!(!Have::Seed.due(now) && Have::Unknown.due(now));
    }

    /// The sender serves each chunk to SPREAD_COPIES askers, then once per SPREAD_REFILL;
    /// the table stays bounded.
    #[test]
    fn the_sender_spreads_before_it_repeats() {
        let now = Instant::now();
        let mut s = Spread::default();
        let root = [1; 32];
        assert!(s.allow(root, 4, 0, now));
        assert!(s.allow(root, 4, 0, now));
        assert!(!s.allow(root, 4, 0, now), "a third copy waits");
        assert!(s.allow(root, 4, 1, now), "another chunk is fine");
        assert!(!s.allow(root, 4, 9, now), "no such chunk");
        let later = now + SPREAD_REFILL;
        assert!(s.allow(root, 4, 0, later), "refilled");
        assert!(!s.allow(root, 4, 0, later));
        for n in 0..(MAX_SPREAD_FILES + 5) {
            let _ = s.allow([n as u8; 32], 2, 0, now);
        }
        assert!(s.files.len() <= MAX_SPREAD_FILES);
    }
}
