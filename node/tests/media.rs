#![allow(clippy::unwrap_used, clippy::expect_used)]

//! Media between separate `kith up` processes on loopback: a file sent, fetched chunk by
//! chunk and saved with identical bytes; a receiver killed mid-transfer that resumes; a
//! tampered chunk refused; a voice note with its duration.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use serde_json::Value;

const T: Duration = Duration::from_secs(60);

/// `len` bytes of a fixed pseudo-random stream (xorshift), different per `seed`.
fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn send_file(a: &Node, to: &str, flag: &str, path: &Path, caption: Option<&str>) -> String {
    let mut args = vec!["send", to, flag, path.to_str().unwrap()];
    if let Some(c) = caption {
        args.extend_from_slice(&["--caption", c]);
    }
    a.json(&args)[0]["id"].as_str().unwrap().to_string()
}

/// The attachment of message `id` as `kith media get` sees it on node `n`.
fn attachment(n: &Node, with: &str, id: &str) -> Option<Value> {
    n.history(with)
        .into_iter()
        .find(|m| m["id"] == id)
        .map(|m| m["attachment"].clone())
}

fn wait_state(n: &Node, with: &str, id: &str, state: &str, timeout: Duration) -> Value {
    wait_for(timeout, &format!("attachment {state}"), || {
        attachment(n, with, id).filter(|a| a["state"] == state)
    })
}

/// The one file of `ext` (e.g. ".have", or "" for a whole file) in a node's media folder.
fn media_file(n: &Node, ext: &str) -> Option<PathBuf> {
    std::fs::read_dir(n.dir.join("media"))
        .ok()?
        .flatten()
        .find_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let hex_len = name.find('.').unwrap_or(name.len());
            let ok = hex_len == 64
                && if ext.is_empty() {
                    !name.contains('.')
                } else {
                    name.ends_with(ext)
                };
            ok.then(|| e.path())
        })
}

#[test]
fn a_file_crosses_between_processes_and_is_saved_identical() {
    let (a, b) = pair();
    let tmp = tempfile::tempdir().unwrap();
    let bytes = data(6 * 1024 * 1024 + 12_345, 1);
    let src = write_file(tmp.path(), "report.bin", &bytes);
    let id = send_file(&a, "Bob", "--file", &src, Some("the report"));

    // Bob's history shows it; 6 MiB is under the default auto-download size.
    let got = wait_state(&b, "Alice", &id, "ready", T);
    assert_eq!(got["kind"], "document");
    assert_eq!(got["name"], "report.bin");
    assert_eq!(got["size"], bytes.len() as u64);
    let msg = b
        .history("Alice")
        .into_iter()
        .find(|m| m["id"] == id.as_str())
        .unwrap();
    assert_eq!(msg["text"], "the report");
    a.wait_status("Bob", 1, "delivered", T);

    // Saved where Bob says, identical.
    let out = tmp.path().join("saved.bin");
    let saved = b.json(&["save", &id, "--to", out.to_str().unwrap()]);
    assert_eq!(saved[0]["size"], bytes.len() as u64);
    assert_eq!(std::fs::read(&out).unwrap(), bytes);
    // Saving over an existing file is refused.
    assert!(
        !b.cli(&["save", &id, "--to", out.to_str().unwrap()])
            .status
            .success()
    );

    // `kith media` lists it on both sides.
    let mine = a.json(&["media"]);
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0]["outgoing"], true);
    let theirs = b.json(&["media"]);
    assert_eq!(theirs[0]["state"], "ready");

    // Above the auto-download size a file waits for `kith download`.
    b.json(&["media", "auto-download", "1M"]);
    let big = data(3 * 1024 * 1024, 2);
    let src2 = write_file(tmp.path(), "big.bin", &big);
    let id2 = send_file(&a, "Bob", "--file", &src2, None);
    wait_state(&b, "Alice", &id2, "waiting", T);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(attachment(&b, "Alice", &id2).unwrap()["state"], "waiting");
    b.json(&["download", &id2]);
    let got = wait_state(&b, "Alice", &id2, "ready", T);
    assert_eq!(b.saved(got["id"].as_str().unwrap()), big);

    // Clearing the chat frees the received files.
    let freed = b.json(&["media", "clear", "Alice"]);
    assert!(freed[0]["freed"].as_u64().unwrap() >= (bytes.len() + big.len()) as u64);
    assert_eq!(attachment(&b, "Alice", &id).unwrap()["state"], "waiting");
}

