//! Media transfers: the task that fetches files into `<data>/media/` and serves them.
//!
//! The format is `kith_proto::media`; the files on disk are described in [`files`]. The
//! engine decides (in its batch, with the store) what may happen: a file sent is imported
//! before its message is queued (`send.file` prepares it on the caller's task); a file
//! received is fetched when auto-download or the user wants it; a peer's request is served
//! only when that person was sent the file. This task does the file and network work:
//!
//! 1. The engine hands it [`Job`]s on a bounded queue ([`JOB_QUEUE`], `try_send`; the
//!    engine never waits): fetch a file, serve an index or chunk, the answer to one of our
//!    requests.
//! 2. At most [`MAX_DOWNLOADS`] files download at once (more wait, up to [`MAX_QUEUED`]);
//!    each keeps at most [`WINDOW`] chunk requests in flight, so memory stays near
//!    `MAX_DOWNLOADS × WINDOW` chunks (16 MiB) whatever the file sizes.
//! 3. A download fetches the index first (checked against the root), then the chunks it
//!    lacks, each checked against the index before it is written (still sealed) at its offset;
//!    every [`SYNC_EVERY`] chunks the file is synced and its progress recorded, so a
//!    restart resumes there. Chunks are asked of the members known to hold them (they say
//!    so with `Have`), and of the sender or our mailboxes only when no member is, from a
//!    random point in the file ([`swarm`], which also has the sender spread each chunk of
//!    its group files before it repeats one); sources that are resting are not asked: a
//!    source rests after a failed request or refusal
//!    (1 s, doubled with each failure in a row, up to 32 s). A chunk that fails its check
//!    counts against its source (penalised; it rests, and after [`MAX_BAD`] bad chunks it
//!    is asked no more) and is asked again of the others;
//!    [`MAX_BAD`] bad chunks from every source, or [`MAX_FAILURES`] failed requests in a
//!    row, fail the download.
//! 4. A file still arriving serves the chunks it has (a group member helps others before it
//!    has the whole file); the index is served as soon as it is here. Chunks are read and
//!    sealed for peers on blocking threads, a few at once ([`serve`]), not on this task,
//!    so serving and fetching run side by side; bytes served are counted per file and peer
//!    and shown to the sender as `uploading` events.
//! 5. Progress goes to `kith watch` as [`Event::Media`] and to views through a shared map.

pub mod files;
pub mod held;
mod receive;
pub mod serve;
mod swarm;
pub mod thumb;
pub mod upload;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kith_net::{Multiaddr, NetCommand, PeerId, RequestFailure, WeakNetHandle};
use kith_proto::media::{Hash, Index, Manifest, MediaRequest, MediaResponse};
use tokio::sync::{broadcast, mpsc};
use tracing::{debug, info, warn};

use crate::model::Event;
use files::{Dir, Partial};

/// The media folder's name in the data directory.
pub const DIR: &str = "media";
/// Jobs waiting for the media task.
pub const JOB_QUEUE: usize = 1024;
/// Files downloading at once.
pub const MAX_DOWNLOADS: usize = 4;
/// Files waiting to download (more are refused, and resumed at the next start).
pub const MAX_QUEUED: usize = 1024;
/// Chunk requests in flight per download.
pub const WINDOW: usize = 16;
/// Chunks written between syncs of a download (8 MiB).
pub const SYNC_EVERY: u32 = 32;
/// Bad chunks (failed checks) before a download fails.
pub const MAX_BAD: u32 = 3;
/// Failed requests in a row before a download fails.
pub const MAX_FAILURES: u32 = 40;
/// Most files whose progress is shown (failed ones are forgotten first when it is full).
const MAX_PROGRESS: usize = MAX_QUEUED + MAX_DOWNLOADS + 1024;
/// A request not answered by then is given up (and asked again).
const REQUEST_DEADLINE: Duration = Duration::from_secs(60);
/// How long a source rests after a failed request before it is asked again (doubled with
/// each failure in a row).
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// How long a source that sent [`MAX_BAD`] bad chunks rests: for the rest of the download.
const BANNED: Duration = Duration::from_secs(24 * 3600);

