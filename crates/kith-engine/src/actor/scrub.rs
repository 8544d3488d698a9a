//! Scrubbing removed text out of the files: after a delete for everyone, a delete for me, a
//! disappearing message's expiry or an edit, the old text is gone from what the node shows,
//! but its bytes stay in the store's freed pages and in the search index's segments until
//! they are reused or merged. A scrub ([`kith_store::Store::scrub`] and
//! [`crate::search::SearchIndex::scrub`]) overwrites the store's free pages with zeros and
//! compacts it, and rewrites the index segments that hold deleted documents.
//!
//! It runs when text was removed (`set_text` marks it due), at most every [`SCRUB_EVERY`]
//! while the node runs, and at a clean stop. A node killed before the next scrub keeps the
//! bytes until the scrub after its restart (the mark is in memory: the first scrub after a
//! start runs when text is next removed, or at the next clean stop).

use std::time::Duration;

use super::*;

/// Least time between two scrubs while the node runs (a scrub writes as many pages as the
/// store has free).
pub const SCRUB_EVERY: Duration = Duration::from_secs(300);

/// Whether a scrub is due, and when the last one ran.
#[derive(Debug)]
pub(super) struct ScrubState {
    /// Text was removed or replaced since the last scrub.
    pub(super) due: bool,
    /// When the last scrub ran (or the node started).
    last: Instant,
}

impl Default for ScrubState {
    fn default() -> Self {
        Self {
            due: false,
            last: Instant::now(),
        }
    }
}

impl Engine {
    /// Every tick: a scrub when one is due and the last was long enough ago.
    pub(super) fn scrub_tick(&mut self) {
        if self.st.scrub.due && self.st.scrub.last.elapsed() >= SCRUB_EVERY {
            self.scrub_if_due();
        }
    }

    /// Scrubs the store and the index if text was removed since the last scrub.
    pub(super) fn scrub_if_due(&mut self) {
        if !self.st.scrub.due {
            return;
        }
        self.st.scrub.due = false;
        self.st.scrub.last = Instant::now();
        let file = self.st.data_dir.join("kith.redb");
        let len = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
        match self.store.scrub(len) {
            Ok(true) => {}
            // A backup's snapshot held the file: the free pages are zeroed, the file is
            // compacted next time.
            Ok(false) => self.st.scrub.due = true,
            Err(e) => warn!(error = %e, "cannot scrub the store"),
        }
        if let Some(ix) = &mut self.st.search
            && let Err(e) = ix.scrub()
        {
            warn!(error = %e, "cannot scrub the search index");
        }
    }
}
