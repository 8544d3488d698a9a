//! The outer seal of an envelope: the Olm message inside it, hidden from whoever carries it.
//!
//! An Olm pre-key message names the sender's Curve25519 key in clear, and a normal one its
//! ratchet key, so a mailbox keeping envelopes for its user could tell who writes to whom.
//! Every envelope is therefore sealed once more, to the recipient device's Curve25519 key,
//! with HPKE (RFC 9180) in base mode: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256 and
//! ChaCha20-Poly1305, as the `hpke` crate implements it (the one vodozemac uses). A fresh
//! ephemeral key per envelope; the recipient's key is the associated data. Kith adds only the
//! framing: a sealed envelope has kind [`SEALED_KIND`] and its ciphertext is the 32-byte
//! encapsulated key followed by the HPKE ciphertext of `[inner kind][inner Olm ciphertext]`.
//!
//! The recipient's secret is its Olm identity key (as in Signal's sealed sender, which seals
//! to the recipient's identity key); vodozemac does not hand it out, so it is read once from
//! the account's pickle ([`seal_secret`]) and checked against the public key.

use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, Kem, OpModeR, OpModeS, Serializable};
use kith_proto::wire::Envelope;
use vodozemac::olm::Account;
use zeroize::{Zeroize, Zeroizing};

use crate::CryptoError;

/// The envelope kind of a sealed envelope (0 and 1 are bare Olm pre-key and normal messages).
pub const SEALED_KIND: u8 = 2;
/// HPKE `info`: names this use, so the key's other use (Olm) can never be confused with it.
const INFO: &[u8] = b"kith envelope seal v1";
/// Length of the encapsulated (ephemeral public) key.
const ENC_LEN: usize = 32;
/// What the seal adds to an Olm ciphertext: the encapsulated key, the inner kind byte and
/// the AEAD tag.
pub const SEAL_OVERHEAD: usize = ENC_LEN + 1 + 16;

type PrivateKey = <X25519HkdfSha256 as Kem>::PrivateKey;
type PublicKey = <X25519HkdfSha256 as Kem>::PublicKey;
type EncappedKey = <X25519HkdfSha256 as Kem>::EncappedKey;
type Aead = hpke::aead::ChaCha20Poly1305;
type Kdf = hpke::kdf::HkdfSha256;

/// A device's key for opening sealed envelopes. `Debug` shows nothing of it.
pub(crate) struct SealKey(PrivateKey);

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealKey(..)")
    }
}

/// The part of the account pickle that holds the Curve25519 identity secret.
#[derive(serde::Deserialize)]
struct DhPart {
    diffie_hellman_key: [u8; 32],
}

impl Drop for DhPart {
    fn drop(&mut self) {
        self.diffie_hellman_key.zeroize();
    }
}

/// Reads the account's Curve25519 identity secret from its pickle and checks that it is the
/// secret of the account's public key.
pub(crate) fn seal_secret(account: &Account) -> Result<SealKey, CryptoError> {
    let mut json = serde_json::to_vec(&account.pickle())
        .map_err(|e| CryptoError::Pickle(format!("account pickle: {e}")))?;
    let part: Result<DhPart, _> = serde_json::from_slice(&json);
    json.zeroize();
    let part = part.map_err(|_| CryptoError::Pickle("no identity secret in the pickle".into()))?;
    let sk = PrivateKey::from_bytes(&part.diffie_hellman_key).map_err(|_| CryptoError::BadKey)?;
    let pk = X25519HkdfSha256::sk_to_pk(&sk);
    if pk.to_bytes()[..] != account.curve25519_key().to_bytes()[..] {
        return Err(CryptoError::Pickle(
            "identity secret does not match the public key".into(),
        ));
    }
    Ok(SealKey(sk))
}

/// Seals an Olm envelope (kind 0 or 1) to its recipient: a new envelope of kind
/// [`SEALED_KIND`] for the same device.
pub fn seal(inner: &Envelope) -> Result<Envelope, CryptoError> {
    if inner.kind > 1 {
        return Err(CryptoError::Encode("only Olm messages are sealed".into()));
    }
    let pk = PublicKey::from_bytes(&inner.to_device.0).map_err(|_| CryptoError::BadKey)?;
    let mut plain = Zeroizing::new(Vec::with_capacity(1 + inner.ciphertext.len()));
    plain.push(inner.kind);
    plain.extend_from_slice(&inner.ciphertext);
    let (enc, ct) = hpke::single_shot_seal::<Aead, Kdf, X25519HkdfSha256>(
        &OpModeS::Base,
        &pk,
        INFO,
        &plain,
        &inner.to_device.0,
    )
    .map_err(|e| CryptoError::Encode(format!("seal: {e}")))?;
    let mut ciphertext = Vec::with_capacity(ENC_LEN + ct.len());
    ciphertext.extend_from_slice(&enc.to_bytes());
    ciphertext.extend_from_slice(&ct);
    Ok(Envelope {
        to_device: inner.to_device,
        kind: SEALED_KIND,
        ciphertext,
    })
}

