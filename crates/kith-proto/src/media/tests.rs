use proptest::prelude::*;

use super::*;

fn manifest(size: u64) -> Manifest {
    Manifest {
        root: [1; 32],
        size,
        chunk_size: CHUNK as u32,
        key: [7; 32],
        kind: MediaKind::Document,
        mime: "application/pdf".into(),
        name: "a.pdf".into(),
        dimensions: None,
        duration_ms: None,
        thumbnail: None,
    }
}

/// Seals a file the way a sender does; returns the root, the index and the sealed chunks.
fn seal_file(key: &[u8; 32], data: &[u8], chunk: usize) -> (Hash, Index, Vec<Vec<u8>>) {
    let count = chunk_count(data.len() as u64, chunk as u32);
    let mut b = IndexBuilder::new(count);
    let mut sealed = Vec::new();
    for (i, c) in data.chunks(chunk).enumerate() {
        let s = seal_chunk(key, i as u32, count, c);
        b.push(&s);
        sealed.push(s);
    }
    let (root, index) = b.finish();
    (root, index, sealed)
}

#[test]
fn chunks_count_and_lengths() {
    let m = manifest(CHUNK as u64 * 2 + 5);
    assert_eq!(m.chunks(), 3);
    assert_eq!(m.chunk_len(0), CHUNK);
    assert_eq!(m.chunk_len(2), 5);
    assert_eq!(m.chunk_len(3), 0);
    assert_eq!(manifest(1).chunks(), 1);
    assert_eq!(chunk_count(MAX_FILE, CHUNK as u32) as usize * 32, MAX_INDEX);
}

#[test]
fn manifest_limits() {
    assert!(manifest(1).check().is_ok());
    assert!(manifest(MAX_FILE).check().is_ok());
    assert!(manifest(0).check().is_err());
    assert!(manifest(MAX_FILE + 1).check().is_err());
    let mut m = manifest(10);
    m.thumbnail = Some(vec![0; MAX_THUMBNAIL + 1]);
    assert!(m.check().is_err());
    let mut m = manifest(10);
    m.chunk_size = 1;
    assert!(
        m.check().is_err(),
        "a tiny chunk size would make a huge index"
    );
    let mut m = manifest(10);
    m.name = "x".repeat(MAX_NAME + 1);
    assert!(m.check().is_err());
}

#[test]
fn the_manifest_debug_hides_the_key_and_name() {
    let m = manifest(10);
    let s = format!("{m:?}");
    assert!(!s.contains("a.pdf"));
    assert!(!s.contains("7, 7"));
}

/// A chunk sealed at one position does not open at another, nor in a file of another
/// length (no reordering, no truncation), nor under another key, nor after a bit flip.
#[test]
fn a_chunk_opens_only_where_it_was_sealed() {
    let key = [3; 32];
    let s = seal_chunk(&key, 1, 4, b"hello");
    assert_eq!(open_chunk(&key, 1, 4, s.clone()).unwrap(), b"hello");
    assert_eq!(open_chunk(&key, 2, 4, s.clone()), Err(MediaError::Seal));
    assert_eq!(open_chunk(&key, 1, 3, s.clone()), Err(MediaError::Seal));
    assert_eq!(open_chunk(&[4; 32], 1, 4, s.clone()), Err(MediaError::Seal));
    let mut bad = s.clone();
    bad[0] ^= 1;
    assert_eq!(open_chunk(&key, 1, 4, bad), Err(MediaError::Seal));
    assert_eq!(open_chunk(&key, 1, 4, vec![0; 3]), Err(MediaError::Length));
    // Deterministic: every source serves the same bytes.
    assert_eq!(seal_chunk(&key, 1, 4, b"hello"), s);
}

