//! Issue 17 benchmark: the cost of each extra device on 1:1 throughput. Alice sends a burst
//! to Bob, who has 1, 2 or 5 devices (linked); the time runs until every one of Bob's
//! devices holds the whole burst. Each extra device costs one Olm encryption per batch on
//! the sender and one more delivery. The burst goes through 16 API connections to Alice's
//! daemon (no CLI process per message), so the figures are the daemons' own. Run:
//!
//! KITH_BENCH_MSGS=2000 cargo test -p kith --release --test devices_bench -- --ignored --nocapture

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use kith_api::Client;
use kith_api::methods::{self, SendParams};

const T: Duration = Duration::from_secs(600);
/// API connections sending at once.
const CONNS: usize = 16;

fn received(n: &Node, from: &str) -> usize {
    n.history(from).iter().filter(|m| m["from"] != "me").count()
}

#[test]
#[ignore = "benchmark: run with --ignored --nocapture"]
fn throughput_with_1_2_and_5_devices() {
    let msgs: usize = std::env::var("KITH_BENCH_MSGS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    for devices in [1usize, 2, 5] {
        let (a, b) = pair();
        let mut extra = Vec::new();
        for i in 1..devices {
            let mut n = Node::new();
            n.start();
            n.link_to(&b, &format!("dev{i}"), &[]);
            extra.push(n);
        }
        // Alice knows all of Bob's devices before the burst.
        wait_for(T, "Alice learns Bob's devices", || {
            a.plain_logs()
                .lines()
                .filter(|l| l.contains("a contact's devices changed"))
                .any(|l| l.contains(&format!("devices={devices}")))
                .then_some(())
                .or((devices == 1).then_some(()))
        });
        let start = Instant::now();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        let sock = a.dir.join(kith_api::SOCKET_NAME);
        let queued = rt.block_on(async {
            // CONNS API connections, each sending its share in turn (sends in flight together
            // share the daemon's commits, as a busy user's would).
            let mut tasks = Vec::new();
            for c in 0..CONNS {
                let sock = sock.clone();
                tasks.push(tokio::spawn(async move {
                    let mut api = Client::connect(&sock).await.unwrap();
                    for i in (c..msgs).step_by(CONNS) {
                        api.call::<methods::Send>(SendParams {
                            to: "Bob".into(),
                            text: format!("m{i}"),
                        })
                        .await
                        .unwrap();
                    }
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
            start.elapsed().as_secs_f64()
        });
        let mut all: Vec<&Node> = vec![&b];
        all.extend(extra.iter());
        for n in &all {
            wait_for(T, "the burst on every device", || {
                (received(n, "Alice") >= msgs).then_some(())
            });
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "devices={devices} messages={msgs} queued in {queued:.2} s; on every device in {secs:.2} s = {:.0} messages/s",
            msgs as f64 / secs
        );
    }
}
