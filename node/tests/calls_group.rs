//! Group calls between real `kith up` daemons on loopback, headless: Alice rings a group of
//! three; Bob and Carol (who are not each other's contacts) answer; every one of them
//! talks with both others over direct calls (a mesh), and each recording holds the tone of
//! the member it came from. When Alice leaves, Bob and Carol talk on.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Node, wait_for};
use kith_calls::tone::{sine, tone_share};
use kith_calls::{read_wav, write_wav};
use serde_json::Value;

const T: Duration = Duration::from_secs(45);

fn call_node() -> Node {
    let mut n = Node::new().with_args(&["--call-bind", "127.0.0.1"]);
    n.start();
    n
}

fn current(n: &Node) -> Value {
    n.json(&["calls", "--current"])
        .into_iter()
        .next()
        .unwrap_or(Value::Null)
}

/// Waits until the node's group call is connected with `count` others.
fn wait_with(n: &Node, count: usize) -> Value {
    wait_for(T, &format!("a group call with {count} others"), || {
        let c = current(n);
        (c["state"] == "connected" && c["participants"].as_array().map_or(0, Vec::len) == count)
            .then_some(c)
    })
}

fn arg(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The finished recordings `<stem>-*.wav` in `dir`, each at least 1 s long.
fn recordings(dir: &Path, stem: &str, count: usize) -> Vec<(PathBuf, Vec<i16>)> {
    wait_for(T, &format!("{count} recordings of {stem}"), || {
        let mut found = Vec::new();
        for e in std::fs::read_dir(dir).ok()? {
            let p = e.ok()?.path();
            let name = p.file_name()?.to_str()?.to_string();
            if name.starts_with(&format!("{stem}-")) && name.ends_with(".wav") {
                let s = read_wav(&p).ok().filter(|s| s.len() >= 48_000)?;
                found.push((p, s));
            }
        }
        (found.len() == count).then_some(found)
    })
}

/// Each recording holds one of `tones`, and together they hold all of them.
fn hears_each(recs: &[(PathBuf, Vec<i16>)], tones: &[f64], who: &str) {
    let mut heard: Vec<f64> = Vec::new();
    for (p, s) in recs {
        let shares: Vec<(f64, f64)> = tones.iter().map(|&t| (t, tone_share(s, t))).collect();
        eprintln!("{who}: {} {shares:?}", p.display());
        let (best, share) = shares
            .iter()
            .copied()
            .fold((0.0, 0.0), |a, b| if b.1 > a.1 { b } else { a });
        assert!(
            share > 0.3,
            "{who}'s {} holds a tone ({shares:?})",
            p.display()
        );
        heard.push(best);
    }
    heard.sort_by(f64::total_cmp);
    assert_eq!(
        heard, tones,
        "{who} hears every other member, each in its own leg"
    );
}

#[test]
fn three_members_talk_in_a_mesh_and_the_others_go_on_when_one_leaves() {
    let a = call_node();
    let b = call_node();
    let c = call_node();
    a.add(&b, "Bob");
    b.add(&a, "Alice");
    a.add(&c, "Carol");
    c.add(&a, "Alice");
    a.create_group("Friends", "Bob,Carol", 3, &[&b, &c]);

    let dir = tempfile::tempdir().unwrap();
    let input = |name: &str, hz: f64| {
        let p = dir.path().join(name);
        write_wav(&p, &sine(hz, 8000.0, 48_000 * 30)).unwrap();
        p
    };
    let (a_in, b_in, c_in) = (
        input("a_in.wav", 440.0),
        input("b_in.wav", 660.0),
        input("c_in.wav", 880.0),
    );
    let out = |stem: &str| dir.path().join(format!("{stem}.wav"));

    let started = a.json(&[
        "call",
        "--group",
        "Friends",
        "--audio-in",
        arg(&a_in),
        "--audio-out",
        arg(&out("a")),
    ]);
    assert_eq!(started[0]["group"], "Friends");
    assert_eq!(started[0]["state"], "ringing");
    for (n, n_in, stem) in [(&b, &b_in, "b"), (&c, &c_in, "c")] {
        let rang = wait_for(T, "the group call rings", || {
            let v = current(n);
            (v["state"] == "ringing").then_some(v)
        });
        assert_eq!(rang["group"], "Friends");
        assert_eq!(rang["contact"], "Alice");
        assert_eq!(rang["direction"], "incoming");
        n.json(&[
            "answer",
            "--audio-in",
            arg(n_in),
            "--audio-out",
            arg(&out(stem)),
        ]);
    }
    // The mesh: everyone with both others.
    wait_with(&a, 2);
    wait_with(&b, 2);
    wait_with(&c, 2);
    // Talk (the length of the call, not a timing assertion).
    std::thread::sleep(Duration::from_secs(3));

    // Alice leaves; Bob and Carol go on with each other.
    a.json(&["hangup"]);
    wait_for(T, "Alice's call to end", || {
        current(&a).is_null().then_some(())
    });
    wait_with(&b, 1);
    wait_with(&c, 1);
    std::thread::sleep(Duration::from_secs(1));
    b.json(&["hangup"]);
    wait_for(T, "Bob's call to end", || {
        current(&b).is_null().then_some(())
    });
    // Carol, left alone after talking, is out of the call too.
    wait_for(T, "Carol's call to end", || {
        current(&c).is_null().then_some(())
    });

    hears_each(&recordings(dir.path(), "a", 2), &[660.0, 880.0], "Alice");
    hears_each(&recordings(dir.path(), "b", 2), &[440.0, 880.0], "Bob");
    hears_each(&recordings(dir.path(), "c", 2), &[440.0, 660.0], "Carol");

    let h = a.json(&["calls"]);
    let last = h.first().expect("Alice's history has the call");
    assert_eq!(last["group"], "Friends");
    assert_eq!(last["outcome"], "hung_up");
    let h = c.json(&["calls"]);
    assert_eq!(h.first().unwrap()["outcome"], "remote_hung_up");
}

#[test]
fn a_group_call_that_nobody_answers_is_missed_by_the_members() {
    let mut a = Node::new().with_args(&["--call-bind", "127.0.0.1", "--ring-timeout", "3"]);
    a.start();
    let mut b = Node::new().with_args(&["--call-bind", "127.0.0.1", "--ring-timeout", "3"]);
    b.start();
    a.add(&b, "Bob");
    b.add(&a, "Alice");
    a.create_group("Pair", "Bob", 2, &[&b]);
    a.json(&["call", "--group", "Pair"]);
    wait_for(T, "the ring", || {
        (current(&b)["state"] == "ringing").then_some(())
    });
    wait_for(T, "the ring to time out", || {
        current(&b).is_null().then_some(())
    });
    wait_for(T, "Alice to give up", || {
        current(&a).is_null().then_some(())
    });
    let hb = b.json(&["calls"]);
    assert_eq!(hb[0]["missed"], true, "{hb:?}");
    assert_eq!(hb[0]["group"], "Pair");
    let ha = a.json(&["calls"]);
    assert_eq!(ha[0]["outcome"], "no_answer", "{ha:?}");
    // A 1:1 call works again afterwards.
    assert!(a.json(&["call", "Bob"])[0]["state"].is_string());
}
