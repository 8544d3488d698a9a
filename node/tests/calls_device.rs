//! Calls through the default sound devices, without a sound card: each daemon gets its own
//! ALSA configuration (`ALSA_CONFIG_PATH`) whose `default` PCM is alsa-lib's `file` plugin
//! over a `null` slave, behind `plug` (so cpal sees an ordinary device that does 48 kHz):
//! capture reads raw samples from a FIFO that this test fills with a tone at real-time pace,
//! playback writes raw samples to a FIFO that this test drains at real-time pace (the `null`
//! slave has no clock of its own; the FIFOs give it ours). The calls are made without
//! `--audio-in` / `--audio-out`, so sound goes microphone → Opus → WebRTC → jitter buffer →
//! speaker through cpal's real ALSA path, and the other side's speaker FIFO must hold the
//! tone. A second test gives the daemons an ALSA configuration with no usable device: the
//! call still connects, and `kith watch` says once that there is no sound device.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Node, wait_for};
use kith_calls::tone::{sine, tone_share_in_windows};
use serde_json::Value;

const T: Duration = Duration::from_secs(30);
/// 20 ms of 16-bit mono at 48 kHz, in bytes.
const CHUNK: usize = 960 * 2;
/// The most a speaker FIFO's reader keeps (60 s).
const MAX_KEPT: usize = 48_000 * 60;

/// A sound card made of two FIFOs and an ALSA configuration.
struct FakeCard {
    conf: PathBuf,
    heard: Arc<Mutex<Vec<i16>>>,
}

fn mkfifo(p: &Path) {
    let ok = Command::new("mkfifo").arg(p).status().unwrap().success();
    assert!(ok, "mkfifo {}", p.display());
}

/// Sleeps until `start + n × 20 ms`: the test's real-time clock for the FIFOs.
fn pace(start: Instant, n: u32) {
    let at = start + Duration::from_millis(20) * n;
    if let Some(d) = at.checked_duration_since(Instant::now()) {
        std::thread::sleep(d);
    }
}

impl FakeCard {
    /// A card in `dir` whose microphone hears a `hz` tone.
    fn new(dir: &Path, hz: f64) -> Self {
        let (mic, speaker) = (dir.join("mic.fifo"), dir.join("speaker.fifo"));
        mkfifo(&mic);
        mkfifo(&speaker);
        let conf = dir.join("asound.conf");
        std::fs::write(
            &conf,
            format!(
                r#"pcm.!default {{
    type asym
    playback.pcm "kithspeaker"
    capture.pcm "kithmic"
}}
pcm.kithspeaker {{
    type plug
    slave {{
        pcm {{ type file slave.pcm {{ type null }} file "{speaker}" format "raw" }}
        format S16_LE
        rate 48000
        channels 1
    }}
}}
pcm.kithmic {{
    type plug
    slave {{
        pcm {{ type file slave.pcm {{ type null }} file "/dev/null" infile "{mic}" format "raw" }}
        format S16_LE
        rate 48000
        channels 1
    }}
}}
"#,
                speaker = speaker.display(),
                mic = mic.display()
            ),
        )
        .unwrap();

        // The microphone: the tone, 20 ms at a time, for as long as the test runs. Opened
        // read-write, so neither side's open waits for the other.
        let tone: Vec<u8> = sine(hz, 8000.0, 48_000)
            .into_iter()
            .flat_map(i16::to_le_bytes)
            .collect();
        let mut w = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&mic)
            .unwrap();
        std::thread::spawn(move || {
            let start = Instant::now();
            for n in 0u32.. {
                let off = (n as usize * CHUNK) % tone.len();
                if w.write_all(&tone[off..off + CHUNK]).is_err() {
                    return;
                }
                pace(start, n + 1);
            }
        });

        // The speaker: drained 20 ms at a time, kept (bounded).
        let heard = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&heard);
        let mut r = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&speaker)
            .unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; CHUNK];
            let mut odd: Option<u8> = None;
            let mut start = Instant::now();
            let mut n = 0u32;
            loop {
                let Ok(got) = r.read(&mut buf) else { return };
                if n == 0 {
                    start = Instant::now();
                }
                let mut bytes: Vec<u8> = odd.take().into_iter().collect();
                bytes.extend_from_slice(&buf[..got]);
                if bytes.len() % 2 == 1 {
                    odd = bytes.pop();
                }
                let mut k = kept.lock().unwrap();
                if k.len() < MAX_KEPT {
                    k.extend(bytes.chunks(2).map(|b| i16::from_le_bytes([b[0], b[1]])));
                }
                drop(k);
                n += 1;
                pace(start, n);
            }
        });
        Self { conf, heard }
    }

    fn heard(&self) -> Vec<i16> {
        self.heard.lock().unwrap().clone()
    }
}

fn device_node(conf: &Path) -> Node {
    let mut n = Node::new()
        .with_args(&["--call-bind", "127.0.0.1"])
        .with_env("ALSA_CONFIG_PATH", conf.to_str().unwrap());
    n.start();
    n
}

