//! Two media tasks in one process on loopback, signalled by hand: the callee's recording
//! holds the caller's 440 Hz tone, and the caller's holds the callee's 660 Hz tone.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;
use std::time::Duration;

use kith_calls::tone::{sine, tone_share};
use kith_calls::{MediaEvent, MediaOptions, Role, read_wav, spawn, write_wav};
use tokio::sync::mpsc;
use tokio::time::timeout;

async fn next(rx: &mut mpsc::Receiver<MediaEvent>, what: &str) -> MediaEvent {
    loop {
        let ev = timeout(Duration::from_secs(20), rx.recv())
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
            .expect("events");
        match (&ev, what) {
            (MediaEvent::Quality { .. }, _) => continue,
            (MediaEvent::LocalSdp { .. }, "sdp")
            | (MediaEvent::Connected { .. }, "connected")
            | (MediaEvent::Ended { .. }, "ended") => return ev,
            (MediaEvent::Ended { reason, .. }, _) => panic!("ended early: {reason}"),
            _ => continue,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tone_crosses_a_loopback_call_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let a_in = dir.path().join("a_in.wav");
    let b_in = dir.path().join("b_in.wav");
    let a_out = dir.path().join("a_out.wav");
    let b_out = dir.path().join("b_out.wav");
    write_wav(&a_in, &sine(440.0, 8000.0, 48_000 * 3)).unwrap();
    write_wav(&b_in, &sine(660.0, 8000.0, 48_000 * 3)).unwrap();
    let lo: IpAddr = "127.0.0.1".parse().unwrap();

    let (atx, mut arx) = mpsc::channel(64);
    let (btx, mut brx) = mpsc::channel(64);
    let a = spawn(
        1,
        Role::Caller,
        MediaOptions {
            audio_in: Some(a_in),
            audio_out: Some(a_out.clone()),
            bind: lo,
            ..MediaOptions::default()
        },
        atx,
    );
    let MediaEvent::LocalSdp { sdp: offer, .. } = next(&mut arx, "sdp").await else {
        unreachable!()
    };
    assert!(
        offer.contains("a=fingerprint:"),
        "the offer names the DTLS fingerprint"
    );
    assert!(!offer.contains(".local"), "no mDNS candidates");
    let b = spawn(
        1,
        Role::Callee { offer },
        MediaOptions {
            audio_in: Some(b_in),
            audio_out: Some(b_out.clone()),
            bind: lo,
            ..MediaOptions::default()
        },
        btx,
    );
    let MediaEvent::LocalSdp { sdp: answer, .. } = next(&mut brx, "sdp").await else {
        unreachable!()
    };
    a.remote_answer(answer);
    next(&mut arx, "connected").await;
    next(&mut brx, "connected").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    a.stop();
    b.stop();
    next(&mut arx, "ended").await;
    next(&mut brx, "ended").await;

    let got_b = read_wav(&b_out).unwrap();
    let got_a = read_wav(&a_out).unwrap();
    assert!(got_b.len() > 48_000, "Bob recorded {} samples", got_b.len());
    assert!(
        got_a.len() > 48_000,
        "Alice recorded {} samples",
        got_a.len()
    );
    let share_b = tone_share(&got_b, 440.0);
    let share_a = tone_share(&got_a, 660.0);
    assert!(share_b > 0.5, "Bob hears Alice's 440 Hz: {share_b}");
    assert!(share_a > 0.5, "Alice hears Bob's 660 Hz: {share_a}");
    assert!(tone_share(&got_b, 660.0) < 0.05);
}

/// Replaces the first hex digit of every `a=fingerprint:` line with another one.
fn tamper(sdp: &str) -> String {
    sdp.lines()
        .map(|l| match l.strip_prefix("a=fingerprint:") {
            Some(rest) => {
                let (algo, hex) = rest.split_once(' ').unwrap();
                let mut chars: Vec<char> = hex.chars().collect();
                chars[0] = if chars[0] == 'A' { 'B' } else { 'A' };
                format!(
                    "a=fingerprint:{algo} {}",
                    chars.into_iter().collect::<String>()
                )
            }
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\r\n")
        + "\r\n"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_fingerprint_fails_the_call() {
    let lo: IpAddr = "127.0.0.1".parse().unwrap();
    let opts = MediaOptions {
        audio_in: None,
        audio_out: None,
        bind: lo,
        ..MediaOptions::default()
    };
    let (atx, mut arx) = mpsc::channel(64);
    let (btx, mut brx) = mpsc::channel(64);
    let a = spawn(2, Role::Caller, opts.clone(), atx);
    let MediaEvent::LocalSdp { sdp: offer, .. } = next(&mut arx, "sdp").await else {
        unreachable!()
    };
    let _b = spawn(2, Role::Callee { offer }, opts, btx);
    let MediaEvent::LocalSdp { sdp: answer, .. } = next(&mut brx, "sdp").await else {
        unreachable!()
    };
    let forged = tamper(&answer);
    assert_ne!(forged, answer);
    a.remote_answer(forged);
    // The caller's DTLS check refuses Bob's certificate: it never reports connected.
    let end = loop {
        let ev = timeout(Duration::from_secs(40), arx.recv())
            .await
            .expect("the call ends")
            .expect("events");
        match ev {
            MediaEvent::Connected { .. } => panic!("connected with a forged fingerprint"),
            MediaEvent::Ended { reason, .. } => break reason,
            _ => {}
        }
    };
    eprintln!("ended: {end}");
}
