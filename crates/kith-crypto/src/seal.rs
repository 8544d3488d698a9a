//! The outer seal of an envelope: the Olm message inside it, hidden from whoever carries it.
//!
//! An Olm pre-key message names the sender's Curve25519 key in clear, and a normal one its
//! ratchet key, so a mailbox keeping envelopes for its user could tell who writes to whom.
//! Every envelope is therefore sealed once more, to the recipient device's Curve25519 key,
//! with HPKE (RFC 9180) in base mode: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256 and
//! ChaCha20-Poly1305, as the `hpke` crate implements it (the one vodozemac uses). A fresh
//! ephemeral key per envelope; the recipient's key is the associated data. Kith adds only the
//! framing: a sealed envelope has kind [`SEALED_KIND`] and its ciphertext is the 32-byte
//! encapsulated key followed by the HPKE ciphertext of
//! `[0x80 | inner kind][sender's Curve25519 key][inner Olm ciphertext]`.
//!
//! The sender's key inside the seal is a hint, for the recipient only: it names the session
//! to try on a normal Olm message whose ratchet key the recipient has not seen yet (the first
//! of a new chain, relayed by a mailbox), so no message needs trial decryption against other
//! sessions. It is not trusted: a wrong hint only means the named session does not open the
//! message. Seals from before the hint (`[inner kind][inner Olm ciphertext]`, kind 0 or 1)
//! still open, without one.
//!
//! The recipient's secret is its Olm identity key (as in Signal's sealed sender, which seals
//! to the recipient's identity key); vodozemac does not hand it out, so it is read once from
//! the account's pickle ([`seal_secret`]) and checked against the public key.

use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, Kem, OpModeR, OpModeS, Serializable};
use kith_proto::wire::Envelope;
use kith_types::CurveKey;
use vodozemac::olm::Account;
use zeroize::{Zeroize, Zeroizing};

use crate::CryptoError;

/// The envelope kind of a sealed envelope (0 and 1 are bare Olm pre-key and normal messages).
pub const SEALED_KIND: u8 = 2;
/// Set in the first sealed byte when the sender's key follows it.
const HINTED: u8 = 0x80;
/// HPKE `info`: names this use, so the key's other use (Olm) can never be confused with it.
const INFO: &[u8] = b"kith envelope seal v1";
/// Length of the encapsulated (ephemeral public) key.
const ENC_LEN: usize = 32;
/// What the seal adds to an Olm ciphertext: the encapsulated key, the inner kind byte, the
/// sender's key and the AEAD tag.
pub const SEAL_OVERHEAD: usize = ENC_LEN + 1 + 32 + 16;

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

/// An envelope opened from its seal: the Olm envelope inside and the sender's key the seal
/// names (a hint, see the module docs; `None` from a seal made before the hint).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsealed {
    /// The Olm envelope (kind 0 or 1).
    pub envelope: Envelope,
    /// The Curve25519 key the sender says it has.
    pub sender: Option<CurveKey>,
}

/// Seals an Olm envelope (kind 0 or 1) from the device `sender` to its recipient: a new
/// envelope of kind [`SEALED_KIND`] for the same device.
pub fn seal(inner: &Envelope, sender: &CurveKey) -> Result<Envelope, CryptoError> {
    if inner.kind > 1 {
        return Err(CryptoError::Encode("only Olm messages are sealed".into()));
    }
    let mut plain = Zeroizing::new(Vec::with_capacity(1 + 32 + inner.ciphertext.len()));
    plain.push(HINTED | inner.kind);
    plain.extend_from_slice(&sender.0);
    plain.extend_from_slice(&inner.ciphertext);
    seal_bytes(&inner.to_device, &plain)
}

/// HPKE-seals `plain` to the device `to`: an envelope of kind [`SEALED_KIND`].
fn seal_bytes(to: &CurveKey, plain: &[u8]) -> Result<Envelope, CryptoError> {
    let pk = PublicKey::from_bytes(&to.0).map_err(|_| CryptoError::BadKey)?;
    let (enc, ct) = hpke::single_shot_seal::<Aead, Kdf, X25519HkdfSha256>(
        &OpModeS::Base,
        &pk,
        INFO,
        plain,
        &to.0,
    )
    .map_err(|e| CryptoError::Encode(format!("seal: {e}")))?;
    let mut ciphertext = Vec::with_capacity(ENC_LEN + ct.len());
    ciphertext.extend_from_slice(&enc.to_bytes());
    ciphertext.extend_from_slice(&ct);
    Ok(Envelope {
        to_device: *to,
        kind: SEALED_KIND,
        ciphertext,
    })
}

