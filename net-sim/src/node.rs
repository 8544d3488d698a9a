//! One simulated node, the same for every full-node scenario (1:1 runs and group runs):
//! its directory, its address, its links ([`SimNet`]) and, while it runs, its engine.
//!
//! - [`Node::new`] prepares a node (a data directory under the run's temporary one);
//! - [`start_all`] starts the DHT bootstrap nodes (node 0, then nodes 1 to B-1 from it)
//!   and then the others a few at once, each bootstrapping from [`PER_NODE_BOOTSTRAPS`] of
//!   them ([`boots_for`]), so that no one node is everyone's way in;
//! - [`Node::start`] starts one engine and forwards the scenario's message events (those
//!   whose text the scenario numbered, read by the node's `number`) to the harness as
//!   [`Seen`]; [`Node::stop`] stops it cleanly (its directory and address stay for a restart).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use kith_engine::{Engine, EngineConfig, EngineHandle, Event, MailboxConfig, Multiaddr};
use tokio::sync::mpsc;

use crate::{SimError, SimNet};

/// Nodes started at once.
pub(crate) const START_TOGETHER: usize = 8;

/// Bootstrap peers each node is given (of the scenario's bootstrap nodes).
pub(crate) const PER_NODE_BOOTSTRAPS: usize = 2;

/// The bootstrap addresses node `i` starts with: [`PER_NODE_BOOTSTRAPS`] of `boots` (the
/// bootstrap nodes' addresses, node j's at j), taken in turn from `i`, never its own.
pub(crate) fn boots_for(i: usize, boots: &[Multiaddr]) -> Vec<Multiaddr> {
    let b = boots.len();
    (0..b)
        .map(|k| (i + k) % b)
        .filter(|j| *j != i)
        .take(PER_NODE_BOOTSTRAPS)
        .filter_map(|j| boots.get(j).cloned())
        .collect()
}

/// A scenario's message seen at a node: (node, message number, when).
pub(crate) type Seen = (usize, usize, Instant);

/// The scenario's message number in an event, if the event is one of its messages.
pub(crate) type Number = fn(&Event) -> Option<usize>;

/// Memory-link numbers, unique in the process (runs may follow each other).
static NEXT_MEMORY: AtomicU64 = AtomicU64::new(1 << 40);

/// A fresh memory-link number.
pub(crate) fn memory_port() -> u64 {
    NEXT_MEMORY.fetch_add(1, Ordering::Relaxed)
}

/// A free loopback TCP port.
pub(crate) fn free_port() -> std::io::Result<u64> {
    Ok(u64::from(
        std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port(),
    ))
}

pub(crate) fn addr(port: u64, memory: bool) -> Multiaddr {
    let text = if memory {
        format!("/memory/{port}")
    } else {
        format!("/ip4/127.0.0.1/tcp/{port}")
    };
    // A valid literal; parsing cannot fail.
    text.parse().unwrap_or_else(|_| Multiaddr::empty())
}

/// One simulated node.
pub(crate) struct Node {
    pub(crate) dir: PathBuf,
    /// A TCP port, or a memory-link number.
    pub(crate) port: u64,
    pub(crate) memory: bool,
    /// It serves as a mailbox.
    pub(crate) mailbox: bool,
    /// Its store commits with fsync.
    pub(crate) fsync: bool,
    /// Reads the scenario's message number from an event.
    pub(crate) number: Number,
    pub(crate) handle: Option<EngineHandle>,
    pub(crate) task: Option<tokio::task::JoinHandle<()>>,
    pub(crate) peer_id: String,
    pub(crate) code: String,
    /// The user's identity key (from the contact code).
    pub(crate) identity: Option<kith_types::IdentityKey>,
    /// Its links, their counters and cuts (kept over restarts).
    pub(crate) sim: SimNet,
}

