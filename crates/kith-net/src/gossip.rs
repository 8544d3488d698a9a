//! Gossipsub as Kith's groups use it, in one place for a full node ([`crate::spawn`]) and
//! for a simulation's gossip-only nodes (`net-sim gossip`), so both run the same settings:
//! see docs/architecture.md ("Groups") for why each one.

use std::sync::Arc;
use std::time::Duration;

use libp2p::{gossipsub, identity};

use crate::config::BuildError;
use crate::observe::NetObserver;

/// Kith's gossipsub behaviour: signed messages, topics capped per peer.
pub type Gossip = gossipsub::Behaviour<
    gossipsub::IdentityTransform,
    gossipsub::MaxCountSubscriptionFilter<gossipsub::AllowAllSubscriptionFilter>,
>;

/// Largest gossipsub message (a group frame and gossipsub's own envelope).
pub const MAX_GOSSIP: usize = kith_proto::groupwire::MAX_GROUP_FRAME + 1024;
/// Most topics a peer may tell us it joined (groups are capped per user too).
pub const MAX_PEER_TOPICS: usize = 1024;

/// Gossipsub for group chats: see docs/architecture.md ("Groups") for why each setting.
/// With an observer, every message id computed is counted
/// ([`NetObserver::gossip_message_id`]).
pub fn behaviour(
    key: &identity::Keypair,
    observer: Option<Arc<dyn NetObserver>>,
) -> Result<Gossip, BuildError> {
    use sha2::Digest as _;
    let cfg = gossipsub::ConfigBuilder::default()
        // Every message signed by its publisher's peer key and checked on arrival.
        .validation_mode(gossipsub::ValidationMode::Strict)
        // Forward only what the engine found valid (a well-formed frame from a member).
        .validate_messages()
        // The same frame reached by two paths (or re-sent in a sync) has one id.
        .message_id_fn(move |m: &gossipsub::Message| {
            if let Some(o) = &observer {
                o.gossip_message_id();
            }
            gossipsub::MessageId::from(&sha2::Sha256::digest(&m.data)[..20])
        })
        .max_transmit_size(MAX_GOSSIP)
        // Small groups reach every member at once; big ones do not depend on the mesh
        // forming before the first message.
        .flood_publish(true)
        .mesh_n(6)
        .mesh_n_low(4)
        .mesh_n_high(12)
        .mesh_outbound_min(2)
        .heartbeat_interval(Duration::from_millis(700))
        .duplicate_cache_time(Duration::from_secs(300))
        .build()
        .map_err(|e| e.to_string())?;
    let filter = gossipsub::MaxCountSubscriptionFilter {
        filter: gossipsub::AllowAllSubscriptionFilter {},
        max_subscribed_topics: MAX_PEER_TOPICS,
        // A peer tells a new connection all its topics in one message: one within the
        // per-peer limit must be taken whole (gossipsub drops a message over this limit
        // entirely, so a node in more groups, or a mailbox keeping many topics, would go
        // unheard on every topic). 1,024 topics fit in one message (about 45 bytes each).
        max_subscriptions_per_request: MAX_PEER_TOPICS,
    };
    let mut g = gossipsub::Behaviour::new_with_subscription_filter(
        gossipsub::MessageAuthenticity::Signed(key.clone()),
        cfg,
        filter,
    )?;
    let params = gossipsub::PeerScoreParams {
        // Many honest members share an address (a household NAT, a carrier NAT, loopback in
        // tests): colocation says nothing here.
        ip_colocation_factor_weight: 0.0,
        ..Default::default()
    };
    g.with_peer_score(params, gossipsub::PeerScoreThresholds::default())?;
    Ok(g)
}

/// Score parameters of a group topic: invalid frames cost a lot; a quiet group costs nothing
/// (no penalty for mesh peers that deliver few messages: groups are often silent).
pub fn topic_params() -> gossipsub::TopicScoreParams {
    gossipsub::TopicScoreParams {
        topic_weight: 1.0,
        time_in_mesh_weight: 0.01,
        time_in_mesh_quantum: Duration::from_secs(1),
        time_in_mesh_cap: 3600.0,
        first_message_deliveries_weight: 1.0,
        first_message_deliveries_decay: 0.9,
        first_message_deliveries_cap: 100.0,
        mesh_message_deliveries_weight: 0.0,
        mesh_failure_penalty_weight: 0.0,
        invalid_message_deliveries_weight: -100.0,
        invalid_message_deliveries_decay: 0.9,
        ..Default::default()
    }
}