impl SealKey {
    /// Opens a sealed envelope: the Olm envelope inside (kind 0 or 1) and the sender's hint.
    /// An envelope that is not sealed, not for this key, or damaged is an error.
    pub(crate) fn open(&self, env: &Envelope) -> Result<Unsealed, CryptoError> {
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
        let malformed = || CryptoError::Decrypt("malformed sealed envelope".into());
        let (&first, rest) = plain.split_first().ok_or_else(malformed)?;
        let (kind, sender, body) = if first & HINTED != 0 {
            let (key, body) = rest.split_first_chunk::<32>().ok_or_else(malformed)?;
            (first & !HINTED, Some(CurveKey(*key)), body)
        } else {
            (first, None, rest)
        };
        if kind > 1 || body.is_empty() {
            return Err(malformed());
        }
        Ok(Unsealed {
            envelope: Envelope {
                to_device: env.to_device,
                kind,
                ciphertext: body.to_vec(),
            },
            sender,
        })
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
        let sealed = seal(&inner, &alice.curve_key()).unwrap();
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
        assert_ne!(
            seal(&inner, &alice.curve_key()).unwrap().ciphertext,
            sealed.ciphertext
        );
        // Only Bob opens it, and gets the Olm message back.
        assert!(carol.open_seal(&sealed).is_err());
        let opened = bob.open_seal(&sealed).unwrap();
        assert_eq!(opened.envelope, inner);
        assert_eq!(opened.sender, Some(alice.curve_key()), "the sender's hint");
        let mut b2a = PeerSessions::new(alice.curve_key());
        assert_eq!(
            b2a.decrypt(&mut bob, &opened.envelope).unwrap().plaintext,
            b"hello"
        );
    }

    #[test]
    fn damaged_or_readdressed_seals_are_errors() {
        let bob = device();
        let inner = Envelope {
            to_device: bob.curve_key(),
            kind: 1,
            ciphertext: vec![7; 40],
        };
        let sealed = seal(&inner, &device().curve_key()).unwrap();
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
        assert!(seal(&sealed, &bob.curve_key()).is_err());
        assert!(bob.open_seal(&inner).is_err());
    }

    #[test]
    fn the_largest_sealed_payload_still_fits_an_envelope() {
        let alice = device();
        let mut bob = device();
        let mut a2b = PeerSessions::new(bob.curve_key());
        a2b.open_outbound(&alice, &bob.claim_prekey(false)).unwrap();
        let big = vec![7u8; kith_proto::wire::MAX_SEALED];
        let sealed = seal(&a2b.encrypt(&big).unwrap(), &alice.curve_key()).unwrap();
        assert!(sealed.ciphertext.len() <= kith_proto::wire::MAX_CIPHERTEXT);
    }

    #[test]
    fn the_seal_key_survives_restore() {
        let bob = device();
        let key = crate::StorageKey::generate();
        let restored = Device::restore(&bob.pickle(&key), bob.cert().clone(), &key).unwrap();
        let sealed = seal(
            &Envelope {
                to_device: bob.curve_key(),
                kind: 0,
                ciphertext: vec![1; 20],
            },
            &device().curve_key(),
        )
        .unwrap();
        assert_eq!(
            restored.open_seal(&sealed).unwrap().envelope.ciphertext,
            vec![1; 20]
        );
    }

    #[test]
    fn seals_from_before_the_hint_still_open_and_a_cut_hint_is_malformed() {
        let bob = device();
        // The form before the hint: `[inner kind][Olm ciphertext]`.
        let old = seal_bytes(&bob.curve_key(), &[1, 9, 9, 9]).unwrap();
        let opened = bob.open_seal(&old).unwrap();
        assert_eq!(opened.sender, None);
        assert_eq!(
            (opened.envelope.kind, opened.envelope.ciphertext),
            (1, vec![9; 3])
        );
        // A hinted form whose key is cut short, or with nothing after the key, or an inner
        // kind above 1 in either form.
        for plain in [
            vec![HINTED | 1, 5, 5],
            [vec![HINTED | 1], vec![5; 32]].concat(),
            [vec![HINTED | 2], vec![5; 33]].concat(),
            vec![2, 9, 9],
        ] {
            let bad = seal_bytes(&bob.curve_key(), &plain).unwrap();
            assert!(bob.open_seal(&bad).is_err(), "{plain:?}");
        }
    }
}
