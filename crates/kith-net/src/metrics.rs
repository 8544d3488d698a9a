//! What a node counts, for its operator: libp2p's own metrics (swarm, Kademlia, gossipsub,
//! identify, ping, relay, hole punching, from `libp2p-metrics`) and Kith's counters and
//! histograms, in one Prometheus registry (`prometheus-client`, the library libp2p writes
//! its metrics with). The network actor records its swarm's events; the engine counts what
//! it delivers, refuses, keeps and hands out; `kith-bootstrap` serves [`Metrics::encode`]
//! on `/metrics`.
//!
//! Label values are a closed set chosen by the code (refusal reasons, never a peer id or
//! anything a peer sent), so no peer can grow the registry.

use std::sync::Arc;

use libp2p::metrics::Recorder;
use libp2p::swarm::SwarmEvent;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::swarm::BehaviourEvent;

/// The label of a counter split by a reason the code names.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Reason {
    /// A fixed word (`malformed`, `unknown_session`, …).
    pub reason: &'static str,
}

/// Kith's own counters, histograms and gauges (cheap to clone: each is shared).
#[derive(Clone, Debug)]
pub struct KithMetrics {
    /// Messages this node's user received (stored, shown).
    pub delivered: Counter,
    /// Envelopes refused, by reason.
    pub refused: Family<Reason, Counter>,
    /// Envelopes kept as a mailbox for other devices.
    pub deposits: Counter,
    /// Envelopes handed to a returning device from its mailbox.
    pub drained: Counter,
    /// Push wake-ups sent.
    pub wakeups: Counter,
    /// Strikes given to peers for bad frames or requests.
    pub strikes: Counter,
    /// Seconds an engine batch's store commit took (fsync included).
    pub commit_seconds: Histogram,
    /// 1 while the node runs.
    pub up: Gauge,
    /// Peers connected now.
    pub connected_peers: Gauge,
    /// Envelopes waiting for delivery (kept mail included).
    pub queued_envelopes: Gauge,
    /// Devices registered with this mailbox.
    pub mailbox_devices: Gauge,
    /// Relay slots held for nodes behind NAT.
    pub relay_reservations: Gauge,
    /// Connections relayed now.
    pub relay_circuits: Gauge,
}

impl KithMetrics {
    fn new(r: &mut Registry) -> Self {
        let m = Self {
            delivered: Counter::default(),
            refused: Family::default(),
            deposits: Counter::default(),
            drained: Counter::default(),
            wakeups: Counter::default(),
            strikes: Counter::default(),
            // 0.5 ms to ~4 s.
            commit_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 14)),
            up: Gauge::default(),
            connected_peers: Gauge::default(),
            queued_envelopes: Gauge::default(),
            mailbox_devices: Gauge::default(),
            relay_reservations: Gauge::default(),
            relay_circuits: Gauge::default(),
        };
        let k = r.sub_registry_with_prefix("kith");
        k.register(
            "delivered",
            "Messages this node's user received",
            m.delivered.clone(),
        );
        k.register("refused", "Envelopes refused, by reason", m.refused.clone());
        k.register(
            "deposits",
            "Envelopes kept as a mailbox for other devices",
            m.deposits.clone(),
        );
        k.register(
            "drained",
            "Envelopes handed to returning devices from their mailbox",
            m.drained.clone(),
        );
        k.register("wakeups", "Push wake-ups sent", m.wakeups.clone());
        k.register("strikes", "Strikes given to peers", m.strikes.clone());
        k.register(
            "commit_seconds",
            "Store commit time of the engine's batches",
            m.commit_seconds.clone(),
        );
        k.register("up", "1 while the node runs", m.up.clone());
        k.register(
            "connected_peers",
            "Peers connected now",
            m.connected_peers.clone(),
        );
        k.register(
            "queued_envelopes",
            "Envelopes waiting for delivery (kept mail included)",
            m.queued_envelopes.clone(),
        );
        k.register(
            "mailbox_devices",
            "Devices registered with this mailbox",
            m.mailbox_devices.clone(),
        );
        k.register(
            "relay_reservations",
            "Relay slots held for nodes behind NAT",
            m.relay_reservations.clone(),
        );
        k.register(
            "relay_circuits",
            "Connections relayed now",
            m.relay_circuits.clone(),
        );
        m
    }
}

/// The node's registry: libp2p's metrics and Kith's.
pub struct Metrics {
    registry: Registry,
    p2p: libp2p::metrics::Metrics,
    /// Kith's own.
    pub kith: KithMetrics,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// A fresh registry with every metric registered.
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::default();
        let p2p = libp2p::metrics::Metrics::new(&mut registry);
        let kith = KithMetrics::new(&mut registry);
        kith.up.set(1);
        Arc::new(Self {
            registry,
            p2p,
            kith,
        })
    }

    /// Everything, in the OpenMetrics text format (what `/metrics` serves).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }

    /// Records one swarm event and the protocol event inside it.
    pub(crate) fn record(&self, ev: &SwarmEvent<BehaviourEvent>) {
        self.p2p.record(ev);
        if let SwarmEvent::Behaviour(b) = ev {
            match b {
                BehaviourEvent::Kad(e) => self.p2p.record(e),
                BehaviourEvent::Gossip(e) => self.p2p.record(e),
                BehaviourEvent::Identify(e) => self.p2p.record(e),
                BehaviourEvent::Ping(e) => self.p2p.record(e),
                BehaviourEvent::Relay(e) => self.p2p.record(e),
                BehaviourEvent::Dcutr(e) => self.p2p.record(e),
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kith_counters_and_libp2p_families_are_in_one_text() {
        let m = Metrics::new();
        m.kith.delivered.inc();
        m.kith
            .refused
            .get_or_create(&Reason {
                reason: "malformed",
            })
            .inc();
        m.kith.commit_seconds.observe(0.002);
        let text = m.encode();
        assert!(text.contains("kith_delivered_total 1"), "{text}");
        assert!(
            text.contains("kith_refused_total{reason=\"malformed\"} 1"),
            "{text}"
        );
        assert!(text.contains("kith_commit_seconds_count 1"), "{text}");
        assert!(text.contains("kith_up 1"), "{text}");
        assert!(text.contains("libp2p_"), "libp2p's own metrics: {text}");
        assert!(text.ends_with("# EOF\n"));
    }
}
