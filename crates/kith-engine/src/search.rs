//! Full-text search over this node's own history (`kith search`): a tantivy index in
//! `search/` beside the store.
//!
//! The store stays the truth; the index is derived from it. The actor collects what a batch
//! changed (a message stored, its text edited, blanked by a delete or expiry, hidden) as
//! [`IndexOp`]s, and applies them right after the batch commits and before the batch's reads
//! are answered, so a search sees what was just stored. An index that is missing or empty
//! while the store holds messages is rebuilt from the store at start-up. So is one that fell
//! behind after a crash between the two commits: every write transaction that changes what
//! the index should hold also advances a mark in the store's meta (`search-mark`), and the
//! index commits that mark with the changes (tantivy's commit payload); at start-up marks
//! that differ mean the index missed a batch, and it is rebuilt.
//!
//! One document per message, keyed by its id: the chat (a contact's identity or a group id,
//! hex), the sender's identity (hex), the time and the text (tokenized, stored for snippets).
//! Ranking is tantivy's BM25.

use std::path::Path;

use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, Occur, Query, QueryParser, TermQuery, TermSetQuery};
use tantivy::schema::{
    Field, INDEXED, IndexRecordOption, STORED, STRING, Schema, TEXT, TantivyDocument, Value,
};
use tantivy::snippet::SnippetGenerator;
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, Term, doc};

/// The index directory's name in the data directory.
pub const SEARCH_DIR: &str = "search";
/// Memory the index writer may use before it flushes a segment (tantivy's minimum).
const WRITER_MEMORY: usize = 15_000_000;
/// Most hits one search returns.
pub const MAX_HITS: usize = 200;
/// Longest snippet, in characters.
const SNIPPET_CHARS: usize = 120;

/// What went wrong with the index.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SearchError {
    /// Tantivy failed (the index directory, a commit, a query).
    #[error("search index: {0}")]
    Index(#[from] tantivy::TantivyError),
    /// The index directory could not be opened.
    #[error("search index directory: {0}")]
    Directory(String),
}

/// A change to the index.
#[derive(Clone, PartialEq, Eq)]
pub enum IndexOp {
    /// A message with its current text (replaces what the index held for its id).
    Put {
        /// Message id.
        id: u128,
        /// The chat's key bytes (`kith_store::ChatRef::key`).
        chat: Vec<u8>,
        /// The sender's identity key.
        from: [u8; 32],
        /// When it was written (ms).
        sent_at: u64,
        /// The text.
        text: String,
    },
    /// A message no longer searchable (deleted, hidden, expired).
    Remove(u128),
}

impl std::fmt::Debug for IndexOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IndexOp::Put { id, .. } => write!(f, "Put({id:x})"),
            IndexOp::Remove(id) => write!(f, "Remove({id:x})"),
        }
    }
}

/// One search result.
#[derive(Clone, PartialEq)]
pub struct Hit {
    /// Message id.
    pub id: u128,
    /// The chat's key bytes.
    pub chat: Vec<u8>,
    /// The sender's identity key.
    pub from: [u8; 32],
    /// When it was written (ms).
    pub sent_at: u64,
    /// The best fragment of the text, matches in `[` `]`.
    pub snippet: String,
    /// BM25 score (higher is better).
    pub score: f32,
}

impl std::fmt::Debug for Hit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hit")
            .field("id", &self.id)
            .field("score", &self.score)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Copy)]
struct Fields {
    id: Field,
    chat: Field,
    from: Field,
    sent_at: Field,
    text: Field,
}

/// The index, its writer and its reader.
pub struct SearchIndex {
    index: Index,
    writer: IndexWriter<TantivyDocument>,
    reader: IndexReader,
    f: Fields,
    /// The mark of the index's last commit.
    committed: u64,
    /// The last mark handed out for the store ([`SearchIndex::next_mark`]).
    handed: u64,
    /// A commit failed: no later commit may claim a mark, so the next start rebuilds.
    failed: bool,
}

