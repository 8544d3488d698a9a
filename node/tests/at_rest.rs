//! Issue 17, "at rest", between real `kith` processes on loopback: after an exchange of
//! messages, a profile (with a photo), contact names, a status, a group message and a file,
//! and a clean stop, no file of either data directory (store, key file, logs, media files,
//! photos) holds any of the texts, the file's or the photo's contents, or the identity
//! secret; a passphrase on the key file is asked for (a wrong one refuses to
//! start and changes nothing, the right one opens the same history); a store and key file
//! of the clear format are sealed in place on the first start, and so is a contact's photo an
//! older version kept in clear.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;

const T: Duration = Duration::from_secs(60);

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Every file under `dir`, recursively.
fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            files(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// Panics when any file under `dir` holds one of `needles`.
fn assert_absent(dir: &Path, needles: &[(&str, Vec<u8>)]) {
    let mut all = Vec::new();
    files(dir, &mut all);
    assert!(all.iter().any(|p| p.ends_with("kith.redb")), "{all:?}");
    for p in &all {
        let raw = std::fs::read(p).unwrap_or_default();
        for (what, n) in needles {
            assert!(!contains(&raw, n), "{what} is in {} in clear", p.display());
        }
    }
}

/// The identity secret of a stopped node (through its key file).
fn identity_secret(dir: &Path, pass: Option<&[u8]>) -> Vec<u8> {
    let (k, _) = kith_engine::KeyFile::load_or_create(&dir.join("keys"), pass).unwrap();
    k.identity.secret().to_vec()
}

fn texts(n: &Node, args: &[&str]) -> Vec<String> {
    n.json(args)
        .iter()
        .filter_map(|m| m["text"].as_str().map(str::to_string))
        .collect()
}

fn wait_text(n: &Node, args: &[&str], text: &str) {
    wait_for(T, &format!("{text:?} at {}", n.dir.display()), || {
        texts(n, args).iter().any(|t| t == text).then_some(())
    });
}

/// A 2×2 PNG (header-checked only) carrying `text` in a tEXt chunk.
fn png_with(text: &[u8]) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        out.extend_from_slice(&[0, 0, 0, 0]);
    }
    let mut v = vec![0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&2u32.to_be_bytes());
    ihdr.extend_from_slice(&2u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(&mut v, b"IHDR", &ihdr);
    chunk(&mut v, b"tEXt", text);
    let idat = [
        0x78, 0x9c, 0x63, 0x60, 0x00, 0x02, 0x00, 0x00, 0x05, 0x00, 0x01,
    ];
    chunk(&mut v, b"IDAT", &idat);
    chunk(&mut v, b"IEND", &[]);
    v
}

const FILE_CANARY: &str = "ZqFileCanaryInsideTheFile";
const AVATAR_CANARY: &str = "ZqAvatarCanaryInsideThePhoto";

const CANARIES: [&str; 9] = [
    FILE_CANARY,
    AVATAR_CANARY,
    "ZqMsgCanaryAlice",
    "ZqMsgCanaryBob",
    "ZqProfileCanary",
    "ZqContactCanaryBob",
    "ZqContactCanaryAlice",
    "ZqStoryCanary",
    "ZqGroupCanary",
];

