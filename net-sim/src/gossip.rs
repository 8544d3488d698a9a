//! Gossip scenarios: how one big group's gossip layer carries messages, with a thousand or
//! more members in one process.
//!
//! Each member is a [`GossipNode`]: Kith's gossipsub with the settings, topic scores and
//! memory links of a full node, and nothing else (see [`crate::gossip_node`]). Members dial
//! a few others as a full member does (`GROUP_DIALS` in the engine), senders also hold a
//! link to every member (the links their session keys went over), and messages are frames
//! of a typical group message's size. The report gives delivery, latency from publish to
//! each member, bytes and duplicate copies per member per message.
//!
//! What a full member adds, each on its own machine, is local: checking and decrypting a
//! frame and one store write (`cargo bench -p kith-crypto` and the group scenarios measure
//! those); catch-up from other members and mailboxes is not exercised here.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::gossip_node::{GossipNode, Received};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::{Links, ScenarioError, SimError, SimNet, pct, peak_rss_mib, proc_cpu_s};

/// Members started at once (a gossip node's start is cheap).
const START_TOGETHER: usize = 64;
/// Dials queued before the harness lets the nodes run.
const DIAL_BURST: usize = 64;

/// A gossip scenario; read from a TOML file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GossipScenario {
    /// A name for the report.
    pub name: String,
    /// Every random choice comes from this.
    pub seed: u64,
    /// Members of the group.
    pub members: usize,
    /// How many members send (the first ones).
    pub senders: usize,
    /// Messages in all, each from a random sender.
    pub messages: usize,
    /// Sends are spread evenly over this many milliseconds.
    pub send_over_ms: u64,
    /// Bytes of each frame (a short text message's group frame is about 400).
    #[serde(default = "default_frame")]
    pub frame_bytes: usize,
    /// Members each member dials at the start (a full member dials 8).
    #[serde(default = "default_dials")]
    pub dials: usize,
    /// Senders also dial every member, as their key shares do.
    #[serde(default = "default_true")]
    pub senders_dial_all: bool,
    /// Time for links and meshes to form before the first message.
    #[serde(default = "default_form")]
    pub form_ms: u64,
    /// How long to wait for everything to arrive after the last send.
    pub settle_ms: u64,
    /// How every link behaves; instant when absent.
    #[serde(default)]
    pub links: Option<Links>,
}

fn default_frame() -> usize {
    400
}

fn default_dials() -> usize {
    8
}

fn default_true() -> bool {
    true
}

fn default_form() -> u64 {
    15_000
}

impl GossipScenario {
    /// Parses and checks a scenario.
    pub fn parse(text: &str) -> Result<Self, ScenarioError> {
        let s: GossipScenario =
            toml::from_str(text).map_err(|e| ScenarioError::Parse(e.to_string()))?;
        let bad = |m: &str| Err(ScenarioError::Invalid(m.to_string()));
        if s.members < 3 || s.members > 10_000 {
            return bad("members must be 3 to 10,000");
        }
        if s.senders == 0 || s.senders >= s.members {
            return bad("senders must be 1 to members - 1");
        }
        if s.messages == 0 || s.messages > 100_000 {
            return bad("messages must be 1 to 100,000");
        }
        if s.frame_bytes < 16 || s.frame_bytes > kith_proto::groupwire::MAX_GROUP_FRAME {
            return bad("frame_bytes must be 16 to the largest group frame");
        }
        if s.dials == 0 || s.dials >= s.members {
            return bad("dials must be 1 to members - 1");
        }
        Ok(s)
    }
}

/// What a gossip run showed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GossipReport {
    /// The scenario's name.
    pub scenario: String,
    /// Its seed.
    pub seed: u64,
    /// Members.
    pub members: usize,
    /// Messages published.
    pub sent: usize,
    /// (member, message) pairs that should arrive: every message at every other member.
    pub expected: usize,
    /// Of those, arrived.
    pub delivered: usize,
    /// Latency from publish to each member, ms: p50, p95, p99, max.
    pub latency_ms: [f64; 4],
    /// Bytes all members sent on their links while the messages flowed (gossip control and
    /// keep-alives included), per member per message.
    pub bytes_sent_per_member_per_message: f64,
    /// Copies a member received beyond the first, per member per message.
    pub duplicates_per_member_per_message: f64,
    /// Link ends open when the messages started, per member.
    pub links_per_member: f64,
    /// Wall time of the run, s.
    pub wall_s: f64,
    /// CPU time of the process, s.
    pub cpu_s: f64,
    /// Peak resident memory, MiB.
    pub peak_rss_mib: f64,
}

