//! The CI scenario: nodes churn (some never come back) and a partition heals, over links
//! with a little latency; every acknowledged message must reach a recipient that is still
//! around exactly once, DHT lookups must find most records, and the same seed must give the
//! same delivery results twice.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use kith_net_sim::{Scenario, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ci_scenario_delivers_everything_once_and_repeats() {
    let text = include_str!("../scenarios/ci-small.toml");
    let s = Scenario::parse(text).unwrap();
    let first = run(&s).await.unwrap();
    eprintln!("{}", first.text());
    assert!(first.failures(&s).is_empty(), "{:?}", first.failures(&s));
    assert!(
        first.restarts > 0 && first.to_departed > 0,
        "the faults happened"
    );
    assert!(first.sent > 0 && first.delivered > 0);
    assert!(first.bytes_sent > 0, "memory links count their bytes");
    let lookups = first
        .lookups
        .as_ref()
        .expect("the scenario makes DHT lookups");
    assert!(
        lookups.started > 0 && lookups.finished > 0,
        "lookups ran: {lookups:?}"
    );
    let second = run(&s).await.unwrap();
    eprintln!("{}", second.text());
    assert!(second.failures(&s).is_empty(), "{:?}", second.failures(&s));
    assert_eq!(
        first.outcome(),
        second.outcome(),
        "same seed, same delivery results"
    );
}
