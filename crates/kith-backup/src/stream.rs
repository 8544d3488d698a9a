//! The encrypted stream: a fixed header, then chunks sealed with XChaCha20-Poly1305 in the
//! STREAM construction (Hoang, Reyhanitabar, Rogaway, Vizár 2015).
//!
//! ```text
//! header (78 bytes, in clear, bound to every chunk as associated data)
//!   magic        8   "KITHBKUP"
//!   version      2   u16 LE = 1
//!   kdf          1   1 = argon2id (version 0x13)
//!   m_cost       4   u32 LE, KiB
//!   t_cost       4   u32 LE, passes
//!   p_cost       4   u32 LE, lanes
//!   salt        16
//!   check       16   bytes 32..48 of the argon2id output (tells a wrong passphrase)
//!   nonce_prefix 19  random per file
//!   chunk_size   4   u32 LE, plaintext bytes per chunk
//! chunk i (i = 0, 1, ...): ciphertext || 16-byte tag
//!   nonce = nonce_prefix || i (u32 BE) || last (1 byte: 1 on the final chunk, else 0)
//!   aad   = header || i (u64 BE) || last
//! ```
//!
//! Every chunk but the last holds exactly `chunk_size` plaintext bytes; the last holds
//! fewer (possibly none) and is flagged. So a reader knows a chunk is the last one from its
//! length, and a file cut anywhere, chunks swapped, dropped or repeated, or a byte changed
//! fails to open: the index and the flag are in the nonce and the associated data.

use std::io::{Read, Write};

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::{Zeroize, Zeroizing};

use crate::BackupError;

/// The first bytes of every backup file.
pub const MAGIC: &[u8; 8] = b"KITHBKUP";
/// The format version this code writes and reads.
pub const VERSION: u16 = 1;
/// Bytes of the header.
pub const HEADER_LEN: usize = 78;
/// Plaintext bytes per chunk written by this code.
pub const CHUNK: u32 = 64 * 1024;
const TAG: usize = 16;
const KDF_ARGON2ID: u8 = 1;

/// Argon2id parameters (stored in the header).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_kib: u32,
    /// Passes.
    pub t: u32,
    /// Lanes.
    pub p: u32,
}

impl KdfParams {
    /// What backups are written with: 64 MiB, 3 passes, 1 lane (RFC 9106's second
    /// recommendation, with one lane).
    pub const DEFAULT: KdfParams = KdfParams {
        m_kib: 64 * 1024,
        t: 3,
        p: 1,
    };

    /// Cheap parameters, for tests and benchmarks only.
    pub const WEAK_FOR_TESTS: KdfParams = KdfParams {
        m_kib: 64,
        t: 1,
        p: 1,
    };

    /// Parameters a reader accepts: at most 1 GiB, 16 passes, 16 lanes, so that a crafted
    /// header cannot make restore allocate or spin without bound.
    fn check(&self) -> Result<(), BackupError> {
        if self.m_kib > 1 << 20 || self.t == 0 || self.t > 16 || self.p == 0 || self.p > 16 {
            return Err(BackupError::Format(
                "key derivation parameters out of range",
            ));
        }
        Ok(())
    }
}

/// A key derived from a passphrase: the stream key and its check value, with the salt and
/// parameters that made them.
#[derive(Clone)]
pub struct BackupKey {
    key: Zeroizing<[u8; 32]>,
    check: [u8; 16],
    salt: [u8; 16],
    params: KdfParams,
}

impl std::fmt::Debug for BackupKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackupKey")
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

impl BackupKey {
    /// Derives a key from `passphrase` with a new random salt.
    pub fn derive_new(passphrase: &[u8], params: KdfParams) -> Result<Self, BackupError> {
        Self::derive(passphrase, rand::random(), params)
    }

    /// Derives the key for `salt` and `params` (argon2id, 64 bytes of output: the first 32
    /// are the key, the next 16 the check value).
    pub fn derive(
        passphrase: &[u8],
        salt: [u8; 16],
        params: KdfParams,
    ) -> Result<Self, BackupError> {
        params.check()?;
        let p = Params::new(params.m_kib, params.t, params.p, Some(64))
            .map_err(|_| BackupError::Format("key derivation parameters out of range"))?;
        let mut out = Zeroizing::new([0u8; 64]);
        Argon2::new(Algorithm::Argon2id, Version::V0x13, p)
            .hash_password_into(passphrase, &salt, out.as_mut())
            .map_err(|_| BackupError::Format("key derivation failed"))?;
        let mut key = Zeroizing::new([0u8; 32]);
        key.copy_from_slice(&out[..32]);
        let mut check = [0u8; 16];
        check.copy_from_slice(&out[32..48]);
        Ok(Self {
            key,
            check,
            salt,
            params,
        })
    }

