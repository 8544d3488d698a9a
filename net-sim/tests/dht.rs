//! DHT lookups between 40 real engines over memory links (issue 19): the routing tables
//! fill, a lookup takes few rounds over them, and a record lookup ends when its first
//! valid record comes (Kademlia would go on until the 20 peers closest to the key had
//! answered, and the engine hears of a lookup only when it ends).
//!
//! The users register with the two mailboxes first, which publishes their records again
//! once all 40 run: a record published while the network forms lands on the nodes closest
//! to its key among those started by then, and a lookup goes to the closest of all.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use kith_net_sim::{Scenario, paths};

const SCENARIO: &str = r#"
name = "dht-40"
seed = 19
nodes = 40
mailboxes = 2
pairs = 4
messages = 4
send_over_ms = 4000

[dht]
lookups = 40
bootstraps = 4

[expect]
delivered = 1.0
duplicates = 0
settle_ms = 60000
lookups_found = 0.9
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_take_few_rounds_and_end_at_the_first_record() {
    let s = Scenario::parse(SCENARIO).unwrap();
    let r = kith_net_sim::run(&s).await.unwrap();
    let l = r.lookups.clone().expect("the scenario looks records up");
    println!("{}", r.text());
    assert!(r.failures(&s).is_empty(), "{:?}", r.failures(&s));
    // Every node's table holds most of the others (bucket by bucket, at 40 nodes nearly all).
    assert!(
        l.table_peers[0] >= 10.0,
        "routing tables: {:?}",
        l.table_peers
    );
    // Over those tables every lookup arrives, in at most 3 rounds.
    assert_eq!(l.unreached, 0, "{l:?}");
    assert!(l.rounds_of >= 30, "{l:?}");
    assert!(l.rounds[2] <= 3.0, "rounds: {:?}", l.rounds);
    // The query ends with its first valid record: no requests after it (bar those already
    // in flight). Before, it went on to the 20 closest peers: 20 and more requests.
    assert!(
        l.requests_to_end[1] <= l.hops[1] + paths::ALPHA as f64,
        "requests to the record {:?}, to the query's end {:?}",
        l.hops,
        l.requests_to_end
    );
}
