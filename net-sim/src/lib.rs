//! `net-sim`: many real Kith nodes in one process, with churn and partitions from a seed.
//!
//! Every node is the same code `kith up` runs: a [`kith_engine::Engine`] with its own
//! identity, its own redb file (in a temporary directory) and its own libp2p swarm. Only
//! its links are the simulation's ([`SimNet`], given to the node's network through kith-net's
//! seam, [`kith_net::NetOptions`]): by default in-process memory links (`/memory/<n>`, so a
//! thousand nodes need no sockets), shaped by the scenario's `[links]`; with
//! `transport = "tcp"`, real loopback TCP connections. Either way each node keeps one
//! address for the whole run, so a node that restarts is found where it was. Nothing else
//! is simulated: messages are encrypted, stored and acknowledged exactly as between
//! separate machines (the stores commit with fsync, as a device does).
//!
//! A [`Scenario`] (a TOML file) gives the seed, the number of nodes and mailboxes, the
//! workload (random contact pairs and 1:1 messages between them) and the faults:
//!
//! - **churn**: a share of the nodes goes down (a clean stop) at a random time and comes back
//!   after a random pause, or never (`gone_for_good`);
//! - **partitions**: at a time, the nodes are split in two random halves whose links are cut
//!   (connections closed and refused in their transports, [`SimNet::cut`]), and healed
//!   later. A cut holds for a node that restarts meanwhile.
//!
//! All random choices come from the seed, so a scenario makes the same choices every run;
//! timing on a real machine still varies, so latencies differ between runs while the
//! delivery results of a healthy run (everything acknowledged delivered exactly once) do not.
//!
//! The [`Report`] counts messages sent, acknowledged (✓ or ✓✓ at the sender), delivered,
//! duplicated (shown twice) and lost (acknowledged but not delivered to a recipient that is
//! still around), with latency from `send` to the recipient's `message` event, and the CPU
//! time and peak memory of the run; the bytes the nodes wrote on their links; and the DHT
//! lookups' success, hops (rounds over the nodes' routing tables, [`paths`]), Kademlia's
//! requests and time. [`Report::failures`] checks it
//! against the scenario's expectations. `net-sim/README.md` documents the scenario file.
//!
//! Groups have their own scenarios: [`GroupScenario`] runs one group of full nodes, and
//! [`GossipScenario`] a big group's gossip layer alone ([`gossip_node`]).

mod gossip;
pub mod gossip_node;
mod group;
pub mod links;
mod node;
pub mod paths;
mod report;
mod scenario;

pub use gossip::{GossipReport, GossipScenario, run_gossip};
pub use group::{GroupReport, GroupScenario, JoinPlan, MediaPlan, MediaReport, run_group};
pub use links::shaped::LinkShape;
pub use links::{GossipReceived, SimNet};
use node::{Node, Seen, free_port, memory_port};
use report::lookup_report;
pub(crate) use report::pct;
pub use report::{LookupReport, Report};
pub use scenario::{
    Churn, Dht, Expect, Links, MAX_LINK_MS, MAX_LOOKUPS, MAX_MESSAGES, MAX_NODES, Partition,
    Scenario, ScenarioError, Transport,
};

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use kith_engine::{EngineHandle, Event};
use kith_net::PeerId;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use tokio::sync::mpsc;

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

/// The message number in a simulated text (`sim <n>`).
fn number(text: &str) -> Option<usize> {
    text.strip_prefix("sim ")?.parse().ok()
}

