//! `net-sim`: many real Kith nodes in one process, with churn and partitions from a seed.
//!
//! Every node is the same code `kith up` runs: a [`kith_engine::Engine`] with its own
//! identity, its own redb file (in a temporary directory) and its own libp2p swarm,
//! listening on a fixed TCP port on 127.0.0.1 (so a node that restarts is found where it
//! was). Nothing else is simulated: messages travel over real loopback connections, are
//! encrypted, stored and acknowledged exactly as between separate machines.
//!
//! A [`Scenario`] (a TOML file) gives the seed, the number of nodes and mailboxes, the
//! workload (random contact pairs and 1:1 messages between them) and the faults:
//!
//! - **churn**: a share of the nodes goes down (a clean stop) at a random time and comes back
//!   after a random pause, or never (`gone_for_good`);
//! - **partitions**: at a time, the nodes are split in two random halves whose links are cut
//!   (connections closed and refused, through [`kith_engine::EngineHandle::cut_links`]), and
//!   healed later.
//!
//! All random choices come from the seed, so a scenario makes the same choices every run;
//! timing on a real machine still varies, so latencies differ between runs while the
//! delivery results of a healthy run (everything acknowledged delivered exactly once) do not.
//!
//! The [`Report`] counts messages sent, acknowledged (✓ or ✓✓ at the sender), delivered,
//! duplicated (shown twice) and lost (acknowledged but not delivered to a recipient that is
//! still around), with latency from `send` to the recipient's `message` event, and the CPU
//! time and peak memory of the run; on memory links the bytes the nodes wrote; and the DHT
//! lookups' success, hops (Kademlia requests) and time. [`Report::failures`] checks it
//! against the scenario's expectations. `net-sim/README.md` documents the scenario file.
//!
//! Not simulated yet: groups.

mod gossip;
mod group;

pub use gossip::{GossipReport, GossipScenario, run_gossip};
pub use group::{GroupReport, GroupScenario, run_group};

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use kith_engine::{Engine, EngineConfig, EngineHandle, Event, MailboxConfig, Multiaddr};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

/// Most nodes one scenario may run.
pub const MAX_NODES: usize = 2000;
/// Most messages one scenario may send.
pub const MAX_MESSAGES: usize = 1_000_000;
/// Most DHT lookups one scenario may make.
pub const MAX_LOOKUPS: usize = kith_net::sim::MAX_LOOKUPS;
/// Longest link delay (latency, jitter, retransmission timeout) a scenario may give, in ms.
pub const MAX_LINK_MS: f64 = 60_000.0;

/// What to run; read from a TOML file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// A name for the report.
    pub name: String,
    /// Every random choice comes from this.
    pub seed: u64,
    /// Nodes in all, mailboxes included.
    pub nodes: usize,
    /// How many of them serve as mailboxes (always on); every other node registers with one.
    #[serde(default)]
    pub mailboxes: usize,
    /// Random pairs of nodes that add each other as contacts.
    pub pairs: usize,
    /// 1:1 messages, each from a random side of a random pair.
    pub messages: usize,
    /// Sends are spread evenly over this many milliseconds.
    pub send_over_ms: u64,
    /// Churn, if any.
    #[serde(default)]
    pub churn: Option<Churn>,
    /// Partitions, if any.
    #[serde(default)]
    pub partition: Vec<Partition>,
    /// What must hold.
    #[serde(default)]
    pub expect: Expect,
    /// How nodes are linked: `memory` (in-process libp2p memory links, the default: no
    /// sockets, so a thousand nodes fit) or `tcp` (real loopback TCP connections).
    #[serde(default)]
    pub transport: Transport,
    /// How memory links behave (latency, jitter, loss, bandwidth); instant without.
    #[serde(default)]
    pub links: Option<Links>,
    /// DHT lookups, if any.
    #[serde(default)]
    pub dht: Option<Dht>,
}

/// How every memory link behaves, per direction (see `kith_net::shaped` for the model).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Links {
    /// One-way delay.
    #[serde(default)]
    pub latency_ms: f64,
    /// Each chunk's delay varies uniformly by up to this much either way (never reordering).
    #[serde(default)]
    pub jitter_ms: f64,
    /// Chance (0 to 1) that a chunk is lost; the stream is reliable, so a lost chunk arrives
    /// one retransmission timeout (`rto_ms`) late, and what follows waits behind it.
    #[serde(default)]
    pub loss: f64,
    /// What a lost chunk costs (200 ms, Linux's minimum RTO, when not given).
    #[serde(default)]
    pub rto_ms: Option<f64>,
    /// Kilobits a second each direction of each link carries (unlimited when not given).
    #[serde(default)]
    pub bandwidth_kbps: Option<f64>,
    /// Connections idle this long close (a node's usual 120 s when not given). Joining
    /// nodes' Kademlia bootstraps connect each to a few hundred others; big scenarios
    /// shorten this so the nodes do not hold a full mesh (see `thousand.toml`).
    #[serde(default)]
    pub idle_ms: Option<u64>,
}

impl Links {
    /// Whether the links are shaped at all (rather than only given an idle timeout).
    fn shapes(&self) -> bool {
        self.latency_ms > 0.0
            || self.jitter_ms > 0.0
            || self.loss > 0.0
            || self.bandwidth_kbps.is_some()
    }

    /// The shape of node `node`'s links; its draws start from the scenario's seed and the
    /// node's number.
    pub(crate) fn shape(&self, seed: u64, node: usize) -> kith_net::LinkShape {
        let ms = |v: f64| Duration::from_secs_f64(v / 1000.0);
        kith_net::LinkShape {
            latency: ms(self.latency_ms),
            jitter: ms(self.jitter_ms),
            loss: self.loss,
            rto: self.rto_ms.map_or(kith_net::shaped::DEFAULT_RTO, ms),
            bandwidth: self.bandwidth_kbps.map(|k| (k * 1000.0 / 8.0) as u64),
            seed: seed ^ (node as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        }
    }
}

/// DHT lookups (random users look up the records of random other users) and Kademlia's
/// refresh.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dht {
    /// Lookups, spread evenly over the sending time (a user that is down skips its turn).
    #[serde(default)]
    pub lookups: usize,
    /// Seconds between Kademlia's routing-table refreshes (a bootstrap, which connects a
    /// node to many peers); a node's usual five minutes when not given. Big scenarios
    /// lengthen it: a thousand nodes refreshing every five minutes keep two cores busy.
    #[serde(default)]
    pub bootstrap_every_s: Option<u64>,
}

