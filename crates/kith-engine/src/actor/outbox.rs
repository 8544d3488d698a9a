//! The outbox side of the engine: sealing what is queued (several bodies per envelope),
//! handling delivery answers, session resets, pre-key bundles and DHT records.

use super::*;

impl State {
    /// Seals every outbox item of a device that is not sealed yet, if a session exists.
    /// Consecutive items go into one envelope (up to [`MAX_BODIES`] bodies and
    /// [`SEAL_BYTES`] of plaintext), so a burst costs one Olm encryption.
    pub(super) fn seal_waiting(
        &mut self,
        w: &mut WriteTx<'_>,
        dev: &DeviceKey,
    ) -> Result<(), Fatal> {
        let Some(curve) = w.device(dev)?.and_then(|d| d.cert.map(|c| c.curve25519)) else {
            return Ok(());
        };
        let mut s = self.take_sessions(w, dev, curve)?;
        let res = self.seal_with(w, dev, &mut s);
        self.sessions.insert(*dev, s);
        res
    }

    pub(super) fn seal_with(
        &mut self,
        w: &mut WriteTx<'_>,
        dev: &DeviceKey,
        s: &mut PeerSessions,
    ) -> Result<(), Fatal> {
        if !s.has_session() {
            return Ok(());
        }
        let waiting: Vec<(u64, OutboxItem)> = w
            .outbox(dev, usize::MAX)?
            .into_iter()
            .skip_while(|(_, it)| it.sealed.is_some() || it.covered)
            .collect();
        let mut group: Vec<(u64, OutboxItem)> = Vec::new();
        let mut bytes = 0usize;
        let mut groups = Vec::new();
        for (seq, item) in waiting {
            let Some(body) = &item.body else {
                // Nothing to seal (cannot happen for items this code wrote): drop it.
                w.take_outbox(dev, seq)?;
                continue;
            };
            let len = body.len() + 16;
            if !group.is_empty() && (group.len() >= MAX_BODIES || bytes + len > SEAL_BYTES) {
                groups.push(std::mem::take(&mut group));
                bytes = 0;
            }
            bytes += len;
            group.push((seq, item));
        }
        if !group.is_empty() {
            groups.push(group);
        }
        for group in groups {
            let mut bodies = Vec::with_capacity(group.len());
            for (_, item) in &group {
                let body: Body = kith_proto::codec::decode(
                    item.body.as_deref().unwrap_or_default(),
                    kith_proto::wire::MAX_SEALED,
                )?;
                bodies.push(body);
            }
            let sealed = Sealed {
                version: 1,
                sender: (!s.answered()).then(|| self.device.cert().clone()),
                bodies,
            };
            let plain = sealed.encode()?;
            let env = s.encrypt(&plain)?;
            self.dirty_sessions.insert(*dev);
            let n = group.len() as u32;
            for (i, (seq, mut item)) in group.into_iter().enumerate() {
                if i == 0 {
                    item.sealed = Some(env.clone());
                    item.covers = n;
                    item.covered = false;
                } else {
                    item.sealed = None;
                    item.covers = 0;
                    item.covered = true;
                }
                w.update_outbox(dev, seq, &item)?;
            }
        }
        Ok(())
    }

    /// Queues a body for every device of a contact; it is sealed at the end of the batch,
    /// together with whatever else the batch queued for the same device.
    pub(super) fn enqueue(
        &mut self,
        w: &mut WriteTx<'_>,
        conv: &[u8; 32],
        body: &Body,
        message_ids: Vec<u128>,
        after: &mut Vec<After>,
    ) -> Result<(), Fatal> {
        let bytes = kith_proto::codec::encode(body)?;
        let devices: Vec<DeviceKey> = w
            .devices()?
            .into_iter()
            .filter(|d| &d.identity == conv)
            .map(|d| device_key(&d.peer_id))
            .collect();
        for dev in devices {
            let item = OutboxItem {
                conversation: *conv,
                message_ids: message_ids.clone(),
                sealed: None,
                body: Some(bytes.clone()),
                queued_ms: now_ms(),
                resets: 0,
                covers: 0,
                covered: false,
            };
            w.push_outbox(&dev, &item)?;
            self.to_seal.insert(dev);
            after.push(After::Pump(dev));
        }
        Ok(())
    }