/// The message number of a 1:1 message event.
fn message_number(ev: &Event) -> Option<usize> {
    match ev {
        Event::Message { text, .. } => number(text),
        _ => None,
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

/// Longest wait, before the plan, for the users' records to go out (registration answers
/// once the mailbox accepted; the record listing it follows in the background).
const RECORDS_WAIT: Duration = Duration::from_secs(300);

/// Users whose record is still being published, of those running.
async fn records_publishing(nodes: &[Node], users: &[usize]) -> usize {
    let checks = users
        .iter()
        .filter_map(|&u| nodes[u].handle.clone())
        .map(|h| async move { h.status().await.is_ok_and(|s| s.record == "publishing") });
    futures::future::join_all(checks)
        .await
        .into_iter()
        .filter(|p| *p)
        .count()
}

/// How long to wait for DHT lookups after the messages have settled: Kademlia's query
/// timeout (30 s) and some.
const LOOKUP_WAIT: Duration = Duration::from_secs(40);

/// Runs a scenario to the end and reports.
pub async fn run(s: &Scenario) -> Result<Report, SimError> {
    run_with_progress(s, &|_| {}).await
}

/// Open link ends summed over the nodes.
fn open_links(nodes: &[Node]) -> u64 {
    nodes.iter().map(|n| n.sim.open_links()).sum()
}

/// Link ends opened so far, summed over the nodes.
fn links_opened(nodes: &[Node]) -> u64 {
    nodes.iter().map(|n| n.sim.links_opened()).sum()
}

/// How old a snapshot of the routing tables may get before a lookup takes a new one.
const TABLES_EVERY: Duration = Duration::from_secs(5);

/// The routing tables of the running nodes.
fn routing_tables(nodes: &[Node]) -> paths::Tables {
    paths::Tables::new(
        nodes
            .iter()
            .filter(|n| n.handle.is_some())
            .filter_map(|n| Some((n.peer_id.parse().ok()?, n.sim.routing_table()))),
    )
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
    let (seen_tx, mut seen_rx) = mpsc::channel::<Seen>(65_536);

    // Nodes: the first `mailboxes` serve as mailboxes; the first `[dht] bootstraps` (node 0
    // by default) are the DHT bootstraps.
    let mut nodes = Vec::with_capacity(s.nodes);
    for i in 0..s.nodes {
        let memory = s.transport == Transport::Memory;
        let port = if memory { memory_port() } else { free_port()? };
        let sim = {
            let links = s.links.as_ref();
            let mut sim = SimNet::new(links.filter(|l| l.shapes()).map(|l| l.shape(s.seed, i)));
            sim.tcp = !memory;
            sim.idle_timeout = links.and_then(|l| l.idle_ms).map(Duration::from_millis);
            sim.kad_bootstrap_every = (s.dht.as_ref())
                .and_then(|d| d.bootstrap_every_s)
                .map(Duration::from_secs);
            sim
        };
        nodes.push(Node {
            mailbox: i < s.mailboxes,
            ..Node::new(
                tmp.path(),
                &format!("n{i}"),
                port,
                memory,
                sim,
                message_number,
            )?
        });
    }
    let total = nodes.len();
    // Batches start after node 0.
    let mut next = 1;
    let bootstraps = s.dht.as_ref().and_then(|d| d.bootstraps).unwrap_or(1);
    let boot = node::start_all(&mut nodes, &seen_tx, bootstraps, |nodes, end| {
        if end / 100 > next / 100 || end == total {
            say(nodes, &format!("{end} of {total} nodes started"));
        }
        next = end;
    })
    .await?;
    let mut setup_s = [t_start.elapsed().as_secs_f64(); 4];
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
    setup_s[1] = t_start.elapsed().as_secs_f64();
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
    setup_s[2] = t_start.elapsed().as_secs_f64();
    // The records listing the mailboxes go out in the background: lookups are measured
    // against a network where they are out, as on one that formed over time.
    let records_by = Instant::now() + RECORDS_WAIT;
    let records_pending = loop {
        let n = records_publishing(&nodes, &users).await;
        if n == 0 || Instant::now() >= records_by {
            break n;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    setup_s[3] = t_start.elapsed().as_secs_f64();
    say(
        &nodes,
        &format!("users' records out ({records_pending} still publishing)"),
    );
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
    let opened_before_plan = links_opened(&nodes);
    let mut sends: Vec<Option<(usize, usize, Instant, String)>> = vec![None; s.messages];
    let mut in_flight: VecDeque<(usize, tokio::task::JoinHandle<Option<SendDone>>)> =
        VecDeque::new();
    // Per node: lookups started, and those cut short by the node going down.
    let mut lookups_started = vec![0usize; s.nodes];
    let mut lookups_cut = vec![0usize; s.nodes];
    // The rounds each lookup takes over the routing tables as they were when it started.
    let mut rounds: Vec<Option<u32>> = Vec::new();
    let mut tables: Option<(Instant, paths::Tables)> = None;
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
                let done = nodes[u].sim.lookups().len();
                lookups_cut[u] = lookups_started[u].saturating_sub(done);
                nodes[u].stop().await;
            }
            Step::Up(u) => {
                let b = node::boots_for(u, &boot);
                nodes[u].start(u, b, seen_tx.clone()).await?
            }
            Step::Lookup { from, of } => {
                let (Some(id), true) = (nodes[of].identity, nodes[from].handle.is_some()) else {
                    continue;
                };
                if nodes[from].sim.lookup(&id).is_ok() {
                    lookups_started[from] += 1;
                    // The tables change every 5 s at most (when the nodes tell them).
                    if tables
                        .as_ref()
                        .is_none_or(|(t, _)| t.elapsed() >= TABLES_EVERY)
                    {
                        tables = Some((Instant::now(), routing_tables(&nodes)));
                    }
                    if let (Some((_, t)), Ok(p)) = (&tables, nodes[from].peer_id.parse()) {
                        rounds.push(t.rounds(&p, &kith_proto::record::user_record_key(&id)));
                    }
                }
            }
            Step::Cut(left, right, cut) => {
                let ids = |side: &[usize]| -> Vec<PeerId> {
                    side.iter()
                        .filter_map(|&i| nodes[i].peer_id.parse().ok())
                        .collect()
                };
                let (lp, rp) = (ids(&left), ids(&right));
                for (side, other) in [(&left, &rp), (&right, &lp)] {
                    for &i in side.iter() {
                        nodes[i].sim.cut(other, cut);
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
        while let Ok((node, n, at)) = seen_rx.try_recv() {
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
            let done = n.sim.lookups().len();
            done + lookups_cut[i] < lookups_started[i]
        });
        if !pending || Instant::now() >= lookup_deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let lookups = s.dht.as_ref().filter(|d| d.lookups > 0).map(|_| {
        let done = nodes.iter().flat_map(|n| n.sim.lookups()).collect();
        let sizes = routing_tables(&nodes).sizes();
        lookup_report(lookups_started.iter().sum(), done, &rounds, &sizes)
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
    let traffic: Vec<u64> = nodes.iter().map(|n| n.sim.traffic().0).collect();
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
        links_opened: links_opened(&nodes),
        links_opened_plan: links_opened(&nodes).saturating_sub(opened_before_plan),
        setup_s,
        records_pending,
    };
    say(&nodes, "stopping the nodes");
    // A stop waits up to a second for goodbyes to contacts: stop many at once.
    for chunk in nodes.chunks_mut(STOP_TOGETHER) {
        futures::future::join_all(chunk.iter_mut().map(Node::stop)).await;
    }
    Ok(report)
}
