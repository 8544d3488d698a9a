//! Media: the encrypted, content-addressed form of a file, and the frames of `/kith/media/1`
//! that fetch it. Everything here is pure (no I/O): the engine streams files through it.
//!
//! A file is cut into chunks of [`CHUNK`] bytes (the last one shorter). Each chunk is sealed
//! with XChaCha20-Poly1305 under a fresh random 32-byte key of the file ([`seal_chunk`]);
//! the nonce is the chunk's number and the associated data binds the number and the chunk
//! count, so chunks cannot be reordered, swapped between positions or the file cut short.
//! Each sealed chunk is addressed by its BLAKE3 hash; the hashes in order make the file's
//! **index** (32 bytes per chunk, at most [`MAX_INDEX`]: 256 KiB for a 2 GiB file), and the
//! BLAKE3 hash of the index is the file's **root**. The [`Manifest`] (root, size, key, type,
//! name, dimensions, duration, an optional small thumbnail) travels inside the end-to-end
//! encrypted message; the index is fetched by root and checked against it, then every chunk
//! against its hash in the index before it is opened and written. Whoever holds the sealed
//! bytes (the sender, a fellow group member, later a mailbox) can serve and check them
//! without the key.
//!
//! Sealing is deterministic for a given key, number and plaintext, so a node keeps only the
//! plaintext file and seals chunks again when it serves them: every source serves the same
//! bytes, which the index checks.

use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};

use crate::codec::{self, DecodeError, EncodeError};
use crate::wire::{framed, unframed};

/// The libp2p protocol name.
pub const MEDIA_PROTOCOL: &str = "/kith/media/1";
/// The frame version.
pub const MEDIA_VERSION: u8 = 1;
/// Plaintext bytes per chunk (the last chunk of a file may be shorter).
pub const CHUNK: usize = 256 * 1024;
/// Bytes the seal adds to a chunk (the Poly1305 tag).
pub const TAG: usize = 16;
/// Largest file, in bytes (2 GiB).
pub const MAX_FILE: u64 = 2 << 30;
/// Largest index (32 bytes per chunk of a [`MAX_FILE`] file).
pub const MAX_INDEX: usize = (MAX_FILE / CHUNK as u64) as usize * 32;
/// Largest `/kith/media/1` frame, length prefix excluded (a chunk or an index, with room).
pub const MAX_MEDIA_FRAME: usize = CHUNK + 4096;
/// Longest file name, in bytes.
pub const MAX_NAME: usize = 255;
/// Longest media type, in bytes.
pub const MAX_MIME: usize = 127;
/// Largest thumbnail carried in a manifest.
pub const MAX_THUMBNAIL: usize = 16 * 1024;

/// A content address: a BLAKE3 hash.
pub type Hash = [u8; 32];

/// The BLAKE3 hash of `bytes`.
pub fn hash(bytes: &[u8]) -> Hash {
    *blake3::hash(bytes).as_bytes()
}

/// What a file is, for the way it is shown and whether it downloads by itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum MediaKind {
    /// A picture.
    Photo,
    /// A video.
    Video,
    /// A voice note (recorded to be heard in the chat).
    Voice,
    /// Other audio.
    Audio,
    /// Anything else.
    Document,
}

impl MediaKind {
    /// The name shown and used in settings.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Photo => "photo",
            Self::Video => "video",
            Self::Voice => "voice",
            Self::Audio => "audio",
            Self::Document => "document",
        }
    }
}

