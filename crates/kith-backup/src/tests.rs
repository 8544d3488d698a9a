use std::io::{Read, Write};

use proptest::prelude::*;

use super::stream::{StreamReader, StreamWriter};
use super::*;

fn key(pass: &[u8]) -> BackupKey {
    BackupKey::derive(pass, [7; 16], KdfParams::WEAK_FOR_TESTS).unwrap()
}

fn seal(data: &[u8], chunk: u32) -> Vec<u8> {
    let mut w = StreamWriter::with_chunk(Vec::new(), &key(b"pw"), chunk).unwrap();
    w.write_all(data).unwrap();
    w.finish().unwrap()
}

fn open(file: &[u8], pass: &[u8]) -> Result<Vec<u8>, BackupError> {
    let mut r = StreamReader::new(file, &key(pass))?;
    let mut out = Vec::new();
    r.read_to_end(&mut out)?;
    Ok(out)
}

#[test]
fn round_trip_and_wrong_passphrase() {
    let data: Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
    let file = seal(&data, 1024);
    assert_eq!(open(&file, b"pw").unwrap(), data);
    assert!(matches!(
        open(&file, b"other"),
        Err(BackupError::WrongPassphrase)
    ));
    assert!(matches!(
        open(b"not a backup at all", b"pw"),
        Err(BackupError::NotABackup)
    ));
}

#[test]
fn a_stream_cut_at_a_chunk_boundary_is_refused() {
    // 2048 bytes in chunks of 1024: two full chunks and an empty last one.
    let file = seal(&[1u8; 2048], 1024);
    let full = stream::HEADER_LEN + 2 * (1024 + 16);
    assert_eq!(file.len(), full + 16);
    assert!(matches!(
        open(&file[..full], b"pw"),
        Err(BackupError::Damaged(_))
    ));
    assert!(matches!(
        open(&file[..stream::HEADER_LEN + 1040], b"pw"),
        Err(BackupError::Damaged(_))
    ));
}

#[test]
fn swapped_chunks_are_refused() {
    let file = seal(&[3u8; 3000], 1024);
    let h = stream::HEADER_LEN;
    let c = 1024 + 16;
    let mut swapped = file.clone();
    swapped[h..h + c].copy_from_slice(&file[h + c..h + 2 * c]);
    swapped[h + c..h + 2 * c].copy_from_slice(&file[h..h + c]);
    assert!(matches!(
        open(&swapped, b"pw"),
        Err(BackupError::Damaged(_))
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_data_round_trips(data in proptest::collection::vec(any::<u8>(), 0..5000)) {
        prop_assert_eq!(open(&seal(&data, 1024), b"pw").unwrap(), data);
    }

    #[test]
    fn any_flipped_byte_or_cut_is_refused(
        data in proptest::collection::vec(any::<u8>(), 0..4000),
        at in any::<prop::sample::Index>(),
        bit in 0u8..8,
        cut in any::<bool>(),
    ) {
        let file = seal(&data, 1024);
        let i = at.index(file.len());
        let mut bad = file.clone();
        if cut {
            bad.truncate(i);
        } else {
            bad[i] ^= 1 << bit;
        }
        prop_assert!(open(&bad, b"pw").is_err());
    }
}

fn sample_dir() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("media/sub")).unwrap();
    std::fs::write(data.join(KEY_FILE), b"KEYFILE-CANARY").unwrap();
    std::fs::write(data.join("media/sub/file"), vec![9u8; 200_000]).unwrap();
    let store = Store::open(&data.join(STORE_FILE)).unwrap();
    store
        .write(|w| w.set_meta("canary", b"STORE-CANARY"))
        .unwrap();
    store
        .write(|w| w.put_sessions(&kith_types::DeviceKey([1; 32]), &["pickle".to_string()]))
        .unwrap();
    (dir, store)
}

#[test]
fn create_then_restore_brings_back_store_key_file_and_media() {
    let (dir, store) = sample_dir();
    let data = dir.path().join("data");
    let file = dir.path().join("b.kbak");
    let k = BackupKey::derive_new(b"pw", KdfParams::WEAK_FOR_TESTS).unwrap();
    let made = create(&store.snapshot().unwrap(), &data, &k, &file).unwrap();
    assert_eq!(made.files, 2);
    let raw = std::fs::read(&file).unwrap();
    for canary in [&b"KEYFILE-CANARY"[..], b"STORE-CANARY"] {
        assert!(!raw.windows(canary.len()).any(|w| w == canary));
    }
    let target = dir.path().join("restored");
    let k2 = key_for(&file, b"pw").unwrap();
    assert_eq!(restore(&file, &k2, &target).unwrap(), made);
    assert_eq!(
        std::fs::read(target.join(KEY_FILE)).unwrap(),
        b"KEYFILE-CANARY"
    );
    assert_eq!(
        std::fs::read(target.join("media/sub/file")).unwrap().len(),
        200_000
    );
    let s = Store::open(&target.join(STORE_FILE)).unwrap();
    let mut tables = Vec::new();
    s.snapshot()
        .unwrap()
        .export::<StoreError>(|t, _, _| {
            tables.push(t.to_string());
            Ok(())
        })
        .unwrap();
    assert!(tables.iter().any(|t| t == "meta"));
    assert!(
        !tables.iter().any(|t| t == "sessions"),
        "sessions are not restored"
    );
    assert_eq!(
        s.read(|r| r.meta("canary")).unwrap().as_deref(),
        Some(&b"STORE-CANARY"[..])
    );

    // A second restore onto the now full directory is refused.
    drop(s);
    assert!(matches!(
        restore(&file, &k2, &target),
        Err(BackupError::NotEmpty(_))
    ));
}

#[test]
fn a_damaged_file_or_a_wrong_passphrase_leaves_the_target_untouched() {
    let (dir, store) = sample_dir();
    let data = dir.path().join("data");
    let file = dir.path().join("b.kbak");
    let k = BackupKey::derive_new(b"pw", KdfParams::WEAK_FOR_TESTS).unwrap();
    create(&store.snapshot().unwrap(), &data, &k, &file).unwrap();
    assert!(matches!(
        key_for(&file, b"nope"),
        Err(BackupError::WrongPassphrase)
    ));
    let raw = std::fs::read(&file).unwrap();
    let target = dir.path().join("target");
    std::fs::create_dir(&target).unwrap();
    let mut flipped = raw.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x40;
    let cut = raw[..raw.len() - 100].to_vec();
    for bad in [flipped, cut] {
        std::fs::write(&file, &bad).unwrap();
        assert!(matches!(
            restore(&file, &k, &target),
            Err(BackupError::Damaged(_))
        ));
        assert_eq!(std::fs::read_dir(&target).unwrap().count(), 0);
        let leftovers = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(leftovers, 3, "no temporary directory is left behind");
    }
}

#[test]
fn names_outside_the_data_dir_are_not_allowed() {
    assert!(allowed("keys"));
    assert!(allowed("media/ab/cd"));
    assert!(allowed("avatars/ab"));
    for bad in [
        "media",
        "../x",
        "/etc/passwd",
        "media/../keys",
        "kith.redb",
        "media//x/../y",
    ] {
        assert!(!allowed(bad), "{bad}");
    }
}
