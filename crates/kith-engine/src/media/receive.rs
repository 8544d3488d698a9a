//! Answers to our requests: an index is checked here; a chunk is checked against the
//! index and written (still sealed) at its offset on a blocking thread, so the media task goes on
//! asking and serving meanwhile (on a node with more than one core, several chunks are
//! opened at once).
//!
//! A chunk being opened still counts in its download's window ([`super::WINDOW`]), so at
//! most that many chunks per download are in memory whatever the order of the answers. It
//! counts in the `.part`'s `.have` only once it was written ([`Partial::mark`]), and `.have`
//! is written only after the `.part` was synced: resume stays correct after a kill -9.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::time::Instant;

use kith_net::{NetCommand, PeerId, RequestFailure};
use kith_proto::media::{Hash, Index, MediaRefusal, MediaResponse};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::swarm::Have;
use super::{BANNED, MAX_BAD, RETRY_AFTER, SYNC_EVERY, Task, files};

/// Chunks checked and written (or refused) off the task, waiting for the task to count them.
pub(super) const OPENED_QUEUE: usize = 256;

/// What became of one received chunk.
pub(super) struct Opened {
    root: Hash,
    tag: u64,
    peer: PeerId,
    i: u32,
    result: Result<(), Refused>,
}

enum Refused {
    /// It failed its check (hash, seal or length).
    Bad,
    /// It could not be written.
    Io(std::io::Error),
}

enum Outcome {
    Good,
    Bad,
    Busy,
    /// The source does not have it (yet: a member still fetching, a mailbox not filled).
    NotFound,
    Failed,
}

/// Whether a `NotFound` from `source` counts against the download: only when every other
/// source is failing too (each has a failure in a row). A member that does not have a
/// chunk yet is asked again later (it rests, longer with each answer in a row), but
/// members' "not found" never fails a file that another source still serves; a source
/// that answers only "not found", forever, costs one request per rest.
fn nobody_has_it(rest: &[(Instant, u32, u32)], source: usize) -> bool {
    rest.iter()
        .enumerate()
        .all(|(s, r)| s == source || r.1 > 0 || r.2 >= MAX_BAD)
}

/// Checks and writes chunk `i` (blocking): its BLAKE3 hash must be the one the index (checked
/// against the manifest's root) lists, and its length the chunk's. It is not opened here:
/// chunks stay sealed at rest, and `kith save` opens each one (a chunk that does not open
/// under the manifest's key, which only the file's own sender could make, is refused
/// there as damaged). Opening it here as well cost a third pass of a cipher over every byte
/// received, and a copy.
fn check_and_write(
    want: [u8; 32],
    (len, offset): (usize, u64),
    sealed: Vec<u8>,
    file: &File,
) -> Result<(), Refused> {
    if sealed.len() != len + kith_proto::media::TAG {
        return Err(Refused::Bad);
    }
    if kith_proto::media::hash(&sealed).as_slice() != want {
        return Err(Refused::Bad);
    }
    file.write_all_at(&sealed, offset).map_err(Refused::Io)
}

impl Task {
    pub(super) fn on_answer(
        &mut self,
        tag: u64,
        peer: PeerId,
        result: Result<MediaResponse, RequestFailure>,
    ) {
        let Some(root) = self.asked.remove(&tag) else {
            return;
        };
        let Some(d) = self.active.get_mut(&root) else {
            return;
        };
        let count = d.fetch.manifest.chunks();
        if let Some((s, _)) = d.have_asked.remove(&tag) {
            let now = Instant::now();
            let have = match result {
                Ok(MediaResponse::Have(bits)) => Have::answered(Some(bits), count, now),
                // An older version answers `Busy` to a request it cannot read, or the
                // request failed: this member is asked for chunks blindly, one at a time,
                // as before `Have` existed.
                Ok(MediaResponse::Refused(MediaRefusal::Busy)) | Err(_) => Have::Blind,
                // Holds none of it (or will not say): asked again later.
                Ok(_) => Have::answered(None, count, now),
            };
            if let Some(h) = d.have.get_mut(s)
                && *h != Have::Seed
            {
                *h = have;
            }
            self.pump(root);
            return;
        }
        let Some((chunk, _, source)) = d.in_flight.remove(&tag) else {
            return;
        };
        let outcome = match (chunk, result) {
            (None, Ok(MediaResponse::Index(bytes))) => match Index::from_bytes(&root, count, bytes)
            {
                Ok(index) => {
                    let _ = files::replace(&self.dir.index(&root), index.as_bytes());
                    d.index = Some(index);
                    Outcome::Good
                }
                Err(_) => Outcome::Bad,
            },
            (Some(i), Ok(MediaResponse::Chunk(sealed))) => {
                let at = i as usize * 32;
                let want = d
                    .index
                    .as_ref()
                    .and_then(|x| x.as_bytes().get(at..at + 32))
                    .and_then(|h| <[u8; 32]>::try_from(h).ok());
                match (want, d.part.as_ref()) {
                    (Some(want), Some(part)) => {
                        // Counted in the window until the task hears how it went.
                        d.opening.insert(tag, (i, source));
                        let m = &d.fetch.manifest;
                        let at = (m.chunk_len(i), files::sealed_offset(m, i));
                        let (file, done) = (part.file(), self.opened.clone());
                        tokio::spawn(async move {
                            let result = tokio::task::spawn_blocking(move || {
                                check_and_write(want, at, sealed, &file)
                            })
                            .await
                            .unwrap_or(Err(Refused::Bad));
                            let opened = Opened {
                                root,
                                tag,
                                peer,
                                i,
                                result,
                            };
                            let _ = done.send(opened).await;
                        });
                        return;
                    }
                    _ => {
                        d.again.push_back(i);
                        Outcome::Bad
                    }
                }
            }
            (c, Ok(MediaResponse::Refused(MediaRefusal::Busy))) => {
                if let Some(i) = c {
                    d.again.push_back(i);
                }
                Outcome::Busy
            }
            (c, Ok(MediaResponse::Refused(MediaRefusal::NotFound))) => {
                if let Some(i) = c {
                    d.again.push_back(i);
                    // A member that said it held it does not after all.
                    if let Some(h) = d.have.get_mut(source) {
                        h.lacks(i);
                    }
                }
                Outcome::NotFound
            }
            (c, other) => {
                if let Some(i) = c {
                    d.again.push_back(i);
                }
                match other {
                    Ok(MediaResponse::Refused(r)) => debug!(%peer, ?r, "media request refused"),
                    Err(e) => debug!(%peer, error = %e, "media request failed"),
                    Ok(_) => {}
                }
                Outcome::Failed
            }
        };
        self.account(root, source, peer, outcome);
    }