/// Everything a recipient needs to fetch, check and open a file. Travels only inside an
/// end-to-end encrypted message (it holds the key); `Debug` never shows the key or name.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The BLAKE3 hash of the index.
    pub root: Hash,
    /// Plaintext size in bytes (1 to [`MAX_FILE`]).
    pub size: u64,
    /// Plaintext bytes per chunk ([`CHUNK`]).
    pub chunk_size: u32,
    /// The file's XChaCha20-Poly1305 key.
    pub key: [u8; 32],
    /// What it is.
    pub kind: MediaKind,
    /// The media type sniffed from the content (`application/octet-stream` if unknown).
    pub mime: String,
    /// The file name the sender gave (no directories).
    pub name: String,
    /// Image or video width and height in pixels, when known.
    pub dimensions: Option<(u32, u32)>,
    /// Audio or video duration in milliseconds, when known.
    pub duration_ms: Option<u64>,
    /// A small preview image (JPEG or PNG), when made.
    #[serde(with = "serde_bytes")]
    pub thumbnail: Option<Vec<u8>>,
}

impl std::fmt::Debug for Manifest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manifest")
            .field("root", &hex::encode(&self.root[..8]))
            .field("size", &self.size)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl Manifest {
    /// How many chunks the file has.
    pub fn chunks(&self) -> u32 {
        chunk_count(self.size, self.chunk_size)
    }

    /// The plaintext length of chunk `i`.
    pub fn chunk_len(&self, i: u32) -> usize {
        let start = u64::from(i) * u64::from(self.chunk_size);
        self.size
            .saturating_sub(start)
            .min(u64::from(self.chunk_size)) as usize
    }

    /// Checks the limits of a manifest from a peer.
    pub fn check(&self) -> Result<(), DecodeError> {
        if self.size == 0 || self.size > MAX_FILE {
            return Err(DecodeError::Invalid("media size"));
        }
        if self.chunk_size < 16 * 1024 || self.chunk_size as usize > CHUNK {
            return Err(DecodeError::Invalid("media chunk size"));
        }
        if self.chunks() as usize * 32 > MAX_INDEX {
            return Err(DecodeError::Invalid("media index size"));
        }
        if self.mime.len() > MAX_MIME || self.name.len() > MAX_NAME {
            return Err(DecodeError::Invalid("media name or type"));
        }
        if self
            .thumbnail
            .as_ref()
            .is_some_and(|t| t.len() > MAX_THUMBNAIL)
        {
            return Err(DecodeError::Invalid("thumbnail size"));
        }
        Ok(())
    }
}

/// How many chunks of `chunk_size` a file of `size` bytes has.
pub fn chunk_count(size: u64, chunk_size: u32) -> u32 {
    let c = u64::from(chunk_size.max(1));
    u32::try_from(size.div_ceil(c)).unwrap_or(u32::MAX)
}

/// Why a chunk or an index was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MediaError {
    /// Its hash is not the one expected.
    #[error("hash mismatch")]
    Hash,
    /// It does not open with the file's key.
    #[error("does not decrypt")]
    Seal,
    /// Its length is wrong.
    #[error("wrong length")]
    Length,
}

fn nonce_and_aad(index: u32, count: u32) -> (XNonce, [u8; 24]) {
    let mut nonce = [0u8; 24];
    nonce[..4].copy_from_slice(&index.to_be_bytes());
    let mut aad = *b"kith-media-v1\0\0\0\0\0\0\0\0\0\0\0";
    aad[16..20].copy_from_slice(&index.to_be_bytes());
    aad[20..24].copy_from_slice(&count.to_be_bytes());
    (XNonce::from(nonce), aad)
}

/// Seals plaintext chunk `index` of `count` under the file's `key`.
pub fn seal_chunk(key: &[u8; 32], index: u32, count: u32, plain: &[u8]) -> Vec<u8> {
    let cipher = XChaCha20Poly1305::new(&(*key).into());
    let (nonce, aad) = nonce_and_aad(index, count);
    let mut buf = Vec::with_capacity(plain.len() + TAG);
    buf.extend_from_slice(plain);
    // Encrypting into a Vec fails only when it cannot grow, which it can.
    if cipher.encrypt_in_place(&nonce, &aad, &mut buf).is_err() {
        buf.clear();
    }
    buf
}