impl SealKey {
    /// Opens a sealed envelope: the Olm envelope inside (kind 0 or 1). An envelope that is not
    /// sealed, not for this key, or damaged is an error.
    pub(crate) fn open(&self, env: &Envelope) -> Result<Envelope, CryptoError> {
        if env.kind != SEALED_KIND {
            return Err(CryptoError::Decrypt("not sealed".into()));
        }
        let (enc, ct) = env
            .ciphertext
            .split_at_checked(ENC_LEN)
            .ok_or_else(|| CryptoError::Decrypt("sealed envelope too short".into()))?;
        let enc = EncappedKey::from_bytes(enc).map_err(|_| CryptoError::BadKey)?;
        let plain = hpke::single_shot_open::<Aead, Kdf, X25519HkdfSha256>(
            &OpModeR::Base,
            &self.0,
            &enc,
            INFO,
            ct,
            &env.to_device.0,
        )
        .map_err(|_| CryptoError::Decrypt("cannot open the seal".into()))?;
        let plain = Zeroizing::new(plain);
        match plain.split_first() {
            Some((&kind, rest)) if kind <= 1 && !rest.is_empty() => Ok(Envelope {
                to_device: env.to_device,
                kind,
                ciphertext: rest.to_vec(),
            }),
            _ => Err(CryptoError::Decrypt("malformed sealed envelope".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Device, Identity, PeerSessions};

    fn device() -> Device {
        Device::generate(&Identity::generate(), vec![1, 2, 3]).unwrap()
    }

    #[test]
    fn a_sealed_prekey_message_hides_the_sender_and_opens_only_for_its_recipient() {
        let alice = device();
        let mut bob = device();
        let carol = device();
        let mut a2b = PeerSessions::new(bob.curve_key());
        a2b.open_outbound(&alice, &bob.claim_prekey(false)).unwrap();
        let inner = a2b.encrypt(b"hello").unwrap();
        assert_eq!(PeerSessions::prekey_sender(&inner), Some(alice.curve_key()));
        let sealed = seal(&inner).unwrap();
        assert_eq!(sealed.kind, SEALED_KIND);
        assert_eq!(sealed.to_device, bob.curve_key());
        assert_eq!(
            sealed.ciphertext.len(),
            inner.ciphertext.len() + SEAL_OVERHEAD
        );
        // The sender's key appears nowhere in what a carrier sees.
        let alice_key = alice.curve_key().0;
        assert!(!sealed.ciphertext.windows(32).any(|w| w == alice_key));
        assert_eq!(PeerSessions::prekey_sender(&sealed), None);
        // Two seals of the same message differ (fresh ephemeral key).
        assert_ne!(seal(&inner).unwrap().ciphertext, sealed.ciphertext);
        // Only Bob opens it, and gets the Olm message back.
        assert!(carol.open_seal(&sealed).is_err());
        let opened = bob.open_seal(&sealed).unwrap();
        assert_eq!(opened, inner);
        let mut b2a = PeerSessions::new(alice.curve_key());
        assert_eq!(b2a.decrypt(&mut bob, &opened).unwrap().plaintext, b"hello");
    }

    #[test]
    fn damaged_or_readdressed_seals_are_errors() {
        let bob = device();
        let inner = Envelope {
            to_device: bob.curve_key(),
            kind: 1,
            ciphertext: vec![7; 40],
        };
        let sealed = seal(&inner).unwrap();
        for i in [0, ENC_LEN, sealed.ciphertext.len() - 1] {
            let mut bad = sealed.clone();
            bad.ciphertext[i] ^= 1;
            assert!(bob.open_seal(&bad).is_err());
        }
        let mut short = sealed.clone();
        short.ciphertext.truncate(10);
        assert!(bob.open_seal(&short).is_err());
        // The recipient's key is bound in: the same bytes named for another key do not open.
        let mut other = sealed.clone();
        other.to_device = device().curve_key();
        assert!(bob.open_seal(&other).is_err());
        assert!(seal(&sealed).is_err());
        assert!(bob.open_seal(&inner).is_err());
    }

    #[test]
    fn the_largest_sealed_payload_still_fits_an_envelope() {
        let alice = device();
        let mut bob = device();
        let mut a2b = PeerSessions::new(bob.curve_key());
        a2b.open_outbound(&alice, &bob.claim_prekey(false)).unwrap();
        let big = vec![7u8; kith_proto::wire::MAX_SEALED];
        let sealed = seal(&a2b.encrypt(&big).unwrap()).unwrap();
        assert!(sealed.ciphertext.len() <= kith_proto::wire::MAX_CIPHERTEXT);
    }

    #[test]
    fn the_seal_key_survives_restore() {
        let bob = device();
        let key = crate::StorageKey::generate();
        let restored = Device::restore(&bob.pickle(&key), bob.cert().clone(), &key).unwrap();
        let sealed = seal(&Envelope {
            to_device: bob.curve_key(),
            kind: 0,
            ciphertext: vec![1; 20],
        })
        .unwrap();
        assert_eq!(restored.open_seal(&sealed).unwrap().ciphertext, vec![1; 20]);
    }
}