    pub(super) fn on_response(
        &mut self,
        w: &mut WriteTx<'_>,
        peer: PeerId,
        pending: Pending,
        resp: Response,
        after: &mut Vec<After>,
    ) -> Result<(), Fatal> {
        match (pending, resp) {
            (
                Pending::Deliver {
                    dev,
                    seqs,
                    via_mailbox,
                },
                Response::Delivered { results },
            ) if results.len() == seqs.len() => {
                let mut reset = false;
                let mut full = false;
                for (group, r) in seqs.iter().zip(results) {
                    match r {
                        DeliveryResult::Stored
                        | DeliveryResult::Duplicate
                        | DeliveryResult::Accepted => {
                            // The device itself stored it: ✓✓. A mailbox keeps it: ✓, and ✓✓
                            // comes later in a receipt from the device.
                            let to = if via_mailbox || r == DeliveryResult::Accepted {
                                Status::Sent
                            } else {
                                Status::Delivered
                            };
                            for seq in group {
                                if let Some(item) = w.take_outbox(&dev, *seq)? {
                                    self.raise(w, &item, to, after)?;
                                }
                            }
                        }
                        DeliveryResult::Rejected(RejectReason::MailboxFull) => {
                            warn!(%peer, "the contact's mailbox is full; trying elsewhere or later");
                            full = true;
                            break;
                        }
                        DeliveryResult::Rejected(RejectReason::Malformed) => {
                            warn!(%peer, "recipient refused an envelope as malformed; dropped");
                            for seq in group {
                                w.take_outbox(&dev, *seq)?;
                            }
                        }
                        _ => {
                            // Mail this node keeps for someone else (as their mailbox) cannot
                            // be sealed again here: drop just that envelope. Our own messages
                            // get a new session.
                            let mut relayed = false;
                            for seq in group {
                                if w.outbox_item(&dev, *seq)?
                                    .is_some_and(|it| it.body.is_none())
                                {
                                    relayed = true;
                                    w.take_outbox(&dev, *seq)?;
                                }
                            }
                            if relayed {
                                warn!(%peer, "a device refused mail kept for it; dropped that envelope");
                                continue;
                            }
                            reset = true;
                            break;
                        }
                    }
                }
                if reset {
                    self.reset_sessions(w, &dev)?;
                }
                if full {
                    // Tell the user, as other messengers do ("Bob's mailbox is full").
                    if let Some(d) = w.device(&dev)?
                        && let Some(c) = w.contact(&d.identity)?
                    {
                        after.push(After::Event(Event::Notice {
                            contact: c.name.clone(),
                            detail: format!(
                                "{}'s mailbox is full; trying another mailbox or later",
                                c.name
                            ),
                        }));
                    }
                    after.push(After::Failed(dev));
                } else {
                    self.settled(dev, via_mailbox, after);
                }
            }
            (Pending::GroupSync { group }, Response::GroupFrames { frames, more }) => {
                self.on_group_frames(w, peer, group, frames, more, after)?;
            }
            (Pending::TopicSync { group, floor }, Response::GroupFrames { frames, more }) => {
                self.on_topic_frames(w, peer, (group, floor), frames, more, after)?;
            }
            (Pending::Watch { mailbox, topics }, Response::Watching { .. }) => {
                self.on_watching(mailbox, topics);
            }
            (Pending::Claim { dev }, Response::Prekey(bundle)) => {
                self.on_prekey(w, peer, dev, bundle, after)?;
                self.settled(dev, false, after);
            }
            (Pending::SetPush { mailbox, wait }, resp) => {
                let (status, refused) = match resp {
                    Response::PushSet if self.push_endpoint.is_some() => ("accepted".into(), None),
                    Response::PushSet => ("cleared".into(), None),
                    Response::Refused(Refusal::EndpointRefused) => (
                        "refused: not an allowed endpoint".into(),
                        Some(
                            "refuses this endpoint (it allows no plain http and no \
                             loopback, private or link-local addresses)"
                                .to_string(),
                        ),
                    ),
                    Response::Refused(Refusal::Unauthorized) => (
                        "refused: not registered".into(),
                        Some("does not know this device (register again)".to_string()),
                    ),
                    _ => ("refused".into(), Some("refused the endpoint".to_string())),
                };
                self.push_result(&mailbox, wait, status, refused);
            }
            (
                Pending::Register {
                    mailbox,
                    token,
                    reply,
                },
                resp @ (Response::Registered { .. } | Response::Registration { .. }),
            ) => {
                let usage = match resp {
                    Response::Registration {
                        max_messages,
                        max_bytes,
                        used_messages,
                        used_bytes,
                    } => MailboxUsage {
                        max_messages,
                        max_bytes,
                        used_messages: used_messages.into(),
                        used_bytes,
                        at_ms: now_ms(),
                    },
                    Response::Registered { quota } => MailboxUsage {
                        max_messages: quota,
                        at_ms: now_ms(),
                        ..Default::default()
                    },
                    _ => MailboxUsage::default(),
                };
                if let Some(t) = token
                    && self.mailbox_tokens.get(&mailbox.peer_id) != Some(&t)
                {
                    self.mailbox_tokens.insert(mailbox.peer_id.clone(), t);
                    let list: Vec<(Vec<u8>, String)> = self
                        .mailbox_tokens
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    let bytes = kith_proto::codec::encode(&list)?;
                    w.set_meta("mailbox_tokens", &bytes)?;
                }
                if self.push_endpoint.is_some() {
                    after.push(After::SendPush(mailbox.clone()));
                }
                let mailbox_id = mailbox.peer_id.clone();
                if !self
                    .my_mailboxes
                    .iter()
                    .any(|m| m.peer_id == mailbox.peer_id)
                {
                    if self.my_mailboxes.len() >= MAX_MAILBOXES {
                        self.my_mailboxes.remove(0);
                    }
                    self.my_mailboxes.push(mailbox);
                    let bytes = kith_proto::codec::encode(&self.my_mailboxes)?;
                    w.set_meta("mailboxes", &bytes)?;
                    self.record.changed();
                    info!(mailbox = %self.mailbox_view(&mailbox_id).peer_id, "registered with a mailbox");
                }
                self.save_usage(w, &mailbox_id, usage)?;
                self.watching.registered(&mailbox_id);
                let view = self.mailbox_view(&mailbox_id);
                if let Some(tx) = reply {
                    after.push(After::Publish((tx, view)));
                }
            }
            (Pending::Register { reply, .. }, other) => {
                warn!(%peer, ?other, "mailbox refused the registration");
                if let Some(tx) = reply {
                    let why = if matches!(other, Response::Refused(Refusal::Unauthorized)) {
                        EngineError::BadCode(
                            "the mailbox needs a valid invite token (--token)".into(),
                        )
                    } else {
                        EngineError::Network(
                            "the mailbox refused the registration (is it running with --mailbox?)"
                                .into(),
                        )
                    };
                    let _ = tx.send(Err(why));
                }
            }
            (p, other) => {
                let dev = match p {
                    Pending::Deliver { dev, .. } | Pending::Claim { dev } => dev,
                    Pending::Register { .. } | Pending::SetPush { .. } => return Ok(()),
                    Pending::GroupSync { group } => {
                        self.groups_sync_failed(group);
                        return Ok(());
                    }
                    Pending::Watch { mailbox, .. } => {
                        self.watch_refused(peer, mailbox, &other);
                        return Ok(());
                    }
                    Pending::TopicSync { group, .. } => {
                        self.topic_sync_refused(peer, group, &other);
                        return Ok(());
                    }
                };
                if !matches!(other, Response::Refused(_)) {
                    after.push(After::Net(NetCommand::Penalize {
                        peer,
                        reason: "response does not fit the request",
                    }));
                }
                debug!(%peer, "request refused or answered wrongly; backing off");
                after.push(After::Failed(dev));
            }
        }
        Ok(())
    }

