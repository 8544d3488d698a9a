//! The link handshake (see `kith_proto::link` for the messages and their crypto).
//!
//! New device: `link.start` makes the code; [`State::on_link_request`] answers the
//! approver's hello with an offer and its finish with done, then rewrites the key file with
//! the person's identity (the daemon restarts to act for it).
//!
//! Approving device: `devices.approve` sends the hello and answers with the confirmation
//! words once the offer came; `devices.confirm` certifies the new device's keys and sends
//! the finish; on done the new device joins the person's devices and the user record.

use kith_crypto::Identity;
use kith_proto::link::{
    self as wire_link, LinkCode, LinkContact, LinkFinish, LinkHello, LinkMsg, LinkedDevice,
    MAX_LINK_CONTACTS,
};

use super::*;

const HELLO: &[u8] = b"kith-link-hello";
const OFFER: &[u8] = b"kith-link-offer";

fn finish_aad(transcript: &[u8; 32]) -> Vec<u8> {
    let mut aad = b"kith-link-finish".to_vec();
    aad.extend_from_slice(transcript);
    aad
}

fn refused(why: &str) -> EngineError {
    EngineError::ActionRefused(why.to_string())
}

fn view(state: &str) -> LinkView {
    LinkView {
        state: state.into(),
        ..LinkView::default()
    }
}

impl State {
    /// `link.start`: on a device with no contacts and no linked devices, a one-time code.
    pub(crate) fn link_start(
        &mut self,
        w: &mut WriteTx<'_>,
        name: Option<String>,
    ) -> Outcome<LinkView> {
        if !w.contacts()?.is_empty() || !self.own_devices(w)?.is_empty() {
            return Ok(Err(refused(
                "this device already has contacts or linked devices: link a new data directory",
            )));
        }
        let name = match name {
            Some(n) => match clean_name(&n) {
                Some(n) => n,
                None => return Ok(Err(EngineError::BadName(n))),
            },
            None => default_name(&self.device.cert().peer_id),
        };
        let now = Instant::now();
        if let Some(o) = &self.links.offering
            && matches!(o.stage, Stage::Waiting)
            && o.expires > now
        {
            return Ok(Ok(self.link_view()));
        }
        let addrs = self.advertised_addrs();
        if addrs.is_empty() {
            return Ok(Err(refused(
                "this device listens nowhere: start it with --listen",
            )));
        }
        let secret: [u8; 16] = rand::random();
        let code = LinkCode {
            version: 1,
            peer_id: self.device.cert().peer_id.clone(),
            addrs: addrs.iter().map(|a| a.to_vec()).collect(),
            secret,
        }
        .to_code()?;
        self.links.offering = Some(Offering {
            secret,
            key: wire_link::link_key(&secret),
            code,
            name,
            expires: now + CODE_LIFETIME,
            tries: 0,
            stage: Stage::Waiting,
        });
        Ok(Ok(self.link_view()))
    }

    /// `link.status`: where the link stands on this device.
    pub(crate) fn link_view(&self) -> LinkView {
        if let Some(o) = &self.links.offering {
            return match &o.stage {
                Stage::Waiting if o.expires <= Instant::now() => LinkView {
                    detail: Some("the code expired".into()),
                    ..view("failed")
                },
                Stage::Waiting => LinkView {
                    code: Some(o.code.clone()),
                    device: Some(o.name.clone()),
                    ..view("waiting")
                },
                Stage::Offered { transcript, .. } => LinkView {
                    words: Some(wire_link::confirm_words(transcript)),
                    device: Some(o.name.clone()),
                    ..view("confirm")
                },
                Stage::Linked { transcript } => LinkView {
                    words: Some(wire_link::confirm_words(transcript)),
                    device: Some(o.name.clone()),
                    detail: Some("restart the daemon (kith up) to use this device".into()),
                    ..view("linked")
                },
                Stage::Failed(why) => LinkView {
                    detail: Some(why.clone()),
                    ..view("failed")
                },
            };
        }
        match self.links.approving.as_ref().map(|a| &a.stage) {
            Some(Approval::Confirm { transcript, offer }) => LinkView {
                words: Some(wire_link::confirm_words(transcript)),
                device: Some(offer.name.clone()),
                ..view("confirm")
            },
            Some(_) => view("approving"),
            None => view("none"),
        }
    }

