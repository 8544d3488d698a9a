//! Media at mailboxes, the engine's side (the bytes are the media task's: `media/held.rs`,
//! `media/upload.rs`):
//!
//! - **As a mailbox**: `Hold` is taken only for a device registered here under the key it
//!   names and within that device's media quota (the mailbox core decides; the whole
//!   file's sealed size is charged up front, so a file is kept whole or refused whole and
//!   what is kept already is never pushed out), and recorded with its expiry in the same
//!   transaction (`held_media`). `Put` is taken only for a file held for that device. The
//!   device itself (by the connection's peer id, registered here) fetches with the ordinary
//!   `Index`/`Chunk` requests and ends with `Release`; what no device keeps any more is
//!   deleted, and files past the media retention expire.
//! - **As a sender**: when a device's mailbox kept a message of ours that carries a file
//!   (the device could not be reached), the file's sealed chunks are deposited at that
//!   same mailbox.
//! - **As a recipient**: our own mailboxes are sources of every download, after the sender.

use kith_proto::media::{self as pmedia, Hash, MediaRefusal, MediaResponse};
use kith_store::HeldRow;

use super::*;
use crate::media::held::Keep;
use crate::media::{Job, upload::Deposit};

impl Engine {
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
        let chunks = (index.len() / 32) as u32;
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
            let to = match dev {
                Some(dev) => {
                    let rows = w.held_of(&dev)?;
                    let bytes = rows.iter().map(|(_, r)| r.sealed).sum();
                    Some((dev, bytes, rows.len()))
                }
                None => None,
            };
            match st.mailbox.hold(to, sealed) {
                mailbox_core::Verdict::Accept(dev) => {
                    let row = HeldRow {
                        sealed,
                        chunks,
                        expires_ms: st.mailbox.held_until(now_ms()),
                    };
                    w.hold(&dev, &root, &row)?;
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
            Ok(Err(r)) => self.answer_media(id, MediaResponse::Refused(r)),
            Err(e) => {
                warn!(error = %e, "cannot record a held file");
                self.answer_media(id, MediaResponse::Refused(MediaRefusal::Busy));
            }
        }
    }

    /// As a mailbox: `Put` (a chunk of a file held for a registered device).
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
            r.held(&dev, &root)
        });
        let resp = match found {
            Ok(Some(row)) if n < row.chunks => {
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
            Ok(Some(_)) => MediaRefusal::Invalid,
            Ok(None) => MediaRefusal::Unauthorized,
            Err(e) => {
                warn!(error = %e, "cannot read the store");
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
    /// The mailbox `mailbox` of device `dev` kept messages `ids` for it: the files among
    /// them (sent by this user) are deposited there too, so they arrive even if this node
    /// is gone when the device comes back.
    pub(super) fn deposit_files(
        &self,
        w: &WriteTx<'_>,
        dev: &DeviceKey,
        mailbox: PeerId,
        ids: &[u128],
        after: &mut Vec<After>,
    ) -> Result<(), Fatal> {
        if ids.is_empty() {
            return Ok(());
        }
        let Some(d) = w.device(dev)? else {
            return Ok(());
        };
        let Some(cert) = &d.cert else {
            return Ok(());
        };
        let mbytes = mailbox.to_bytes();
        let addrs = d
            .mailboxes
            .iter()
            .find(|m| m.peer_id == mbytes)
            .map(|m| decode_addrs(&m.addrs))
            .unwrap_or_default();
        let contact = w
            .contact(&d.identity)?
            .map(|c| c.name)
            .unwrap_or_else(|| d.identity.short());
        for id in ids {
            let Some(row) = w.media(*id)? else {
                continue;
            };
            if !row.outgoing {
                continue;
            }
            let Ok(manifest) = pmedia::decode_manifest(&row.manifest) else {
                continue;
            };
            after.push(After::Media(Job::Deposit(Box::new(Deposit {
                msg: MessageId(*id).to_string(),
                contact: contact.clone(),
                manifest,
                to: cert.curve25519.0,
                mailbox: (mailbox, addrs.clone()),
            }))));
        }
        Ok(())
    }

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