/// Work for the media task.
#[derive(Debug)]
#[non_exhaustive]
pub enum Job {
    /// Download a file.
    Fetch(Box<Fetch>),
    /// Answer inbound request `id` with the index (`chunk: None`) or a chunk of a file the
    /// asker may have.
    Serve {
        id: u64,
        peer: PeerId,
        manifest: Box<Manifest>,
        chunk: Option<u32>,
        /// The message id (text) and the asker's name, for upload events.
        to: Box<(String, String)>,
        /// A file this node posted to a group: each chunk goes to a few askers first, the
        /// others fetch it from them ([`swarm`]).
        spread: bool,
    },
    /// Answer inbound request `id` of `peer` (who may have the file) with the chunks held.
    ServeHave {
        id: u64,
        peer: PeerId,
        manifest: Box<Manifest>,
    },
    /// The answer to one of our requests.
    Answered {
        tag: u64,
        peer: PeerId,
        result: Result<MediaResponse, RequestFailure>,
    },
    /// Hand a sent file to the recipient's mailbox.
    Deposit(Box<upload::Deposit>),
    /// As a mailbox: keep an index or chunk for a registered device (the engine allowed it)
    /// and answer inbound request `id` from `peer`.
    Keep {
        id: u64,
        peer: PeerId,
        root: Hash,
        what: held::Keep,
    },
    /// As a mailbox: answer inbound request `id` with the index or a chunk kept here.
    ServeHeld {
        id: u64,
        root: Hash,
        chunk: Option<u32>,
    },
    /// As a mailbox: delete the kept files no device has any more.
    DropHeld(Vec<Hash>),
}

/// A file to download.
#[derive(Debug)]
pub struct Fetch {
    /// The message id (text), for events.
    pub msg: String,
    /// The conversation's name, for events.
    pub contact: String,
    /// The file.
    pub manifest: Manifest,
    /// Who may have it (the sender's device first).
    pub sources: Vec<(PeerId, Vec<Multiaddr>)>,
    /// Which of them are our mailboxes (told to let the file go once it is here).
    pub mailboxes: Vec<PeerId>,
}

/// Where a download stands, as views show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Waiting for its turn.
    Queued,
    /// Chunks held of the total.
    Downloading { held: u32, total: u32 },
    /// Given up (the user may ask again).
    Failed,
}

/// The engine's handle to the media task.
#[derive(Debug, Clone)]
pub struct Media {
    tx: mpsc::Sender<Job>,
    /// The folder.
    pub dir: Dir,
    progress: Arc<Mutex<HashMap<Hash, Progress>>>,
    /// Bytes served per file and peer (the sender's side of a transfer).
    pub served: serve::Served,
    /// Deposits that are over (their rows may go).
    finished: upload::Finished,
}

impl Media {
    /// Starts the media task for `dir`.
    pub fn spawn(dir: Dir, net: WeakNetHandle, events: broadcast::Sender<Event>) -> Self {
        if let Err(e) = std::fs::create_dir_all(&dir.0) {
            warn!(error = %e, "cannot make the media folder");
        }
        let (tx, rx) = mpsc::channel(JOB_QUEUE);
        let progress = Arc::new(Mutex::new(HashMap::new()));
        let served = serve::Served::default();
        let (opened_tx, opened_rx) = receive::channel();
        let finished = upload::Finished::default();
        let task = Task {
            dir: dir.clone(),
            net,
            events,
            progress: progress.clone(),
            active: HashMap::new(),
            queued: VecDeque::new(),
            asked: HashMap::new(),
            next_tag: 0,
            uploads: upload::Uploads::new(finished.clone()),
            serving: serve::Serving::default(),
            opened: opened_tx,
            served: served.clone(),
            spread: swarm::Spread::default(),
        };
        tokio::spawn(task.run(rx, opened_rx));
        Self {
            tx,
            dir,
            progress,
            served,
            finished,
        }
    }

