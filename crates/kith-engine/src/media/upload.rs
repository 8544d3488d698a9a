//! Deposits: after sending a file to a device that is not reachable, the sender's node
//! hands the sealed chunks to that device's mailbox, so the file arrives even when the
//! sender is gone by the time the recipient comes back.
//!
//! 1. `Hold` first: the recipient's Curve25519 key, the root, the sealed size and the index.
//!    The mailbox takes it only for a device registered there and within that device's
//!    media quota; a refusal ends the deposit (the sender keeps serving the file itself).
//! 2. Then every chunk (`Put`), sealed again from the plaintext copy, at most [`WINDOW`] in
//!    flight. `Busy` and failed requests are asked again a second later; [`MAX_FAILURES`]
//!    failures in a row end the deposit.
//! 3. When every chunk was `Stored`, `kith watch` gets a `deposited` media event.
//!
//! At most [`MAX_UPLOADS`] deposits run at once, [`MAX_QUEUED`] wait. A deposit lives in
//! memory only: one cut short by a restart is not taken up again (the file still comes
//! from the sender while it is online).

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use kith_net::{Multiaddr, NetCommand, PeerId, RequestFailure};
use kith_proto::media::{Manifest, MediaRefusal, MediaRequest, MediaResponse, TAG};
use tracing::{debug, info, warn};

use super::{MAX_FAILURES, MAX_QUEUED, REQUEST_DEADLINE, RETRY_AFTER, Task, WINDOW, files};
use crate::model::Event;

/// Deposits running at once.
pub const MAX_UPLOADS: usize = 4;

/// A file to hand to a device's mailbox.
#[derive(Debug)]
pub struct Deposit {
    /// The message id (text), for events.
    pub msg: String,
    /// The conversation's name, for events.
    pub contact: String,
    /// The file.
    pub manifest: Manifest,
    /// The recipient device's Curve25519 key (as the mailbox knows it).
    pub to: [u8; 32],
    /// The mailbox.
    pub mailbox: (PeerId, Vec<Multiaddr>),
}

/// One deposit running.
pub(super) struct Upload {
    dep: Deposit,
    /// The mailbox accepted the file.
    held: bool,
    /// Chunk (`None`: the `Hold`) asked by tag, with when.
    in_flight: HashMap<u64, (Option<u32>, Instant)>,
    cursor: u32,
    again: VecDeque<u32>,
    stored: u32,
    failures: u32,
    wait_until: Option<Instant>,
}

/// The deposits of the media task.
#[derive(Default)]
pub(super) struct Uploads {
    active: HashMap<u64, Upload>,
    queued: VecDeque<Deposit>,
    /// Our requests in flight: tag → deposit.
    tags: HashMap<u64, u64>,
    next: u64,
}

impl Uploads {
    /// Whether `tag` is one of our deposit requests.
    pub(super) fn owns(&self, tag: u64) -> bool {
        self.tags.contains_key(&tag)
    }
}

impl Task {
    pub(super) fn deposit(&mut self, dep: Deposit) {
        let dup = |d: &Deposit| d.manifest.root == dep.manifest.root && d.to == dep.to;
        if self.uploads.queued.iter().any(dup) || self.uploads.active.values().any(|u| dup(&u.dep))
        {
            return;
        }
        if self.uploads.queued.len() >= MAX_QUEUED {
            warn!("too many deposits waiting; one is dropped");
            return;
        }
        self.uploads.queued.push_back(dep);
        self.start_uploads();
    }

    fn start_uploads(&mut self) {
        while self.uploads.active.len() < MAX_UPLOADS {
            let Some(dep) = self.uploads.queued.pop_front() else {
                return;
            };
            self.uploads.next += 1;
            let id = self.uploads.next;
            self.uploads.active.insert(
                id,
                Upload {
                    dep,
                    held: false,
                    in_flight: HashMap::new(),
                    cursor: 0,
                    again: VecDeque::new(),
                    stored: 0,
                    failures: 0,
                    wait_until: None,
                },
            );
            self.pump_upload(id);
        }
    }

    /// Every second: requests past their deadline are asked again; waits end.
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
                        (u.cursor < count).then(|| {
                            u.cursor += 1;
                            u.cursor - 1
                        })
                    });
                    match next {
                        Some(n) => asks.push(Some(n)),
                        None => break,
                    }
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
            (None, Ok(MediaResponse::Stored)) => {
                u.held = true;
                u.failures = 0;
            }
            (Some(_), Ok(MediaResponse::Stored)) => {
                u.stored += 1;
                u.failures = 0;
            }
            (
                _,
                Ok(MediaResponse::Refused(
                    r @ (MediaRefusal::Full | MediaRefusal::Unauthorized | MediaRefusal::Invalid),
                )),
            ) => {
                info!(?r, "the recipient's mailbox does not keep the file");
                self.end_upload(id, false);
                return;
            }
            (n, other) => {
                if let Some(n) = n {
                    u.again.push_back(n);
                }
                let busy = matches!(other, Ok(MediaResponse::Refused(MediaRefusal::Busy)));
                if !busy {
                    debug!(result = ?other.as_ref().err(), "a deposit request failed");
                    u.failures += 1;
                }
                u.wait_until = Some(Instant::now() + RETRY_AFTER);
                if u.failures >= MAX_FAILURES {
                    warn!("a deposit failed");
                    self.end_upload(id, false);
                    return;
                }
            }
        }
        if u.held && u.stored >= u.dep.manifest.chunks() {
            self.end_upload(id, true);
            return;
        }
        self.pump_upload(id);
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
                "a file is kept at the recipient's mailbox"
            );
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
