#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use proptest::prelude::*;

use super::*;

const FRAME: Duration = Duration::from_millis(20);

fn pkt(seq: u16) -> Bytes {
    Bytes::copy_from_slice(&seq.to_be_bytes())
}

fn ts(seq: u16) -> u32 {
    u32::from(seq).wrapping_mul(960)
}

/// Pops until something other than silence comes (at most `max` frames), advancing `now`.
fn first_sound(jb: &mut JitterBuffer, now: &mut Instant, max: usize) -> (usize, Playout) {
    for i in 0..max {
        let p = jb.pop(*now);
        if p != Playout::Silence {
            return (i, p);
        }
        *now += FRAME;
    }
    panic!("no sound in {max} frames");
}

fn seq_of(p: &Playout) -> Option<u64> {
    match p {
        Playout::Packet { seq, .. } | Playout::Fec { seq, .. } | Playout::Conceal { seq } => {
            Some(*seq)
        }
        Playout::Stretch | Playout::Silence => None,
    }
}

#[test]
fn waits_the_target_delay_then_plays_in_order() {
    let t0 = Instant::now();
    let mut jb = JitterBuffer::new();
    for s in 0..10u16 {
        jb.push(s, ts(s), pkt(s), t0 + FRAME * u32::from(s));
    }
    let mut now = t0;
    let (silent, p) = first_sound(&mut jb, &mut now, 20);
    // No jitter: the minimum target, 40 ms (two frames of silence first).
    assert_eq!(silent, 2);
    assert_eq!(seq_of(&p), Some(1 << 32));
    for s in 1..10u16 {
        now += FRAME;
        match jb.pop(now) {
            Playout::Packet { payload, .. } => assert_eq!(payload, pkt(s)),
            other => panic!("{other:?}"),
        }
    }
    assert!(jb.is_empty());
}

