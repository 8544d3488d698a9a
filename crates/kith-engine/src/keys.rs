//! The key file: the device's secrets, written once with mode 0600 and never logged.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use kith_crypto::{Identity, StorageKey};
use kith_proto::codec;
use serde::{Deserialize, Serialize};
use zeroize::Zeroize;

use crate::EngineError;

#[derive(Serialize, Deserialize)]
struct OnDisk {
    version: u8,
    identity: [u8; 32],
    storage: [u8; 32],
    p2p: [u8; 32],
}

impl Drop for OnDisk {
    fn drop(&mut self) {
        self.identity.zeroize();
        self.storage.zeroize();
        self.p2p.zeroize();
    }
}

/// The device's secrets: the person's identity key, the storage key for Olm state, and the
/// libp2p key.
pub struct KeyFile {
    /// The identity key.
    pub identity: Identity,
    /// Encrypts Olm pickles at rest.
    pub storage: StorageKey,
    /// The libp2p key (the peer id).
    pub p2p: kith_net::Keypair,
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

impl KeyFile {
    /// Loads the key file at `path`, or creates one with new keys. Returns whether it was
    /// created.
    pub fn load_or_create(path: &Path) -> Result<(Self, bool), EngineError> {
        if path.exists() {
            let mode = std::fs::metadata(path)
                .map_err(|e| internal("reading key file", e))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                tracing::warn!(path = %path.display(), "key file is readable by others; fixing to 0600");
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                    .map_err(|e| internal("fixing key file mode", e))?;
            }
            let bytes = std::fs::read(path).map_err(|e| internal("reading key file", e))?;
            let disk: OnDisk =
                codec::decode(&bytes, 1024).map_err(|e| internal("key file is damaged", e))?;
            if disk.version != 1 {
                return Err(internal(
                    "key file",
                    format!("unknown version {}", disk.version),
                ));
            }
            let mut p2p = disk.p2p;
            let p2p = kith_net::Keypair::ed25519_from_bytes(&mut p2p)
                .map_err(|e| internal("key file libp2p key", e))?;
            Ok((
                Self {
                    identity: Identity::from_secret(&disk.identity),
                    storage: StorageKey::from_bytes(disk.storage),
                    p2p,
                },
                false,
            ))
        } else {
            let identity = Identity::generate();
            let storage = StorageKey::generate();
            let mut p2p_secret: [u8; 32] = rand::random();
            let p2p = kith_net::Keypair::ed25519_from_bytes(&mut p2p_secret.clone())
                .map_err(|e| internal("new libp2p key", e))?;
            let disk = OnDisk {
                version: 1,
                identity: *identity.secret(),
                storage: *storage.bytes(),
                p2p: p2p_secret,
            };
            p2p_secret.zeroize();
            write_key_file(path, &disk)?;
            Ok((
                Self {
                    identity,
                    storage,
                    p2p,
                },
                true,
            ))
        }
    }
}

/// Rewrites the key file at `path` with another identity (a device being linked to a
/// person's identity), keeping its storage and libp2p keys. Written to a temporary file,
/// synced and renamed, so a crash leaves the old file or the new one.
pub(crate) fn replace_identity(path: &Path, identity: &Identity) -> Result<(), EngineError> {
    let bytes = std::fs::read(path).map_err(|e| internal("reading key file", e))?;
    let mut disk: OnDisk =
        codec::decode(&bytes, 1024).map_err(|e| internal("key file is damaged", e))?;
    disk.identity = *identity.secret();
    write_key_file(path, &disk)
}

/// Writes the key file: to a temporary file (mode 0600), synced, then renamed over `path`
/// and the directory synced, so a crash leaves the old file or the new one. The encoded
/// secrets are wiped from memory afterwards.
fn write_key_file(path: &Path, disk: &OnDisk) -> Result<(), EngineError> {
    let mut bytes = codec::encode(disk).map_err(|e| internal("encoding keys", e))?;
    let tmp = path.with_extension("tmp");
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    };
    let res = write();
    bytes.zeroize();
    res.map_err(|e| internal("writing key file", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_0600_and_reloaded_same() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("keys");
        let (a, created) = KeyFile::load_or_create(&p).unwrap();
        assert!(created);
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let (b, created) = KeyFile::load_or_create(&p).unwrap();
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
        assert!(KeyFile::load_or_create(&p).is_err());
    }
}
