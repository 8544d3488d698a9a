//! Read commands: what the user sees of the node, its contacts and conversations.

use super::*;

/// A mailbox given by its contact code, or by an address ending in `/p2p/<peer id>`.
/// Keeps a history answer to a sane size: the newest messages (oldest first in `msgs`)
/// whose texts add up to at most MAX_HISTORY_BYTES (10,000 texts of 48 KiB would not fit
/// the client's 64 MiB line).
pub(super) fn keep_newest_texts<K, M>(msgs: &mut Vec<(K, M)>, len: impl Fn(&M) -> usize) {
    let mut total = 0usize;
    let keep = msgs
        .iter()
        .rev()
        .take_while(|(_, m)| {
            total += len(m);
            total <= MAX_HISTORY_BYTES
        })
        .count();
    msgs.drain(..msgs.len() - keep);
}
impl Engine {
    pub(super) fn read_cmd(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Call(c) => (*c).read(self),
            // Group test hooks run in a write batch (see `apply`).
            #[cfg(feature = "test-hooks")]
            Cmd::Group(_) => {}
            Cmd::Shutdown(tx) => {
                let _ = tx.send(());
            }
        }
    }

    /// `verify`: the safety number with a contact.
    pub(super) fn verify(&self, with: &str) -> Result<Verification, EngineError> {
        self.store
            .read(|r| r.contact_by_name(with))
            .map_err(internal)
            .and_then(|c| c.ok_or(EngineError::UnknownContact(with.to_string())))
            .map(|c| {
                let theirs = c.identity;
                Verification {
                    name: c.name,
                    safety_number: safety_number(&self.st.me, &theirs),
                    mine: self.st.me.to_hex(),
                    theirs: theirs.to_hex(),
                }
            })
    }

    /// `status`: connections, outbox, reachability.
    pub(super) fn status(&self) -> Result<NodeStatus, EngineError> {
        let (outbox, mailbox_users) = self
            .store
            .read(|r| {
                let mut n = 0;
                for d in r.outbox_devices()? {
                    n += r.outbox_len(&d)?;
                }
                Ok((n, r.mailbox_users_len()?))
            })
            .unwrap_or((0, 0));
        let reach = self.st.net.reachability();
        Ok(NodeStatus {
            peer_id: self.st.net.local_peer().to_string(),
            connected_peers: self.st.connected.iter().map(|p| p.to_string()).collect(),
            outbox,
            mailbox_users,
            reachability: reach.status.as_str().to_string(),
            relays: reach.relays.iter().map(|p| p.to_string()).collect(),
            relay_reservations: reach.served_reservations,
            relay_circuits: reach.served_circuits,
            turn_servers: self
                .st
                .calls
                .turn
                .ice_servers(now_ms() / 1000)
                .into_iter()
                .flat_map(|s| s.urls)
                .collect(),
            record: self.st.record.state().as_str().to_string(),
        })
    }

    pub(super) fn info(&self) -> Result<NodeInfo, EngineError> {
        let peer = self.st.net.local_peer();
        let addrs = self.st.advertised_addrs();
        let card = ContactCard {
            version: 1,
            identity: self.st.me,
            peer_id: peer.to_bytes(),
            addrs: addrs.iter().map(|a| a.to_vec()).collect(),
        };
        Ok(NodeInfo {
            code: card.to_code().map_err(internal)?,
            peer_id: peer.to_string(),
            addrs: addrs.iter().map(|a| format!("{a}/p2p/{peer}")).collect(),
            identity: self.st.me.short(),
        })
    }

    pub(super) fn contacts(&self) -> Result<Vec<ContactView>, EngineError> {
        self.store
            .read(|r| {
                let devices = r.devices()?;
                let mut out = Vec::new();
                for c in r.contacts()? {
                    let mut connected = false;
                    let mut pending = 0;
                    for d in devices.iter().filter(|d| d.identity == c.identity) {
                        if let Ok(p) = PeerId::from_bytes(&d.peer_id) {
                            connected |= self.st.connected.contains(&p);
                        }
                        pending += r.outbox_len(&device_key(&d.peer_id))?;
                    }
                    let mut v = ContactView::new(c.name, c.identity.short(), c.added_by_user);
                    v.connected = connected;
                    v.pending = pending;
                    let settings = r.chat_settings(&kith_store::ChatRef::Contact(c.identity))?;
                    v.archived = settings.archived;
                    v.muted = settings.muted;
                    let extra = r.contact_extra(&c.identity)?;
                    self.st
                        .social
                        .fill_view(&mut v, &c.identity, &extra, &self.st.data_dir);
                    out.push(v);
                }
                out.sort_by(|a, b| a.name.cmp(&b.name));
                Ok(out)
            })
            .map_err(internal)
    }

    pub(super) fn history(
        &self,
        with: &str,
        limit: usize,
    ) -> Result<Vec<MessageView>, EngineError> {
        self.store
            .read(|r| {
                let Some(c) = r.contact_by_name(with)? else {
                    return Ok(Err(EngineError::UnknownContact(with.to_string())));
                };
                let mut msgs = r.history(&c.identity, limit)?;
                keep_newest_texts(&mut msgs, |m| m.text.len());
                let chat = kith_store::ChatRef::Contact(c.identity);
                let mut out = Vec::with_capacity(msgs.len());
                for (_, m) in msgs {
                    let meta = r.message_meta(&chat, m.id)?;
                    let Some(extras) = super::chat::extras_of(
                        meta,
                        |who| {
                            if *who == c.identity {
                                c.name.clone()
                            } else {
                                "me".into()
                            }
                        },
                        |q| r.message(&c.identity, q).ok().flatten().map(|q| q.text),
                    ) else {
                        continue;
                    };
                    out.push(MessageView {
                        id: MessageId(m.id).to_string(),
                        from: if m.outgoing {
                            "me".into()
                        } else {
                            c.name.clone()
                        },
                        attachment: self.attachment_of(r, m.id, &c.name)?,
                        text: m.text,
                        status: m.status.as_str().into(),
                        sent_at: m.sent_at_ms,
                        extras,
                    });
                }
                Ok(Ok(out))
            })
            .map_err(internal)?
    }
}

impl State {
    pub(super) fn mailbox_view(&self, peer_id: &[u8]) -> MailboxView {
        let peer = PeerId::from_bytes(peer_id).ok();
        let u = peer
            .and_then(|p| self.mailbox_usage.get(&p).copied())
            .unwrap_or_default();
        MailboxView {
            peer_id: peer.map(|p| p.to_string()).unwrap_or_default(),
            quota: u.max_messages,
            quota_bytes: u.max_bytes,
            used_messages: u.used_messages,
            used_bytes: u.used_bytes,
            updated_at: u.at_ms,
        }
    }

    pub(super) fn push_view(&self) -> PushView {
        PushView {
            set: self.push_endpoint.is_some(),
            host: self.push_endpoint.as_deref().map(log_host),
            mailboxes: self
                .my_mailboxes
                .iter()
                .map(|m| {
                    let peer = PeerId::from_bytes(&m.peer_id).ok();
                    PushMailboxView {
                        peer_id: peer.map(|p| p.to_string()).unwrap_or_default(),
                        status: peer
                            .and_then(|p| self.push_status.get(&p).cloned())
                            .unwrap_or_else(|| "not sent yet".into()),
                    }
                })
                .collect(),
        }
    }

    /// `mailbox.list`: the mailboxes this device is registered with.
    pub(super) fn mailbox_views(&self) -> Vec<MailboxView> {
        self.my_mailboxes
            .iter()
            .map(|m| self.mailbox_view(&m.peer_id))
            .collect()
    }
}
