//! Delivery: when the next batch of a device's outbox goes out, where it goes (the device
//! or one of its mailboxes), and what the batch holds. A core with no I/O: it never reads a
//! clock, draws randomness only from the generator it is handed, and touches neither the
//! store nor the network. The engine actor feeds it what happened and carries out what it
//! decides.
//!
//! Data flow for one device:
//!
//! 1. Something is queued for the device (or the node starts with a non-empty outbox): the
//!    actor calls [`Delivery::track`]; the device is now *ready*.
//! 2. When a device is ready ([`Delivery::ready`], or listed by [`Delivery::due`] on the
//!    actor's tick), the actor reads its outbox, asks [`Delivery::route`] whether to go to
//!    the device itself or to one of its mailboxes, cuts a batch with [`plan_batch`], sends
//!    it and marks the device [`Delivery::sent`]: one request in flight per device, so
//!    envelopes arrive in order.
//! 3. The answer comes back:
//!    - accepted → [`Delivery::settled`]: ready again at once for the next batch. A batch
//!      the device itself took resets its failure count; one a mailbox took does not, so
//!      the following batches go to the mailbox too until the device is reachable.
//!    - no answer, refused, or the request could not be sent → [`Delivery::failed`]: the
//!      device waits [`backoff`] (1 s, doubling to [`MAX_BACKOFF`], plus up to
//!      [`JITTER_MS`] ms of jitter so devices that failed together do not retry together).
//!      From the second failure in a row the caller also looks the device's owner up in the
//!      DHT ([`Failure::look_up`]), at most once per [`LOOKUP_EVERY`] per person
//!      ([`Delivery::may_look_up`]), and [`Delivery::route`] sends the next batch to a
//!      mailbox (a different one after each further failure).
//! 4. The device connects, or registers with this node as its mailbox →
//!    [`Delivery::reachable`]: failures are forgotten and it is ready at once.
//! 5. Its outbox is empty → [`Delivery::forget`].
//!
//! Pre-key claims are paced: at most [`MAX_CLAIMS`] are out at once
//! ([`Delivery::may_claim`]); a device that would claim beyond that waits in line and is
//! handed back by [`Delivery::next_claimer`] as claims end. A creator who sends a new
//! group's log to 255 devices it has no session with thus claims a few dozen at a time
//! instead of 255 at once, which on a slow or busy device let the last answers time out
//! and back off for seconds.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use kith_proto::record::MailboxRef;
use kith_proto::wire::{Envelope, MAX_BATCH};
use kith_store::OutboxItem;
use kith_types::{IdentityKey, RateLimit};
use rand::{Rng, RngExt};

/// The wait after the first failure; each further failure in a row doubles it.
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// Longest wait between delivery attempts to an unreachable device (before jitter).
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Jitter added to every backoff: a uniform whole number of milliseconds below this.
pub const JITTER_MS: u64 = 250;
/// Failures in a row after which a device is taken for offline: its batches go to a mailbox
/// and its owner's record is looked up again.
pub const OFFLINE_AFTER: u32 = 2;
/// How often one person's user record is looked up at most.
pub const LOOKUP_EVERY: Duration = Duration::from_secs(30);
/// Most people whose last lookup time is remembered; older entries are dropped first.
pub const MAX_LOOKUP_ENTRIES: usize = 4096;
/// Most ciphertext bytes in one delivery request (the frame limit is 1 MiB).
pub const BATCH_BYTES: usize = 768 * 1024;
/// Most pre-key claims out at once.
pub const MAX_CLAIMS: usize = 32;
/// How long a device waiting in line to claim stays out of [`Delivery::due`] (it is handed
/// back sooner by [`Delivery::next_claimer`]; this only bounds a lost turn).
pub const CLAIM_WAIT: Duration = Duration::from_secs(5);
/// Bytes counted per envelope besides its ciphertext when a batch is cut.
const ENVELOPE_OVERHEAD: usize = 64;