impl std::fmt::Debug for SearchIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SearchIndex")
    }
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let f = Fields {
        id: b.add_text_field("id", STRING | STORED),
        chat: b.add_text_field("chat", STRING | STORED),
        from: b.add_text_field("from", STORED),
        sent_at: b.add_u64_field("sent_at", INDEXED | STORED),
        text: b.add_text_field("text", TEXT | STORED),
    };
    (b.build(), f)
}

fn id_text(id: u128) -> String {
    format!("{id:032x}")
}

impl SearchIndex {
    /// Opens (or creates) the index in `dir`.
    pub fn open(dir: &Path) -> Result<Self, SearchError> {
        std::fs::create_dir_all(dir).map_err(|e| SearchError::Directory(e.to_string()))?;
        let (schema, f) = schema();
        let mmap = tantivy::directory::MmapDirectory::open(dir)
            .map_err(|e| SearchError::Directory(e.to_string()))?;
        let index = Index::open_or_create(mmap, schema)?;
        Self::with_index(index, f)
    }

    /// An index in memory (tests).
    pub fn in_memory() -> Result<Self, SearchError> {
        let (schema, f) = schema();
        Self::with_index(Index::create_in_ram(schema), f)
    }

    fn with_index(index: Index, f: Fields) -> Result<Self, SearchError> {
        let writer = index.writer_with_num_threads(1, WRITER_MEMORY)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        let committed = index
            .load_metas()?
            .payload
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        Ok(Self {
            index,
            writer,
            reader,
            f,
            committed,
            handed: committed,
            failed: false,
        })
    }

    /// The mark of the index's last commit (0 for an index that never had one).
    pub fn mark(&self) -> u64 {
        self.committed
    }

    /// The mark for a write transaction whose changes the next [`SearchIndex::apply_marked`]
    /// brings: the store keeps it in the same transaction.
    pub fn next_mark(&mut self) -> u64 {
        self.handed = self.handed.max(self.committed) + 1;
        self.handed
    }

    /// Applies changes and commits them with the mark last handed out
    /// ([`SearchIndex::next_mark`]). After a failure nothing more is applied: the marks
    /// then differ at the next start, which rebuilds the index.
    pub fn apply_marked(&mut self, ops: Vec<IndexOp>) -> Result<(), SearchError> {
        if self.failed {
            return Ok(());
        }
        let mark = self.handed;
        let res = self.apply_with(ops, Some(mark));
        if res.is_err() {
            self.failed = true;
        }
        res
    }

    /// Empties the index and fills it with `ops`, committed with `mark` (a rebuild).
    pub fn rebuild(&mut self, ops: Vec<IndexOp>, mark: u64) -> Result<(), SearchError> {
        self.writer.delete_all_documents()?;
        self.handed = mark;
        self.apply_with(ops, Some(mark))?;
        if self.committed != mark {
            // No ops: commit the mark alone.
            self.commit(Some(mark))?;
        }
        Ok(())
    }

    fn commit(&mut self, mark: Option<u64>) -> Result<(), SearchError> {
        let mut prepared = self.writer.prepare_commit()?;
        if let Some(m) = mark {
            prepared.set_payload(&m.to_string());
        }
        prepared.commit()?;
        self.reader.reload()?;
        if let Some(m) = mark {
            self.committed = m;
        }
        Ok(())
    }

