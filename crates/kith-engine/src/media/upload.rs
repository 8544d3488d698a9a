//! Deposits: after sending a file to a device that is not reachable, the sender's node
//! hands the sealed chunks to that device's mailbox, so the file arrives even when the
//! sender is gone by the time the recipient comes back.
//!
//! 0. `Grant` first: a mailbox that holds the file whole already (deposited for another
//!    device there) keeps it for this device too, and no chunk is sent. Anything but
//!    `Stored` (a mailbox without it, or one too old to know `Grant`) goes on with 1.
//! 1. `Hold` then: the recipient's Curve25519 key, the root, the sealed size and the index.
//!    The mailbox takes it only for a device registered there and within that device's
//!    media quota; a refusal ends the deposit (the sender keeps serving the file itself).
//! 2. Then every chunk the mailbox has not acknowledged yet (`Put`), sealed again from the
//!    plaintext copy, at most [`WINDOW`] in flight. `Busy` is asked again a second later; a
//!    failed request after a pause that doubles with each failure in a row (1 s up to
//!    64 s). After [`MAX_FAILURES`] failures in a row the deposit makes way for others and
//!    is tried again later ([`PARK`], doubled each round, [`MAX_ROUNDS`] rounds; then at the
//!    next start).
//! 3. Which chunks the mailbox acknowledged is written beside the media every
//!    [`SAVE_EVERY`] chunks (`media/deposits/<root>-<key>`, one bit per chunk, synced), so
//!    a deposit cut short by kill -9 or a restart (the engine takes its store row up again)
//!    sends only what the mailbox may lack: at most the last [`SAVE_EVERY`] + [`WINDOW`]
//!    chunks again, which the mailbox takes without storing them twice.
//! 4. When every chunk was `Stored` (or the mailbox refused the file for good), `kith watch`
//!    gets a `deposited` (`not deposited`) media event and the engine drops its row.
//!
//! 5. One copy per mailbox node: further devices registered at the same mailbox (members
//!    of a group, a user's other devices) are granted the file once it is held whole there
//!    (`Grant`: no chunk is sent again), one after another
//!    (at most [`MAX_GRANTS`]). A refused first `Hold` passes the deposit to the next device.
//!
//! At most [`MAX_UPLOADS`] deposits run at once, [`MAX_QUEUED`] wait.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kith_net::{Multiaddr, NetCommand, PeerId, RequestFailure};
use kith_proto::media::{Manifest, MediaRefusal, MediaRequest, MediaResponse, TAG};
use kith_types::DeviceKey;
use tracing::{debug, info, warn};

use super::{MAX_FAILURES, MAX_QUEUED, REQUEST_DEADLINE, RETRY_AFTER, Task, WINDOW, files};
use crate::model::Event;

/// Deposits running at once.
pub const MAX_UPLOADS: usize = 4;
/// Chunks acknowledged between writes of a deposit's progress.
pub const SAVE_EVERY: u32 = 16;
/// How long a deposit that failed [`MAX_FAILURES`] times in a row waits before its next
/// round (doubled each round, at most an hour).
pub const PARK: Duration = Duration::from_secs(60);
/// Rounds of a deposit before it waits for the next start.
pub const MAX_ROUNDS: u32 = 8;
/// Longest pause after failed requests in a row.
const MAX_BACKOFF: Duration = Duration::from_secs(64);
/// Most further devices granted one deposited copy at a mailbox.
pub const MAX_GRANTS: usize = 64;
/// Most ended deposits not yet collected by the engine.
const MAX_FINISHED: usize = 4096;

/// Deposits that are over, for the engine to drop their rows: (message id, device).
pub type Finished = Arc<Mutex<Vec<(u128, DeviceKey)>>>;

