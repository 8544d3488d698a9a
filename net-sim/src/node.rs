//! One simulated node, the same for every full-node scenario (1:1 runs and group runs):
//! its directory, its address, its links ([`SimNet`]) and, while it runs, its engine.
//!
//! - [`Node::new`] prepares a node (a data directory under the run's temporary one);
//! - [`start_all`] starts node 0 (everyone's DHT bootstrap) and then the others a few at
//!   once, each bootstrapping from node 0;
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
        boot: Option<Multiaddr>,
        seen: mpsc::Sender<Seen>,
    ) -> Result<(), SimError> {
        let cfg = EngineConfig {
            // Many nodes in one process: a small page cache each.
            store_cache: 4 << 20,
            data_dir: self.dir.clone(),
            listen: vec![addr(self.port, self.memory)],
            bootstrap: boot.into_iter().collect(),
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

/// Starts every node: node 0 first, then the others [`START_TOGETHER`] at once (a start
/// waits on disk writes as much as on CPU), each with node 0 as its DHT bootstrap. After
/// each batch, `started` hears how many nodes run. Returns node 0's address.
pub(crate) async fn start_all(
    nodes: &mut [Node],
    seen: &mpsc::Sender<Seen>,
    mut started: impl FnMut(&[Node], usize),
) -> Result<Option<Multiaddr>, SimError> {
    let Some(first) = nodes.first_mut() else {
        return Ok(None);
    };
    first.start(0, None, seen.clone()).await?;
    let boot = first.boot_addr();
    let total = nodes.len();
    let mut next = 1;
    while next < total {
        let end = (next + START_TOGETHER).min(total);
        let done = futures::future::join_all(
            nodes[next..end]
                .iter_mut()
                .zip(next..end)
                .map(|(n, i)| n.start(i, boot.clone(), seen.clone())),
        )
        .await;
        done.into_iter().collect::<Result<Vec<()>, _>>()?;
        started(nodes, end);
        next = end;
    }
    Ok(boot)
}