    /// A request to `dev` completed: it may send the next batch at once.
    pub(super) fn settled(&mut self, dev: DeviceKey, via_mailbox: bool, after: &mut Vec<After>) {
        // Failures keep counting after a mailbox took the batch, so the next one goes there
        // too until the device is reachable again.
        self.delivery.settled(dev, via_mailbox);
        after.push(After::Pump(dev));
    }

    /// Raises the state of the messages an acknowledged outbox item carried.
    pub(super) fn raise(
        &mut self,
        w: &mut WriteTx<'_>,
        item: &OutboxItem,
        to: Status,
        after: &mut Vec<After>,
    ) -> Result<(), Fatal> {
        if item.message_ids.is_empty() {
            return Ok(());
        }
        let name = w
            .contact(&item.conversation)?
            .map(|c| c.name)
            .unwrap_or_default();
        for id in &item.message_ids {
            if let Some(s) = w.raise_status(&item.conversation, *id, true, to)? {
                after.push(After::Event(Event::Status {
                    contact: name.clone(),
                    id: MessageId(*id).to_string(),
                    status: s.as_str().into(),
                }));
            }
        }
        Ok(())
    }

    /// The device could not open our envelopes (it lost its state, or ours is stale): start
    /// new sessions and re-seal what is waiting, up to [`MAX_RESETS`] times per item.
    pub(super) fn reset_sessions(
        &mut self,
        w: &mut WriteTx<'_>,
        dev: &DeviceKey,
    ) -> Result<(), Fatal> {
        warn!("a contact's device could not decrypt our messages; starting a new session");
        self.sessions.remove(dev);
        self.dirty_sessions.remove(dev);
        w.drop_sessions(dev)?;
        for (seq, mut item) in w.outbox(dev, usize::MAX)? {
            if item.sealed.is_none() && !item.covered {
                continue;
            }
            if item.resets >= MAX_RESETS {
                warn!(
                    "dropping a message its recipient could not decrypt after {MAX_RESETS} new sessions"
                );
                w.take_outbox(dev, seq)?;
                continue;
            }
            item.sealed = None;
            item.covers = 0;
            item.covered = false;
            item.resets += 1;
            w.update_outbox(dev, seq, &item)?;
        }
        Ok(())
    }

