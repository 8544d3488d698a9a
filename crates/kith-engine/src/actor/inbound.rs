//! Opening envelopes from peers, as the inbound core (`crate::cores::inbound`) decides; this
//! file does the I/O around its rules: the store's reads and writes and the Olm decryption.
//! As a mailbox, it also keeps envelopes for registered devices (as the mailbox core decides).
//!
//! Data flow for one batch (`State::receive`):
//!
//! 1. Per envelope, in request order: read whether its hash was seen; the core routes it
//!    (`inbound::route`): `Duplicate`, a deposit (`State::deposit`) or one to open.
//! 2. `State::open`: open the outer seal (`kith_crypto::seal`), then decrypt with Olm (a
//!    pre-key message with its device's sessions or fresh ones; a normal one with the
//!    connection's device, then the others we have sessions with, `State::open_normal`),
//!    mark the ratchet dirty, decode (`inbound::unseal`).
//! 3. For a device not known yet (`State::bind_new`): the core checks the certificate,
//!    the store is read for the device, the contact and the number of strangers, the core
//!    decides the binding, and the device (and a stranger's provisional contact) is written.
//! 4. The core plans the bodies (`inbound::deliver`); each step is carried out here (texts
//!    appended, statuses raised, group bodies handed to the group rules).
//! 5. The core's `Batch` records each answer and says which hashes to mark seen; at the end
//!    the delivered receipts it collected for relayed texts are queued.

use kith_proto::chat::ChatAction;

use super::*;
use crate::cores::inbound::{
    self as inbound_core, Batch, Binding, NewDevice, Route, Step, Verdict,
};

/// A normal envelope opened: the sending device's key, its Curve25519 key, the plaintext.
type Found = (DeviceKey, CurveKey, kith_crypto::Decrypted);

impl State {
    /// Counts a batch's answers for the operator: envelopes kept for others, and refusals
    /// by reason.
    fn count_answers(&self, results: &[DeliveryResult], kept: usize) {
        self.metrics.deposits.inc_by(kept as u64);
        for r in results {
            if let DeliveryResult::Rejected(why) = r {
                let reason = match why {
                    RejectReason::WrongDevice => "wrong_device",
                    RejectReason::Undecryptable => "undecryptable",
                    RejectReason::Malformed => "malformed",
                    RejectReason::MailboxFull => "mailbox_full",
                    _ => "other",
                };
                self.metrics
                    .refused
                    .get_or_create(&kith_net::metrics::Reason { reason })
                    .inc();
            }
        }
    }

    /// Opens, stores and acknowledges a batch of envelopes from `peer`.
    pub(super) fn receive(
        &mut self,
        w: &mut WriteTx<'_>,
        peer: PeerId,
        envelopes: Vec<Envelope>,
        after: &mut Vec<After>,
    ) -> Result<Vec<DeliveryResult>, Fatal> {
        let mut batch = Batch::new(envelopes.len());
        let my_curve = self.device.curve_key();
        let mut trials = 0;
        let mut memo = DepositMemo::default();
        for env in envelopes {
            let hash = envelope_hash(&env);
            let route = inbound_core::route(w.seen(&hash)?, &env.to_device, &my_curve);
            let r = match route {
                Route::Duplicate => DeliveryResult::Duplicate,
                Route::Deposit => self.deposit(w, peer, env, &mut memo, after)?,
                Route::Open => self.open(w, peer, &env, &mut batch, &mut trials, after)?,
            };
            if batch.answer(route, r) {
                w.mark_seen(&hash, now_ms())?;
            }
        }
        let answered = batch.finish(now_ms());
        self.count_answers(&answered.results, answered.kept);
        if answered.kept > 0 {
            // The depositing peer is a throwaway identity for well-behaved senders.
            debug!(from = %peer, kept = answered.kept, "mailbox deposit");
        }
        if answered.known_sender {
            after.push(After::Net(NetCommand::Vouch { peer }));
        }
        // Messages a mailbox relayed: tell their senders they are delivered (✓✓).
        for (conv, body) in answered.receipts {
            self.enqueue(w, &conv, &body, Vec::new(), after)?;
        }
        Ok(answered.results)
    }