/// How simulated nodes are linked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// In-process memory links (`/memory/<n>`), Noise and Yamux on top as usual.
    #[default]
    Memory,
    /// Loopback TCP.
    Tcp,
}

/// Nodes going down and coming back.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Churn {
    /// Share of the non-mailbox nodes that go down once.
    pub fraction: f64,
    /// They go down at a random time in this range (ms from the first send).
    pub down_at_ms: (u64, u64),
    /// And stay down for a random time in this range.
    pub down_for_ms: (u64, u64),
    /// Share of those that never come back.
    #[serde(default)]
    pub gone_for_good: f64,
}

/// A split of the nodes in two random halves, healed later.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Partition {
    /// When the links are cut (ms from the first send).
    pub at_ms: u64,
    /// When they are restored.
    pub heal_ms: u64,
}

/// What a run must show.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Share of acknowledged messages (to recipients still around) delivered exactly once.
    pub delivered: f64,
    /// Messages shown twice at most.
    pub duplicates: usize,
    /// How long to wait after the last send (and the last node's return) for deliveries.
    pub settle_ms: u64,
    /// Share of finished DHT lookups that must find the record (none required when not
    /// given).
    #[serde(default)]
    pub lookups_found: Option<f64>,
}

impl Default for Expect {
    fn default() -> Self {
        Self {
            delivered: 1.0,
            duplicates: 0,
            settle_ms: 120_000,
            lookups_found: None,
        }
    }
}

/// Scenario mistakes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScenarioError {
    /// The file is not a valid scenario.
    #[error("not a valid scenario: {0}")]
    Parse(String),
    /// A value is out of range.
    #[error("{0}")]
    Invalid(String),
}

impl Scenario {
    /// Parses and checks a scenario.
    pub fn parse(text: &str) -> Result<Self, ScenarioError> {
        let s: Scenario = toml::from_str(text).map_err(|e| ScenarioError::Parse(e.to_string()))?;
        let bad = |m: &str| Err(ScenarioError::Invalid(m.to_string()));
        if s.nodes < 2 || s.nodes > MAX_NODES {
            return bad("nodes must be 2 to 2000");
        }
        if s.mailboxes >= s.nodes {
            return bad("mailboxes must be fewer than nodes");
        }
        if s.nodes - s.mailboxes < 2 {
            return bad("at least two nodes that are not mailboxes are needed");
        }
        if s.pairs == 0 || s.messages == 0 || s.messages > MAX_MESSAGES {
            return bad("pairs must be at least 1, messages 1 to 1,000,000");
        }
        if let Some(c) = &s.churn
            && (!(0.0..=1.0).contains(&c.fraction)
                || !(0.0..=1.0).contains(&c.gone_for_good)
                || c.down_at_ms.0 > c.down_at_ms.1
                || c.down_for_ms.0 > c.down_for_ms.1)
        {
            return bad("churn: fractions 0 to 1, ranges (low, high)");
        }
        if s.partition.iter().any(|p| p.heal_ms <= p.at_ms) {
            return bad("a partition must heal after it starts");
        }
        if !(0.0..=1.0).contains(&s.expect.delivered)
            || s.expect
                .lookups_found
                .is_some_and(|f| !(0.0..=1.0).contains(&f))
        {
            return bad("expect.delivered and expect.lookups_found must be 0 to 1");
        }
        if let Some(l) = &s.links {
            if s.transport != Transport::Memory {
                return bad("[links] shapes memory links only (transport = \"memory\")");
            }
            let ms_ok = |v: f64| v.is_finite() && (0.0..=MAX_LINK_MS).contains(&v);
            if !ms_ok(l.latency_ms)
                || !ms_ok(l.jitter_ms)
                || !l.rto_ms.is_none_or(ms_ok)
                || !(0.0..=1.0).contains(&l.loss)
                || l.bandwidth_kbps
                    .is_some_and(|b| !b.is_finite() || !(1.0..=1e9).contains(&b))
            {
                return bad(
                    "links: latency_ms, jitter_ms and rto_ms 0 to 60000, loss 0 to 1, \
                     bandwidth_kbps 1 to 1e9",
                );
            }
        }
        if s.links
            .as_ref()
            .and_then(|l| l.idle_ms)
            .is_some_and(|ms| !(100..=3_600_000).contains(&ms))
        {
            return bad("links.idle_ms must be 100 to 3,600,000");
        }
        if let Some(d) = &s.dht
            && (d.lookups > MAX_LOOKUPS
                || d.bootstrap_every_s
                    .is_some_and(|b| !(1..=7 * 86_400).contains(&b)))
        {
            return bad("dht: lookups at most 100,000, bootstrap_every_s 1 to 604,800");
        }
        Ok(s)
    }
}

