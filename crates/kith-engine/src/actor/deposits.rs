//! Deposits of sent files at recipients' mailboxes, the engine's side (the transfer is the
//! media task's, `media/upload.rs`):
//!
//! - When a device's mailbox kept a message of ours that carries a file (the device could
//!   not be reached), a row (`media_deposits`: message, device → mailbox) is written in the
//!   same transaction, and the media task is handed the deposit after the commit.
//! - At every start the rows are taken up again, so a deposit cut short by kill -9 or a
//!   restart goes on by itself (the media task skips the chunks the mailbox acknowledged).
//! - The media task reports deposits that are over (held whole, or refused for good); their
//!   rows go at the next tick.

use kith_proto::media as pmedia;

use super::*;
use crate::media::{Job, upload::Deposit};

impl State {
    /// The mailbox `mailbox` of device `dev` kept messages `ids` for it: the files among
    /// them (sent by this user) are deposited there too, so they arrive even if this node
    /// is gone when the device comes back.
    pub(super) fn deposit_files(
        &self,
        w: &mut WriteTx<'_>,
        dev: &DeviceKey,
        mailbox: PeerId,
        ids: &[u128],
        after: &mut Vec<After>,
    ) -> Result<(), Fatal> {
        for id in ids {
            let Some(dep) = deposit_of(w, *id, dev, mailbox)? else {
                continue;
            };
            if !w.add_deposit(*id, dev, &mailbox.to_bytes())? {
                warn!("too many deposits recorded; one runs without surviving a restart");
            }
            after.push(After::Media(Job::Deposit(Box::new(dep))));
        }
        Ok(())
    }
}

/// The deposit of message `id`'s file for `dev` at `mailbox`, if it carries a file this
/// user sent and the device's key is known.
fn deposit_of(
    w: &WriteTx<'_>,
    id: u128,
    dev: &DeviceKey,
    mailbox: PeerId,
) -> Result<Option<Deposit>, Fatal> {
    let Some(row) = w.media(id)? else {
        return Ok(None);
    };
    if !row.outgoing {
        return Ok(None);
    }
    let Ok(manifest) = pmedia::decode_manifest(&row.manifest) else {
        return Ok(None);
    };
    let Some(d) = w.device(dev)? else {
        return Ok(None);
    };
    let Some(cert) = &d.cert else {
        return Ok(None);
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
    Ok(Some(Deposit {
        msg: MessageId(id).to_string(),
        key: (id, *dev),
        contact,
        manifest,
        to: cert.curve25519.0,
        mailbox: (mailbox, addrs),
    }))
}

impl Engine {
    /// At the start: the deposits a stop or a crash cut short go on (rows whose file or
    /// device is gone are dropped).
    pub(super) fn resume_deposits(&mut self) {
        let res = self.store.write_as(|w| {
            let mut jobs = Vec::new();
            for (id, dev, mailbox) in w.deposits()? {
                let dep = match PeerId::from_bytes(&mailbox) {
                    Ok(peer) => deposit_of(w, id, &dev, peer)?,
                    Err(_) => None,
                };
                match dep {
                    Some(d) => jobs.push(d),
                    None => w.remove_deposit(id, &dev)?,
                }
            }
            Ok::<_, Fatal>(jobs)
        });
        match res {
            Ok(jobs) => {
                if !jobs.is_empty() {
                    info!(deposits = jobs.len(), "taking up deposits at mailboxes");
                }
                for d in jobs {
                    if !self.st.media.offer(Job::Deposit(Box::new(d))) {
                        warn!("the media task is busy; a deposit waits for the next start");
                    }
                }
            }
            Err(e) => warn!(error = %e, "cannot read the deposits to take up"),
        }
    }

    /// Every tick: the rows of deposits the media task has ended go.
    pub(super) fn deposits_tick(&mut self) {
        let over = self.st.media.take_finished();
        if over.is_empty() {
            return;
        }
        let res = self.store.write(|w| {
            for (id, dev) in &over {
                w.remove_deposit(*id, dev)?;
            }
            Ok(())
        });
        if let Err(e) = res {
            warn!(error = %e, "cannot forget finished deposits; they are tried again at the next start");
        }
    }
}
