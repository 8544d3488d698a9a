//! Network events that need no write transaction (connections, listeners, signals,
//! answers to requests that failed), and the requests the engine sends to its mailboxes.

use super::*;

impl Engine {
    /// Handles network events that need no write; returns those that do.
    pub(super) fn on_net_now(&mut self, ev: NetEvent) -> Option<NetEvent> {
        match ev {
            NetEvent::Listening { addr } => {
                info!(%addr, "listening");
                self.st.record.changed();
                None
            }
            NetEvent::ListenerGone { addr } => {
                debug!(%addr, "no longer listening");
                self.st.record.changed();
                None
            }
            NetEvent::Reachability { .. } => {
                // Addresses worth advertising may differ now.
                self.st.record.changed();
                None
            }
            NetEvent::Connected { peer } => {
                self.st.connected.insert(peer);
                // Back in touch with one of our mailboxes: register again, which also makes
                // it hand over what it kept for us.
                let bytes = peer.to_bytes();
                if let Some(m) = self
                    .st
                    .my_mailboxes
                    .iter()
                    .find(|m| m.peer_id == bytes)
                    .cloned()
                {
                    let token = self.st.mailbox_tokens.get(&peer).cloned();
                    self.st.watching.connected(&m.peer_id);
                    self.register_with(m, token, None);
                }
                let dev = device_key(&peer.to_bytes());
                self.st.delivery.reachable(&dev);
                if self.st.delivery.is_tracked(&dev) {
                    self.pump(dev);
                }
                self.presence_connected(peer);
                None
            }
            NetEvent::Signal { id, peer, signal } => {
                self.on_signal(id, peer, signal);
                None
            }
            NetEvent::MediaAsked { id, peer, req } => {
                self.on_media_asked(id, peer, req);
                None
            }
            NetEvent::MediaAnswered { tag, peer, result } => {
                let job = crate::media::Job::Answered { tag, peer, result };
                if !self.st.media.offer(job) {
                    debug!("the media task is busy; an answer was dropped");
                }
                None
            }
            NetEvent::SignalAnswered { tag, result, .. } => {
                self.on_signal_answer(tag, result);
                None
            }
            NetEvent::GossipJoined { peer, topic } => {
                self.on_gossip_joined(peer, &topic);
                None
            }
            NetEvent::Published { tag, ok } => {
                self.record_published(tag, ok);
                None
            }
            NetEvent::Disconnected { peer } => {
                self.st.connected.remove(&peer);
                self.st.mailbox.disconnected(&peer);
                self.st.watching.disconnected(&peer.to_bytes());
                self.presence_disconnected(peer);
                None
            }
            NetEvent::Response {
                tag,
                result: Err(error),
                peer,
            } => {
                match self.st.pending.remove(&tag) {
                    Some(Pending::Deliver { dev, .. } | Pending::Claim { dev }) => {
                        debug!(%peer, %error, "request failed");
                        self.failed(dev);
                    }
                    Some(Pending::SetPush { mailbox, wait }) => {
                        debug!(%peer, %error, "cannot send the push endpoint to a mailbox");
                        self.st
                            .push_result(&mailbox, wait, "unreachable".into(), None);
                    }
                    Some(Pending::GroupSync { group }) => {
                        debug!(%peer, %error, "group catch-up failed");
                        self.group_sync_done(group);
                    }
                    Some(p @ (Pending::Watch { .. } | Pending::TopicSync { .. })) => {
                        debug!(%peer, %error, "request to our mailbox failed");
                        self.watch_failed(p);
                    }
                    Some(Pending::Turn { .. }) => {
                        debug!(%peer, %error, "cannot get TURN credentials from a mailbox");
                    }
                    Some(Pending::Register { reply, .. }) => {
                        warn!(%peer, %error, "mailbox registration failed");
                        if let Some(r) = reply {
                            let _ = r.send(Err(EngineError::Network(format!(
                                "the mailbox did not answer: {error}"
                            ))));
                        }
                    }
                    Some(Pending::Link) => self.st.link_failed(&error.to_string()),
                    None => {}
                }
                None
            }
            other => Some(other),
        }
    }

