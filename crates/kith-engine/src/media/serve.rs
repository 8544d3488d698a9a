//! Serving chunks to peers off the media task's loop.
//!
//! Reading a chunk from disk and sealing it costs about as much as receiving one; done on
//! the media task, a node that serves and fetches at once (a group member passing chunks
//! on, or any sender) would do one after the other on one thread. Instead the task only
//! decides *what* to read (the whole file, the `.part` of a file still arriving when it
//! holds that chunk, or the index) and hands the read and seal to a blocking thread:
//!
//! - at most [`MAX_SERVING`] chunks are read and sealed at once (each holds a chunk in
//!   memory), and at most [`MAX_SERVE_QUEUE`] wait for their turn; more are answered `Busy`
//!   at once (the asker retries), so memory stays bounded whatever peers ask;
//! - the answer goes straight to the network actor, not back through the task.
//!
//! The network actor already bounds the answers it owes (64 in all, 16 per peer) and the
//! rate of each peer's requests; the engine decided the asker may have the file.
//!
//! Each chunk served is counted per file and per peer ([`Served`], bounded): the sender
//! sees its side of a transfer as `uploading` media events in `kith watch` and the API,
//! the percent of the file each contact's device was sent, every 5 %.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use kith_net::{NetCommand, PeerId, WeakNetHandle};
use kith_proto::media::{Hash, Manifest, MediaRefusal, MediaResponse, have_len, set_have_bit};
use tokio::sync::Semaphore;

use super::{Task, files};
use crate::model::Event;

/// Chunks read and sealed for peers at once.
pub const MAX_SERVING: usize = 4;
/// Chunks waiting to be read and sealed (past that a request is answered `Busy`).
pub const MAX_SERVE_QUEUE: usize = 128;

/// The serving side's bounds, shared with the spawned reads.
pub(super) struct Serving {
    /// Permits to read and seal now.
    run: Arc<Semaphore>,
    /// Permits to wait for a read (taken without waiting; none left: `Busy`).
    queue: Arc<Semaphore>,
}

impl Default for Serving {
    fn default() -> Self {
        Self {
            run: Arc::new(Semaphore::new(MAX_SERVING)),
            queue: Arc::new(Semaphore::new(MAX_SERVE_QUEUE)),
        }
    }
}

/// What to read for one request.
enum Read {
    Index(PathBuf),
    Chunk(PathBuf, u32),
}

impl Task {
    /// Answers inbound request `id` of `peer` with the index (`chunk: None`) or a chunk of
    /// the file of `m`, read and sealed on a blocking thread.
    pub(super) fn serve(
        &mut self,
        id: u64,
        asker: Option<(PeerId, (String, String))>,
        m: Manifest,
        chunk: Option<u32>,
        spread: bool,
    ) {
        let read = match chunk {
            None => Some(Read::Index(self.dir.index(&m.root))),
            Some(i) if i >= m.chunks() => None,
            // A file still arriving serves the chunks it has (checked when written).
            Some(i) if !self.dir.ready(&m.root) => match self.active.get(&m.root) {
                Some(d) if d.part.as_ref().is_some_and(|p| p.has(i)) => {
                    Some(Read::Chunk(self.dir.part(&m.root), i))
                }
                _ => None,
            },
            Some(i) => Some(Read::Chunk(self.dir.file(&m.root), i)),
        };
        let Some(read) = read else {
            let resp = MediaResponse::Refused(MediaRefusal::NotFound);
            self.net_send(NetCommand::AnswerMedia { id, resp });
            return;
        };
        let Ok(queued) = self.serving.queue.clone().try_acquire_owned() else {
            let resp = MediaResponse::Refused(MediaRefusal::Busy);
            self.net_send(NetCommand::AnswerMedia { id, resp });
            return;
        };
        // A chunk of our group file that went to enough askers lately: the others fetch it
        // from them (`swarm`).
        if let (true, Read::Chunk(_, i)) = (spread, &read)
            && !self
                .spread
                .allow(m.root, m.chunks(), *i, std::time::Instant::now())
        {
            let resp = MediaResponse::Refused(MediaRefusal::Busy);
            self.net_send(NetCommand::AnswerMedia { id, resp });
            return;
        }
        if let (Some((peer, (msg, contact))), Read::Chunk(_, i)) = (asker, &read) {
            let bytes = m.chunk_len(*i) as u64;
            if let Some(percent) = self.served.count(m.root, peer, bytes, m.size) {
                // Upload progress: how much of the file this contact's device was sent.
                let _ = self.events.send(Event::Media {
                    contact,
                    id: msg,
                    state: "uploading".into(),
                    percent,
                });
            }
        }
        let run = self.serving.run.clone();
        let net = self.net.clone();
        tokio::spawn(async move {
            let _queued = queued;
            let resp = match run.acquire_owned().await {
                Ok(permit) => tokio::task::spawn_blocking(move || {
                    let _permit = permit;
                    match read {
                        Read::Index(path) => std::fs::read(path).map(MediaResponse::Index),
                        Read::Chunk(path, i) => {
                            files::sealed_chunk_at(&path, &m, i).map(MediaResponse::Chunk)
                        }
                    }
                })
                .await
                .ok()
                .and_then(Result::ok),
                Err(_) => None,
            };
            let resp = resp.unwrap_or(MediaResponse::Refused(MediaRefusal::NotFound));
            send(&net, NetCommand::AnswerMedia { id, resp });
        });
    }
}

