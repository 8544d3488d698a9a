//! Group chats between three separate processes on loopback, driven through the CLI.
//!
//! A has B and C as contacts; B and C each have only A. So B and C are group members who are
//! not each other's contacts: they learn each other's devices from the group's ops, and
//! their messages and keys must still reach each other.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

/// Deadline for one step (a condition polled until it holds).
const T: Duration = Duration::from_secs(60);

/// A group's history as `n` sees it (JSON lines).
fn history(n: &Node, group: &str) -> Vec<Value> {
    n.json(&["history", "--group", group, "--limit", "1000"])
}

/// The messages (not events) of a group's history: (id, text).
fn messages(n: &Node, group: &str) -> Vec<(String, String)> {
    history(n, group)
        .into_iter()
        .filter(|i| i["kind"] == "message")
        .map(|i| {
            (
                i["id"].as_str().unwrap().to_string(),
                i["text"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The texts of a group's events.
fn events(n: &Node, group: &str) -> Vec<String> {
    history(n, group)
        .into_iter()
        .filter(|i| i["kind"] == "event")
        .map(|i| i["text"].as_str().unwrap().to_string())
        .collect()
}

/// Plain-text output of a command (asserting it succeeded).
fn text(n: &Node, args: &[&str]) -> String {
    let out = n.cli(args);
    assert!(
        out.status.success(),
        "kith {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// How `n` lists the group with this id, if at all.
fn listed(n: &Node, id: &str) -> Option<Value> {
    n.json(&["groups"]).into_iter().find(|g| g["id"] == id)
}

fn wait_event(n: &Node, group: &str, want: &str) {
    wait_for(T, &format!("event {want:?}"), || {
        events(n, group).iter().any(|e| e == want).then_some(())
    });
}

#[test]
fn three_members_chat_change_and_leave() {
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

    // B watches in plain text from the start: group events print readably.
    let mut watch = std::process::Command::new(KITH)
        .arg("--data-dir")
        .arg(&b.dir)
        .arg("watch")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let watched = lines_of(watch.stdout.take().unwrap());
    // It subscribes asynchronously: a 1:1 message until one shows, then nothing is missed.
    wait_for(T, "B's watch subscribed", || {
        a.send("Bob", "probe");
        watched
            .recv_timeout(Duration::from_millis(500))
            .ok()
            .filter(|l| l == "Ada: probe")
    });

    // A creates the group; everyone sees it, with A as the only admin.
    let g = &a.json(&["group", "create", "Friends", "--members", "Bob,Carol"])[0];
    let id = g["id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 32);
    assert_eq!(g["members"].as_array().unwrap().len(), 3);
    for (n, who) in [(&a, "A"), (&b, "B"), (&c, "C")] {
        let l = wait_for(T, &format!("{who} lists the group"), || {
            listed(n, &id).filter(|g| g["members"] == 3)
        });
        assert_eq!(l["name"], "Friends");
        assert_eq!(l["active"], true);
        assert_eq!(l["admin"], who == "A", "{who}: {l}");
        let info = &n.json(&["group", "info", "Friends"])[0];
        let admins: Vec<&Value> = info["members"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["admin"] == true)
            .collect();
        assert_eq!(admins.len(), 1, "{who}: {info}");
        let a_name = if who == "A" { "me" } else { "Ada" };
        assert_eq!(admins[0]["name"], a_name, "{who}: {info}");
    }
    // B does not have C as a contact: C shows under a provisional name.
    let c_on_b = b.json(&["group", "info", "Friends"])[0]["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap().to_string())
        .find(|n| n != "me" && n != "Ada")
        .unwrap();
    assert!(c_on_b.starts_with('~'), "{c_on_b}");
    // The plain listing shows the id prefix, the name and "admin" on A.
    let list = text(&a, &["groups"]);
    assert!(list.contains(&id[..8]) && list.contains("Friends") && list.contains("admin"));
    let info = text(&b, &["group", "info", &id[..8]]);
    assert!(info.contains("* Ada"), "{info}");

    // Each member sends, without waiting for the others: every message reaches everyone
    // once, in the same order everywhere.
    let m1 = a.json(&["send", "--group", &id[..6], "one from Ada"])[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    b.json(&["send", "--group", "Friends", "two from Bob"]);
    c.json(&["send", "--group", "Friends", "three from Carol"]);
    let mut seen = Vec::new();
    for (n, who) in [(&a, "A"), (&b, "B"), (&c, "C")] {
        let ms = wait_for(T, &format!("{who} has the three messages"), || {
            let ms = messages(n, "Friends");
            (ms.len() >= 3).then_some(ms)
        });
        assert_eq!(ms.len(), 3, "{who}: {ms:?}");
        let mut texts: Vec<&str> = ms.iter().map(|(_, t)| t.as_str()).collect();
        texts.sort();
        assert_eq!(
            texts,
            ["one from Ada", "three from Carol", "two from Bob"],
            "{who}"
        );
        seen.push(ms);
    }
    assert_eq!(seen[0], seen[1], "A and B order the messages alike");
    assert_eq!(seen[0], seen[2], "A and C order the messages alike");

    // A's message reaches both members, then both read it.
    wait_for(T, "A's message delivered to 2/2", || {
        text(&a, &["history", "--group", "Friends"])
            .lines()
            .any(|l| l.contains("one from Ada") && l.contains("delivered to 2/2"))
            .then_some(())
    });
    assert_eq!(b.json(&["group", "read", "Friends"])[0]["marked"], 2);
    assert_eq!(c.json(&["group", "read", "Friends"])[0]["marked"], 2);
    let line = wait_for(T, "A's message read by 2/2", || {
        text(&a, &["history", "--group", "Friends"])
            .lines()
            .find(|l| l.contains("one from Ada") && l.contains("read by 2/2"))
            .map(str::to_string)
    });
    assert!(line.contains("me: one from Ada"), "{line}");
    // Each line once.
    let plain = text(&a, &["history", "--group", "Friends"]);
    for t in ["one from Ada", "two from Bob", "three from Carol"] {
        assert_eq!(plain.matches(t).count(), 1, "{t}: {plain}");
    }
    let r = &a.json(&["receipts", &m1])[0];
    let members = r["members"].as_array().unwrap();
    assert_eq!(members.len(), 2, "{r}");
    for m in members {
        assert!(m["delivered_at"].is_u64() && m["read_at"].is_u64(), "{r}");
    }
    let names: Vec<&str> = members
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"Bob") && names.contains(&"Carol"), "{r}");
    let plain = text(&a, &["receipts", &m1]);
    assert_eq!(plain.matches("  read ").count(), 2, "{plain}");

    // B's watch printed the group's changes and messages readably.
    let mut lines = Vec::new();
    wait_for(T, "B's watch shows A's message", || {
        let l = watched.recv_timeout(Duration::from_millis(200)).ok()?;
        lines.push(l.clone());
        (l == "[Friends] Ada: one from Ada").then_some(())
    });
    assert!(
        lines.contains(&"[Friends] Ada created the group \"Friends\"".to_string()),
        "{lines:?}"
    );

    // A non-admin cannot change the group: a clean user error.
    for args in [
        &["group", "add", "Friends", "Ada"][..],
        &["group", "rename", "Friends", "Mine"][..],
        &["group", "remove", "Friends", "Ada"][..],
    ] {
        let out = b.cli(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("only admins"), "{args:?}: {err}");
    }

    // A renames: everyone sees the new name and the change in the history.
    let out = text(&a, &["group", "rename", "Friends", "Best friends"]);
    assert!(out.contains("Best friends"), "{out}");
    for (n, who, by) in [(&a, "A", "You"), (&b, "B", "Ada"), (&c, "C", "Ada")] {
        wait_for(T, &format!("{who} sees the new name"), || {
            listed(n, &id).filter(|g| g["name"] == "Best friends")
        });
        wait_event(
            n,
            &id[..8],
            &format!("{by} renamed the group to \"Best friends\""),
        );
    }

    // A removes C: A and B see it, C is no longer active.
    a.json(&["group", "remove", "Best friends", "Carol"]);
    wait_event(&a, "Best friends", "You removed Carol");
    wait_event(&b, "Best friends", &format!("Ada removed {c_on_b}"));
    wait_for(T, "C sees it was removed", || {
        let v = &c.json(&["group", "info", &id[..8]])[0];
        (v["active"] == false).then_some(())
    });
    wait_event(&c, &id[..8], "Ada removed you");
    // C can no longer send.
    let out = c.cli(&["send", "--group", &id[..8], "still here?"]);
    assert_eq!(out.status.code(), Some(1));
    // What A sends now reaches B, never C (C still gets the frame, and cannot open it).
    let undecryptable_before = c.json(&["group", "info", &id[..8]])[0]["undecryptable"]
        .as_u64()
        .unwrap();
    a.json(&["send", "--group", "Best friends", "after-removal"]);
    wait_for(T, "B has the message sent after the removal", || {
        messages(&b, "Best friends")
            .iter()
            .any(|(_, t)| t == "after-removal")
            .then_some(())
    });
    wait_for(T, "C holds a frame it cannot open", || {
        let v = &c.json(&["group", "info", &id[..8]])[0];
        (v["undecryptable"].as_u64().unwrap() > undecryptable_before).then_some(())
    });
    let on_c = messages(&c, &id[..8]);
    assert!(
        on_c.iter().all(|(_, t)| t != "after-removal"),
        "C reads a message sent after it was removed: {on_c:?}"
    );
    assert_eq!(on_c.len(), 3, "{on_c:?}");

    // B leaves: A sees it; B's list shows the group as left until B deletes it.
    let out = text(&b, &["group", "leave", "Best friends"]);
    assert!(out.contains("You left"), "{out}");
    wait_event(&a, "Best friends", "Bob left");
    wait_for(T, "A's group has only A", || {
        listed(&a, &id).filter(|g| g["members"] == 1)
    });
    let l = listed(&b, &id).unwrap();
    assert_eq!(l["active"], false);
    assert!(text(&b, &["groups"]).contains("(left)"));
    // Deleting needs leaving first (A is still in it); B, having left, can.
    assert_eq!(
        a.cli(&["group", "delete", "Best friends"]).status.code(),
        Some(1)
    );
    b.json(&["group", "delete", &id[..8]]);
    assert!(listed(&b, &id).is_none());

    let _ = watch.kill();
    let _ = watch.wait();
}

#[test]
fn group_commands_refuse_bad_input_cleanly() {
    let (a, _b) = pair();
    // Unknown members, groups and ids are user errors (exit 1), with a message.
    for args in [
        &["group", "create", "G", "--members", "Nobody"][..],
        &["group", "info", "nope"][..],
        &["send", "--group", "nope", "hi"][..],
        &["history", "--group", "nope"][..],
        &["receipts", "not-an-id"][..],
        &["group", "create", "", "--members", "Bob"][..],
    ] {
        let out = a.cli(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(!out.stderr.is_empty(), "{args:?}");
    }
    // `send` with --group takes only the text; without it, a contact and a text.
    assert_eq!(
        a.cli(&["send", "--group", "G", "Bob", "hi"]).status.code(),
        Some(1)
    );
    assert_eq!(a.cli(&["send", "Bob"]).status.code(), Some(1));
    // 1:1 sending still works as before.
    a.send("Bob", "plain message");
}

#[test]
fn a_member_added_later_reads_only_what_comes_after() {
    // A has B and D as contacts; B and D know only A.
    let mut a = Node::new();
    let mut b = Node::new();
    let mut d = Node::new();
    a.start();
    b.start();
    d.start();
    a.add(&b, "Bob");
    a.add(&d, "Dave");
    b.add(&a, "Ada");
    d.add(&a, "Ada");
    let g = &a.json(&["group", "create", "Early", "--members", "Bob"])[0];
    let id = g["id"].as_str().unwrap().to_string();
    wait_for(T, "B lists the group", || listed(&b, &id));
    b.json(&["send", "--group", "Early", "before Dave"]);
    wait_for(T, "A has B's first message", || {
        messages(&a, "Early")
            .iter()
            .any(|(_, t)| t == "before Dave")
            .then_some(())
    });

    a.json(&["group", "add", "Early", "Dave"]);
    wait_event(&a, "Early", "You added Dave");
    for (n, who) in [(&b, "B"), (&d, "D")] {
        wait_for(T, &format!("{who} sees three members"), || {
            listed(n, &id).filter(|g| g["members"] == 3)
        });
    }
    // B did not know D when it sent; it learns D's device from A, and must not hand D the
    // session that opens what B wrote before D joined.
    b.json(&["send", "--group", "Early", "after Dave"]);
    a.json(&["send", "--group", "Early", "Ada after Dave"]);
    let on_d = wait_for(T, "D has both messages sent after it joined", || {
        let ms = messages(&d, "Early");
        let texts: Vec<&str> = ms.iter().map(|(_, t)| t.as_str()).collect();
        (texts.contains(&"after Dave") && texts.contains(&"Ada after Dave")).then_some(ms)
    });
    assert!(
        on_d.iter().all(|(_, t)| t != "before Dave"),
        "D reads a message sent before it joined: {on_d:?}"
    );
    assert_eq!(on_d.len(), 2, "{on_d:?}");
    // The others see D arrive.
    let d_on_b = b.json(&["group", "info", "Early"])[0]["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap().to_string())
        .find(|n| n != "me" && n != "Ada")
        .unwrap();
    wait_event(&b, "Early", &format!("Ada added {d_on_b}"));
    wait_event(&d, "Early", "Ada added you");
}