/// A file to hand to a device's mailbox.
#[derive(Debug)]
pub struct Deposit {
    /// The message id (text), for events.
    pub msg: String,
    /// The store row: message id and recipient device.
    pub key: (u128, DeviceKey),
    /// The conversation's name, for events.
    pub contact: String,
    /// The file.
    pub manifest: Manifest,
    /// The recipient device's Curve25519 key (as the mailbox knows it).
    pub to: [u8; 32],
    /// The mailbox.
    pub mailbox: (PeerId, Vec<Multiaddr>),
    /// Further devices registered at the same mailbox, granted the file once it is held
    /// whole there: (store row, Curve25519 key); at most [`MAX_GRANTS`].
    pub also: Vec<((u128, DeviceKey), [u8; 32])>,
}

impl Deposit {
    /// Adds the devices of `other` (a deposit of the same file at the same mailbox) that
    /// this one does not cover yet, as further grants; whether `other` was of the same file
    /// and mailbox.
    fn merge(&mut self, other: &Deposit) -> bool {
        if self.manifest.root != other.manifest.root || self.mailbox.0 != other.mailbox.0 {
            return false;
        }
        let them = std::iter::once((other.key, other.to)).chain(other.also.iter().copied());
        for (key, to) in them {
            let known = self.to == to || self.also.iter().any(|(_, t)| *t == to);
            if !known && self.also.len() < MAX_GRANTS {
                self.also.push((key, to));
            }
        }
        true
    }
}

/// One deposit running.
pub(super) struct Upload {
    dep: Deposit,
    /// The mailbox accepted the file.
    held: bool,
    /// The `Grant` was asked.
    probed: bool,
    /// Chunks the mailbox stored from this run of the deposit.
    sent: u32,
    /// Further devices granted.
    granted: u32,
    /// Chunk (`None`: the `Hold`) asked by tag, with when.
    in_flight: HashMap<u64, (Option<u32>, Instant)>,
    cursor: u32,
    again: VecDeque<u32>,
    /// One bit per chunk the mailbox acknowledged.
    done: Vec<u8>,
    stored: u32,
    /// Acknowledged since the progress was last written.
    unsaved: u32,
    failures: u32,
    rounds: u32,
    wait_until: Option<Instant>,
}

/// A deposit waiting for its turn (not before `.1`), in its round `.2`.
type Waiting = (Deposit, Option<Instant>, u32);

/// The deposits of the media task.
pub(super) struct Uploads {
    active: HashMap<u64, Upload>,
    queued: VecDeque<Waiting>,
    /// Our requests in flight: tag → deposit.
    tags: HashMap<u64, u64>,
    next: u64,
    finished: Finished,
}

impl Uploads {
    pub(super) fn new(finished: Finished) -> Self {
        Self {
            active: HashMap::new(),
            queued: VecDeque::new(),
            tags: HashMap::new(),
            next: 0,
            finished,
        }
    }

    /// Whether `tag` is one of our deposit requests.
    pub(super) fn owns(&self, tag: u64) -> bool {
        self.tags.contains_key(&tag)
    }
}

fn has(bits: &[u8], n: u32) -> bool {
    bits.get((n / 8) as usize)
        .is_some_and(|b| b & (1 << (n % 8)) != 0)
}

/// Where a deposit's progress is written.
fn progress_path(dir: &files::Dir, dep: &Deposit) -> PathBuf {
    dir.0.join("deposits").join(format!(
        "{}-{}",
        hex::encode(dep.manifest.root),
        hex::encode(dep.to)
    ))
}

impl Task {
    pub(super) fn deposit(&mut self, dep: Deposit) {
        // The same file at the same mailbox: one copy, the devices granted.
        if self
            .uploads
            .queued
            .iter_mut()
            .any(|(d, _, _)| d.merge(&dep))
            || self.uploads.active.values_mut().any(|u| u.dep.merge(&dep))
        {
            return;
        }
        if self.uploads.queued.len() >= MAX_QUEUED {
            warn!("too many deposits waiting; one waits for the next start");
            return;
        }
        self.uploads.queued.push_back((dep, None, 0));
        self.start_uploads();
    }

