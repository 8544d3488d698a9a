//! Video between two `kith up` daemons on loopback: Alice sends an IVF file of VP8 frames
//! (`--video-in`), Bob the built-in test pattern (`--video`); each records the other's
//! frames (`--video-out`), and the recordings are valid IVF files whose frames are byte for
//! byte what the other side sent.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Node, wait_for};
use kith_calls::video::{Ivf, TEST_PATTERN, parse_ivf, read_ivf};
use serde_json::Value;

const T: Duration = Duration::from_secs(30);

fn call_node() -> Node {
    let mut n = Node::new().with_args(&["--call-bind", "127.0.0.1"]);
    n.start();
    n
}

fn current(n: &Node) -> Value {
    n.json(&["calls", "--current"])
        .into_iter()
        .next()
        .unwrap_or(Value::Null)
}

fn wait_state(n: &Node, state: &str) -> Value {
    wait_for(T, &format!("call {state}"), || {
        let c = current(n);
        (c["state"] == state).then_some(c)
    })
}

fn arg(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A complete recording (the header's frame count is written when the call ends).
fn recording(path: &Path) -> Ivf {
    wait_for(T, "the video recording", || {
        let data = std::fs::read(path).ok()?;
        let count = u32::from_le_bytes(data.get(24..28)?.try_into().ok()?) as usize;
        let ivf = parse_ivf(&data).ok()?;
        (count > 0 && ivf.frames.len() == count).then_some(ivf)
    })
}

/// `got` is non-empty and equal to a run of `sent`.
fn is_run_of<T: PartialEq>(got: &[T], sent: &[T]) -> bool {
    !got.is_empty()
        && (0..sent.len()).any(|start| {
            got.len() <= sent.len() - start && got.iter().zip(&sent[start..]).all(|(a, b)| a == b)
        })
}

#[test]
fn video_frames_cross_a_call_between_two_daemons() {
    let a = call_node();
    let b = call_node();
    a.add(&b, "Bob");
    b.add(&a, "Alice");
    let dir = tempfile::tempdir().unwrap();
    // Alice's camera: the pattern twice over, 60 frames at 15 frames/s.
    let mut file = TEST_PATTERN.to_vec();
    file.extend_from_slice(&TEST_PATTERN[32..]);
    let a_in = dir.path().join("a_in.ivf");
    std::fs::write(&a_in, &file).unwrap();
    let sent_by_alice = read_ivf(&a_in).unwrap().frames;
    let (a_out, b_out) = (dir.path().join("a_out.ivf"), dir.path().join("b_out.ivf"));

    a.json(&[
        "call",
        "Bob",
        "--video-in",
        arg(&a_in),
        "--video-out",
        arg(&a_out),
    ]);
    wait_state(&b, "ringing");
    b.json(&["answer", "--video", "--video-out", arg(&b_out)]);
    wait_state(&a, "connected");
    wait_state(&b, "connected");
    // The length of the call (Alice's file lasts 4 s), not a timing assertion.
    std::thread::sleep(Duration::from_millis(4500));
    a.json(&["hangup"]);

    let to_bob = recording(&b_out);
    let to_alice = recording(&a_out);
    eprintln!(
        "frames: to Bob {}, to Alice {}",
        to_bob.frames.len(),
        to_alice.frames.len()
    );
    assert!(to_bob.frames.len() >= 25, "Bob got {}", to_bob.frames.len());
    assert!(
        to_alice.frames.len() >= 25,
        "Alice got {}",
        to_alice.frames.len()
    );
    assert!(
        is_run_of(&to_bob.frames, &sent_by_alice),
        "Bob's recording holds Alice's frames, byte for byte"
    );
    let pattern = parse_ivf(TEST_PATTERN).unwrap().frames;
    let looped: Vec<_> = pattern
        .iter()
        .cycle()
        .take(pattern.len() * 10)
        .cloned()
        .collect();
    assert!(
        is_run_of(&to_alice.frames, &looped),
        "Alice's recording holds Bob's test pattern"
    );
}
