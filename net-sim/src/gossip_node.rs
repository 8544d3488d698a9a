//! A node that runs only Kith's group gossip, for simulations of big groups (`net-sim
//! gossip`): the same gossipsub settings and topic scores as a full node
//! ([`kith_net::gossip`]) and a validation step that accepts every frame, on the same links
//! ([`crate::SimNet`]), without the DHT, identify, ping, relay, the engine's store or its
//! encryption.
//!
//! A full node costs a simulation about one core per hundred nodes; one of these costs a
//! small fraction of that, so a group of a thousand members fits in one process on a small
//! machine. What it leaves out is local work that a real member does on its own machine
//! (decrypting a frame, one database write), not network behaviour.

use std::time::Instant;

use futures::StreamExt as _;
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, gossipsub, identity};
use tokio::sync::mpsc;

use kith_net::NetError;

use crate::SimNet;

/// Commands queued per gossip node, at most.
const COMMANDS: usize = 1024;

/// What a gossip node is told to do.
#[derive(Debug)]
enum Command {
    Dial(Multiaddr),
    Publish(Vec<u8>),
}

/// A message a gossip node received for the first time.
#[derive(Debug, Clone)]
pub struct Received {
    /// The node that received it (the number given at start).
    pub node: usize,
    /// The message.
    pub data: Vec<u8>,
    /// When it arrived.
    pub at: Instant,
}

/// A running gossip node; dropping it stops the node.
#[derive(Debug)]
pub struct GossipNode {
    /// Its peer id.
    pub peer_id: PeerId,
    /// Its address (`/memory/<port>/p2p/<peer id>`).
    pub addr: Multiaddr,
    commands: mpsc::Sender<Command>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for GossipNode {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl GossipNode {
    /// Starts node number `node`, listening on `/memory/<port>`, subscribed to `topic`; the
    /// first copy of each message it receives goes to `received` (dropped when that queue is
    /// full).
    pub async fn start(
        node: usize,
        port: u64,
        topic: &str,
        sim: &SimNet,
        received: mpsc::Sender<Received>,
    ) -> Result<Self, NetError> {
        let setup = |e: &dyn std::fmt::Display| NetError::Setup(e.to_string());
        let key = identity::Keypair::generate_ed25519();
        let peer_id = key.public().to_peer_id();
        let observer = sim.observer();
        let idle = sim.idle_timeout.unwrap_or(kith_net::IDLE_TIMEOUT);
        let mut swarm = libp2p::SwarmBuilder::with_existing_identity(key)
            .with_tokio()
            .with_other_transport(|key| sim.transport(key))
            .map_err(|e| setup(&e))?
            .with_behaviour(|key| kith_net::gossip::behaviour(key, Some(observer.clone())))
            .map_err(|e| setup(&e))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(idle))
            .build();
        let listen: Multiaddr = format!("/memory/{port}").parse().map_err(|e| setup(&e))?;
        swarm.listen_on(listen.clone()).map_err(|e| setup(&e))?;
        let t = gossipsub::IdentTopic::new(topic);
        let g = swarm.behaviour_mut();
        g.subscribe(&t).map_err(|e| setup(&e))?;
        g.set_topic_params(t.clone(), kith_net::gossip::topic_params())
            .map_err(|e| setup(&e))?;
        let addr = listen.with(libp2p::multiaddr::Protocol::P2p(peer_id));
        let (commands, mut rx) = mpsc::channel::<Command>(COMMANDS);
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    cmd = rx.recv() => match cmd {
                        Some(Command::Dial(a)) => {
                            let _ = swarm.dial(a);
                        }
                        Some(Command::Publish(data)) => {
                            observer.gossip_published();
                            let _ = swarm.behaviour_mut().publish(t.clone(), data);
                        }
                        None => break,
                    },
                    ev = swarm.select_next_some() => {
                        if let SwarmEvent::Behaviour(gossipsub::Event::Message {
                            propagation_source,
                            message_id,
                            message,
                        }) = ev
                        {
                            observer.gossip_new();
                            // A full node's engine checks the frame first; here every frame
                            // is good.
                            swarm.behaviour_mut().report_message_validation_result(
                                &message_id,
                                &propagation_source,
                                gossipsub::MessageAcceptance::Accept,
                            );
                            let _ = received.try_send(Received {
                                node,
                                data: message.data,
                                at: Instant::now(),
                            });
                        }
                    }
                }
            }
        });
        Ok(Self {
            peer_id,
            addr,
            commands,
            task,
        })
    }

    /// Connects to another node.
    pub fn dial(&self, addr: Multiaddr) -> Result<(), NetError> {
        self.commands
            .try_send(Command::Dial(addr))
            .map_err(|_| NetError::Busy)
    }

    /// Publishes a message on the node's topic.
    pub fn publish(&self, data: Vec<u8>) -> Result<(), NetError> {
        self.commands
            .try_send(Command::Publish(data))
            .map_err(|_| NetError::Busy)
    }
}