    /// How many messages the index holds.
    pub fn len(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Applies changes and commits them (searches see them at once).
    pub fn apply(&mut self, ops: Vec<IndexOp>) -> Result<(), SearchError> {
        self.apply_with(ops, None)
    }

    fn apply_with(&mut self, ops: Vec<IndexOp>, mark: Option<u64>) -> Result<(), SearchError> {
        if ops.is_empty() {
            return Ok(());
        }
        for op in ops {
            match op {
                IndexOp::Put {
                    id,
                    chat,
                    from,
                    sent_at,
                    text,
                } => {
                    self.writer
                        .delete_term(Term::from_field_text(self.f.id, &id_text(id)));
                    if !text.is_empty() {
                        self.writer.add_document(doc!(
                            self.f.id => id_text(id),
                            self.f.chat => hex::encode(&chat),
                            self.f.from => hex::encode(from),
                            self.f.sent_at => sent_at,
                            self.f.text => text,
                        ))?;
                    }
                }
                IndexOp::Remove(id) => {
                    self.writer
                        .delete_term(Term::from_field_text(self.f.id, &id_text(id)));
                }
            }
        }
        self.commit(mark)
    }

    /// Makes deleted messages' text leave the index's files: the segments holding deleted
    /// documents are merged into new ones without them, and the files no longer used are
    /// removed (a delete alone only marks a document in a bitmap beside its segment).
    pub fn scrub(&mut self) -> Result<(), SearchError> {
        let with_deletes: Vec<tantivy::index::SegmentId> = self
            .index
            .searchable_segment_metas()?
            .iter()
            .filter(|m| m.has_deletes())
            .map(|m| m.id())
            .collect();
        if !with_deletes.is_empty() {
            self.writer.merge(&with_deletes).wait()?;
        }
        self.writer.garbage_collect_files().wait()?;
        self.reader.reload()?;
        Ok(())
    }

    /// Waits for the segment merges running in the background to end (a benchmark times
    /// queries on a settled index; the writer is opened anew).
    pub fn settle(&mut self) -> Result<(), SearchError> {
        // Another writer cannot open on the same directory while this one holds its lock:
        // a writer of an empty index in memory stands in while the merges are awaited.
        let stand_in =
            Index::create_in_ram(schema().0).writer_with_num_threads(1, WRITER_MEMORY)?;
        let old = std::mem::replace(&mut self.writer, stand_in);
        old.wait_merging_threads()?;
        self.writer = self.index.writer_with_num_threads(1, WRITER_MEMORY)?;
        self.reader.reload()?;
        Ok(())
    }

    /// Empties the index (before a rebuild).
    pub fn clear(&mut self) -> Result<(), SearchError> {
        self.writer.delete_all_documents()?;
        self.writer.commit()?;
        self.reader.reload()?;
        Ok(())
    }

    /// The best `limit` matches of `query` (words, all of which must be there unless joined
    /// by `OR`, `"phrases"`, `-exclusions`; what tantivy's query parser reads, leniently), in
    /// `chat` only when given.
    pub fn search(
        &self,
        query: &str,
        chat: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Hit>, SearchError> {
        self.search_among(query, chat, None, limit)
    }

    /// [`SearchIndex::search`] among the messages `only` names, when given.
    pub fn search_among(
        &self,
        query: &str,
        chat: Option<&[u8]>,
        only: Option<&[u128]>,
        limit: usize,
    ) -> Result<Vec<Hit>, SearchError> {
        let searcher = self.reader.searcher();
        let mut parser = QueryParser::for_index(&self.index, vec![self.f.text]);
        // Every word must be in a hit (`OR` asks for either), as in other messengers'
        // search: "dinner friday" means both. It is also far less work than a union of two
        // common words, where block-max pruning skips little (docs/benchmarks.md).
        parser.set_conjunction_by_default();
        let (q, _errors) = parser.parse_query_lenient(query);
        let q: Box<dyn Query> = match chat {
            Some(c) => Box::new(BooleanQuery::new(vec![
                (Occur::Must, q),
                (
                    Occur::Must,
                    Box::new(TermQuery::new(
                        Term::from_field_text(self.f.chat, &hex::encode(c)),
                        IndexRecordOption::Basic,
                    )),
                ),
            ])),
            None => q,
        };
        let q: Box<dyn Query> = match only {
            Some(ids) => Box::new(BooleanQuery::new(vec![
                (Occur::Must, q),
                (
                    Occur::Must,
                    Box::new(TermSetQuery::new(
                        ids.iter()
                            .map(|id| Term::from_field_text(self.f.id, &id_text(*id))),
                    )),
                ),
            ])),
            None => q,
        };
        let top = searcher.search(&q, &TopDocs::with_limit(limit.clamp(1, MAX_HITS)))?;
        let mut snippets = SnippetGenerator::create(&searcher, &*q, self.f.text)?;
        snippets.set_max_num_chars(SNIPPET_CHARS);
        let mut hits = Vec::with_capacity(top.len());
        for (score, addr) in top {
            let d: TantivyDocument = searcher.doc(addr)?;
            let text_of = |f: Field| {
                d.get_first(f)
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default()
            };
            let id = u128::from_str_radix(&text_of(self.f.id), 16).unwrap_or(0);
            let chat = hex::decode(text_of(self.f.chat)).unwrap_or_default();
            let from = hex::decode(text_of(self.f.from))
                .ok()
                .and_then(|v| <[u8; 32]>::try_from(v).ok())
                .unwrap_or([0; 32]);
            let sent_at = d
                .get_first(self.f.sent_at)
                .and_then(|v| v.as_u64())
                .unwrap_or(0);
            let snip = snippets.snippet_from_doc(&d);
            let snippet = if snip.fragment().is_empty() {
                text_of(self.f.text).chars().take(SNIPPET_CHARS).collect()
            } else {
                mark(snip.fragment(), snip.highlighted())
            };
            hits.push(Hit {
                id,
                chat,
                from,
                sent_at,
                snippet,
                score,
            });
        }
        Ok(hits)
    }
}

/// A fragment with its highlighted ranges in `[` `]`.
fn mark(fragment: &str, ranges: &[std::ops::Range<usize>]) -> String {
    let mut out = String::with_capacity(fragment.len() + 2 * ranges.len());
    let mut at = 0;
    for r in ranges {
        let (Some(before), Some(word)) = (fragment.get(at..r.start), fragment.get(r.clone()))
        else {
            continue;
        };
        out.push_str(before);
        out.push('[');
        out.push_str(word);
        out.push(']');
        at = r.end;
    }
    out.push_str(fragment.get(at..).unwrap_or_default());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(id: u128, chat: u8, text: &str) -> IndexOp {
        IndexOp::Put {
            id,
            chat: vec![chat; 32],
            from: [chat; 32],
            sent_at: id as u64,
            text: text.into(),
        }
    }

    #[test]
    fn finds_ranks_filters_and_follows_edits_and_deletes() {
        let mut ix = SearchIndex::in_memory().unwrap();
        ix.apply(vec![
            put(1, 1, "dinner at eight tonight"),
            put(2, 1, "the dinner dinner dinner plan"),
            put(3, 2, "dinner with carol"),
            put(4, 2, "nothing to see"),
        ])
        .unwrap();
        let hits = ix.search("dinner", None, 10).unwrap();
        assert_eq!(hits.len(), 3);
        // BM25: the message that says it three times ranks first.
        assert_eq!(hits[0].id, 2);
        assert!(
            hits[0].snippet.contains("[dinner]"),
            "{:?}",
            hits[0].snippet
        );
        // Only one chat.
        let in_two = ix.search("dinner", Some(&[2; 32]), 10).unwrap();
        assert_eq!(in_two.iter().map(|h| h.id).collect::<Vec<_>>(), vec![3]);
        // An edit replaces the text; a delete takes it out.
        ix.apply(vec![put(3, 2, "lunch with carol"), IndexOp::Remove(1)])
            .unwrap();
        let ids: Vec<u128> = ix
            .search("dinner", None, 10)
            .unwrap()
            .iter()
            .map(|h| h.id)
            .collect();
        assert_eq!(ids, vec![2]);
        assert_eq!(ix.search("lunch", None, 10).unwrap()[0].id, 3);
        // An emptied text (tombstone) leaves nothing.
        ix.apply(vec![put(2, 1, "")]).unwrap();
        assert!(ix.search("dinner", None, 10).unwrap().is_empty());
        assert_eq!(ix.len(), 2);
        // Every word must be there; OR asks for either.
        ix.apply(vec![
            put(5, 1, "picnic at the beach"),
            put(6, 1, "beach day"),
        ])
        .unwrap();
        let ids = |q: &str| {
            let mut v: Vec<u128> = ix
                .search(q, None, 10)
                .unwrap()
                .iter()
                .map(|h| h.id)
                .collect();
            v.sort();
            v
        };
        assert_eq!(ids("picnic beach"), vec![5]);
        assert_eq!(ids("picnic OR beach"), vec![5, 6]);
        // Among some messages only.
        let among = |only: &[u128]| {
            let mut v: Vec<u128> = ix
                .search_among("beach", None, Some(only), 10)
                .unwrap()
                .iter()
                .map(|h| h.id)
                .collect();
            v.sort();
            v
        };
        assert_eq!(among(&[6, 9]), vec![6]);
        assert!(among(&[]).is_empty());
        // Odd queries do not fail.
        assert!(ix.search("\"unclosed AND (", None, 10).is_ok());
    }

    /// The CPU time this thread has run (Linux's schedstat), to tell the work of a query
    /// from the time slices a loaded machine takes away; `None` elsewhere.
    fn thread_cpu() -> Option<std::time::Duration> {
        let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
        let ns: u64 = s.split_whitespace().next()?.parse().ok()?;
        Some(std::time::Duration::from_nanos(ns))
    }

    /// The benchmark: build an index of `KITH_SEARCH_BENCH_N` messages (default
    /// 100,000) in a temporary directory (or `KITH_SEARCH_BENCH_DIR`, kept and reused when
    /// it holds as many), wait for the merges, then time 1,000 one- and two-word queries.
    /// Prints the build rate, the index size per message, the query p50/p95 (wall time and
    /// this thread's CPU time) and the ranking's share. Run with
    /// `KITH_SEARCH_BENCH_N=1000000 cargo test -p kith-engine --lib search_bench --
    /// --ignored --nocapture`.
    #[test]
    #[ignore]
    fn search_bench() {
        use std::time::Instant;
        let n: u128 = std::env::var("KITH_SEARCH_BENCH_N")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(100_000);
        let words = [
            "dinner", "picnic", "tomorrow", "meeting", "train", "coffee", "birthday", "weekend",
            "project", "deadline", "movie", "holiday", "call", "photos", "beach", "garden",
            "concert", "school", "doctor", "market", "kitchen", "bicycle", "rain", "library",
            "museum", "airport", "ticket", "message", "letter", "island",
        ];
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        // KITH_SEARCH_BENCH_DIR keeps the index (built once, then reused: only the queries
        // are timed again).
        let tmp = tempfile::tempdir().unwrap();
        let dir = std::env::var_os("KITH_SEARCH_BENCH_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| tmp.path().to_path_buf());
        let mut ix = SearchIndex::open(&dir).unwrap();
        let reuse = ix.len() == n as u64;
        let start = Instant::now();
        if !reuse {
            ix.clear().unwrap();
            let mut batch = Vec::with_capacity(10_000);
            for id in 0..n {
                let len = 4 + (next() % 12) as usize;
                let mut text: Vec<String> = (0..len)
                    .map(|_| words[(next() % words.len() as u64) as usize].to_string())
                    .collect();
                // A rarer word or two, as names, places and plans are (10,000 of them).
                text.push(format!("w{}", next() % 10_000));
                batch.push(IndexOp::Put {
                    id,
                    chat: vec![(id % 50) as u8; 32],
                    from: [(id % 7) as u8; 32],
                    sent_at: id as u64,
                    text: text.join(" "),
                });
                if batch.len() == 10_000 {
                    ix.apply(std::mem::take(&mut batch)).unwrap();
                }
            }
            ix.apply(batch).unwrap();
        }
        let built = start.elapsed();
        // Let the background merges end before timing queries (a daemon's index is merged
        // while it idles; queries timed during merges measure the merges).
        ix.settle().unwrap();
        let settled = start.elapsed();
        let bytes: u64 = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok()?.metadata().ok())
            .map(|m| m.len())
            .sum();
        let segments = ix.index.searchable_segment_ids().unwrap().len();
        // Two kinds of query: common words (each in about a third of all messages, the
        // worst case for ranking) and rarer ones (about 100 messages each).
        let mut common = Vec::with_capacity(500);
        let mut rare = Vec::with_capacity(500);
        let mut ranking = Vec::with_capacity(500);
        let mut common_cpu = Vec::with_capacity(500);
        let (mut one, mut two) = (Vec::with_capacity(250), Vec::with_capacity(250));
        for i in 0..1000 {
            let q = if i % 2 == 0 {
                let a = words[(next() % words.len() as u64) as usize];
                let b = words[(next() % words.len() as u64) as usize];
                if i % 4 == 0 {
                    a.to_string()
                } else {
                    format!("{a} {b}")
                }
            } else {
                format!("w{}", next() % 10_000)
            };
            let (t, cpu) = (Instant::now(), thread_cpu());
            let hits = ix.search(&q, None, 20).unwrap();
            let took = t.elapsed();
            let cpu = cpu.zip(thread_cpu()).map(|(a, b)| b.saturating_sub(a));
            assert!(!hits.is_empty());
            if i % 2 == 0 {
                common.push(took);
                common_cpu.extend(cpu);
                // The ranking alone (no stored fields, no snippets), for the breakdown.
                let searcher = ix.reader.searcher();
                let mut parser = QueryParser::for_index(&ix.index, vec![ix.f.text]);
                parser.set_conjunction_by_default();
                let (parsed, _) = parser.parse_query_lenient(&q);
                let t = Instant::now();
                let top = searcher.search(&parsed, &TopDocs::with_limit(20)).unwrap();
                let r = t.elapsed();
                ranking.push(r);
                if q.contains(' ') {
                    two.push(r)
                } else {
                    one.push(r)
                }
                assert_eq!(top.len(), hits.len());
            } else {
                rare.push(took)
            }
        }
        let p = |v: &mut Vec<std::time::Duration>, q: usize| {
            v.sort();
            v[(v.len() * q / 100).min(v.len() - 1)]
        };
        if !common_cpu.is_empty() {
            println!(
                "common-word query CPU time p50 {:?} p95 {:?}",
                p(&mut common_cpu, 50),
                p(&mut common_cpu, 95)
            );
        }
        println!(
            "ranking alone: one common word p50 {:?} p95 {:?}; two p50 {:?} p95 {:?}",
            p(&mut one, 50),
            p(&mut one, 95),
            p(&mut two, 50),
            p(&mut two, 95)
        );
        println!(
            "search bench: {n} messages {}, merges done at {:.1} s, {segments} segments, index {} bytes ({:.1} bytes/message); common-word query p50 {:?} p95 {:?} (ranking alone p50 {:?} p95 {:?}); rare-word query p50 {:?} p95 {:?}",
            if reuse {
                "reused (built before)".to_string()
            } else {
                format!(
                    "built in {:.1} s ({:.0} messages/s)",
                    built.as_secs_f64(),
                    n as f64 / built.as_secs_f64()
                )
            },
            settled.as_secs_f64(),
            bytes,
            bytes as f64 / n as f64,
            p(&mut common, 50),
            p(&mut common, 95),
            p(&mut ranking, 50),
            p(&mut ranking, 95),
            p(&mut rare, 50),
            p(&mut rare, 95),
        );
    }

    /// The mark travels with the index's commit and survives a reopen; a rebuild takes the
    /// store's mark.
    #[test]
    fn the_mark_is_committed_with_the_changes() {
        let dir = tempfile::tempdir().unwrap();
        let mut ix = SearchIndex::open(dir.path()).unwrap();
        assert_eq!(ix.mark(), 0);
        assert_eq!(ix.next_mark(), 1);
        ix.apply_marked(vec![put(1, 1, "hello there")]).unwrap();
        assert_eq!(ix.mark(), 1);
        // A mark handed out for a batch that did not commit is skipped, not reused.
        assert_eq!(ix.next_mark(), 2);
        assert_eq!(ix.next_mark(), 3);
        ix.apply_marked(vec![put(2, 1, "general kenobi")]).unwrap();
        drop(ix);
        let mut ix = SearchIndex::open(dir.path()).unwrap();
        assert_eq!(ix.mark(), 3);
        ix.rebuild(vec![put(3, 1, "only this")], 9).unwrap();
        assert_eq!(ix.mark(), 9);
        assert_eq!(ix.len(), 1);
        ix.rebuild(Vec::new(), 11).unwrap();
        assert_eq!((ix.mark(), ix.len()), (11, 0));
    }

    #[test]
    fn marks_matches() {
        let one = std::ops::Range { start: 2, end: 4 };
        assert_eq!(mark("a bc d", std::slice::from_ref(&one)), "a [bc] d");
        assert_eq!(mark("abc", &[0..1, 2..3]), "[a]b[c]");
    }
}
