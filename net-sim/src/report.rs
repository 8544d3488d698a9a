//! What a run of `net-sim run` showed ([`Report`]) and the checks against its scenario's
//! expectations ([`Report::failures`]).

use kith_net::Lookup;
use serde::{Deserialize, Serialize};

use crate::Scenario;

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
    /// Link ends the nodes opened or accepted over the whole run (a connection is two).
    #[serde(default)]
    pub links_opened: u64,
    /// Of those, from the first planned step to the report.
    #[serde(default)]
    pub links_opened_plan: u64,
    /// Setup, in seconds from the start: all nodes started, users registered with their
    /// mailboxes, contact pairs added, users' records out (stored in the DHT, or no peer
    /// took them; the plan starts then).
    #[serde(default)]
    pub setup_s: [f64; 4],
    /// Users whose record was still being published when the wait for it ended.
    #[serde(default)]
    pub records_pending: usize,
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
    /// Kademlia requests sent until the record came (all requests, when it did not): p50,
    /// p95. Not hops: they grow with the parallelism and with peers that do not answer.
    pub hops: [f64; 2],
    /// Requests sent until the query ended: p50, p95.
    #[serde(default)]
    pub requests_to_end: [f64; 2],
    /// The hops: rounds of the iterative lookup over the routing tables the nodes held when
    /// it started ([`crate::paths`]), for the lookups that arrive: p50, p95, max.
    #[serde(default)]
    pub rounds: [f64; 3],
    /// Lookups whose rounds were worked out.
    #[serde(default)]
    pub rounds_of: usize,
    /// Of those, lookups that never arrive over the tables.
    #[serde(default)]
    pub unreached: usize,
    /// Peers in the running nodes' routing tables at the end: smallest, p5, p50.
    #[serde(default)]
    pub table_peers: [f64; 3],
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
             setup: nodes started {:.1} s, users registered {:.1} s, contacts added {:.1} s, records out {:.1} s ({} still publishing)\n\
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
            self.setup_s[0],
            self.setup_s[1],
            self.setup_s[2],
            self.setup_s[3],
            self.records_pending,
            self.wall_s,
            self.cpu_s,
            self.peak_rss_mib
        );
        if self.bytes_sent > 0 {
            t.push_str(&format!(
                "\ntraffic: {:.1} MiB sent by all nodes (at most {:.1} MiB by one), \
                 {:.0} bytes per node per delivered message; {:.1} links open per node at the end; \
                 link ends opened {} ({} during the plan)",
                self.bytes_sent as f64 / 1048576.0,
                self.bytes_sent_max_node as f64 / 1048576.0,
                self.bytes_per_node_per_message,
                self.links_per_node,
                self.links_opened,
                self.links_opened_plan
            ));
        }
        if let Some(l) = &self.lookups {
            t.push_str(&format!(
                "\nDHT lookups: {} started, {} finished, {} found ({:.1} %, {} in the node's own store); \
                 hops (rounds over the routing tables) p50 {:.0}  p95 {:.0}  max {:.0}, {} of {} never arrive; \
                 requests to record p50 {:.0}  p95 {:.0}, to query end p50 {:.0}  p95 {:.0}; \
                 routing tables smallest {:.0}  p5 {:.0}  p50 {:.0} peers; \
                 time to record p50 {:.1} ms  p95 {:.1} ms  p99 {:.1} ms; \
                 to query end p50 {:.1} ms  p95 {:.1} ms  p99 {:.1} ms",
                l.started,
                l.finished,
                l.found,
                l.found_ratio * 100.0,
                l.local,
                l.rounds[0],
                l.rounds[1],
                l.rounds[2],
                l.unreached,
                l.rounds_of,
                l.hops[0],
                l.hops[1],
                l.requests_to_end[0],
                l.requests_to_end[1],
                l.table_peers[0],
                l.table_peers[1],
                l.table_peers[2],
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

/// The lookups' report: `started`, the finished ones `done`, the rounds each lookup takes
/// over the tables (`None`: it never arrives), and the routing tables' sizes, sorted.
pub(crate) fn lookup_report(
    started: usize,
    done: Vec<Lookup>,
    rounds: &[Option<u32>],
    tables: &[f64],
) -> LookupReport {
    let sorted = |f: &dyn Fn(&Lookup) -> f64| {
        let mut v: Vec<f64> = done.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v
    };
    let hops = sorted(&|l| f64::from(l.requests));
    let to_end = sorted(&|l| f64::from(l.requests_to_end));
    let mut arrived: Vec<f64> = rounds.iter().flatten().map(|r| f64::from(*r)).collect();
    arrived.sort_by(f64::total_cmp);
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
        requests_to_end: [pct(&to_end, 0.5), pct(&to_end, 0.95)],
        rounds: [
            pct(&arrived, 0.5),
            pct(&arrived, 0.95),
            arrived.last().copied().unwrap_or(0.0),
        ],
        rounds_of: rounds.len(),
        unreached: rounds.iter().filter(|r| r.is_none()).count(),
        table_peers: [
            tables.first().copied().unwrap_or(0.0),
            pct(tables, 0.05),
            pct(tables, 0.5),
        ],
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

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
            links_opened: 0,
            links_opened_plan: 0,
            setup_s: [0.0; 4],
            records_pending: 0,
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
                Lookup {
                    probe: true,
                    found: true,
                    requests: 3,
                    time: Duration::from_millis(20),
                    time_to_end: Duration::from_millis(90),
                    requests_to_end: 3,
                },
                Lookup {
                    probe: true,
                    found: false,
                    requests: 9,
                    time: Duration::from_millis(900),
                    time_to_end: Duration::from_millis(900),
                    requests_to_end: 9,
                },
            ],
            &[Some(1), Some(2), None],
            &[10.0, 20.0],
        ));
        let l = r.lookups.as_ref().unwrap();
        assert_eq!((l.rounds_of, l.unreached, l.rounds[2]), (3, 1, 2.0));
        let f = r.failures(&s);
        assert_eq!(f.len(), 3, "one lookup in two found is too few: {f:?}");
        assert!(f[2].contains("found 1 of 2"), "{f:?}");
    }
}
