//! The key file: the device's secrets, mode 0600, never logged.
//!
//! Version 2 keeps the storage key (in clear, or sealed under a passphrase with argon2id
//! and XChaCha20-Poly1305) and, sealed under the storage key, the identity and libp2p
//! secrets. The storage key seals the store's rows (kith-store's `StorageSeal`); so with a
//! passphrase nothing on disk opens without it. Version 1 files (all in clear) are
//! rewritten as version 2 when read.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use kith_crypto::{Identity, StorageKey};
use kith_proto::codec;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

use crate::EngineError;

/// The first key file format: every secret in clear (read, then rewritten as version 2).
#[derive(Serialize, Deserialize)]
struct OnDiskV1 {
    version: u8,
    identity: [u8; 32],
    storage: [u8; 32],
    p2p: [u8; 32],
}

impl Drop for OnDiskV1 {
    fn drop(&mut self) {
        self.identity.zeroize();
        self.storage.zeroize();
        self.p2p.zeroize();
    }
}

/// The key file (version 2). The storage key (32 random bytes) seals the store's rows and
/// the other secrets; it lies in clear, or sealed under a key derived from a passphrase.
#[derive(Serialize, Deserialize)]
struct OnDisk {
    version: u8,
    /// The argon2id parameters and salt when a passphrase protects the storage key.
    kdf: Option<Kdf>,
    /// The storage key: 32 bytes, or `nonce (24) ‖ sealed key ‖ tag` under the passphrase.
    #[serde(with = "serde_bytes")]
    storage: Vec<u8>,
    /// `nonce (24) ‖ identity secret ‖ libp2p secret ‖ tag`, sealed under the storage key.
    #[serde(with = "serde_bytes")]
    secrets: Vec<u8>,
}

/// Argon2id parameters of a passphrase, kept in the key file.
#[derive(Serialize, Deserialize, Clone, Copy)]
struct Kdf {
    m_kib: u32,
    t: u32,
    p: u32,
    salt: [u8; 16],
}

/// The passphrase KDF's cost: what `kith passphrase set` writes (64 MiB, 3 passes, 1 lane,
/// as backups).
pub const KDF_DEFAULT: kith_backup::KdfParams = kith_backup::KdfParams::DEFAULT;

const AD_STORAGE: &[u8] = b"kith-keys-v2 storage";
const AD_SECRETS: &[u8] = b"kith-keys-v2 secrets";

/// The device's secrets: the person's identity key, the storage key (Olm pickles and the
/// store's rows at rest), and the libp2p key.
pub struct KeyFile {
    /// The identity key.
    pub identity: Identity,
    /// Encrypts Olm pickles and seals the store at rest.
    pub storage: StorageKey,
    /// The libp2p key (the peer id).
    pub p2p: kith_net::Keypair,
    /// The libp2p secret (to write the key file again).
    p2p_secret: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for KeyFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyFile")
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

fn internal(what: &str, e: impl std::fmt::Display) -> EngineError {
    EngineError::Internal(format!("{what}: {e}"))
}

fn key_error(what: &str) -> EngineError {
    EngineError::KeyFile(what.to_string())
}

fn seal(key: &[u8; 32], ad: &[u8], plain: &[u8]) -> Result<Vec<u8>, EngineError> {
    let nonce: [u8; 24] = rand::random();
    let mut buf = plain.to_vec();
    XChaCha20Poly1305::new(&(*key).into())
        .encrypt_in_place(&XNonce::from(nonce), ad, &mut buf)
        .map_err(|_| internal("key file", "sealing failed"))?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&buf);
    buf.zeroize();
    Ok(out)
}

fn open(key: &[u8; 32], ad: &[u8], sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    if sealed.len() < 24 + 16 {
        return None;
    }
    let nonce: [u8; 24] = sealed[..24].try_into().ok()?;
    let mut buf = Zeroizing::new(sealed[24..].to_vec());
    XChaCha20Poly1305::new(&(*key).into())
        .decrypt_in_place(&XNonce::from(nonce), ad, &mut *buf)
        .ok()?;
    Some(buf)
}

/// The key that seals the identity and libp2p secrets, from the storage key.
fn secrets_key(storage: &StorageKey) -> Zeroizing<[u8; 32]> {
    let mut h = Sha256::new();
    h.update(b"kith-keys-secrets-v2\0");
    h.update(storage.bytes());
    Zeroizing::new(h.finalize().into())
}

