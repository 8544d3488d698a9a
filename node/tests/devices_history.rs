//! Issue 17, history at link time, between real `kith` processes on loopback: group
//! conversations with what users see of each message (reply, reactions, edits, deletes,
//! stars), files by manifest (downloadable on the new device), `kith link`'s progress until
//! the history is all here, and a walk cut by kill -9 of the approver going on after its
//! restart.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

const T: Duration = Duration::from_secs(120);

fn id_of(v: &[Value]) -> String {
    v[0]["id"].as_str().expect("id").to_string()
}

fn find<'a>(h: &'a [Value], id: &str) -> Option<&'a Value> {
    h.iter().find(|m| m["id"] == id)
}

/// What a user sees of each message, in order.
fn seen(h: &[Value]) -> Vec<Value> {
    h.iter()
        .filter(|m| m["kind"].is_null() || m["kind"] == "message")
        .map(|m| {
            serde_json::json!([
                m["id"],
                m["from"],
                m["text"],
                m["quote"],
                m["reactions"],
                m["edited"],
                m["deleted"],
                m["starred"],
                m["pinned"],
                m["attachment"]["name"],
            ])
        })
        .collect()
}

fn group(n: &Node) -> Vec<Value> {
    n.json(&["history", "--group", "Friends", "--limit", "1000"])
}

#[test]
fn group_history_with_replies_reactions_edits_and_files_reaches_the_new_device() {
    let (a, b) = pair();
    a.create_group("Friends", "Bob", 2, &[&b]);
    let m1 = id_of(&a.json(&["send", "--group", "Friends", "hello all"]));
    wait_for(T, "Bob has it", || find(&group(&b), &m1).map(|_| ()));
    let r = id_of(&b.json(&["send", "--group", "Friends", "hi Ada", "--reply-to", &m1]));
    wait_for(T, "the reply at Ada", || find(&group(&a), &r).map(|_| ()));
    b.json(&["react", &m1, "🎉"]);
    wait_for(T, "the reaction at Ada", || {
        find(&group(&a), &m1)
            .filter(|m| m["reactions"][0][1] == "🎉")
            .map(|_| ())
    });
    let m2 = id_of(&a.json(&["send", "--group", "Friends", "to be edited"]));
    a.json(&["edit", &m2, "edited"]);
    let m3 = id_of(&a.json(&["send", "--group", "Friends", "to be deleted"]));
    a.json(&["delete", &m3, "--everyone"]);
    a.json(&["star", &r]);
    // More than one page of group messages.
    for i in 0..70 {
        b.json(&["send", "--group", "Friends", &format!("from Bob {i}")]);
    }
    wait_for(T, "Bob's messages at Ada", || {
        (group(&a).len() >= 73).then_some(())
    });
    // A file in the 1:1 conversation.
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("report.bin");
    let bytes: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&src, &bytes).unwrap();
    let file = id_of(&a.json(&[
        "send",
        "Bob",
        "--file",
        src.to_str().unwrap(),
        "--caption",
        "the report",
    ]));
    a.wait_status("Bob", 1, "delivered", T);

    let mut n = Node::new();
    n.start();
    let (_, shown) = n.link_to(&a, "laptop", &[]);
    // `kith link` stayed until the history was all here, showing its progress.
    assert!(
        shown
            .iter()
            .any(|v| v["state"] == "done" && v["messages"].as_u64().unwrap_or(0) >= 74),
        "{shown:?}"
    );
    let want = seen(&group(&a));
    assert!(want.len() >= 73, "{want:?}");
    // The group's own frames may also reach the laptop (it catches up on the group), before
    // or after the history: what shows must end up the same. The star, which no frame
    // carries, and the 1:1 file below come only with the history.
    wait_for(
        T,
        "the group's history on the laptop as on the phone",
        || (seen(&group(&n)) == want).then_some(()),
    );
    let on_n = group(&n);
    let reply = find(&on_n, &r).unwrap();
    assert_eq!(reply["quote"], "hello all", "{reply}");
    assert_eq!(reply["starred"], true, "{reply}");
    assert_eq!(find(&on_n, &m1).unwrap()["reactions"][0][1], "🎉");
    assert_eq!(find(&on_n, &m2).unwrap()["edited"], true);
    assert_eq!(find(&on_n, &m3).unwrap()["deleted"], true);

    // The file shows on the new device, and downloads (from the phone, which has it).
    let att = find(&n.history("Bob"), &file).unwrap()["attachment"].clone();
    assert_eq!(att["name"], "report.bin", "{att}");
    n.json(&["download", &file]);
    wait_for(T, "the file on the laptop", || {
        find(&n.history("Bob"), &file)
            .filter(|m| m["attachment"]["state"] == "ready")
            .cloned()
    });
    let out = tmp.path().join("saved.bin");
    n.json(&["save", &file, "--to", out.to_str().unwrap()]);
    assert_eq!(std::fs::read(&out).unwrap(), bytes);
}

