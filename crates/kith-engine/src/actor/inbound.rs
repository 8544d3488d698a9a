//! Opening envelopes from peers: dedupe by hash, decrypt, bind new devices, store; and, as a
//! mailbox, keeping envelopes for registered devices (as the mailbox core decides).

use super::*;

/// A normal envelope opened: the sending device's key, its Curve25519 key, the plaintext.
type Opened = (DeviceKey, [u8; 32], kith_crypto::Decrypted);

impl State {
    /// Opens, stores and acknowledges a batch of envelopes from `peer`.
    pub(super) fn receive(
        &mut self,
        w: &mut WriteTx<'_>,
        peer: PeerId,
        envelopes: Vec<Envelope>,
        after: &mut Vec<After>,
    ) -> Result<Vec<DeliveryResult>, Fatal> {
        let mut results = Vec::with_capacity(envelopes.len());
        let my_curve = self.device.curve_key();
        let mut receipts: HashMap<[u8; 32], Vec<u128>> = HashMap::new();
        let mut kept = 0usize;
        for env in envelopes {
            let hash = envelope_hash(&env);
            if w.seen(&hash)? {
                results.push(DeliveryResult::Duplicate);
                continue;
            }
            if env.to_device != my_curve {
                let r = self.deposit(w, peer, env, after)?;
                if matches!(r, DeliveryResult::Accepted) {
                    w.mark_seen(&hash, now_ms())?;
                    kept += 1;
                }
                results.push(r);
                continue;
            }
            let r = self.open(w, peer, &env, &mut receipts, after)?;
            if matches!(r, DeliveryResult::Stored) {
                w.mark_seen(&hash, now_ms())?;
            }
            results.push(r);
        }
        if kept > 0 {
            // The depositing peer is a throwaway identity for well-behaved senders.
            debug!(from = %peer, kept, "mailbox deposit");
        }
        // Messages a mailbox relayed: tell their senders they are delivered (✓✓).
        for (conv, ids) in receipts {
            for chunk in ids.chunks(MAX_RECEIPT_IDS) {
                let body = Body::Receipt {
                    kind: ReceiptKind::Delivered,
                    ids: chunk.to_vec(),
                    at_ms: now_ms(),
                };
                self.enqueue(w, &conv, &body, Vec::new(), after)?;
            }
        }
        Ok(results)
    }

    /// Keeps an envelope for a device registered with this node's mailbox, if the mailbox
    /// core accepts it; it goes out through that device's outbox, with the same retries, and
    /// leaves the store only when the device acknowledges it.
    fn deposit(
        &mut self,
        w: &mut WriteTx<'_>,
        peer: PeerId,
        env: Envelope,
        after: &mut Vec<After>,
    ) -> Result<DeliveryResult, Fatal> {
        // The device registered here under the envelope's key, and what is kept for it.
        let registered = match self.mailbox.is_serving() {
            true => w.mailbox_user(&CurveKey(env.to_device))?,
            false => None,
        };
        let to = match registered {
            Some(dev) => Some((
                dev,
                mailbox_core::Kept {
                    messages: w.outbox_len(&dev)?,
                    bytes: w.mailbox_bytes(&dev)?,
                },
            )),
            None => None,
        };
        let dev = match self.mailbox.deposit(to, env.ciphertext.len() as u64) {
            mailbox_core::Verdict::Accept(dev) => dev,
            mailbox_core::Verdict::Refuse(r) => return Ok(DeliveryResult::Rejected(r)),
            mailbox_core::Verdict::Penalize(r, reason) => {
                after.push(After::Net(NetCommand::Penalize { peer, reason }));
                return Ok(DeliveryResult::Rejected(r));
            }
        };
        w.push_outbox(
            &dev,
            &OutboxItem {
                conversation: [0; 32],
                message_ids: Vec::new(),
                sealed: Some(env),
                body: None,
                queued_ms: now_ms(),
                resets: 0,
                covers: 1,
                covered: false,
            },
        )?;
        after.push(After::Pump(dev));
        // Wake the device if it is away and gave an endpoint (queued after the commit).
        let now = Instant::now();
        if self.mailbox.wake_due(&dev, now) {
            let url = w.push_endpoint(&dev)?;
            let away = w.device(&dev)?.is_some_and(|d| {
                !PeerId::from_bytes(&d.peer_id).is_ok_and(|p| self.connected.contains(&p))
            });
            if self.mailbox.wake(dev, url.is_some(), away, now)
                && let Some(url) = url
            {
                after.push(After::Wake(url));
            }
        }
        Ok(DeliveryResult::Accepted)
    }