pub use kith_types::DeviceKey;

/// The wait before the next attempt after `failures` failures in a row, without jitter:
/// 1 s, 2 s, 4 s, … 32 s, then [`MAX_BACKOFF`].
pub fn backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    FIRST_BACKOFF
        .saturating_mul(1u32 << doublings)
        .min(MAX_BACKOFF)
}

/// What the delivery core knows of one device with something in its outbox.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct DeviceState {
    /// A request to it (or to its mailbox) is out.
    in_flight: bool,
    /// Not before this time.
    next_try: Option<Instant>,
    /// Failed attempts in a row.
    failures: u32,
}

/// What a failure leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    /// The device is ready again at this time.
    pub retry_at: Instant,
    /// Look the device's owner up in the DHT (their addresses may have changed).
    pub look_up: bool,
}

/// The delivery schedule of every device with something queued.
#[derive(Debug)]
pub struct Delivery {
    devices: HashMap<DeviceKey, DeviceState>,
    lookups: RateLimit<IdentityKey>,
    /// Devices with a pre-key claim out (at most [`MAX_CLAIMS`]).
    claiming: HashSet<DeviceKey>,
    /// Devices waiting to claim, in turn (each once; only tracked devices).
    claim_line: VecDeque<DeviceKey>,
    in_line: HashSet<DeviceKey>,
}

impl Default for Delivery {
    fn default() -> Self {
        Self {
            devices: HashMap::new(),
            lookups: RateLimit::once_per(LOOKUP_EVERY, MAX_LOOKUP_ENTRIES),
            claiming: HashSet::new(),
            claim_line: VecDeque::new(),
            in_line: HashSet::new(),
        }
    }
}

impl Delivery {
    /// A new, empty schedule.
    pub fn new() -> Self {
        Self::default()
    }

    /// Something is queued for `dev`: keep it in the schedule (ready now if it is new).
    pub fn track(&mut self, dev: DeviceKey) {
        self.devices.entry(dev).or_default();
    }

    /// Whether `dev` is in the schedule.
    pub fn is_tracked(&self, dev: &DeviceKey) -> bool {
        self.devices.contains_key(dev)
    }

    /// `dev` has nothing queued any more (or is gone): drop it from the schedule.
    pub fn forget(&mut self, dev: &DeviceKey) {
        self.devices.remove(dev);
        self.claiming.remove(dev);
        // Left in `claim_line`: skipped when its turn comes (`next_claimer`).
        self.in_line.remove(dev);
    }

    /// Whether `dev` may send a pre-key claim now: fewer than [`MAX_CLAIMS`] are out. If
    /// so, the claim counts as out until the device's request settles or fails; if not,
    /// the device waits in line (the caller holds it back for [`CLAIM_WAIT`]).
    pub fn may_claim(&mut self, dev: DeviceKey) -> bool {
        if self.claiming.contains(&dev) {
            return true;
        }
        if self.claiming.len() < MAX_CLAIMS
            && (self.in_line.is_empty() || self.in_line.contains(&dev))
        {
            if self.in_line.remove(&dev) {
                self.claim_line.retain(|d| *d != dev);
            }
            self.claiming.insert(dev);
            return true;
        }
        if self.devices.contains_key(&dev) && self.in_line.insert(dev) {
            self.claim_line.push_back(dev);
        }
        // Entries of devices forgotten while in line: dropped once they pile up.
        if self.claim_line.len() > 2 * self.in_line.len() + 64 {
            let in_line = &self.in_line;
            self.claim_line.retain(|d| in_line.contains(d));
        }
        false
    }

    /// A turn handed out by [`Delivery::next_claimer`] that sent nothing (the device had
    /// nothing to claim for after all): its room goes back.
    pub fn turn_unused(&mut self, dev: &DeviceKey) {
        if !self.devices.get(dev).is_some_and(|d| d.in_flight) {
            self.claiming.remove(dev);
        }
    }

