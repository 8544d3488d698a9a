//! The operator's node in its own process: configuration, invite-only mailbox registration,
//! metrics and health; a `kith` node registers with it.
//!
//! Uses the `kith` binary built next to this test (`cargo test --workspace` builds it).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Command, Stdio};

use common::*;

#[test]
fn invite_only_mailbox_with_metrics() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("boot");
    let port = free_port();
    let metrics = free_port();
    let cfg = tmp.path().join("bootstrap.toml");
    std::fs::write(
        &cfg,
        format!(
            "data_dir = {data:?}\nlisten = [\"/ip4/127.0.0.1/tcp/{port}\"]\nmetrics = \"127.0.0.1:{metrics}\"\n\
             [mailbox]\nregistration = \"invite\"\ninvite_tokens = [\"invite-123456\"]\nmax_devices = 1\n"
        ),
    )
    .unwrap();
    let _boot = Kill(
        Command::new(BOOTSTRAP)
            .arg("--config")
            .arg(&cfg)
            .env("KITH_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let health = wait_for("health", || http_get(metrics, "/health"));
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(health.ends_with("ok\n"));

    // The operator's node answers the usual API on its data directory.
    let id: serde_json::Value =
        serde_json::from_slice(&kith(&data, &["--json", "id"]).stdout).unwrap();
    let code = id["code"].as_str().unwrap().to_string();
    let boot_addr = format!(
        "/ip4/127.0.0.1/tcp/{port}/p2p/{}",
        id["peer_id"].as_str().unwrap()
    );

    // A user's node joins through it and registers: refused without the token, accepted with.
    let bob = tmp.path().join("bob");
    let bob_port = free_port();
    let _bob = Kill(
        Command::new(kith_bin())
            .arg("--data-dir")
            .arg(&bob)
            .args(["up", "--no-mdns", "--listen"])
            .arg(format!("/ip4/127.0.0.1/tcp/{bob_port}"))
            .args(["--bootstrap", &boot_addr])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for("bob's node", || {
        kith(&bob, &["status"]).status.success().then_some(())
    });
    let out = kith(&bob, &["mailbox", "add", &code]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invite token"));
    let out = kith(&bob, &["mailbox", "add", &code, "--token", "wrong-token"]);
    assert_eq!(out.status.code(), Some(1));
    let out = kith(&bob, &["mailbox", "add", &code, "--token", "invite-123456"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The mailbox serves at most one device: a second one is refused.
    let carol = tmp.path().join("carol");
    let _carol = Kill(
        Command::new(kith_bin())
            .arg("--data-dir")
            .arg(&carol)
            .args(["up", "--no-mdns", "--listen"])
            .arg(format!("/ip4/127.0.0.1/tcp/{}", free_port()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for("carol's node", || {
        kith(&carol, &["status"]).status.success().then_some(())
    });
    let out = kith(
        &carol,
        &["mailbox", "add", &code, "--token", "invite-123456"],
    );
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let m = http_get(metrics, "/metrics").unwrap();
    assert!(m.contains("kith_mailbox_devices 1"), "{m}");
    assert!(m.contains("kith_up 1"));
    // libp2p's own metrics, and Kith's counters and histograms, in OpenMetrics text.
    assert!(
        m.contains("Content-Type: application/openmetrics-text"),
        "{m}"
    );
    assert!(m.contains("libp2p_swarm_"), "{m}");
    assert!(m.contains("libp2p_identify_"), "{m}");
    assert!(m.contains("# TYPE kith_commit_seconds histogram"), "{m}");
    assert!(m.contains("kith_strikes_total"), "{m}");
    assert!(m.trim_end().ends_with("# EOF"), "{m}");
    assert!(
        http_get(metrics, "/nothing")
            .unwrap()
            .starts_with("HTTP/1.1 404")
    );
}

#[test]
fn bad_configuration_exits_1() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("bad.toml");
    std::fs::write(
        &cfg,
        "data_dir = \"/x\"\n[mailbox]\nregistration = \"sometimes\"\n",
    )
    .unwrap();
    let out = Command::new(BOOTSTRAP)
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("registration"));
    let out = Command::new(BOOTSTRAP)
        .arg("--print-config")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("[mailbox]"));
}

#[test]
fn relays_for_nodes_that_cannot_be_dialled() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("boot");
    let port = free_port();
    let metrics = free_port();
    let cfg = tmp.path().join("bootstrap.toml");
    // On loopback the relay must be told that private addresses count.
    std::fs::write(
        &cfg,
        format!(
            "data_dir = {data:?}\nlisten = [\"/ip4/127.0.0.1/tcp/{port}\"]\n\
             metrics = \"127.0.0.1:{metrics}\"\n\
             [relay]\nallow_private_ips = true\nmax_reservations = 8\n"
        ),
    )
    .unwrap();
    let _boot = Kill(
        Command::new(BOOTSTRAP)
            .arg("--config")
            .arg(&cfg)
            .env("KITH_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let id = wait_for("the bootstrap node's API", || {
        let out = kith(&data, &["--json", "id"]);
        serde_json::from_slice::<serde_json::Value>(&out.stdout).ok()
    });
    let boot_id = id["peer_id"].as_str().unwrap().to_string();
    let boot_addr = format!("/ip4/127.0.0.1/tcp/{port}/p2p/{boot_id}");

    // A node that listens nowhere joins through it and is given a relay address there.
    let dave = tmp.path().join("dave");
    let _dave = Kill(
        Command::new(kith_bin())
            .arg("--data-dir")
            .arg(&dave)
            .args(["up", "--no-mdns", "--no-listen", "--bootstrap", &boot_addr])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let addrs = wait_for("Dave's relay address", || {
        let out = kith(&dave, &["--json", "id"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        let a = v["addrs"].as_array()?.clone();
        (!a.is_empty()).then_some(a)
    });
    let a = addrs[0].as_str().unwrap();
    assert!(
        a.contains(&boot_id) && a.contains("/p2p-circuit"),
        "not a relay address on the bootstrap node: {a}"
    );
    // The operator sees the slot in the metrics.
    wait_for("the relay slot in the metrics", || {
        let m = http_get(metrics, "/metrics")?;
        m.contains("kith_relay_reservations 1").then_some(())
    });
}