impl GossipReport {
    /// What broke the expectations (empty: it passed).
    pub fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.delivered < self.expected {
            out.push(format!(
                "{} of {} (member, message) deliveries missing",
                self.expected - self.delivered,
                self.expected
            ));
        }
        out
    }

    /// The report for people.
    pub fn text(&self) -> String {
        format!(
            "gossip scenario {} (seed {}): {} members, {:.1} link ends each\n\
             messages: {} sent, {}/{} member deliveries ({:.2} %)\n\
             latency publish → member: p50 {:.1} ms  p95 {:.1} ms  p99 {:.1} ms  max {:.1} ms\n\
             per member per message: {:.0} bytes sent, {:.2} duplicate copies received\n\
             run: {:.1} s wall, {:.1} s CPU, peak RSS {:.0} MiB",
            self.scenario,
            self.seed,
            self.members,
            self.links_per_member,
            self.sent,
            self.delivered,
            self.expected,
            if self.expected > 0 {
                self.delivered as f64 * 100.0 / self.expected as f64
            } else {
                100.0
            },
            self.latency_ms[0],
            self.latency_ms[1],
            self.latency_ms[2],
            self.latency_ms[3],
            self.bytes_sent_per_member_per_message,
            self.duplicates_per_member_per_message,
            self.wall_s,
            self.cpu_s,
            self.peak_rss_mib
        )
    }
}

/// A frame: the message number, then filler (distinct per message, so ids differ).
fn frame(n: usize, len: usize, rng: &mut StdRng) -> Vec<u8> {
    let mut f = vec![0u8; len];
    f[..8].copy_from_slice(&(n as u64).to_le_bytes());
    rng.fill(&mut f[8..]);
    f
}

fn number(data: &[u8]) -> Option<usize> {
    let head: [u8; 8] = data.get(..8)?.try_into().ok()?;
    usize::try_from(u64::from_le_bytes(head)).ok()
}

