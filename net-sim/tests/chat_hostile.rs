//! Issue 18: "a hostile contact cannot edit or delete someone else's message".
//!
//! Three real engines in one process over memory links: Alice, Bob and Carol, all contacts,
//! in a group "g". Bob misbehaves through the engine's test hooks (`test-hooks` feature):
//! he sends edits and deletes for Alice's messages, one-to-one and in the group, exactly as
//! real actions travel (a `Body::Chat` through the outbox, a `GroupContent::Chat` frame),
//! skipping his own node's checks. Every receiver must refuse them, while the same actions
//! from Alice herself go through.
//!
//! The refusals leave no trace, so each step ends with a marker that travels the same path
//! after the forged action (a plain text, or a reaction of Bob's in the group): once the
//! marker has been handled, the forged action before it has been too.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use kith_engine::command::{ActionResult, EditParams, MessageEdit};
use kith_engine::{Engine, EngineConfig, EngineHandle, Multiaddr};
use kith_net_sim::SimNet;
use kith_proto::chat::ChatAction;
use kith_types::MessageId;

const WAIT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(50);
static NEXT_PORT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(5_000_000);

struct Node {
    name: &'static str,
    h: EngineHandle,
    _sim: SimNet,
    code: String,
    peer_id: String,
}

async fn start(
    name: &'static str,
    dir: &std::path::Path,
    port: u64,
    boot: Option<Multiaddr>,
) -> Node {
    let sim = SimNet::new(None);
    let cfg = EngineConfig {
        store_cache: 4 << 20,
        data_dir: dir.join(name),
        listen: vec![format!("/memory/{port}").parse().unwrap()],
        bootstrap: boot.into_iter().collect(),
        mdns: false,
        mailbox: None,
        reach: kith_engine::ReachConfig::default(),
        store_fsync: true,
        net: sim.options(),
        calls: Default::default(),
    };
    let (h, _task) = Engine::start(cfg).await.unwrap();
    let info = h.info().await.unwrap();
    Node {
        name,
        h,
        _sim: sim,
        code: info.code,
        peer_id: info.peer_id,
    }
}

async fn wait_until(what: &str, mut ok: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !ok().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(POLL).await;
    }
}

fn id_of(s: &str) -> u128 {
    MessageId::parse(s).unwrap().0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contact_cannot_edit_or_delete_someone_elses_message() {
    let dir = tempfile::tempdir().unwrap();
    let port = NEXT_PORT.fetch_add(3, std::sync::atomic::Ordering::Relaxed);
    let a = start("alice", dir.path(), port, None).await;
    let boot: Multiaddr = format!("/memory/{port}/p2p/{}", a.peer_id).parse().unwrap();
    let b = start("bob", dir.path(), port + 1, Some(boot.clone())).await;
    let c = start("carol", dir.path(), port + 2, Some(boot)).await;
    for x in [&a, &b, &c] {
        for y in [&a, &b, &c] {
            if x.name != y.name {
                x.h.add_contact(y.code.clone(), y.name.into())
                    .await
                    .unwrap();
            }
        }
    }

    // One-to-one: Alice writes to Bob; Bob forges an edit and a delete of her message.
    let m = a.h.send("bob".into(), "the plan".into()).await.unwrap().id;
    wait_until("Bob has Alice's message", async || {
        b.h.history("alice".into(), 100)
            .await
            .is_ok_and(|h| h.iter().any(|x| x.id == m))
    })
    .await;
    let at_ms = kith_types::now_ms();
    for action in [
        ChatAction::Edit {
            target: id_of(&m),
            text: "forged plan".into(),
            at_ms,
        },
        ChatAction::Delete {
            target: id_of(&m),
            at_ms,
        },
    ] {
        b.h.test_chat_action(Some("alice"), None, action)
            .await
            .unwrap();
    }
    // The marker: a text after the forgeries, through the same outbox.
    b.h.send("alice".into(), "marker 1".into()).await.unwrap();
    wait_until("Alice has the marker", async || {
        a.h.history("bob".into(), 100)
            .await
            .is_ok_and(|h| h.iter().any(|x| x.text == "marker 1"))
    })
    .await;
    let h = a.h.history("bob".into(), 100).await.unwrap();
    let mine = h.iter().find(|x| x.id == m).unwrap();
    assert_eq!(mine.text, "the plan");
    assert!(!mine.extras.edited && !mine.extras.deleted, "{mine:?}");

    // Alice's own edit does go through (the same path works).
    let r: ActionResult =
        a.h.call::<MessageEdit>(EditParams {
            id: m.clone(),
            text: "the real plan".into(),
        })
        .await
        .unwrap();
    assert!(r.changed);
    wait_until("Bob sees Alice's edit", async || {
        b.h.history("alice".into(), 100)
            .await
            .is_ok_and(|h| h.iter().any(|x| x.id == m && x.text == "the real plan"))
    })
    .await;

    // In a group: Alice's message, Bob's forged edit and delete, then Bob's reaction as the
    // marker (his frames are handled in order of his seq).
    let g =
        a.h.group_create("g".into(), vec!["bob".into(), "carol".into()])
            .await
            .unwrap()
            .id;
    for n in [&b, &c] {
        wait_until(&format!("{} in the group", n.name), async || {
            n.h.group_info(g.clone())
                .await
                .is_ok_and(|v| v.members.len() == 3)
        })
        .await;
    }
    let gm =
        a.h.group_send(g.clone(), "group plan".into())
            .await
            .unwrap()
            .id;
    for n in [&b, &c] {
        wait_until(&format!("{} has the group message", n.name), async || {
            n.h.group_history(g.clone(), 100)
                .await
                .is_ok_and(|h| h.iter().any(|x| x.id == gm))
        })
        .await;
    }
    let at_ms = kith_types::now_ms();
    for action in [
        ChatAction::Edit {
            target: id_of(&gm),
            text: "forged".into(),
            at_ms,
        },
        ChatAction::Delete {
            target: id_of(&gm),
            at_ms,
        },
        ChatAction::React {
            target: id_of(&gm),
            emoji: "🙃".into(),
        },
    ] {
        b.h.test_chat_action(None, Some(&g), action).await.unwrap();
    }
    for n in [&a, &c] {
        wait_until(&format!("{} has Bob's reaction", n.name), async || {
            n.h.group_history(g.clone(), 100).await.is_ok_and(|h| {
                h.iter()
                    .any(|x| x.id == gm && !x.extras.reactions.is_empty())
            })
        })
        .await;
        let h = n.h.group_history(g.clone(), 100).await.unwrap();
        let msg = h.iter().find(|x| x.id == gm).unwrap();
        assert_eq!(msg.text, "group plan", "at {}", n.name);
        assert!(
            !msg.extras.edited && !msg.extras.deleted,
            "at {}: {msg:?}",
            n.name
        );
    }
    for n in [a, b, c] {
        n.h.shutdown().await;
    }
}
