//! Issue 17, linked devices kept in step, between real `kith` processes on loopback:
//! groups on all of a person's devices (messages, groups made before or after the link,
//! removal taking a device out of the group's keys).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

const T: Duration = Duration::from_secs(90);

fn wait_devices_changed(b: &Node, what: &str) {
    wait_for(T, &format!("the contact's record ({what})"), || {
        b.plain_logs()
            .lines()
            .any(|l| l.contains("a contact's devices changed") && l.contains(what))
            .then_some(())
    });
}

/// A group's messages as `n` sees them.
fn group_messages(n: &Node, group: &str) -> Vec<Value> {
    n.json(&["history", "--group", group, "--limit", "1000"])
        .into_iter()
        .filter(|i| i["kind"] == "message")
        .collect()
}

fn wait_group_text(n: &Node, group: &str, text: &str) -> Value {
    wait_for(T, &format!("{text:?} in {group}"), || {
        group_messages(n, group)
            .into_iter()
            .find(|m| m["text"] == text)
    })
}

fn wait_group_listed(n: &Node, id: &str, members: u64) {
    wait_for(T, "the group on the other device", || {
        n.json(&["groups"])
            .into_iter()
            .find(|g| g["id"] == id && g["members"] == members)
    });
}

#[test]
fn groups_are_on_every_device_and_a_removed_one_is_left_out() {
    let (a, b) = pair();
    // A group made before the link...
    let before = a.create_group("Before", "Bob", 2, &[&b]);
    let mut n = Node::new();
    n.start();
    n.link_to(&a, "laptop", &[]);
    wait_devices_changed(&b, "added=1");
    // ...is on the new device too.
    wait_group_listed(&n, &before, 2);
    // The phone lists the laptop with its platform (the laptop told it when it started).
    wait_for(T, "the laptop's platform", || {
        a.json(&["devices"]).into_iter().find(|d| {
            d["name"] == "laptop" && d["platform"].as_str().is_some_and(|p| p.contains('/'))
        })
    });
    // A group made on the new device is on the old one (and Bob's).
    let after = n.create_group("After", "Bob", 2, &[&b, &a]);

    // Bob's group messages reach both of Ada's devices.
    b.json(&["send", "--group", "Before", "from Bob"]);
    wait_group_text(&a, "Before", "from Bob");
    wait_group_text(&n, "Before", "from Bob");
    b.json(&["send", "--group", "After", "from Bob, after"]);
    wait_group_text(&a, "After", "from Bob, after");
    wait_group_text(&n, "After", "from Bob, after");

    // What Ada sends from one device shows as sent on the other, with the same id.
    let id = a.json(&["send", "--group", "Before", "from the phone"])[0]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let m = wait_group_text(&n, "Before", "from the phone");
    assert_eq!(m["from"], "me", "{m}");
    assert_eq!(m["id"], id.as_str(), "{m}");
    assert_ne!(m["status"], "pending", "{m}");
    wait_group_text(&b, "Before", "from the phone");
    n.json(&["send", "--group", &after[..8], "from the laptop"]);
    let m = wait_group_text(&a, "After", "from the laptop");
    assert_eq!(m["from"], "me", "{m}");
    wait_group_text(&b, "After", "from the laptop");

    // Removing the laptop takes it out of the groups' keys: nothing sent afterwards opens
    // there, from Bob or from the phone.
    a.json(&["devices", "remove", "laptop"]);
    wait_devices_changed(&b, "removed=1");
    b.json(&["send", "--group", "Before", "Bob, after the removal"]);
    a.json(&["send", "--group", "Before", "phone, after the removal"]);
    wait_group_text(&a, "Before", "Bob, after the removal");
    wait_group_text(&b, "Before", "phone, after the removal");
    // The laptop is still subscribed: give its copy time to come (a condition on the
    // others, who got theirs; then a few more rounds of gossip on a message sent later).
    b.json(&["send", "--group", "Before", "marker"]);
    wait_group_text(&a, "Before", "marker");
    let texts: Vec<String> = group_messages(&n, "Before")
        .iter()
        .filter_map(|m| m["text"].as_str().map(str::to_string))
        .collect();
    assert!(texts.contains(&"from Bob".to_string()), "{texts:?}");
    assert!(
        !texts
            .iter()
            .any(|t| t.contains("after the removal") || t == "marker"),
        "{texts:?}"
    );
}