#[test]
fn the_index_checks_the_root_and_each_chunk() {
    let data: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
    let (root, index, sealed) = seal_file(&[9; 32], &data, 16 * 1024);
    let count = index.len();
    assert_eq!(count, 7);
    let again = Index::from_bytes(&root, count, index.as_bytes().to_vec()).unwrap();
    assert_eq!(again, index);
    assert_eq!(
        Index::from_bytes(&root, count + 1, index.as_bytes().to_vec()),
        Err(MediaError::Length)
    );
    let mut tampered = index.as_bytes().to_vec();
    tampered[5] ^= 1;
    assert_eq!(
        Index::from_bytes(&root, count, tampered),
        Err(MediaError::Hash)
    );
    for (i, s) in sealed.iter().enumerate() {
        assert!(index.verify(i as u32, s).is_ok());
    }
    let mut bad = sealed[3].clone();
    bad[10] ^= 0x80;
    assert_eq!(index.verify(3, &bad), Err(MediaError::Hash));
    assert_eq!(index.verify(2, &sealed[3]), Err(MediaError::Hash));
    assert_eq!(index.verify(99, &sealed[3]), Err(MediaError::Length));
}

#[test]
fn frames_round_trip_and_are_bounded() {
    let req = MediaRequest::Chunk {
        root: [5; 32],
        index: 9,
    };
    assert_eq!(MediaRequest::decode(&req.encode().unwrap()).unwrap(), req);
    let resp = MediaResponse::Chunk(vec![1; CHUNK + TAG]);
    assert_eq!(
        MediaResponse::decode(&resp.encode().unwrap()).unwrap(),
        resp
    );
    let too_big = MediaResponse::Chunk(vec![1; CHUNK + TAG + 1]);
    assert!(MediaResponse::decode(&too_big.encode().unwrap()).is_err());
    let odd = MediaResponse::Index(vec![1; 33]);
    assert!(MediaResponse::decode(&odd.encode().unwrap()).is_err());
    assert!(format!("{resp:?}").contains("bytes"));
}

#[test]
fn sniffing_reads_content_not_names() {
    let png = [
        0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, b'I', b'H', b'D', b'R', 0, 0,
        1, 0, 0, 0, 0, 200, 8, 6, 0, 0, 0,
    ];
    let (mime, kind) = sniff(&png, false);
    assert_eq!(mime, "image/png");
    assert_eq!(kind, MediaKind::Photo);
    assert_eq!(image_dimensions(&png), Some((256, 200)));
    assert_eq!(sniff(b"just some text", false).1, MediaKind::Document);
    let mut ogg = b"OggS\0\x02".to_vec();
    ogg.extend_from_slice(&[0; 22]);
    ogg.extend_from_slice(b"\x13OpusHead\x01\x01\x38\x01\x80\xbb\0\0\0\0\0");
    assert_eq!(sniff(&ogg, true).1, MediaKind::Voice);
    assert_eq!(sniff(&ogg, false).1, MediaKind::Audio);
    // The last page's granule: 3 s at 48 kHz plus the 312-sample pre-skip.
    let mut tail = b"OggS\0\x04".to_vec();
    tail.extend_from_slice(&(3 * 48_000u64 + 312).to_le_bytes());
    tail.extend_from_slice(&[0; 20]);
    assert_eq!(opus_duration_ms(&ogg, &tail), Some(3000));
    assert_eq!(opus_duration_ms(b"nothing", &tail), None);
}

proptest! {
    /// Any file seals, indexes and opens back to itself, chunk by chunk.
    #[test]
    fn any_file_round_trips(data in proptest::collection::vec(any::<u8>(), 1..70_000), key in any::<[u8; 32]>()) {
        let chunk = 16 * 1024;
        let (root, index, sealed) = seal_file(&key, &data, chunk);
        let count = index.len();
        let index = Index::from_bytes(&root, count, index.as_bytes().to_vec()).unwrap();
        let mut out = Vec::new();
        for (i, s) in sealed.into_iter().enumerate() {
            index.verify(i as u32, &s).unwrap();
            out.extend(open_chunk(&key, i as u32, count, s).unwrap());
        }
        prop_assert_eq!(out, data);
    }

    /// Random bytes never panic a decoder.
    #[test]
    fn random_frames_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = MediaRequest::decode(&bytes);
        let _ = MediaResponse::decode(&bytes);
        let _ = decode_manifest(&bytes);
        let _ = sniff(&bytes, true);
        let _ = image_dimensions(&bytes);
        let _ = opus_duration_ms(&bytes, &bytes);
    }
}

