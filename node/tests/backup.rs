//! Issue 17, encrypted backup and restore between real `kith` processes on loopback:
//! a backup of a running node A, restored into a new data directory as A', continues the
//! conversation with B in both directions, even when messages flowed after the backup; a
//! damaged or cut backup and a wrong passphrase are refused and leave the target empty; the
//! backup file holds no message text, no profile text and no key bytes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;

const T: Duration = Duration::from_secs(60);

fn texts(n: &Node, with: &str) -> Vec<String> {
    n.history(with)
        .iter()
        .filter_map(|m| m["text"].as_str().map(str::to_string))
        .collect()
}

fn wait_text(n: &Node, with: &str, text: &str) {
    wait_for(T, &format!("{text:?} at {}", n.dir.display()), || {
        texts(n, with).iter().any(|t| t == text).then_some(())
    });
}

fn pass_file(dir: &Path, pass: &str) -> String {
    let p = dir.join(format!("pass-{}", pass.len()));
    std::fs::write(&p, format!("{pass}\n")).unwrap();
    p.to_str().unwrap().to_string()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn is_empty(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .map(|mut d| d.next().is_none())
        .unwrap_or(true)
}

#[test]
fn a_restored_node_continues_the_conversation_both_ways() {
    let (mut a, b) = pair();
    let work = tempfile::tempdir().unwrap();
    let pf = pass_file(work.path(), "correct horse battery staple");
    a.json(&["profile", "set", "--about", "PROFILE-CANARY-about-text"]);
    a.send("Bob", "MSG-CANARY-before-backup");
    wait_text(&b, "Alice", "MSG-CANARY-before-backup");
    b.send("Alice", "hello from Bob before the backup");
    wait_text(&a, "Bob", "hello from Bob before the backup");

    let file = work.path().join("a.kbak");
    let done = a.json(&[
        "backup",
        "create",
        "--to",
        file.to_str().unwrap(),
        "--passphrase-file",
        &pf,
    ]);
    assert!(done[0]["rows"].as_u64().unwrap() > 0, "{done:?}");

    // Nothing secret in clear in the backup file.
    let raw = std::fs::read(&file).unwrap();
    for canary in [
        "MSG-CANARY-before-backup",
        "PROFILE-CANARY-about-text",
        "hello from Bob",
    ] {
        assert!(
            !contains(&raw, canary.as_bytes()),
            "{canary} is in the backup"
        );
    }
    let keys = std::fs::read(a.dir.join("keys")).unwrap();
    for w in keys.chunks(16).filter(|c| c.len() == 16) {
        assert!(!contains(&raw, w), "key file bytes are in the backup");
    }

    // The conversation goes on after the backup: the ratchets move past what it holds.
    a.send("Bob", "after the backup, from Alice");
    wait_text(&b, "Alice", "after the backup, from Alice");
    b.send("Alice", "after the backup, from Bob");
    wait_text(&a, "Bob", "after the backup, from Bob");
    a.stop();

    // A' on a fresh data directory (at A's address).
    let mut a2 = Node::new();
    a2.port = a.port;
    let out = a2.cli(&[
        "--json",
        "backup",
        "restore",
        file.to_str().unwrap(),
        "--passphrase-file",
        &pf,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read(a2.dir.join("keys")).unwrap(),
        keys,
        "same identity"
    );
    a2.start();
    let h = texts(&a2, "Bob");
    assert!(h.iter().any(|t| t == "MSG-CANARY-before-backup"), "{h:?}");
    assert!(
        h.iter().any(|t| t == "hello from Bob before the backup"),
        "{h:?}"
    );

    // Both ways, more than once.
    a2.send("Bob", "from the restored Alice");
    wait_text(&b, "Alice", "from the restored Alice");
    b.send("Alice", "Bob to the restored Alice");
    wait_text(&a2, "Bob", "Bob to the restored Alice");
    a2.send("Bob", "second from the restored Alice");
    wait_text(&b, "Alice", "second from the restored Alice");
    b.send("Alice", "second from Bob");
    wait_text(&a2, "Bob", "second from Bob");
}

#[test]
fn a_damaged_backup_or_a_wrong_passphrase_is_refused_and_changes_nothing() {
    let (a, b) = pair();
    a.send("Bob", "something to back up");
    wait_text(&b, "Alice", "something to back up");
    let work = tempfile::tempdir().unwrap();
    let pf = pass_file(work.path(), "right passphrase");
    let wrong = pass_file(work.path(), "a wrong passphrase!");
    let file = work.path().join("a.kbak");
    a.json(&[
        "backup",
        "create",
        "--to",
        file.to_str().unwrap(),
        "--passphrase-file",
        &pf,
    ]);
    let good = std::fs::read(&file).unwrap();

    let target = tempfile::tempdir().unwrap();
    let restore = |f: &Path, pass: &str| {
        run(
            target.path(),
            &[
                "backup",
                "restore",
                f.to_str().unwrap(),
                "--passphrase-file",
                pass,
            ],
        )
    };

    let out = restore(&file, &wrong);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("wrong passphrase"),
        "{out:?}"
    );
    assert!(is_empty(target.path()));

    let mut flipped = good.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x01;
    let cut = good[..good.len() - 1000.min(good.len() / 2)].to_vec();
    for (what, bad) in [("one byte flipped", flipped), ("cut short", cut)] {
        let f = work.path().join("bad.kbak");
        std::fs::write(&f, &bad).unwrap();
        let out = restore(&f, &pf);
        assert_eq!(out.status.code(), Some(1), "{what}: {out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("damaged"),
            "{what}: {out:?}"
        );
        assert!(is_empty(target.path()), "{what}: the target was written");
    }

    // A non-empty target is refused too.
    let out = run(
        &a.dir,
        &[
            "backup",
            "restore",
            file.to_str().unwrap(),
            "--passphrase-file",
            &pf,
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not empty"),
        "{out:?}"
    );

    // And the good file restores.
    let out = restore(&file, &pf);
    assert!(out.status.success(), "{out:?}");
    assert!(target.path().join("kith.redb").exists());
}

#[test]
fn a_scheduled_backup_is_written_and_opens_with_the_schedules_passphrase() {
    let mut a = Node::new();
    a.start();
    let work = tempfile::tempdir().unwrap();
    let pf = pass_file(work.path(), "scheduled passphrase");
    let dir = work.path().join("backups");
    let v = a.json(&[
        "backup",
        "schedule",
        "--dir",
        dir.to_str().unwrap(),
        "--every",
        "1m",
        "--keep",
        "2",
        "--passphrase-file",
        &pf,
    ]);
    assert_eq!(v[0]["on"], true, "{v:?}");
    // The first one is due at once.
    let first = wait_for(T, "a scheduled backup", || {
        std::fs::read_dir(&dir)
            .ok()?
            .flatten()
            .find(|e| e.file_name().to_string_lossy().ends_with(".kbak"))
            .map(|e| e.path())
    });
    let v = a.json(&["backup", "status"]);
    assert_eq!(v[0]["keep"], 2, "{v:?}");
    // It opens with the passphrase given to the schedule.
    a.stop();
    let target = tempfile::tempdir().unwrap();
    let out = run(
        target.path(),
        &[
            "backup",
            "restore",
            first.to_str().unwrap(),
            "--passphrase-file",
            &pf,
        ],
    );
    assert!(out.status.success(), "{out:?}");
}

fn group_texts(n: &Node, group: &str) -> Vec<String> {
    n.json(&["history", "--group", group])
        .iter()
        .filter_map(|m| m["text"].as_str().map(str::to_string))
        .collect()
}

/// Sends a group text, again while the restored node is still catching up with the group.
fn send_group_when_caught_up(n: &Node, group: &str, text: &str) {
    wait_for(T, "the group send accepted", || {
        let out = n.cli(&["--json", "send", "--group", group, text]);
        if out.status.success() {
            return Some(());
        }
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("catching up"), "refused otherwise: {err}");
        std::thread::sleep(Duration::from_millis(300));
        None
    });
}

/// The first start after a restore renews the device's group sending sessions (the old
/// device may have used the backed-up ones after the backup): the restored store holds no
/// sending session once started, the mark is gone, and the next group message, on a new
/// session, reaches the other member. Without the renewal the backed-up session stays.
///
/// The old device also sent group messages after the backup, which took the next frame
/// numbers: the restored node's next message must still reach Bob, who would drop it as one
/// he holds if the numbering came back as of the backup.
#[test]
fn a_restored_node_renews_its_group_sending_sessions_and_numbers_past_the_old_device() {
    let (mut a, b) = pair();
    let work = tempfile::tempdir().unwrap();
    let pf = pass_file(work.path(), "correct horse battery staple");
    a.json(&["group", "create", "Club", "--members", "Bob"]);
    wait_for(T, "Bob in the group", || {
        b.json(&["groups"])
            .iter()
            .any(|x| x["name"] == "Club")
            .then_some(())
    });
    a.json(&["send", "--group", "Club", "before the backup"]);
    wait_for(T, "the group message at Bob", || {
        group_texts(&b, "Club")
            .iter()
            .any(|t| t == "before the backup")
            .then_some(())
    });
    let file = work.path().join("a.kbak");
    a.json(&[
        "backup",
        "create",
        "--to",
        file.to_str().unwrap(),
        "--passphrase-file",
        &pf,
    ]);
    for i in 1..=3 {
        a.json(&["send", "--group", "Club", &format!("after the backup {i}")]);
    }
    wait_for(T, "the later group messages at Bob", || {
        (group_texts(&b, "Club")
            .iter()
            .filter(|t| t.starts_with("after the backup"))
            .count()
            == 3)
            .then_some(())
    });
    a.stop();
    let sessions = |dir: &Path| {
        let store = kith_engine::open_store(dir, None).unwrap();
        store
            .read(|r| {
                Ok(r.groups()?
                    .iter()
                    .filter(|(_, g)| g.out_session.is_some())
                    .count())
            })
            .unwrap()
    };
    assert_eq!(sessions(&a.dir), 1, "A sends with a session");

    let mut a2 = Node::new();
    a2.port = a.port;
    let out = a2.cli(&[
        "--json",
        "backup",
        "restore",
        file.to_str().unwrap(),
        "--passphrase-file",
        &pf,
    ]);
    assert!(out.status.success());
    assert!(a2.dir.join(kith_backup::RESTORED_MARK).exists());
    a2.start();
    a2.stop();
    assert_eq!(sessions(&a2.dir), 0, "the backed-up session is dropped");
    assert!(!a2.dir.join(kith_backup::RESTORED_MARK).exists());
    a2.start();
    send_group_when_caught_up(&a2, "Club", "from the restored Alice");
    wait_for(T, "the new session's message at Bob", || {
        group_texts(&b, "Club")
            .iter()
            .any(|t| t == "from the restored Alice")
            .then_some(())
    });
}
