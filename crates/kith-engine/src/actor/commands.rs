//! The user's write commands: contacts, sending, marking read; and, served to others,
//! mailbox registrations, push endpoints and pre-key claims (their rules are the mailbox
//! core's, `crate::cores::mailbox`; this side reads and writes the store).

use super::*;

impl State {
    /// A device asks this node (a mailbox) to keep envelopes for it: reads what the mailbox
    /// core's registration rules need, and stores the registration it accepts.
    pub(super) fn register(
        &mut self,
        w: &mut WriteTx<'_>,
        peer: PeerId,
        cert: DeviceCert,
        token: Option<String>,
        after: &mut Vec<After>,
    ) -> Result<Response, Fatal> {
        // A node that is no mailbox reads nothing (and creates no mailbox tables).
        if !self.mailbox.is_serving() {
            return Ok(Response::Refused(Refusal::Invalid));
        }
        let dev = device_key(&cert.peer_id);
        let known = w.device(&dev)?;
        let curve = cert.curve25519;
        let key_registered = w.mailbox_user(&CurveKey(curve))?.is_some();
        let devices = w.mailbox_users_len()?;
        let verdict = self.mailbox.register(&mailbox_core::Registration {
            peer,
            cert: &cert,
            token: token.as_deref(),
            bound_to: known.as_ref().map(|d| d.identity),
            key_registered,
            devices,
        });
        match verdict {
            mailbox_core::Verdict::Accept(()) => {}
            mailbox_core::Verdict::Refuse(r) => {
                if r == Refusal::Busy {
                    warn!("mailbox full: no room for another device");
                }
                return Ok(Response::Refused(r));
            }
            mailbox_core::Verdict::Penalize(r, reason) => {
                after.push(After::Net(NetCommand::Penalize { peer, reason }));
                return Ok(Response::Refused(r));
            }
        }
        let mut d = known.unwrap_or(KnownDevice {
            identity: cert.identity,
            peer_id: cert.peer_id.clone(),
            cert: None,
            addrs: Vec::new(),
            mailboxes: Vec::new(),
            prekey: None,
        });
        d.cert = Some(cert);
        w.put_device(&dev, &d)?;
        w.put_mailbox_user(&CurveKey(curve), &dev)?;
        // Hand over whatever is waiting for it (now that it registered on this connection).
        self.delivery.reachable(&dev);
        after.push(After::Pump(dev));
        Ok(self.mailbox.registration_answer(mailbox_core::Kept {
            messages: w.outbox_len(&dev)?,
            bytes: w.mailbox_bytes(&dev)?,
        }))
    }

    /// A device registered here sets (or clears) the endpoint its wake-ups go to.
    pub(super) fn set_push(
        &mut self,
        w: &mut WriteTx<'_>,
        peer: PeerId,
        endpoint: Option<String>,
    ) -> Result<Response, Fatal> {
        if !self.mailbox.is_serving() {
            return Ok(Response::Refused(Refusal::Invalid));
        }
        // The connection's device, registered here under the key its certificate names.
        let dev = device_key(&peer.to_bytes());
        let registered = match w.device(&dev)?.and_then(|d| d.cert) {
            Some(cert) => w.mailbox_user(&CurveKey(cert.curve25519))? == Some(dev),
            None => false,
        };
        match self.mailbox.push_verdict(registered, endpoint.as_deref()) {
            mailbox_core::PushVerdict::Set => {}
            mailbox_core::PushVerdict::Refuse(r) => return Ok(Response::Refused(r)),
            mailbox_core::PushVerdict::BadEndpoint(e) => {
                let host = endpoint.as_deref().map(log_host).unwrap_or_default();
                debug!(%peer, %host, error = %e, "refused a push endpoint");
                return Ok(Response::Refused(Refusal::EndpointRefused));
            }
        }
        w.set_push_endpoint(&dev, endpoint.as_deref())?;
        self.mailbox.push_set(&dev);
        Ok(Response::PushSet)
    }

    /// A peer claims one of our pre-keys: a one-time key while it stays within the mailbox
    /// core's claim limit, else the fallback key.
    pub(super) fn claim(&mut self, peer: PeerId) -> kith_proto::record::PrekeyBundle {
        let fallback_only = !self.mailbox.may_claim_one_time_key(peer, Instant::now());
        let bundle = self.device.claim_prekey(fallback_only);
        if !bundle.is_fallback {
            self.account_dirty = true;
        }
        bundle
    }

