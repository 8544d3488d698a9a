//! Scenario files of `net-sim run`: what they may say ([`Scenario`]) and how they are
//! checked ([`Scenario::parse`]); `net-sim/README.md` documents each field.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::LinkShape;
use crate::links;

/// Most nodes one scenario may run.
pub const MAX_NODES: usize = 2000;
/// Most messages one scenario may send.
pub const MAX_MESSAGES: usize = 1_000_000;
/// Most DHT lookups one scenario may make.
pub const MAX_LOOKUPS: usize = links::MAX_LOOKUPS;
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

/// How every memory link behaves, per direction (see [`links::shaped`] for the model).
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
    pub(crate) fn shapes(&self) -> bool {
        self.latency_ms > 0.0
            || self.jitter_ms > 0.0
            || self.loss > 0.0
            || self.bandwidth_kbps.is_some()
    }

    /// The shape of node `node`'s links; its draws start from the scenario's seed and the
    /// node's number.
    pub(crate) fn shape(&self, seed: u64, node: usize) -> LinkShape {
        let ms = |v: f64| Duration::from_secs_f64(v / 1000.0);
        LinkShape {
            latency: ms(self.latency_ms),
            jitter: ms(self.jitter_ms),
            loss: self.loss,
            rto: self.rto_ms.map_or(links::shaped::DEFAULT_RTO, ms),
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
    /// DHT bootstrap nodes (nodes 0 to B-1, the mailboxes first): each other node joins
    /// through two of them, in turn, so that no one node is everyone's way in. 1 when not
    /// given (node 0 for everyone).
    #[serde(default)]
    pub bootstraps: Option<usize>,
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
        if let Some(d) = &s.dht
            && d.bootstraps.is_some_and(|b| b == 0 || b > s.nodes)
        {
            return bad("dht.bootstraps must be 1 to the number of nodes");
        }
        Ok(s)
    }
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
        assert_eq!(shape.rto, links::shaped::DEFAULT_RTO);
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
}