    /// Keeps an envelope for a device registered with this node's mailbox, if the mailbox
    /// core accepts it; it goes out through that device's outbox, with the same retries, and
    /// leaves the store only when the device acknowledges it. `memo` carries what earlier
    /// envelopes of the same batch looked up.
    fn deposit(
        &mut self,
        w: &mut WriteTx<'_>,
        peer: PeerId,
        env: Envelope,
        memo: &mut DepositMemo,
        after: &mut Vec<After>,
    ) -> Result<DeliveryResult, Fatal> {
        // The device registered here under the envelope's key (looked up once per batch),
        // and what is kept for it (the store's counters, cached by the transaction).
        let curve = env.to_device;
        let registered = match memo.get(&curve) {
            Some(m) => m.dev,
            None => {
                let dev = match self.mailbox.is_serving() {
                    true => w.mailbox_user(&curve)?,
                    false => None,
                };
                memo.put(curve, dev);
                dev
            }
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
                conversation: kith_store::NO_CONVERSATION,
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
        // Decided once per device and batch: nothing it depends on changes within one, and
        // a wake-up sent makes the next one wait `WAKE_EVERY` anyway.
        let now = Instant::now();
        if !memo.wake_decided(&curve) && self.mailbox.wake_due(&dev, now) {
            memo.decide_wake(&curve);
            // The endpoint first: most devices give none, and then their record is not read.
            if let Some(url) = w.push_endpoint(&dev)? {
                let away = w.device(&dev)?.is_some_and(|d| {
                    !PeerId::from_bytes(&d.peer_id).is_ok_and(|p| self.connected.contains(&p))
                });
                if self.mailbox.wake(dev, true, away, now) {
                    after.push(After::Wake(url));
                }
            }
        }
        Ok(DeliveryResult::Accepted)
    }

    /// Finds which known device a normal (not pre-key) envelope is from: the device the
    /// index names for its ratchet key (one lookup, [`WriteTx::device_by_ratchet`]), then the
    /// device whose key the seal names (`hint`: the first envelope of a new ratchet chain, a
    /// mailbox relayed), then the connection's peer. Only an envelope without a hint (sealed
    /// by an older node, or not sealed) is then tried against the devices we have sessions
    /// with, at most [`MAX_TRIAL`] per envelope and [`MAX_TRIAL_PER_BATCH`] per batch
    /// (`trials`). Returns the device and the decrypted message.
    fn open_normal(
        &mut self,
        w: &WriteTx<'_>,
        peer: PeerId,
        env: &Envelope,
        hint: Option<CurveKey>,
        trials: &mut usize,
    ) -> Result<Option<Found>, Fatal> {
        let first = device_key(&peer.to_bytes());
        let indexed = match PeerSessions::ratchet_key(env) {
            Some(r) => w.device_by_ratchet(&r)?,
            None => None,
        };
        let hinted = match &hint {
            Some(curve) => w.device_by_curve(curve)?,
            None => None,
        };
        let mut tried = Vec::with_capacity(3);
        // The common cases: a known chain, the sender the seal names, the connection's device.
        for dev in [indexed, hinted, Some(first)].into_iter().flatten() {
            if tried.contains(&dev) {
                continue;
            }
            tried.push(dev);
            if let Some(opened) = self.try_open(w, dev, env)? {
                return Ok(Some(opened));
            }
        }
        if hint.is_some() {
            // The sender named itself and its sessions did not open it: no one else's will.
            return Ok(None);
        }
        let budget = MAX_TRIAL.min(MAX_TRIAL_PER_BATCH.saturating_sub(*trials));
        for dev in w.session_devices(budget)? {
            if !tried.contains(&dev) {
                *trials += 1;
                if let Some(opened) = self.try_open(w, dev, env)? {
                    return Ok(Some(opened));
                }
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
    ) -> Result<Option<Found>, Fatal> {
        let Some(curve) = w.device(&dev)?.and_then(|d| d.cert).map(|c| c.curve25519) else {
            return Ok(None);
        };
        let mut s = self.take_sessions(w, &dev, curve)?;
        let r = s.decrypt(&mut self.device, env);
        self.sessions.insert(dev, s);
        Ok(r.ok().map(|d| (dev, curve, d)))
    }

    /// Opens one envelope addressed to this device and carries out what the inbound core
    /// plans for it.
    fn open(
        &mut self,
        w: &mut WriteTx<'_>,
        peer: PeerId,
        env: &Envelope,
        batch: &mut Batch,
        trials: &mut usize,
        after: &mut Vec<After>,
    ) -> Result<DeliveryResult, Fatal> {
        // The outer seal first (what current nodes send); bare Olm envelopes (kinds 0 and
        // 1, from older nodes or kept from before the seal) are read as they are.
        let unsealed;
        let mut hint = None;
        let env = if env.kind == kith_crypto::SEALED_KIND {
            match self.device.open_seal(env) {
                Ok(inner) => {
                    hint = inner.sender;
                    unsealed = inner.envelope;
                    &unsealed
                }
                Err(e) => {
                    debug!(%peer, error = %e, "cannot open sealed envelope");
                    return Ok(inbound_core::not_opened());
                }
            }
        } else {
            env
        };
        // Which device sent it: a pre-key message names its Curve25519 key; a normal one is
        // tried against the connection's device, then (relayed by a mailbox) the others.
        let (curve, known_dev, sessions, decrypted) = match PeerSessions::prekey_sender(env) {
            Some(curve) => {
                let known_dev = w.device_by_curve(&curve)?;
                // Decrypt with the known device's sessions, or fresh ones for a new device.
                let mut sessions = match known_dev {
                    Some(dev) => self.take_sessions(w, &dev, curve)?,
                    None => PeerSessions::new(curve),
                };
                // A new session from a fallback key: not one opened before (a replay).
                let fallback = match self.admit_prekey(w, &sessions, env)? {
                    Ok(f) => f,
                    Err(answer) => {
                        if let Some(dev) = known_dev {
                            self.sessions.insert(dev, sessions);
                        }
                        return Ok(answer);
                    }
                };
                let result = sessions.decrypt(&mut self.device, env);
                if let (Ok(d), Some((id, key))) = (&result, fallback)
                    && d.new_session
                {
                    w.mark_prekey_session(&id, &key)?;
                }
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
                        return Ok(inbound_core::not_opened());
                    }
                }
            }
            None => match self.open_normal(w, peer, env, hint, trials)? {
                Some((dev, curve, d)) => (curve, Some(dev), None, d),
                None => return Ok(inbound_core::not_opened()),
            },
        };
        // From here on the ratchet has moved: its new state must be saved.
        if let Some(dev) = known_dev {
            self.dirty_sessions.insert(dev);
        }
        self.account_dirty |= decrypted.new_session;
        let (verdict, error) = inbound_core::unseal(&decrypted.plaintext);
        if let Some(e) = error {
            warn!(%peer, error = %e, "malformed sealed message");
        }
        let blamed = self.blame(w, peer, known_dev)?;
        let sealed = match carry_verdict(blamed, verdict, after) {
            Ok(s) => s,
            Err(r) => return Ok(r),
        };
        // Bind the session to a device and a person.
        let dev = match known_dev {
            Some(dev) => dev,
            None => match self.bind_new(w, peer, curve, sealed.sender.as_ref(), sessions, after)? {
                Ok(dev) => dev,
                Err(r) => return Ok(r),
            },
        };
        self.dirty_sessions.insert(dev);
        // Its next envelopes under the same ratchet key find this device in one lookup.
        if let Some(r) = PeerSessions::ratchet_key(env) {
            w.set_ratchet(&dev, &r)?;
        }
        let Some(device) = w.device(&dev)? else {
            return Ok(DeliveryResult::Rejected(RejectReason::Malformed));
        };
        let conv = device.identity;
        // One of this person's other devices: only what devices tell each other counts.
        if conv == self.me {
            for body in sealed.bodies {
                match body {
                    Body::Devices(sync) => self.on_own_sync(w, dev, sync, after)?,
                    // Groups are on all of this user's devices: ops, sender keys and
                    // requests for ops go between them as between members.
                    Body::GroupUpdate { ops, devices } => {
                        self.on_group_update(w, conv, ops, devices, peer, after)?;
                    }
                    Body::GroupKey { group, key, seq } => {
                        self.on_group_key(w, curve, group, &key, seq, after)?;
                    }
                    Body::GroupWant { group, ops } => {
                        self.on_group_want(w, conv, group, ops, after)?;
                    }
                    _ => {}
                }
            }
            return Ok(DeliveryResult::Stored);
        }
        // A contact's current record (their devices): learned here, not by the core.
        let mut sealed = sealed;
        let blocked = self.social.blocked.contains(&conv);
        let mut records = Vec::new();
        sealed.bodies.retain(|b| match b {
            Body::Devices(kith_proto::link::DeviceSync::Record(r)) => {
                records.push(r.clone());
                false
            }
            Body::Devices(_) => false,
            _ => true,
        });
        if !records.is_empty() && !blocked {
            let name = w.contact(&conv)?.map(|c| c.name).unwrap_or_default();
            for r in records {
                self.on_contact_record(w, conv, &name, &r, after)?;
            }
        }
        if sealed.bodies.is_empty() {
            return Ok(DeliveryResult::Stored);
        }
        let from = inbound_core::Sender {
            identity: conv,
            blocked: self.social.blocked.contains(&conv),
            relayed: device.peer_id != peer.to_bytes(),
        };
        // A device of someone the user knows, on its own connection: the network layer
        // gives it a known peer's request rate (a burst to a contact is not refused as busy).
        if !from.relayed
            && !from.blocked
            && (self.groups.people.contains(&conv)
                || w.contact(&conv)?.is_some_and(|c| c.added_by_user))
        {
            batch.known_sender();
        }
        let read_receipts = self.social.privacy.read_receipts;
        let opened = inbound_core::deliver(sealed.bodies, from, read_receipts, batch);
        let answer = opened.answer();
        if let inbound_core::Opened::Deliver(steps) = opened {
            let name = w.contact(&conv)?.map(|c| c.name).unwrap_or_default();
            for step in steps {
                self.carry_out(w, peer, conv, curve, &name, step, after)?;
            }
        }
        Ok(answer)
    }

    /// Who pays for a bad envelope (issue 14, hole 7): the connection's peer for one it
    /// delivered itself; for one a mailbox of ours relayed, the author's device when it is
    /// known (`author`), and never the mailbox, which cannot open what it keeps.
    fn blame(
        &self,
        w: &WriteTx<'_>,
        peer: PeerId,
        author: Option<DeviceKey>,
    ) -> Result<Option<PeerId>, Fatal> {
        let connection = peer.to_bytes();
        if !self.my_mailboxes.iter().any(|m| m.peer_id == connection) {
            return Ok(Some(peer));
        }
        let Some(dev) = author else {
            return Ok(None);
        };
        Ok(w.device(&dev)?
            .and_then(|d| PeerId::from_bytes(&d.peer_id).ok())
            .filter(|p| *p != peer))
    }

    /// Binds a device not known yet, as the inbound core decides: returns its key, or the
    /// answer to the envelope when it is refused.
    fn bind_new(
        &mut self,
        w: &mut WriteTx<'_>,
        peer: PeerId,
        curve: CurveKey,
        cert: Option<&DeviceCert>,
        sessions: Option<PeerSessions>,
        after: &mut Vec<After>,
    ) -> Result<Result<DeviceKey, DeliveryResult>, Fatal> {
        // A new device is known by nothing but the certificate being checked: for one a
        // mailbox of ours relayed, nobody can be blamed.
        let blamed = self.blame(w, peer, None)?;
        let cert = match carry_verdict(blamed, inbound_core::check_cert(cert, &curve), after) {
            Ok(cert) => cert.clone(),
            Err(r) => return Ok(Err(r)),
        };
        let dev = device_key(&cert.peer_id);
        // This person's own devices are bound at link time only; removed devices (ours or a
        // contact's) never again.
        if cert.identity == self.me || self.revoked_device(w, &cert.identity, &cert.peer_id)? {
            return Ok(Err(DeliveryResult::Rejected(RejectReason::Undecryptable)));
        }
        // A key bound to another device is never rebound (issue 14, hole 2).
        if !w.curve_free_for(&curve, &dev)? {
            return Ok(Err(DeliveryResult::Rejected(RejectReason::Undecryptable)));
        }
        let existing = w.device(&dev)?;
        let known_as = existing.as_ref().map(|d| d.identity);
        let contact = w.contact(&cert.identity)?.is_some();
        let in_group = self.groups.people.contains(&cert.identity);
        let strangers = match inbound_core::counts_strangers(contact, in_group) {
            true => w.contacts()?.iter().filter(|c| !c.added_by_user).count(),
            false => 0,
        };
        let binding = inbound_core::bind(NewDevice {
            identity: cert.identity,
            known_as,
            contact,
            in_group,
            strangers,
        });
        let stranger = match binding {
            Binding::Bind { stranger } => stranger,
            Binding::IdentityChanged => {
                let name = match known_as {
                    Some(known) => w.contact(&known)?.map(|c| c.name).unwrap_or_default(),
                    None => String::new(),
                };
                after.push(After::Event(Event::IdentityWarning {
                    contact: name,
                    detail: "a device presented keys of a different identity".into(),
                }));
                return Ok(Err(DeliveryResult::Rejected(RejectReason::Undecryptable)));
            }
            Binding::TooManyStrangers => {
                warn!("too many people wrote first; refusing a new one");
                return Ok(Err(DeliveryResult::Rejected(RejectReason::Undecryptable)));
            }
        };
        let mut d = existing.unwrap_or(KnownDevice {
            identity: cert.identity,
            peer_id: cert.peer_id.clone(),
            cert: None,
            addrs: Vec::new(),
            mailboxes: Vec::new(),
            prekey: None,
        });
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
                identity: cert.identity.short(),
            }));
        }
        if let Some(s) = sessions {
            self.sessions.insert(dev, s);
        }
        // A group member's device we did not know: it gets our group keys.
        self.group_devices_appeared(w, cert.identity, after)?;
        Ok(Ok(dev))
    }

    /// Carries out one step the inbound core planned for an envelope from `conv` (the
    /// contact `name`), whose device has the Curve25519 key `curve`.
    #[allow(clippy::too_many_arguments)]
    fn carry_out(
        &mut self,
        w: &mut WriteTx<'_>,
        peer: PeerId,
        conv: IdentityKey,
        curve: CurveKey,
        name: &str,
        step: Step,
        after: &mut Vec<After>,
    ) -> Result<(), Fatal> {
        match step {
            Step::Text {
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
                    self.chat_stored(w, ChatRef::Contact(conv), id, msg.stored_at_ms, None)?;
                    after.push(After::Event(Event::Message {
                        contact: name.to_owned(),
                        id: MessageId(id).to_string(),
                        text,
                        sent_at: sent_at_ms,
                    }));
                }
            }
            Step::Media {
                id,
                sent_at_ms,
                manifest,
                caption,
            } => {
                // Fetched from the sender's device (the envelope may have come through a
                // mailbox: `peer` is then the mailbox), then from our mailboxes.
                let sender = match w.device_by_curve(&curve)? {
                    Some(dev) => w
                        .device(&dev)?
                        .and_then(|d| PeerId::from_bytes(&d.peer_id).ok()),
                    None => None,
                };
                self.receive_file(
                    w,
                    sender.unwrap_or(peer),
                    conv,
                    name,
                    id,
                    sent_at_ms,
                    *manifest,
                    caption,
                    after,
                )?;
            }
            Step::Status { ids, status } => {
                for id in ids {
                    if let Some(s) = w.raise_status(&conv, id, true, status)? {
                        after.push(After::Event(Event::Status {
                            contact: name.to_owned(),
                            id: MessageId(id).to_string(),
                            status: s.as_str().into(),
                        }));
                    }
                }
            }
            Step::GroupUpdate { ops, devices } => {
                self.on_group_update(w, conv, ops, devices, peer, after)?;
            }
            Step::GroupKey { group, key, seq } => {
                self.on_group_key(w, curve, group, &key, seq, after)?;
            }
            Step::GroupWant { group, ops } => {
                self.on_group_want(w, conv, group, ops, after)?;
            }
            Step::GroupReceipt { group, kind, ids } => {
                self.on_group_receipt(w, conv, group, kind, ids, after)?;
            }
            Step::Call(body) => self.on_call_body(w, conv, body, after)?,
            Step::Chat(ChatAction::PhotoStory {
                id,
                posted_at_ms,
                caption,
                manifest,
            }) => {
                // Fetched from the poster's device, as a photo message is.
                let sender = match w.device_by_curve(&curve)? {
                    Some(dev) => w
                        .device(&dev)?
                        .and_then(|d| PeerId::from_bytes(&d.peer_id).ok()),
                    None => None,
                };
                let at = (id, posted_at_ms);
                let peer = sender.unwrap_or(peer);
                self.on_photo_story(w, peer, conv, name, at, caption, *manifest, after)?;
            }
            Step::Chat(action) => self.on_contact_chat(w, conv, name, action, after)?,
        }
        Ok(())
    }
}

