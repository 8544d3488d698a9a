//! Video on a loopback call, both ways: the caller sends an IVF file of VP8 frames, the
//! callee the built-in test pattern; each side's recording is a valid IVF file whose
//! frames are byte-equal to a run of what the other side sent.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;
use std::time::Duration;

use kith_calls::video::{TEST_PATTERN, parse_ivf, read_ivf};
use kith_calls::{MediaEvent, MediaOptions, Role, spawn};
use tokio::sync::mpsc;
use tokio::time::timeout;

async fn next(rx: &mut mpsc::Receiver<MediaEvent>, what: &str) -> MediaEvent {
    loop {
        let ev = timeout(Duration::from_secs(20), rx.recv())
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
            .expect("events");
        match (&ev, what) {
            (MediaEvent::LocalSdp { .. }, "sdp")
            | (MediaEvent::Connected { .. }, "connected")
            | (MediaEvent::Ended { .. }, "ended") => return ev,
            (MediaEvent::Ended { reason, .. }, _) => panic!("ended early: {reason}"),
            _ => continue,
        }
    }
}

/// `got` is non-empty and equal to a run of `sent` (which may repeat).
fn is_run_of(got: &[bytes::Bytes], sent: &[bytes::Bytes]) -> bool {
    !got.is_empty()
        && (0..sent.len()).any(|start| {
            got.len() <= sent.len() - start && got.iter().zip(&sent[start..]).all(|(a, b)| a == b)
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn video_frames_cross_a_loopback_call_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    // The caller's camera: the pattern twice over (a key frame every 30 frames).
    let pattern = parse_ivf(TEST_PATTERN).unwrap();
    let mut file = TEST_PATTERN.to_vec();
    file.extend_from_slice(&TEST_PATTERN[32..]);
    let a_in = dir.path().join("a_in.ivf");
    std::fs::write(&a_in, &file).unwrap();
    let sent_a = read_ivf(&a_in).unwrap().frames;
    assert_eq!(sent_a.len(), 60);
    let a_out = dir.path().join("a_out.ivf");
    let b_out = dir.path().join("b_out.ivf");
    let lo: IpAddr = "127.0.0.1".parse().unwrap();

    let (atx, mut arx) = mpsc::channel(64);
    let (btx, mut brx) = mpsc::channel(64);
    let a = spawn(
        7,
        Role::Caller,
        MediaOptions {
            bind: lo,
            video: true,
            video_in: Some(a_in),
            video_out: Some(a_out.clone()),
            ..MediaOptions::default()
        },
        atx,
    );
    let MediaEvent::LocalSdp { sdp: offer, .. } = next(&mut arx, "sdp").await else {
        unreachable!()
    };
    assert!(offer.contains("m=video"), "the offer has a video track");
    assert!(offer.contains("VP8/90000"));
    let b = spawn(
        7,
        Role::Callee { offer },
        MediaOptions {
            bind: lo,
            video: true,
            video_out: Some(b_out.clone()),
            ..MediaOptions::default()
        },
        btx,
    );
    let MediaEvent::LocalSdp { sdp: answer, .. } = next(&mut brx, "sdp").await else {
        unreachable!()
    };
    assert!(answer.contains("m=video"));
    a.remote_answer(answer);
    next(&mut arx, "connected").await;
    next(&mut brx, "connected").await;
    // The caller's 60 frames take 4 s at 15 frames/s.
    tokio::time::sleep(Duration::from_millis(4500)).await;
    a.stop();
    b.stop();
    next(&mut arx, "ended").await;
    next(&mut brx, "ended").await;

    let got_b = read_ivf(&b_out).expect("Bob's recording is a valid IVF file");
    let got_a = read_ivf(&a_out).expect("Alice's recording is a valid IVF file");
    assert!(
        got_b.frames.len() >= 25,
        "Bob got {} of Alice's frames",
        got_b.frames.len()
    );
    assert!(
        got_a.frames.len() >= 25,
        "Alice got {} of Bob's frames",
        got_a.frames.len()
    );
    assert!(
        is_run_of(&got_b.frames, &sent_a),
        "Bob's frames are Alice's, byte for byte"
    );
    let mut looped = pattern.frames.clone();
    for _ in 0..4 {
        looped.extend(pattern.frames.iter().cloned());
    }
    assert!(
        is_run_of(&got_a.frames, &looped),
        "Alice's frames are the pattern's"
    );
    assert_eq!(
        got_a.frames[0][0] & 1,
        0,
        "a recording starts at a key frame"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audio_only_call_has_no_video_track() {
    let lo: IpAddr = "127.0.0.1".parse().unwrap();
    let (atx, mut arx) = mpsc::channel(64);
    let a = spawn(
        8,
        Role::Caller,
        MediaOptions {
            bind: lo,
            ..MediaOptions::default()
        },
        atx,
    );
    let MediaEvent::LocalSdp { sdp: offer, .. } = next(&mut arx, "sdp").await else {
        unreachable!()
    };
    assert!(!offer.contains("m=video"));
    a.stop();
    next(&mut arx, "ended").await;
}
