//! Malformed group frames: a raw libp2p peer joins a group's gossipsub topic and publishes
//! garbage. The member logs a typed error, penalises the peer (a strike, and a gossipsub
//! score below the graylist threshold, so its later messages are dropped unread), and the
//! group keeps working. All traffic stays on 127.0.0.1.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use futures::StreamExt;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, gossipsub, noise, tcp, yamux};

const T: Duration = Duration::from_secs(60);

fn wait_log(node: &Node, what: &str, ok: impl Fn(&str) -> bool) {
    wait_for(T, what, || ok(&node.logs()).then_some(()));
}

#[test]
fn garbage_on_a_group_topic_is_refused_and_its_sender_penalised() {
    let (a, b) = pair();
    let out = a.cli(&["group", "create", "Club", "--members", "Bob"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id_hex = a.json(&["groups"])[0]["id"].as_str().unwrap().to_string();
    let id = kith_types::GroupId::from_hex(&id_hex).unwrap();
    let topic = gossipsub::IdentTopic::new(kith_proto::groupwire::group_topic(&id));
    let info = &a.json(&["id"])[0];
    let a_peer: PeerId = info["peer_id"].as_str().unwrap().parse().unwrap();
    let a_addr: Multiaddr = info["addrs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|x| x.as_str()?.parse::<Multiaddr>().ok())
        .find(|m| {
            m.iter()
                .any(|p| matches!(p, Protocol::Ip4(ip) if ip.is_loopback()))
                && m.iter().any(|p| matches!(p, Protocol::Tcp(_)))
        })
        .expect("a loopback TCP address");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let raw_id = rt.block_on(async {
        let mut swarm = libp2p::SwarmBuilder::with_new_identity()
            .with_tokio()
            .with_tcp(
                tcp::Config::default(),
                noise::Config::new,
                yamux::Config::default,
            )
            .unwrap()
            .with_behaviour(|key| {
                let cfg = gossipsub::ConfigBuilder::default()
                    .validation_mode(gossipsub::ValidationMode::Strict)
                    .flood_publish(true)
                    .build()
                    .unwrap();
                gossipsub::Behaviour::<
                    gossipsub::IdentityTransform,
                    gossipsub::AllowAllSubscriptionFilter,
                >::new(gossipsub::MessageAuthenticity::Signed(key.clone()), cfg)
                .unwrap()
            })
            .unwrap()
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(300)))
            .build();
        let raw_id = swarm.local_peer_id().to_string();
        swarm.behaviour_mut().subscribe(&topic).unwrap();
        swarm.dial(a_addr).unwrap();
        // Wait until the member tells us it is on the topic.
        tokio::time::timeout(T, async {
            loop {
                if let SwarmEvent::Behaviour(gossipsub::Event::Subscribed { peer_id, .. }) =
                    swarm.select_next_some().await
                    && peer_id == a_peer
                {
                    break;
                }
            }
        })
        .await
        .expect("the member announces its topic");
        // Six different garbage frames (gossipsub drops exact repeats by id).
        for i in 0u8..6 {
            let garbage: Vec<u8> = (0u8..100).map(|k| k.wrapping_mul(31) ^ i).collect();
            let _ = swarm.behaviour_mut().publish(topic.clone(), garbage);
            let until = tokio::time::Instant::now() + Duration::from_millis(300);
            while let Ok(_ev) = tokio::time::timeout_at(until, swarm.select_next_some()).await {}
        }
        // Keep the swarm running a little so the last frames leave.
        let until = tokio::time::Instant::now() + Duration::from_secs(2);
        while let Ok(_ev) = tokio::time::timeout_at(until, swarm.select_next_some()).await {}
        raw_id
    });

    wait_log(&a, "a typed error for the garbage frames", |log| {
        log.lines()
            .any(|l| l.contains("malformed group frame") && l.contains(&raw_id))
    });
    wait_log(&a, "the raw peer penalised", |log| {
        log.lines()
            .any(|l| l.contains("peer penalised") && l.contains(&raw_id))
    });
    // The group still works, both ways.
    let out = a.cli(&["send", "--group", "Club", "still here"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for(T, "Bob gets the message", || {
        b.json(&["history", "--group", "Club"])
            .iter()
            .any(|m| m["text"] == "still here")
            .then_some(())
    });
    assert!(a.logs().lines().all(|l| !l.contains("panicked")));
}