/// The receiver is killed (SIGKILL) in the middle of a transfer; restarted, it resumes from
/// the chunks it had made durable and ends with the same bytes.
#[test]
fn a_receiver_killed_mid_transfer_resumes() {
    let (a, mut b) = pair();
    b.json(&["media", "auto-download", "0"]);
    let tmp = tempfile::tempdir().unwrap();
    let bytes = data(128 * 1024 * 1024, 3);
    let src = write_file(tmp.path(), "movie.bin", &bytes);
    let id = send_file(&a, "Bob", "--file", &src, None);
    wait_state(&b, "Alice", &id, "waiting", T);
    b.json(&["download", &id]);
    // As soon as some chunks are durable (`.have` written), kill it.
    wait_for(T, "a durable part of the download", || {
        media_file(&b, ".have").filter(|p| std::fs::metadata(p).is_ok_and(|m| m.len() > 0))
    });
    b.kill9();
    assert!(
        media_file(&b, "").is_none(),
        "the transfer ended before the kill: make the file larger"
    );
    b.start();
    let got = wait_state(&b, "Alice", &id, "ready", Duration::from_secs(180));
    assert_eq!(b.saved(got["id"].as_str().unwrap()), bytes);
    let logs = b.plain_logs();
    let resumed = logs
        .lines()
        .find(|l| l.contains("resuming a download"))
        .unwrap_or_else(|| panic!("no resume in the log:\n{logs}"));
    let held: u64 = resumed
        .split("held=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap();
    assert!(held > 0 && held < 512, "resumed from {held} chunks of 512");
}

/// A source that serves a chunk whose bytes do not match the index is refused: nothing
/// wrong is written, the download fails after a few tries; with the source fixed, it
/// completes with the right bytes.
#[test]
fn a_tampered_chunk_is_refused() {
    let (a, b) = pair();
    b.json(&["media", "auto-download", "0"]);
    let tmp = tempfile::tempdir().unwrap();
    let bytes = data(2 * 1024 * 1024, 4);
    let src = write_file(tmp.path(), "doc.bin", &bytes);
    let id = send_file(&a, "Bob", "--file", &src, None);
    wait_state(&b, "Alice", &id, "waiting", T);

    // Alice's copy changes under her: the chunk she seals from it no longer matches.
    let stored = media_file(&a, "").unwrap();
    let mut bad = bytes.clone();
    bad[3 * 256 * 1024 + 77] ^= 0xff;
    std::fs::write(&stored, &bad).unwrap();
    b.json(&["download", &id]);
    wait_state(&b, "Alice", &id, "failed", T);
    assert!(b.plain_logs().contains("fails its check"));
    assert!(
        media_file(&b, "").is_none(),
        "a file with a bad chunk was finished"
    );

    std::fs::write(&stored, &bytes).unwrap();
    b.json(&["download", &id]);
    let got = wait_state(&b, "Alice", &id, "ready", T);
    assert_eq!(b.saved(got["id"].as_str().unwrap()), bytes);
}

/// A voice note: kind and duration travel with it, and it downloads by itself whatever the
/// auto-download size.
#[test]
fn a_voice_note_round_trips_with_its_duration() {
    let (a, b) = pair();
    b.json(&["media", "auto-download", "0"]);
    let tmp = tempfile::tempdir().unwrap();
    // A minimal Ogg Opus stream: the head page, some audio, a last page at 2.5 s.
    let mut ogg = b"OggS\0\x02".to_vec();
    ogg.extend_from_slice(&[0; 22]);
    ogg.extend_from_slice(b"\x13OpusHead\x01\x01\x38\x01\x80\xbb\0\0\0\0\0");
    ogg.extend_from_slice(&data(40_000, 5));
    ogg.extend_from_slice(b"OggS\0\x04");
    ogg.extend_from_slice(&(120_000u64 + 312).to_le_bytes());
    ogg.extend_from_slice(&[0; 20]);
    let src = write_file(tmp.path(), "note.ogg", &ogg);
    let id = send_file(&a, "Bob", "--voice", &src, None);
    let got = wait_state(&b, "Alice", &id, "ready", T);
    assert_eq!(got["kind"], "voice");
    assert_eq!(got["duration_ms"], 2500);
    assert_eq!(b.saved(got["id"].as_str().unwrap()), ogg);
    let plain = String::from_utf8(b.cli(&["history", "Alice"]).stdout).unwrap();
    assert!(plain.contains("[voice] note.ogg"), "{plain}");
    assert!(plain.contains("0:02"), "{plain}");
}

/// A group's history as `n` sees it (empty while the group has not reached it).
fn group_items(n: &Node, group: &str) -> Vec<Value> {
    let out = n.cli(&["--json", "history", "--group", group, "--limit", "1000"]);
    if !out.status.success() {
        return Vec::new();
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// A file sent to a group is sealed once; members fetch it from the sender, and a member
/// who asks after the sender went offline gets it from a member who has it.
#[test]
fn a_group_file_is_fetched_from_the_sender_or_a_member() {
    let mut a = Node::new();
    let mut b = Node::new();
    let mut c = Node::new();
    a.start();
    b.start();
    c.start();
    a.add(&b, "Bob");
    a.add(&c, "Carol");
    b.add(&a, "Ada");
    c.add(&a, "Ada");
    c.json(&["media", "auto-download", "0"]);
    a.json(&["group", "create", "Friends", "--members", "Bob,Carol"]);
    // Group keys reach everyone: a text round first.
    wait_for(T, "members hear the group", || {
        a.json(&["send", "--group", "Friends", "hello"]);
        [&b, &c]
            .iter()
            .all(|n| {
                group_items(n, "Friends")
                    .iter()
                    .any(|i| i["text"] == "hello")
            })
            .then_some(())
    });
    let tmp = tempfile::tempdir().unwrap();
    let bytes = data(3 * 1024 * 1024 + 7, 6);
    let src = write_file(tmp.path(), "plan.bin", &bytes);
    let out = a.json(&[
        "send",
        "--group",
        "Friends",
        "--file",
        src.to_str().unwrap(),
        "--caption",
        "the plan",
    ]);
    let id = out[0]["id"].as_str().unwrap().to_string();
    let find = |n: &Node| {
        group_items(n, "Friends")
            .into_iter()
            .find(|i| i["id"] == id.as_str())
            .map(|i| i["attachment"].clone())
    };
    // Bob downloads by itself (3 MiB is under his auto-download size).
    let got = wait_for(T, "Bob has the group file", || {
        find(&b).filter(|a| a["state"] == "ready")
    });
    assert_eq!(b.saved(got["id"].as_str().unwrap()), bytes);
    wait_for(T, "Carol sees the group file", || {
        find(&c).filter(|a| a["state"] == "waiting")
    });
    // The sender goes away; Carol asks now and gets it from Bob.
    a.stop();
    c.json(&["download", &id]);
    let got = wait_for(Duration::from_secs(90), "Carol has the group file", || {
        find(&c).filter(|a| a["state"] == "ready")
    });
    assert_eq!(c.saved(got["id"].as_str().unwrap()), bytes);
}

/// A PNG picture of `w` × `h` pixels.
fn png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 7]));
    let mut out = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut out, image::ImageFormat::Png)
        .unwrap();
    out.into_inner()
}

