//! Group sessions: vodozemac's Megolm (the sender-key ratchet Matrix uses, audited with Olm).
//!
//! Each device keeps one [`OutboundGroup`] per group it writes to; its session key goes to
//! every member device over the pairwise Olm sessions, and each of them keeps an
//! [`InboundGroup`] to read that device's frames. A key handed over at message index `n`
//! cannot open messages before `n`, so a member added later cannot read what came before;
//! a new outbound session (started when someone leaves or is removed) is never given to the
//! ones who left, so they cannot read what comes after. Every Megolm message is signed by
//! the session's Ed25519 key, so a member cannot forge another member's frames.

use vodozemac::megolm::{
    ExportedSessionKey, GroupSession, GroupSessionPickle, InboundGroupSession,
    InboundGroupSessionPickle, MegolmMessage, SessionConfig, SessionKey,
};

use crate::{CryptoError, StorageKey};

/// This device's sending session in one group.
pub struct OutboundGroup {
    session: GroupSession,
}

impl std::fmt::Debug for OutboundGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboundGroup")
            .field("index", &self.session.message_index())
            .finish_non_exhaustive()
    }
}

impl OutboundGroup {
    /// A new session with fresh keys.
    pub fn new() -> Self {
        Self {
            session: GroupSession::new(SessionConfig::version_1()),
        }
    }

    /// Restores a session saved with [`OutboundGroup::pickle`].
    pub fn restore(pickle: &str, key: &StorageKey) -> Result<Self, CryptoError> {
        let p = GroupSessionPickle::from_encrypted(pickle, &key.0)
            .map_err(|e| CryptoError::Pickle(e.to_string()))?;
        Ok(Self {
            session: GroupSession::from_pickle(p),
        })
    }

    /// The session, encrypted with the storage key.
    pub fn pickle(&self, key: &StorageKey) -> String {
        self.session.pickle().encrypt(&key.0)
    }

    /// The session id (its public signing key, base64).
    pub fn session_id(&self) -> String {
        self.session.session_id()
    }

    /// How many messages it has encrypted.
    pub fn message_index(&self) -> u32 {
        self.session.message_index()
    }

    /// The session key at the current index, to hand to member devices (secret).
    pub fn session_key(&self) -> Vec<u8> {
        self.session.session_key().to_bytes()
    }

    /// Encrypts (and signs) one message.
    pub fn encrypt(&mut self, plaintext: &[u8]) -> Vec<u8> {
        self.session.encrypt(plaintext).to_bytes()
    }
}

impl Default for OutboundGroup {
    fn default() -> Self {
        Self::new()
    }
}

/// Another device's sending session in one group, as this device reads it.
pub struct InboundGroup {
    session: InboundGroupSession,
}

impl std::fmt::Debug for InboundGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InboundGroup").finish_non_exhaustive()
    }
}

impl InboundGroup {
    /// Reads a session key received from its owner over a pairwise session: either the key
    /// an [`OutboundGroup`] hands out ([`OutboundGroup::session_key`]) or one its owner
    /// exported from its own copy ([`InboundGroup::export_first`]). The two forms differ in
    /// their first (version) byte. Either way the owner's device sent it over an
    /// authenticated Olm session, and every message it opens is checked against the
    /// session's signing key.
    pub fn from_key(key: &[u8]) -> Result<Self, CryptoError> {
        let session = match SessionKey::from_bytes(key) {
            Ok(k) => InboundGroupSession::new(&k, SessionConfig::version_1()),
            Err(_) => {
                let k = ExportedSessionKey::from_bytes(key).map_err(|_| CryptoError::BadKey)?;
                InboundGroupSession::import(&k, SessionConfig::version_1())
            }
        };
        Ok(Self { session })
    }

    /// The key at the first index this copy can open, for a device that must read the
    /// session from there (the sender keeps a copy of its own session from index 0, and
    /// gives it to a member's device it learned of only after sending). With the index.
    pub fn export_first(&self) -> (Vec<u8>, u32) {
        let k = self.session.export_at_first_known_index();
        (k.to_bytes(), self.session.first_known_index())
    }

    /// Restores a session saved with [`InboundGroup::pickle`].
    pub fn restore(pickle: &str, key: &StorageKey) -> Result<Self, CryptoError> {
        let p = InboundGroupSessionPickle::from_encrypted(pickle, &key.0)
            .map_err(|e| CryptoError::Pickle(e.to_string()))?;
        Ok(Self {
            session: InboundGroupSession::from_pickle(p),
        })
    }