    /// Finds which known device a normal (not pre-key) envelope is from: the connection's
    /// peer first, then, for envelopes a mailbox relayed, every device we have sessions with
    /// (up to [`MAX_TRIAL`]). Returns the device and the decrypted message.
    fn open_normal(
        &mut self,
        w: &WriteTx<'_>,
        peer: PeerId,
        env: &Envelope,
    ) -> Result<Option<Opened>, Fatal> {
        // The common case first: the connection is the sending device.
        let first = device_key(&peer.to_bytes());
        if let Some(opened) = self.try_open(w, first, env)? {
            return Ok(Some(opened));
        }
        for dev in w.session_devices(MAX_TRIAL)? {
            if dev != first
                && let Some(opened) = self.try_open(w, dev, env)?
            {
                return Ok(Some(opened));
            }
        }
        Ok(None)
    }

    /// Tries one device's sessions on a normal envelope.
    fn try_open(
        &mut self,
        w: &WriteTx<'_>,
        dev: DeviceKey,
        env: &Envelope,
    ) -> Result<Option<Opened>, Fatal> {
        let Some(curve) = w.device(&dev)?.and_then(|d| d.cert).map(|c| c.curve25519) else {
            return Ok(None);
        };
        let mut s = self.take_sessions(w, &dev, curve)?;
        let r = s.decrypt(&mut self.device, env);
        self.sessions.insert(dev, s);
        Ok(r.ok().map(|d| (dev, curve, d)))
    }

