//! History at link time: the approving device hands the last N days of its conversations,
//! 1:1 and group (default [`DEFAULT_HISTORY_DAYS`], chosen at approval, 0 for none) to the
//! new device, end to end encrypted between the two devices (the pairwise Olm session,
//! through the durable outbox).
//!
//! Data flow:
//!
//! 1. On `Done`, the approver starts a [`HistoryJob`] for the new device: the chats to walk
//!    (contacts, then groups), how many messages they hold (for the progress bar), and a
//!    cursor (chat, then the local seq of a 1:1 conversation or the place of a group
//!    message). The job is kept in the meta table (`history_out`), written in the same
//!    transaction as each page it queues: a restart (kill -9 included) goes on from the
//!    last page queued; the receiver drops messages it holds by id.
//! 2. Every tick, while fewer than [`IN_FLIGHT`] items wait in the outbox to that device, it
//!    reads one page of the current chat after the cursor ([`PAGE`] messages at most),
//!    keeps those inside the window, and queues them as one [`DeviceSync::HistoryPage`]
//!    (at most [`MAX_HISTORY_BATCH`] messages and [`HISTORY_PAGE_BYTES`]), each message
//!    with its reply, reactions, edited/deleted state, star, pin, and its file's manifest.
//!    The new device may fetch a file from this device (granted to the person) or from
//!    the file's sender. Memory holds one page whatever the history size.
//! 3. When the walk is over, a last page with `end` set says so (also when there was
//!    nothing to hand over), so the new device's `kith link` can finish its progress bar.
//!
//! The receiving side is `history_in`.

use kith_proto::link::{
    DeviceSync, HISTORY_PAGE_BYTES, HistoryChat, HistoryItem, HistoryMeta, HistoryPage,
    MAX_HISTORY_BATCH, MAX_HISTORY_ITEM, MAX_HISTORY_MANIFEST, MAX_HISTORY_REACTIONS,
};
use kith_store::{ChatRef, Status};

use super::*;

/// Days of history handed over when the approval does not say.
pub(crate) const DEFAULT_HISTORY_DAYS: u32 = 90;
/// Most days of history one may ask for.
const MAX_HISTORY_DAYS: u32 = 36_500;
/// Messages read from the store at a time.
const PAGE: usize = MAX_HISTORY_BATCH;
/// Outbox items to the new device beyond which the walk waits.
pub(crate) const IN_FLIGHT: usize = 4;
/// Meta key: the history walk under way ([`HistoryJob`]).
const HISTORY_OUT: &str = "history_out";
/// Largest stored walk (contacts and groups, a few dozen bytes each).
const MAX_JOB_BYTES: usize = 1 << 20;

/// A history transfer to a newly linked device (kept in the meta table).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct HistoryJob {
    dev: DeviceKey,
    since_ms: u64,
    chats: Vec<HistoryChat>,
    /// Index in `chats`.
    at: usize,
    /// 1:1: the last local seq handed over.
    after_seq: u64,
    /// Group: the place of the last message handed over.
    after_place: Option<(u64, [u8; 32], u64)>,
    /// Messages walked so far, and in all.
    walked: u64,
    messages: u64,
}

pub(super) fn status_code(s: Status) -> u8 {
    match s {
        Status::Pending => 0,
        Status::Sent => 1,
        Status::Delivered => 2,
        Status::Read => 3,
    }
}

/// What users see of a message's actions, for the new device (none when nothing).
fn meta_of(m: Option<kith_store::MessageMeta>) -> Option<HistoryMeta> {
    let m = m?;
    let mut reactions = m.reactions;
    reactions.truncate(MAX_HISTORY_REACTIONS);
    reactions.retain(|r| r.1.len() <= kith_proto::chat::MAX_REACTION);
    let h = HistoryMeta {
        reply_to: m.reply_to,
        forwarded: m.forwarded,
        edited_at_ms: m.edited_at_ms,
        deleted: m.deleted,
        starred: m.starred,
        pinned: m.pinned,
        reactions,
    };
    (h != HistoryMeta::default()).then_some(h)
}

