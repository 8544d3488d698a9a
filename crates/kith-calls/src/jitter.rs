//! The receive side's jitter buffer: Opus packets from the peer in, one 20 ms frame out per
//! tick of a steady playout clock.
//!
//! - Packets are held by RTP sequence number (unwrapped to 64 bits), so reordering within
//!   the buffer is undone; a duplicate, or a packet whose turn has passed (late), is dropped.
//! - Playout starts once the first packet has waited the target delay (to the nearest tick). The target follows the
//!   measured interarrival jitter (RFC 3550's estimator) and rises for a while after each
//!   late packet: `20 ms + 3 × jitter + late boost`, clamped to [`MIN_DELAY_MS`] ..
//!   [`MAX_DELAY_MS`].
//! - The delay actually held (how long each played packet waited) is steered towards the
//!   target, at most one step a second: one frame skipped when every packet of the last
//!   second waited more than a frame beyond it (up to a frame over is the playout clock's
//!   phase against the arrivals), one frame concealed (stretched) when the average wait is
//!   more than a frame short of it.
//! - A missing packet is concealed: with the next packet's in-band FEC when that packet is
//!   here ([`Playout::Fec`]), otherwise by the decoder's loss concealment
//!   ([`Playout::Conceal`]). After [`MAX_CONCEAL_RUN`] concealed frames in a row the buffer
//!   goes quiet ([`Playout::Silence`]) and buffers anew, or jumps over the gap when later
//!   packets are already here.
//! - At most [`MAX_PACKETS`] packets are held (the oldest go first); a sequence number far
//!   from the stream's ([`RESET_GAP`]) starts the stream anew. Nothing here panics on what a
//!   peer sends: sequence numbers, timestamps and payloads are all taken as they come.
//!
//! Time is passed in (`now`), so the buffer is a plain value that tests drive by hand.

use std::collections::BTreeMap;
use std::time::Instant;

use bytes::Bytes;

/// One frame of playout, in ms.
pub const FRAME_MS: f64 = 20.0;
/// The smallest target delay (ms).
pub const MIN_DELAY_MS: f64 = 40.0;
/// The largest target delay (ms).
pub const MAX_DELAY_MS: f64 = 200.0;
/// Most packets held (1.28 s of 20 ms frames).
pub const MAX_PACKETS: usize = 64;
/// Concealed frames in a row before the buffer goes quiet (200 ms).
pub const MAX_CONCEAL_RUN: u32 = 10;
/// A sequence number this far from the newest starts the stream anew.
pub const RESET_GAP: u64 = 500;
/// RTP clock of Opus: 48 kHz.
const RTP_PER_MS: f64 = 48.0;
/// Frames between two delay corrections (1 s).
const ADJUST_EVERY: u32 = 50;
/// What one late packet adds to the target (ms), and the most the boost reaches.
const LATE_STEP_MS: f64 = 20.0;
const LATE_MAX_MS: f64 = 100.0;
/// The boost decays by this factor every frame (half-life about 3 s).
const LATE_DECAY: f64 = 0.995;

/// What to play in the next 20 ms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Playout {
    /// Decode this packet (extended sequence number `seq`).
    Packet {
        /// Its extended sequence number.
        seq: u64,
        /// The Opus packet.
        payload: Bytes,
    },
    /// Packet `seq` is lost but the next one is here: decode its in-band FEC.
    Fec {
        /// The lost packet's extended sequence number.
        seq: u64,
        /// The next packet, whose FEC data carries `seq`.
        next: Bytes,
    },
    /// Packet `seq` is lost: the decoder conceals it.
    Conceal {
        /// The lost packet's extended sequence number.
        seq: u64,
    },
    /// One frame of concealment inserted to lengthen the delay (no packet consumed).
    Stretch,
    /// Nothing to play (not started, or the stream paused).
    Silence,
}

/// Counters, for tests and quality figures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JitterStats {
    /// Packets played.
    pub played: u64,
    /// Frames recovered from the next packet's FEC.
    pub fec: u64,
    /// Frames concealed by the decoder (lost packets without FEC, and stretches).
    pub concealed: u64,
    /// Packets that came after their turn.
    pub late: u64,
    /// Packets already held or played.
    pub duplicate: u64,
    /// Packets dropped to keep the bound, or skipped to shorten the delay.
    pub dropped: u64,
    /// Times the stream started anew (a sequence number far from the stream's).
    pub resets: u64,
}

