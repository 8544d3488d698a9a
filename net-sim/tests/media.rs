//! A group file fetched by every member at once (issue #15): each member ends with the
//! bytes sent, and the sender serves at most three times the file, the members passing
//! chunks on to each other (`kith_engine::media`'s swarm).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use kith_net_sim::{GroupScenario, run_group};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_file_reaches_every_member_and_the_sender_uploads_at_most_3x() {
    let s = GroupScenario::parse(include_str!("../scenarios/media-ci.toml")).unwrap();
    let r = run_group(&s).await.unwrap();
    eprintln!("{}", r.text());
    let m = r.media.as_ref().expect("the scenario has a file");
    assert_eq!(m.fetchers, 9);
    assert_eq!(m.complete, m.fetchers, "every member has the file");
    assert_eq!(m.identical, m.fetchers, "every copy is the file sent");
    assert!(
        m.sender_ratio <= 3.0,
        "the sender served {:.2}x the file",
        m.sender_ratio
    );
    assert!(m.sender_served > 0, "the sender served something");
    assert!(r.failures().is_empty(), "{:?}", r.failures());
}

/// The benchmark, `media-64.toml` (64 members, 20 MiB, 50 ms links): minutes, so only on
/// demand (`cargo test -p kith-net-sim --test media -- --ignored`; the release binary's
/// `net-sim group net-sim/scenarios/media-64.toml` is the measured run).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: minutes"]
async fn media_64() {
    let s = GroupScenario::parse(include_str!("../scenarios/media-64.toml")).unwrap();
    let r = run_group(&s).await.unwrap();
    println!("{}", r.text());
    assert!(r.failures().is_empty(), "{:?}", r.failures());
}