/// What a run showed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The scenario's name.
    pub scenario: String,
    /// Its seed.
    pub seed: u64,
    /// Nodes run.
    pub nodes: usize,
    /// Messages sent (a send the sender's node accepted).
    pub sent: usize,
    /// Sent messages between nodes still around whose sender shows ✓ or ✓✓ at the end.
    pub acknowledged: usize,
    /// Messages the recipient shows (each counted once).
    pub delivered: usize,
    /// Messages a recipient shows more than once.
    pub duplicates: usize,
    /// Acknowledged messages between nodes still around that never arrived.
    pub lost: usize,
    /// Messages from or to nodes gone for good (not expected to arrive).
    pub to_departed: usize,
    /// Node restarts done.
    pub restarts: usize,
    /// Partitions cut and healed.
    pub partitions: usize,
    /// Latency from `send` to the recipient's event, in ms: p50, p95, p99, max.
    pub latency_ms: [f64; 4],
    /// Wall time of the run, in seconds.
    pub wall_s: f64,
    /// CPU time of the process during the run, in seconds.
    pub cpu_s: f64,
    /// Peak resident memory of the process, in MiB.
    pub peak_rss_mib: f64,
    /// Bytes all nodes wrote on their links (memory links only; Noise and Yamux included,
    /// and everything else a node sends: DHT, identify, ping, mailboxes).
    pub bytes_sent: u64,
    /// The most one node wrote.
    pub bytes_sent_max_node: u64,
    /// `bytes_sent` per node per delivered message.
    pub bytes_per_node_per_message: f64,
    /// DHT lookups, when the scenario makes any.
    pub lookups: Option<LookupReport>,
    /// Memory-link ends open per running node at the end (about the connections each holds).
    pub links_per_node: f64,
}

/// What the DHT lookups showed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LookupReport {
    /// Lookups started (a node that was down skipped its turn).
    pub started: usize,
    /// Lookups that ended (the others were cut short by their node going down).
    pub finished: usize,
    /// Finished lookups that found a valid record.
    pub found: usize,
    /// Of those, found in the node's own store before any request (it is one of the nodes
    /// that keep the record): 0 hops, 0 ms.
    pub local: usize,
    /// `found / finished`.
    pub found_ratio: f64,
    /// Kademlia requests sent until the record came (all requests, when it did not): a
    /// stand-in for hops. p50, p95.
    pub hops: [f64; 2],
    /// Time until the record came (until the query ended, when it did not), in ms: p50,
    /// p95, p99.
    pub time_ms: [f64; 3],
    /// Time until the query ended, when the engine gets its answer, in ms: p50, p95, p99.
    pub time_to_end_ms: [f64; 3],
}

impl Report {
    /// The delivery results only (what must be the same for the same seed).
    pub fn outcome(&self) -> (usize, usize, usize, usize, usize, usize) {
        (
            self.sent,
            self.acknowledged,
            self.delivered,
            self.duplicates,
            self.lost,
            self.to_departed,
        )
    }

    /// What broke the scenario's expectations (empty: it passed).
    pub fn failures(&self, s: &Scenario) -> Vec<String> {
        let mut out = Vec::new();
        let expected = self.acknowledged;
        let ok = expected.saturating_sub(self.lost);
        if expected > 0 && (ok as f64) < s.expect.delivered * expected as f64 {
            out.push(format!(
                "delivered {ok} of {expected} acknowledged messages ({} lost); expected at least {:.1} %",
                self.lost,
                s.expect.delivered * 100.0
            ));
        }
        if self.duplicates > s.expect.duplicates {
            out.push(format!(
                "{} messages shown more than once (at most {} allowed)",
                self.duplicates, s.expect.duplicates
            ));
        }
        if let (Some(want), Some(l)) = (s.expect.lookups_found, &self.lookups)
            && l.found_ratio < want
        {
            out.push(format!(
                "DHT lookups found {} of {} records; expected at least {:.1} %",
                l.found,
                l.finished,
                want * 100.0
            ));
        }
        if self.acknowledged < self.sent.saturating_sub(self.to_departed) {
            out.push(format!(
                "only {} of the {} messages between nodes still around were acknowledged",
                self.acknowledged,
                self.sent.saturating_sub(self.to_departed)
            ));
        }
        out
    }

    /// The report for people.
    pub fn text(&self) -> String {
        let mut t = format!(
            "scenario {} (seed {}): {} nodes, {} restarts, {} partitions\n\
             messages: {} sent, {} acknowledged, {} delivered, {} duplicates, {} lost, {} from or to departed nodes\n\
             latency send → recipient: p50 {:.1} ms  p95 {:.1} ms  p99 {:.1} ms  max {:.1} ms\n\
             run: {:.1} s wall, {:.1} s CPU, peak RSS {:.0} MiB",
            self.scenario,
            self.seed,
            self.nodes,
            self.restarts,
            self.partitions,
            self.sent,
            self.acknowledged,
            self.delivered,
            self.duplicates,
            self.lost,
            self.to_departed,
            self.latency_ms[0],
            self.latency_ms[1],
            self.latency_ms[2],
            self.latency_ms[3],
            self.wall_s,
            self.cpu_s,
            self.peak_rss_mib
        );
        if self.bytes_sent > 0 {
            t.push_str(&format!(
                "\ntraffic: {:.1} MiB sent by all nodes (at most {:.1} MiB by one), \
                 {:.0} bytes per node per delivered message; {:.1} links open per node at the end",
                self.bytes_sent as f64 / 1048576.0,
                self.bytes_sent_max_node as f64 / 1048576.0,
                self.bytes_per_node_per_message,
                self.links_per_node
            ));
        }
        if let Some(l) = &self.lookups {
            t.push_str(&format!(
                "\nDHT lookups: {} started, {} finished, {} found ({:.1} %, {} in the node's own store); \
                 hops (requests) p50 {:.0}  p95 {:.0}; \
                 time to record p50 {:.1} ms  p95 {:.1} ms  p99 {:.1} ms; \
                 to query end p50 {:.1} ms  p95 {:.1} ms  p99 {:.1} ms",
                l.started,
                l.finished,
                l.found,
                l.found_ratio * 100.0,
                l.local,
                l.hops[0],
                l.hops[1],
                l.time_ms[0],
                l.time_ms[1],
                l.time_ms[2],
                l.time_to_end_ms[0],
                l.time_to_end_ms[1],
                l.time_to_end_ms[2]
            ));
        }
        t
    }
}