/// The jitter buffer (see the module docs).
#[derive(Debug)]
pub struct JitterBuffer {
    packets: BTreeMap<u64, (Bytes, Instant)>,
    /// The newest extended sequence number seen.
    newest: Option<u64>,
    /// The next packet to play; `None` while buffering.
    next: Option<u64>,
    /// While buffering: when the first packet held came.
    first_arrival: Option<Instant>,
    /// The previous in-order packet: (extended seq, RTP timestamp, arrival).
    last: Option<(u64, u32, Instant)>,
    jitter_ms: f64,
    late_boost_ms: f64,
    /// How long played packets waited here (moving average, ms).
    wait_ms: Option<f64>,
    /// The shortest wait since the last correction (ms).
    min_wait_ms: f64,
    conceal_run: u32,
    since_adjust: u32,
    stats: JitterStats,
}

impl Default for JitterBuffer {
    fn default() -> Self {
        Self::new()
    }
}

impl JitterBuffer {
    /// An empty buffer.
    pub fn new() -> Self {
        Self {
            packets: BTreeMap::new(),
            newest: None,
            next: None,
            first_arrival: None,
            last: None,
            jitter_ms: 0.0,
            late_boost_ms: 0.0,
            wait_ms: None,
            min_wait_ms: f64::INFINITY,
            conceal_run: 0,
            since_adjust: 0,
            stats: JitterStats::default(),
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> JitterStats {
        self.stats
    }

    /// Packets held now.
    pub fn len(&self) -> usize {
        self.packets.len()
    }

    /// Whether no packet is held.
    pub fn is_empty(&self) -> bool {
        self.packets.is_empty()
    }

    /// The interarrival jitter measured so far (ms).
    pub fn jitter_ms(&self) -> f64 {
        self.jitter_ms
    }

    /// The delay the buffer aims for now (ms).
    pub fn target_ms(&self) -> f64 {
        (FRAME_MS + 3.0 * self.jitter_ms + self.late_boost_ms).clamp(MIN_DELAY_MS, MAX_DELAY_MS)
    }

    /// The 64-bit sequence number closest to the newest one seen.
    fn unwrap_seq(&self, seq: u16) -> u64 {
        let Some(newest) = self.newest else {
            // Room below for packets that come before the first one seen.
            return (1 << 32) | u64::from(seq);
        };
        let base = (newest & !0xffff) | u64::from(seq);
        [base.wrapping_sub(1 << 16), base, base.wrapping_add(1 << 16)]
            .into_iter()
            .min_by_key(|c| c.abs_diff(newest))
            .unwrap_or(base)
    }

    fn reset(&mut self) {
        self.packets.clear();
        self.newest = None;
        self.next = None;
        self.first_arrival = None;
        self.last = None;
        self.wait_ms = None;
        self.conceal_run = 0;
    }

    /// Takes one packet from the peer: its RTP sequence number and timestamp, payload, and
    /// when it arrived.
    pub fn push(&mut self, seq: u16, ts: u32, payload: Bytes, arrival: Instant) {
        let mut ext = self.unwrap_seq(seq);
        if self.newest.is_some_and(|n| n.abs_diff(ext) > RESET_GAP) {
            // A new stream (or garbage): start over.
            self.reset();
            self.stats.resets += 1;
            ext = self.unwrap_seq(seq);
        }
        if self.next.is_some_and(|n| ext < n) {
            self.stats.late += 1;
            self.late_boost_ms = (self.late_boost_ms + LATE_STEP_MS).min(LATE_MAX_MS);
            return;
        }
        if self.packets.contains_key(&ext) {
            self.stats.duplicate += 1;
            return;
        }
        self.measure(ext, ts, arrival);
        self.packets.insert(ext, (payload, arrival));
        if self.next.is_none() {
            self.first_arrival = Some(self.first_arrival.map_or(arrival, |f| f.min(arrival)));
        }
        self.newest = Some(self.newest.map_or(ext, |n| n.max(ext)));
        while self.packets.len() > MAX_PACKETS {
            if let Some((old, _)) = self.packets.pop_first() {
                self.stats.dropped += 1;
                if let Some(n) = self.next.as_mut() {
                    *n = (*n).max(old + 1);
                }
            }
        }
    }

    /// RFC 3550 interarrival jitter over packets that came in order.
    fn measure(&mut self, ext: u64, ts: u32, arrival: Instant) {
        if let Some((seq, last_ts, last_arrival)) = self.last {
            if ext <= seq {
                return;
            }
            let gap_ms = if arrival >= last_arrival {
                arrival.duration_since(last_arrival).as_secs_f64() * 1000.0
            } else {
                -(last_arrival.duration_since(arrival).as_secs_f64() * 1000.0)
            };
            let ts_ms = f64::from(ts.wrapping_sub(last_ts) as i32) / RTP_PER_MS;
            // One wild value (a peer's garbage timestamp) moves the estimate a little only.
            let d = (gap_ms - ts_ms).abs().min(MAX_DELAY_MS);
            self.jitter_ms += (d - self.jitter_ms) / 16.0;
        }
        self.last = Some((ext, ts, arrival));
    }

    /// What to play in the next 20 ms; call once per frame of the playout clock.
    pub fn pop(&mut self, now: Instant) -> Playout {
        self.late_boost_ms *= LATE_DECAY;
        let n = match self.next {
            Some(n) => n,
            None => {
                let waited = self
                    .first_arrival
                    .map(|f| now.saturating_duration_since(f).as_secs_f64() * 1000.0);
                // Ticks come every frame: start at the one nearest the target (half a frame
                // early at most), so on average the first packet waits the target.
                match (self.packets.first_key_value(), waited) {
                    (Some((&first, _)), Some(w)) if w + FRAME_MS / 2.0 >= self.target_ms() => {
                        self.first_arrival = None;
                        self.since_adjust = 0;
                        first
                    }
                    _ => return Playout::Silence,
                }
            }
        };
        self.since_adjust = self.since_adjust.saturating_add(1);
        if self.since_adjust >= ADJUST_EVERY {
            self.since_adjust = 0;
            let target = self.target_ms();
            let floor = std::mem::replace(&mut self.min_wait_ms, f64::INFINITY);
            // Every packet of the last second waited more than the target plus a frame (the
            // clock's phase against the arrivals): there is delay to take out.
            if floor.is_finite() && floor > target + FRAME_MS && self.packets.contains_key(&(n + 1))
            {
                self.packets.remove(&n);
                self.stats.dropped += 1;
                self.wait_ms = self.wait_ms.map(|w| w - FRAME_MS);
                return self.play(n + 1, now);
            }
            if let Some(wait) = self.wait_ms
                && wait + FRAME_MS < target
            {
                // Too little: play a concealed frame and keep the packet for the next tick.
                self.wait_ms = Some(wait + FRAME_MS);
                self.next = Some(n);
                self.stats.concealed += 1;
                return Playout::Stretch;
            }
        }
        self.play(n, now)
    }

    fn play(&mut self, n: u64, now: Instant) -> Playout {
        self.next = Some(n + 1);
        if let Some((payload, arrival)) = self.packets.remove(&n) {
            self.conceal_run = 0;
            self.stats.played += 1;
            let waited = now.saturating_duration_since(arrival).as_secs_f64() * 1000.0;
            self.min_wait_ms = self.min_wait_ms.min(waited);
            self.wait_ms = Some(match self.wait_ms {
                Some(w) => w + (waited - w) / 8.0,
                None => waited,
            });
            return Playout::Packet { seq: n, payload };
        }
        self.conceal_run += 1;
        if self.conceal_run > MAX_CONCEAL_RUN {
            self.conceal_run = 0;
            match self.packets.first_key_value() {
                // Later packets are here: jump over the gap to the first of them.
                Some((&first, _)) => return self.play(first, now),
                // Nothing: go quiet and buffer anew when packets come back.
                None => {
                    self.next = None;
                    self.first_arrival = None;
                    self.wait_ms = None;
                    return Playout::Silence;
                }
            }
        }
        if let Some((next, _)) = self.packets.get(&(n + 1)) {
            self.stats.fec += 1;
            return Playout::Fec {
                seq: n,
                next: next.clone(),
            };
        }
        self.stats.concealed += 1;
        Playout::Conceal { seq: n }
    }

    /// Whether every packet held has been played out (for draining at the end of a call).
    pub fn drained(&self) -> bool {
        self.packets.is_empty()
    }
}

#[cfg(test)]
#[path = "jitter_tests.rs"]
mod tests;
