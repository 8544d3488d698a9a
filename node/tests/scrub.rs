//! Deleted text leaves the files: after a delete for everyone and a delete for me, and a
//! clean stop (which scrubs), no file in either node's data directory (the redb store,
//! anything else) holds the text's bytes. The store is sealed at rest and the search index
//! lives in memory, so no text at all is in clear there.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use serde_json::Value;

const T: Duration = Duration::from_secs(30);

fn find<'a>(h: &'a [Value], id: &str) -> Option<&'a Value> {
    h.iter().find(|m| m["id"] == id)
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().map_while(Result::ok) {
        let p = e.path();
        if p.is_dir() {
            files(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// The files under `dir` holding `needle`.
fn holding(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut all = Vec::new();
    files(dir, &mut all);
    all.into_iter()
        .filter(|p| {
            std::fs::read(p)
                .map(|b| b.windows(needle.len()).any(|w| w == needle.as_bytes()))
                .unwrap_or(false)
        })
        .collect()
}

#[test]
fn deleted_text_leaves_every_file_of_both_nodes() {
    let (mut a, mut b) = pair();
    // Lowercase single words: the index keeps them as terms, byte for byte.
    let everyone = "zqxscrubeveryone4711";
    let for_me = "zqxscrubforme4712";
    let kept = "zqxscrubkept4713";
    let id1 = a.send("Bob", everyone);
    let id2 = a.send("Bob", for_me);
    let id3 = a.send("Bob", kept);
    for id in [&id1, &id2, &id3] {
        wait_for(T, "the messages at Bob", || {
            find(&b.history("Alice"), id).map(|_| ())
        });
    }
    // Indexed on both sides.
    for n in [&a, &b] {
        assert_eq!(n.json(&["search", everyone]).len(), 1);
    }

    a.json(&["delete", &id1, "--everyone"]);
    wait_for(T, "the tombstone at Bob", || {
        find(&b.history("Alice"), &id1)
            .filter(|m| m["deleted"] == true)
            .map(|_| ())
    });
    a.json(&["delete", &id2]);
    b.json(&["delete", &id2]);
    a.stop();
    b.stop();

    for n in [&a, &b] {
        for gone in [everyone, for_me] {
            let left = holding(&n.dir, gone);
            assert!(left.is_empty(), "{gone:?} still in {left:?}");
        }
        // The store is sealed at rest and the index lives in memory: what was not deleted
        // is not in clear on disk either (the store-level scrub test in kith-store checks
        // freed pages with a clear store).
        assert!(holding(&n.dir, kept).is_empty());
    }
    // And it is still there, found again after a restart.
    a.start();
    assert!(find(&a.history("Bob"), &id3).is_some());
    assert_eq!(a.json(&["search", kept]).len(), 1);
}