/// Run failures (not expectation failures: those are in the report).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// A node could not start or answer.
    #[error("node {node}: {reason}")]
    Node { node: usize, reason: String },
    /// Temporary files.
    #[error("cannot prepare a data directory: {0}")]
    Io(#[from] std::io::Error),
}

/// One simulated node.
struct Node {
    dir: PathBuf,
    /// A TCP port, or a memory-link number.
    port: u64,
    memory: bool,
    mailbox: bool,
    handle: Option<EngineHandle>,
    task: Option<tokio::task::JoinHandle<()>>,
    peer_id: String,
    code: String,
    /// The user's identity key (from the contact code).
    identity: Option<[u8; 32]>,
    /// Shaping and counters for its memory links (kept over restarts).
    sim: Option<kith_net::SimNet>,
}

/// A message event seen at a recipient: the message number and when.
type Seen = (usize, Instant);

fn free_port() -> std::io::Result<u64> {
    Ok(u64::from(
        std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port(),
    ))
}

/// Memory-link numbers, unique in the process (runs may follow each other).
pub(crate) static NEXT_MEMORY: std::sync::atomic::AtomicU64 =
    std::sync::atomic::AtomicU64::new(1 << 40);

pub(crate) fn addr(port: u64, memory: bool) -> Multiaddr {
    let text = if memory {
        format!("/memory/{port}")
    } else {
        format!("/ip4/127.0.0.1/tcp/{port}")
    };
    // A valid literal; parsing cannot fail.
    text.parse().unwrap_or_else(|_| Multiaddr::empty())
}

/// The message number in a simulated text (`sim <n>`).
fn number(text: &str) -> Option<usize> {
    text.strip_prefix("sim ")?.parse().ok()
}

impl Node {
    async fn start(
        &mut self,
        i: usize,
        boot: Option<Multiaddr>,
        seen: mpsc::Sender<(usize, Seen)>,
    ) -> Result<(), SimError> {
        let cfg = EngineConfig {
            // Many nodes in one process: a small page cache each.
            store_cache: 4 << 20,
            data_dir: self.dir.clone(),
            listen: vec![addr(self.port, self.memory)],
            bootstrap: boot.into_iter().collect(),
            mdns: false,
            mailbox: self.mailbox.then(MailboxConfig::default),
            reach: kith_engine::ReachConfig {
                memory: self.memory,
                sim: self.sim.clone(),
                ..Default::default()
            },
        };
        let (h, task) = Engine::start(cfg).await.map_err(|e| SimError::Node {
            node: i,
            reason: e.to_string(),
        })?;
        let info = h.info().await.map_err(|e| SimError::Node {
            node: i,
            reason: e.to_string(),
        })?;
        self.peer_id = info.peer_id;
        self.identity = kith_proto::contact::ContactCard::from_code(&info.code)
            .ok()
            .map(|c| c.identity);
        self.code = info.code;
        // Every message event, tagged with this node's index.
        let mut events = h.subscribe();
        tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(Event::Message { text, .. }) => {
                        if let Some(n) = number(&text)
                            && seen.send((i, (n, Instant::now()))).await.is_err()
                        {
                            break;
                        }
                    }
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(_) => break,
                }
            }
        });
        self.handle = Some(h);
        self.task = Some(task);
        Ok(())
    }

    async fn stop(&mut self) {
        if let Some(h) = self.handle.take() {
            h.shutdown().await;
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

/// What happens when, from the first send.
#[derive(Debug, Clone)]
enum Step {
    Send { from: usize, to: usize, n: usize },
    Down(usize),
    Up(usize),
    Cut(Vec<usize>, Vec<usize>, bool),
    Lookup { from: usize, of: usize },
}

pub(crate) fn proc_cpu_s() -> f64 {
    // utime and stime, fields 14 and 15 of /proc/self/stat, in clock ticks (100 per second on
    // Linux).
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let after = s.rsplit_once(')')?.1;
            let f: Vec<&str> = after.split_whitespace().collect();
            let u: f64 = f.get(11)?.parse().ok()?;
            let st: f64 = f.get(12)?.parse().ok()?;
            Some((u + st) / 100.0)
        })
        .unwrap_or(0.0)
}

fn rss_mib() -> f64 {
    status_kib("VmRSS:") / 1024.0
}

pub(crate) fn peak_rss_mib() -> f64 {
    status_kib("VmHWM:") / 1024.0
}

fn status_kib(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let l = s.lines().find(|l| l.starts_with(field))?;
            l.split_whitespace().nth(1)?.parse().ok()
        })
        .unwrap_or(0.0)
}

/// Whether a sender's state for a message is ✓ or better.
fn acked(status: Option<&String>) -> bool {
    matches!(
        status.map(String::as_str),
        Some("sent" | "delivered" | "read")
    )
}

/// Per node: the states of its own messages (by id), and how often each simulated message
/// number is shown as received.
type States = (
    HashMap<usize, HashMap<String, String>>,
    HashMap<usize, HashMap<usize, usize>>,
);

/// Reads every running node's conversations with its contacts.
async fn final_states(nodes: &[Node], pairs: &[(usize, usize)]) -> States {
    let mut status: HashMap<usize, HashMap<String, String>> = HashMap::new();
    let mut shown: HashMap<usize, HashMap<usize, usize>> = HashMap::new();
    for (i, node) in nodes.iter().enumerate() {
        let Some(h) = &node.handle else { continue };
        for &(a, b) in pairs {
            let other = match (a == i, b == i) {
                (true, _) => b,
                (_, true) => a,
                _ => continue,
            };
            let Ok(history) = h.history(format!("n{other}"), 100_000).await else {
                continue;
            };
            for v in history {
                if v.from == "me" {
                    status.entry(i).or_default().insert(v.id, v.status);
                } else if let Some(k) = number(&v.text) {
                    *shown.entry(i).or_default().entry(k).or_default() += 1;
                }
            }
        }
    }
    (status, shown)
}