impl Task {
    /// Answers inbound request `id` with the chunks of the file of `m` held here: all of a
    /// whole file, those of one still arriving, `NotFound` when none is here.
    pub(super) fn serve_have(&mut self, id: u64, m: &Manifest) {
        let count = m.chunks();
        let resp = if self.dir.ready(&m.root) {
            let mut bits = vec![0u8; have_len(count)];
            for i in 0..count {
                set_have_bit(&mut bits, i, true);
            }
            MediaResponse::Have(bits)
        } else {
            match self.active.get(&m.root).and_then(|d| d.part.as_ref()) {
                Some(p) if p.held() > 0 && p.have_bits().len() == have_len(count) => {
                    MediaResponse::Have(p.have_bits().to_vec())
                }
                _ => MediaResponse::Refused(MediaRefusal::NotFound),
            }
        };
        self.net_send(NetCommand::AnswerMedia { id, resp });
    }
}

fn send(net: &WeakNetHandle, cmd: NetCommand) {
    if net.send(cmd).is_err() {
        tracing::debug!(
            "network busy; a media answer was dropped (the asker's deadline covers it)"
        );
    }
}

/// Most (file, peer) pairs whose served bytes are counted (the least recent goes first).
pub const MAX_SERVED: usize = 4096;

/// Bytes served per file and peer, shared with the engine's views.
#[derive(Debug, Clone, Default)]
pub struct Served(Arc<Mutex<ServedMap>>);

/// Per (file, peer): bytes served, when last counted (a counter), the last percent shown.
#[derive(Debug, Default)]
struct ServedMap {
    by: HashMap<(Hash, PeerId), (u64, u64, u8)>,
    clock: u64,
}

/// Upload events come every this many percent of a file served to a peer.
const STEP: u8 = 5;

impl Served {
    /// Counts `bytes` served of file `root` (of `size` bytes) to `peer`; returns the percent
    /// of the file that peer was sent when it passed another [`STEP`] (or reached 100).
    pub fn count(&self, root: Hash, peer: PeerId, bytes: u64, size: u64) -> Option<u8> {
        let mut m = self.0.lock().ok()?;
        m.clock += 1;
        let clock = m.clock;
        if m.by.len() >= MAX_SERVED && !m.by.contains_key(&(root, peer)) {
            let oldest = m.by.iter().min_by_key(|(_, v)| v.1).map(|(k, _)| *k);
            if let Some(k) = oldest {
                m.by.remove(&k);
            }
        }
        let e = m.by.entry((root, peer)).or_insert((0, clock, 0));
        e.0 = e.0.saturating_add(bytes);
        e.1 = clock;
        let percent = (u128::from(e.0) * 100 / u128::from(size.max(1))).min(100) as u8;
        let shown = e.2;
        let step = percent >= shown.saturating_add(STEP) || (percent == 100 && shown < 100);
        step.then(|| {
            e.2 = percent;
            percent
        })
    }

    /// Bytes of file `root` served to each peer.
    pub fn of(&self, root: &Hash) -> Vec<(PeerId, u64)> {
        let Ok(m) = self.0.lock() else {
            return Vec::new();
        };
        let mut out: Vec<(PeerId, u64)> =
            m.by.iter()
                .filter(|((r, _), _)| r == root)
                .map(|((_, p), v)| (*p, v.0))
                .collect();
        out.sort_by_key(|(p, _)| p.to_bytes());
        out
    }

    /// Bytes of file `root` served in all.
    pub fn total(&self, root: &Hash) -> u64 {
        self.of(root).iter().map(|(_, b)| *b).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Upload progress comes in steps, ends at 100 once, and the map stays bounded.
    #[test]
    fn served_bytes_make_stepped_upload_progress() {
        let s = Served::default();
        let (root, peer) = ([7u8; 32], PeerId::random());
        let shown: Vec<u8> = (0..10)
            .filter_map(|_| s.count(root, peer, 10, 100))
            .collect();
        assert_eq!(shown, vec![10, 20, 30, 40, 50, 60, 70, 80, 90, 100]);
        assert_eq!(s.count(root, peer, 10, 100), None, "100 % is shown once");
        assert_eq!(s.total(&root), 110);
        for n in 0..(MAX_SERVED + 10) {
            let _ = s.count([(n % 251) as u8; 32], PeerId::random(), 1, 1);
        }
        assert!(s.0.lock().unwrap().by.len() <= MAX_SERVED);
    }
}
