//! Media at mailboxes, the engine's side (the bytes are the media task's: `media/held.rs`,
//! `media/upload.rs`):
//!
//! - **As a mailbox**: `Hold` is taken only for a device registered here under the key it
//!   names, within that device's media quota and the depositing peer's share of it (the
//!   mailbox core decides, `cores::mailbox::media`: a file is charged by what is stored
//!   plus a bounded reservation while it fills, and what is kept already is never pushed
//!   out), and recorded with its expiry and fill in the same transaction (`held_media`,
//!   `held_fill`). `Put` is taken only for a file held for that device; a chunk that
//!   matches the index is counted once, and puts off the expiry of a file still filling
//!   (one that stops filling goes after `HOLD_IDLE`). A `Hold` of a file kept here whole
//!   already (for other devices) is a grant: the one stored copy is kept for that device
//!   too, charged whole to its quota, and no chunk is sent again. The
//!   device itself (by the connection's peer id, registered here) fetches with the ordinary
//!   `Index`/`Chunk` requests and ends with `Release`; what no device keeps any more is
//!   deleted, and files past the media retention expire.
//! - **As a sender**: when a device's mailbox kept a message of ours that carries a file
//!   (the device could not be reached), the file's sealed chunks are deposited at that
//!   same mailbox.
//! - **As a recipient**: our own mailboxes are sources of every download, after the sender.

use kith_proto::media::{self as pmedia, Hash, MediaRefusal, MediaResponse};
use kith_store::{HeldFill, HeldRow, StoreError};

use super::*;
use crate::cores::mailbox::media::Held;
use crate::media::Job;
use crate::media::held::Keep;

/// A file held for a device, as the store has it: (root, row, fill; `None` when filled
/// before fill rows existed).
type HeldFile = ([u8; 32], HeldRow, Option<HeldFill>);

/// Every file held for `dev`, with how far each is filled.
fn held_files(w: &WriteTx<'_>, dev: &DeviceKey) -> Result<Vec<HeldFile>, StoreError> {
    let mut fills: std::collections::HashMap<_, _> = w.held_fills_of(dev)?.into_iter().collect();
    let rows = w.held_of(dev)?;
    Ok(rows
        .into_iter()
        .map(|(root, row)| {
            let fill = fills.remove(&root);
            (root, row, fill)
        })
        .collect())
}

/// The files as the mailbox core sees them.
fn views(kept: &[HeldFile]) -> Vec<Held<'_>> {
    kept.iter()
        .map(|(_, row, fill)| match fill {
            Some(f) => Held {
                sealed: row.sealed,
                stored: f.stored,
                filled: f.filled >= row.chunks,
                by: Some(f.by.as_slice()),
            },
            None => Held {
                sealed: row.sealed,
                stored: row.sealed,
                filled: true,
                by: None,
            },
        })
        .collect()
}

/// Counts chunk `n` (`len` sealed bytes, checked) of the file `root` held for `dev` as
/// stored, if it is new and the mailbox core allows it, and puts off the file's expiry.
fn count_chunk(
    st: &mut State,
    w: &mut WriteTx<'_>,
    dev: &DeviceKey,
    root: &Hash,
    n: u32,
    len: u64,
) -> Result<Result<(), MediaRefusal>, StoreError> {
    let kept = held_files(w, dev)?;
    let Some(at) = kept.iter().position(|(r, _, _)| r == root) else {
        return Ok(Err(MediaRefusal::NotFound));
    };
    let (_, mut row, fill) = kept[at].clone();
    let Some(mut fill) = fill.filter(|f| !f.has(n)) else {
        return Ok(Ok(()));
    };
    if let mailbox_core::Verdict::Refuse(r) | mailbox_core::Verdict::Penalize(r, _) =
        st.mailbox.put(&views(&kept), at, len)
    {
        return Ok(Err(r));
    }
    fill.add(n, len, row.chunks);
    let filled = fill.filled >= row.chunks;
    row.expires_ms = st.mailbox.hold_expiry(fill.until_ms, filled, now_ms());
    w.hold(dev, root, &row)?;
    w.set_held_fill(dev, root, &fill)?;
    Ok(Ok(()))
}

