//! Watching daemons' events from the benchmarks: each event is stamped when it arrives, so a
//! latency is measured from the API call to the moment its event came, not to when the
//! benchmark got round to reading it.

use std::time::{Duration, Instant};

use kith_api::Client;
use tokio::sync::mpsc;

use super::{Daemon, ms, pct, proc_cpu, sock};

/// Room for events between the watch tasks and a benchmark (sequential sends only).
pub const EVENT_QUEUE: usize = 1024;

/// A connection to `d` subscribed to its events.
pub async fn watching(d: &Daemon) -> Client {
    let mut watch = Client::connect(&sock(&d.dir)).await.unwrap();
    watch.watch().await.unwrap();
    watch
}

/// Passes on the key `pick` finds in each event of `watch`, with the moment the event
/// arrived.
pub async fn stamp_events(
    mut watch: Client,
    tx: mpsc::Sender<(String, Instant)>,
    pick: fn(&serde_json::Value) -> Option<String>,
) {
    while let Some(ev) = watch.next_event().await.unwrap() {
        if let Some(key) = pick(&ev) {
            let at = Instant::now();
            if tx.send((key, at)).await.is_err() {
                return;
            }
        }
    }
}

/// Waits for `key` from a watch task; returns when its event arrived.
pub async fn wait_for(rx: &mut mpsc::Receiver<(String, Instant)>, key: &str) -> Instant {
    loop {
        let (k, at) = rx.recv().await.expect("daemon stopped");
        if k == key {
            return at;
        }
    }
}

/// Sorts `lat` and prints its percentiles on one line.
pub fn print_latency(what: &str, n: usize, lat: &mut [Duration]) {
    lat.sort();
    println!(
        "latency  {what} n={n}: p50 {:.2} ms  p90 {:.2} ms  p95 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
        ms(pct(lat, 0.50)),
        ms(pct(lat, 0.90)),
        ms(pct(lat, 0.95)),
        ms(pct(lat, 0.99)),
        ms(lat.last().copied().unwrap_or_default())
    );
}

/// CPU time used so far by the processes, summed.
pub fn cpu_sum(pids: &[u32]) -> Duration {
    pids.iter().map(|&p| proc_cpu(p).unwrap_or_default()).sum()
}

/// Events of `d` as `pick` keys them, stamped as they arrive: the watching task and the
/// receiver of (key, when).
pub async fn stamped(
    d: &Daemon,
    pick: fn(&serde_json::Value) -> Option<String>,
) -> (
    tokio::task::JoinHandle<()>,
    mpsc::Receiver<(String, Instant)>,
) {
    let (tx, rx) = mpsc::channel(EVENT_QUEUE);
    (tokio::spawn(stamp_events(watching(d).await, tx, pick)), rx)
}

/// The ids of outgoing messages as they reach ✓✓.
pub fn delivered_ids(ev: &serde_json::Value) -> Option<String> {
    (ev["event"] == "status" && ev["status"] == "delivered")
        .then(|| ev["id"].as_str().unwrap_or_default().to_string())
}

/// The texts of incoming 1:1 messages.
pub fn message_texts(ev: &serde_json::Value) -> Option<String> {
    (ev["event"] == "message").then(|| ev["text"].as_str().unwrap_or_default().to_string())
}

/// The texts of incoming group messages.
pub fn group_message_texts(ev: &serde_json::Value) -> Option<String> {
    (ev["event"] == "group_message").then(|| ev["text"].as_str().unwrap_or_default().to_string())
}
