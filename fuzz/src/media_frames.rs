//! The `media` target: `/kith/media/1` request and response frames (what a peer, or a
//! mailbox's depositor, sends), the media manifest (inside a message, and in the store), and
//! the header readers run on a file's first and last bytes. The first byte picks which.

use kith_proto::media::{
    self, CHUNK, Manifest, MediaKind, MediaRefusal, MediaRequest, MediaResponse, TAG,
};

use crate::stable;

/// Runs the decoder the first byte picks on the rest.
pub fn media(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 4 {
        0 => {
            if let Ok(req) = MediaRequest::decode(rest) {
                let _ = stable(&req, MediaRequest::encode, MediaRequest::decode);
            }
        }
        1 => {
            if let Ok(resp) = MediaResponse::decode(rest) {
                let _ = stable(&resp, MediaResponse::encode, MediaResponse::decode);
            }
        }
        2 => {
            if let Ok(m) = media::decode_manifest(rest) {
                // What a receiver does next: chunk sizes for every chunk index.
                let n = m.chunks();
                let total: u64 = [0, n / 2, n.saturating_sub(1), n]
                    .iter()
                    .map(|&i| m.chunk_len(i) as u64)
                    .sum();
                assert!(total <= 3 * u64::from(m.chunk_size));
                let _ = stable(&m, media::encode_manifest, media::decode_manifest);
            }
        }
        _ => {
            let half = rest.len() / 2;
            let _ = media::sniff(rest, mode & 4 != 0);
            let _ = media::image_dimensions(rest);
            let _ = media::opus_duration_ms(&rest[..half], &rest[half..]);
        }
    }
}

/// Whether the decoder the first byte picks takes the rest (the seeds must all be taken).
pub fn accepts(data: &[u8]) -> bool {
    data.split_first()
        .is_some_and(|(&mode, rest)| match mode % 4 {
            0 => MediaRequest::decode(rest).is_ok(),
            1 => MediaResponse::decode(rest).is_ok(),
            2 => media::decode_manifest(rest).is_ok(),
            _ => true,
        })
}

fn manifest(kind: MediaKind, thumbnail: bool) -> Manifest {
    Manifest {
        root: [7; 32],
        size: 3 * CHUNK as u64 + 1234,
        chunk_size: CHUNK as u32,
        key: [9; 32],
        kind,
        mime: "image/png".into(),
        name: "photo.png".into(),
        dimensions: Some((640, 480)),
        duration_ms: None,
        thumbnail: thumbnail.then(crate::seeds::tiny_png),
    }
}

/// The seeds: every request (the mailbox's `Hold`, `Put` and `Release` among them), every
/// response, manifests, and a few file heads.
pub fn seeds() -> Vec<Vec<u8>> {
    let index: Vec<u8> = (0..4u8).flat_map(|i| media::hash(&[i])).collect();
    let root = media::hash(&index);
    let requests = [
        MediaRequest::Index { root },
        MediaRequest::Chunk { root, index: 3 },
        MediaRequest::Hold {
            to: [5; 32],
            root,
            sealed: 3 * (CHUNK + TAG) as u64 + 1250,
            index: index.clone(),
        },
        MediaRequest::Put {
            to: [5; 32],
            root,
            index: 1,
            bytes: vec![0xa5; TAG + 100],
        },
        MediaRequest::Release { root },
    ];
    let responses = [
        MediaResponse::Index(index),
        MediaResponse::Chunk(vec![0x5a; TAG + 64]),
        MediaResponse::Refused(MediaRefusal::Full),
        MediaResponse::Refused(MediaRefusal::Invalid),
        MediaResponse::Stored,
    ];
    let tag = |mode: u8, body: Vec<u8>| {
        let mut v = vec![mode];
        v.extend(body);
        v
    };
    let mut out = Vec::new();
    out.extend(requests.iter().map(|r| tag(0, r.encode().unwrap())));
    out.extend(responses.iter().map(|r| tag(1, r.encode().unwrap())));
    for m in [
        manifest(MediaKind::Photo, true),
        Manifest {
            kind: MediaKind::Voice,
            mime: "audio/ogg".into(),
            dimensions: None,
            duration_ms: Some(4200),
            ..manifest(MediaKind::Voice, false)
        },
    ] {
        out.push(tag(2, media::encode_manifest(&m).unwrap()));
    }
    out.push(tag(3, crate::seeds::tiny_png()));
    let mut ogg = b"OggS\0\x02".to_vec();
    ogg.extend_from_slice(&[0; 22]);
    ogg.extend_from_slice(b"OpusHead\x01\x01\x38\x01\x80\xbb\0\0\0\0\0");
    ogg.extend_from_slice(b"OggS\0\x04\x00\x2c\x03\0\0\0\0\0");
    out.push(tag(7, ogg));
    out
}
