//! Small files beside the store sealed at rest (contacts' profile photos): XChaCha20-Poly1305
//! under a key derived from the storage key, the file's name bound as associated data.
//! Layout: `nonce (24) ‖ ciphertext ‖ tag (16)`.

use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use kith_crypto::StorageKey;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

const NONCE: usize = 24;
const TAG: usize = 16;

fn file_key(storage: &StorageKey) -> Zeroizing<[u8; 32]> {
    let mut h = Sha256::new();
    h.update(b"kith-sealed-files-v1\0");
    h.update(storage.bytes());
    Zeroizing::new(h.finalize().into())
}

/// `plain` sealed for the file named `name`.
pub(crate) fn seal(storage: &StorageKey, name: &str, plain: &[u8]) -> Vec<u8> {
    let nonce: [u8; NONCE] = rand::random();
    let mut buf = plain.to_vec();
    let key = file_key(storage);
    if XChaCha20Poly1305::new(&(*key).into())
        .encrypt_in_place(&XNonce::from(nonce), name.as_bytes(), &mut buf)
        .is_err()
    {
        return Vec::new();
    }
    let mut out = nonce.to_vec();
    out.extend_from_slice(&buf);
    out
}

/// The contents of the file named `name` sealed by [`seal`], or none when it does not open.
pub(crate) fn open(storage: &StorageKey, name: &str, sealed: &[u8]) -> Option<Vec<u8>> {
    if sealed.len() < NONCE + TAG {
        return None;
    }
    let nonce: [u8; NONCE] = sealed[..NONCE].try_into().ok()?;
    let mut buf = sealed[NONCE..].to_vec();
    let key = file_key(storage);
    XChaCha20Poly1305::new(&(*key).into())
        .decrypt_in_place(&XNonce::from(nonce), name.as_bytes(), &mut buf)
        .ok()?;
    Some(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_and_opens_bound_to_the_name() {
        let k = StorageKey::generate();
        let s = seal(&k, "a.png", b"ZqPhoto bytes");
        assert!(!s.windows(7).any(|w| w == b"ZqPhoto"));
        assert_eq!(
            open(&k, "a.png", &s).as_deref(),
            Some(&b"ZqPhoto bytes"[..])
        );
        assert!(open(&k, "b.png", &s).is_none(), "another name");
        assert!(
            open(&StorageKey::generate(), "a.png", &s).is_none(),
            "another key"
        );
        assert!(open(&k, "a.png", &s[..10]).is_none(), "short");
    }
}
