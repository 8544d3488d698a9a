//! The user's write commands: contacts, sending, marking read; and, served to others,
//! mailbox registrations, push endpoints and pre-key claims. The rules are the cores':
//! contacts, names, texts and read receipts are `crate::cores::contacts`'s; registrations,
//! push endpoints and claims are `crate::cores::mailbox`'s. This side reads and writes the
//! store and carries out what they decide.

use super::*;

impl State {
    /// A device asks this node (a mailbox) to keep envelopes for it: reads what the mailbox
    /// core's registration rules need, checks the device's `proof` that it holds its
    /// Curve25519 key (`None`: the unproven, refused form), and stores the registration the
    /// core accepts.
    pub(super) fn register(
        &mut self,
        w: &mut WriteTx<'_>,
        peer: PeerId,
        cert: DeviceCert,
        token: Option<String>,
        proof: Option<Vec<u8>>,
        after: &mut Vec<After>,
    ) -> Result<Response, Fatal> {
        // A node that is no mailbox reads nothing (and creates no mailbox tables).
        if !self.mailbox.is_serving() {
            return Ok(Response::Refused(Refusal::Invalid));
        }
        let dev = device_key(&cert.peer_id);
        let known = w.device(&dev)?;
        let curve = cert.curve25519;
        let registered_as = w.mailbox_user(&curve)?;
        let key_registered = registered_as.is_some();
        // A key bound to another device, here or in what this node knows, is never rebound.
        let key_elsewhere =
            registered_as.is_some_and(|d| d != dev) || !w.curve_free_for(&curve, &dev)?;
        let devices = w.mailbox_users_len()?;
        let per_identity = self
            .mailbox
            .config()
            .map_or(0, |c| c.max_devices_per_identity);
        let identity_devices = w.mailbox_identity_devices(&cert.identity, per_identity)?;
        // The proof that the registrant holds the key: an Olm pre-key message to this node
        // that only the key's holder can make (it may use up one of our one-time keys).
        let proof = match proof {
            None => mailbox_core::KeyProof::Missing,
            Some(p) => {
                let binding = kith_proto::wire::registration_binding(
                    &self.device.cert().peer_id,
                    &cert.peer_id,
                    &curve,
                );
                self.account_dirty = true;
                match self.device.check_key_proof(curve, &p, &binding) {
                    true => mailbox_core::KeyProof::Valid,
                    false => mailbox_core::KeyProof::Invalid,
                }
            }
        };
        let verdict = self.mailbox.register(&mailbox_core::Registration {
            peer,
            cert: &cert,
            token: token.as_deref(),
            bound_to: known.as_ref().map(|d| d.identity),
            key_registered,
            key_elsewhere,
            proof,
            devices,
            identity_devices,
        });
        match verdict {
            mailbox_core::Verdict::Accept(()) => {}
            mailbox_core::Verdict::Refuse(r) => {
                if r == Refusal::Busy {
                    warn!("mailbox full: no room for another device (in all or of its identity)");
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
        let cert_identity = cert.identity;
        d.cert = Some(cert);
        w.put_device(&dev, &d)?;
        w.put_mailbox_user(&curve, &dev)?;
        w.put_mailbox_identity(&cert_identity, &dev)?;
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
            Some(cert) => w.mailbox_user(&cert.curve25519)? == Some(dev),
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
        // A new endpoint does not reset the wake-up limit (the mailbox core's rule).
        w.set_push_endpoint(&dev, endpoint.as_deref())?;
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

    /// Adds (or updates) a contact from a code, by the contacts core's rules; dials the
    /// code's device.
    pub(super) fn add_contact(
        &mut self,
        w: &mut WriteTx<'_>,
        code: &str,
        name: &str,
        after: &mut Vec<After>,
    ) -> Outcome<ContactView> {
        let code = match contacts::read_code(code, name, &self.me) {
            Ok(c) => c,
            Err(e) => return Ok(Err(e)),
        };
        let by_name = w.contact_by_name(&code.name)?;
        let dev = device_key(&code.card.peer_id);
        let known = w.device(&dev)?;
        let by_identity = w.contact(&code.card.identity)?;
        let existing = contacts::Existing {
            by_name: by_name.as_ref(),
            device_identity: known.as_ref().map(|d| d.identity),
            by_identity: by_identity.as_ref(),
        };
        if let Err(refused) = contacts::check_add(&code, &existing) {
            let (error, warning) = refused.into_parts();
            after.extend(warning.map(After::Event));
            return Ok(Err(error));
        }
        w.put_contact(&contacts::added_contact(&code, now_ms()))?;
        let mut device = known.unwrap_or(KnownDevice {
            identity: code.card.identity,
            peer_id: code.card.peer_id.clone(),
            cert: None,
            addrs: Vec::new(),
            mailboxes: Vec::new(),
            prekey: None,
        });
        contacts::merge_addrs(&mut device.addrs, &code.card.addrs);
        w.put_device(&dev, &device)?;
        if self.connected.contains(&code.peer) {
            // Already connected (they added us first): presence starts now, not at the next
            // connection.
            after.push(After::Greet(code.peer));
        }
        after.push(After::Net(NetCommand::Dial {
            peer: code.peer,
            addrs: decode_addrs(&device.addrs),
        }));
        Ok(Ok(ContactView::new(
            code.name,
            code.card.identity.short(),
            true,
        )))
    }

    /// Removes a contact and what goes with it (the contacts core's [`contacts::devices_to_drop`]).
    pub(super) fn remove_contact(
        &mut self,
        w: &mut WriteTx<'_>,
        name: &str,
    ) -> Outcome<ContactView> {
        let Some(c) = w.contact_by_name(name)? else {
            return Ok(Err(EngineError::UnknownContact(name.to_string())));
        };
        for dev in contacts::devices_to_drop(&c.identity, &w.devices()?) {
            w.remove_device(&dev)?;
            self.sessions.remove(&dev);
            self.dirty_sessions.remove(&dev);
            self.delivery.forget(&dev);
        }
        w.remove_contact(&c.identity)?;
        self.social.forget(&c.identity);
        Ok(Ok(ContactView::new(
            c.name,
            c.identity.short(),
            c.added_by_user,
        )))
    }

    /// Sends a text to a contact: stores it as pending and queues it for their devices.
    pub(super) fn send(
        &mut self,
        w: &mut WriteTx<'_>,
        to: &str,
        text: String,
        after: &mut Vec<After>,
    ) -> Outcome<Sent> {
        if let Err(e) = contacts::check_text(&text) {
            return Ok(Err(e));
        }
        let Some(c) = w.contact_by_name(to)? else {
            return Ok(Err(EngineError::UnknownContact(to.to_string())));
        };
        if self.social.blocked.contains(&c.identity) {
            return Ok(Err(EngineError::Blocked(c.name)));
        }
        let id = self.ids.next_id();
        let (msg, body) = contacts::outgoing_text(id.0, text, now_ms());
        w.append_message(&c.identity, &msg)?;
        self.chat_stored(
            w,
            ChatRef::Contact(c.identity),
            id.0,
            msg.stored_at_ms,
            None,
        )?;
        self.enqueue(w, &c.identity, &body, vec![id.0], after)?;
        self.sent_transcript(w, c.identity, id.0, msg.sent_at_ms, &msg.text, after)?;
        Ok(Ok(Sent { id: id.to_string() }))
    }

    /// Marks a contact's incoming messages read and queues the read receipts the contacts
    /// core allows.
    pub(super) fn mark_read(
        &mut self,
        w: &mut WriteTx<'_>,
        with: &str,
        after: &mut Vec<After>,
    ) -> Outcome<usize> {
        let Some(c) = w.contact_by_name(with)? else {
            return Ok(Err(EngineError::UnknownContact(with.to_string())));
        };
        let history = w.history(&c.identity, contacts::READ_SCAN)?;
        let unread = contacts::unread(history.iter().map(|(_, m)| m));
        for id in &unread {
            w.raise_status(&c.identity, *id, false, Status::Read)?;
        }
        let receipts = contacts::read_receipts(
            &unread,
            self.social.privacy.read_receipts,
            self.social.blocked.contains(&c.identity),
            now_ms(),
        );
        for body in &receipts {
            self.enqueue(w, &c.identity, body, Vec::new(), after)?;
        }
        self.read_elsewhere(w, c.identity, &unread, after)?;
        Ok(Ok(unread.len()))
    }
}