    /// Pre-key claims out now.
    pub fn claims_out(&self) -> usize {
        self.claiming.len()
    }

    /// The next device in line to claim, when there is room for its claim: the caller
    /// pumps it now (its claim is counted when it goes, by [`Delivery::may_claim`]).
    pub fn next_claimer(&mut self) -> Option<DeviceKey> {
        if self.claiming.len() >= MAX_CLAIMS {
            return None;
        }
        while let Some(dev) = self.claim_line.pop_front() {
            if !self.in_line.remove(&dev) || !self.devices.contains_key(&dev) {
                continue;
            }
            self.claiming.insert(dev);
            if let Some(d) = self.devices.get_mut(&dev) {
                d.next_try = None;
            }
            return Some(dev);
        }
        None
    }

    /// How many devices are in the schedule.
    pub fn len(&self) -> usize {
        self.devices.len()
    }

    /// Whether no device is in the schedule.
    pub fn is_empty(&self) -> bool {
        self.devices.is_empty()
    }

    /// Whether a batch may go to `dev` now: it is tracked, nothing is in flight to it and its
    /// backoff has passed.
    pub fn ready(&self, dev: &DeviceKey, now: Instant) -> bool {
        self.devices
            .get(dev)
            .is_some_and(|d| !d.in_flight && d.next_try.is_none_or(|t| t <= now))
    }

    /// Every device a batch may go to now.
    pub fn due(&self, now: Instant) -> Vec<DeviceKey> {
        let mut due: Vec<DeviceKey> = self
            .devices
            .iter()
            .filter(|(_, d)| !d.in_flight && d.next_try.is_none_or(|t| t <= now))
            .map(|(k, _)| *k)
            .collect();
        // A stable order, so a run is the same whatever the map's hashing.
        due.sort_unstable();
        due
    }

    /// Failed attempts in a row to `dev`.
    pub fn failures(&self, dev: &DeviceKey) -> u32 {
        self.devices.get(dev).map_or(0, |d| d.failures)
    }

    /// When `dev` may be tried again, if it waits.
    pub fn next_try(&self, dev: &DeviceKey) -> Option<Instant> {
        self.devices.get(dev).and_then(|d| d.next_try)
    }

    /// A request went out to `dev` (or its mailbox).
    pub fn sent(&mut self, dev: DeviceKey) {
        self.devices.entry(dev).or_default().in_flight = true;
    }

    /// The request to `dev` failed, or could not be sent: back off.
    pub fn failed<R: Rng + ?Sized>(
        &mut self,
        dev: DeviceKey,
        now: Instant,
        rng: &mut R,
    ) -> Failure {
        self.claiming.remove(&dev);
        let d = self.devices.entry(dev).or_default();
        d.in_flight = false;
        d.failures = d.failures.saturating_add(1);
        let jitter = Duration::from_millis(rng.random_range(0..JITTER_MS));
        let retry_at = now + backoff(d.failures) + jitter;
        d.next_try = Some(retry_at);
        Failure {
            retry_at,
            look_up: d.failures >= OFFLINE_AFTER,
        }
    }

    /// A request to `dev` was answered: the next batch may go at once. Failures are forgotten
    /// only when the device itself answered (`via_mailbox` false).
    pub fn settled(&mut self, dev: DeviceKey, via_mailbox: bool) {
        self.claiming.remove(&dev);
        let d = self.devices.entry(dev).or_default();
        d.in_flight = false;
        if !via_mailbox {
            d.failures = 0;
        }
        d.next_try = None;
    }

    /// `dev` connected to us, or registered here as at its mailbox: try at once, as a device
    /// that never failed. Does nothing for a device not in the schedule.
    pub fn reachable(&mut self, dev: &DeviceKey) {
        if let Some(d) = self.devices.get_mut(dev) {
            d.next_try = None;
            d.failures = 0;
        }
    }

