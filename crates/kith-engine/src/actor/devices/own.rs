//! The person's devices once linked: what one tells the others, what contacts learn from
//! the user record, and removing a device.

use kith_proto::link::DeviceSync;
use kith_proto::wire::MAX_RECEIPT_IDS;

use super::*;

/// How long a record pushed to contacts stays valid (as the published one).
const PUSHED_RECORD_LIFETIME_MS: u64 = 24 * 3600 * 1000;

impl State {
    /// Queues `sync` for each of the person's other devices (sealed at the end of the
    /// batch, like any outbox item). Nothing when there are none.
    pub(crate) fn enqueue_own(
        &mut self,
        w: &mut WriteTx<'_>,
        sync: DeviceSync,
        after: &mut Vec<After>,
    ) -> Result<(), Fatal> {
        if self.links.relinked() {
            return Ok(());
        }
        let own = self.own_devices(w)?;
        if own.is_empty() {
            return Ok(());
        }
        let bytes = kith_proto::codec::encode(&Body::Devices(sync))?;
        for o in own {
            let dev = device_key(&o.peer_id);
            let me = self.me;
            self.queue_body(w, dev, me, bytes.clone(), Vec::new(), now_ms(), after)?;
        }
        Ok(())
    }

    /// A text sent from this device: its transcript goes to the other devices.
    pub(crate) fn sent_transcript(
        &mut self,
        w: &mut WriteTx<'_>,
        to: IdentityKey,
        id: u128,
        sent_at_ms: u64,
        text: &str,
        after: &mut Vec<After>,
    ) -> Result<(), Fatal> {
        let sync = DeviceSync::Sent {
            to,
            id,
            sent_at_ms,
            text: text.to_string(),
        };
        self.enqueue_own(w, sync, after)
    }

    /// Messages of `conversation` read here: the other devices mark them read too.
    pub(crate) fn read_elsewhere(
        &mut self,
        w: &mut WriteTx<'_>,
        conversation: IdentityKey,
        ids: &[u128],
        after: &mut Vec<After>,
    ) -> Result<(), Fatal> {
        for chunk in ids.chunks(MAX_RECEIPT_IDS) {
            let sync = DeviceSync::Read {
                conversation,
                ids: chunk.to_vec(),
            };
            self.enqueue_own(w, sync, after)?;
        }
        Ok(())
    }

    /// The user record as it stands: this device and the person's other devices, signed.
    pub(crate) fn signed_record(
        &mut self,
        others: Vec<RecordDevice>,
        lifetime_ms: u64,
    ) -> Option<UserRecord> {
        let addrs = self.advertised_addrs();
        let issued = now_ms();
        let mut devices = vec![RecordDevice {
            cert: self.device.cert().clone(),
            addrs: addrs.iter().map(|a| a.to_vec()).collect(),
            mailboxes: self.my_mailboxes.clone(),
            prekey: Some(self.device.claim_prekey(true)),
        }];
        devices.extend(others);
        devices.truncate(MAX_LINKED_DEVICES);
        let mut rec = UserRecord {
            version: 1,
            identity: self.me,
            devices,
            issued_ms: issued,
            expires_ms: issued + lifetime_ms,
            signature: Vec::new(),
        };
        let msg = rec.signing_bytes().ok()?;
        rec.signature = self.keys.identity.sign(&msg);
        Some(rec)
    }

    /// The person's devices changed (one linked or removed): the record is published again
    /// and pushed to every contact and to the other devices.
    pub(crate) fn own_devices_changed(
        &mut self,
        w: &mut WriteTx<'_>,
        after: &mut Vec<After>,
    ) -> Result<(), Fatal> {
        self.record.changed();
        let mut others = Vec::new();
        for o in self.own_devices(w)? {
            if let Some(d) = w.device(&device_key(&o.peer_id))?
                && let Some(cert) = d.cert
            {
                others.push(RecordDevice {
                    cert,
                    addrs: d.addrs,
                    mailboxes: d.mailboxes,
                    prekey: d.prekey,
                });
            }
        }
        let Some(rec) = self.signed_record(others, PUSHED_RECORD_LIFETIME_MS) else {
            return Ok(());
        };
        let bytes = kith_proto::codec::encode(&rec)?;
        let body = Body::Devices(DeviceSync::Record(bytes.clone()));
        for c in w.contacts()? {
            if !self.social.blocked.contains(&c.identity) {
                self.enqueue(w, &c.identity, &body, Vec::new(), after)?;
            }
        }
        self.enqueue_own(w, DeviceSync::Record(bytes), after)
    }