impl Node {
    /// A node that is not running yet, its data in a new directory `root/name`; no mailbox,
    /// fsync on.
    pub(crate) fn new(
        root: &Path,
        name: &str,
        port: u64,
        memory: bool,
        sim: SimNet,
        number: Number,
    ) -> std::io::Result<Self> {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir)?;
        Ok(Self {
            dir,
            port,
            memory,
            mailbox: false,
            fsync: true,
            number,
            handle: None,
            task: None,
            peer_id: String::new(),
            code: String::new(),
            identity: None,
            sim,
        })
    }

    /// Where the others reach it (its address with its peer id).
    pub(crate) fn boot_addr(&self) -> Option<Multiaddr> {
        format!("{}/p2p/{}", addr(self.port, self.memory), self.peer_id)
            .parse()
            .ok()
    }

    /// Starts node `i`'s engine; its scenario messages go to `seen`.
    pub(crate) async fn start(
        &mut self,
        i: usize,
        boot: Vec<Multiaddr>,
        seen: mpsc::Sender<Seen>,
    ) -> Result<(), SimError> {
        let cfg = EngineConfig {
            // Many nodes in one process: a small page cache each.
            store_cache: 4 << 20,
            data_dir: self.dir.clone(),
            listen: vec![addr(self.port, self.memory)],
            bootstrap: boot,
            mdns: false,
            mailbox: self.mailbox.then(MailboxConfig::default),
            reach: kith_engine::ReachConfig::default(),
            store_fsync: self.fsync,
            calls: Default::default(),
            net: self.sim.options(),
        };
        let node = |e: kith_engine::EngineError| SimError::Node {
            node: i,
            reason: e.to_string(),
        };
        let (h, task) = Engine::start(cfg).await.map_err(node)?;
        let info = h.info().await.map_err(node)?;
        self.peer_id = info.peer_id;
        self.identity = kith_proto::contact::ContactCard::from_code(&info.code)
            .ok()
            .map(|c| c.identity);
        self.code = info.code;
        // Every scenario message event, tagged with this node's index.
        let mut events = h.subscribe();
        let number = self.number;
        tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(ev) => {
                        if let Some(n) = number(&ev)
                            && seen.send((i, n, Instant::now())).await.is_err()
                        {
                            break;
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(_) => break,
                }
            }
        });
        self.handle = Some(h);
        self.task = Some(task);
        Ok(())
    }

    /// Stops its engine and waits for it to end.
    pub(crate) async fn stop(&mut self) {
        if let Some(h) = self.handle.take() {
            h.shutdown().await;
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

/// Starts every node: node 0 first, then the other `bootstraps - 1` bootstrap nodes from it,
/// then the others [`START_TOGETHER`] at once (a start waits on disk writes as much as on
/// CPU), each bootstrapping from some of the bootstrap nodes ([`boots_for`]). After each
/// batch, `started` hears how many nodes run. Returns the bootstrap nodes' addresses.
pub(crate) async fn start_all(
    nodes: &mut [Node],
    seen: &mpsc::Sender<Seen>,
    bootstraps: usize,
    mut started: impl FnMut(&[Node], usize),
) -> Result<Vec<Multiaddr>, SimError> {
    let total = nodes.len();
    let bootstraps = bootstraps.clamp(1, total.max(1));
    let mut boots = Vec::new();
    let mut next = 0;
    while next < total {
        // Node 0 alone; the other bootstrap nodes from node 0; then everyone else.
        let end = match next {
            0 => 1,
            n if n < bootstraps => (n + START_TOGETHER).min(bootstraps),
            n => (n + START_TOGETHER).min(total),
        };
        let done =
            futures::future::join_all(nodes[next..end].iter_mut().zip(next..end).map(|(n, i)| {
                let boot = if i < bootstraps {
                    boots.first().cloned().into_iter().collect()
                } else {
                    boots_for(i, &boots)
                };
                n.start(i, boot, seen.clone())
            }))
            .await;
        done.into_iter().collect::<Result<Vec<()>, _>>()?;
        if next < bootstraps {
            boots.extend(nodes[next..end].iter().filter_map(Node::boot_addr));
        }
        started(nodes, end);
        next = end;
    }
    Ok(boots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstraps_are_spread_and_never_oneself() {
        let boots: Vec<Multiaddr> = (0..5).map(|p| addr(p, true)).collect();
        assert_eq!(
            boots_for(7, &boots),
            vec![boots[2].clone(), boots[3].clone()]
        );
        assert_eq!(
            boots_for(3, &boots),
            vec![boots[4].clone(), boots[0].clone()]
        );
        assert_eq!(boots_for(0, &boots[..1]), Vec::<Multiaddr>::new());
        assert_eq!(boots_for(9, &boots[..1]), vec![boots[0].clone()]);
        // Every bootstrap node serves about as many nodes as the others.
        let mut load = [0usize; 5];
        for i in 5..1005 {
            for a in boots_for(i, &boots) {
                load[boots.iter().position(|b| *b == a).unwrap_or(0)] += 1;
            }
        }
        assert!(load.iter().all(|l| *l == 400), "{load:?}");
    }
}
