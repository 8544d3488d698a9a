//! The outbox side of the engine: the I/O around `cores/outbox`. The actor reads a device's
//! outbox and records from the store, runs Olm, and carries out what the core decides:
//!
//! - sealing: `seal_with` reads the outbox, lets the core group the waiting items
//!   into envelopes, encrypts each group as one sealed message and stores the items as the
//!   core marked them;
//! - delivery answers: `on_response` takes the core's answer for each result of a
//!   `Delivered` answer and removes items, raises message states, tells the user of a full
//!   mailbox, or starts new sessions; it also routes the other answers to their handlers;
//! - session resets: `reset_sessions` drops the Olm sessions and applies the core's
//!   reset rule to every item;
//! - pre-key bundles: `on_prekey` checks a claimed bundle with the core, learns the
//!   certificate and opens a session;
//! - DHT user records: `on_record` merges a contact's devices and addresses.

use super::*;
use crate::cores::outbox::{self as outbox_core, Answer, BundleCheck, MAX_RESETS, Reset};

impl State {
    /// Seals every outbox item of a device that is not sealed yet, if a session exists.
    /// Consecutive items go into one envelope (grouped by `cores::outbox::plan_seal`), so a
    /// burst costs one Olm encryption.
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
        let plan = outbox_core::plan_seal(w.outbox(dev, usize::MAX)?);
        for seq in plan.drop {
            w.take_outbox(dev, seq)?;
        }
        for mut group in plan.envelopes {
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
            // Sealed once more to the device, so whoever carries it (a mailbox) cannot read
            // the sender's key out of a pre-key message, nor link normal ones by ratchet key;
            // inside the seal, our key tells the device which session opens it.
            let env = kith_crypto::seal(&s.encrypt(&plain)?, &self.device.curve_key())?;
            self.dirty_sessions.insert(*dev);
            outbox_core::mark_sealed(&mut group, &env);
            for (seq, item) in &group {
                w.update_outbox(dev, *seq, item)?;
            }
        }
        Ok(())
    }

    /// Queues a body for every device of a contact; it is sealed at the end of the batch,
    /// together with whatever else the batch queued for the same device.
    pub(super) fn enqueue(
        &mut self,
        w: &mut WriteTx<'_>,
        conv: &IdentityKey,
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
        let queued_ms = now_ms();
        for dev in devices {
            self.queue_body(
                w,
                dev,
                *conv,
                bytes.clone(),
                message_ids.clone(),
                queued_ms,
                after,
            )?;
        }
        Ok(())
    }

    /// Queues an encoded body for one device of `conv`: sealed with the others queued in
    /// this batch when it ends, then pumped.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn queue_body(
        &mut self,
        w: &mut WriteTx<'_>,
        dev: DeviceKey,
        conv: IdentityKey,
        bytes: Vec<u8>,
        message_ids: Vec<u128>,
        queued_ms: u64,
        after: &mut Vec<After>,
    ) -> Result<(), Fatal> {
        let item = OutboxItem {
            conversation: conv,
            message_ids,
            sealed: None,
            body: Some(bytes),
            queued_ms,
            resets: 0,
            covers: 0,
            covered: false,
        };
        w.push_outbox(&dev, &item)?;
        self.to_seal.insert(dev);
        after.push(After::Pump(dev));
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
            ) if outbox_core::fits(results.len(), seqs.len()) => {
                let mut reset = false;
                let mut full = false;
                let mut taken = false;
                let mut kept_back = false;
                let mut kept_at_mailbox = Vec::new();
                for (group, r) in seqs.iter().zip(results) {
                    match outbox_core::answer(r, via_mailbox) {
                        Answer::Raise(to) => {
                            taken = true;
                            for seq in group {
                                if let Some(item) = w.take_outbox(&dev, *seq)? {
                                    if item.is_kept_mail() {
                                        self.metrics.drained.inc();
                                    }
                                    self.raise(w, &item, to, after)?;
                                    if via_mailbox {
                                        kept_at_mailbox.extend_from_slice(&item.message_ids);
                                    }
                                }
                            }
                        }
                        Answer::Full => {
                            warn!(%peer, "the contact's mailbox is full; trying elsewhere or later");
                            full = true;
                            break;
                        }
                        Answer::Malformed => {
                            warn!(%peer, "recipient refused an envelope as malformed; dropped");
                            for seq in group {
                                w.take_outbox(&dev, *seq)?;
                            }
                        }
                        Answer::Refused => {
                            let mut relayed = false;
                            for seq in group {
                                if w.outbox_item(&dev, *seq)?
                                    .is_some_and(|it| outbox_core::is_relayed(&it))
                                    && let Some(mut item) = w.take_outbox(&dev, *seq)?
                                {
                                    // Kept mail is never dropped on a refusal (its sender
                                    // deleted its copy): it goes to the back of the outbox,
                                    // and expires with the mailbox's retention.
                                    relayed = true;
                                    outbox_core::keep_refused(&mut item);
                                    w.push_outbox(&dev, &item)?;
                                }
                            }
                            if outbox_core::refused(relayed) {
                                reset = true;
                                break;
                            }
                            kept_back = true;
                            debug!(%peer, "a device refused mail kept for it; kept for later");
                        }
                    }
                }
                if reset {
                    self.reset_sessions(w, &dev)?;
                }
                // Files in messages the device's mailbox kept: their chunks go there too.
                self.deposit_files(w, &dev, peer, &kept_at_mailbox, after)?;
                if full {
                    // Tell the user, as other messengers do ("Bob's mailbox is full").
                    if let Some(d) = w.device(&dev)?
                        && let Some(c) = w.contact(&d.identity)?
                    {
                        after.push(After::Event(Event::Notice {
                            contact: c.name.clone(),
                            detail: outbox_core::full_notice(&c.name),
                        }));
                    }
                    after.push(After::Failed(dev));
                } else if outbox_core::back_off_after_refusals(taken, kept_back) {
                    // Only refused kept mail went: offer it again after a pause, not at once.
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
            (Pending::Turn { mailbox }, resp) => self.on_turn_servers(&mailbox, resp),
            (Pending::Watch { mailbox, topics }, Response::Watching { .. }) => {
                self.on_watching(mailbox, topics);
            }
            (Pending::Link, Response::Link(m)) => self.on_link_response(w, peer, m, after)?,
            // A device that linked already (or is too busy) refuses every request: the code
            // was used.
            (Pending::Link, Response::Refused(_)) => {
                self.on_link_response(w, peer, kith_proto::link::LinkMsg::Refused, after)?
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
                    proving: true,
                },
                Response::Prekey(bundle),
            ) => {
                self.register_proven(mailbox, token, reply, &bundle);
            }
            (
                Pending::Register {
                    mailbox,
                    token,
                    reply,
                    proving: false,
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
                    && let Ok(p) = PeerId::from_bytes(&mailbox.peer_id)
                    && self.mailbox_tokens.get(&p) != Some(&t)
                {
                    self.mailbox_tokens.insert(p, t);
                    let bytes = encode_by_mailbox(&self.mailbox_tokens)?;
                    w.set_meta("mailbox_tokens", &bytes)?;
                }
                if self.push_endpoint.is_some() {
                    after.push(After::SendPush(mailbox.clone()));
                }
                let mailbox_id = mailbox.peer_id.clone();
                let asked = mailbox.clone();
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
                self.ask_turn(&asked);
                self.watching.registered(&mailbox_id);
                let view = self.mailbox_view(&mailbox_id);
                if let Some(tx) = reply {
                    after.push(After::Registered(tx, view));
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
                    Pending::Register { .. } | Pending::SetPush { .. } | Pending::Turn { .. } => {
                        return Ok(());
                    }
                    Pending::Link => {
                        self.link_failed("it answered out of turn");
                        return Ok(());
                    }
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
    /// new sessions and re-seal what is waiting, up to [`MAX_RESETS`] times per item
    /// (`cores::outbox::reset_item`).
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
            match outbox_core::reset_item(&mut item) {
                Reset::Waiting => {}
                Reset::Drop => {
                    warn!(
                        "dropping a message its recipient could not decrypt after {MAX_RESETS} new sessions"
                    );
                    w.take_outbox(dev, seq)?;
                }
                Reset::Unsealed => w.update_outbox(dev, seq, &item)?,
            }
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
        let connection = peer.to_bytes();
        let check = outbox_core::check_bundle(outbox_core::Bundle {
            valid: bundle.validate().is_ok(),
            peer_id: &bundle.cert.peer_id,
            identity: &bundle.cert.identity,
            connection: &connection,
            device_peer_id: &device.peer_id,
            device_identity: &device.identity,
        });
        match check {
            BundleCheck::Accept => {}
            BundleCheck::Penalize => {
                after.push(After::Net(NetCommand::Penalize {
                    peer,
                    reason: outbox_core::BAD_BUNDLE,
                }));
                after.push(After::Failed(dev));
                return Ok(());
            }
            BundleCheck::IdentityWarning => {
                warn!(%peer, "device presented a different identity key than the contact's");
                after.push(After::Event(Event::IdentityWarning {
                    contact: name,
                    detail: outbox_core::IDENTITY_CHANGED.into(),
                }));
                after.push(After::Failed(dev));
                return Ok(());
            }
        }
        let curve = bundle.cert.curve25519;
        if !w.curve_free_for(&curve, &dev)? {
            // Another device's key in this device's certificate (issue 14, hole 2).
            after.push(After::Net(NetCommand::Penalize {
                peer,
                reason: outbox_core::BAD_BUNDLE,
            }));
            after.push(After::Failed(dev));
            return Ok(());
        }
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
        identity: IdentityKey,
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
            identity = %identity,
            devices = rec.devices.len(),
            mailboxes = rec.devices.iter().map(|d| d.mailboxes.len()).sum::<usize>(),
            "updated a contact's addresses from the DHT user record"
        );
        for rd in rec.devices {
            if self.revoked_device(w, &identity, &rd.cert.peer_id)? {
                continue;
            }
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
            let learned = d.cert.is_none() && w.curve_free_for(&rd.cert.curve25519, &dev)?;
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
        self.deposit_looked_up(w, identity, after)?;
        self.group_devices_appeared(w, identity, after)
    }
}