    /// The new device answers a link step.
    pub(crate) fn on_link_request(
        &mut self,
        w: &mut WriteTx<'_>,
        peer: PeerId,
        msg: LinkMsg,
    ) -> Result<Response, Fatal> {
        let now = Instant::now();
        let no = Ok(Response::Link(LinkMsg::Refused));
        if !self.links.admit(now) {
            return no;
        }
        let Some(o) = self.links.offering.as_mut() else {
            return no;
        };
        let waiting = matches!(o.stage, Stage::Waiting);
        let offered = match &o.stage {
            Stage::Offered {
                approver,
                identity,
                transcript,
            } => Some((*approver, *identity, *transcript)),
            _ => None,
        };
        match msg {
            LinkMsg::Hello(hello) if waiting => {
                if o.expires <= now {
                    o.stage = Stage::Failed("the code expired".into());
                    return no;
                }
                let opened = wire_link::open::<LinkHello>(&o.key, HELLO, &hello)
                    .ok()
                    .filter(|h| h.approver.validate().is_ok())
                    .filter(|h| h.approver.peer_id == peer.to_bytes());
                let Some(h) = opened else {
                    o.tries += 1;
                    warn!(%peer, tries = o.tries, "refused a link attempt with a wrong code");
                    if o.tries >= MAX_CODE_TRIES {
                        o.stage = Stage::Failed("too many wrong link attempts".into());
                    }
                    return no;
                };
                let offer = LinkOffer {
                    device: self.device.cert().clone(),
                    name: o.name.clone(),
                };
                let sealed = wire_link::seal(&o.key, OFFER, &offer, rand::random())?;
                let transcript = wire_link::transcript(&o.secret, &hello, &sealed);
                o.stage = Stage::Offered {
                    approver: peer,
                    identity: h.approver.identity,
                    transcript,
                };
                info!(%peer, "link code accepted; waiting for the approval");
                Ok(Response::Link(LinkMsg::Offer(sealed)))
            }
            LinkMsg::Finish(sealed) => {
                let Some((approver, identity, transcript)) = offered else {
                    return no;
                };
                if approver != peer {
                    return no;
                }
                let opened =
                    wire_link::open::<LinkFinish>(&o.key, &finish_aad(&transcript), &sealed);
                match opened {
                    Ok(f) => match self.take_identity(w, identity, &f) {
                        Ok(()) => {
                            if let Some(o) = self.links.offering.as_mut() {
                                o.stage = Stage::Linked { transcript };
                            }
                            info!(identity = %identity, "linked to the person's identity; restart to use it");
                            Ok(Response::Link(LinkMsg::Done))
                        }
                        Err(why) => {
                            warn!(error = %why, "refused a link finish");
                            if let Some(o) = self.links.offering.as_mut() {
                                o.stage = Stage::Failed(why.to_string());
                            }
                            no
                        }
                    },
                    Err(_) => {
                        o.stage = Stage::Failed("the link finish did not open".into());
                        no
                    }
                }
            }
            _ => no,
        }
    }