/// Carries out a verdict of the inbound core: what it accepted, or the answer to a refused
/// envelope (a penalty goes to the network after the commit).
fn carry_verdict<A>(
    blamed: Option<PeerId>,
    v: Verdict<RejectReason, A>,
    after: &mut Vec<After>,
) -> Result<A, DeliveryResult> {
    match v {
        Verdict::Accept(a) => Ok(a),
        Verdict::Refuse(r) => Err(DeliveryResult::Rejected(r)),
        Verdict::Penalize(r, reason) => {
            if let Some(peer) = blamed {
                after.push(After::Net(NetCommand::Penalize { peer, reason }));
            }
            Err(DeliveryResult::Rejected(r))
        }
    }
}

/// Most devices one batch's [`DepositMemo`] remembers; a batch for more devices looks the
/// rest up each time.
const MEMO_DEVICES: usize = 16;

/// What the deposits of one batch looked up about the devices they are for: which device is
/// registered under a key, and whether waking it was decided already. Lives for one batch
/// (`State::receive`), in which neither registrations nor push endpoints change.
#[derive(Debug, Default)]
struct DepositMemo {
    seen: Vec<Memo>,
}

#[derive(Debug, Clone, Copy)]
struct Memo {
    curve: CurveKey,
    dev: Option<DeviceKey>,
    wake_decided: bool,
}

impl DepositMemo {
    fn get(&self, curve: &CurveKey) -> Option<&Memo> {
        self.seen.iter().find(|m| m.curve == *curve)
    }

    fn put(&mut self, curve: CurveKey, dev: Option<DeviceKey>) {
        if self.seen.len() < MEMO_DEVICES {
            self.seen.push(Memo {
                curve,
                dev,
                wake_decided: false,
            });
        }
    }

    fn wake_decided(&self, curve: &CurveKey) -> bool {
        self.get(curve).is_some_and(|m| m.wake_decided)
    }

    fn decide_wake(&mut self, curve: &CurveKey) {
        if let Some(m) = self.seen.iter_mut().find(|m| m.curve == *curve) {
            m.wake_decided = true;
        }
    }
}