    pub(super) fn open(
        &mut self,
        w: &mut WriteTx<'_>,
        peer: PeerId,
        env: &Envelope,
        receipts: &mut HashMap<[u8; 32], Vec<u128>>,
        after: &mut Vec<After>,
    ) -> Result<DeliveryResult, Fatal> {
        // Which device sent it: a pre-key message names its Curve25519 key; otherwise the
        // connection's peer id tells.
        // Which device sent it: a pre-key message names its Curve25519 key; a normal one is
        // tried against the connection's device, then (relayed by a mailbox) the others.
        let (curve, known_dev, mut sessions, decrypted) = match PeerSessions::prekey_sender(env) {
            Some(curve) => {
                let known_dev = w.device_by_curve(&CurveKey(curve))?;
                // Decrypt with the known device's sessions, or fresh ones for a new device.
                let mut sessions = match known_dev {
                    Some(dev) => self.take_sessions(w, &dev, curve)?,
                    None => PeerSessions::new(curve),
                };
                let result = sessions.decrypt(&mut self.device, env);
                // A known device's sessions go back in the cache whatever happened (vodozemac
                // leaves a session unchanged when decryption fails).
                let sessions = match known_dev {
                    Some(dev) => {
                        self.sessions.insert(dev, sessions);
                        None
                    }
                    None => Some(sessions),
                };
                match result {
                    Ok(d) => (curve, known_dev, sessions, d),
                    Err(e) => {
                        debug!(%peer, error = %e, "cannot decrypt envelope");
                        return Ok(DeliveryResult::Rejected(RejectReason::Undecryptable));
                    }
                }
            }
            None => match self.open_normal(w, peer, env)? {
                Some((dev, curve, d)) => (curve, Some(dev), None, d),
                None => return Ok(DeliveryResult::Rejected(RejectReason::Undecryptable)),
            },
        };
        // From here on the ratchet has moved: its new state must be saved.
        if let Some(dev) = known_dev {
            self.dirty_sessions.insert(dev);
        }
        self.account_dirty |= decrypted.new_session;
        let sealed = match Sealed::decode(&decrypted.plaintext) {
            Ok(s) => s,
            Err(e) => {
                warn!(%peer, error = %e, "malformed sealed message");
                after.push(After::Net(NetCommand::Penalize {
                    peer,
                    reason: "malformed sealed message",
                }));
                return Ok(DeliveryResult::Rejected(RejectReason::Malformed));
            }
        };
        // Bind the session to a device and a person.
        let dev = match known_dev {
            Some(dev) => dev,
            None => {
                let Some(cert) = sealed.sender.clone() else {
                    return Ok(DeliveryResult::Rejected(RejectReason::Malformed));
                };
                if cert.curve25519 != curve || cert.validate().is_err() {
                    after.push(After::Net(NetCommand::Penalize {
                        peer,
                        reason: "sender certificate does not verify",
                    }));
                    return Ok(DeliveryResult::Rejected(RejectReason::Malformed));
                }
                let dev = device_key(&cert.peer_id);
                let existing = w.device(&dev)?;
                if let Some(d) = &existing
                    && d.identity != cert.identity
                {
                    let name = w.contact(&d.identity)?.map(|c| c.name).unwrap_or_default();
                    after.push(After::Event(Event::IdentityWarning {
                        contact: name,
                        detail: "a device presented keys of a different identity".into(),
                    }));
                    return Ok(DeliveryResult::Rejected(RejectReason::Undecryptable));
                }
                let mut d = existing.unwrap_or(KnownDevice {
                    identity: cert.identity,
                    peer_id: cert.peer_id.clone(),
                    cert: None,
                    addrs: Vec::new(),
                    mailboxes: Vec::new(),
                    prekey: None,
                });
                let stranger = w.contact(&cert.identity)?.is_none();
                if stranger
                    && !self.groups.people.contains(&cert.identity)
                    && w.contacts()?.iter().filter(|c| !c.added_by_user).count() >= MAX_STRANGERS
                {
                    warn!("too many people wrote first; refusing a new one");
                    return Ok(DeliveryResult::Rejected(RejectReason::Undecryptable));
                }
                d.cert = Some(cert.clone());
                w.put_device(&dev, &d)?;
                self.member_cert_learned(w, &cert, after)?;
                if stranger {
                    let name = super::groups::stranger_name(w, &cert.identity)?;
                    w.put_contact(&Contact {
                        identity: cert.identity,
                        name: name.clone(),
                        added_ms: now_ms(),
                        added_by_user: false,
                        peer_hint: cert.peer_id.clone(),
                        addr_hints: Vec::new(),
                    })?;
                    after.push(After::Event(Event::NewContact {
                        contact: name,
                        identity: IdentityKey(cert.identity).short(),
                    }));
                }
                if let Some(s) = sessions.take() {
                    self.sessions.insert(dev, s);
                }
                // A group member's device we did not know: it gets our group keys.
                self.group_devices_appeared(w, cert.identity, after)?;
                dev
            }
        };
        self.dirty_sessions.insert(dev);
        let Some(device) = w.device(&dev)? else {
            return Ok(DeliveryResult::Rejected(RejectReason::Malformed));
        };
        let conv = device.identity;
        if self.social.blocked.contains(&conv) {
            // Blocked: dropped without a trace. Answered as a mailbox would ("accepted, not
            // delivered"), so the sender stops retrying and shows ✓ forever, never ✓✓, and
            // a mailbox that relayed it lets go of it.
            return Ok(DeliveryResult::Accepted);
        }
        let relayed = device.peer_id != peer.to_bytes();
        let name = w.contact(&conv)?.map(|c| c.name).unwrap_or_default();
        for body in sealed.bodies {
            match body {
                Body::Text {
                    id,
                    sent_at_ms,
                    text,
                } => {
                    let msg = StoredMessage {
                        id,
                        outgoing: false,
                        text: text.clone(),
                        sent_at_ms,
                        stored_at_ms: now_ms(),
                        status: Status::Delivered,
                    };
                    if relayed {
                        receipts.entry(conv).or_default().push(id);
                    }
                    if w.append_message(&conv, &msg)?.is_some() {
                        after.push(After::Event(Event::Message {
                            contact: name.clone(),
                            id: MessageId(id).to_string(),
                            text,
                            sent_at: sent_at_ms,
                        }));
                    }
                }
                Body::GroupUpdate { ops, devices } => {
                    self.on_group_update(w, conv, ops, devices, peer, after)?;
                }
                Body::GroupKey { group, key, seq } => {
                    self.on_group_key(w, curve, group, &key, seq, after)?;
                }
                Body::GroupWant { group, ops } => {
                    self.on_group_want(w, conv, group, ops, after)?;
                }
                Body::GroupReceipt {
                    group, kind, ids, ..
                } => {
                    self.on_group_receipt(w, conv, group, kind, ids, after)?;
                }
                Body::Receipt { kind, ids, .. } => {
                    let to = match kind {
                        ReceiptKind::Delivered => Status::Delivered,
                        // With read receipts off, none are shown either (as in WhatsApp).
                        ReceiptKind::Read if !self.social.privacy.read_receipts => continue,
                        ReceiptKind::Read => Status::Read,
                    };
                    for id in ids {
                        if let Some(s) = w.raise_status(&conv, id, true, to)? {
                            after.push(After::Event(Event::Status {
                                contact: name.clone(),
                                id: MessageId(id).to_string(),
                                status: s.as_str().into(),
                            }));
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(DeliveryResult::Stored)
    }
}