impl State {
    /// Starts handing the last `days` days of history to the new device `dev`.
    pub(super) fn start_history(
        &mut self,
        w: &mut WriteTx<'_>,
        dev: DeviceKey,
        days: u32,
    ) -> Result<(), Fatal> {
        let days = u64::from(days.min(MAX_HISTORY_DAYS));
        let since_ms = now_ms().saturating_sub(days * 24 * 3600 * 1000);
        let mut chats = Vec::new();
        let mut messages = 0u64;
        if days > 0 {
            for c in w.contacts()? {
                messages += w.message_count(&c.identity)?;
                chats.push(HistoryChat::Contact(c.identity));
            }
            for (g, row) in w.groups()? {
                if row.deleted {
                    continue;
                }
                messages += w.group_message_count(&g)?;
                chats.push(HistoryChat::Group(g));
            }
        }
        info!(
            chats = chats.len(),
            messages, "handing history to the new device"
        );
        let job = HistoryJob {
            dev,
            since_ms,
            chats,
            at: 0,
            after_seq: 0,
            after_place: None,
            walked: 0,
            messages,
        };
        w.set_meta(HISTORY_OUT, &kith_proto::codec::encode(&job)?)?;
        self.links.history = Some(job);
        Ok(())
    }

    /// The walk a restart cut short, if any (at start).
    pub(crate) fn load_history_job(&mut self, w: &WriteTx<'_>) -> Result<(), Fatal> {
        self.links.history = w
            .meta(HISTORY_OUT)?
            .and_then(|b| kith_proto::codec::decode::<HistoryJob>(&b, MAX_JOB_BYTES).ok());
        if let Some(j) = &self.links.history {
            info!(
                walked = j.walked,
                messages = j.messages,
                "resuming the history walk"
            );
        }
        Ok(())
    }

    /// Whether a history transfer waits for room in its device's outbox.
    pub(crate) fn history_due(&self) -> Option<DeviceKey> {
        self.links.history.as_ref().map(|j| j.dev)
    }

    /// The walk under way (chats done, chats, messages walked, messages).
    pub(crate) fn history_out(&self) -> Option<(u32, u32, u64, u64)> {
        self.links.history.as_ref().map(|j| {
            (
                j.at.min(j.chats.len()) as u32,
                j.chats.len() as u32,
                j.walked,
                j.messages,
            )
        })
    }

    /// Queues the next page of the history transfer (or its end).
    pub(crate) fn history_step(
        &mut self,
        w: &mut WriteTx<'_>,
        after: &mut Vec<After>,
    ) -> Result<(), Fatal> {
        let Some(mut job) = self.links.history.take() else {
            return Ok(());
        };
        if w.outbox_len(&job.dev)? >= IN_FLIGHT {
            self.links.history = Some(job);
            return Ok(());
        }
        // Skip pages that hold nothing inside the window, a bounded number per step.
        for _ in 0..16 {
            let Some(chat) = job.chats.get(job.at).copied() else {
                // Over: the last page says so, and the walk is forgotten.
                let page = HistoryPage {
                    chat: HistoryChat::Contact(self.me),
                    items: Vec::new(),
                    done: job.chats.len() as u32,
                    total: job.chats.len() as u32,
                    walked: job.messages,
                    messages: job.messages,
                    end: true,
                };
                self.queue_page(w, job.dev, page, after)?;
                w.remove_meta(HISTORY_OUT)?;
                info!("history handed to the new device");
                return Ok(());
            };
            let (items, read) = match chat {
                HistoryChat::Contact(conv) => self.contact_page(w, &mut job, conv)?,
                HistoryChat::Group(g) => self.group_page(w, &mut job, g)?,
            };
            let walked = job.walked;
            job.walked = (job.walked + read).min(job.messages);
            if read == 0 {
                job.at += 1;
                job.after_seq = 0;
                job.after_place = None;
                continue;
            }
            if items.is_empty() {
                continue;
            }
            let page = HistoryPage {
                chat,
                items,
                done: job.at as u32,
                total: job.chats.len() as u32,
                walked: walked.min(job.messages),
                messages: job.messages,
                end: false,
            };
            self.queue_page(w, job.dev, page, after)?;
            break;
        }
        w.set_meta(HISTORY_OUT, &kith_proto::codec::encode(&job)?)?;
        self.links.history = Some(job);
        Ok(())
    }