    pub(super) fn add_contact(
        &mut self,
        w: &mut WriteTx<'_>,
        code: &str,
        name: &str,
        after: &mut Vec<After>,
    ) -> Outcome<ContactView> {
        let card = match ContactCard::from_code(code) {
            Ok(c) => c,
            Err(e) => return Ok(Err(EngineError::BadCode(e.to_string()))),
        };
        if card.identity == self.me.0 {
            return Ok(Err(EngineError::OwnCode));
        }
        let name = match valid_name(name) {
            Ok(n) => n,
            Err(e) => return Ok(Err(e)),
        };
        if PeerId::from_bytes(&card.peer_id).is_err() {
            return Ok(Err(EngineError::BadCode("bad peer id".into())));
        }
        if let Some(existing) = w.contact_by_name(&name)?
            && existing.identity != card.identity
        {
            after.push(After::Event(Event::IdentityWarning {
                contact: name.clone(),
                detail: "a new contact code for this name has a different identity key".into(),
            }));
            return Ok(Err(EngineError::IdentityChanged(name)));
        }
        let dev = device_key(&card.peer_id);
        let existing_dev = w.device(&dev)?;
        if let Some(d) = &existing_dev
            && d.identity != card.identity
        {
            return Ok(Err(EngineError::BadCode(
                "that device belongs to another identity".into(),
            )));
        }
        if let Some(other) = w.contact(&card.identity)?
            && other.name != name
            && other.added_by_user
        {
            return Ok(Err(EngineError::AlreadyContact(other.name)));
        }
        let contact = Contact {
            identity: card.identity,
            name: name.clone(),
            added_ms: now_ms(),
            added_by_user: true,
            peer_hint: card.peer_id.clone(),
            addr_hints: card.addrs.clone(),
        };
        w.put_contact(&contact)?;
        let mut device = existing_dev.unwrap_or(KnownDevice {
            identity: card.identity,
            peer_id: card.peer_id.clone(),
            cert: None,
            addrs: Vec::new(),
            mailboxes: Vec::new(),
            prekey: None,
        });
        for a in card.addrs.iter().rev() {
            if !device.addrs.contains(a) {
                device.addrs.insert(0, a.clone());
            }
        }
        device.addrs.truncate(MAX_DEVICE_ADDRS);
        w.put_device(&dev, &device)?;
        if let Ok(peer) = PeerId::from_bytes(&card.peer_id) {
            if self.connected.contains(&peer) {
                // Already connected (they added us first): presence starts now, not at the
                // next connection.
                after.push(After::Greet(peer));
            }
            after.push(After::Net(NetCommand::Dial {
                peer,
                addrs: decode_addrs(&device.addrs),
            }));
        }
        Ok(Ok(ContactView::new(
            name,
            IdentityKey(card.identity).short(),
            true,
        )))
    }

    pub(super) fn remove_contact(
        &mut self,
        w: &mut WriteTx<'_>,
        name: &str,
    ) -> Outcome<ContactView> {
        let Some(c) = w.contact_by_name(name)? else {
            return Ok(Err(EngineError::UnknownContact(name.to_string())));
        };
        for d in w
            .devices()?
            .into_iter()
            .filter(|d| d.identity == c.identity)
        {
            let dev = device_key(&d.peer_id);
            w.remove_device(&dev)?;
            self.sessions.remove(&dev);
            self.dirty_sessions.remove(&dev);
            self.delivery.forget(&dev);
        }
        w.remove_contact(&c.identity)?;
        self.social.forget(&c.identity);
        Ok(Ok(ContactView::new(
            c.name,
            IdentityKey(c.identity).short(),
            c.added_by_user,
        )))
    }

    pub(super) fn send(
        &mut self,
        w: &mut WriteTx<'_>,
        to: &str,
        text: String,
        after: &mut Vec<After>,
    ) -> Outcome<Sent> {
        if text.is_empty() || text.len() > MAX_TEXT {
            return Ok(Err(EngineError::BadText { max: MAX_TEXT }));
        }
        let Some(c) = w.contact_by_name(to)? else {
            return Ok(Err(EngineError::UnknownContact(to.to_string())));
        };
        if self.social.blocked.contains(&c.identity) {
            return Ok(Err(EngineError::Blocked(c.name)));
        }
        let id = self.ids.next_id();
        let now = now_ms();
        let msg = StoredMessage {
            id: id.0,
            outgoing: true,
            text: text.clone(),
            sent_at_ms: now,
            stored_at_ms: now,
            status: Status::Pending,
        };
        w.append_message(&c.identity, &msg)?;
        let body = Body::Text {
            id: id.0,
            sent_at_ms: now,
            text,
        };
        self.enqueue(w, &c.identity, &body, vec![id.0], after)?;
        Ok(Ok(Sent { id: id.to_string() }))
    }

    pub(super) fn mark_read(
        &mut self,
        w: &mut WriteTx<'_>,
        with: &str,
        after: &mut Vec<After>,
    ) -> Outcome<usize> {
        let Some(c) = w.contact_by_name(with)? else {
            return Ok(Err(EngineError::UnknownContact(with.to_string())));
        };
        let unread: Vec<u128> = w
            .history(&c.identity, 10_000)?
            .into_iter()
            .filter(|(_, m)| !m.outgoing && m.status < Status::Read)
            .map(|(_, m)| m.id)
            .collect();
        for id in &unread {
            w.raise_status(&c.identity, *id, false, Status::Read)?;
        }
        // Read receipts off (or the contact blocked): nothing goes back.
        if !self.social.privacy.read_receipts || self.social.blocked.contains(&c.identity) {
            return Ok(Ok(unread.len()));
        }
        for chunk in unread.chunks(MAX_RECEIPT_IDS) {
            let body = Body::Receipt {
                kind: ReceiptKind::Read,
                ids: chunk.to_vec(),
                at_ms: now_ms(),
            };
            self.enqueue(w, &c.identity, &body, Vec::new(), after)?;
        }
        Ok(Ok(unread.len()))
    }
}