/// Keeps the file `root` (`whole`: its row, held whole here for other devices) for the
/// device `to` as well (with what is held for it), charged whole, if the mailbox core
/// allows it.
fn grant(
    st: &mut State,
    w: &mut WriteTx<'_>,
    to: Option<(DeviceKey, &[Held<'_>])>,
    by: &[u8],
    (root, whole): (&Hash, HeldRow),
) -> Result<Result<(), MediaRefusal>, StoreError> {
    match st.mailbox.grant(to, by, whole.sealed) {
        mailbox_core::Verdict::Accept(dev) => {
            let until = st.mailbox.held_until(now_ms());
            let row = HeldRow {
                expires_ms: until,
                ..whole
            };
            let fill = HeldFill {
                stored: row.sealed,
                filled: row.chunks,
                have: Vec::new(),
                ..HeldFill::new(by, row.chunks, until)
            };
            w.hold(&dev, root, &row)?;
            w.set_held_fill(&dev, root, &fill)?;
            Ok(Ok(()))
        }
        mailbox_core::Verdict::Refuse(r) | mailbox_core::Verdict::Penalize(r, _) => Ok(Err(r)),
    }
}

impl Engine {
    /// As a mailbox: `Grant` (keep a file held here whole for other devices for one more
    /// registered device, within its quota; `NotFound` when it is not held whole here).
    pub(super) fn on_media_grant(&mut self, (id, peer): (u64, PeerId), to: [u8; 32], root: Hash) {
        let by = peer.to_bytes();
        let st = &mut self.st;
        let res = self.store.write(|w| {
            let dev = match st.mailbox.is_serving() {
                true => w.mailbox_user(&kith_types::CurveKey(to))?,
                false => None,
            };
            let Some(dev) = dev else {
                return Ok(Err(MediaRefusal::Unauthorized));
            };
            // Held for it already: granted if whole, to be filled with `Put`s if not.
            if let Some(row) = w.held(&dev, &root)? {
                return Ok(match w.held_fill(&dev, &root)? {
                    Some(f) if f.filled < row.chunks => Err(MediaRefusal::NotFound),
                    _ => Ok(()),
                });
            }
            let Some(whole) = w.held_whole(&root)? else {
                return Ok(Err(MediaRefusal::NotFound));
            };
            let kept = held_files(w, &dev)?;
            let seen = views(&kept);
            grant(st, w, Some((dev, &seen)), &by, (&root, whole))
        });
        let resp = match res {
            Ok(Ok(())) => MediaResponse::Stored,
            Ok(Err(r)) => {
                debug!(%peer, ?r, "a mailbox does not grant a file");
                MediaResponse::Refused(r)
            }
            Err(e) => {
                warn!(error = %e, "cannot record a granted file");
                MediaResponse::Refused(MediaRefusal::Busy)
            }
        };
        self.answer_media(id, resp);
    }

    /// As a mailbox: `Hold` (keep a file for a registered device, within its quota).
    pub(super) fn on_media_hold(
        &mut self,
        (id, peer): (u64, PeerId),
        to: [u8; 32],
        root: Hash,
        sealed: u64,
        index: Vec<u8>,
    ) {
        if pmedia::hash(&index) != root {
            self.answer_media(id, MediaResponse::Refused(MediaRefusal::Invalid));
            return;
        }
        let chunks = u32::try_from(index.len() / 32).unwrap_or(u32::MAX);
        let by = peer.to_bytes();
        let st = &mut self.st;
        let res = self.store.write(|w| {
            let dev = match st.mailbox.is_serving() {
                true => w.mailbox_user(&kith_types::CurveKey(to))?,
                false => None,
            };
            if let Some(dev) = dev
                && w.held(&dev, &root)?.is_some()
            {
                return Ok(Ok(()));
            }
            let kept = match dev {
                Some(dev) => Some((dev, held_files(w, &dev)?)),
                None => None,
            };
            let seen = kept.as_ref().map(|(dev, k)| (*dev, views(k)));
            let to = seen.as_ref().map(|(dev, v)| (*dev, v.as_slice()));
            // Kept here whole for other devices already: granted, not sent again.
            if let Some(whole) = w.held_whole(&root)?.filter(|r| r.chunks == chunks) {
                return grant(st, w, to, &by, (&root, whole));
            }
            match st.mailbox.hold(to, &by, sealed, chunks) {
                mailbox_core::Verdict::Accept(dev) => {
                    let now = now_ms();
                    let until = st.mailbox.held_until(now);
                    let row = HeldRow {
                        sealed,
                        chunks,
                        expires_ms: st.mailbox.hold_expiry(until, false, now),
                    };
                    w.hold(&dev, &root, &row)?;
                    w.set_held_fill(&dev, &root, &HeldFill::new(&by, chunks, until))?;
                    Ok(Ok(()))
                }
                mailbox_core::Verdict::Refuse(r) | mailbox_core::Verdict::Penalize(r, _) => {
                    Ok(Err(r))
                }
            }
        });
        match res {
            Ok(Ok(())) => {
                let job = Job::Keep {
                    id,
                    peer,
                    root,
                    what: Keep::Index(index),
                };
                if !self.st.media.offer(job) {
                    self.answer_media(id, MediaResponse::Refused(MediaRefusal::Busy));
                }
            }
            Ok(Err(r)) => {
                debug!(%peer, ?r, "a mailbox does not hold a file");
                self.answer_media(id, MediaResponse::Refused(r));
            }
            Err(e) => {
                warn!(error = %e, "cannot record a held file");
                self.answer_media(id, MediaResponse::Refused(MediaRefusal::Busy));
            }
        }
    }

    /// As a mailbox: `Put` (a chunk of a file held for a registered device). The chunk is
    /// checked against the file's index, then counted (once) as stored, within the
    /// device's quota and its depositor's share, which keeps an unfilled file from expiring
    /// for a while more; the media task writes it.
    pub(super) fn on_media_put(
        &mut self,
        id: u64,
        peer: PeerId,
        (to, root, n): ([u8; 32], Hash, u32),
        bytes: Vec<u8>,
    ) {
        let serving = self.st.mailbox.is_serving();
        let found = self.store.read(|r| {
            let Some(dev) = (match serving {
                true => r.mailbox_user(&kith_types::CurveKey(to))?,
                false => None,
            }) else {
                return Ok(None);
            };
            Ok(r.held(&dev, &root)?.map(|row| (dev, row)))
        });
        let dev = match found {
            Ok(Some((dev, row))) if n < row.chunks => dev,
            Ok(Some(_)) => {
                return self.answer_media(id, MediaResponse::Refused(MediaRefusal::Invalid));
            }
            Ok(None) => {
                return self.answer_media(id, MediaResponse::Refused(MediaRefusal::Unauthorized));
            }
            Err(e) => {
                warn!(error = %e, "cannot read the store");
                return self.answer_media(id, MediaResponse::Refused(MediaRefusal::Busy));
            }
        };
        let refusal = match self.st.media.dir.held_entry(&root, n) {
            Ok(want) if pmedia::hash(&bytes) == want => None,
            Ok(_) => {
                debug!(%peer, "a chunk for the mailbox fails its check");
                self.st.net_send(NetCommand::Penalize {
                    peer,
                    reason: mailbox_core::BAD_HELD_CHUNK,
                });
                Some(MediaRefusal::Invalid)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(MediaRefusal::NotFound),
            Err(e) => {
                warn!(error = %e, "cannot read a held file's index");
                Some(MediaRefusal::Busy)
            }
        };
        if let Some(r) = refusal {
            return self.answer_media(id, MediaResponse::Refused(r));
        }
        let len = bytes.len() as u64;
        let st = &mut self.st;
        let counted = self
            .store
            .write(|w| count_chunk(st, w, &dev, &root, n, len));
        let resp = match counted {
            Ok(Ok(())) => {
                let job = Job::Keep {
                    id,
                    peer,
                    root,
                    what: Keep::Chunk(n, bytes),
                };
                if self.st.media.offer(job) {
                    return;
                }
                MediaRefusal::Busy
            }
            Ok(Err(r)) => r,
            Err(e) => {
                warn!(error = %e, "cannot record a held chunk");
                MediaRefusal::Busy
            }
        };
        self.answer_media(id, MediaResponse::Refused(resp));
    }

    /// As a mailbox: a registered device has the file; it is no longer kept for it.
    pub(super) fn on_media_release(&mut self, id: u64, peer: PeerId, root: Hash) {
        let st = &mut self.st;
        let res = self.store.write_as(|w| {
            let Some(dev) = st.registered_device(w, peer)? else {
                return Ok::<_, Fatal>(None);
            };
            if w.held(&dev, &root)?.is_none() {
                return Ok(None);
            }
            Ok(Some(w.unhold(&dev, &root)?))
        });
        debug!(%peer, released = ?res.as_ref().ok(), "a device released a held file");
        let resp = match res {
            Ok(Some(still)) => {
                if !still {
                    let _ = self.st.media.offer(Job::DropHeld(vec![root]));
                }
                MediaResponse::Stored
            }
            Ok(None) => MediaResponse::Refused(MediaRefusal::NotFound),
            Err(e) => {
                warn!(error = %e, "cannot release a held file");
                MediaResponse::Refused(MediaRefusal::Busy)
            }
        };
        self.answer_media(id, resp);
    }

    /// As a mailbox: whether `peer` is a device registered here for which the file with
    /// this root is kept (then the kept copy serves it).
    pub(super) fn held_for(&self, peer: PeerId, root: &Hash) -> bool {
        if !self.st.mailbox.is_serving() {
            return false;
        }
        let res = self.store.read(|r| {
            let dev = device_key(&peer.to_bytes());
            let registered = match r.device(&dev)?.and_then(|d| d.cert) {
                Some(cert) => r.mailbox_user(&cert.curve25519)? == Some(dev),
                None => false,
            };
            Ok(registered && r.held(&dev, root)?.is_some())
        });
        res.unwrap_or(false)
    }

    /// As a mailbox: drops the media files past their retention.
    pub(super) fn expire_held(&mut self) {
        if !self.st.mailbox.is_serving() {
            return;
        }
        match self.store.write(|w| w.expire_held(now_ms())) {
            Ok(roots) if roots.is_empty() => {}
            Ok(roots) => {
                info!(
                    files = roots.len(),
                    "mailbox dropped media past its retention"
                );
                let _ = self.st.media.offer(Job::DropHeld(roots));
            }
            Err(e) => warn!(error = %e, "cannot expire held media"),
        }
    }

    pub(super) fn answer_media(&mut self, id: u64, resp: MediaResponse) {
        self.st.net_send(NetCommand::AnswerMedia { id, resp });
    }
}

impl State {
    /// Our mailboxes, as sources of a download (after the others).
    pub(super) fn mailbox_sources(&self) -> Vec<(PeerId, Vec<Multiaddr>)> {
        self.my_mailboxes
            .iter()
            .filter_map(|m| {
                let peer = PeerId::from_bytes(&m.peer_id).ok()?;
                Some((peer, decode_addrs(&m.addrs)))
            })
            .collect()
    }
}