    /// Starts a registration with a mailbox: first claims a pre-key from it, with which the
    /// registration proves that this device holds its Curve25519 key
    /// ([`State::register_proven`]); the answers are handled in a batch.
    pub(super) fn register_with(
        &mut self,
        mailbox: MailboxRef,
        token: Option<String>,
        reply: Option<Reply<MailboxView>>,
    ) {
        let addrs = (mailbox.peer_id.clone(), mailbox.addrs.clone());
        let pending = Pending::Register {
            mailbox,
            token,
            reply,
            proving: true,
        };
        if let Err(Pending::Register { reply: Some(r), .. }) =
            self.st
                .request_mailbox(addrs, Request::ClaimPrekey, pending)
        {
            let _ = r.send(Err(EngineError::Network(
                "cannot send the registration to the mailbox".into(),
            )));
        }
    }

    /// Sends the push endpoint (or its removal) to one of our mailboxes.
    pub(super) fn send_push(&mut self, mailbox: MailboxRef, wait: Option<u64>) {
        let req = Request::SetPush {
            endpoint: self.st.push_endpoint.clone(),
        };
        let pending = Pending::SetPush {
            mailbox: mailbox.peer_id.clone(),
            wait,
        };
        if self
            .st
            .request_mailbox((mailbox.peer_id.clone(), mailbox.addrs), req, pending)
            .is_err()
        {
            self.st
                .push_result(&mailbox.peer_id, wait, "unreachable".into(), None);
        }
    }
}

impl State {
    /// The second step of a registration: the mailbox handed out a pre-key `bundle`; sends
    /// the registration with a proof made from it (docs/protocol.md, "Mailbox
    /// registration"). A bundle that is not the mailbox's own fails the registration.
    pub(super) fn register_proven(
        &mut self,
        mailbox: MailboxRef,
        token: Option<String>,
        reply: Option<Reply<MailboxView>>,
        bundle: &kith_proto::record::PrekeyBundle,
    ) {
        let cert = self.device.cert().clone();
        let binding = kith_proto::wire::registration_binding(
            &mailbox.peer_id,
            &cert.peer_id,
            &cert.curve25519,
        );
        let proof = match bundle.cert.peer_id == mailbox.peer_id {
            true => self.device.prove_key(bundle, &binding).ok(),
            false => None,
        };
        let Some(proof) = proof else {
            warn!("the mailbox handed out a bad pre-key; registration failed");
            if let Some(r) = reply {
                let _ = r.send(Err(EngineError::Network(
                    "the mailbox handed out a bad pre-key".into(),
                )));
            }
            return;
        };
        let req = Request::RegisterProven {
            cert,
            token: token.clone(),
            proof,
        };
        let addrs = (mailbox.peer_id.clone(), mailbox.addrs.clone());
        let pending = Pending::Register {
            mailbox,
            token,
            reply,
            proving: false,
        };
        if let Err(Pending::Register { reply: Some(r), .. }) =
            self.request_mailbox(addrs, req, pending)
        {
            let _ = r.send(Err(EngineError::Network(
                "cannot send the registration to the mailbox".into(),
            )));
        }
    }

    /// Sends `req` to one of our mailboxes (its peer id and addresses, encoded) and files
    /// `pending` under the request's tag; hands `pending` back when the request cannot go
    /// out (a bad peer id, or no room in the network's queue).
    pub(super) fn request_mailbox(
        &mut self,
        (peer_id, addrs): (Vec<u8>, Vec<Vec<u8>>),
        req: Request,
        pending: Pending,
    ) -> Result<(), Pending> {
        let Ok(peer) = PeerId::from_bytes(&peer_id) else {
            return Err(pending);
        };
        let tag = self.tag();
        let cmd = NetCommand::Request {
            tag,
            peer,
            addrs: decode_addrs(&addrs),
            req,
        };
        match self.net.send(cmd) {
            Ok(()) => {
                self.pending.insert(tag, pending);
                Ok(())
            }
            Err(_) => Err(pending),
        }
    }
}