/// A photo arrives with its kind, dimensions and a thumbnail made by the sender; a hostile
/// "photo" (a decompression bomb: a PNG whose header claims 60,000 × 60,000 pixels) goes
/// without a thumbnail and harms neither node.
#[test]
fn a_photo_arrives_with_a_thumbnail_and_a_hostile_one_harms_nothing() {
    let (a, b) = pair();
    let tmp = tempfile::tempdir().unwrap();
    let pic = png(640, 480);
    let src = write_file(tmp.path(), "cat.png", &pic);
    let id = send_file(&a, "Bob", "--file", &src, Some("a cat"));
    let got = wait_state(&b, "Alice", &id, "ready", T);
    assert_eq!(got["kind"], "photo");
    assert_eq!(got["mime"], "image/png");
    assert_eq!(got["dimensions"], serde_json::json!([640, 480]));
    // Sealed at rest: the file is not the JPEG; `media.save` with `thumbnail` opens it.
    let at_rest = std::fs::read(got["thumbnail"].as_str().unwrap()).unwrap();
    assert_ne!(&at_rest[..2], &[0xff, 0xd8], "sealed at rest");
    let thumb = b.saved_thumbnail(got["id"].as_str().unwrap());
    assert_eq!(&thumb[..2], &[0xff, 0xd8], "a JPEG thumbnail");
    let plain = String::from_utf8(b.cli(&["history", "Alice"]).stdout).unwrap();
    assert!(plain.contains("[photo] cat.png"), "{plain}");
    assert!(plain.contains("640x480"), "{plain}");

    let mut bomb = png(1, 1);
    bomb[16..20].copy_from_slice(&60_000u32.to_be_bytes());
    bomb[20..24].copy_from_slice(&60_000u32.to_be_bytes());
    let src = write_file(tmp.path(), "bomb.png", &bomb);
    let id = send_file(&a, "Bob", "--file", &src, None);
    let got = wait_state(&b, "Alice", &id, "ready", T);
    assert_eq!(got["kind"], "photo");
    assert!(got["thumbnail"].is_null());
    assert_eq!(b.saved(got["id"].as_str().unwrap()), bomb);
    // Both still answer.
    a.json(&["status"]);
    b.json(&["status"]);
}