    fn start_uploads(&mut self) {
        let now = Instant::now();
        while self.uploads.active.len() < MAX_UPLOADS {
            let Some(at) = self
                .uploads
                .queued
                .iter()
                .position(|(_, after, _)| after.is_none_or(|t| t <= now))
            else {
                return;
            };
            let Some((dep, _, rounds)) = self.uploads.queued.remove(at) else {
                return;
            };
            let count = dep.manifest.chunks();
            let len = (count as usize).div_ceil(8);
            let done = std::fs::read(progress_path(&self.dir, &dep))
                .ok()
                .filter(|b| b.len() == len)
                .unwrap_or_else(|| vec![0; len]);
            let stored = (0..count).filter(|n| has(&done, *n)).count() as u32;
            if stored > 0 {
                info!(stored, total = count, "resuming a deposit");
            }
            self.uploads.next += 1;
            let id = self.uploads.next;
            self.uploads.active.insert(
                id,
                Upload {
                    dep,
                    held: false,
                    probed: false,
                    sent: 0,
                    granted: 0,
                    in_flight: HashMap::new(),
                    cursor: 0,
                    again: VecDeque::new(),
                    done,
                    stored,
                    unsaved: 0,
                    failures: 0,
                    rounds,
                    wait_until: None,
                },
            );
            self.pump_upload(id);
        }
    }

    /// Every tick: requests past their deadline are asked again; waits end.
    pub(super) fn tick_uploads(&mut self) {
        let now = Instant::now();
        let ids: Vec<u64> = self.uploads.active.keys().copied().collect();
        for id in ids {
            if let Some(u) = self.uploads.active.get_mut(&id) {
                let late: Vec<u64> = u
                    .in_flight
                    .iter()
                    .filter(|(_, (_, at))| now.duration_since(*at) > REQUEST_DEADLINE)
                    .map(|(t, _)| *t)
                    .collect();
                for t in late {
                    if let Some((Some(n), _)) = u.in_flight.remove(&t) {
                        u.again.push_back(n);
                    }
                    self.uploads.tags.remove(&t);
                }
            }
            self.pump_upload(id);
        }
        self.start_uploads();
    }

    fn pump_upload(&mut self, id: u64) {
        let now = Instant::now();
        let mut asks: Vec<Option<u32>> = Vec::new();
        {
            let Some(u) = self.uploads.active.get_mut(&id) else {
                return;
            };
            if u.wait_until.is_some_and(|t| now < t) {
                return;
            }
            u.wait_until = None;
            if !u.held {
                if u.in_flight.is_empty() {
                    asks.push(None);
                }
            } else {
                let count = u.dep.manifest.chunks();
                while u.in_flight.len() + asks.len() < WINDOW {
                    let next = u.again.pop_front().or_else(|| {
                        while u.cursor < count && has(&u.done, u.cursor) {
                            u.cursor += 1;
                        }
                        (u.cursor < count).then(|| {
                            u.cursor += 1;
                            u.cursor - 1
                        })
                    });
                    match next {
                        Some(n) if has(&u.done, n) => {}
                        Some(n) => asks.push(Some(n)),
                        None => break,
                    }
                }
                // Held whole: the further devices are granted, one after another.
                if asks.is_empty()
                    && u.in_flight.is_empty()
                    && u.stored >= count
                    && !u.dep.also.is_empty()
                {
                    asks.push(None);
                }
            }
        }
        for n in asks {
            self.ask_upload(id, n, now);
        }
    }