fn passphrase_key(passphrase: &[u8], kdf: &Kdf) -> Result<Zeroizing<[u8; 32]>, EngineError> {
    if kdf.m_kib > 1 << 20 || kdf.t == 0 || kdf.t > 16 || kdf.p == 0 || kdf.p > 16 {
        return Err(key_error(
            "the key file's passphrase parameters are out of range (damaged file)",
        ));
    }
    let params = argon2::Params::new(kdf.m_kib, kdf.t, kdf.p, Some(32))
        .map_err(|_| key_error("the key file's passphrase parameters are invalid"))?;
    let mut out = Zeroizing::new([0u8; 32]);
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password_into(passphrase, &kdf.salt, out.as_mut())
        .map_err(|_| key_error("the passphrase cannot be used (too long?)"))?;
    Ok(out)
}

fn read_disk(path: &Path) -> Result<Zeroizing<Vec<u8>>, EngineError> {
    let mode = std::fs::metadata(path)
        .map_err(|e| internal("reading key file", e))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        tracing::warn!(path = %path.display(), "key file is readable by others; fixing to 0600");
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| internal("fixing key file mode", e))?;
    }
    Ok(Zeroizing::new(
        std::fs::read(path).map_err(|e| internal("reading key file", e))?,
    ))
}

/// Writes `bytes` to `path` through a temporary file (mode 0600), synced, then renamed.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), EngineError> {
    let tmp = path.with_extension("tmp");
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    };
    write().map_err(|e| internal("writing key file", e))
}

/// Whether the key file at `path` exists and is protected by a passphrase.
pub fn is_protected(path: &Path) -> Result<bool, EngineError> {
    if !path.exists() {
        return Ok(false);
    }
    let bytes = read_disk(path)?;
    if bytes.first() != Some(&2) {
        return Ok(false);
    }
    let disk: OnDisk =
        codec::decode(&bytes, 4096).map_err(|e| internal("key file is damaged", e))?;
    Ok(disk.kdf.is_some())
}

impl KeyFile {
    /// Loads the key file at `path`, or creates one with new keys. Returns whether it was
    /// created. A key file protected by a passphrase needs `passphrase`; a wrong one is an
    /// error ([`EngineError::KeyFile`]) and changes nothing. A version 1 file (secrets in
    /// clear) is rewritten as version 2, keeping the same keys.
    pub fn load_or_create(
        path: &Path,
        passphrase: Option<&[u8]>,
    ) -> Result<(Self, bool), EngineError> {
        if path.exists() {
            let bytes = read_disk(path)?;
            match bytes.first() {
                Some(1) => {
                    let disk: OnDiskV1 = codec::decode(&bytes, 1024)
                        .map_err(|e| internal("key file is damaged", e))?;
                    let keys = Self::from_parts(
                        &disk.identity,
                        StorageKey::from_bytes(disk.storage),
                        Zeroizing::new(disk.p2p),
                    )?;
                    keys.write(path, None, None)?;
                    tracing::info!("key file upgraded to version 2 (secrets sealed)");
                    Ok((keys, false))
                }
                Some(2) => {
                    let disk: OnDisk = codec::decode(&bytes, 4096)
                        .map_err(|e| internal("key file is damaged", e))?;
                    Ok((Self::from_disk(&disk, passphrase)?, false))
                }
                Some(v) => Err(internal("key file", format!("unknown version {v}"))),
                None => Err(internal("key file is damaged", "empty")),
            }
        } else {
            let identity = Identity::generate();
            let keys = Self::from_parts(
                &identity.secret(),
                StorageKey::generate(),
                Zeroizing::new(rand::random()),
            )?;
            keys.write(path, None, None)?;
            Ok((keys, true))
        }
    }

    fn from_parts(
        identity: &[u8; 32],
        storage: StorageKey,
        p2p_secret: Zeroizing<[u8; 32]>,
    ) -> Result<Self, EngineError> {
        let p2p = kith_net::Keypair::ed25519_from_bytes(&mut p2p_secret.clone())
            .map_err(|e| internal("key file libp2p key", e))?;
        Ok(Self {
            identity: Identity::from_secret(identity),
            storage,
            p2p,
            p2p_secret,
        })
    }