    fn queue_page(
        &mut self,
        w: &mut WriteTx<'_>,
        dev: DeviceKey,
        page: HistoryPage,
        after: &mut Vec<After>,
    ) -> Result<(), Fatal> {
        let body = kith_proto::codec::encode(&Body::Devices(DeviceSync::HistoryPage(page)))?;
        let me = self.me;
        self.queue_body(w, dev, me, body, Vec::new(), now_ms(), after)
    }

    /// One message as handed over: its actions, and its file's manifest (which this
    /// device then serves to the person's devices). None for a message the person deleted
    /// for themselves or that disappeared.
    fn history_item(
        &self,
        w: &mut WriteTx<'_>,
        chat: ChatRef,
        mut item: HistoryItem,
    ) -> Result<Option<HistoryItem>, Fatal> {
        let meta = w.message_meta(&chat, item.id)?;
        if meta.as_ref().is_some_and(|m| m.hidden || m.expired) {
            return Ok(None);
        }
        item.meta = meta_of(meta);
        if let Some(row) = w.media(item.id)?
            && row.manifest.len() <= MAX_HISTORY_MANIFEST
        {
            w.grant_media(&row.root, &self.me, item.id)?;
            item.manifest = Some(row.manifest);
        }
        if item.weight() > MAX_HISTORY_ITEM {
            item.manifest = None;
        }
        if item.weight() > MAX_HISTORY_ITEM {
            item.meta = None;
        }
        Ok(Some(item))
    }

    /// The next page of a 1:1 conversation: (items, messages read).
    fn contact_page(
        &self,
        w: &mut WriteTx<'_>,
        job: &mut HistoryJob,
        conv: IdentityKey,
    ) -> Result<(Vec<HistoryItem>, u64), Fatal> {
        let page = w.messages_after(&conv, job.after_seq, PAGE)?;
        let mut items = Vec::new();
        let mut bytes = 0;
        let mut read = 0;
        for (seq, m) in page {
            if m.sent_at_ms >= job.since_ms {
                let Some(item) = self.history_item(
                    w,
                    ChatRef::Contact(conv),
                    HistoryItem {
                        id: m.id,
                        outgoing: m.outgoing,
                        sender: if m.outgoing { self.me } else { conv },
                        sent_at_ms: m.sent_at_ms,
                        status: status_code(m.status),
                        text: m.text,
                        place: None,
                        meta: None,
                        manifest: None,
                    },
                )?
                else {
                    job.after_seq = seq;
                    read += 1;
                    continue;
                };
                if !items.is_empty() && bytes + item.weight() > HISTORY_PAGE_BYTES {
                    break;
                }
                bytes += item.weight();
                items.push(item);
            }
            job.after_seq = seq;
            read += 1;
        }
        Ok((items, read))
    }

    /// The next page of a group: (items, messages read).
    fn group_page(
        &self,
        w: &mut WriteTx<'_>,
        job: &mut HistoryJob,
        g: GroupId,
    ) -> Result<(Vec<HistoryItem>, u64), Fatal> {
        let from = job.after_place.map(|(l, d, s)| (l, CurveKey(d), s));
        let page = w.group_messages_after(&g, from, PAGE)?;
        let mut items = Vec::new();
        let mut bytes = 0;
        let mut read = 0;
        for (k, m) in page {
            let place = (k.lamport, k.sender_dev.0, k.seq);
            if m.sent_at_ms >= job.since_ms {
                let Some(item) = self.history_item(
                    w,
                    ChatRef::Group(g),
                    HistoryItem {
                        id: m.id,
                        outgoing: m.outgoing,
                        sender: m.sender,
                        sent_at_ms: m.sent_at_ms,
                        status: u8::from(m.flag),
                        text: m.text,
                        place: Some(place),
                        meta: None,
                        manifest: None,
                    },
                )?
                else {
                    job.after_place = Some(place);
                    read += 1;
                    continue;
                };
                if !items.is_empty() && bytes + item.weight() > HISTORY_PAGE_BYTES {
                    break;
                }
                bytes += item.weight();
                items.push(item);
            }
            job.after_place = Some(place);
            read += 1;
        }
        Ok((items, read))
    }
}