/// The mailbox frames: a chunk deposit and a whole 2 GiB file's index fit one frame; sizes
/// outside the rules are refused when decoded; `Debug` shows no bytes.
#[test]
fn mailbox_frames_round_trip_and_are_bounded() {
    let put = MediaRequest::Put {
        to: [1; 32],
        root: [2; 32],
        index: 3,
        bytes: vec![7; CHUNK + TAG],
    };
    assert_eq!(MediaRequest::decode(&put.encode().unwrap()).unwrap(), put);
    assert!(!format!("{put:?}").contains("7, 7"));
    let count = (MAX_INDEX / 32) as u64;
    let hold = MediaRequest::Hold {
        to: [1; 32],
        root: [2; 32],
        sealed: count * (CHUNK + TAG) as u64,
        index: vec![5; MAX_INDEX],
    };
    assert_eq!(MediaRequest::decode(&hold.encode().unwrap()).unwrap(), hold);
    let grant = MediaRequest::Grant {
        to: [4; 32],
        root: [5; 32],
    };
    assert_eq!(
        MediaRequest::decode(&grant.encode().unwrap()).unwrap(),
        grant
    );
    let too_big = MediaRequest::Put {
        to: [1; 32],
        root: [2; 32],
        index: 3,
        bytes: vec![7; CHUNK + TAG + 1],
    };
    assert!(MediaRequest::decode(&too_big.encode().unwrap()).is_err());
    let overstated = MediaRequest::Hold {
        to: [1; 32],
        root: [2; 32],
        sealed: (CHUNK + TAG) as u64 + 1,
        index: vec![5; 32],
    };
    assert!(MediaRequest::decode(&overstated.encode().unwrap()).is_err());
    let release = MediaRequest::Release { root: [2; 32] };
    assert_eq!(
        MediaRequest::decode(&release.encode().unwrap()).unwrap(),
        release
    );
    let stored = MediaResponse::Stored;
    assert_eq!(
        MediaResponse::decode(&stored.encode().unwrap()).unwrap(),
        stored
    );
}

/// Have-bitmaps: one bit per chunk, appended after the older frames (their encodings keep
/// their tags); a bitmap longer than a 2 GiB file needs is refused when decoded.
#[test]
fn have_frames_round_trip_and_are_bounded() {
    let req = MediaRequest::Have { root: [3; 32] };
    assert_eq!(MediaRequest::decode(&req.encode().unwrap()).unwrap(), req);
    // The older variants keep their numbers: `Index` is still the first tag.
    let index = MediaRequest::Index { root: [3; 32] };
    assert_eq!(index.encode().unwrap()[1], 0);
    assert_eq!(req.encode().unwrap()[1], 6);
    assert_eq!(have_len(80), 10);
    assert_eq!(have_len(81), 11);
    assert_eq!(have_len((MAX_FILE / CHUNK as u64) as u32), MAX_HAVE);
    let mut bits = vec![0u8; have_len(81)];
    set_have_bit(&mut bits, 80, true);
    set_have_bit(&mut bits, 3, true);
    assert!(have_bit(&bits, 80) && have_bit(&bits, 3) && !have_bit(&bits, 4));
    set_have_bit(&mut bits, 3, false);
    assert!(!have_bit(&bits, 3));
    set_have_bit(&mut bits, 10_000, true);
    assert!(!have_bit(&bits, 10_000), "past the end is never held");
    let resp = MediaResponse::Have(vec![0xff; MAX_HAVE]);
    assert_eq!(
        MediaResponse::decode(&resp.encode().unwrap()).unwrap(),
        resp
    );
    let too_big = MediaResponse::Have(vec![0xff; MAX_HAVE + 1]);
    assert!(MediaResponse::decode(&too_big.encode().unwrap()).is_err());
    assert_eq!(format!("{resp:?}"), format!("Have({MAX_HAVE} bytes)"));
}
