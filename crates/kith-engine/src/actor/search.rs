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
use kith_store::Store;

impl State {
    /// After a commit (`ok`), the batch's index changes go to the index; after a failed one
    /// they are dropped with the batch.
    pub(super) fn flush_index(&mut self, ok: bool) {
        let ops = std::mem::take(&mut self.index_ops);
        if !ok || ops.is_empty() {
            return;
        }
        if let Some(b) = &mut self.search_build {
            if b.overflow || b.queued.len() + ops.len() > MAX_QUEUED {
                b.overflow = true;
                b.queued = Vec::new();
            } else {
                b.queued.extend(ops);
            }
            return;
        }
        if let Some(ix) = &mut self.search
            && let Err(e) = ix.apply_marked(ops)
        {
            tracing::warn!(error = %e, "cannot update the search index; it is rebuilt at the next start");
        }
    }

    /// Inside a write transaction, before its commit. The mark the store kept for an
    /// on-disk index (to find one behind at start) has no use for an index that lives in
    /// memory and is built from the store at every start: nothing is written (one sealed
    /// row fewer per batch), the index only takes its next mark.
    pub(super) fn mark_index(&mut self, _w: &mut WriteTx<'_>) -> Result<(), Fatal> {
        if !self.index_ops.is_empty()
            && let Some(ix) = &mut self.search
        {
            ix.next_mark();
        }
        Ok(())
    }