    fn ask_upload(&mut self, id: u64, n: Option<u32>, now: Instant) {
        let Some(u) = self.uploads.active.get_mut(&id) else {
            return;
        };
        let m = &u.dep.manifest;
        let req = match n {
            None if !u.probed => MediaRequest::Grant {
                to: u.dep.to,
                root: m.root,
            },
            None if u.held => MediaRequest::Grant {
                to: u.dep.also.first().map_or(u.dep.to, |(_, to)| *to),
                root: m.root,
            },
            None => match std::fs::read(self.dir.index(&m.root)) {
                Ok(index) => MediaRequest::Hold {
                    to: u.dep.to,
                    root: m.root,
                    sealed: m.size + u64::from(m.chunks()) * TAG as u64,
                    index,
                },
                Err(e) => {
                    warn!(error = %e, "cannot read a sent file's index; no deposit");
                    self.end_upload(id, false);
                    return;
                }
            },
            Some(index) => match files::sealed_chunk(&self.dir, m, index) {
                Ok(bytes) => MediaRequest::Put {
                    to: u.dep.to,
                    root: m.root,
                    index,
                    bytes,
                },
                Err(e) => {
                    warn!(error = %e, "cannot read a sent file; no deposit");
                    self.end_upload(id, false);
                    return;
                }
            },
        };
        self.next_tag += 1;
        let tag = self.next_tag;
        u.in_flight.insert(tag, (n, now));
        self.uploads.tags.insert(tag, id);
        let (peer, addrs) = u.dep.mailbox.clone();
        self.net_send(NetCommand::Media {
            tag,
            peer,
            addrs,
            req,
        });
    }

    pub(super) fn on_upload_answer(
        &mut self,
        tag: u64,
        result: Result<MediaResponse, RequestFailure>,
    ) {
        let Some(id) = self.uploads.tags.remove(&tag) else {
            return;
        };
        let Some(u) = self.uploads.active.get_mut(&id) else {
            return;
        };
        let Some((n, _)) = u.in_flight.remove(&tag) else {
            return;
        };
        match (n, result) {
            // Held whole there already (for another device): granted, nothing to send.
            (None, Ok(MediaResponse::Stored)) if !u.probed => {
                u.probed = true;
                u.held = true;
                u.failures = 0;
                u.done.iter_mut().for_each(|b| *b = 0xff);
                u.stored = u.dep.manifest.chunks();
                debug!("a mailbox holds a deposited file already");
            }
            (None, _) if !u.probed => u.probed = true,
            (None, Ok(MediaResponse::Stored)) if u.held => {
                // A further device granted.
                u.failures = 0;
                if !u.dep.also.is_empty() {
                    let (key, _) = u.dep.also.remove(0);
                    push_finished(&self.uploads.finished, key);
                    u.granted += 1;
                }
            }
            (None, Ok(MediaResponse::Stored)) => {
                u.held = true;
                u.failures = 0;
            }
            (Some(n), Ok(MediaResponse::Stored)) => {
                u.failures = 0;
                if let Some(b) = u.done.get_mut((n / 8) as usize)
                    && *b & (1 << (n % 8)) == 0
                {
                    *b |= 1 << (n % 8);
                    u.stored += 1;
                    u.sent += 1;
                    u.unsaved += 1;
                }
                if u.unsaved >= SAVE_EVERY {
                    u.unsaved = 0;
                    let path = progress_path(&self.dir, &u.dep);
                    if let Err(e) = save(&path, &u.done) {
                        debug!(error = %e, "cannot write a deposit's progress");
                    }
                }
            }
            // A further device's grant found no whole copy (it went meanwhile).
            (None, Ok(MediaResponse::Refused(MediaRefusal::NotFound))) if u.held => {
                if !u.dep.also.is_empty() {
                    let (key, _) = u.dep.also.remove(0);
                    push_finished(&self.uploads.finished, key);
                }
            }
            (
                _,
                Ok(MediaResponse::Refused(
                    r @ (MediaRefusal::Full | MediaRefusal::Unauthorized | MediaRefusal::Invalid),
                )),
            ) => {
                info!(?r, "the recipient's mailbox does not keep the file");
                match (n, u.held) {
                    // A further device's grant refused: the others go on.
                    (None, true) if !u.dep.also.is_empty() => {
                        let (key, _) = u.dep.also.remove(0);
                        push_finished(&self.uploads.finished, key);
                    }
                    // The first device's: the deposit passes to the next one.
                    (None, false) if !u.dep.also.is_empty() => {
                        let (key, to) = u.dep.also.remove(0);
                        push_finished(&self.uploads.finished, u.dep.key);
                        u.dep.key = key;
                        u.dep.to = to;
                        u.probed = false;
                        u.done.iter_mut().for_each(|b| *b = 0);
                        (u.stored, u.cursor) = (0, 0);
                        u.again.clear();
                    }
                    _ => {
                        self.end_upload(id, false);
                        return;
                    }
                }
            }
            (n, other) => {
                if let Some(n) = n {
                    u.again.push_back(n);
                }
                let busy = matches!(other, Ok(MediaResponse::Refused(MediaRefusal::Busy)));
                let pause = if busy {
                    RETRY_AFTER
                } else {
                    debug!(result = ?other.as_ref().err(), "a deposit request failed");
                    u.failures += 1;
                    (RETRY_AFTER * (1 << u.failures.saturating_sub(1).min(6))).min(MAX_BACKOFF)
                };
                u.wait_until = Some(Instant::now() + pause);
                if u.failures >= MAX_FAILURES {
                    self.park_upload(id);
                    return;
                }
            }
        }
        if u.held && u.stored >= u.dep.manifest.chunks() && u.dep.also.is_empty() {
            self.end_upload(id, true);
            return;
        }
        self.pump_upload(id);
    }

