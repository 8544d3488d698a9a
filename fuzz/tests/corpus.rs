//! Without libFuzzer: every seed is a valid encoding that passes its target's checks, and
//! every file kept under `corpus/<target>/` (seeds, and inputs that once crashed a decoder)
//! still passes them. `KITH_WRITE_SEEDS=1 cargo test` (re)writes the seed files.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

type Check = fn(&[u8]);

fn targets() -> Vec<(&'static str, Check)> {
    vec![
        ("wire_request", kith_fuzz::wire_request),
        ("wire_response", kith_fuzz::wire_response),
        ("sealed", kith_fuzz::sealed),
        ("user_record", kith_fuzz::user_record),
        ("contact_code", kith_fuzz::contact_code),
        ("group_op", kith_fuzz::group_op),
        ("group_frame", kith_fuzz::group_frame),
        ("signal", kith_fuzz::signal),
        ("avatar", kith_fuzz::avatar),
        ("media", kith_fuzz::media),
        #[cfg(feature = "net")]
        ("net_frame", kith_fuzz::net::net_frame),
    ]
}

fn corpus_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target)
}

#[test]
fn seeds_decode_and_pass_their_checks() {
    let write = std::env::var_os("KITH_WRITE_SEEDS").is_some();
    let checks = targets();
    let mut all = kith_fuzz::seeds::all();
    all.push(("net_frame", kith_fuzz::seeds::net_frame()));
    for (target, seeds) in all {
        // `net_frame`'s check needs the `net` feature (libp2p); without it its seeds are
        // checked against the frame decoders only.
        let check = checks.iter().find(|(n, _)| *n == target).map(|(_, c)| c);
        assert!(!seeds.is_empty(), "{target}");
        for (i, seed) in seeds.iter().enumerate() {
            assert!(
                kith_fuzz::accepts(target, seed),
                "seed {i} of {target} is refused"
            );
            if let Some(check) = check {
                check(seed);
            }
            if write {
                let dir = corpus_dir(target);
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(dir.join(format!("seed-{i:02}")), seed).unwrap();
            }
        }
    }
}

#[test]
fn kept_corpus_files_pass() {
    for (target, check) in targets() {
        let Ok(entries) = std::fs::read_dir(corpus_dir(target)) else {
            continue;
        };
        for e in entries {
            let path = e.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            check(&bytes);
        }
    }
}