    /// `search`: ranked matches in this node's history, with snippets.
    pub(super) fn search_cmd(
        &self,
        w: &WriteTx<'_>,
        p: &crate::command::SearchParams,
    ) -> Outcome<Vec<SearchHitView>> {
        if self.search.is_none() && self.search_build.is_some() {
            return Ok(Err(EngineError::Internal(
                "the search index is still being built from the store; try again in a moment"
                    .into(),
            )));
        }
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
        // With `mentions`: among the newest messages that name this user.
        let only = if p.mentions {
            let ids: Vec<u128> = w
                .mentions(MENTIONS_SEARCHED)?
                .into_iter()
                .map(|(_, id, _)| id)
                .collect();
            if ids.is_empty() {
                return Ok(Ok(Vec::new()));
            }
            Some(ids)
        } else {
            None
        };
        let hits = match ix.search_among(&p.text, chat.as_deref(), only.as_deref(), p.limit) {
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

/// Most mentions (the newest) a `search --mentions` looks among.
const MENTIONS_SEARCHED: usize = 10_000;

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

/// Most index changes kept while the index is built (beyond, they are dropped and the
/// index is built again once this build is done).
const MAX_QUEUED: usize = 100_000;

/// How long a `search` waits for an index still being built before it answers that it is.
pub(super) const SEARCH_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The search index being built from the store on a thread of its own, at start: the
/// engine does not wait for it. Message text must not lie on disk in clear (the store is
/// sealed at rest), so the index lives in memory and is built at every start, from a read
/// transaction taken before any batch; the batches' changes meanwhile are queued and
/// applied on top once it is ready (applying a change twice is harmless).
pub(super) struct Build {
    done: std::sync::mpsc::Receiver<Option<SearchIndex>>,
    queued: Vec<IndexOp>,
    /// More than [`MAX_QUEUED`] changes came: build again when this build is done.
    overflow: bool,
    me: IdentityKey,
    started: std::time::Instant,
}

/// Starts building the index from `store` (none when the store cannot be read: search is
/// then off).
pub(super) fn start_build(store: &Store, me: IdentityKey) -> Option<Build> {
    let r = match store.begin_read() {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the store for the search index; search is off");
            return None;
        }
    };
    let (tx, done) = std::sync::mpsc::sync_channel(1);
    let spawned = std::thread::Builder::new()
        .name("kith-search-build".into())
        .spawn(move || {
            let _ = tx.send(build_from(&r, me));
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start building the search index; search is off");
        return None;
    }
    Some(Build {
        done,
        queued: Vec::new(),
        overflow: false,
        me,
        started: std::time::Instant::now(),
    })
}

/// The index of every message `r` holds (none when it cannot be built).
fn build_from(r: &kith_store::ReadTx, me: IdentityKey) -> Option<SearchIndex> {
    let mut ix = match SearchIndex::in_memory() {
        Ok(ix) => ix,
        Err(e) => {
            tracing::warn!(error = %e, "cannot open the search index; search is off");
            return None;
        }
    };
    let ops = match all_messages(r, me) {
        Ok(ops) => ops,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the store for the search index");
            return None;
        }
    };
    if let Err(e) = ix.rebuild(ops, 0) {
        tracing::warn!(error = %e, "cannot build the search index");
        return None;
    }
    Some(ix)
}

impl State {
    /// Whether message changes go to the search index (it is open, or being built).
    pub(super) fn indexing(&self) -> bool {
        self.search.is_some() || self.search_build.is_some()
    }

    /// Takes the index once its build is done (waiting up to `wait`), with the changes
    /// queued meanwhile applied.
    pub(super) fn poll_search_build(&mut self, store: &Store, wait: std::time::Duration) {
        let Some(b) = &mut self.search_build else {
            return;
        };
        let got = if wait.is_zero() {
            match b.done.try_recv() {
                Ok(ix) => ix,
                Err(std::sync::mpsc::TryRecvError::Empty) => return,
                Err(std::sync::mpsc::TryRecvError::Disconnected) => None,
            }
        } else {
            match b.done.recv_timeout(wait) {
                Ok(ix) => ix,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => return,
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => None,
            }
        };
        let Some(b) = self.search_build.take() else {
            return;
        };
        let Some(mut ix) = got else {
            tracing::warn!("the search index could not be built; search is off");
            return;
        };
        if b.overflow {
            // Too much changed during the build to keep: build again from now.
            self.search_build = start_build(store, b.me);
            return;
        }
        let n = ix.len();
        if let Err(e) = ix.apply(b.queued) {
            tracing::warn!(error = %e, "cannot update the search index; search is off");
            return;
        }
        tracing::info!(
            messages = n,
            ms = b.started.elapsed().as_millis() as u64,
            "search index built from the store"
        );
        self.search = Some(ix);
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn store_with(dir: &std::path::Path, n: u128) -> Store {
        let store = Store::open_sealed(
            &dir.join("kith.redb"),
            kith_store::DEFAULT_CACHE_BYTES,
            kith_store::StorageSeal::new(&[7; 32]),
        )
        .unwrap();
        let friend = IdentityKey([9; 32]);
        store
            .write(|w| {
                w.put_contact(&kith_store::Contact {
                    identity: friend,
                    name: "Bob".into(),
                    added_ms: 1,
                    added_by_user: true,
                    peer_hint: Vec::new(),
                    addr_hints: Vec::new(),
                })?;
                for i in 0..n {
                    w.append_message(
                        &friend,
                        &kith_store::StoredMessage {
                            id: 1000 + i,
                            outgoing: i % 2 == 0,
                            text: format!("message number {i} about the picnic word{}", i % 977),
                            sent_at_ms: 1_700_000_000_000 + i as u64,
                            stored_at_ms: 1_700_000_000_000 + i as u64,
                            status: kith_store::Status::Delivered,
                        },
                    )?;
                }
                Ok(())
            })
            .unwrap();
        store
    }

    /// The build runs off the caller's thread and finds what the sealed store holds.
    #[test]
    fn the_index_is_built_from_the_sealed_store_in_the_background() {
        let tmp = tempfile::tempdir().unwrap();
        let store = store_with(tmp.path(), 50);
        let b = start_build(&store, IdentityKey([1; 32])).unwrap();
        let ix = b.done.recv().unwrap().unwrap();
        assert_eq!(ix.len(), 50);
        assert_eq!(ix.search("word5", None, 10).unwrap().len(), 1);
    }

    /// Start-up cost of the in-memory index: building it from a sealed store of 100,000
    /// messages (`cargo test -p kith-engine --lib search_build_time -- --ignored --nocapture`).
    #[test]
    #[ignore]
    fn search_build_time() {
        let tmp = tempfile::tempdir().unwrap();
        let n = 100_000;
        let store = store_with(tmp.path(), n);
        let t = std::time::Instant::now();
        let b = start_build(&store, IdentityKey([1; 32])).unwrap();
        let returned = t.elapsed();
        let ix = b.done.recv().unwrap().unwrap();
        let built = t.elapsed();
        assert_eq!(ix.len(), n as u64);
        println!(
            "search index from a sealed store of {n} messages: start_build returned in {:.1} ms, \
             index ready after {:.2} s ({:.0} messages/s)",
            returned.as_secs_f64() * 1000.0,
            built.as_secs_f64(),
            n as f64 / built.as_secs_f64()
        );
    }
}
