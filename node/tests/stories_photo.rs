#![allow(clippy::unwrap_used, clippy::expect_used)]

//! Photo stories between real `kith` processes on loopback: the photo reaches the story's
//! audience with identical bytes, nobody else gets it, and when the story is taken back or
//! its (shortened) time runs out its media rows and files go on every node.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use serde_json::Value;

const T: Duration = Duration::from_secs(60);
/// How long stories show on these nodes (`kith up --story-lifetime-secs`).
const LIFETIME_SECS: &str = "40";

/// A PNG picture of `w` × `h` pixels, different per `seed`.
fn png(w: u32, h: u32, seed: u8) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, seed]));
    let mut out = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut out, image::ImageFormat::Png)
        .unwrap();
    out.into_inner()
}

fn node() -> Node {
    let mut n = Node::new().with_args(&["--story-lifetime-secs", LIFETIME_SECS]);
    n.start();
    n
}

fn stories(n: &Node) -> Vec<Value> {
    n.json(&["status", "list"])
}

/// The files in a node's media folder named by a root (`<64 hex>[.ext]`).
fn media_files(n: &Node) -> Vec<PathBuf> {
    let Ok(dir) = std::fs::read_dir(n.dir.join("media")) else {
        return Vec::new();
    };
    dir.flatten()
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.find('.').unwrap_or(name.len()) == 64
        })
        .map(|e| e.path())
        .collect()
}

/// The story's photo as `kith save` writes it out of `n`'s sealed media folder.
fn saved(n: &Node, id: &str, tmp: &tempfile::TempDir, name: &str) -> Vec<u8> {
    let to = tmp.path().join(name);
    n.json(&["save", id, "--to", to.to_str().unwrap()]);
    std::fs::read(&to).unwrap()
}

fn post(a: &Node, photo: &Path, caption: &str) -> String {
    let v = a.json(&[
        "status",
        "post",
        "--photo",
        photo.to_str().unwrap(),
        "--text",
        caption,
    ]);
    v[0]["id"].as_str().unwrap().to_string()
}

/// Waits until `n` shows story `id` with its photo ready; returns the story.
fn wait_ready(n: &Node, id: &str) -> Value {
    wait_for(T, "the story's photo ready", || {
        stories(n)
            .into_iter()
            .find(|s| s["id"] == id && s["photo"]["state"] == "ready")
    })
}

#[test]
fn a_photo_story_reaches_its_audience_only_and_goes_with_its_files() {
    let (mut a, mut b) = (node(), node());
    a.add(&b, "Bob");
    b.add(&a, "Alice");
    let carol = node();
    a.add(&carol, "Carol");
    carol.add(&a, "Alice");
    // Alice added Dave, but Dave never added Alice: a stranger's story is not kept.
    let dave = node();
    a.add(&dave, "Dave");
    a.json(&["status", "privacy", "except", "Carol"]);

    let tmp = tempfile::tempdir().unwrap();
    let lake = png(320, 200, 1);
    let lake_path = tmp.path().join("lake.png");
    std::fs::write(&lake_path, &lake).unwrap();

    // Not a picture: refused, and nothing is left behind.
    let doc = tmp.path().join("notes.txt");
    std::fs::write(&doc, b"just words, not a photo").unwrap();
    let out = a.cli(&["status", "post", "--photo", doc.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(media_files(&a).is_empty(), "{:?}", media_files(&a));
    // Over 32 MiB (a sparse file): refused before it is copied.
    let big = tmp.path().join("big.png");
    std::fs::File::create(&big)
        .unwrap()
        .set_len((32 << 20) + 1)
        .unwrap();
    let out = a.cli(&["status", "post", "--photo", big.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(media_files(&a).is_empty(), "{:?}", media_files(&a));

    let id = post(&a, &lake_path, "at the lake");
    let mine = stories(&a);
    assert_eq!(mine[0]["audience"], 2, "Bob and Dave: {mine:?}");
    assert_eq!(mine[0]["photo"]["kind"], "photo", "{mine:?}");

    // Bob gets the photo with identical bytes, and a thumbnail.
    let s = wait_ready(&b, &id);
    assert_eq!(s["from"], "Alice", "{s}");
    assert_eq!(s["text"], "at the lake", "{s}");
    assert_eq!(
        s["photo"]["dimensions"],
        serde_json::json!([320, 200]),
        "{s}"
    );
    // The photo lies sealed in Bob's media folder; `kith save` writes it out.
    assert_eq!(
        saved(&b, &id, &tmp, "lake-bob.png"),
        lake,
        "identical bytes"
    );
    assert!(s["photo"]["thumbnail"].is_string(), "{s}");
    let viewed = b.json(&["status", "view", "Alice"]);
    assert_eq!(viewed[0]["photo"]["state"], "ready", "{viewed:?}");
    let plain = String::from_utf8(b.cli(&["status", "list"]).stdout).unwrap();
    assert!(
        plain.contains("photo lake.png") && plain.contains("ready"),
        "{plain}"
    );

    // Carol (left out) and Dave (a stranger to Alice's story) get nothing: no story, no
    // media row, no file. A text after the story has arrived by then.
    for (n, name) in [(&carol, "Carol"), (&dave, "Dave")] {
        let text = format!("hi {name}");
        a.send(name, &text);
        wait_for(T, "the later text", || {
            n.json(&["contacts", "list"])
                .iter()
                .filter_map(|c| c["name"].as_str().map(str::to_owned))
                .any(|who| n.history(&who).iter().any(|m| m["text"] == text.as_str()))
                .then_some(())
        });
        assert!(stories(n).is_empty(), "{name}: {:?}", stories(n));
        assert!(n.json(&["media"]).is_empty(), "{name}");
        assert!(media_files(n).is_empty(), "{name}: {:?}", media_files(n));
    }

    // A second one, taken back by Alice: its files go at Bob and at Alice; the first stays.
    let boat = png(64, 48, 2);
    let boat_path = tmp.path().join("boat.png");
    std::fs::write(&boat_path, &boat).unwrap();
    let id2 = post(&a, &boat_path, "");
    wait_ready(&b, &id2);
    assert_eq!(saved(&b, &id2, &tmp, "boat-bob.png"), boat);
    let (alice_before, bob_before) = (media_files(&a), media_files(&b));
    a.json(&["status", "delete", &id2]);
    let alice_after = media_files(&a);
    assert!(
        alice_after.len() < alice_before.len(),
        "Alice's copy is gone: {alice_before:?} then {alice_after:?}"
    );
    wait_for(T, "the taken-back photo gone at Bob", || {
        (media_files(&b).len() < bob_before.len()
            && !stories(&b).iter().any(|s| s["id"] == id2.as_str()))
        .then_some(())
    });
    assert_eq!(
        saved(&b, &id, &tmp, "lake-again.png"),
        lake,
        "the first story's photo stays"
    );

    // The first one's time runs out: story, media rows and files gone on both nodes.
    let alice_files = media_files(&a);
    assert!(!alice_files.is_empty());
    let lifetime = Duration::from_secs(LIFETIME_SECS.parse().unwrap());
    wait_for(lifetime + T, "the story expired on both nodes", || {
        (stories(&a).is_empty()
            && stories(&b).is_empty()
            && media_files(&a).is_empty()
            && media_files(&b).is_empty())
        .then_some(())
    });
    assert!(a.json(&["media"]).is_empty(), "{:?}", a.json(&["media"]));
    assert!(b.json(&["media"]).is_empty(), "{:?}", b.json(&["media"]));
    a.stop();
    b.stop();
}