/// Nodes started at once.
pub(crate) const START_TOGETHER: usize = 8;
/// Mailbox registrations made at once.
const REGISTER_TOGETHER: usize = 32;
/// Sends waiting for their engine's answer, at most.
const MAX_IN_FLIGHT_SENDS: usize = 256;
/// Nodes stopped at once at the end.
const STOP_TOGETHER: usize = 64;

/// A send that went out: message number, sender, recipient, when, and its id.
type SendDone = (usize, usize, usize, Instant, String);

/// Files a finished send.
fn record(
    sends: &mut [Option<(usize, usize, Instant, String)>],
    done: Result<Option<SendDone>, tokio::task::JoinError>,
) {
    if let Ok(Some((n, from, to, at, id))) = done
        && let Some(slot) = sends.get_mut(n)
    {
        *slot = Some((from, to, at, id));
    }
}

/// Tries per mailbox registration.
const REGISTER_TRIES: u32 = 5;

/// How long to wait for DHT lookups after the messages have settled: Kademlia's query
/// timeout (30 s) and some.
const LOOKUP_WAIT: Duration = Duration::from_secs(40);

fn lookup_report(started: usize, done: Vec<kith_net::Lookup>) -> LookupReport {
    let sorted = |f: &dyn Fn(&kith_net::Lookup) -> f64| {
        let mut v: Vec<f64> = done.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v
    };
    let hops = sorted(&|l| f64::from(l.requests));
    let time = sorted(&|l| l.time.as_secs_f64() * 1000.0);
    let end = sorted(&|l| l.time_to_end.as_secs_f64() * 1000.0);
    let found = done.iter().filter(|l| l.found).count();
    LookupReport {
        started,
        finished: done.len(),
        found,
        local: done.iter().filter(|l| l.found && l.requests == 0).count(),
        found_ratio: if done.is_empty() {
            0.0
        } else {
            found as f64 / done.len() as f64
        },
        hops: [pct(&hops, 0.5), pct(&hops, 0.95)],
        time_ms: [pct(&time, 0.5), pct(&time, 0.95), pct(&time, 0.99)],
        time_to_end_ms: [pct(&end, 0.5), pct(&end, 0.95), pct(&end, 0.99)],
    }
}

pub(crate) fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Runs a scenario to the end and reports.
pub async fn run(s: &Scenario) -> Result<Report, SimError> {
    run_with_progress(s, &|_| {}).await
}

/// Open link ends summed over the nodes.
fn open_links(nodes: &[Node]) -> u64 {
    nodes
        .iter()
        .filter_map(|n| n.sim.as_ref())
        .map(kith_net::SimNet::open_links)
        .sum()
}

/// Link ends opened so far, summed over the nodes.
fn links_opened(nodes: &[Node]) -> u64 {
    nodes
        .iter()
        .filter_map(|n| n.sim.as_ref())
        .map(kith_net::SimNet::links_opened)
        .sum()
}

