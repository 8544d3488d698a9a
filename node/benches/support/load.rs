//! A load of deposits: senders, each a raw libp2p peer with its own peer id, hand a mailbox
//! `Deliver` requests of envelopes for registered devices, and what came back is tallied.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kith_proto::wire::{DeliveryResult, Request, Response};
use libp2p::identity::Keypair;
use libp2p::{Multiaddr, PeerId};

use super::peer::{Filler, MsgPeer};

/// The load: who sends what.
#[derive(Clone, Copy, Debug)]
pub struct Load {
    pub envelopes: usize,
    pub senders: usize,
    pub batch: usize,
    pub in_flight: usize,
    pub size: (usize, usize),
}

/// What the senders got back.
#[derive(Debug, Default)]
pub struct Tally {
    pub accepted: usize,
    pub full: usize,
    pub rejected: usize,
    pub refused: usize,
    pub failed: usize,
    pub latencies: Vec<Duration>,
    pub last: Option<Instant>,
}

impl Tally {
    pub fn add(&mut self, o: Tally) {
        self.accepted += o.accepted;
        self.full += o.full;
        self.rejected += o.rejected;
        self.refused += o.refused;
        self.failed += o.failed;
        self.latencies.extend(o.latencies);
        self.last = self.last.max(o.last);
    }
}

/// What `deposit` measured, and when the first request left.
pub struct Deposited {
    pub tally: Tally,
    pub first_request: Instant,
}

/// Connects `load.senders` senders, then has them all deposit `load.envelopes` envelopes
/// (rounded down to whole batches per sender) for the devices `curves`, in turn.
pub async fn deposit(
    node: PeerId,
    addr: &Multiaddr,
    curves: &[kith_types::CurveKey],
    load: Load,
) -> Deposited {
    let per_sender = load.envelopes / load.senders;
    let batches = per_sender / load.batch;
    let start = Arc::new(tokio::sync::Barrier::new(load.senders + 1));
    let mut tasks = Vec::with_capacity(load.senders);
    for s in 0..load.senders {
        let mut peer = MsgPeer::connect(Keypair::generate_ed25519(), node, addr).await;
        // The requests are made before the clock starts, so the load generator spends its
        // share of the 2 cores on the network only.
        let mut fill = Filler::new(s as u64);
        let reqs: Vec<Request> = (0..batches)
            .map(|i| {
                let to = curves[(s + i * load.senders) % curves.len()];
                let envelopes = (0..load.batch)
                    .map(|_| fill.envelope(to, load.size.0, load.size.1))
                    .collect();
                Request::Deliver { envelopes }
            })
            .collect();
        let start = start.clone();
        tasks.push(tokio::spawn(async move {
            let mut t = Tally::default();
            start.wait().await;
            peer.pipeline(reqs, load.in_flight, |answer, took| {
                t.latencies.push(took);
                t.last = Some(Instant::now());
                match answer {
                    Ok(Response::Delivered { results }) => {
                        for r in results {
                            match r {
                                DeliveryResult::Accepted => t.accepted += 1,
                                DeliveryResult::Rejected(
                                    kith_proto::wire::RejectReason::MailboxFull,
                                ) => t.full += 1,
                                _ => t.rejected += 1,
                            }
                        }
                    }
                    Ok(_) => t.refused += 1,
                    Err(_) => t.failed += 1,
                }
            })
            .await;
            t
        }));
    }
    start.wait().await;
    let first_request = Instant::now();
    let mut tally = Tally::default();
    for t in tasks {
        tally.add(t.await.unwrap());
    }
    tally.latencies.sort();
    Deposited {
        tally,
        first_request,
    }
}