#[test]
fn reordered_packets_come_out_in_order() {
    let t0 = Instant::now();
    let mut jb = JitterBuffer::new();
    for s in [0u16, 2, 1, 4, 3, 5] {
        jb.push(s, ts(s), pkt(s), t0);
    }
    let mut now = t0;
    let (_, first) = first_sound(&mut jb, &mut now, 10);
    let mut got = vec![first];
    for _ in 0..5 {
        now += FRAME;
        got.push(jb.pop(now));
    }
    let payloads: Vec<Bytes> = got
        .into_iter()
        .map(|p| match p {
            Playout::Packet { payload, .. } => payload,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(payloads, (0..6u16).map(pkt).collect::<Vec<_>>());
}

#[test]
fn a_lost_packet_uses_the_next_ones_fec_or_is_concealed() {
    let t0 = Instant::now();
    let mut jb = JitterBuffer::new();
    // 2 is lost (3 is here: FEC); 5 and 6 are lost (6 from 7's FEC, 5 concealed).
    for s in [0u16, 1, 3, 4, 7] {
        jb.push(s, ts(s), pkt(s), t0);
    }
    let mut now = t0;
    let (_, p) = first_sound(&mut jb, &mut now, 10);
    let mut got = vec![p];
    for _ in 0..7 {
        now += FRAME;
        got.push(jb.pop(now));
    }
    let base = 1u64 << 32;
    assert!(matches!(got[2], Playout::Fec { seq, ref next } if seq == base + 2 && *next == pkt(3)));
    assert!(matches!(got[3], Playout::Packet { ref payload, .. } if *payload == pkt(3)));
    assert_eq!(got[5], Playout::Conceal { seq: base + 5 });
    assert!(matches!(got[6], Playout::Fec { seq, .. } if seq == base + 6));
    assert!(matches!(got[7], Playout::Packet { ref payload, .. } if *payload == pkt(7)));
    assert_eq!(jb.stats().fec, 2);
    assert_eq!(jb.stats().concealed, 1);
}

#[test]
fn late_and_duplicate_packets_are_dropped_and_late_ones_raise_the_target() {
    let t0 = Instant::now();
    let mut jb = JitterBuffer::new();
    for s in [0u16, 2, 2] {
        jb.push(s, ts(s), pkt(s), t0);
    }
    assert_eq!(jb.stats().duplicate, 1);
    let mut now = t0;
    first_sound(&mut jb, &mut now, 10);
    now += FRAME;
    // 1 is missing; 2 is here: its FEC stands in.
    assert!(matches!(jb.pop(now), Playout::Fec { .. }));
    let before = jb.target_ms();
    // 1's turn has passed.
    jb.push(1, ts(1), pkt(1), now);
    assert_eq!(jb.stats().late, 1);
    assert!(jb.target_ms() > before);
    now += FRAME;
    assert!(matches!(jb.pop(now), Playout::Packet { ref payload, .. } if *payload == pkt(2)));
}

#[test]
fn the_sequence_number_wraps() {
    let t0 = Instant::now();
    let mut jb = JitterBuffer::new();
    for (i, s) in [65_534u16, 65_535, 0, 1].into_iter().enumerate() {
        // The timestamp wraps too, at its own place.
        let ts = (u32::MAX - 960).wrapping_add(960 * i as u32);
        jb.push(s, ts, pkt(s), t0 + FRAME * i as u32);
    }
    let mut now = t0;
    let (_, p) = first_sound(&mut jb, &mut now, 10);
    let mut got = vec![p];
    for _ in 0..3 {
        now += FRAME;
        got.push(jb.pop(now));
    }
    let want: Vec<Bytes> = [65_534u16, 65_535, 0, 1].into_iter().map(pkt).collect();
    let have: Vec<Bytes> = got
        .into_iter()
        .map(|p| match p {
            Playout::Packet { payload, .. } => payload,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(have, want);
}

#[test]
fn the_target_follows_jitter() {
    let t0 = Instant::now();
    let mut steady = JitterBuffer::new();
    let mut jittery = JitterBuffer::new();
    for s in 0..200u16 {
        let at = t0 + FRAME * u32::from(s);
        steady.push(s, ts(s), pkt(s), at);
        // Every other packet 30 ms late.
        let late = if s % 2 == 1 {
            Duration::from_millis(30)
        } else {
            Duration::ZERO
        };
        jittery.push(s, ts(s), pkt(s), at + late);
    }
    assert_eq!(steady.target_ms(), MIN_DELAY_MS);
    assert!(jittery.jitter_ms() > 10.0, "{}", jittery.jitter_ms());
    assert!(jittery.target_ms() > 60.0, "{}", jittery.target_ms());
    assert!(jittery.target_ms() <= MAX_DELAY_MS);
}

#[test]
fn too_much_delay_is_shortened_by_skipping() {
    // Packets arrive in a burst of 40 (800 ms), far more than the 40 ms target: the held
    // delay comes down a frame a second.
    let t0 = Instant::now();
    let mut jb = JitterBuffer::new();
    for s in 0..40u16 {
        jb.push(s, ts(s), pkt(s), t0);
    }
    let mut now = t0;
    first_sound(&mut jb, &mut now, 10);
    for s in 40..340u16 {
        now += FRAME;
        jb.push(s, ts(s), pkt(s), now);
        jb.pop(now);
    }
    assert!(jb.stats().dropped >= 4, "{:?}", jb.stats());
    assert!(jb.len() < 40);
}

#[test]
fn a_long_gap_goes_quiet_then_buffers_anew() {
    let t0 = Instant::now();
    let mut jb = JitterBuffer::new();
    jb.push(0, 0, pkt(0), t0);
    let mut now = t0;
    first_sound(&mut jb, &mut now, 10);
    let mut quiet = 0;
    for _ in 0..30 {
        now += FRAME;
        if jb.pop(now) == Playout::Silence {
            quiet += 1;
        }
    }
    assert!(quiet >= 30 - MAX_CONCEAL_RUN as usize - 1, "{quiet}");
    // The stream comes back 600 ms on: played after the target delay.
    jb.push(30, ts(30), pkt(30), now);
    let (silent, p) = first_sound(&mut jb, &mut now, 10);
    assert!(silent >= 1);
    assert!(matches!(p, Playout::Packet { ref payload, .. } if *payload == pkt(30)));
}

#[test]
fn it_is_bounded() {
    let t0 = Instant::now();
    let mut jb = JitterBuffer::new();
    for s in 0..1000u16 {
        jb.push(s, ts(s), pkt(s), t0);
        assert!(jb.len() <= MAX_PACKETS);
    }
    assert!(jb.stats().dropped > 0);
    // What is held is the newest.
    let mut now = t0 + Duration::from_secs(1);
    let (_, p) = first_sound(&mut jb, &mut now, 1);
    assert!(
        matches!(p, Playout::Packet { ref payload, .. } if *payload == pkt(1000 - MAX_PACKETS as u16))
    );
}

#[derive(Clone, Debug)]
enum Op {
    Push {
        seq: u16,
        ts: u32,
        after_ms: u16,
        len: u8,
    },
    Pop {
        after_ms: u16,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (any::<u16>(), any::<u32>(), 0u16..100, 0u8..8).prop_map(|(seq, ts, after_ms, len)| {
            Op::Push {
                seq,
                ts,
                after_ms,
                len,
            }
        }),
        (0u16..100).prop_map(|after_ms| Op::Pop { after_ms }),
    ]
}

/// A plausible stream: in order, with some packets lost, duplicated, delayed or reordered.
fn stream() -> impl Strategy<Value = Vec<Op>> {
    (
        any::<u16>(),
        prop::collection::vec((0u8..10, 0u16..120), 1..300),
    )
        .prop_map(|(start, faults)| {
            let mut ops = Vec::new();
            let mut held: Vec<u16> = Vec::new();
            for (i, (fault, delay)) in faults.into_iter().enumerate() {
                let seq = start.wrapping_add(i as u16);
                match fault {
                    0 => {}                                  // lost
                    1 => held.push(seq),                     // comes later
                    2 => ops.extend([push(seq), push(seq)]), // duplicated
                    _ => ops.push(push(seq)),
                }
                if fault == 3
                    && let Some(s) = held.pop()
                {
                    ops.push(push(s));
                }
                ops.push(Op::Pop {
                    after_ms: 20 + delay % 7,
                });
            }
            ops
        })
}

fn push(seq: u16) -> Op {
    Op::Push {
        seq,
        ts: u32::from(seq).wrapping_mul(960),
        after_ms: 0,
        len: 3,
    }
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut now = Instant::now();
    let mut jb = JitterBuffer::new();
    let mut last: Option<u64> = None;
    for op in ops {
        match op {
            Op::Push {
                seq,
                ts,
                after_ms,
                len,
            } => {
                now += Duration::from_millis(u64::from(after_ms));
                let resets = jb.stats().resets;
                jb.push(seq, ts, Bytes::from(vec![0u8; usize::from(len)]), now);
                if jb.stats().resets != resets {
                    // A far jump started the stream anew: order restarts.
                    last = None;
                }
            }
            Op::Pop { after_ms } => {
                now += Duration::from_millis(u64::from(after_ms));
                let p = jb.pop(now);
                if let Some(s) = seq_of(&p) {
                    if let Some(l) = last {
                        prop_assert!(s > l, "out of order: {s} after {l}");
                    }
                    last = Some(s);
                }
            }
        }
        prop_assert!(jb.len() <= MAX_PACKETS);
        prop_assert!(jb.target_ms() >= MIN_DELAY_MS && jb.target_ms() <= MAX_DELAY_MS);
    }
    // Draining ends.
    let mut n = 0;
    while !jb.drained() {
        now += FRAME;
        jb.pop(now);
        n += 1;
        prop_assert!(n < MAX_PACKETS * (MAX_CONCEAL_RUN as usize + 2));
    }
    Ok(())
}

proptest! {
    #[test]
    fn any_packets_in_any_order_never_panic_stay_bounded_and_play_in_order(
        ops in prop::collection::vec(op(), 0..400)
    ) {
        run(ops)?;
    }

    #[test]
    fn a_faulty_stream_plays_in_order(ops in stream()) {
        run(ops)?;
    }
}