/// Opens sealed chunk `index` of `count` (check its hash first with [`Index::verify`]).
pub fn open_chunk(
    key: &[u8; 32],
    index: u32,
    count: u32,
    sealed: Vec<u8>,
) -> Result<Vec<u8>, MediaError> {
    if sealed.len() < TAG {
        return Err(MediaError::Length);
    }
    let cipher = XChaCha20Poly1305::new(&(*key).into());
    let (nonce, aad) = nonce_and_aad(index, count);
    let mut buf = sealed;
    cipher
        .decrypt_in_place(&nonce, &aad, &mut buf)
        .map_err(|_| MediaError::Seal)?;
    Ok(buf)
}

/// The hashes of a file's sealed chunks, in order, checked against the root.
#[derive(Clone, PartialEq, Eq)]
pub struct Index(Vec<u8>);

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Index({} chunks)", self.len())
    }
}

impl Index {
    /// Takes index bytes from a peer or a file: they must hash to `root` and list `count`
    /// chunks.
    pub fn from_bytes(root: &Hash, count: u32, bytes: Vec<u8>) -> Result<Self, MediaError> {
        if bytes.len() != count as usize * 32 {
            return Err(MediaError::Length);
        }
        if &hash(&bytes) != root {
            return Err(MediaError::Hash);
        }
        Ok(Self(bytes))
    }

    /// The index bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// How many chunks it lists.
    pub fn len(&self) -> u32 {
        (self.0.len() / 32) as u32
    }

    /// Whether it lists none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `sealed` is chunk `i`.
    pub fn verify(&self, i: u32, sealed: &[u8]) -> Result<(), MediaError> {
        let at = i as usize * 32;
        let want = self.0.get(at..at + 32).ok_or(MediaError::Length)?;
        if hash(sealed).as_slice() == want {
            Ok(())
        } else {
            Err(MediaError::Hash)
        }
    }
}

/// Builds a file's index while its chunks are sealed one by one, in order.
#[derive(Debug)]
pub struct IndexBuilder {
    hashes: Vec<u8>,
}

impl IndexBuilder {
    /// For a file of `count` chunks.
    pub fn new(count: u32) -> Self {
        Self {
            hashes: Vec::with_capacity(count as usize * 32),
        }
    }

    /// Notes the next sealed chunk.
    pub fn push(&mut self, sealed: &[u8]) {
        self.hashes.extend_from_slice(&hash(sealed));
    }

    /// The root and the index.
    pub fn finish(self) -> (Hash, Index) {
        (hash(&self.hashes), Index(self.hashes))
    }
}

/// A `/kith/media/1` request. `Debug` shows no chunk or index bytes.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum MediaRequest {
    /// The index of the file with this root.
    Index { root: Hash },
    /// Sealed chunk `index` of the file with this root.
    Chunk { root: Hash, index: u32 },
    /// To a mailbox: keep the file with this root for the device registered there under the
    /// Curve25519 key `to`, `sealed` bytes of sealed chunks in all; its index comes along
    /// (checked against the root). Answered `Stored` or refused (`Unauthorized`: no such
    /// device registered here; `Full`: over the device's media quota).
    Hold {
        to: [u8; 32],
        root: Hash,
        sealed: u64,
        #[serde(with = "serde_bytes")]
        index: Vec<u8>,
    },
    /// To a mailbox: sealed chunk `index` of a file it holds for `to` (checked against the
    /// file's index before it is kept).
    Put {
        to: [u8; 32],
        root: Hash,
        index: u32,
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
    },
    /// To a mailbox, from a device registered there: it has the file; stop keeping it for it.
    Release { root: Hash },
    /// To a mailbox: keep the file with this root, which it holds whole already (for other
    /// devices registered there), for the device registered under the Curve25519 key `to`
    /// too; no chunk is sent again (one copy per mailbox node). Answered `Stored`, or
    /// refused (`NotFound`: not held whole here, deposit it with `Hold`; `Unauthorized`:
    /// no such device; `Full`: over the device's media quota).
    Grant { to: [u8; 32], root: Hash },
    /// Which chunks of the file with this root the node holds (a group member fetching it
    /// too holds some): answered [`MediaResponse::Have`], or refused as `Index` and `Chunk`
    /// are (`NotFound`: none of it here).
    Have { root: Hash },
}

