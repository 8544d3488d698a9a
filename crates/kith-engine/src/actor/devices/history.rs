//! History at link time: the approving device hands the last N days of its 1:1
//! conversations (default [`DEFAULT_HISTORY_DAYS`], chosen at approval, 0 for none) to the
//! new device, end to end encrypted between the two devices (the pairwise Olm session,
//! through the durable outbox).
//!
//! Data flow:
//!
//! 1. On `Done`, the approver starts a [`HistoryJob`] for the new device: the contacts to
//!    walk, and a cursor (conversation, local sequence number).
//! 2. Every tick, while fewer than [`IN_FLIGHT`] items wait in the outbox to that device, it
//!    reads one page of the current conversation after the cursor ([`PAGE`] messages at
//!    most), keeps those inside the window, and queues them as one
//!    [`DeviceSync::History`] batch (at most [`MAX_HISTORY_BATCH`] messages and
//!    [`HISTORY_BATCH_BYTES`] of text). Memory holds one page whatever the history size,
//!    and the outbox at most a few batches: the transfer goes at the pace the new device
//!    takes it.
//! 3. The new device takes a batch only from a device of its own identity, stores each
//!    message under its id in the conversation (a message already there is skipped), with
//!    its ticks, in order, and reports progress (`history: N of M conversations`).
//!
//! The job lives in memory: a restart of the approver in the middle ends it (what was sent
//! stays).

use kith_proto::link::{
    DeviceSync, HISTORY_BATCH_BYTES, HistoryBatch, HistoryMessage, MAX_HISTORY_BATCH,
};
use kith_store::{Status, StoredMessage};

use super::*;

/// Days of history handed over when the approval does not say.
pub(crate) const DEFAULT_HISTORY_DAYS: u32 = 90;
/// Most days of history one may ask for.
const MAX_HISTORY_DAYS: u32 = 36_500;
/// Messages read from the store at a time.
const PAGE: usize = MAX_HISTORY_BATCH;
/// Outbox items to the new device beyond which the walk waits.
pub(crate) const IN_FLIGHT: usize = 4;

/// A history transfer to a newly linked device.
pub(crate) struct HistoryJob {
    dev: DeviceKey,
    since_ms: u64,
    convs: Vec<IdentityKey>,
    /// Index in `convs` and the last local seq sent of it.
    at: usize,
    after_seq: u64,
}

fn status_code(s: Status) -> u8 {
    match s {
        Status::Pending => 0,
        Status::Sent => 1,
        Status::Delivered => 2,
        Status::Read => 3,
    }
}

fn status_of(c: u8) -> Status {
    match c {
        0 => Status::Pending,
        1 => Status::Sent,
        2 => Status::Delivered,
        _ => Status::Read,
    }
}

impl State {
    /// Starts handing the last `days` days of history to the new device `dev`.
    pub(super) fn start_history(
        &mut self,
        w: &WriteTx<'_>,
        dev: DeviceKey,
        days: u32,
    ) -> Result<(), Fatal> {
        if days == 0 {
            return Ok(());
        }
        let days = u64::from(days.min(MAX_HISTORY_DAYS));
        let since_ms = now_ms().saturating_sub(days * 24 * 3600 * 1000);
        let convs: Vec<IdentityKey> = w.contacts()?.into_iter().map(|c| c.identity).collect();
        info!(
            conversations = convs.len(),
            "handing history to the new device"
        );
        self.links.history = Some(HistoryJob {
            dev,
            since_ms,
            convs,
            at: 0,
            after_seq: 0,
        });
        Ok(())
    }

    /// Whether a history transfer waits for room in its device's outbox.
    pub(crate) fn history_due(&self) -> Option<DeviceKey> {
        self.links.history.as_ref().map(|j| j.dev)
    }

    /// Queues the next batch of the history transfer (or ends it).
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
        let total = job.convs.len() as u32;
        // Skip pages that hold nothing inside the window, a bounded number per step.
        for _ in 0..16 {
            let Some(conv) = job.convs.get(job.at).copied() else {
                info!("history handed to the new device");
                return Ok(());
            };
            let page = w.messages_after(&conv, job.after_seq, PAGE)?;
            let Some((last, _)) = page.last() else {
                job.at += 1;
                job.after_seq = 0;
                continue;
            };
            let mut messages = Vec::new();
            let mut bytes = 0;
            let mut upto = *last;
            for (seq, m) in page {
                if m.sent_at_ms < job.since_ms {
                    continue;
                }
                if !messages.is_empty() && bytes + m.text.len() > HISTORY_BATCH_BYTES {
                    upto = seq - 1;
                    break;
                }
                bytes += m.text.len();
                messages.push(HistoryMessage {
                    id: m.id,
                    outgoing: m.outgoing,
                    sent_at_ms: m.sent_at_ms,
                    status: status_code(m.status),
                    text: m.text,
                });
            }
            job.after_seq = upto;
            if messages.is_empty() {
                continue;
            }
            let batch = HistoryBatch {
                conversation: conv,
                messages,
                done: job.at as u32,
                total,
            };
            let body = kith_proto::codec::encode(&Body::Devices(DeviceSync::History(batch)))?;
            let me = self.me;
            self.queue_body(w, job.dev, me, body, Vec::new(), now_ms(), after)?;
            break;
        }
        self.links.history = Some(job);
        Ok(())
    }

    /// A page of history from the device that approved this one: stored as it was there
    /// (ids, ticks, order), messages already here skipped.
    pub(super) fn on_history(
        &mut self,
        w: &mut WriteTx<'_>,
        h: HistoryBatch,
        after: &mut Vec<After>,
    ) -> Result<(), Fatal> {
        let Some(contact) = w.contact(&h.conversation)? else {
            return Ok(());
        };
        let mut stored = 0usize;
        for m in h.messages {
            let msg = StoredMessage {
                id: m.id,
                outgoing: m.outgoing,
                text: m.text,
                sent_at_ms: m.sent_at_ms,
                stored_at_ms: now_ms(),
                status: status_of(m.status),
            };
            if w.append_message(&h.conversation, &msg)?.is_some() {
                stored += 1;
                self.chat_stored(
                    w,
                    ChatRef::Contact(h.conversation),
                    msg.id,
                    msg.stored_at_ms,
                    None,
                )?;
            }
        }
        debug!(
            stored,
            done = h.done,
            total = h.total,
            "history from the approving device"
        );
        if self.links.history_in != Some((h.done, h.total)) {
            self.links.history_in = Some((h.done, h.total));
            after.push(After::Event(Event::Notice {
                contact: contact.name,
                detail: format!(
                    "history from your other device: {} of {} conversations",
                    h.done + 1,
                    h.total
                ),
            }));
        }
        Ok(())
    }
}
