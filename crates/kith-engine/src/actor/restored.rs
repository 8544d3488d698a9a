//! The first start after `kith backup restore`: the device may have sent group messages
//! with its Megolm sending sessions after the backup was made, so the restored state's next
//! message keys may be used already. Every group's sending session is dropped, so the next
//! message starts a new one (its key goes to the members as usual), then the mark
//! ([`kith_backup::RESTORED_MARK`]) is removed. A crash in between renews them again next
//! time, which is harmless.

use std::path::Path;

use kith_store::{Store, StoreError};

/// Drops the sending sessions of every group when `data_dir` was just restored; returns how
/// many were dropped.
pub(super) fn renew_after_restore(data_dir: &Path, store: &Store) -> Result<usize, StoreError> {
    let mark = data_dir.join(kith_backup::RESTORED_MARK);
    if !mark.exists() {
        return Ok(0);
    }
    let dropped = store.write(|w| {
        let mut n = 0;
        for (id, mut row) in w.groups()? {
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