#[test]
fn a_history_walk_cut_by_kill_9_goes_on_after_the_restart() {
    let (mut a, b) = pair();
    // More than the pages that wait for the new device at once (4 x 64): the walk is
    // still under way when the phone is killed.
    const N: usize = 300;
    for i in 0..N {
        a.send("Bob", &format!("to Bob {i}"));
    }
    a.wait_status("Bob", N, "delivered", T);
    let mut n = Node::new();
    n.start();
    let (mut child, _lines, code) = n.start_link("laptop");
    let approved = a.json(&["devices", "approve", &code, "--yes"]);
    assert!(
        approved.iter().any(|v| v["state"] == "linked"),
        "{approved:?}"
    );
    assert!(child.wait().unwrap().success());
    // The laptop answers nothing until it restarts: the walk stops at the outbox's bound.
    a.kill9();
    n.stop();
    n.start();
    a.start();
    let want: Vec<Value> = a.history("Bob").iter().map(|m| m["id"].clone()).collect();
    assert_eq!(want.len(), N);
    wait_for(T, "the whole history on the laptop", || {
        let p = n.json(&["devices", "history"]).into_iter().next()?;
        (p["state"] == "done").then_some(())
    });
    let got: Vec<Value> = n.history("Bob").iter().map(|m| m["id"].clone()).collect();
    // Every message once, in order.
    assert_eq!(got, want);
    drop(b);
}

/// The history transfer's rate between two daemons on loopback: `KITH_HISTORY_BENCH_N`
/// messages (10,000 by default) written straight into the phone's store, then a link with
/// history, timed from the laptop's restart until the last page is in.
/// `KITH_HISTORY_BENCH_N=10000 cargo test -p kith --test devices_history -- --ignored --nocapture`
#[test]
#[ignore = "benchmark: prints figures"]
fn history_transfer_rate() {
    let n_msgs: u64 = std::env::var("KITH_HISTORY_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let (mut a, b) = pair();
    a.send("Bob", "first");
    a.wait_status("Bob", 1, "delivered", T);
    a.stop();
    {
        let store = kith_engine::open_store(&a.dir, None).unwrap();
        let bob = store
            .read(|r| r.contacts())
            .unwrap()
            .into_iter()
            .find(|c| c.name == "Bob")
            .unwrap()
            .identity;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let mut i = 0u64;
        while i < n_msgs {
            let end = (i + 5_000).min(n_msgs);
            store
                .write(|w| {
                    for j in i..end {
                        w.append_message(
                            &bob,
                            &kith_store::StoredMessage {
                                id: (0xbe0c_u128 << 96) | u128::from(j),
                                outgoing: j % 2 == 0,
                                text: format!(
                                    "message {j} {}",
                                    "lorem ipsum ".repeat((j % 10) as usize)
                                ),
                                sent_at_ms: now - n_msgs + j,
                                stored_at_ms: now,
                                status: kith_store::Status::Delivered,
                            },
                        )?;
                    }
                    Ok(())
                })
                .unwrap();
            i = end;
        }
    }
    a.start();
    let mut n = Node::new();
    n.start();
    let (mut child, _lines, code) = n.start_link("laptop");
    a.json(&["devices", "approve", &code, "--yes"]);
    assert!(child.wait().unwrap().success());
    n.stop();
    let t = std::time::Instant::now();
    n.start();
    let p = wait_for(Duration::from_secs(1800), "the whole history", || {
        let p = n.json(&["devices", "history"]).into_iter().next()?;
        (p["state"] == "done").then_some(p)
    });
    let secs = t.elapsed().as_secs_f64();
    // Stored on the laptop (`kith history` shows at most 10,000).
    let got = p["stored"].as_u64().unwrap_or(0);
    assert_eq!(got, n_msgs + 1);
    println!(
        "history transfer: {got} messages in {secs:.1} s = {:.0} messages/s (from the laptop's restart)",
        got as f64 / secs
    );
    drop(b);
}