    /// The deposits that ended since the last call: (message id, device).
    pub fn take_finished(&self) -> Vec<(u128, kith_types::DeviceKey)> {
        self.finished
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default()
    }

    /// Hands the task a job without waiting; false when its queue is full (or it stopped).
    pub fn offer(&self, job: Job) -> bool {
        self.tx.try_send(job).is_ok()
    }

    /// Where the file with this root stands: state, percent.
    pub fn state(&self, root: &Hash) -> (&'static str, u8) {
        if self.dir.ready(root) {
            return ("ready", 100);
        }
        let p = self.progress.lock().ok().and_then(|m| m.get(root).copied());
        match p {
            Some(Progress::Downloading { held, total }) => ("downloading", percent(held, total)),
            Some(Progress::Failed) => ("failed", 0),
            Some(Progress::Queued) | None => ("waiting", 0),
        }
    }
}

fn percent(held: u32, total: u32) -> u8 {
    (u64::from(held) * 100 / u64::from(total.max(1))).min(100) as u8
}

/// One file downloading.
struct Download {
    fetch: Fetch,
    index: Option<Index>,
    part: Option<Partial>,
    /// Chunk (or `None` for the index) asked by tag, with when and of which source.
    in_flight: HashMap<u64, (Option<u32>, Instant, usize)>,
    /// Chunks received and being opened off the task, by tag: which, of which source.
    opening: HashMap<u64, (u32, usize)>,
    /// Next chunk to consider asking for.
    cursor: u32,
    /// Chunks to ask again first.
    again: VecDeque<u32>,
    /// Where the round of sources stands: the next request goes to the first source from
    /// here that is not resting.
    source: usize,
    /// Per source: until when it rests (after a failure, a refusal or a bad chunk), how
    /// many of its requests failed in a row (the rest doubles with each, up to 32 s), and
    /// how many bad chunks it sent ([`MAX_BAD`] and it is asked no more).
    rest: Vec<(Instant, u32, u32)>,
    /// Per source: what it holds ([`swarm`]); the sender's device and mailboxes are seeds.
    have: Vec<swarm::Have>,
    /// Have requests in flight: tag → source, when asked.
    have_asked: HashMap<u64, (usize, Instant)>,
    /// Where the round of have requests stands.
    have_rr: usize,
    /// Where the walk over the chunks starts (random: members start on different parts).
    start: u32,
    failures: u32,
    bad: u32,
    wait_until: Option<Instant>,
    last_percent: u8,
}

struct Task {
    dir: Dir,
    net: WeakNetHandle,
    events: broadcast::Sender<Event>,
    progress: Arc<Mutex<HashMap<Hash, Progress>>>,
    active: HashMap<Hash, Download>,
    queued: VecDeque<Fetch>,
    /// Our requests in flight: tag → root.
    asked: HashMap<u64, Hash>,
    next_tag: u64,
    /// Files being handed to mailboxes.
    uploads: upload::Uploads,
    /// Chunks being read and sealed for peers.
    serving: serve::Serving,
    /// Where chunks opened off the task come back.
    opened: mpsc::Sender<receive::Opened>,
    /// Bytes served per file and peer.
    served: serve::Served,
    /// Copies of each chunk of our group files served ([`swarm`]).
    spread: swarm::Spread,
}

