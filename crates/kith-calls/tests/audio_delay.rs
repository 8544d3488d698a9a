//! The end-to-end audio delay of a call on loopback: a click in the caller's input file to
//! the click coming out of the callee's jitter buffer and decoder on its 20 ms playout clock
//! (what is written to its output file or handed to its speaker), over
//! KITH_DELAY_CALLS calls (default 20). Two media tasks in one process, signalled by hand,
//! so both ends share one clock ([`ClickProbe`]); the engine is not on the media path, so
//! this is the delay two daemons' calls have too.
//!
//! KITH_DELAY_CALLS=20 cargo test -p kith-calls --test audio_delay -- --ignored --nocapture

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use kith_calls::{ClickProbe, MediaEvent, MediaOptions, Role, spawn, write_wav};
use tokio::sync::mpsc;
use tokio::time::timeout;

async fn next(rx: &mut mpsc::Receiver<MediaEvent>, what: &str) -> MediaEvent {
    loop {
        let ev = timeout(Duration::from_secs(20), rx.recv())
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
            .expect("events");
        match (&ev, what) {
            (MediaEvent::LocalSdp { .. }, "sdp") | (MediaEvent::Connected { .. }, "connected") => {
                return ev;
            }
            (MediaEvent::Ended { reason, .. }, _) => panic!("ended early: {reason}"),
            _ => continue,
        }
    }
}

/// Silence with one click (1 ms at full scale) at 0.5 s.
fn clicked() -> Vec<i16> {
    let mut v = vec![0i16; 48_000 * 2];
    for (i, s) in v[24_000..24_048].iter_mut().enumerate() {
        *s = if i % 2 == 0 { 30_000 } else { -30_000 };
    }
    v
}

async fn one_call(n: u128, input: std::path::PathBuf) -> Duration {
    let lo: IpAddr = "127.0.0.1".parse().unwrap();
    let probe = Arc::new(ClickProbe::new(8_000));
    let opts = MediaOptions {
        bind: lo,
        probe: Some(Arc::clone(&probe)),
        ..MediaOptions::default()
    };
    let (atx, mut arx) = mpsc::channel(64);
    let (btx, mut brx) = mpsc::channel(64);
    let a = spawn(
        n,
        Role::Caller,
        MediaOptions {
            audio_in: Some(input),
            ..opts.clone()
        },
        atx,
    );
    let MediaEvent::LocalSdp { sdp: offer, .. } = next(&mut arx, "sdp").await else {
        unreachable!()
    };
    let b = spawn(n, Role::Callee { offer }, opts, btx);
    let MediaEvent::LocalSdp { sdp: answer, .. } = next(&mut brx, "sdp").await else {
        unreachable!()
    };
    a.remote_answer(answer);
    next(&mut arx, "connected").await;
    let delay = timeout(Duration::from_secs(10), async {
        loop {
            if let Some(d) = probe.delay() {
                return d;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the click came through");
    a.stop();
    b.stop();
    delay
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run by hand (see its docs)"]
async fn bench_audio_delay() {
    let n: usize = std::env::var("KITH_DELAY_CALLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("click.wav");
    write_wav(&input, &clicked()).unwrap();
    let mut ms = Vec::with_capacity(n);
    for i in 0..n {
        ms.push(one_call(100 + i as u128, input.clone()).await.as_secs_f64() * 1000.0);
    }
    ms.sort_by(f64::total_cmp);
    let at = |p: f64| ms[(((ms.len() - 1) as f64) * p).round() as usize];
    println!(
        "audio delay over {n} calls (click in the input file → click out of the playout clock): \
         p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms",
        at(0.5),
        at(0.95),
        ms[ms.len() - 1]
    );
}

/// The probe itself: a click sent is a click heard (no timing asserted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_click_crosses_a_call() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("click.wav");
    write_wav(&input, &clicked()).unwrap();
    let d = one_call(7, input).await;
    eprintln!("click delay {d:?}");
}
