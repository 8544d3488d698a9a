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
                if let Some((reply, view)) = self.st.publishing.remove(&tag) {
                    let _ = reply.send(Ok(view));
                }
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
                    Some(Pending::Register { reply, .. }) => {
                        warn!(%peer, %error, "mailbox registration failed");
                        if let Some(r) = reply {
                            let _ = r.send(Err(EngineError::Network(format!(
                                "the mailbox did not answer: {error}"
                            ))));
                        }
                    }
                    None => {}
                }
                None
            }
            other => Some(other),
        }
    }

    /// Sends a registration to a mailbox; the answer is handled in a batch.
    pub(super) fn register_with(
        &mut self,
        mailbox: MailboxRef,
        token: Option<String>,
        reply: Option<Reply<MailboxView>>,
    ) {
        let req = Request::Register {
            cert: self.st.device.cert().clone(),
            token: token.clone(),
        };
        let addrs = (mailbox.peer_id.clone(), mailbox.addrs.clone());
        let pending = Pending::Register {
            mailbox,
            token,
            reply,
        };
        if let Err(Pending::Register { reply: Some(r), .. }) =
            self.st.request_mailbox(addrs, req, pending)
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
    /// Sends `req` to one of our mailboxes (its peer id and addresses, encoded) and files
    /// `pending` under the request's tag; hands `pending` back when the request cannot go
    /// out (a bad peer id, or no room in the network's queue).
    fn request_mailbox(
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