#[test]
fn no_text_and_no_identity_secret_lie_in_clear_in_either_data_dir() {
    let mut a = Node::new();
    let mut b = Node::new();
    a.start();
    b.start();
    a.add(&b, "ZqContactCanaryBob");
    b.add(&a, "ZqContactCanaryAlice");
    // A profile photo with a canary inside; it is kept outside the user's data dirs.
    let outside = tempfile::tempdir().unwrap();
    let photo = outside.path().join("me.png");
    let photo_bytes = png_with(AVATAR_CANARY.as_bytes());
    std::fs::write(&photo, &photo_bytes).unwrap();
    a.json(&[
        "profile",
        "set",
        "--name",
        "ZqProfileCanary",
        "--avatar",
        photo.to_str().unwrap(),
    ]);
    // A file with a canary inside, sent from A to B (small: B downloads it by itself).
    let doc = outside.path().join("notes.txt");
    let mut doc_bytes = Vec::new();
    for i in 0..20_000u32 {
        doc_bytes.extend_from_slice(format!("{FILE_CANARY} line {i}\n").as_bytes());
    }
    std::fs::write(&doc, &doc_bytes).unwrap();
    let file_id = a.json(&[
        "send",
        "ZqContactCanaryBob",
        "--file",
        doc.to_str().unwrap(),
    ])[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    wait_for(T, "the file at Bob", || {
        b.json(&["history", "ZqContactCanaryAlice"])
            .into_iter()
            .find(|m| m["id"] == file_id.as_str())
            .filter(|m| m["attachment"]["state"] == "ready")
            .map(|_| ())
    });
    assert_eq!(b.saved(&file_id), doc_bytes, "B saves the file in clear");
    wait_for(T, "A's photo at Bob", || {
        b.json(&["contacts", "list"])
            .into_iter()
            .find(|c| c["avatar"].is_string())
            .map(|_| ())
    });
    let got = outside.path().join("got.png");
    b.json(&[
        "photo",
        "ZqContactCanaryAlice",
        "--to",
        got.to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read(&got).unwrap(), photo_bytes);
    a.send("ZqContactCanaryBob", "ZqMsgCanaryAlice one");
    wait_text(
        &b,
        &["history", "ZqContactCanaryAlice"],
        "ZqMsgCanaryAlice one",
    );
    b.send("ZqContactCanaryAlice", "ZqMsgCanaryBob two");
    wait_text(&a, &["history", "ZqContactCanaryBob"], "ZqMsgCanaryBob two");
    a.json(&["status", "post", "--text", "ZqStoryCanary at the lake"]);
    wait_for(T, "the status at Bob", || {
        b.json(&["status", "list"])
            .iter()
            .any(|s| s["text"] == "ZqStoryCanary at the lake")
            .then_some(())
    });
    a.json(&["group", "create", "Club", "--members", "ZqContactCanaryBob"]);
    wait_for(T, "Bob in the group", || {
        b.json(&["groups"])
            .iter()
            .any(|x| x["name"] == "Club")
            .then_some(())
    });
    a.json(&["send", "--group", "Club", "ZqGroupCanary hello all"]);
    wait_text(
        &b,
        &["history", "--group", "Club"],
        "ZqGroupCanary hello all",
    );
    // Search works (the index is in memory, built from the sealed store).
    let hits = a.json(&["search", "ZqMsgCanaryBob"]);
    assert!(!hits.is_empty(), "search finds the message: {hits:?}");
    a.stop();
    b.stop();

    for n in [&a, &b] {
        let mut needles: Vec<(&str, Vec<u8>)> = CANARIES
            .iter()
            .map(|c| (*c, c.as_bytes().to_vec()))
            .collect();
        let secret = identity_secret(&n.dir, None);
        needles.push(("the identity secret", secret.clone()));
        needles.push(("half the identity secret", secret[..16].to_vec()));
        assert_absent(&n.dir, &needles);
    }

    // A contact's photo an older version kept in clear is sealed at the next start, and
    // still opens.
    let kept = std::fs::read_dir(b.dir.join("avatars"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.is_file() && !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .expect("B keeps A's photo");
    std::fs::write(&kept, &photo_bytes).unwrap();
    b.start();
    let again = outside.path().join("again.png");
    b.json(&[
        "photo",
        "ZqContactCanaryAlice",
        "--to",
        again.to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read(&again).unwrap(), photo_bytes);
    b.stop();
    assert_absent(
        &b.dir,
        &[(AVATAR_CANARY, AVATAR_CANARY.as_bytes().to_vec())],
    );

    // Everything is still there after a restart.
    a.start();
    let h = texts(&a, &["history", "ZqContactCanaryBob"]);
    assert!(h.iter().any(|t| t == "ZqMsgCanaryBob two"), "{h:?}");
    let g = texts(&a, &["history", "--group", "Club"]);
    assert!(g.iter().any(|t| t == "ZqGroupCanary hello all"), "{g:?}");
    assert!(!a.json(&["search", "ZqMsgCanaryAlice"]).is_empty());
}

#[test]
fn a_passphrase_guards_the_key_file_and_a_wrong_one_changes_nothing() {
    let (mut a, b) = pair();
    a.send("Bob", "ZqPassCanary before the passphrase");
    wait_text(
        &b,
        &["history", "Alice"],
        "ZqPassCanary before the passphrase",
    );
    a.stop();
    let work = tempfile::tempdir().unwrap();
    let right = work.path().join("right");
    let wrong = work.path().join("wrong");
    std::fs::write(&right, "correct horse battery staple\n").unwrap();
    std::fs::write(&wrong, "incorrect horse\n").unwrap();
    let storage = {
        let (k, _) = kith_engine::KeyFile::load_or_create(&a.dir.join("keys"), None).unwrap();
        k.storage.bytes().to_vec()
    };
    let out = a.cli(&[
        "passphrase",
        "set",
        "--new-passphrase-file",
        right.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Now no file holds the storage key either.
    assert_absent(&a.dir, &[("the storage key", storage)]);
    let keys_before = std::fs::read(a.dir.join("keys")).unwrap();
    let store_before = std::fs::read(a.dir.join("kith.redb")).unwrap();

    // A wrong passphrase, and none (no terminal): refused, with a clear error.
    let listen = a.listen_addr();
    let dir = a.dir.clone();
    let up = |extra: &[&str]| {
        let mut args = vec!["up", "--no-mdns", "--listen", &listen];
        args.extend_from_slice(extra);
        run(&dir, &args)
    };
    let out = up(&["--passphrase-file", wrong.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("wrong passphrase"), "{err}");
    let out = up(&[]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("passphrase"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = a.cli(&[
        "passphrase",
        "remove",
        "--passphrase-file",
        wrong.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert_eq!(std::fs::read(a.dir.join("keys")).unwrap(), keys_before);
    assert_eq!(
        std::fs::read(a.dir.join("kith.redb")).unwrap(),
        store_before
    );

    // The right one: the same history, and the conversation goes on.
    let mut a = a.with_args(&["--passphrase-file", right.to_str().unwrap()]);
    a.start();
    let h = texts(&a, &["history", "Bob"]);
    assert!(
        h.iter().any(|t| t == "ZqPassCanary before the passphrase"),
        "{h:?}"
    );
    a.send("Bob", "after the passphrase");
    wait_text(&b, &["history", "Alice"], "after the passphrase");
    a.stop();

    // Change it, then remove it.
    let newer = work.path().join("newer");
    std::fs::write(&newer, "another one\n").unwrap();
    let ok = |args: &[&str]| {
        let out = a.cli(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    ok(&[
        "passphrase",
        "change",
        "--passphrase-file",
        right.to_str().unwrap(),
        "--new-passphrase-file",
        newer.to_str().unwrap(),
    ]);
    assert!(
        up(&["--passphrase-file", right.to_str().unwrap()])
            .status
            .code()
            != Some(0)
    );
    ok(&[
        "passphrase",
        "remove",
        "--passphrase-file",
        newer.to_str().unwrap(),
    ]);
    let mut a = a.with_args(&[]);
    a.start();
    let h = texts(&a, &["history", "Bob"]);
    assert!(h.iter().any(|t| t == "after the passphrase"), "{h:?}");
}

#[test]
fn a_clear_store_and_key_file_are_sealed_on_the_first_start() {
    let mut a = Node::new();
    let friend = kith_types::IdentityKey([0x42; 32]);
    // The clear format: a version 1 key file (secrets in clear) and a store without a seal.
    let identity = [0x17u8; 32];
    let mut v1 = vec![1u8];
    v1.extend_from_slice(&identity);
    v1.extend_from_slice(&[0x23u8; 32]);
    v1.extend_from_slice(&[0x31u8; 32]);
    std::fs::write(a.dir.join("keys"), &v1).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(a.dir.join("keys"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
    }
    {
        let store = kith_store::Store::open(&a.dir.join("kith.redb")).unwrap();
        store
            .write(|w| {
                w.put_contact(&kith_store::Contact {
                    identity: friend,
                    name: "ZqOldContactCanary".into(),
                    added_ms: 1,
                    added_by_user: true,
                    peer_hint: Vec::new(),
                    addr_hints: Vec::new(),
                })?;
                for i in 0..50u128 {
                    w.append_message(
                        &friend,
                        &kith_store::StoredMessage {
                            id: 1000 + i,
                            outgoing: i.is_multiple_of(2),
                            text: format!("ZqOldMsgCanary number {i}"),
                            sent_at_ms: 1_700_000_000_000 + i as u64,
                            stored_at_ms: 1_700_000_000_000 + i as u64,
                            status: kith_store::Status::Delivered,
                        },
                    )?;
                }
                Ok(())
            })
            .unwrap();
    }
    assert!(contains(
        &std::fs::read(a.dir.join("kith.redb")).unwrap(),
        b"ZqOldMsgCanary"
    ));
    a.start();
    let h = texts(&a, &["history", "ZqOldContactCanary", "--limit", "100"]);
    assert_eq!(h.len(), 50, "{h:?}");
    assert!(h.iter().any(|t| t == "ZqOldMsgCanary number 49"));
    a.stop();
    assert_absent(
        &a.dir,
        &[
            ("old message text", b"ZqOldMsgCanary".to_vec()),
            ("an old contact name", b"ZqOldContactCanary".to_vec()),
            ("the identity secret", identity.to_vec()),
        ],
    );
    assert_eq!(identity_secret(&a.dir, None), identity.to_vec());
}
