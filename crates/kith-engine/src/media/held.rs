//! As a mailbox: the sealed chunks of files kept for registered devices whose senders could
//! not reach them. The engine decided (with the store: registration, quota, expiry) that a
//! file may be kept; this side checks and writes the bytes and serves them back.
//!
//! On disk, beside the device's own media: `media/held/<root>.idx` (the index, checked
//! against the root) and `media/held/<root>/<n>` (sealed chunk `n`, checked against the
//! index, written aside, synced and renamed before it is acknowledged). The chunks are
//! stored as they came: the mailbox has no key and learns only their sizes.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;

use kith_net::{NetCommand, PeerId};
use kith_proto::media::{Hash, MediaRefusal, MediaResponse, hash};
use tracing::{debug, warn};

use super::Task;
use crate::cores::mailbox::BAD_HELD_CHUNK;

/// What a mailbox is asked to keep.
#[derive(Debug)]
pub enum Keep {
    /// The file's index (its hash is the root: the engine checked it).
    Index(Vec<u8>),
    /// Sealed chunk `n`.
    Chunk(u32, Vec<u8>),
}

impl Task {
    /// Keeps an index or a chunk and answers request `id`.
    pub(super) fn keep(&self, id: u64, peer: PeerId, root: Hash, what: Keep) {
        let resp = match what {
            Keep::Index(index) => match self.keep_index(&root, &index) {
                Ok(()) => MediaResponse::Stored,
                Err(e) => {
                    warn!(error = %e, "cannot keep a media index");
                    MediaResponse::Refused(MediaRefusal::Busy)
                }
            },
            Keep::Chunk(n, bytes) => match self.keep_chunk(&root, n, &bytes) {
                Ok(true) => MediaResponse::Stored,
                Ok(false) => {
                    debug!(%peer, "a chunk for the mailbox fails its check");
                    self.net_send(NetCommand::Penalize {
                        peer,
                        reason: BAD_HELD_CHUNK,
                    });
                    MediaResponse::Refused(MediaRefusal::Invalid)
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    MediaResponse::Refused(MediaRefusal::NotFound)
                }
                Err(e) => {
                    warn!(error = %e, "cannot keep a media chunk");
                    MediaResponse::Refused(MediaRefusal::Busy)
                }
            },
        };
        self.net_send(NetCommand::AnswerMedia { id, resp });
    }

    fn keep_index(&self, root: &Hash, index: &[u8]) -> io::Result<()> {
        let path = self.dir.held_index(root);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        if fs::metadata(&path).is_ok_and(|m| m.len() == index.len() as u64) {
            return Ok(());
        }
        super::files::replace(&path, index)
    }

    /// Writes chunk `n` when its hash is the one the index lists; false when it is not.
    fn keep_chunk(&self, root: &Hash, n: u32, bytes: &[u8]) -> io::Result<bool> {
        let mut want = [0u8; 32];
        File::open(self.dir.held_index(root))?.read_exact_at(&mut want, u64::from(n) * 32)?;
        if hash(bytes) != want {
            return Ok(false);
        }
        let folder = self.dir.held(root);
        let path = folder.join(n.to_string());
        if path.is_file() {
            return Ok(true);
        }
        fs::create_dir_all(&folder)?;
        let tmp = folder.join(format!("{n}.tmp"));
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_data()?;
        fs::rename(&tmp, &path)?;
        Ok(true)
    }

    /// Answers request `id` with the index (`None`) or a chunk of a file kept here.
    pub(super) fn serve_held(&self, id: u64, root: &Hash, chunk: Option<u32>) {
        let read = match chunk {
            None => fs::read(self.dir.held_index(root)).map(MediaResponse::Index),
            Some(n) => fs::read(self.dir.held(root).join(n.to_string())).map(MediaResponse::Chunk),
        };
        let resp = read.unwrap_or(MediaResponse::Refused(MediaRefusal::NotFound));
        self.net_send(NetCommand::AnswerMedia { id, resp });
    }

    /// Deletes the chunks and index of files no device has kept any more.
    pub(super) fn drop_held(&self, roots: &[Hash]) {
        for root in roots {
            let _ = fs::remove_dir_all(self.dir.held(root));
            let _ = fs::remove_file(self.dir.held_index(root));
        }
    }
}
