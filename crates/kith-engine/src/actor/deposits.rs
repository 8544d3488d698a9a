//! Deposits of sent files at recipients' mailboxes, the engine's side (the transfer is the
//! media task's, `media/upload.rs`):
//!
//! - When a device's mailbox kept a message of ours that carries a file (the device could
//!   not be reached), a row (`media_deposits`: message, device → mailbox) is written in the
//!   same transaction, and the media task is handed the deposit after the commit.
//! - At every start the rows are taken up again, so a deposit cut short by kill -9 or a
//!   restart goes on by itself (the media task skips the chunks the mailbox acknowledged).
//! - A file posted to a group goes, right after it is sent, to the first mailbox of each
//!   member device this node is not connected to, once per mailbox node: the devices
//!   registered at the same mailbox are granted the one copy held there (rows for each,
//!   one job per mailbox; at most [`MAX_GROUP_MAILBOXES`] mailboxes, `MAX_GRANTS` devices
//!   each).
//! - The media task reports deposits that are over (held whole, or refused for good); their
//!   rows go at the next tick.

use kith_proto::media as pmedia;

use super::*;
use crate::media::{
    Job,
    upload::{Deposit, MAX_GRANTS},
};

/// Most mailboxes a group file is deposited at.
pub const MAX_GROUP_MAILBOXES: usize = 16;
/// Most members whose mailboxes are looked up for group files at once.
pub const MAX_LOOKED_UP: usize = 256;
/// Most group files waiting for one member's lookup.
const MAX_WAITING_FILES: usize = 16;

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

    /// A file posted to group members `members` (message `id`): deposited at the mailbox
    /// of each member device that is not connected now, once per mailbox node, so that a
    /// member who comes back after this node went away still gets it.
    pub(super) fn deposit_group_file(
        &mut self,
        w: &mut WriteTx<'_>,
        (id, members): (u128, &[IdentityKey]),
        look_up: bool,
        after: &mut Vec<After>,
    ) -> Result<(), Fatal> {
        let mut at: Vec<(PeerId, Vec<DeviceKey>)> = Vec::new();
        for d in w.devices()? {
            if d.identity == self.me || !members.contains(&d.identity) || d.cert.is_none() {
                continue;
            }
            let connected =
                PeerId::from_bytes(&d.peer_id).is_ok_and(|p| self.connected.contains(&p));
            if connected {
                continue;
            }
            let Some(mailbox) = d.mailboxes.first() else {
                // Its mailboxes are not known (yet): looked up, deposited when they are.
                if look_up {
                    self.wait_for_lookup(d.identity, id, after);
                }
                continue;
            };
            let Ok(mailbox) = PeerId::from_bytes(&mailbox.peer_id) else {
                continue;
            };
            let dev = device_key(&d.peer_id);
            let room = at.len() < MAX_GROUP_MAILBOXES;
            match at.iter_mut().find(|(m, _)| *m == mailbox) {
                Some((_, devs)) if devs.len() <= MAX_GRANTS => devs.push(dev),
                Some(_) => {}
                None if room => at.push((mailbox, vec![dev])),
                None => {}
            }
        }
        for (mailbox, devs) in at {
            let Some(dep) = deposit_at(w, id, mailbox, &devs)? else {
                continue;
            };
            for dev in std::iter::once(&dep.key.1).chain(dep.also.iter().map(|(k, _)| &k.1)) {
                if !w.add_deposit(id, dev, &mailbox.to_bytes())? {
                    warn!("too many deposits recorded; one runs without surviving a restart");
                }
            }
            info!(%mailbox, devices = dep.also.len() + 1, "depositing a group file");
            after.push(After::Media(Job::Deposit(Box::new(dep))));
        }
        Ok(())
    }
}

impl State {
    /// Group file `id` waits for `identity`'s user record (its devices' mailboxes).
    fn wait_for_lookup(&mut self, identity: IdentityKey, id: u128, after: &mut Vec<After>) {
        match self.group_deposits.get_mut(&identity) {
            Some(ids) if ids.contains(&id) => return,
            Some(ids) if ids.len() < MAX_WAITING_FILES => ids.push(id),
            Some(_) => return,
            None => {
                self.group_deposits.insert(identity, vec![id]);
            }
        }
        after.push(After::Lookup(identity));
    }

    /// `identity`'s user record came: the group files waiting for it are deposited at its
    /// devices' mailboxes (those not connected; not looked up again).
    pub(super) fn deposit_looked_up(
        &mut self,
        w: &mut WriteTx<'_>,
        identity: IdentityKey,
        after: &mut Vec<After>,
    ) -> Result<(), Fatal> {
        let Some(ids) = self.group_deposits.remove(&identity) else {
            return Ok(());
        };
        for id in ids {
            // Those still without a mailbox are not looked up again for this file.
            self.deposit_group_file(w, (id, &[identity]), false, after)?;
        }
        Ok(())
    }
}

/// The deposit of message `id`'s file at `mailbox` for the devices `devs` registered
/// there: one copy, the first device's, the others granted (those whose key is unknown
/// are left out).
fn deposit_at(
    w: &WriteTx<'_>,
    id: u128,
    mailbox: PeerId,
    devs: &[DeviceKey],
) -> Result<Option<Deposit>, Fatal> {
    let mut dep: Option<Deposit> = None;
    for dev in devs {
        match &mut dep {
            None => dep = deposit_of(w, id, dev, mailbox)?,
            Some(d) => {
                let cert = w.device(dev)?.and_then(|r| r.cert);
                if let Some(cert) = cert
                    && d.also.len() < MAX_GRANTS
                {
                    d.also.push(((id, *dev), cert.curve25519.0));
                }
            }
        }
    }
    Ok(dep)
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
        also: Vec::new(),
    }))
}

impl Engine {
    /// At the start: the deposits a stop or a crash cut short go on (rows whose file or
    /// device is gone are dropped).
    pub(super) fn resume_deposits(&mut self) {
        let res = self.store.write_as(|w| {
            // The rows of one file at one mailbox make one deposit (one copy, granted).
            let mut at: Vec<(u128, PeerId, Vec<DeviceKey>)> = Vec::new();
            for (id, dev, mailbox) in w.deposits()? {
                let Ok(peer) = PeerId::from_bytes(&mailbox) else {
                    w.remove_deposit(id, &dev)?;
                    continue;
                };
                match at.iter_mut().find(|(i, m, _)| *i == id && *m == peer) {
                    Some((_, _, devs)) => devs.push(dev),
                    None => at.push((id, peer, vec![dev])),
                }
            }
            let mut jobs = Vec::new();
            for (id, peer, devs) in at {
                let dep = deposit_at(w, id, peer, &devs)?;
                let kept: Vec<DeviceKey> = dep
                    .iter()
                    .flat_map(|d| std::iter::once(d.key.1).chain(d.also.iter().map(|(k, _)| k.1)))
                    .collect();
                for dev in devs.iter().filter(|d| !kept.contains(d)) {
                    w.remove_deposit(id, dev)?;
                }
                jobs.extend(dep);
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