    fn from_disk(disk: &OnDisk, passphrase: Option<&[u8]>) -> Result<Self, EngineError> {
        let storage: [u8; 32] = match (&disk.kdf, passphrase) {
            (None, _) => disk
                .storage
                .as_slice()
                .try_into()
                .map_err(|_| internal("key file is damaged", "storage key"))?,
            (Some(_), None) => {
                return Err(key_error(
                    "the key file is protected by a passphrase: give it on the terminal, \
                     with --passphrase-file, or in KITH_PASSPHRASE_FILE",
                ));
            }
            (Some(kdf), Some(p)) => {
                let k = passphrase_key(p, kdf)?;
                let plain = open(&k, AD_STORAGE, &disk.storage)
                    .ok_or_else(|| key_error("wrong passphrase"))?;
                plain
                    .as_slice()
                    .try_into()
                    .map_err(|_| internal("key file is damaged", "storage key"))?
            }
        };
        let storage = StorageKey::from_bytes(storage);
        let plain = open(&secrets_key(&storage), AD_SECRETS, &disk.secrets)
            .ok_or_else(|| internal("key file is damaged", "secrets do not open"))?;
        if plain.len() != 64 {
            return Err(internal("key file is damaged", "secrets"));
        }
        let mut id = Zeroizing::new([0u8; 32]);
        id.copy_from_slice(&plain[..32]);
        let mut p2p = Zeroizing::new([0u8; 32]);
        p2p.copy_from_slice(&plain[32..]);
        Self::from_parts(&id, storage, p2p)
    }

    /// Writes these keys to `path` (version 2): with `passphrase`, the storage key is sealed
    /// under a key derived from it with `params` (argon2id, a new salt).
    fn write(
        &self,
        path: &Path,
        passphrase: Option<&[u8]>,
        params: Option<kith_backup::KdfParams>,
    ) -> Result<(), EngineError> {
        let mut plain = Zeroizing::new(Vec::with_capacity(64));
        plain.extend_from_slice(&self.identity.secret()[..]);
        plain.extend_from_slice(&self.p2p_secret[..]);
        let secrets = seal(&secrets_key(&self.storage), AD_SECRETS, &plain)?;
        let (kdf, storage) = match passphrase {
            None => (None, self.storage.bytes().to_vec()),
            Some(p) => {
                let params = params.unwrap_or(KDF_DEFAULT);
                let kdf = Kdf {
                    m_kib: params.m_kib,
                    t: params.t,
                    p: params.p,
                    salt: rand::random(),
                };
                let k = passphrase_key(p, &kdf)?;
                (Some(kdf), seal(&k, AD_STORAGE, self.storage.bytes())?)
            }
        };
        let mut disk = OnDisk {
            version: 2,
            kdf,
            storage,
            secrets,
        };
        let bytes = Zeroizing::new(codec::encode(&disk).map_err(|e| internal("encoding keys", e))?);
        disk.storage.zeroize();
        write_atomic(path, &bytes)
    }

    /// Sets, changes (`new` some) or removes (`new` none) the passphrase of the key file at
    /// `path`; `old` opens it when it has one. A wrong `old` changes nothing. The storage key
    /// stays the same (the store is not rewritten).
    pub fn change_passphrase(
        path: &Path,
        old: Option<&[u8]>,
        new: Option<&[u8]>,
        params: Option<kith_backup::KdfParams>,
    ) -> Result<(), EngineError> {
        if !path.exists() {
            return Err(key_error(
                "no key file in this data directory (run `kith up` once first)",
            ));
        }
        let (keys, _) = Self::load_or_create(path, old)?;
        keys.write(path, new, params)
    }
}

/// Opens the store of the data directory `data_dir` with its key file (for tools and tests
/// that read a stopped node's store): the same sealed store the node opens.
pub fn open_store(
    data_dir: &Path,
    passphrase: Option<&[u8]>,
) -> Result<kith_store::Store, EngineError> {
    let path = data_dir.join("keys");
    if !path.exists() {
        return Err(key_error("no key file in this data directory"));
    }
    let (keys, _) = KeyFile::load_or_create(&path, passphrase)?;
    kith_store::Store::open_sealed(
        &data_dir.join("kith.redb"),
        kith_store::DEFAULT_CACHE_BYTES,
        kith_store::StorageSeal::new(keys.storage.bytes()),
    )
    .map_err(|e| internal("opening the store", e))
}