/// A PNG of pseudo-random pixels (it does not compress much).
fn noisy_png(w: u32, h: u32) -> Vec<u8> {
    let mut x: u32 = 12345;
    let img = image::RgbImage::from_fn(w, h, |_, _| {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let b = x.to_be_bytes();
        image::Rgb([b[0], b[1], b[2]])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut out, image::ImageFormat::Png)
        .unwrap();
    out.into_inner()
}

fn contact(n: &Node, name: &str) -> Option<Value> {
    n.json(&["contacts", "list"])
        .into_iter()
        .find(|c| c["name"] == name)
}

#[test]
fn contacts_blocks_privacy_and_profile_follow_on_the_other_device() {
    let (a, b) = pair();
    let mut c = Node::new();
    c.start();
    let mut n = Node::new();
    n.start();
    n.link_to(&a, "laptop", &[]);
    assert!(contact(&n, "Bob").is_some());

    // A contact added on the phone is added on the laptop.
    a.add(&c, "Carol");
    wait_for(T, "Carol on the laptop", || contact(&n, "Carol"));

    // A block made on the laptop holds on the phone; then the unblock too.
    n.json(&["block", "Bob"]);
    wait_for(T, "Bob blocked on the phone", || {
        contact(&a, "Bob").filter(|c| c["blocked"] == true)
    });
    n.json(&["unblock", "Bob"]);
    wait_for(T, "Bob unblocked on the phone", || {
        contact(&a, "Bob").filter(|c| c["blocked"] == false)
    });

    // Privacy settings changed on the phone hold on the laptop.
    a.json(&["privacy", "set", "read-receipts", "off"]);
    a.json(&["privacy", "set", "online", "nobody"]);
    wait_for(T, "the privacy settings on the laptop", || {
        let p = n.json(&["privacy"]).into_iter().next()?;
        (p["read_receipts"] == false && p["online"] == "nobody").then_some(())
    });

    // The profile set on the laptop is the phone's too.
    n.json(&[
        "profile",
        "set",
        "--name",
        "Ada L",
        "--about",
        "on the road",
    ]);
    wait_for(T, "the profile on the phone", || {
        let p = a.json(&["profile"]).into_iter().next()?;
        (p["name"] == "Ada L" && p["about"] == "on the road").then_some(())
    });

    // A photo too large for one envelope follows in parts.
    let photo = noisy_png(200, 200);
    assert!(
        photo.len() > kith_proto::link::MAX_SYNC_AVATAR,
        "{}",
        photo.len()
    );
    assert!(
        photo.len() <= kith_proto::signal::MAX_AVATAR,
        "{}",
        photo.len()
    );
    let file = n.dir.join("me.png");
    std::fs::write(&file, &photo).unwrap();
    n.json(&["profile", "set", "--avatar", file.to_str().unwrap()]);
    wait_for(T, "the large photo on the phone", || {
        let p = a.json(&["profile"]).into_iter().next()?;
        (p["avatar_bytes"] == photo.len()).then_some(())
    });

    // A contact removed on the laptop is removed on the phone.
    n.json(&["contacts", "remove", "Carol"]);
    wait_for(T, "Carol gone from the phone", || {
        contact(&a, "Carol").is_none().then_some(())
    });
    // Bob, untouched, is still there on both.
    assert!(contact(&a, "Bob").is_some());
    assert!(contact(&n, "Bob").is_some());
    drop(b);
}

/// (id, from, status, text) of each message, in order.
fn shown(h: &[Value]) -> Vec<(String, String, String, String)> {
    h.iter()
        .map(|m| {
            (
                m["id"].as_str().unwrap_or_default().to_string(),
                m["from"].as_str().unwrap_or_default().to_string(),
                m["status"].as_str().unwrap_or_default().to_string(),
                m["text"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[test]
fn history_from_before_the_link_is_on_the_new_device() {
    let (a, b) = pair();
    // More than one batch of history, both ways.
    for i in 0..40 {
        b.send("Alice", &format!("to Alice {i}"));
        a.send("Bob", &format!("to Bob {i}"));
    }
    a.wait_received("Bob", 40, T);
    a.wait_status("Bob", 40, "delivered", T);
    let mut n = Node::new();
    n.start();
    n.link_to(&a, "laptop", &["--history-days", "30"]);
    let want = shown(&a.history("Bob"));
    assert_eq!(want.len(), 80);
    // The same ids, ticks and order as on the phone.
    let got = wait_for(T, "the history on the laptop", || {
        let got = shown(&n.history("Bob"));
        (got.len() >= want.len()).then_some(got)
    });
    assert_eq!(got, want);

    // With no history asked for, a device gets none.
    let mut m = Node::new();
    m.start();
    m.link_to(&a, "tablet", &["--history-days", "0"]);
    a.send("Bob", "after the tablet");
    wait_for(T, "the new message on the tablet", || {
        shown(&m.history("Bob"))
            .iter()
            .any(|x| x.3 == "after the tablet")
            .then_some(())
    });
    let on_tablet = shown(&m.history("Bob"));
    assert!(
        !on_tablet.iter().any(|x| x.3 == "to Bob 0"),
        "{on_tablet:?}"
    );
}