    /// A deposit that failed too often in a row makes way; it is tried again later.
    fn park_upload(&mut self, id: u64) {
        let Some(u) = self.uploads.active.remove(&id) else {
            return;
        };
        for t in u.in_flight.keys() {
            self.uploads.tags.remove(t);
        }
        let _ = save(&progress_path(&self.dir, &u.dep), &u.done);
        if u.rounds + 1 >= MAX_ROUNDS {
            warn!("a deposit failed; it is tried again at the next start");
        } else {
            let wait = (PARK * (1 << u.rounds.min(6))).min(Duration::from_secs(3600));
            info!(
                round = u.rounds + 1,
                "a deposit failed; it is tried again later"
            );
            self.uploads
                .queued
                .push_back((u.dep, Some(Instant::now() + wait), u.rounds + 1));
        }
        self.start_uploads();
    }

    fn end_upload(&mut self, id: u64, done: bool) {
        let Some(u) = self.uploads.active.remove(&id) else {
            return;
        };
        for t in u.in_flight.keys() {
            self.uploads.tags.remove(t);
        }
        if done {
            info!(
                size = u.dep.manifest.size,
                sent = u.sent,
                devices = u.granted + 1,
                "a file is kept at the recipient's mailbox"
            );
        }
        let _ = std::fs::remove_file(progress_path(&self.dir, &u.dep));
        push_finished(&self.uploads.finished, u.dep.key);
        for (key, _) in &u.dep.also {
            push_finished(&self.uploads.finished, *key);
        }
        let _ = self.events.send(Event::Media {
            contact: u.dep.contact.clone(),
            id: u.dep.msg.clone(),
            state: if done { "deposited" } else { "not deposited" }.into(),
            percent: if done { 100 } else { 0 },
        });
        self.start_uploads();
    }
}

/// Reports a device's deposit as over, for the engine to drop its row.
fn push_finished(finished: &Finished, key: (u128, DeviceKey)) {
    if let Ok(mut f) = finished.lock()
        && f.len() < MAX_FINISHED
    {
        f.push(key);
    }
}

/// Writes a deposit's progress (aside, synced, renamed).
fn save(path: &std::path::Path, bits: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    files::replace(path, bits)
}
