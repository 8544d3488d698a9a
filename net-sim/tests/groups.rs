//! A 50-member group in one process: members go offline and come back while messages flow;
//! every member must end with every message exactly once, each sender's messages in order,
//! the same membership; a removed member reads nothing sent after its removal.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use kith_net_sim::{GroupScenario, run_group};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_member_group_gets_everything_once_in_order() {
    let s = GroupScenario::parse(include_str!("../scenarios/group-ci.toml")).unwrap();
    let r = run_group(&s).await.unwrap();
    eprintln!("{}", r.text());
    assert!(r.failures().is_empty(), "{:?}", r.failures());
    assert!(r.restarts > 0, "members churned");
    assert!(r.expected > 0 && r.delivered == r.expected);
}

/// Members join over time (waves, some offline when added and online later): everyone
/// still ends with every message once and in order, and the same membership.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_joining_over_time_get_everything_once_in_order() {
    let s = GroupScenario::parse(include_str!("../scenarios/group-join-ci.toml")).unwrap();
    let r = run_group(&s).await.unwrap();
    eprintln!("{}", r.text());
    assert!(r.failures().is_empty(), "{:?}", r.failures());
    assert!(
        r.joined_late > 0,
        "some members came online after being added"
    );
    assert!(
        r.last_added_s > 0.0,
        "members were added after the creation"
    );
    assert!(r.expected > 0 && r.delivered == r.expected);
}