    /// A device of this person sent `sync`.
    pub(crate) fn on_own_sync(
        &mut self,
        w: &mut WriteTx<'_>,
        dev: DeviceKey,
        sync: DeviceSync,
        after: &mut Vec<After>,
    ) -> Result<(), Fatal> {
        self.links.seen(dev);
        match sync {
            DeviceSync::Sent {
                to,
                id,
                sent_at_ms,
                text,
            } => {
                if w.contact(&to)?.is_none() {
                    return Ok(());
                }
                let msg = StoredMessage {
                    id,
                    outgoing: true,
                    text,
                    sent_at_ms,
                    stored_at_ms: now_ms(),
                    status: Status::Sent,
                };
                if w.append_message(&to, &msg)?.is_some() {
                    self.chat_stored(w, ChatRef::Contact(to), id, msg.stored_at_ms, None)?;
                }
            }
            DeviceSync::Read { conversation, ids } => {
                for id in ids {
                    w.raise_status(&conversation, id, false, Status::Read)?;
                }
            }
            DeviceSync::Record(bytes) => self.on_own_record(w, &bytes, after)?,
            DeviceSync::Removed => {}
            DeviceSync::Info { name, platform } => self.on_own_info(w, dev, &name, platform)?,
            DeviceSync::State(s) => self.on_own_state(w, s, after)?,
            DeviceSync::History(h) => self.on_history(w, h, after)?,
            DeviceSync::HistoryPage(h) => self.on_history_page(w, dev, h, after)?,
            DeviceSync::ProfilePhoto {
                version,
                part,
                parts,
                bytes,
            } => self.on_own_photo_part(w, version, part, parts, &bytes)?,
        }
        Ok(())
    }

    /// This device tells the person's other devices its name and platform (at start).
    pub(crate) fn announce_to_own(
        &mut self,
        w: &mut WriteTx<'_>,
        after: &mut Vec<After>,
    ) -> Result<(), Fatal> {
        let name = self.my_device_name(w.meta(DEVICE_NAME)?);
        let sync = DeviceSync::Info {
            name,
            platform: this_platform(),
        };
        self.enqueue_own(w, sync, after)
    }

    /// Another device of this person said its name and platform: kept (bounded) for
    /// `kith devices`; a device known only by a default name takes the name it chose.
    fn on_own_info(
        &mut self,
        w: &mut WriteTx<'_>,
        dev: DeviceKey,
        name: &str,
        platform: String,
    ) -> Result<(), Fatal> {
        let mut own = self.own_devices(w)?;
        let Some(o) = own.iter_mut().find(|o| device_key(&o.peer_id) == dev) else {
            return Ok(());
        };
        let peer_id = o.peer_id.clone();
        if let Some(n) = clean_name(name)
            && o.linked_ms == 0
            && o.name != n
        {
            o.name = n;
            self.put_own_devices(w, &own)?;
        }
        let platform: String = platform
            .chars()
            .filter(|c| !c.is_control())
            .take(kith_proto::link::MAX_PLATFORM)
            .collect();
        let mut info = parse_info(w.meta(OWN_INFO)?);
        info.retain(|i| i.peer_id != peer_id && own.iter().any(|o| o.peer_id == i.peer_id));
        info.push(OwnInfo { peer_id, platform });
        info.truncate(2 * MAX_LINKED_DEVICES);
        w.set_meta(OWN_INFO, &kith_proto::codec::encode(&info)?)?;
        Ok(())
    }

    /// Another device of this person's sent the current record: devices it lists that this
    /// one does not know join; known ones it no longer lists are dropped.
    fn on_own_record(
        &mut self,
        w: &mut WriteTx<'_>,
        bytes: &[u8],
        after: &mut Vec<After>,
    ) -> Result<(), Fatal> {
        let Ok(rec) = UserRecord::decode_valid(bytes, now_ms()) else {
            return Ok(());
        };
        let mine = self.device.cert().peer_id.clone();
        if rec.identity != self.me || !rec.devices.iter().any(|d| d.cert.peer_id == mine) {
            return Ok(());
        }
        let mut own = self.own_devices(w)?;
        let mut revoked = parse_list(w.meta(OWN_REVOKED)?);
        let mut joined = Vec::new();
        for o in own.clone() {
            if !rec.devices.iter().any(|d| d.cert.peer_id == o.peer_id) {
                w.remove_device(&device_key(&o.peer_id))?;
                self.sessions.remove(&device_key(&o.peer_id));
                revoked.push(o.peer_id.clone());
                own.retain(|x| x.peer_id != o.peer_id);
                let me = self.me;
                self.group_device_removed(w, me)?;
            }
        }
        for d in &rec.devices {
            let dev = device_key(&d.cert.peer_id);
            if d.cert.peer_id == mine
                || own.iter().any(|o| o.peer_id == d.cert.peer_id)
                || revoked.contains(&d.cert.peer_id)
                || own.len() + 1 >= MAX_LINKED_DEVICES
                || !w.curve_free_for(&d.cert.curve25519, &dev)?
            {
                continue;
            }
            w.put_device(
                &dev,
                &KnownDevice {
                    identity: self.me,
                    peer_id: d.cert.peer_id.clone(),
                    cert: Some(d.cert.clone()),
                    addrs: d.addrs.clone(),
                    mailboxes: d.mailboxes.clone(),
                    prekey: d.prekey.clone(),
                },
            )?;
            own.push(OwnDevice {
                peer_id: d.cert.peer_id.clone(),
                name: default_name(&d.cert.peer_id),
                linked_ms: 0,
            });
            after.push(After::Pump(dev));
            joined.push(dev);
        }
        let start = revoked.len().saturating_sub(MAX_REVOKED);
        w.set_meta(OWN_REVOKED, &encode_list(&revoked[start..])?)?;
        self.put_own_devices(w, &own)?;
        self.record.changed();
        for dev in joined {
            self.groups_to_own_device(w, dev, after)?;
        }
        Ok(())
    }