    pub(super) fn on_prekey(
        &mut self,
        w: &mut WriteTx<'_>,
        peer: PeerId,
        dev: DeviceKey,
        bundle: kith_proto::record::PrekeyBundle,
        after: &mut Vec<After>,
    ) -> Result<(), Fatal> {
        let Some(mut device) = w.device(&dev)? else {
            return Ok(());
        };
        let name = w
            .contact(&device.identity)?
            .map(|c| c.name)
            .unwrap_or_default();
        if bundle.validate().is_err()
            || bundle.cert.peer_id != peer.to_bytes()
            || bundle.cert.peer_id != device.peer_id
        {
            after.push(After::Net(NetCommand::Penalize {
                peer,
                reason: "invalid pre-key bundle",
            }));
            after.push(After::Failed(dev));
            return Ok(());
        }
        if bundle.cert.identity != device.identity {
            warn!(%peer, "device presented a different identity key than the contact's");
            after.push(After::Event(Event::IdentityWarning {
                contact: name,
                detail: "the device at this contact's address has a different identity key; \
                         messages are held until it is resolved"
                    .into(),
            }));
            after.push(After::Failed(dev));
            return Ok(());
        }
        let curve = bundle.cert.curve25519;
        let learned = device.cert.is_none();
        device.cert = Some(bundle.cert.clone());
        w.put_device(&dev, &device)?;
        if learned {
            self.member_cert_learned(w, &bundle.cert, after)?;
        }
        let mut s = self.take_sessions(w, &dev, curve)?;
        let opened = s.open_outbound(&self.device, &bundle);
        self.sessions.insert(dev, s);
        if let Err(e) = opened {
            warn!(%peer, error = %e, "cannot open a session");
            after.push(After::Failed(dev));
            return Ok(());
        }
        self.dirty_sessions.insert(dev);
        // Seal everything that waited for this session.
        self.seal_waiting(w, &dev)
    }

    pub(super) fn on_record(
        &mut self,
        w: &mut WriteTx<'_>,
        identity: [u8; 32],
        value: &[u8],
        after: &mut Vec<After>,
    ) -> Result<(), Fatal> {
        let Ok(rec) = UserRecord::decode_valid(value, now_ms()) else {
            return Ok(());
        };
        if rec.identity != identity || w.contact(&identity)?.is_none() {
            return Ok(());
        }
        info!(
            identity = %IdentityKey(identity),
            devices = rec.devices.len(),
            mailboxes = rec.devices.iter().map(|d| d.mailboxes.len()).sum::<usize>(),
            "updated a contact's addresses from the DHT user record"
        );
        for rd in rec.devices {
            let dev = device_key(&rd.cert.peer_id);
            let mut d = w.device(&dev)?.unwrap_or(KnownDevice {
                identity,
                peer_id: rd.cert.peer_id.clone(),
                cert: None,
                addrs: Vec::new(),
                mailboxes: Vec::new(),
                prekey: None,
            });
            if d.identity != identity {
                continue;
            }
            let mut merged = rd.addrs.clone();
            for a in &d.addrs {
                if !merged.contains(a) {
                    merged.push(a.clone());
                }
            }
            merged.truncate(MAX_DEVICE_ADDRS);
            d.addrs = merged;
            d.mailboxes = rd.mailboxes.clone();
            d.prekey = rd.prekey.clone();
            let learned = d.cert.is_none();
            if learned {
                d.cert = Some(rd.cert.clone());
            }
            w.put_device(&dev, &d)?;
            if learned {
                self.member_cert_learned(w, &rd.cert, after)?;
            }
            if let Ok(peer) = PeerId::from_bytes(&d.peer_id) {
                after.push(After::Net(NetCommand::Dial {
                    peer,
                    addrs: decode_addrs(&d.addrs),
                }));
            }
            self.delivery.retry_now(&dev);
            after.push(After::Pump(dev));
        }
        self.group_devices_appeared(w, identity, after)
    }
}