/// In a group, a source that serves a bad chunk (the sender, whose copy changed) is refused
/// for it and the chunk comes from another member who has the file; `kith watch` shows the
/// download's progress to the end.
#[test]
fn a_bad_chunk_from_one_source_is_fetched_from_another() {
    let mut a = Node::new();
    let mut b = Node::new();
    let mut c = Node::new();
    a.start();
    b.start();
    c.start();
    a.add(&b, "Bob");
    a.add(&c, "Carol");
    b.add(&a, "Ada");
    c.add(&a, "Ada");
    c.json(&["media", "auto-download", "0"]);
    a.json(&["group", "create", "Crew", "--members", "Bob,Carol"]);
    wait_for(T, "members hear the group", || {
        a.json(&["send", "--group", "Crew", "hello"]);
        [&b, &c]
            .iter()
            .all(|n| group_items(n, "Crew").iter().any(|i| i["text"] == "hello"))
            .then_some(())
    });
    let tmp = tempfile::tempdir().unwrap();
    let bytes = data(2 * 1024 * 1024 + 99, 8);
    let src = write_file(tmp.path(), "map.bin", &bytes);
    let id = a.json(&["send", "--group", "Crew", "--file", src.to_str().unwrap()])[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let find = |n: &Node| {
        group_items(n, "Crew")
            .into_iter()
            .find(|i| i["id"] == id.as_str())
            .map(|i| i["attachment"].clone())
    };
    wait_for(T, "Bob has the file", || {
        find(&b).filter(|a| a["state"] == "ready")
    });
    wait_for(T, "Carol sees the file", || {
        find(&c).filter(|a| a["state"] == "waiting")
    });
    // The sender's copy changes under it: its chunk 1 no longer matches the index.
    let stored = media_file(&a, "").unwrap();
    let mut bad = bytes.clone();
    bad[256 * 1024 + 5] ^= 0x55;
    std::fs::write(&stored, &bad).unwrap();

    let (mut watch, events) = c.watch();
    // The watch subscribes asynchronously: wait for one event (a 1:1 message) first.
    wait_for(T, "Carol's watch subscribed", || {
        a.send("Carol", "probe");
        events.recv_timeout(Duration::from_millis(500)).ok()
    });
    c.json(&["download", &id]);
    let got = wait_for(Duration::from_secs(90), "Carol has the file", || {
        find(&c).filter(|a| a["state"] == "ready")
    });
    assert_eq!(c.saved(got["id"].as_str().unwrap()), bytes);
    assert!(
        c.plain_logs().contains("fails its check"),
        "the bad chunk was seen"
    );
    let ready = wait_for(T, "a media event: ready", || {
        let l = events.recv_timeout(Duration::from_millis(500)).ok()?;
        let v: Value = serde_json::from_str(&l).ok()?;
        (v["event"] == "media" && v["id"] == id.as_str() && v["state"] == "ready").then_some(v)
    });
    assert_eq!(ready["percent"], 100);
    let _ = watch.kill();
    let _ = watch.wait();
}

/// The sender sees its side of a transfer: `kith watch` shows `uploading` media events for
/// the contact fetching the file, up to 100 %.
#[test]
fn the_sender_sees_upload_progress() {
    let (a, b) = pair();
    let mut watch = std::process::Command::new(KITH)
        .arg("--data-dir")
        .arg(&a.dir)
        .args(["--json", "watch"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let events = lines_of(watch.stdout.take().unwrap());
    // The watch subscribes asynchronously: wait for one event (a 1:1 message) first.
    wait_for(T, "Alice's watch subscribed", || {
        b.send("Alice", "probe");
        events.recv_timeout(Duration::from_millis(500)).ok()
    });
    let tmp = tempfile::tempdir().unwrap();
    let bytes = data(3 * 1024 * 1024 + 5, 11);
    let src = write_file(tmp.path(), "slides.bin", &bytes);
    let id = send_file(&a, "Bob", "--file", &src, None);
    let mut seen = Vec::new();
    wait_for(T, "an upload event at 100 %", || {
        let l = events.recv_timeout(Duration::from_millis(500)).ok()?;
        let v: Value = serde_json::from_str(&l).ok()?;
        if v["event"] != "media" || v["id"] != id.as_str() || v["state"] != "uploading" {
            return None;
        }
        assert_eq!(v["contact"], "Bob");
        seen.push(v["percent"].as_u64().unwrap());
        (v["percent"] == 100).then_some(())
    });
    assert!(seen.len() > 1, "progress came in steps: {seen:?}");
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
    wait_state(&b, "Alice", &id, "ready", T);
    let _ = watch.kill();
    let _ = watch.wait();
}