    /// A chunk was checked and written (or refused) off the task.
    pub(super) fn on_opened(&mut self, o: Opened) {
        let Some(d) = self.active.get_mut(&o.root) else {
            return;
        };
        let Some((i, source)) = d.opening.remove(&o.tag) else {
            return;
        };
        let outcome = match (o.result, d.part.as_mut()) {
            (Ok(()), Some(part)) => match part.mark(&self.dir, &o.root, i, SYNC_EVERY) {
                Ok(()) => {
                    if let Some(h) = d.have.get_mut(source) {
                        h.got(i);
                    }
                    Outcome::Good
                }
                Err(e) => {
                    warn!(error = %e, "cannot record a download's progress");
                    d.again.push_back(i);
                    Outcome::Failed
                }
            },
            (Err(Refused::Io(e)), _) => {
                warn!(error = %e, "cannot write a download");
                d.again.push_back(i);
                Outcome::Failed
            }
            (Err(Refused::Bad), _) | (Ok(()), None) => {
                d.again.push_back(i);
                Outcome::Bad
            }
        };
        debug_assert_eq!(i, o.i);
        self.account(o.root, source, o.peer, outcome);
    }

    /// Counts an answer of `source` for or against it, then moves the download on.
    fn account(&mut self, root: Hash, source: usize, peer: PeerId, outcome: Outcome) {
        let Some(d) = self.active.get_mut(&root) else {
            return;
        };
        let now = Instant::now();
        let nobody = nobody_has_it(&d.rest, source);
        let rest = d.rest.get_mut(source);
        match outcome {
            Outcome::Good => {
                d.failures = 0;
                if let Some(r) = rest {
                    r.1 = 0;
                }
            }
            Outcome::Bad => {
                warn!(%peer, "a source sent a chunk that fails its check");
                // Asked again of the others; this source rests, and after MAX_BAD bad
                // chunks is asked no more (when no source is left, the download fails).
                if let Some(r) = rest {
                    r.2 += 1;
                    let until = if r.2 >= MAX_BAD { BANNED } else { RETRY_AFTER };
                    *r = (now + until, r.1.saturating_add(1), r.2);
                }
                if d.rest.iter().all(|r| r.2 >= MAX_BAD) {
                    d.bad = MAX_BAD;
                }
                let _ = self.net.send(NetCommand::Penalize {
                    peer,
                    reason: "bad media chunk",
                });
            }
            Outcome::Busy => {
                // The source has it but serves others now: the same source, a little later.
                if let Some(r) = rest {
                    r.0 = now + RETRY_AFTER;
                }
            }
            Outcome::NotFound | Outcome::Failed => {
                if matches!(outcome, Outcome::Failed) || nobody {
                    d.failures += 1;
                }
                if let Some(r) = rest {
                    let strikes = r.1.min(5);
                    *r = (
                        now + RETRY_AFTER * (1 << strikes),
                        r.1.saturating_add(1),
                        r.2,
                    );
                }
            }
        }
        self.after_answer(root);
    }
}

/// The channel opened chunks come back on.
pub(super) fn channel() -> (mpsc::Sender<Opened>, mpsc::Receiver<Opened>) {
    mpsc::channel(OPENED_QUEUE)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 64 members that do not have a chunk yet answer "not found" while the sender serves:
    /// none of it counts against the file; when every source fails, it does.
    #[test]
    fn members_not_found_does_not_fail_a_file_the_sender_serves() {
        let now = Instant::now();
        let mut rest = vec![(now, 0u32, 0u32); 65];
        for s in 1..65 {
            assert!(!nobody_has_it(&rest, s), "the sender (0) still serves");
            rest[s].1 += 1;
        }
        assert!(
            nobody_has_it(&rest, 0),
            "the sender does not have it either"
        );
        rest[0].1 = 1;
        assert!(nobody_has_it(&rest, 3));
        rest[0] = (now, 0, MAX_BAD);
        assert!(nobody_has_it(&rest, 3), "a banned source serves nothing");
    }
}