    /// A contact sent their current user record: new devices are learned (and shown as
    /// "linked a new device"), devices it no longer lists are dropped and never bound
    /// again. Older records than the last one applied are ignored.
    pub(crate) fn on_contact_record(
        &mut self,
        w: &mut WriteTx<'_>,
        conv: IdentityKey,
        name: &str,
        bytes: &[u8],
        after: &mut Vec<After>,
    ) -> Result<(), Fatal> {
        let Ok(rec) = UserRecord::decode_valid(bytes, now_ms()) else {
            return Ok(());
        };
        let key = contact_record_key(&conv);
        let mut last = parse_contact_record(w.meta(&key)?);
        if rec.identity != conv || rec.issued_ms <= last.issued_ms {
            return Ok(());
        }
        let listed: Vec<Vec<u8>> = rec.devices.iter().map(|d| d.cert.peer_id.clone()).collect();
        let mut removed = 0;
        for old in &last.devices {
            if !listed.contains(old) {
                w.remove_device(&device_key(old))?;
                self.sessions.remove(&device_key(old));
                last.revoked.push(old.clone());
                removed += 1;
            }
        }
        if removed > 0 {
            self.group_device_removed(w, conv)?;
        }
        let mut added = 0;
        for d in &rec.devices {
            if last.revoked.contains(&d.cert.peer_id) {
                continue;
            }
            if w.device(&device_key(&d.cert.peer_id))?.is_none() {
                added += 1;
            }
        }
        let start = last.revoked.len().saturating_sub(MAX_REVOKED);
        let revoked = last.revoked[start..].to_vec();
        let now = ContactRecord {
            issued_ms: rec.issued_ms,
            devices: listed,
            revoked,
        };
        w.set_meta(&key, &kith_proto::codec::encode(&now)?)?;
        info!(
            identity = %conv,
            devices = rec.devices.len(),
            added,
            removed,
            "a contact's devices changed"
        );
        // Learns the listed devices (addresses, pre-keys, certificates) as from the DHT.
        self.on_record(w, conv, bytes, after)?;
        if added > 0 {
            after.push(After::Event(Event::Notice {
                contact: name.to_string(),
                detail: format!("{name} linked a new device"),
            }));
        }
        if removed > 0 {
            after.push(After::Event(Event::Notice {
                contact: name.to_string(),
                detail: format!("{name} removed a device"),
            }));
        }
        Ok(())
    }

    /// `devices.remove`: the named device is no longer one of this person's: its
    /// certificate leaves the record, it receives nothing more, and it is never bound again.
    pub(crate) fn remove_own_device(
        &mut self,
        w: &mut WriteTx<'_>,
        name: &str,
        after: &mut Vec<After>,
    ) -> Outcome<crate::command::DeviceView> {
        let mut own = self.own_devices(w)?;
        let Some(pos) = own.iter().position(|o| o.name == name) else {
            return Ok(Err(EngineError::ActionRefused(format!(
                "no other device is named {name} (see kith devices)"
            ))));
        };
        let gone = own.remove(pos);
        let dev = device_key(&gone.peer_id);
        w.remove_device(&dev)?;
        self.sessions.remove(&dev);
        self.dirty_sessions.remove(&dev);
        self.delivery.forget(&dev);
        let mut revoked = parse_list(w.meta(OWN_REVOKED)?);
        revoked.push(gone.peer_id.clone());
        let start = revoked.len().saturating_sub(MAX_REVOKED);
        w.set_meta(OWN_REVOKED, &encode_list(&revoked[start..])?)?;
        self.put_own_devices(w, &own)?;
        self.links.seen.remove(&dev);
        let me = self.me;
        self.group_device_removed(w, me)?;
        info!("removed one of this person's devices");
        self.own_devices_changed(w, after)?;
        Ok(Ok(crate::command::DeviceView {
            name: gone.name,
            peer_id: PeerId::from_bytes(&gone.peer_id)
                .map(|p| p.to_string())
                .unwrap_or_default(),
            this: false,
            online: false,
            linked_ms: (gone.linked_ms > 0).then_some(gone.linked_ms),
            last_seen: None,
            platform: None,
        }))
    }
}