    /// New addresses for `dev` are known: end its wait (its failure count stays).
    pub fn retry_now(&mut self, dev: &DeviceKey) {
        if let Some(d) = self.devices.get_mut(dev) {
            d.next_try = None;
        }
    }

    /// Do not try `dev` before `until` (without counting a failure).
    pub fn hold(&mut self, dev: DeviceKey, until: Instant) {
        self.devices.entry(dev).or_default().next_try = Some(until);
    }

    /// Where the next batch to `dev` goes: `None` for the device itself, or one of its
    /// `mailboxes` when it failed [`OFFLINE_AFTER`] times in a row and is not `connected`
    /// (a different mailbox after each further failure).
    pub fn route<'a>(
        &self,
        dev: &DeviceKey,
        connected: bool,
        mailboxes: &'a [MailboxRef],
    ) -> Option<&'a MailboxRef> {
        let failures = self.failures(dev);
        if failures < OFFLINE_AFTER || connected || mailboxes.is_empty() {
            return None;
        }
        mailboxes.get(failures as usize % mailboxes.len())
    }

    /// Whether a person's user record may be looked up now (at most once per
    /// [`LOOKUP_EVERY`]); records the lookup if so.
    pub fn may_look_up(&mut self, identity: IdentityKey, now: Instant) -> bool {
        self.lookups.allow(identity, now)
    }
}

/// One delivery request cut from the head of an outbox.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Batch {
    /// Per envelope, the outbox items (by sequence number) it carries.
    pub seqs: Vec<Vec<u64>>,
    /// The envelopes, in outbox order.
    pub envelopes: Vec<Envelope>,
}

impl Batch {
    /// Whether it carries nothing (the head of the outbox is not sealed yet).
    pub fn is_empty(&self) -> bool {
        self.envelopes.is_empty()
    }
}