    /// Takes the identity the approver handed over: checks it, then writes the key file
    /// and the store (certificate, the person's devices, contacts).
    fn take_identity(
        &mut self,
        w: &mut WriteTx<'_>,
        identity: IdentityKey,
        f: &LinkFinish,
    ) -> Result<(), EngineError> {
        f.check().map_err(|e| refused(&e.to_string()))?;
        let id = Identity::from_secret(&f.identity_secret);
        let mine = self.device.cert();
        let cert = &f.cert;
        if id.public() != identity
            || cert.identity != identity
            || cert.validate().is_err()
            || cert.peer_id != mine.peer_id
            || cert.curve25519 != mine.curve25519
            || cert.ed25519 != mine.ed25519
            || f.devices.iter().any(|d| d.cert.identity != identity)
        {
            return Err(refused("the link finish does not fit this device"));
        }
        let fatal = |e: Fatal| EngineError::Internal(e.to_string());
        let name = match &self.links.offering {
            Some(o) => o.name.clone(),
            None => default_name(&mine.peer_id),
        };
        crate::keys::replace_identity(&self.data_dir.join("keys"), &self.keys, &id)?;
        let encoded = kith_proto::codec::encode(cert).map_err(internal)?;
        let store = |w: &mut WriteTx<'_>| -> Result<(), Fatal> {
            w.set_meta("device_cert", &encoded)?;
            w.set_meta(DEVICE_NAME, name.as_bytes())?;
            let mut own = Vec::new();
            for d in &f.devices {
                if put_linked(w, identity, d)? {
                    own.push(OwnDevice {
                        peer_id: d.cert.peer_id.clone(),
                        name: clean_name(&d.name).unwrap_or_else(|| default_name(&d.cert.peer_id)),
                        linked_ms: now_ms(),
                    });
                }
            }
            w.set_meta(OWN_DEVICES, &kith_proto::codec::encode(&own)?)?;
            for c in &f.contacts {
                if w.contact(&c.identity)?.is_some() || w.contact_by_name(&c.name)?.is_some() {
                    continue;
                }
                let first = c.devices.first();
                w.put_contact(&Contact {
                    identity: c.identity,
                    name: c.name.clone(),
                    added_ms: now_ms(),
                    added_by_user: true,
                    peer_hint: first.map(|d| d.cert.peer_id.clone()).unwrap_or_default(),
                    addr_hints: first.map(|d| d.addrs.clone()).unwrap_or_default(),
                })?;
                for d in &c.devices {
                    put_linked(w, c.identity, d)?;
                }
            }
            Ok(())
        };
        store(w).map_err(fatal)
    }

    /// `devices.approve`: sends the hello to the device the code names; the reply waits for
    /// its offer (the confirmation words).
    pub(crate) fn link_approve(
        &mut self,
        w: &mut WriteTx<'_>,
        code: &str,
        history_days: Option<u32>,
        reply: Reply<LinkView>,
        after: &mut Vec<After>,
    ) -> Result<(), Fatal> {
        let now = Instant::now();
        let (code, peer) = match self.approvable(w, code, now)? {
            Ok(x) => x,
            Err(e) => {
                let _ = reply.send(Err(e));
                return Ok(());
            }
        };
        let key = wire_link::link_key(&code.secret);
        let hello = wire_link::seal(
            &key,
            HELLO,
            &LinkHello {
                approver: self.device.cert().clone(),
            },
            rand::random(),
        )?;
        let tag = self.tag();
        self.pending.insert(tag, Pending::Link);
        after.push(After::Net(NetCommand::Request {
            tag,
            peer,
            addrs: decode_addrs(&code.addrs),
            req: Request::Link(LinkMsg::Hello(hello.clone())),
        }));
        self.links.approving = Some(Approving {
            peer,
            key,
            secret: code.secret,
            addrs: code.addrs.clone(),
            hello,
            started: now,
            stage: Approval::Hello,
            reply: Some(reply),
            history_days: history_days.unwrap_or(super::history::DEFAULT_HISTORY_DAYS),
        });
        Ok(())
    }

    /// Whether a link may be approved now with `code`: the code and the new device's peer.
    fn approvable(
        &mut self,
        w: &WriteTx<'_>,
        code: &str,
        now: Instant,
    ) -> Result<Result<(LinkCode, PeerId), EngineError>, Fatal> {
        if self
            .links
            .approving
            .as_ref()
            .is_some_and(|a| now.duration_since(a.started) < APPROVAL_TIMEOUT)
        {
            return Ok(Err(refused("another link is being approved")));
        }
        if !self.links.admit(now) {
            return Ok(Err(refused("too many link attempts; wait a minute")));
        }
        if self.own_devices(w)?.len() + 1 >= MAX_LINKED_DEVICES {
            return Ok(Err(refused("this person has the most devices already (5)")));
        }
        let Ok(code) = LinkCode::from_code(code) else {
            return Ok(Err(EngineError::BadCode("not a link code".into())));
        };
        let Ok(peer) = PeerId::from_bytes(&code.peer_id) else {
            return Ok(Err(EngineError::BadCode("not a link code".into())));
        };
        if code.peer_id == self.device.cert().peer_id {
            return Ok(Err(refused("that is this device's own code")));
        }
        Ok(Ok((code, peer)))
    }

    /// `devices.confirm`: the person saw the same words on both screens: certify the new
    /// device and hand over the identity.
    pub(crate) fn link_confirm(
        &mut self,
        w: &mut WriteTx<'_>,
        reply: Reply<LinkView>,
        after: &mut Vec<After>,
    ) -> Result<(), Fatal> {
        let Some(a) = self.links.approving.as_mut() else {
            let _ = reply.send(Err(refused("no link is waiting for confirmation")));
            return Ok(());
        };
        let Approval::Confirm { offer, transcript } = &a.stage else {
            let _ = reply.send(Err(refused("no link is waiting for confirmation")));
            return Ok(());
        };
        let transcript = *transcript;
        let mut cert = DeviceCert {
            identity: self.me,
            peer_id: offer.device.peer_id.clone(),
            curve25519: offer.device.curve25519,
            ed25519: offer.device.ed25519,
            created_ms: now_ms(),
            signature: Vec::new(),
        };
        cert.signature = self.keys.identity.sign(&cert.signing_bytes()?);
        let name = offer.name.clone();
        let mut devices = vec![LinkedDevice {
            cert: self.device.cert().clone(),
            name: self.my_device_name(w.meta(DEVICE_NAME)?),
            addrs: self.advertised_addrs().iter().map(|a| a.to_vec()).collect(),
        }];
        for o in self.own_devices(w)? {
            if let Some(d) = w.device(&device_key(&o.peer_id))?
                && let Some(c) = d.cert
            {
                devices.push(LinkedDevice {
                    cert: c,
                    name: o.name,
                    addrs: d.addrs,
                });
            }
        }
        let mut contacts = Vec::new();
        let mut budget = wire_link::MAX_LINK_SEALED - 32 * 1024;
        let all = w.devices()?;
        for c in w.contacts()?.into_iter().take(MAX_LINK_CONTACTS) {
            let devs: Vec<LinkedDevice> = all
                .iter()
                .filter(|d| d.identity == c.identity)
                .filter_map(|d| {
                    d.cert.clone().map(|cert| LinkedDevice {
                        cert,
                        name: String::new(),
                        addrs: d
                            .addrs
                            .iter()
                            .take(kith_proto::record::MAX_ADDRS)
                            .cloned()
                            .collect(),
                    })
                })
                .take(kith_proto::record::MAX_DEVICES)
                .collect();
            let contact = LinkContact {
                identity: c.identity,
                name: c.name,
                devices: devs,
            };
            // The whole finish must fit one sealed link message: contacts past the room
            // are left out (the new device learns them when they write).
            budget = budget.saturating_sub(kith_proto::codec::encode(&contact)?.len());
            if budget == 0 {
                break;
            }
            contacts.push(contact);
        }
        let finish = LinkFinish {
            identity_secret: *self.keys.identity.secret(),
            cert: cert.clone(),
            devices,
            contacts,
        };
        let Some(a) = self.links.approving.as_mut() else {
            return Ok(());
        };
        let sealed = wire_link::seal(&a.key, &finish_aad(&transcript), &finish, rand::random())?;
        drop(finish);
        let tag = self.next_tag_value();
        if let Some(a) = self.links.approving.as_mut() {
            a.stage = Approval::Finishing {
                cert: Box::new(cert),
                name,
            };
            a.reply = Some(reply);
            a.started = Instant::now();
            self.pending.insert(tag, Pending::Link);
            after.push(After::Net(NetCommand::Request {
                tag,
                peer: a.peer,
                addrs: decode_addrs(&a.addrs),
                req: Request::Link(LinkMsg::Finish(sealed)),
            }));
        }
        Ok(())
    }

    fn next_tag_value(&mut self) -> u64 {
        self.tag()
    }

    /// The approver gets the new device's answer to a link step.
    pub(crate) fn on_link_response(
        &mut self,
        w: &mut WriteTx<'_>,
        peer: PeerId,
        msg: LinkMsg,
        after: &mut Vec<After>,
    ) -> Result<(), Fatal> {
        let Some(mut a) = self.links.approving.take() else {
            return Ok(());
        };
        if a.peer != peer {
            self.links.approving = Some(a);
            return Ok(());
        }
        let reply = a.reply.take();
        let answer = |v: Result<LinkView, EngineError>| {
            if let Some(r) = reply {
                let _ = r.send(v);
            }
        };
        let stage = std::mem::replace(&mut a.stage, Approval::Hello);
        match (msg, stage) {
            (LinkMsg::Offer(sealed), Approval::Hello) => {
                let offer = wire_link::open::<LinkOffer>(&a.key, OFFER, &sealed)
                    .ok()
                    .filter(|o| o.device.peer_id == peer.to_bytes())
                    .filter(|o| o.device.validate().is_ok());
                let Some(mut offer) = offer else {
                    answer(Err(refused("the new device's answer did not open")));
                    return Ok(());
                };
                if !w
                    .curve_free_for(&offer.device.curve25519, &device_key(&offer.device.peer_id))?
                {
                    answer(Err(refused(
                        "the new device's keys belong to another device",
                    )));
                    return Ok(());
                }
                offer.name =
                    clean_name(&offer.name).unwrap_or_else(|| default_name(&offer.device.peer_id));
                let transcript = wire_link::transcript(&a.secret, &a.hello, &sealed);
                let words = wire_link::confirm_words(&transcript);
                let name = offer.name.clone();
                a.stage = Approval::Confirm {
                    offer: Box::new(offer),
                    transcript,
                };
                a.started = Instant::now();
                self.links.approving = Some(a);
                answer(Ok(LinkView {
                    words: Some(words),
                    device: Some(name),
                    ..view("confirm")
                }));
            }
            (LinkMsg::Done, Approval::Finishing { cert, name }) => {
                let dev = device_key(&cert.peer_id);
                let d = KnownDevice {
                    identity: self.me,
                    peer_id: cert.peer_id.clone(),
                    cert: Some((*cert).clone()),
                    addrs: a.addrs.clone(),
                    mailboxes: Vec::new(),
                    prekey: None,
                };
                w.put_device(&dev, &d)?;
                let mut own = self.own_devices(w)?;
                own.retain(|o| o.peer_id != cert.peer_id);
                own.push(OwnDevice {
                    peer_id: cert.peer_id.clone(),
                    name: name.clone(),
                    linked_ms: now_ms(),
                });
                own.truncate(MAX_LINKED_DEVICES);
                self.put_own_devices(w, &own)?;
                info!(%peer, "linked a new device");
                self.own_devices_changed(w, after)?;
                self.groups_to_own_device(w, dev, after)?;
                self.start_history(w, dev, a.history_days)?;
                answer(Ok(LinkView {
                    device: Some(name.clone()),
                    ..view("linked")
                }));
            }
            _ => answer(Err(refused(
                "the new device refused the link (a wrong, expired or used code?)",
            ))),
        }
        Ok(())
    }

    /// A link step could not reach the new device.
    pub(crate) fn link_failed(&mut self, error: &str) {
        if let Some(mut a) = self.links.approving.take()
            && let Some(r) = a.reply.take()
        {
            let _ = r.send(Err(EngineError::Network(format!(
                "cannot reach the new device: {error}"
            ))));
        }
    }
}

/// Stores a device handed over at link time (a certified one whose key is free); returns
/// whether it was stored.
fn put_linked(w: &mut WriteTx<'_>, identity: IdentityKey, d: &LinkedDevice) -> Result<bool, Fatal> {
    let dev = device_key(&d.cert.peer_id);
    if d.cert.identity != identity || !w.curve_free_for(&d.cert.curve25519, &dev)? {
        return Ok(false);
    }
    w.put_device(
        &dev,
        &KnownDevice {
            identity,
            peer_id: d.cert.peer_id.clone(),
            cert: Some(d.cert.clone()),
            addrs: d.addrs.clone(),
            mailboxes: Vec::new(),
            prekey: None,
        },
    )?;
    Ok(true)
}
