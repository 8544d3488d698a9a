//! Status updates (stories, issue 18) between real `kith` processes on loopback: who gets
//! a story (contacts the poster added, minus those the setting leaves out; kept only by
//! people who added the poster back), the viewer list, and taking a story back.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

const T: Duration = Duration::from_secs(30);

fn stories(n: &Node) -> Vec<Value> {
    n.json(&["status", "list"])
}

/// Waits until `n` holds `text` from Alice (a later message in the same outbox: anything
/// queued before it has been delivered by then).
fn barrier(a: &Node, n: &Node, to: &str, text: &str) {
    a.send(to, text);
    wait_for(T, "the barrier message", || {
        // Under whatever name `n` knows Alice (someone who wrote first gets one).
        n.json(&["contacts", "list"])
            .iter()
            .filter_map(|c| c["name"].as_str().map(str::to_owned))
            .any(|name| n.history(&name).iter().any(|m| m["text"] == text))
            .then_some(())
    });
}

#[test]
fn a_status_reaches_the_contacts_the_setting_allows_shows_its_viewers_and_can_be_taken_back() {
    let (a, b) = pair();
    let mut carol = Node::new();
    carol.start();
    let mut dave = Node::new();
    dave.start();
    a.add(&carol, "Carol");
    carol.add(&a, "Alice");
    // Alice added Dave, but Dave never added Alice.
    a.add(&dave, "Dave");

    // Everyone but Carol.
    let v = a.json(&["status", "privacy", "except", "Carol"]);
    assert_eq!(v[0]["mode"], "except", "{v:?}");
    assert_eq!(v[0]["people"][0], "Carol", "{v:?}");

    let posted = a.json(&["status", "post", "--text", "at the lake today"]);
    let id = posted[0]["id"].as_str().unwrap().to_string();
    assert_eq!(posted[0]["audience"], 2, "Bob and Dave: {posted:?}");

    // Bob sees it, not yet viewed.
    let s = wait_for(T, "Alice's status at Bob", || {
        stories(&b).into_iter().find(|s| s["id"] == id.as_str())
    });
    assert_eq!(s["from"], "Alice", "{s}");
    assert_eq!(s["text"], "at the lake today", "{s}");
    assert_eq!(s["viewed"], false, "{s}");
    let plain = String::from_utf8(b.cli(&["status", "list"]).stdout).unwrap();
    assert!(
        plain.contains("* ") && plain.contains("at the lake today"),
        "{plain}"
    );

    // Carol (left out) never gets it; Dave (who did not add Alice) does not keep it.
    barrier(&a, &carol, "Carol", "hi Carol");
    barrier(&a, &dave, "Dave", "hi Dave");
    assert!(stories(&carol).is_empty(), "{:?}", stories(&carol));
    assert!(stories(&dave).is_empty(), "{:?}", stories(&dave));

    // Bob views it: marked viewed at Bob, and Alice sees him among the viewers.
    let viewed = b.json(&["status", "view", "Alice"]);
    assert_eq!(viewed.len(), 1, "{viewed:?}");
    assert_eq!(viewed[0]["text"], "at the lake today");
    assert_eq!(stories(&b)[0]["viewed"], true);
    let mine = wait_for(T, "Bob among the viewers", || {
        stories(&a)
            .into_iter()
            .find(|s| s["id"] == id.as_str() && s["viewers"][0][0] == "Bob")
    });
    assert_eq!(mine["mine"], true, "{mine}");
    assert_eq!(mine["audience"], 2, "{mine}");
    assert_eq!(mine["viewers"].as_array().unwrap().len(), 1, "{mine}");
    let plain = String::from_utf8(a.cli(&["status", "list"]).stdout).unwrap();
    assert!(plain.contains("seen by 1 of 2: Bob"), "{plain}");

    // Carol cannot count as a viewer of a story she was not sent: her node has nothing to
    // view, so nothing goes back.
    assert!(carol.json(&["status", "view", "Alice"]).is_empty());

    // Alice takes it back: gone at Bob too.
    a.json(&["status", "delete", &id]);
    assert!(stories(&a).is_empty());
    wait_for(T, "the status gone at Bob", || {
        stories(&b).is_empty().then_some(())
    });

    // `kith status` alone still shows the node.
    let out = a.cli(&["status"]);
    assert!(out.status.success(), "{out:?}");
    // Bad input: an unknown contact in the setting, an empty text.
    assert_eq!(
        a.cli(&["status", "privacy", "only", "Nobody"])
            .status
            .code(),
        Some(1)
    );
    assert_eq!(
        a.cli(&["status", "post", "--text", "  "]).status.code(),
        Some(1)
    );
}