    /// The salt and parameters (to derive the same key again).
    pub fn salt_and_params(&self) -> ([u8; 16], KdfParams) {
        (self.salt, self.params)
    }

    /// The key's bytes and check value, to keep it (scheduled backups); secret.
    pub fn secret_parts(&self) -> ([u8; 32], [u8; 16]) {
        (*self.key, self.check)
    }

    /// A key from parts kept with [`BackupKey::secret_parts`] and
    /// [`BackupKey::salt_and_params`].
    pub fn from_parts(key: [u8; 32], check: [u8; 16], salt: [u8; 16], params: KdfParams) -> Self {
        Self {
            key: Zeroizing::new(key),
            check,
            salt,
            params,
        }
    }
}

/// A parsed header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// KDF parameters.
    pub params: KdfParams,
    /// KDF salt.
    pub salt: [u8; 16],
    check: [u8; 16],
    nonce_prefix: [u8; 19],
    chunk: u32,
    bytes: [u8; HEADER_LEN],
}

impl Header {
    fn new(key: &BackupKey, chunk: u32) -> Self {
        let nonce_prefix: [u8; 19] = rand::random();
        let mut b = [0u8; HEADER_LEN];
        b[..8].copy_from_slice(MAGIC);
        b[8..10].copy_from_slice(&VERSION.to_le_bytes());
        b[10] = KDF_ARGON2ID;
        b[11..15].copy_from_slice(&key.params.m_kib.to_le_bytes());
        b[15..19].copy_from_slice(&key.params.t.to_le_bytes());
        b[19..23].copy_from_slice(&key.params.p.to_le_bytes());
        b[23..39].copy_from_slice(&key.salt);
        b[39..55].copy_from_slice(&key.check);
        b[55..74].copy_from_slice(&nonce_prefix);
        b[74..78].copy_from_slice(&chunk.to_le_bytes());
        Self {
            params: key.params,
            salt: key.salt,
            check: key.check,
            nonce_prefix,
            chunk,
            bytes: b,
        }
    }

    /// Parses and checks a header (magic, version, ranges).
    pub fn parse(b: &[u8; HEADER_LEN]) -> Result<Self, BackupError> {
        if &b[..8] != MAGIC {
            return Err(BackupError::NotABackup);
        }
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let version = u16::from_le_bytes([b[8], b[9]]);
        if version != VERSION {
            return Err(BackupError::UnknownVersion(version));
        }
        if b[10] != KDF_ARGON2ID {
            return Err(BackupError::Format("unknown key derivation"));
        }
        let params = KdfParams {
            m_kib: u32_at(11),
            t: u32_at(15),
            p: u32_at(19),
        };
        params.check()?;
        let chunk = u32_at(74);
        if !(1024..=16 << 20).contains(&chunk) {
            return Err(BackupError::Format("chunk size out of range"));
        }
        let mut h = Self {
            params,
            salt: [0; 16],
            check: [0; 16],
            nonce_prefix: [0; 19],
            chunk,
            bytes: *b,
        };
        h.salt.copy_from_slice(&b[23..39]);
        h.check.copy_from_slice(&b[39..55]);
        h.nonce_prefix.copy_from_slice(&b[55..74]);
        Ok(h)
    }

    /// Reads the header from the start of `r`.
    pub fn read_from(r: &mut impl Read) -> Result<Self, BackupError> {
        let mut b = [0u8; HEADER_LEN];
        r.read_exact(&mut b).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => BackupError::NotABackup,
            _ => BackupError::Io(e),
        })?;
        Self::parse(&b)
    }

    /// Whether `key` is the one this file was written with.
    pub fn key_matches(&self, key: &BackupKey) -> bool {
        key.check == self.check && key.salt == self.salt && key.params == self.params
    }

    fn nonce_aad(&self, index: u32, last: bool) -> (XNonce, [u8; HEADER_LEN + 9]) {
        let mut n = [0u8; 24];
        n[..19].copy_from_slice(&self.nonce_prefix);
        n[19..23].copy_from_slice(&index.to_be_bytes());
        n[23] = u8::from(last);
        let mut aad = [0u8; HEADER_LEN + 9];
        aad[..HEADER_LEN].copy_from_slice(&self.bytes);
        aad[HEADER_LEN..HEADER_LEN + 8].copy_from_slice(&u64::from(index).to_be_bytes());
        aad[HEADER_LEN + 8] = u8::from(last);
        (XNonce::from(n), aad)
    }
}

/// Writes plaintext as sealed chunks after a header. Call [`StreamWriter::finish`] at the
/// end: without it the file has no last chunk and will not open.
pub struct StreamWriter<W: Write> {
    out: W,
    header: Header,
    cipher: XChaCha20Poly1305,
    buf: Vec<u8>,
    index: u32,
}

