//! The first start after `kith backup restore`: the device may have sent group messages
//! with its Megolm sending sessions after the backup was made, so the restored state's next
//! message keys may be used already. Every group's sending session is dropped, so the next
//! message starts a new one (its key goes to the members as usual), then the mark
//! ([`kith_backup::RESTORED_MARK`]) is removed. A crash in between renews them again next
//! time, which is harmless.
//!
//! The numbering of the device's group frames comes back as of the backup too: frames the
//! old device sent after it carry the next numbers already, and members would take the
//! restored device's next frames for those. So each group is also marked restored (meta
//! [`restored_key`], with the time): until its first catch-up with a member has been
//! answered (which hands back our own later frames, and `take_frame` moves the numbering
//! past them, `cores::group_frames::restored_next_seq`), its sends wait, for at most
//! `RESTORE_SYNC_WAIT_MS`.

use std::path::Path;

use kith_store::{Store, StoreError};
use kith_types::{GroupId, now_ms};

/// The meta key marking `group` as restored and not caught up yet (value: the time, ms).
pub(super) fn restored_key(group: &GroupId) -> String {
    format!("group-restored:{}", group.to_hex())
}

/// Drops the sending sessions of every group when `data_dir` was just restored; returns how
/// many were dropped.
pub(super) fn renew_after_restore(data_dir: &Path, store: &Store) -> Result<usize, StoreError> {
    let mark = data_dir.join(kith_backup::RESTORED_MARK);
    if !mark.exists() {
        return Ok(0);
    }
    let at = now_ms().to_le_bytes();
    let dropped = store.write(|w| {
        let mut n = 0;
        for (id, mut row) in w.groups()? {
            w.set_meta(&restored_key(&id), &at)?;
            if row.out_session.is_some() || !row.out_shared.is_empty() {
                row.out_session = None;
                row.out_shared.clear();
                w.put_group(&id, &row)?;
                n += 1;
            }
        }
        Ok(n)
    })?;
    if let Err(e) = std::fs::remove_file(&mark) {
        tracing::warn!(error = %e, "cannot remove the restore mark");
    }
    tracing::info!(
        groups = dropped,
        "restored from a backup: group sending sessions renewed"
    );
    Ok(dropped)
}