/// Cuts the next batch from the head of an outbox (items in order): envelopes in order, each
/// with the items it carries; it stops at the first item that is not sealed, at an envelope
/// whose covered items are not all there, at [`MAX_BATCH`] envelopes, or before
/// [`BATCH_BYTES`] (a first envelope always goes, whatever its size).
pub fn plan_batch(items: &[(u64, OutboxItem)]) -> Batch {
    let mut batch = Batch::default();
    let mut bytes = 0usize;
    let mut i = 0;
    while i < items.len() && batch.envelopes.len() < MAX_BATCH {
        let (seq, item) = &items[i];
        let Some(env) = &item.sealed else { break };
        let n = item.covers.max(1) as usize;
        let Some(covered) = items.get(i + 1..i + n) else {
            break;
        };
        if !covered.iter().all(|(_, it)| it.covered) {
            break;
        }
        bytes += env.ciphertext.len() + ENVELOPE_OVERHEAD;
        if bytes > BATCH_BYTES && !batch.envelopes.is_empty() {
            break;
        }
        let mut group = vec![*seq];
        group.extend(covered.iter().map(|(s, _)| *s));
        batch.seqs.push(group);
        batch.envelopes.push(env.clone());
        i += n;
    }
    batch
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    const DEV: DeviceKey = DeviceKey([7; 32]);

    fn sealed(covers: u32, len: usize) -> OutboxItem {
        OutboxItem {
            conversation: IdentityKey([1; 32]),
            message_ids: vec![1],
            sealed: Some(Envelope {
                to_device: kith_types::CurveKey([2; 32]),
                kind: 1,
                ciphertext: vec![0; len],
            }),
            body: Some(vec![1]),
            queued_ms: 0,
            resets: 0,
            covers,
            covered: false,
        }
    }

    fn covered() -> OutboxItem {
        OutboxItem {
            sealed: None,
            covers: 0,
            covered: true,
            ..sealed(0, 0)
        }
    }

    fn unsealed() -> OutboxItem {
        OutboxItem {
            sealed: None,
            covers: 0,
            covered: false,
            ..sealed(0, 0)
        }
    }

    fn mailbox(n: u8) -> MailboxRef {
        MailboxRef {
            peer_id: vec![n],
            addrs: Vec::new(),
        }
    }

    #[test]
    fn the_documented_backoff_schedule() {
        let secs = [1, 2, 4, 8, 16, 32, 60, 60, 60];
        for (i, s) in secs.iter().enumerate() {
            assert_eq!(
                backoff(i as u32 + 1),
                Duration::from_secs(*s),
                "failure {}",
                i + 1
            );
        }
        assert_eq!(backoff(0), FIRST_BACKOFF);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }

    /// A device that fails N times in a row waits exactly the documented schedule, to the
    /// millisecond: 1 s, 2 s, 4 s, … 60 s, each plus the jitter the seeded generator draws
    /// (replayed here from a second generator with the same seed).
    #[test]
    fn a_failing_device_backs_off_by_the_schedule_to_the_millisecond() {
        let start = Instant::now();
        let mut rng = StdRng::seed_from_u64(42);
        let mut replay = StdRng::seed_from_u64(42);
        let mut d = Delivery::new();
        d.track(DEV);
        let mut now = start;
        let expected_ms = [
            1000u64, 2000, 4000, 8000, 16_000, 32_000, 60_000, 60_000, 60_000, 60_000,
        ];
        for (n, base) in expected_ms.iter().enumerate() {
            assert!(d.ready(&DEV, now), "ready before attempt {}", n + 1);
            d.sent(DEV);
            assert!(!d.ready(&DEV, now), "one request in flight at a time");
            let f = d.failed(DEV, now, &mut rng);
            let jitter = replay.random_range(0..JITTER_MS);
            assert!(jitter < JITTER_MS);
            assert_eq!(
                f.retry_at.duration_since(now),
                Duration::from_millis(base + jitter),
                "wait after failure {}",
                n + 1
            );
            assert_eq!(f.look_up, n + 1 >= OFFLINE_AFTER as usize);
            assert_eq!(d.failures(&DEV), n as u32 + 1);
            // Not a millisecond early.
            assert!(!d.ready(&DEV, f.retry_at - Duration::from_millis(1)));
            assert!(d.due(f.retry_at - Duration::from_millis(1)).is_empty());
            assert!(d.ready(&DEV, f.retry_at));
            assert_eq!(d.due(f.retry_at), vec![DEV]);
            now = f.retry_at;
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_schedule_and_another_seed_another() {
        let run = |seed: u64| {
            let start = Instant::now();
            let mut rng = StdRng::seed_from_u64(seed);
            let mut d = Delivery::new();
            (0..8)
                .map(|_| d.failed(DEV, start, &mut rng).retry_at - start)
                .collect::<Vec<_>>()
        };
        assert_eq!(run(1), run(1));
        assert_ne!(run(1), run(2));
    }

    #[test]
    fn an_answer_from_the_device_resets_failures_one_from_a_mailbox_does_not() {
        let now = Instant::now();
        let mut rng = StdRng::seed_from_u64(0);
        let mut d = Delivery::new();
        d.failed(DEV, now, &mut rng);
        d.failed(DEV, now, &mut rng);
        d.sent(DEV);
        d.settled(DEV, true);
        assert_eq!(d.failures(&DEV), 2);
        assert!(d.ready(&DEV, now), "ready at once after an answer");
        d.sent(DEV);
        d.settled(DEV, false);
        assert_eq!(d.failures(&DEV), 0);
        assert!(d.ready(&DEV, now));
    }

    #[test]
    fn offline_devices_go_to_their_mailboxes_in_turn_until_they_connect() {
        let now = Instant::now();
        let mut rng = StdRng::seed_from_u64(0);
        let mut d = Delivery::new();
        let boxes = [mailbox(0), mailbox(1), mailbox(2)];
        assert_eq!(d.route(&DEV, false, &boxes), None);
        d.failed(DEV, now, &mut rng);
        assert_eq!(
            d.route(&DEV, false, &boxes),
            None,
            "one failure is not offline"
        );
        d.failed(DEV, now, &mut rng);
        assert_eq!(d.route(&DEV, false, &boxes), Some(&boxes[2]));
        d.failed(DEV, now, &mut rng);
        assert_eq!(d.route(&DEV, false, &boxes), Some(&boxes[0]));
        d.failed(DEV, now, &mut rng);
        assert_eq!(d.route(&DEV, false, &boxes), Some(&boxes[1]));
        assert_eq!(
            d.route(&DEV, true, &boxes),
            None,
            "connected: straight to it"
        );
        assert_eq!(
            d.route(&DEV, false, &[]),
            None,
            "no mailbox: keep trying it"
        );
        d.reachable(&DEV);
        assert_eq!(d.failures(&DEV), 0);
        assert!(d.ready(&DEV, now));
        assert_eq!(d.route(&DEV, false, &boxes), None);
    }

    #[test]
    fn hold_and_retry_now() {
        let now = Instant::now();
        let mut d = Delivery::new();
        d.hold(DEV, now + MAX_BACKOFF);
        assert!(!d.ready(&DEV, now));
        assert_eq!(d.failures(&DEV), 0, "holding is not failing");
        d.retry_now(&DEV);
        assert!(d.ready(&DEV, now));
        d.forget(&DEV);
        assert!(!d.is_tracked(&DEV));
        assert!(!d.ready(&DEV, now));
        d.reachable(&DEV);
        assert!(!d.is_tracked(&DEV), "reachable does not start tracking");
    }

    #[test]
    fn lookups_are_rate_limited_per_person_and_bounded() {
        let t0 = Instant::now();
        let mut d = Delivery::new();
        assert!(d.may_look_up(IdentityKey([1; 32]), t0));
        assert!(!d.may_look_up(
            IdentityKey([1; 32]),
            t0 + LOOKUP_EVERY - Duration::from_millis(1)
        ));
        assert!(d.may_look_up(IdentityKey([2; 32]), t0));
        assert!(d.may_look_up(IdentityKey([1; 32]), t0 + LOOKUP_EVERY));
        for i in 0..(MAX_LOOKUP_ENTRIES as u32 + 10) {
            let mut id = [0u8; 32];
            id[..4].copy_from_slice(&i.to_le_bytes());
            id[31] = 9;
            d.may_look_up(IdentityKey(id), t0 + LOOKUP_EVERY);
        }
        assert!(d.lookups.len() <= MAX_LOOKUP_ENTRIES);
    }

    #[test]
    fn a_batch_takes_sealed_envelopes_with_the_items_they_cover_in_order() {
        let items = vec![
            (1, sealed(2, 10)),
            (2, covered()),
            (3, sealed(1, 10)),
            (5, unsealed()),
            (6, sealed(1, 10)),
        ];
        let b = plan_batch(&items);
        assert_eq!(b.seqs, vec![vec![1, 2], vec![3]]);
        assert_eq!(b.envelopes.len(), 2);
        assert!(
            plan_batch(&items[3..]).is_empty(),
            "stops at an unsealed head"
        );
        // An envelope whose covered items are not all read is left for the next batch.
        assert_eq!(plan_batch(&items[..1]).seqs, Vec::<Vec<u64>>::new());
        assert!(plan_batch(&[]).is_empty());
    }

    #[test]
    fn a_batch_stays_under_its_byte_and_count_limits() {
        let big: Vec<(u64, OutboxItem)> = (0..4).map(|s| (s, sealed(1, 300 * 1024))).collect();
        assert_eq!(plan_batch(&big).envelopes.len(), 2);
        let huge = vec![(0, sealed(1, 2 * BATCH_BYTES)), (1, sealed(1, 10))];
        assert_eq!(
            plan_batch(&huge).seqs,
            vec![vec![0]],
            "a first envelope always goes"
        );
        let many: Vec<(u64, OutboxItem)> = (0..(MAX_BATCH as u64 + 5))
            .map(|s| (s, sealed(1, 10)))
            .collect();
        assert_eq!(plan_batch(&many).envelopes.len(), MAX_BATCH);
    }

    fn dev(i: u32) -> DeviceKey {
        let mut k = [0u8; 32];
        k[..4].copy_from_slice(&i.to_le_bytes());
        DeviceKey(k)
    }

    /// 255 devices without a session (a new group's creator): at most MAX_CLAIMS claims
    /// are out at once; the rest wait in line and go, in turn, as claims end.
    #[test]
    fn claims_are_paced() {
        let mut d = Delivery::new();
        let mut rng = StdRng::seed_from_u64(1);
        let now = Instant::now();
        for i in 0..255 {
            d.track(dev(i));
        }
        let mut out: Vec<DeviceKey> = Vec::new();
        for i in 0..255 {
            if d.may_claim(dev(i)) {
                d.sent(dev(i));
                out.push(dev(i));
            } else {
                d.hold(dev(i), now + CLAIM_WAIT);
            }
        }
        assert_eq!(out.len(), MAX_CLAIMS);
        assert_eq!(d.claims_out(), MAX_CLAIMS);
        assert!(d.next_claimer().is_none(), "no room");
        assert!(!d.may_claim(dev(200)), "still in line");
        assert!(!d.due(now).contains(&dev(200)), "held while in line");
        // A claim answered and one failed: the first two in line get their turn, in order.
        d.settled(out[0], false);
        d.failed(out[1], now, &mut rng);
        assert_eq!(d.next_claimer(), Some(dev(MAX_CLAIMS as u32)));
        assert_eq!(d.next_claimer(), Some(dev(MAX_CLAIMS as u32 + 1)));
        assert!(d.next_claimer().is_none());
        assert!(
            d.may_claim(dev(MAX_CLAIMS as u32)),
            "its turn counts as out"
        );
        assert_eq!(d.claims_out(), MAX_CLAIMS);
        // A device forgotten in line is skipped; every other one gets its turn once.
        d.forget(&dev(MAX_CLAIMS as u32 + 2));
        let mut turns = 2;
        let mut seen = HashSet::new();
        while let Some(c) = out.pop() {
            d.settled(c, false);
            while let Some(n) = d.next_claimer() {
                assert!(seen.insert(n), "each once");
                assert_ne!(n, dev(MAX_CLAIMS as u32 + 2));
                turns += 1;
                out.insert(0, n);
                d.sent(n);
            }
            assert!(d.claims_out() <= MAX_CLAIMS);
        }
        assert_eq!(turns, 255 - MAX_CLAIMS - 1);
    }

    /// A device not in line may claim when there is room and nobody waits; a newcomer does
    /// not jump the line.
    #[test]
    fn newcomers_do_not_jump_the_line() {
        let mut d = Delivery::new();
        for i in 0..(MAX_CLAIMS as u32 + 2) {
            d.track(dev(i));
            let _ = d.may_claim(dev(i));
        }
        // Two wait. One claim ends: room for one, but the newcomer queues behind them.
        d.settled(dev(0), false);
        d.track(dev(999));
        assert!(!d.may_claim(dev(999)));
        assert_eq!(d.next_claimer(), Some(dev(MAX_CLAIMS as u32)));
        // Nothing waits and there is room: a claim goes at once.
        let mut e = Delivery::new();
        e.track(dev(1));
        assert!(e.may_claim(dev(1)));
        assert!(e.may_claim(dev(1)), "asking again while out is fine");
        assert_eq!(e.claims_out(), 1);
    }
}