impl<W: Write> std::fmt::Debug for StreamWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamWriter")
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

impl<W: Write> StreamWriter<W> {
    /// Writes the header for `key` and returns a writer of chunks of `chunk` bytes.
    pub fn new(out: W, key: &BackupKey) -> Result<Self, BackupError> {
        Self::with_chunk(out, key, CHUNK)
    }

    /// Like [`StreamWriter::new`] with another chunk size (tests).
    pub fn with_chunk(mut out: W, key: &BackupKey, chunk: u32) -> Result<Self, BackupError> {
        let header = Header::new(key, chunk);
        out.write_all(&header.bytes)?;
        Ok(Self {
            out,
            cipher: XChaCha20Poly1305::new(&(*key.key).into()),
            header,
            buf: Vec::with_capacity(chunk as usize + TAG),
            index: 0,
        })
    }

    fn seal(&mut self, last: bool) -> std::io::Result<()> {
        let (nonce, aad) = self.header.nonce_aad(self.index, last);
        self.cipher
            .encrypt_in_place(&nonce, &aad, &mut self.buf)
            .map_err(|_| std::io::Error::other("sealing a backup chunk failed"))?;
        self.out.write_all(&self.buf)?;
        self.buf.zeroize();
        self.buf.clear();
        self.index = self
            .index
            .checked_add(1)
            .ok_or_else(|| std::io::Error::other("backup too large"))?;
        Ok(())
    }

    /// Seals the last chunk and returns the inner writer.
    pub fn finish(mut self) -> Result<W, BackupError> {
        self.seal(true)?;
        self.out.flush()?;
        Ok(self.out)
    }
}

impl<W: Write> Write for StreamWriter<W> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let chunk = self.header.chunk as usize;
        let room = chunk - self.buf.len();
        let n = room.min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == chunk {
            self.seal(false)?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// Reads and opens the chunks of a stream; every byte it yields was authenticated, and it
/// yields an error (never a short end) for a file that was cut, reordered or changed.
pub struct StreamReader<R: Read> {
    inner: R,
    header: Header,
    cipher: XChaCha20Poly1305,
    buf: Vec<u8>,
    pos: usize,
    index: u32,
    done: bool,
}

impl<R: Read> std::fmt::Debug for StreamReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamReader")
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

/// The error a reader yields (inside `std::io::Error`) for a chunk that does not open.
#[derive(Debug, thiserror::Error)]
#[error("the backup file is damaged (chunk {0} does not open, or the file was cut)")]
pub struct Damaged(pub u32);

impl<R: Read> StreamReader<R> {
    /// Reads the header and checks `key` against it: [`BackupError::WrongPassphrase`] when
    /// it is not the key the file was written with.
    pub fn new(mut inner: R, key: &BackupKey) -> Result<Self, BackupError> {
        let header = Header::read_from(&mut inner)?;
        Self::after_header(inner, header, key)
    }

    /// Like [`StreamReader::new`] for a header already read.
    pub fn after_header(inner: R, header: Header, key: &BackupKey) -> Result<Self, BackupError> {
        if !header.key_matches(key) {
            return Err(BackupError::WrongPassphrase);
        }
        Ok(Self {
            inner,
            cipher: XChaCha20Poly1305::new(&(*key.key).into()),
            buf: Vec::with_capacity(header.chunk as usize + TAG),
            header,
            pos: 0,
            index: 0,
            done: false,
        })
    }

    fn next_chunk(&mut self) -> std::io::Result<()> {
        let want = self.header.chunk as usize + TAG;
        self.buf.zeroize();
        self.buf.clear();
        self.buf.resize(want, 0);
        let mut got = 0;
        while got < want {
            match self.inner.read(&mut self.buf[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.buf.truncate(got);
        let last = got < want;
        let damaged = || std::io::Error::new(std::io::ErrorKind::InvalidData, Damaged(self.index));
        if got < TAG {
            return Err(damaged());
        }
        let (nonce, aad) = self.header.nonce_aad(self.index, last);
        if self
            .cipher
            .decrypt_in_place(&nonce, &aad, &mut self.buf)
            .is_err()
        {
            return Err(damaged());
        }
        self.pos = 0;
        self.done = last;
        self.index = self.index.checked_add(1).ok_or_else(damaged)?;
        Ok(())
    }
}

impl<R: Read> Read for StreamReader<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.buf.len() {
            if self.done {
                return Ok(0);
            }
            self.next_chunk()?;
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl<R: Read> Drop for StreamReader<R> {
    fn drop(&mut self) {
        self.buf.zeroize();
    }
}