fn current(n: &Node) -> Value {
    n.json(&["calls", "--current"])
        .into_iter()
        .next()
        .unwrap_or(Value::Null)
}

fn wait_state(n: &Node, state: &str) {
    wait_for(T, &format!("call {state}"), || {
        (current(n)["state"] == state).then_some(())
    });
}

fn wait_no_call(n: &Node) {
    wait_for(T, "the call to end", || current(n).is_null().then_some(()));
}

/// The loudest 2 s of what a speaker played (the call's middle).
fn loud_part(s: &[i16]) -> &[i16] {
    let first = s
        .iter()
        .position(|x| x.unsigned_abs() > 1000)
        .unwrap_or(s.len());
    &s[first..s.len().min(first + 48_000 * 2)]
}

#[test]
fn a_call_without_files_carries_the_microphone_to_the_other_speaker() {
    let dir = tempfile::tempdir().unwrap();
    let (da, db) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir_all(&da).unwrap();
    std::fs::create_dir_all(&db).unwrap();
    let card_a = FakeCard::new(&da, 440.0);
    let card_b = FakeCard::new(&db, 660.0);
    let a = device_node(&card_a.conf);
    let b = device_node(&card_b.conf);
    a.add(&b, "Bob");
    b.add(&a, "Alice");

    a.json(&["call", "Bob"]);
    wait_state(&b, "ringing");
    b.json(&["answer"]);
    wait_state(&a, "connected");
    wait_state(&b, "connected");
    // Talk until each speaker played 2 s of the other's tone (a deadline, not a timing
    // assertion).
    let enough = |c: &FakeCard| {
        let h = c.heard();
        let first = h.iter().position(|x| x.unsigned_abs() > 1000);
        first.is_some_and(|f| h.len() >= f + 48_000 * 2)
    };
    wait_for(T, "both speakers to play sound", || {
        (enough(&card_a) && enough(&card_b)).then_some(())
    });
    a.json(&["hangup"]);
    wait_no_call(&a);
    wait_no_call(&b);

    let (heard_by_a, heard_by_b) = (card_a.heard(), card_b.heard());
    let to_b = tone_share_in_windows(loud_part(&heard_by_b), 440.0);
    let to_a = tone_share_in_windows(loud_part(&heard_by_a), 660.0);
    eprintln!("speaker tone shares: Bob hears 440 Hz {to_b:.3}, Alice hears 660 Hz {to_a:.3}");
    assert!(
        to_b > 0.5,
        "Bob's speaker plays Alice's microphone ({to_b})"
    );
    assert!(
        to_a > 0.5,
        "Alice's speaker plays Bob's microphone ({to_a})"
    );
    assert!(
        tone_share_in_windows(loud_part(&heard_by_b), 660.0) < 0.1,
        "and not his own"
    );
}

#[test]
fn no_sound_device_is_a_notice_not_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    // A `default` PCM that cannot be opened, as on a machine without a sound card.
    let conf = dir.path().join("asound.conf");
    std::fs::write(&conf, "pcm.!default { type hw card 97 }\n").unwrap();
    let a = device_node(&conf);
    let b = device_node(&conf);
    a.add(&b, "Bob");
    b.add(&a, "Alice");
    let (mut watch, lines) = a.watch();

    a.json(&["call", "Bob"]);
    wait_state(&b, "ringing");
    b.json(&["answer"]);
    wait_state(&a, "connected");
    wait_state(&b, "connected");
    let deadline = Instant::now() + T;
    let mut notices = Vec::new();
    while Instant::now() < deadline && notices.is_empty() {
        if let Ok(l) = lines.recv_timeout(Duration::from_millis(200))
            && l.contains("\"notice\"")
        {
            notices.push(l);
        }
    }
    // A moment for a second notice, were there one.
    std::thread::sleep(Duration::from_secs(1));
    while let Ok(l) = lines.try_recv() {
        if l.contains("\"notice\"") {
            notices.push(l);
        }
    }
    eprintln!("{notices:?}");
    assert_eq!(notices.len(), 1, "one notice: {notices:?}");
    assert!(notices[0].contains("no microphone"), "{}", notices[0]);
    assert!(notices[0].contains("no speaker"), "{}", notices[0]);
    assert_eq!(current(&a)["state"], "connected", "the call goes on");
    a.json(&["hangup"]);
    wait_no_call(&a);
    wait_no_call(&b);

    // With --no-audio-device no device is tried: no notice.
    a.json(&["call", "Bob", "--no-audio-device"]);
    wait_state(&b, "ringing");
    b.json(&["answer", "--no-audio-device"]);
    wait_state(&a, "connected");
    std::thread::sleep(Duration::from_secs(1));
    while let Ok(l) = lines.try_recv() {
        assert!(!l.contains("\"notice\""), "{l}");
    }
    a.json(&["hangup"]);
    wait_no_call(&a);
    let _ = watch.kill();
}