impl std::fmt::Debug for MediaRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let short = |h: &Hash| hex::encode(&h[..8]);
        match self {
            Self::Index { root } => write!(f, "Index({})", short(root)),
            Self::Chunk { root, index } => write!(f, "Chunk({}, {index})", short(root)),
            Self::Hold { root, sealed, .. } => write!(f, "Hold({}, {sealed} bytes)", short(root)),
            Self::Put {
                root, index, bytes, ..
            } => write!(f, "Put({}, {index}, {} bytes)", short(root), bytes.len()),
            Self::Release { root } => write!(f, "Release({})", short(root)),
            Self::Grant { root, .. } => write!(f, "Grant({})", short(root)),
            Self::Have { root } => write!(f, "Have({})", short(root)),
        }
    }
}

/// Why a media request was not served.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum MediaRefusal {
    /// This node does not have it (yet).
    NotFound,
    /// The asker was not sent this file.
    Unauthorized,
    /// Too many requests now; retry later.
    Busy,
    /// A mailbox: keeping it would go over the device's media quota.
    Full,
    /// A mailbox: it fails its check (a chunk not in the index, an index not of the root).
    Invalid,
}

/// The answer to a [`MediaRequest`]. `Debug` shows lengths only.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum MediaResponse {
    /// The index bytes.
    Index(#[serde(with = "serde_bytes")] Vec<u8>),
    /// The sealed chunk.
    Chunk(#[serde(with = "serde_bytes")] Vec<u8>),
    /// Not served.
    Refused(MediaRefusal),
    /// A mailbox kept it (on disk) or let it go.
    Stored,
    /// The chunks held, one bit each (chunk `i` is bit `i % 8` of byte `i / 8`):
    /// [`have_len`] bytes for the file's chunk count, at most [`MAX_HAVE`].
    Have(#[serde(with = "serde_bytes")] Vec<u8>),
}

/// Largest have-bitmap: one bit per chunk of a [`MAX_FILE`] file.
pub const MAX_HAVE: usize = MAX_INDEX / 32 / 8;

/// The length of the have-bitmap of a file of `chunks` chunks.
pub fn have_len(chunks: u32) -> usize {
    chunks.div_ceil(8) as usize
}

/// Whether chunk `i` is set in have-bitmap `bits` (false past its end).
pub fn have_bit(bits: &[u8], i: u32) -> bool {
    bits.get(i as usize / 8)
        .is_some_and(|b| b & (1 << (i % 8)) != 0)
}

/// Sets (or clears) chunk `i` in have-bitmap `bits` (nothing past its end).
pub fn set_have_bit(bits: &mut [u8], i: u32, on: bool) {
    if let Some(b) = bits.get_mut(i as usize / 8) {
        if on {
            *b |= 1 << (i % 8);
        } else {
            *b &= !(1 << (i % 8));
        }
    }
}

impl std::fmt::Debug for MediaResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Index(b) => write!(f, "Index({} bytes)", b.len()),
            Self::Chunk(b) => write!(f, "Chunk({} bytes)", b.len()),
            Self::Refused(r) => write!(f, "Refused({r:?})"),
            Self::Stored => write!(f, "Stored"),
            Self::Have(b) => write!(f, "Have({} bytes)", b.len()),
        }
    }
}