    /// The session, encrypted with the storage key.
    pub fn pickle(&self, key: &StorageKey) -> String {
        self.session.pickle().encrypt(&key.0)
    }

    /// The session id (the sender's session signing key, base64).
    pub fn session_id(&self) -> String {
        self.session.session_id()
    }

    /// Verifies and decrypts one message.
    pub fn decrypt(&mut self, ciphertext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let msg = MegolmMessage::from_bytes(ciphertext)
            .map_err(|e| CryptoError::Decrypt(e.to_string()))?;
        self.session
            .decrypt(&msg)
            .map(|d| d.plaintext)
            .map_err(|e| CryptoError::Decrypt(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn members_read_and_later_keys_cannot_read_earlier() {
        let mut out = OutboundGroup::new();
        let early = InboundGroup::from_key(&out.session_key()).unwrap();
        let m1 = out.encrypt(b"one");
        let late_key = out.session_key();
        let m2 = out.encrypt(b"two");
        let mut early = early;
        assert_eq!(early.decrypt(&m1).unwrap(), b"one");
        assert_eq!(early.decrypt(&m2).unwrap(), b"two");
        assert_eq!(early.session_id(), out.session_id());
        // Added after m1: cannot read it, reads m2.
        let mut late = InboundGroup::from_key(&late_key).unwrap();
        assert!(late.decrypt(&m1).is_err());
        assert_eq!(late.decrypt(&m2).unwrap(), b"two");
    }

    #[test]
    fn a_new_session_locks_out_old_readers() {
        let mut first = OutboundGroup::new();
        let mut removed = InboundGroup::from_key(&first.session_key()).unwrap();
        assert!(removed.decrypt(&first.encrypt(b"before")).is_ok());
        // Someone left: a new session, whose key the removed member never gets.
        let mut second = OutboundGroup::new();
        assert!(removed.decrypt(&second.encrypt(b"after")).is_err());
    }

    #[test]
    fn forged_or_altered_messages_fail() {
        let mut out = OutboundGroup::new();
        let mut inb = InboundGroup::from_key(&out.session_key()).unwrap();
        let mut m = out.encrypt(b"hello");
        let n = m.len();
        m[n / 2] ^= 1;
        assert!(inb.decrypt(&m).is_err());
        let mut other = OutboundGroup::new();
        assert!(inb.decrypt(&other.encrypt(b"x")).is_err());
    }

    #[test]
    fn pickles_round_trip() {
        let key = StorageKey::generate();
        let mut out = OutboundGroup::new();
        let inb = InboundGroup::from_key(&out.session_key()).unwrap();
        let mut out2 = OutboundGroup::restore(&out.pickle(&key), &key).unwrap();
        let mut inb2 = InboundGroup::restore(&inb.pickle(&key), &key).unwrap();
        let _ = out.encrypt(b"skip");
        assert_eq!(out2.message_index(), 0);
        assert_eq!(inb2.decrypt(&out2.encrypt(b"x")).unwrap(), b"x");
        assert!(OutboundGroup::restore(&out.pickle(&key), &StorageKey::generate()).is_err());
    }

    #[test]
    fn an_exported_first_key_opens_everything_from_there() {
        let mut out = OutboundGroup::new();
        let own = InboundGroup::from_key(&out.session_key()).unwrap();
        let m1 = out.encrypt(b"one");
        let m2 = out.encrypt(b"two");
        // A device learned of after two messages still reads both from the exported key.
        let (key, index) = own.export_first();
        assert_eq!(index, 0);
        let mut late = InboundGroup::from_key(&key).unwrap();
        assert_eq!(late.session_id(), out.session_id());
        assert_eq!(late.decrypt(&m1).unwrap(), b"one");
        assert_eq!(late.decrypt(&m2).unwrap(), b"two");
        // The current key, by contrast, opens neither.
        let mut current = InboundGroup::from_key(&out.session_key()).unwrap();
        assert!(current.decrypt(&m1).is_err());
        // An export from a copy that starts later starts there too.
        let (key, index) = current.export_first();
        assert_eq!(index, 2);
        assert!(InboundGroup::from_key(&key).unwrap().decrypt(&m2).is_err());
    }

    proptest! {
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = InboundGroup::from_key(&bytes);
            let mut inb = InboundGroup::from_key(&OutboundGroup::new().session_key()).unwrap();
            let _ = inb.decrypt(&bytes);
        }
    }
}