/// Like [`run`], telling `progress` how far it got (a line at a time, for people).
pub async fn run_with_progress(s: &Scenario, progress: &dyn Fn(&str)) -> Result<Report, SimError> {
    let t_start = Instant::now();
    let cpu0 = proc_cpu_s();
    let say = |nodes: &[Node], what: &str| {
        progress(&format!(
            "{:7.1} s  {what}  (RSS {:.0} MiB, CPU {:.0} s, link ends: {} open, {} opened)",
            t_start.elapsed().as_secs_f64(),
            rss_mib(),
            proc_cpu_s() - cpu0,
            open_links(nodes),
            links_opened(nodes)
        ));
    };
    let mut rng = StdRng::seed_from_u64(s.seed);
    let tmp = tempfile::tempdir()?;
    let (seen_tx, mut seen_rx) = mpsc::channel::<(usize, Seen)>(65_536);

    // Nodes: the first `mailboxes` serve as mailboxes; node 0 is everyone's DHT bootstrap.
    let mut nodes = Vec::with_capacity(s.nodes);
    for i in 0..s.nodes {
        let dir = tmp.path().join(format!("n{i}"));
        std::fs::create_dir_all(&dir)?;
        let memory = s.transport == Transport::Memory;
        let port = if memory {
            NEXT_MEMORY.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        } else {
            free_port()?
        };
        nodes.push(Node {
            dir,
            port,
            memory,
            mailbox: i < s.mailboxes,
            handle: None,
            task: None,
            peer_id: String::new(),
            code: String::new(),
            identity: None,
            sim: memory.then(|| {
                let links = s.links.as_ref();
                let mut sim =
                    kith_net::SimNet::new(links.filter(|l| l.shapes()).map(|l| l.shape(s.seed, i)));
                sim.idle_timeout = links.and_then(|l| l.idle_ms).map(Duration::from_millis);
                sim.kad_bootstrap_every = (s.dht.as_ref())
                    .and_then(|d| d.bootstrap_every_s)
                    .map(Duration::from_secs);
                sim
            }),
        });
    }
    let boot_of = |nodes: &[Node]| -> Option<Multiaddr> {
        format!(
            "{}/p2p/{}",
            addr(nodes[0].port, nodes[0].memory),
            nodes[0].peer_id
        )
        .parse()
        .ok()
    };
    nodes[0].start(0, None, seen_tx.clone()).await?;
    let boot = boot_of(&nodes);
    // A few nodes start at once: a start waits on disk writes (fsync) as much as on CPU.
    let total = nodes.len();
    let mut next = 1;
    while next < total {
        let end = (next + START_TOGETHER).min(total);
        let started = futures::future::join_all(
            nodes[next..end]
                .iter_mut()
                .zip(next..end)
                .map(|(n, i)| n.start(i, boot.clone(), seen_tx.clone())),
        )
        .await;
        started.into_iter().collect::<Result<Vec<()>, _>>()?;
        if end / 100 > next / 100 || end == total {
            say(&nodes, &format!("{end} of {total} nodes started"));
        }
        next = end;
    }
    let users: Vec<usize> = (s.mailboxes..s.nodes).collect();
    // Mailboxes: each user registers with one, round robin.
    // A registration is a round trip to the mailbox (several on slow links), so a few go at
    // once.
    if s.mailboxes > 0 {
        let jobs: Vec<(usize, EngineHandle, String)> = users
            .iter()
            .enumerate()
            .filter_map(|(k, &u)| {
                let code = nodes[k % s.mailboxes].code.clone();
                Some((u, nodes[u].handle.clone()?, code))
            })
            .collect();
        for chunk in jobs.chunks(REGISTER_TOGETHER) {
            // A busy process can lose a registration's connection; a user would try again.
            let done = futures::future::join_all(chunk.iter().map(|(u, h, code)| async move {
                let mut tries = 1;
                loop {
                    match h.add_mailbox(code.clone(), None).await {
                        Ok(_) => return Ok(()),
                        Err(_) if tries < REGISTER_TRIES => {
                            tries += 1;
                            tokio::time::sleep(Duration::from_secs(2)).await;
                        }
                        Err(e) => {
                            return Err(SimError::Node {
                                node: *u,
                                reason: format!("mailbox registration ({tries} tries): {e}"),
                            });
                        }
                    }
                }
            }))
            .await;
            done.into_iter().collect::<Result<Vec<_>, _>>()?;
        }
        say(&nodes, "users registered with mailboxes");
    }
    // Contact pairs among the users.
    let mut pairs: Vec<(usize, usize)> = Vec::new();
    while pairs.len() < s.pairs {
        let a = users[rng.random_range(0..users.len())];
        let b = users[rng.random_range(0..users.len())];
        if a != b && !pairs.contains(&(a, b)) && !pairs.contains(&(b, a)) {
            pairs.push((a, b));
        }
        if pairs.len() >= users.len() * (users.len() - 1) / 2 {
            break;
        }
    }
    for &(a, b) in &pairs {
        let (ca, cb) = (nodes[a].code.clone(), nodes[b].code.clone());
        for (me, them, code) in [(a, b, cb), (b, a, ca)] {
            if let Some(h) = &nodes[me].handle {
                h.add_contact(code, format!("n{them}"))
                    .await
                    .map_err(|e| SimError::Node {
                        node: me,
                        reason: format!("adding a contact: {e}"),
                    })?;
            }
        }
    }

    say(&nodes, &format!("{} contact pairs added", pairs.len()));
    // The plan, all from the seed.
    let mut plan: Vec<(u64, Step)> = Vec::new();
    let gap = s.send_over_ms as f64 / s.messages as f64;
    for n in 0..s.messages {
        let (a, b) = pairs[rng.random_range(0..pairs.len())];
        let (from, to) = if rng.random_bool(0.5) { (a, b) } else { (b, a) };
        plan.push(((n as f64 * gap) as u64, Step::Send { from, to, n }));
    }
    let mut departed = vec![false; s.nodes];
    let mut restarts = 0;
    if let Some(c) = &s.churn {
        let mut churned = users.clone();
        churned.shuffle(&mut rng);
        churned.truncate((c.fraction * users.len() as f64).round() as usize);
        for &u in &churned {
            let down = rng.random_range(c.down_at_ms.0..=c.down_at_ms.1);
            let back = down + rng.random_range(c.down_for_ms.0..=c.down_for_ms.1);
            plan.push((down, Step::Down(u)));
            if rng.random_bool(c.gone_for_good) {
                departed[u] = true;
            } else {
                plan.push((back, Step::Up(u)));
                restarts += 1;
            }
        }
    }
    for p in &s.partition {
        let mut all: Vec<usize> = (0..s.nodes).collect();
        all.shuffle(&mut rng);
        let half = all.split_off(all.len() / 2);
        plan.push((p.at_ms, Step::Cut(all.clone(), half.clone(), true)));
        plan.push((p.heal_ms, Step::Cut(all, half, false)));
    }
    if let Some(d) = &s.dht {
        let gap = s.send_over_ms as f64 / d.lookups.max(1) as f64;
        for k in 0..d.lookups {
            let from = users[rng.random_range(0..users.len())];
            let mut of = users[rng.random_range(0..users.len())];
            if of == from {
                of = users[(users.iter().position(|u| *u == from).unwrap_or(0) + 1) % users.len()];
            }
            plan.push(((k as f64 * gap) as u64, Step::Lookup { from, of }));
        }
    }
    // A stable sort: steps at the same time keep the order they were planned in.
    plan.sort_by_key(|(t, _)| *t);

    // Run it.
    let t0 = Instant::now();
    let mut sends: Vec<Option<(usize, usize, Instant, String)>> = vec![None; s.messages];
    let mut in_flight: VecDeque<(usize, tokio::task::JoinHandle<Option<SendDone>>)> =
        VecDeque::new();
    // Per node: lookups started, and those cut short by the node going down.
    let mut lookups_started = vec![0usize; s.nodes];
    let mut lookups_cut = vec![0usize; s.nodes];
    let steps = plan.len();
    for (k, (at, step)) in plan.into_iter().enumerate() {
        if k > 0 && k % (steps / 10).max(1) == 0 {
            say(&nodes, &format!("{k} of {steps} planned steps done"));
        }
        let when = t0 + Duration::from_millis(at);
        tokio::time::sleep_until(when.into()).await;
        match step {
            Step::Send { from, to, n } => {
                // A node that is down does not send.
                let Some(h) = nodes[from].handle.clone() else {
                    continue;
                };
                // Sends do not hold up the plan (a busy engine answers late); a node's own
                // sends are awaited before it goes down, so the same plan sends the same.
                if in_flight.len() >= MAX_IN_FLIGHT_SENDS
                    && let Some((_, t)) = in_flight.pop_front()
                {
                    record(&mut sends, t.await);
                }
                in_flight.push_back((
                    from,
                    tokio::spawn(async move {
                        let sent = h.send(format!("n{to}"), format!("sim {n}")).await.ok()?;
                        Some((n, from, to, Instant::now(), sent.id))
                    }),
                ));
            }
            Step::Down(u) => {
                let (mine, others): (VecDeque<_>, VecDeque<_>) =
                    in_flight.drain(..).partition(|(f, _)| *f == u);
                in_flight = others;
                for (_, t) in mine {
                    record(&mut sends, t.await);
                }
                let done = nodes[u].sim.as_ref().map_or(0, |sim| sim.lookups().len());
                lookups_cut[u] = lookups_started[u].saturating_sub(done);
                nodes[u].stop().await;
            }
            Step::Up(u) => nodes[u].start(u, boot.clone(), seen_tx.clone()).await?,
            Step::Lookup { from, of } => {
                let (Some(sim), Some(id), true) = (
                    &nodes[from].sim,
                    nodes[of].identity,
                    nodes[from].handle.is_some(),
                ) else {
                    continue;
                };
                if sim.lookup(&id).is_ok() {
                    lookups_started[from] += 1;
                }
            }
            Step::Cut(left, right, cut) => {
                let ids = |side: &[usize]| -> Vec<String> {
                    side.iter().map(|&i| nodes[i].peer_id.clone()).collect()
                };
                let (lp, rp) = (ids(&left), ids(&right));
                for (side, other) in [(&left, &rp), (&right, &lp)] {
                    for &i in side.iter() {
                        if let Some(h) = &nodes[i].handle {
                            let _ = h.cut_links(other.clone(), cut).await;
                        }
                    }
                }
            }
        }
    }

    for (_, t) in in_flight.drain(..) {
        record(&mut sends, t.await);
    }
    say(&nodes, "all steps done; waiting for deliveries");
    // Settle: wait until every message to a node still around has arrived, or time is up.
    let mut arrivals: HashMap<usize, Vec<Instant>> = HashMap::new();
    let expected: Vec<usize> = (0..s.messages)
        .filter(|&n| {
            sends[n]
                .as_ref()
                .is_some_and(|(from, to, _, _)| !departed[*to] && !departed[*from])
        })
        .collect();
    let deadline = Instant::now() + Duration::from_millis(s.expect.settle_ms);
    loop {
        while let Ok((node, (n, at))) = seen_rx.try_recv() {
            if sends[n].as_ref().is_some_and(|(_, to, _, _)| *to == node) {
                arrivals.entry(n).or_default().push(at);
            }
        }
        if expected.iter().all(|n| arrivals.contains_key(n)) || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Acknowledgements travel back after the deliveries: read the senders' states until
    // every message to a node still around shows ✓ or ✓✓ (or the settle time is over).
    let (status_by_node, shown_by_node) = loop {
        let states = final_states(&nodes, &pairs).await;
        let all_acked = expected.iter().all(|n| {
            sends[*n]
                .as_ref()
                .is_some_and(|(from, _, _, id)| acked(states.0.get(from).and_then(|m| m.get(id))))
        });
        if all_acked || Instant::now() >= deadline {
            break states;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    say(&nodes, "deliveries settled; waiting for DHT lookups");
    // Lookups end within Kademlia's query timeout; wait for those not cut short.
    let lookup_deadline = Instant::now() + LOOKUP_WAIT;
    loop {
        let pending = nodes.iter().enumerate().any(|(i, n)| {
            let done = n.sim.as_ref().map_or(0, |sim| sim.lookups().len());
            done + lookups_cut[i] < lookups_started[i]
        });
        if !pending || Instant::now() >= lookup_deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let lookups = s.dht.as_ref().filter(|d| d.lookups > 0).map(|_| {
        let done = nodes
            .iter()
            .filter_map(|n| n.sim.as_ref())
            .flat_map(|sim| sim.lookups())
            .collect();
        lookup_report(lookups_started.iter().sum(), done)
    });
    let mut acknowledged = 0;
    let mut duplicates = 0;
    let mut lost = 0;
    let mut to_departed = 0;
    let mut latencies: Vec<f64> = Vec::new();
    for (n, entry) in sends.iter().enumerate() {
        let Some((from, to, at, id)) = entry else {
            continue;
        };
        let is_acked = acked(status_by_node.get(from).and_then(|m| m.get(id)));
        let shown = shown_by_node
            .get(to)
            .and_then(|m| m.get(&n))
            .copied()
            .unwrap_or(0);
        if shown > 1 {
            duplicates += 1;
        }
        if departed[*to] || departed[*from] {
            // A node gone for good takes its outbox with it, and mail for it may or may not
            // have reached a mailbox yet (timing): these are counted apart.
            to_departed += 1;
        } else {
            if is_acked {
                acknowledged += 1;
            }
            if is_acked && shown == 0 {
                lost += 1;
            }
        }
        if let Some(first) = arrivals.get(&n).and_then(|v| v.iter().min()) {
            latencies.push(first.saturating_duration_since(*at).as_secs_f64() * 1000.0);
        }
    }
    latencies.sort_by(f64::total_cmp);
    let running = nodes.iter().filter(|n| n.handle.is_some()).count();
    let links_per_node = open_links(&nodes) as f64 / running.max(1) as f64;
    let traffic: Vec<u64> = nodes
        .iter()
        .filter_map(|n| n.sim.as_ref())
        .map(|sim| sim.traffic().0)
        .collect();
    let bytes_sent: u64 = traffic.iter().sum();
    let delivered = (0..s.messages)
        .filter(|n| {
            sends[*n].as_ref().is_some_and(|(_, to, _, _)| {
                shown_by_node
                    .get(to)
                    .and_then(|m| m.get(n))
                    .is_some_and(|c| *c > 0)
            })
        })
        .count();
    let report = Report {
        scenario: s.name.clone(),
        seed: s.seed,
        nodes: s.nodes,
        sent: sends.iter().filter(|x| x.is_some()).count(),
        acknowledged,
        delivered,
        duplicates,
        lost,
        to_departed,
        restarts,
        partitions: s.partition.len(),
        latency_ms: [
            pct(&latencies, 0.5),
            pct(&latencies, 0.95),
            pct(&latencies, 0.99),
            latencies.last().copied().unwrap_or(0.0),
        ],
        wall_s: t_start.elapsed().as_secs_f64(),
        cpu_s: proc_cpu_s() - cpu0,
        peak_rss_mib: peak_rss_mib(),
        bytes_sent,
        bytes_sent_max_node: traffic.iter().copied().max().unwrap_or(0),
        bytes_per_node_per_message: if delivered > 0 {
            bytes_sent as f64 / s.nodes as f64 / delivered as f64
        } else {
            0.0
        },
        lookups,
        links_per_node,
    };
    say(&nodes, "stopping the nodes");
    // A stop waits up to a second for goodbyes to contacts: stop many at once.
    for chunk in nodes.chunks_mut(STOP_TOGETHER) {
        futures::future::join_all(chunk.iter_mut().map(Node::stop)).await;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenarios_are_checked() {
        let ok =
            "name = \"x\"\nseed = 1\nnodes = 4\npairs = 2\nmessages = 10\nsend_over_ms = 100\n";
        assert!(Scenario::parse(ok).is_ok());
        assert!(Scenario::parse(&ok.replace("nodes = 4", "nodes = 1")).is_err());
        assert!(Scenario::parse(&format!("{ok}bogus = 1\n")).is_err());
        assert!(Scenario::parse(&format!("{ok}[[partition]]\nat_ms = 5\nheal_ms = 1\n")).is_err());
        assert!(
            Scenario::parse(&format!(
                "{ok}[churn]\nfraction = 2.0\ndown_at_ms = [0, 1]\ndown_for_ms = [0, 1]\n"
            ))
            .is_err()
        );
    }

    #[test]
    fn link_and_dht_settings_are_checked() {
        let ok =
            "name = \"x\"\nseed = 1\nnodes = 4\npairs = 2\nmessages = 10\nsend_over_ms = 100\n";
        let links = "[links]\nlatency_ms = 50\njitter_ms = 10\nloss = 0.01\nbandwidth_kbps = 800\n";
        let s = Scenario::parse(&format!("{ok}{links}[dht]\nlookups = 5\n")).unwrap();
        let shape = s.links.as_ref().unwrap().shape(s.seed, 3);
        assert_eq!(shape.latency, Duration::from_millis(50));
        assert_eq!(shape.jitter, Duration::from_millis(10));
        assert_eq!(shape.rto, kith_net::shaped::DEFAULT_RTO);
        assert_eq!(
            shape.bandwidth,
            Some(100_000),
            "800 kbit/s is 100,000 bytes/s"
        );
        assert_ne!(
            shape.seed,
            s.links.as_ref().unwrap().shape(s.seed, 4).seed,
            "each node draws its own"
        );
        for bad in [
            "loss = 0.01", // on TCP
            "loss = 1.5",
            "latency_ms = -1",
            "latency_ms = 1e9",
            "bandwidth_kbps = 0",
        ] {
            let text = if bad == "loss = 0.01" {
                format!("transport = \"tcp\"\n{ok}[links]\n{bad}\n")
            } else {
                format!("{ok}[links]\n{bad}\n")
            };
            assert!(Scenario::parse(&text).is_err(), "{bad}");
        }
        assert!(Scenario::parse(&format!("{ok}[dht]\nlookups = 100001\n")).is_err());
        assert!(Scenario::parse(&format!("{ok}[links]\nlatency = 5\n")).is_err());
        let big = Scenario::parse(&format!(
            "{ok}[links]\nidle_ms = 10000\n[dht]\nbootstrap_every_s = 3600\n"
        ))
        .unwrap();
        assert!(
            !big.links.as_ref().unwrap().shapes(),
            "an idle timeout is no shaping"
        );
        assert!(Scenario::parse(&format!("{ok}[links]\nidle_ms = 5\n")).is_err());
        assert!(Scenario::parse(&format!("{ok}[dht]\nbootstrap_every_s = 0\n")).is_err());
    }

    #[test]
    fn failures_name_what_broke() {
        let s = Scenario::parse(
            "name = \"x\"\nseed = 1\nnodes = 4\npairs = 2\nmessages = 10\nsend_over_ms = 100\n",
        )
        .unwrap();
        let mut r = Report {
            scenario: "x".into(),
            seed: 1,
            nodes: 4,
            sent: 10,
            acknowledged: 10,
            delivered: 10,
            duplicates: 0,
            lost: 0,
            to_departed: 0,
            restarts: 0,
            partitions: 0,
            latency_ms: [0.0; 4],
            wall_s: 0.0,
            cpu_s: 0.0,
            peak_rss_mib: 0.0,
            bytes_sent: 0,
            bytes_sent_max_node: 0,
            bytes_per_node_per_message: 0.0,
            lookups: None,
            links_per_node: 0.0,
        };
        assert!(r.failures(&s).is_empty());
        r.lost = 1;
        r.duplicates = 1;
        let f = r.failures(&s);
        assert_eq!(f.len(), 2, "{f:?}");
        let mut s = s;
        s.expect.lookups_found = Some(0.9);
        r.lookups = Some(lookup_report(
            4,
            vec![
                kith_net::Lookup {
                    found: true,
                    requests: 3,
                    time: Duration::from_millis(20),
                    time_to_end: Duration::from_millis(90),
                },
                kith_net::Lookup {
                    found: false,
                    requests: 9,
                    time: Duration::from_millis(900),
                    time_to_end: Duration::from_millis(900),
                },
            ],
        ));
        let f = r.failures(&s);
        assert_eq!(f.len(), 3, "one lookup in two found is too few: {f:?}");
        assert!(f[2].contains("found 1 of 2"), "{f:?}");
    }
}
