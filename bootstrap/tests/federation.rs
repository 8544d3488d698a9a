//! Two operators (issue 19, federation): each runs a `kith-bootstrap` with a mailbox; the
//! second joined the DHT through the first. Alice uses the first operator, Bob the second.
//! They talk; then, while Bob is away, a message acknowledged by Bob's mailbox survives that
//! operator's node being killed (-9) and restarted, and a message sent while the node is
//! down waits in Alice's outbox until it is back. Bob, returning, gets both, once each.
//!
//! Uses the `kith` binary built next to this test (`cargo test --workspace` builds it).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;

const LONG: Duration = Duration::from_secs(90);

fn operator_config(
    dir: &Path,
    name: &str,
    port: u16,
    metrics: u16,
    join: Option<&str>,
) -> std::path::PathBuf {
    let data = dir.join(name);
    let cfg = dir.join(format!("{name}.toml"));
    let bootstrap = join.map(|a| format!("\"{a}\"")).unwrap_or_default();
    std::fs::write(
        &cfg,
        format!(
            "data_dir = {data:?}\nlisten = [\"/ip4/127.0.0.1/tcp/{port}\"]\n\
             metrics = \"127.0.0.1:{metrics}\"\n\
             bootstrap = [{bootstrap}]\n[relay]\nallow_private_ips = true\n"
        ),
    )
    .unwrap();
    cfg
}

/// A counter's value in an operator's `/metrics`.
fn counter(port: u16, name: &str) -> Option<u64> {
    let m = http_get(port, "/metrics")?;
    m.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// The operator's contact code and its dialable address.
fn operator_id(data: &Path, port: u16) -> (String, String) {
    let id = wait_for("the operator's API", || {
        let out = kith(data, &["--json", "id"]);
        serde_json::from_slice::<serde_json::Value>(&out.stdout).ok()
    });
    let addr = format!(
        "/ip4/127.0.0.1/tcp/{port}/p2p/{}",
        id["peer_id"].as_str().unwrap()
    );
    (id["code"].as_str().unwrap().to_string(), addr)
}

fn status_of(dir: &Path, with: &str, id: &str) -> Option<String> {
    kith_json(dir, &["history", with])
        .into_iter()
        .find(|m| m["id"] == id)
        .and_then(|m| m["status"].as_str().map(str::to_owned))
}

fn count_text(dir: &Path, with: &str, text: &str) -> usize {
    kith_json(dir, &["history", with])
        .iter()
        .filter(|m| m["text"] == text)
        .count()
}

#[test]
fn users_of_two_operators_talk_and_a_restarted_operator_loses_no_acknowledged_message() {
    let tmp = tempfile::tempdir().unwrap();
    let (p1, p2, metrics2) = (free_port(), free_port(), free_port());
    let cfg1 = operator_config(tmp.path(), "op1", p1, free_port(), None);
    let _op1 = start_bootstrap(&cfg1);
    let (code1, addr1) = operator_id(&tmp.path().join("op1"), p1);
    let cfg2 = operator_config(tmp.path(), "op2", p2, metrics2, Some(&addr1));
    let mut op2 = start_bootstrap(&cfg2);
    let (code2, addr2) = operator_id(&tmp.path().join("op2"), p2);

    // Alice lives at the first operator, Bob at the second.
    let alice = tmp.path().join("alice");
    let bob = tmp.path().join("bob");
    let bob_port = free_port();
    let _a = start_kith(&alice, free_port(), Some(&addr1));
    let mut b = start_kith(&bob, bob_port, Some(&addr2));
    kith_json(&alice, &["mailbox", "add", &code1]);
    kith_json(&bob, &["mailbox", "add", &code2]);
    // The records listing the mailboxes go to the DHT in the background: the contacts
    // below look them up, so they wait until both are out.
    for dir in [&alice, &bob] {
        wait_for("the record listing the mailbox", || {
            (kith_json(dir, &["status"])[0]["record"] == "published").then_some(())
        });
    }
    let alice_code = kith_json(&alice, &["id"])[0]["code"]
        .as_str()
        .unwrap()
        .to_string();
    let bob_code = kith_json(&bob, &["id"])[0]["code"]
        .as_str()
        .unwrap()
        .to_string();
    kith_json(&alice, &["contacts", "add", &bob_code, "--name", "Bob"]);
    kith_json(&bob, &["contacts", "add", &alice_code, "--name", "Alice"]);

    // Across operators, both ways.
    kith_json(&alice, &["send", "Bob", "hello from op1"]);
    wait_for("Alice's message at Bob", || {
        (count_text(&bob, "Alice", "hello from op1") == 1).then_some(())
    });
    kith_json(&bob, &["send", "Alice", "hello from op2"]);
    wait_for("Bob's message at Alice", || {
        (count_text(&alice, "Bob", "hello from op2") == 1).then_some(())
    });

    // Bob goes away; Alice's next message is taken by Bob's mailbox at the second operator.
    drop(b);
    let m1 = kith_json(&alice, &["send", "Bob", "kept by op2"])[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    wait_long(LONG, "op2 acknowledging the message (✓ sent)", || {
        (status_of(&alice, "Bob", &m1).as_deref() == Some("sent")).then_some(())
    });

    // The second operator's node dies without warning; meanwhile Alice writes again.
    drop(op2);
    let m2 = kith_json(&alice, &["send", "Bob", "written while op2 was down"])[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        status_of(&alice, "Bob", &m2).as_deref(),
        Some("pending"),
        "nobody took it while op2 and Bob were away"
    );
    op2 = start_bootstrap(&cfg2);
    operator_id(&tmp.path().join("op2"), p2);
    wait_long(LONG, "op2, back, taking the second message", || {
        (status_of(&alice, "Bob", &m2).as_deref() == Some("sent")).then_some(())
    });

    // Bob returns and drains his mailbox: both messages, once each; Alice sees them delivered.
    b = start_kith(&bob, bob_port, Some(&addr2));
    for text in ["kept by op2", "written while op2 was down"] {
        wait_long(LONG, text, || {
            (count_text(&bob, "Alice", text) == 1).then_some(())
        });
    }
    for id in [&m1, &m2] {
        wait_long(LONG, "the delivered receipt at Alice", || {
            matches!(
                status_of(&alice, "Bob", id).as_deref(),
                Some("delivered" | "read")
            )
            .then_some(())
        });
    }
    assert_eq!(count_text(&bob, "Alice", "kept by op2"), 1);
    // The operator's metrics counted it (since its restart): the second message kept, both
    // handed to Bob.
    wait_for("op2's counters", || {
        let kept = counter(metrics2, "kith_deposits_total")?;
        let drained = counter(metrics2, "kith_drained_total")?;
        (kept >= 1 && drained >= 2).then_some(())
    });
    drop((b, op2));
}