impl Task {
    async fn run(
        mut self,
        mut rx: mpsc::Receiver<Job>,
        mut opened: mpsc::Receiver<receive::Opened>,
    ) {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                Some(o) = opened.recv() => self.on_opened(o),
                job = rx.recv() => match job {
                    Some(j) => self.on_job(j),
                    None => break,
                },
                _ = tick.tick() => self.on_tick(),
            }
        }
        for d in self.active.values_mut() {
            if let Some(p) = d.part.as_mut() {
                let _ = p.sync(&self.dir, &d.fetch.manifest.root);
            }
        }
    }

    fn set_progress(&self, root: Hash, p: Option<Progress>) {
        if let Ok(mut m) = self.progress.lock() {
            match p {
                Some(p) => {
                    if m.len() >= MAX_PROGRESS && !m.contains_key(&root) {
                        m.retain(|_, v| *v != Progress::Failed);
                    }
                    m.insert(root, p);
                }
                None => {
                    m.remove(&root);
                }
            }
        }
    }

    fn event(&self, f: &Fetch, state: &str, percent: u8) {
        let _ = self.events.send(Event::Media {
            contact: f.contact.clone(),
            id: f.msg.clone(),
            state: state.into(),
            percent,
        });
    }

    fn on_job(&mut self, job: Job) {
        match job {
            Job::Fetch(f) => {
                let root = f.manifest.root;
                if self.dir.ready(&root)
                    || self.active.contains_key(&root)
                    || self.queued.iter().any(|q| q.manifest.root == root)
                {
                    return;
                }
                if self.queued.len() >= MAX_QUEUED {
                    warn!("too many downloads waiting; one is left for the next start");
                    return;
                }
                self.set_progress(root, Some(Progress::Queued));
                self.queued.push_back(*f);
                self.start_next();
            }
            Job::Serve {
                id,
                peer,
                manifest,
                chunk,
                to,
                spread,
            } => {
                self.add_source(&manifest.root, peer);
                self.serve(id, Some((peer, *to)), *manifest, chunk, spread);
            }
            Job::ServeHave { id, peer, manifest } => {
                self.add_source(&manifest.root, peer);
                self.serve_have(id, &manifest);
            }
            Job::Answered { tag, result, .. } if self.uploads.owns(tag) => {
                self.on_upload_answer(tag, result);
            }
            Job::Answered { tag, peer, result } => self.on_answer(tag, peer, result),
            Job::Deposit(d) => self.deposit(*d),
            Job::Keep {
                id,
                peer,
                root,
                what,
            } => self.keep(id, peer, root, what),
            Job::ServeHeld { id, root, chunk } => self.serve_held(id, &root, chunk),
            Job::DropHeld(roots) => self.drop_held(&roots),
        }
    }

    fn net_send(&self, cmd: NetCommand) {
        if self.net.send(cmd).is_err() {
            debug!("network busy; a media command was dropped (its deadline covers it)");
        }
    }

    fn start_next(&mut self) {
        while self.active.len() < MAX_DOWNLOADS {
            let Some(fetch) = self.queued.pop_front() else {
                return;
            };
            let root = fetch.manifest.root;
            if fetch.sources.is_empty() {
                warn!("a download has nowhere to come from");
                self.set_progress(root, Some(Progress::Failed));
                self.event(&fetch, "failed", 0);
                continue;
            }
            let index = std::fs::read(self.dir.index(&root))
                .ok()
                .and_then(|b| Index::from_bytes(&root, fetch.manifest.chunks(), b).ok());
            let now = Instant::now();
            let have: Vec<swarm::Have> = (fetch.sources.iter().enumerate())
                .map(|(s, (p, _))| {
                    if s == 0 || fetch.mailboxes.contains(p) {
                        swarm::Have::Seed
                    } else {
                        swarm::Have::Unknown
                    }
                })
                .collect();
            // In order when only the sender and mailboxes serve it; from a random chunk when
            // members fetch it at the same time (so that they hold different chunks early).
            let start = if have.iter().all(|h| *h == swarm::Have::Seed) {
                0
            } else {
                rand::random::<u32>() % fetch.manifest.chunks().max(1)
            };
            let mut d = Download {
                rest: vec![(now, 0, 0); fetch.sources.len()],
                have,
                have_asked: HashMap::new(),
                have_rr: 0,
                start,
                fetch,
                index,
                part: None,
                in_flight: HashMap::new(),
                opening: HashMap::new(),
                cursor: 0,
                again: VecDeque::new(),
                source: 0,
                failures: 0,
                bad: 0,
                wait_until: None,
                last_percent: 0,
            };
            match Partial::open(&self.dir, &d.fetch.manifest) {
                Ok(p) => {
                    if p.held() > 0 {
                        info!(
                            held = p.held(),
                            total = d.fetch.manifest.chunks(),
                            "resuming a download"
                        );
                    }
                    d.part = Some(p);
                }
                Err(e) => {
                    warn!(error = %e, "cannot open a download's file");
                    self.set_progress(root, Some(Progress::Failed));
                    self.event(&d.fetch, "failed", 0);
                    continue;
                }
            }
            self.active.insert(root, d);
            self.pump(root);
        }
    }

    fn on_tick(&mut self) {
        let now = Instant::now();
        let roots: Vec<Hash> = self.active.keys().copied().collect();
        for root in roots {
            if let Some(d) = self.active.get_mut(&root) {
                let late: Vec<u64> = d
                    .in_flight
                    .iter()
                    .filter(|(_, (_, at, _))| now.duration_since(*at) > REQUEST_DEADLINE)
                    .map(|(t, _)| *t)
                    .collect();
                for t in late {
                    if let Some((c, _, s)) = d.in_flight.remove(&t) {
                        if let Some(i) = c {
                            d.again.push_back(i);
                        }
                        // A source that lets requests lapse rests as after a failure (one
                        // that claims chunks and never sends them holds no slot for long).
                        if let Some(r) = d.rest.get_mut(s) {
                            let strikes = r.1.min(5);
                            *r = (
                                now + RETRY_AFTER * (1 << strikes),
                                r.1.saturating_add(1),
                                r.2,
                            );
                        }
                    }
                    self.asked.remove(&t);
                }
            }
            self.ask_have(root, now);
            self.pump(root);
        }
        self.tick_uploads();
    }

    /// Asks for what the download `root` lacks, up to its window.
    fn pump(&mut self, root: Hash) {
        let now = Instant::now();
        let mut asks = Vec::new();
        let mut chunks = Vec::new();
        {
            let Some(d) = self.active.get_mut(&root) else {
                return;
            };
            if d.wait_until.is_some_and(|t| now < t) || d.fetch.sources.is_empty() {
                return;
            }
            d.wait_until = None;
            // Every source resting: wait for the first to be back.
            if let Some(back) = d.rest.iter().map(|(t, _, _)| *t).min()
                && back > now
            {
                d.wait_until = Some(back);
                return;
            }
            let count = d.fetch.manifest.chunks();
            if d.index.is_none() {
                if d.in_flight.is_empty() {
                    asks.push(None);
                }
            } else if let Some(part) = d.part.as_ref() {
                // Chunks to ask again are found by the walk (they are neither here nor
                // asked), so the queue only has to be emptied.
                d.again.clear();
                let free = WINDOW.saturating_sub(d.in_flight.len() + d.opening.len());
                let mut load = vec![0usize; d.fetch.sources.len()];
                let mut busy = std::collections::HashSet::new();
                for (c, _, s) in d.in_flight.values() {
                    if let Some(l) = load.get_mut(*s) {
                        *l += 1;
                    }
                    if let Some(i) = c {
                        busy.insert(*i);
                    }
                }
                busy.extend(d.opening.values().map(|(i, _)| *i));
                let plan = swarm::Plan {
                    count,
                    start: d.start,
                    cursor: &mut d.cursor,
                    busy: &busy,
                    rest: &d.rest,
                    have: &d.have,
                    load: &mut load,
                    rr: &mut d.source,
                };
                let picks = swarm::pick(plan, |i| part.has(i), free, now);
                for (i, s) in picks {
                    chunks.push((i, s));
                }
            }
        }
        for chunk in asks {
            self.ask(root, chunk, now);
        }
        for (i, s) in chunks {
            self.ask_of(root, i, s, now);
        }
    }

    fn ask(&mut self, root: Hash, chunk: Option<u32>, now: Instant) {
        self.next_tag += 1;
        let tag = self.next_tag;
        let Some(d) = self.active.get_mut(&root) else {
            return;
        };
        // Requests go round the sources that are not resting, so the load spreads over the
        // sender, members who have chunks and mailboxes.
        let n = d.fetch.sources.len().max(1);
        let s = (0..n)
            .map(|k| (d.source + k) % n)
            .find(|s| d.rest.get(*s).is_none_or(|(t, _, _)| *t <= now))
            .unwrap_or(d.source % n);
        d.source = s + 1;
        let Some((peer, addrs)) = d.fetch.sources.get(s).cloned() else {
            return;
        };
        d.in_flight.insert(tag, (chunk, now, s));
        self.asked.insert(tag, root);
        let req = match chunk {
            None => MediaRequest::Index { root },
            Some(index) => MediaRequest::Chunk { root, index },
        };
        self.net_send(NetCommand::Media {
            tag,
            peer,
            addrs,
            req,
        });
    }

    /// Reports progress, finishes or fails the download `root`, and asks for more.
    pub(super) fn after_answer(&mut self, root: Hash) {
        let Some(d) = self.active.get_mut(&root) else {
            return;
        };
        let total = d.fetch.manifest.chunks();
        let held = d.part.as_ref().map_or(0, Partial::held);
        if d.bad >= MAX_BAD || d.failures >= MAX_FAILURES {
            warn!(bad = d.bad, failures = d.failures, "a download failed");
            if let Some(mut d) = self.active.remove(&root) {
                if let Some(p) = d.part.as_mut() {
                    let _ = p.sync(&self.dir, &root);
                }
                self.forget_tags(&d);
                self.set_progress(root, Some(Progress::Failed));
                self.event(&d.fetch, "failed", percent(held, total));
            }
            self.start_next();
            return;
        }
        if d.part.as_ref().is_some_and(Partial::complete) {
            if let Some(d) = self.active.remove(&root) {
                self.forget_tags(&d);
                let finished = d.part.map(|p| p.finish(&self.dir, &root));
                match finished {
                    Some(Ok(())) => {
                        info!(size = d.fetch.manifest.size, "a file arrived whole");
                        // Our mailboxes may let go of it (answers are not awaited: tag 0).
                        debug!(
                            mailboxes = d.fetch.mailboxes.len(),
                            sources = d.fetch.sources.len(),
                            "releasing a file at our mailboxes"
                        );
                        for (peer, addrs) in d
                            .fetch
                            .sources
                            .iter()
                            .filter(|(p, _)| d.fetch.mailboxes.contains(p))
                        {
                            self.net_send(NetCommand::Media {
                                tag: 0,
                                peer: *peer,
                                addrs: addrs.clone(),
                                req: MediaRequest::Release { root },
                            });
                        }
                        self.set_progress(root, None);
                        self.event(&d.fetch, "ready", 100);
                    }
                    _ => {
                        self.set_progress(root, Some(Progress::Failed));
                        self.event(&d.fetch, "failed", 100);
                    }
                }
            }
            self.start_next();
            return;
        }
        let p = percent(held, total);
        let report = p >= d.last_percent.saturating_add(5);
        if report {
            d.last_percent = p;
        }
        let (contact, msg) = (d.fetch.contact.clone(), d.fetch.msg.clone());
        self.set_progress(root, Some(Progress::Downloading { held, total }));
        if report {
            let _ = self.events.send(Event::Media {
                contact,
                id: msg,
                state: "downloading".into(),
                percent: p,
            });
        }
        self.pump(root);
    }

    fn forget_tags(&mut self, d: &Download) {
        for t in d.in_flight.keys() {
            self.asked.remove(t);
        }
    }
}