impl MediaRequest {
    /// Encodes the frame body (version byte and value).
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        framed(MEDIA_VERSION, self)
    }

    /// Decodes a frame body and checks its sizes.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let r: Self = unframed(MEDIA_VERSION, MAX_MEDIA_FRAME, bytes)?;
        match &r {
            Self::Hold { index, sealed, .. } => {
                let count = (index.len() / 32) as u64;
                if index.is_empty() || index.len() > MAX_INDEX || index.len() % 32 != 0 {
                    return Err(DecodeError::Invalid("index size"));
                }
                if *sealed <= count * TAG as u64 || *sealed > count * (CHUNK + TAG) as u64 {
                    return Err(DecodeError::Invalid("sealed size"));
                }
                Ok(r)
            }
            Self::Put { bytes, .. } if bytes.len() > CHUNK + TAG || bytes.len() < TAG => {
                Err(DecodeError::Invalid("chunk size"))
            }
            _ => Ok(r),
        }
    }
}

impl MediaResponse {
    /// Encodes the frame body (version byte and value).
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        framed(MEDIA_VERSION, self)
    }

    /// Decodes a frame body and checks its size.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let r: Self = unframed(MEDIA_VERSION, MAX_MEDIA_FRAME, bytes)?;
        match &r {
            Self::Index(b) if b.len() > MAX_INDEX || b.len() % 32 != 0 => {
                Err(DecodeError::Invalid("index size"))
            }
            Self::Chunk(b) if b.len() > CHUNK + TAG || b.len() < TAG => {
                Err(DecodeError::Invalid("chunk size"))
            }
            Self::Have(b) if b.len() > MAX_HAVE => Err(DecodeError::Invalid("have size")),
            _ => Ok(r),
        }
    }
}

/// Encodes a manifest alone (for the store).
pub fn encode_manifest(m: &Manifest) -> Result<Vec<u8>, EncodeError> {
    codec::encode(m)
}

/// Decodes and checks a stored manifest.
pub fn decode_manifest(bytes: &[u8]) -> Result<Manifest, DecodeError> {
    let m: Manifest = codec::decode(bytes, 64 * 1024)?;
    m.check()?;
    Ok(m)
}

/// What a file's first bytes say it is: its media type and kind. `voice` marks audio
/// recorded as a voice note.
pub fn sniff(head: &[u8], voice: bool) -> (String, MediaKind) {
    let mime = infer::get(head)
        .map(|t| t.mime_type().to_string())
        .unwrap_or_else(|| "application/octet-stream".to_string());
    let kind = if mime.starts_with("image/") {
        MediaKind::Photo
    } else if mime.starts_with("video/") {
        MediaKind::Video
    } else if mime.starts_with("audio/") {
        if voice {
            MediaKind::Voice
        } else {
            MediaKind::Audio
        }
    } else {
        MediaKind::Document
    };
    (mime, kind)
}

/// Width and height of an image from its first bytes (headers only: nothing is decoded),
/// when they are sane (1 to 65,535 a side).
pub fn image_dimensions(head: &[u8]) -> Option<(u32, u32)> {
    let s = imagesize::blob_size(head).ok()?;
    let (w, h) = (u32::try_from(s.width).ok()?, u32::try_from(s.height).ok()?);
    ((1..=65_535).contains(&w) && (1..=65_535).contains(&h)).then_some((w, h))
}

/// The duration of an Ogg Opus stream, from its first bytes (the `OpusHead` packet with its
/// pre-skip) and its last bytes (the last page's granule position, at 48 kHz).
pub fn opus_duration_ms(head: &[u8], tail: &[u8]) -> Option<u64> {
    let at = find(head, b"OpusHead")?;
    let pre_skip = u16::from_le_bytes(head.get(at + 10..at + 12)?.try_into().ok()?);
    let last = rfind(tail, b"OggS")?;
    let granule = u64::from_le_bytes(tail.get(last + 6..last + 14)?.try_into().ok()?);
    if granule == u64::MAX {
        return None;
    }
    Some(granule.saturating_sub(u64::from(pre_skip)) / 48)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn rfind(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).rposition(|w| w == needle)
}

#[cfg(test)]
mod tests;
