//! Opening envelopes from peers: dedupe by hash, decrypt, bind new devices, store.

use super::*;

impl State {
    /// Opens, stores and acknowledges a batch of envelopes from `peer`.
    pub(super) fn receive(
        &mut self,
        w: &mut WriteTx<'_>,
        peer: PeerId,
        envelopes: Vec<Envelope>,
        after: &mut Vec<After>,
    ) -> Result<Vec<DeliveryResult>, StoreError> {
        let mut results = Vec::with_capacity(envelopes.len());
        let my_curve = self.device.curve_key();
        for env in envelopes {
            if env.to_device != my_curve {
                after.push(After::Net(NetCommand::Penalize {
                    peer,
                    reason: "envelope for another device",
                }));
                results.push(DeliveryResult::Rejected(RejectReason::WrongDevice));
                continue;
            }
            let hash = envelope_hash(&env);
            if w.seen(&hash)? {
                results.push(DeliveryResult::Duplicate);
                continue;
            }
            let r = self.open(w, peer, &env, after)?;
            if matches!(r, DeliveryResult::Stored) {
                w.mark_seen(&hash, now_ms())?;
            }
            results.push(r);
        }
        Ok(results)
    }

    pub(super) fn open(
        &mut self,
        w: &mut WriteTx<'_>,
        peer: PeerId,
        env: &Envelope,
        after: &mut Vec<After>,
    ) -> Result<DeliveryResult, StoreError> {
        // Which device sent it: a pre-key message names its Curve25519 key; otherwise the
        // connection's peer id tells.
        let (curve, known_dev) = match PeerSessions::prekey_sender(env) {
            Some(curve) => (curve, w.device_by_curve(&curve)?),
            None => {
                let dev = device_key(&peer.to_bytes());
                match w.device(&dev)?.and_then(|d| d.cert) {
                    Some(cert) => (cert.curve25519, Some(dev)),
                    None => return Ok(DeliveryResult::Rejected(RejectReason::Undecryptable)),
                }
            }
        };
        // Decrypt with the known device's sessions, or fresh ones for a new device.
        let mut sessions = match known_dev {
            Some(dev) => self.take_sessions(w, &dev, curve)?,
            None => PeerSessions::new(curve),
        };
        let result = sessions.decrypt(&mut self.device, env);
        // A known device's sessions go back in the cache whatever happened (vodozemac leaves
        // a session unchanged when decryption fails).
        let mut sessions = match known_dev {
            Some(dev) => {
                self.sessions.insert(dev, sessions);
                None
            }
            None => Some(sessions),
        };
        let decrypted = match result {
            Ok(d) => d,
            Err(e) => {
                debug!(%peer, error = %e, "cannot decrypt envelope");
                return Ok(DeliveryResult::Rejected(RejectReason::Undecryptable));
            }
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
                });
                let stranger = w.contact(&cert.identity)?.is_none();
                if stranger
                    && w.contacts()?.iter().filter(|c| !c.added_by_user).count() >= MAX_STRANGERS
                {
                    warn!("too many people wrote first; refusing a new one");
                    return Ok(DeliveryResult::Rejected(RejectReason::Undecryptable));
                }
                d.cert = Some(cert.clone());
                w.put_device(&dev, &d)?;
                if stranger {
                    let short = IdentityKey(cert.identity).short();
                    let mut name = format!("~{short}");
                    let mut n = 1;
                    while w.contact_by_name(&name)?.is_some() {
                        n += 1;
                        name = format!("~{short}-{n}");
                    }
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
                        identity: short,
                    }));
                }
                if let Some(s) = sessions.take() {
                    self.sessions.insert(dev, s);
                }
                dev
            }
        };
        self.dirty_sessions.insert(dev);
        let Some(device) = w.device(&dev)? else {
            return Ok(DeliveryResult::Rejected(RejectReason::Malformed));
        };
        let conv = device.identity;
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
                    if w.append_message(&conv, &msg)?.is_some() {
                        after.push(After::Event(Event::Message {
                            contact: name.clone(),
                            id: MessageId(id).to_string(),
                            text,
                            sent_at: sent_at_ms,
                        }));
                    }
                }
                Body::Receipt { kind, ids, .. } => {
                    let to = match kind {
                        ReceiptKind::Delivered => Status::Delivered,
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
