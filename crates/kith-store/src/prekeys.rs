//! Sessions opened from this device's fallback pre-keys, kept for as long as the key they
//! used is valid, so a replayed pre-key message cannot open a second session from it after
//! its envelope hash has left the seen table (pre-key messages on one-time keys need no
//! entry: vodozemac removes a one-time key once it is used).

use redb::{ReadableTable, ReadableTableMetadata, TableDefinition};

use crate::*;

/// Session id (a SHA-256 of the pre-key message's keys) → the fallback key it used.
pub(crate) const PREKEY_SESSIONS: TableDefinition<&[u8; 32], [u8; 32]> =
    TableDefinition::new("prekey_sessions");

impl WriteTx<'_> {
    pub(crate) fn create_prekey_tables(&mut self) -> Result<(), StoreError> {
        self.table_mut(PREKEY_SESSIONS)?;
        Ok(())
    }

    /// Whether a session with this id was already opened from a fallback key that is still
    /// valid.
    pub fn prekey_session_seen(&self, id: &[u8; 32]) -> Result<bool, StoreError> {
        Ok(self.table(PREKEY_SESSIONS)?.get(id)?.is_some())
    }

    /// How many sessions from fallback keys are remembered.
    pub fn prekey_sessions(&self) -> Result<u64, StoreError> {
        Ok(self.table(PREKEY_SESSIONS)?.len()?)
    }

    /// Remembers that session `id` was opened from fallback key `key`.
    pub fn mark_prekey_session(&mut self, id: &[u8; 32], key: &[u8; 32]) -> Result<(), StoreError> {
        self.table_mut(PREKEY_SESSIONS)?.insert(id, *key)?;
        Ok(())
    }

    /// Forgets the sessions opened from fallback key `key` (it was retired: a message on it
    /// no longer opens anyway); returns how many.
    pub fn forget_prekey_sessions(&mut self, key: &[u8; 32]) -> Result<u64, StoreError> {
        let mut t = self.table_mut(PREKEY_SESSIONS)?;
        let before = t.len()?;
        t.retain(|_, k| k != *key)?;
        Ok(before - t.len()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_kept_per_key_until_the_key_is_retired() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        store
            .write(|w| {
                w.mark_prekey_session(&[1; 32], &[10; 32])?;
                w.mark_prekey_session(&[2; 32], &[11; 32])?;
                // Pruning envelope hashes leaves them alone.
                w.prune_seen(u64::MAX)?;
                assert!(w.prekey_session_seen(&[1; 32])?);
                assert_eq!(w.prekey_sessions()?, 2);
                assert_eq!(w.forget_prekey_sessions(&[10; 32])?, 1);
                assert!(!w.prekey_session_seen(&[1; 32])?);
                assert!(w.prekey_session_seen(&[2; 32])?);
                Ok(())
            })
            .unwrap();
    }
}
