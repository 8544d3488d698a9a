//! The search index's I/O side (the index itself is [`crate::search`]): opening it beside
//! the store and rebuilding it from the store when it is missing, applying what a batch
//! changed after its commit, and the `search` command.
//!
//! Data flow: a rule that stores or changes a message's text notes it
//! ([`State::index_put`], from `chat.rs`: every stored message passes `chat_stored`, every
//! text change `set_text`); after the batch's commit [`State::flush_index`] hands the notes
//! to the index, before the batch's reads are answered; a failed commit drops them.

use kith_store::ChatRef;

use super::*;
use crate::command::SearchHitView;
use crate::model::{EngineError, Outcome};
use crate::search::{IndexOp, SEARCH_DIR, SearchIndex};

impl State {
    /// After a commit (`ok`), the batch's index changes go to the index; after a failed one
    /// they are dropped with the batch.
    pub(super) fn flush_index(&mut self, ok: bool) {
        let ops = std::mem::take(&mut self.index_ops);
        if !ok || ops.is_empty() {
            return;
        }
        if let Some(ix) = &mut self.search
            && let Err(e) = ix.apply_marked(ops)
        {
            tracing::warn!(error = %e, "cannot update the search index; it is rebuilt at the next start");
        }
    }

    /// Inside a write transaction, before its commit: when the batch changed what the index
    /// should hold, the store takes the index's next mark (see `crate::search`).
    pub(super) fn mark_index(&mut self, w: &mut WriteTx<'_>) -> Result<(), Fatal> {
        if self.index_ops.is_empty() {
            return Ok(());
        }
        if let Some(ix) = &mut self.search {
            w.set_meta(SEARCH_MARK, &ix.next_mark().to_be_bytes())?;
        }
        Ok(())
    }

    /// `search`: ranked matches in this node's history, with snippets.
    pub(super) fn search_cmd(
        &self,
        w: &WriteTx<'_>,
        p: &crate::command::SearchParams,
    ) -> Outcome<Vec<SearchHitView>> {
        let Some(ix) = &self.search else {
            return Ok(Err(EngineError::Internal(
                "the search index is not open".into(),
            )));
        };
        let chat = if p.chat.to.is_some() || p.chat.group.is_some() {
            match self.chat_of(w, &p.chat)? {
                Ok((c, _)) => Some(c.key()),
                Err(e) => return Ok(Err(e)),
            }
        } else {
            None
        };
        let hits = match ix.search(&p.text, chat.as_deref(), p.limit) {
            Ok(h) => h,
            Err(e) => return Ok(Err(EngineError::Internal(e.to_string()))),
        };
        let mut out = Vec::with_capacity(hits.len());
        for h in hits {
            let chat_name = match ChatRef::from_key(&h.chat) {
                Some(ChatRef::Contact(c)) => w.contact(&c)?.map(|c| c.name).unwrap_or_default(),
                Some(ChatRef::Group(g)) => self
                    .groups
                    .states
                    .get(&g)
                    .map(|s| format!("#{}", s.name))
                    .unwrap_or_default(),
                None => String::new(),
            };
            out.push(SearchHitView {
                id: MessageId(h.id).to_string(),
                chat: chat_name,
                from: self.member_name(w, &IdentityKey(h.from))?,
                sent_at: h.sent_at,
                snippet: h.snippet,
                score: h.score,
            });
        }
        Ok(Ok(out))
    }
}

/// The store's meta key of the index mark.
const SEARCH_MARK: &str = "search-mark";

/// Removes the on-disk index older versions kept beside the store (message text in clear).
pub(super) fn remove_disk_index(data_dir: &std::path::Path) {
    let dir = data_dir.join(SEARCH_DIR);
    if dir.exists() {
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => tracing::info!("removed the on-disk search index (search is in memory now)"),
            Err(e) => tracing::warn!(error = %e, "cannot remove the old on-disk search index"),
        }
    }
}

/// Opens the search index, in memory: message text must not lie on disk in clear (the
/// store is sealed at rest), so the index is built from the store at every start, and kept
/// up to date after each commit. A node whose index cannot be built runs without search.
pub(super) fn open_search(
    _data_dir: &std::path::Path,
    store: &Store,
    me: IdentityKey,
) -> Option<SearchIndex> {
    let mut ix = match SearchIndex::in_memory() {
        Ok(ix) => ix,
        Err(e) => {
            tracing::warn!(error = %e, "cannot open the search index; search is off");
            return None;
        }
    };
    let mark = match store.read(|r| r.meta(SEARCH_MARK)) {
        Ok(m) => m
            .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
            .map(u64::from_be_bytes)
            .unwrap_or(0),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the store for the search index");
            return Some(ix);
        }
    };
    let behind = ix.mark() != mark;
    if ix.is_empty() || behind {
        match store.read(|r| all_messages(r, me)) {
            Ok(ops) if !ops.is_empty() || behind => {
                let n = ops.len();
                match ix.rebuild(ops, mark) {
                    Ok(()) => {
                        tracing::info!(messages = n, behind, "search index built from the store")
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot build the search index"),
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot read the store for the search index"),
        }
    }
    Some(ix)
}

/// Every message with text in the store, as index entries.
fn all_messages(r: &kith_store::ReadTx, me: IdentityKey) -> Result<Vec<IndexOp>, StoreError> {
    let mut ops = Vec::new();
    for c in r.contacts()? {
        for (_, m) in r.history(&c.identity, usize::MAX)? {
            if m.text.is_empty() {
                continue;
            }
            ops.push(IndexOp::Put {
                id: m.id,
                chat: ChatRef::Contact(c.identity).key(),
                from: if m.outgoing { me.0 } else { c.identity.0 },
                sent_at: m.sent_at_ms,
                text: m.text,
            });
        }
    }
    for (g, _) in r.groups()? {
        for (_, m) in r.group_history(&g, usize::MAX)? {
            if m.text.is_empty() {
                continue;
            }
            ops.push(IndexOp::Put {
                id: m.id,
                chat: ChatRef::Group(g).key(),
                from: m.sender.0,
                sent_at: m.sent_at_ms,
                text: m.text,
            });
        }
    }
    Ok(ops)
}