/// Rewrites the key file at `path` with another identity (a device being linked to a
/// person's identity), keeping its storage and libp2p keys and its passphrase protection
/// (the secrets are sealed under the storage key, which `keys` holds). Written to a
/// temporary file, synced and renamed, so a crash leaves the old file or the new one.
pub(crate) fn replace_identity(
    path: &Path,
    keys: &KeyFile,
    identity: &Identity,
) -> Result<(), EngineError> {
    let bytes = read_disk(path)?;
    if bytes.first() != Some(&2) {
        return Err(internal("key file", "not version 2"));
    }
    let mut disk: OnDisk =
        codec::decode(&bytes, 4096).map_err(|e| internal("key file is damaged", e))?;
    let mut plain = Zeroizing::new(Vec::with_capacity(64));
    plain.extend_from_slice(&identity.secret()[..]);
    plain.extend_from_slice(&keys.p2p_secret[..]);
    disk.secrets = seal(&secrets_key(&keys.storage), AD_SECRETS, &plain)?;
    let out = Zeroizing::new(codec::encode(&disk).map_err(|e| internal("encoding keys", e))?);
    disk.storage.zeroize();
    write_atomic(path, &out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_0600_and_reloaded_same() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("keys");
        let (a, created) = KeyFile::load_or_create(&p, None).unwrap();
        assert!(created);
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let (b, created) = KeyFile::load_or_create(&p, None).unwrap();
        assert!(!created);
        assert_eq!(a.identity.public(), b.identity.public());
        assert_eq!(a.p2p.public(), b.p2p.public());
        assert_eq!(a.storage.bytes(), b.storage.bytes());
    }

    #[test]
    fn damaged_key_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("keys");
        std::fs::write(&p, b"garbage").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(KeyFile::load_or_create(&p, None).is_err());
    }

    fn contains(hay: &[u8], needle: &[u8]) -> bool {
        hay.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn secrets_are_sealed_and_a_passphrase_guards_the_storage_key() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("keys");
        let (a, _) = KeyFile::load_or_create(&p, None).unwrap();
        let raw = std::fs::read(&p).unwrap();
        assert!(!contains(&raw, &a.identity.secret()[..]));
        assert!(contains(&raw, a.storage.bytes()));
        let weak = Some(kith_backup::KdfParams::WEAK_FOR_TESTS);
        KeyFile::change_passphrase(&p, None, Some(&b"right"[..]), weak).unwrap();
        assert!(is_protected(&p).unwrap());
        let raw = std::fs::read(&p).unwrap();
        assert!(!contains(&raw, a.storage.bytes()));
        assert!(!contains(&raw, &a.identity.secret()[..]));
        // No passphrase, or a wrong one: refused, and the file is as it was.
        assert!(matches!(
            KeyFile::load_or_create(&p, None),
            Err(EngineError::KeyFile(_))
        ));
        let e = KeyFile::load_or_create(&p, Some(&b"wrong"[..])).unwrap_err();
        assert_eq!(e.to_string(), "wrong passphrase");
        assert!(KeyFile::change_passphrase(&p, Some(&b"wrong"[..]), None, weak).is_err());
        assert_eq!(std::fs::read(&p).unwrap(), raw);
        let (b, _) = KeyFile::load_or_create(&p, Some(&b"right"[..])).unwrap();
        assert_eq!(a.identity.public(), b.identity.public());
        assert_eq!(a.p2p.public(), b.p2p.public());
        assert_eq!(a.storage.bytes(), b.storage.bytes());
        KeyFile::change_passphrase(&p, Some(&b"right"[..]), Some(&b"new"[..]), weak).unwrap();
        assert!(KeyFile::load_or_create(&p, Some(&b"right"[..])).is_err());
        KeyFile::change_passphrase(&p, Some(&b"new"[..]), None, weak).unwrap();
        assert!(!is_protected(&p).unwrap());
        let (c, _) = KeyFile::load_or_create(&p, None).unwrap();
        assert_eq!(a.storage.bytes(), c.storage.bytes());
    }

    #[test]
    fn a_version_1_key_file_is_upgraded_with_the_same_keys() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("keys");
        let id = Identity::generate();
        let v1 = OnDiskV1 {
            version: 1,
            identity: *id.secret(),
            storage: [7u8; 32],
            p2p: [9u8; 32],
        };
        std::fs::write(&p, codec::encode(&v1).unwrap()).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        let (a, created) = KeyFile::load_or_create(&p, None).unwrap();
        assert!(!created);
        assert_eq!(a.identity.public(), id.public());
        assert_eq!(a.storage.bytes(), &[7u8; 32]);
        assert_eq!(std::fs::read(&p).unwrap()[0], 2);
        assert!(!contains(&std::fs::read(&p).unwrap(), &id.secret()[..]));
        let (b, _) = KeyFile::load_or_create(&p, None).unwrap();
        assert_eq!(b.identity.public(), id.public());
        assert_eq!(a.p2p.public(), b.p2p.public());
    }
}