/// Runs a gossip scenario to the end and reports.
pub async fn run_gossip(s: &GossipScenario) -> Result<GossipReport, SimError> {
    let t_start = Instant::now();
    let cpu0 = proc_cpu_s();
    let mut rng = StdRng::seed_from_u64(s.seed);
    let (tx, mut rx) = mpsc::channel::<Received>(1 << 20);
    let topic = "kith-gossip-sim";
    let sims: Vec<SimNet> = (0..s.members)
        .map(|i| {
            let mut sim = SimNet::new(s.links.as_ref().map(|l| l.shape(s.seed, i)));
            sim.idle_timeout = s
                .links
                .as_ref()
                .and_then(|l| l.idle_ms)
                .map(Duration::from_millis);
            sim
        })
        .collect();
    let mut nodes: Vec<GossipNode> = Vec::with_capacity(s.members);
    for start in (0..s.members).step_by(START_TOGETHER) {
        let end = (start + START_TOGETHER).min(s.members);
        let started = futures::future::join_all((start..end).map(|i| {
            let port = crate::node::memory_port();
            GossipNode::start(i, port, topic, &sims[i], tx.clone())
        }))
        .await;
        for (i, n) in (start..end).zip(started) {
            nodes.push(n.map_err(|e| SimError::Node {
                node: i,
                reason: e.to_string(),
            })?);
        }
    }
    // Links: each member dials a few random others; senders dial everyone.
    let dial = |from: usize, to: usize| {
        nodes[from]
            .dial(nodes[to].addr.clone())
            .map_err(|e| SimError::Node {
                node: from,
                reason: e.to_string(),
            })
    };
    let all: Vec<usize> = (0..s.members).collect();
    for i in 0..s.members {
        let targets: Vec<usize> = if i < s.senders && s.senders_dial_all {
            all.iter().copied().filter(|j| *j != i).collect()
        } else {
            let mut others = all.clone();
            others.shuffle(&mut rng);
            others
                .into_iter()
                .filter(|j| *j != i)
                .take(s.dials)
                .collect()
        };
        for chunk in targets.chunks(DIAL_BURST) {
            for &j in chunk {
                dial(i, j)?;
            }
            // Let the node's queue drain between bursts.
            tokio::task::yield_now().await;
        }
    }
    tokio::time::sleep(Duration::from_millis(s.form_ms)).await;
    let links_per_member =
        sims.iter().map(|m| m.open_links()).sum::<u64>() as f64 / s.members as f64;

    let counts = |sims: &[SimNet]| {
        sims.iter().fold((0u64, 0u64), |(b, d), m| {
            (b + m.traffic().0, d + m.gossip().duplicates())
        })
    };
    let before = counts(&sims);
    let gap = s.send_over_ms as f64 / s.messages as f64;
    let t0 = Instant::now();
    let mut sends: Vec<Option<(usize, Instant)>> = vec![None; s.messages];
    for (n, sent) in sends.iter_mut().enumerate() {
        let from = rng.random_range(0..s.senders);
        let data = frame(n, s.frame_bytes, &mut rng);
        tokio::time::sleep_until((t0 + Duration::from_millis((n as f64 * gap) as u64)).into())
            .await;
        if nodes[from].publish(data).is_ok() {
            *sent = Some((from, Instant::now()));
        }
    }
    let expected: usize = sends.iter().flatten().count() * (s.members - 1);
    let mut first: HashMap<(usize, usize), Instant> = HashMap::new();
    let deadline = Instant::now() + Duration::from_millis(s.settle_ms);
    loop {
        while let Ok(r) = rx.try_recv() {
            if let Some(n) = number(&r.data) {
                first.entry((r.node, n)).or_insert(r.at);
            }
        }
        if first.len() >= expected || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let after = counts(&sims);
    let mut latencies: Vec<f64> = Vec::with_capacity(first.len());
    let mut delivered = 0;
    for ((node, n), at) in &first {
        if let Some(Some((from, sent_at))) = sends.get(*n)
            && from != node
        {
            delivered += 1;
            latencies.push(at.saturating_duration_since(*sent_at).as_secs_f64() * 1000.0);
        }
    }
    latencies.sort_by(f64::total_cmp);
    let per = (sends.iter().flatten().count() * s.members).max(1) as f64;
    let report = GossipReport {
        scenario: s.name.clone(),
        seed: s.seed,
        members: s.members,
        sent: sends.iter().flatten().count(),
        expected,
        delivered,
        latency_ms: [
            pct(&latencies, 0.5),
            pct(&latencies, 0.95),
            pct(&latencies, 0.99),
            latencies.last().copied().unwrap_or(0.0),
        ],
        bytes_sent_per_member_per_message: after.0.saturating_sub(before.0) as f64 / per,
        duplicates_per_member_per_message: after.1.saturating_sub(before.1) as f64 / per,
        links_per_member,
        wall_s: t_start.elapsed().as_secs_f64(),
        cpu_s: proc_cpu_s() - cpu0,
        peak_rss_mib: peak_rss_mib(),
    };
    drop(nodes);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_carry_their_number_and_differ() {
        let mut rng = StdRng::seed_from_u64(1);
        let a = frame(7, 400, &mut rng);
        let b = frame(7, 400, &mut rng);
        assert_eq!(a.len(), 400);
        assert_eq!(number(&a), Some(7));
        assert_ne!(
            a, b,
            "two frames with one number must still have distinct ids"
        );
        assert_eq!(number(&[1, 2, 3]), None);
    }

    #[test]
    fn scenarios_are_checked() {
        let ok = "name='g'\nseed=1\nmembers=10\nsenders=2\nmessages=5\nsend_over_ms=100\nsettle_ms=100\n";
        assert!(GossipScenario::parse(ok).is_ok());
        assert!(GossipScenario::parse(&ok.replace("members=10", "members=2")).is_err());
        assert!(GossipScenario::parse(&ok.replace("senders=2", "senders=10")).is_err());
        assert!(GossipScenario::parse(&format!("{ok}dials=10\n")).is_err());
        assert!(GossipScenario::parse(&format!("{ok}frame_bytes=8\n")).is_err());
    }

    /// A small group on instant links: every member gets every message, and the duplicate
    /// counter sees the copies the mesh forwards.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_small_group_gets_every_message() {
        let s = GossipScenario::parse(
            "name='t'\nseed=3\nmembers=12\nsenders=2\nmessages=10\nsend_over_ms=500\n\
             settle_ms=20000\nform_ms=3000\ndials=4\n",
        )
        .unwrap();
        let r = run_gossip(&s).await.unwrap();
        assert_eq!(r.sent, 10);
        assert_eq!(r.expected, 10 * 11);
        assert_eq!(r.delivered, r.expected, "{}", r.text());
        assert!(r.bytes_sent_per_member_per_message > 0.0);
        assert!(r.links_per_member >= 4.0, "{}", r.text());
        // Senders publish to every member and members forward to their mesh: copies beyond
        // the first must show up in the counter.
        assert!(r.duplicates_per_member_per_message > 0.0, "{}", r.text());
    }
}
