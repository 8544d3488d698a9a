//! This device's mailboxes: registration answers, quota figures, the push endpoint. (Serving
//! as a mailbox is the mailbox core's, `crate::cores::mailbox`.)

use super::*;

pub(super) fn mailbox_from(code: &str) -> Result<MailboxRef, EngineError> {
    if code.starts_with('/') {
        let addr: Multiaddr = code
            .parse()
            .map_err(|e| EngineError::BadCode(format!("not a multiaddr: {e}")))?;
        return match addr.iter().last() {
            Some(Protocol::P2p(peer)) => Ok(MailboxRef {
                peer_id: peer.to_bytes(),
                addrs: vec![addr.to_vec()],
            }),
            _ => Err(EngineError::BadCode(
                "a mailbox address must end in /p2p/<peer id>".into(),
            )),
        };
    }
    let card = ContactCard::from_code(code).map_err(|e| EngineError::BadCode(e.to_string()))?;
    if PeerId::from_bytes(&card.peer_id).is_err() {
        return Err(EngineError::BadCode("bad peer id".into()));
    }
    Ok(MailboxRef {
        peer_id: card.peer_id,
        addrs: card.addrs,
    })
}

pub(super) fn load_mailboxes(store: &Store) -> Vec<MailboxRef> {
    store
        .read(|r| r.meta("mailboxes"))
        .ok()
        .flatten()
        .and_then(|b| kith_proto::codec::decode(&b, 16 * 1024).ok())
        .unwrap_or_default()
}
impl State {
    /// One mailbox answered a push endpoint change (or could not be reached); `refused`
    /// carries the reason it refused, if it did.
    pub(super) fn push_result(
        &mut self,
        mailbox: &[u8],
        wait: Option<u64>,
        status: String,
        refused: Option<String>,
    ) {
        if self.my_mailboxes.iter().any(|m| m.peer_id == mailbox) {
            self.push_status.insert(mailbox.to_vec(), status);
        }
        let Some(id) = wait else { return };
        let Some(w) = self.push_waits.get_mut(&id) else {
            return;
        };
        w.waiting = w.waiting.saturating_sub(1);
        if let Some(r) = refused {
            let who = PeerId::from_bytes(mailbox)
                .map(|p| p.to_string())
                .unwrap_or_default();
            w.refused.push(format!("mailbox {who} {r}"));
        }
        if w.waiting == 0
            && let Some(w) = self.push_waits.remove(&id)
        {
            let r = if w.refused.is_empty() {
                Ok(self.push_view())
            } else {
                Err(EngineError::PushRefused(w.refused.join("; ")))
            };
            let _ = w.reply.send(r);
        }
    }

    /// Stores the quota figures a mailbox gave at registration.
    pub(super) fn save_usage(
        &mut self,
        w: &mut WriteTx<'_>,
        mailbox: &[u8],
        u: MailboxUsage,
    ) -> Result<(), Fatal> {
        self.mailbox_usage.insert(mailbox.to_vec(), u);
        let mine: HashSet<&Vec<u8>> = self.my_mailboxes.iter().map(|m| &m.peer_id).collect();
        self.mailbox_usage
            .retain(|k, _| mine.contains(k) || k.as_slice() == mailbox);
        let list: Vec<(Vec<u8>, MailboxUsage)> = self
            .mailbox_usage
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        let bytes = kith_proto::codec::encode(&list)?;
        w.set_meta("mailbox_usage", &bytes)?;
        Ok(())
    }

    /// `push.set` / `push.clear`: stores the endpoint (or its removal); after the commit it
    /// goes to every mailbox and `reply` is answered when they all did.
    pub(super) fn set_push_endpoint(
        &mut self,
        w: &mut WriteTx<'_>,
        endpoint: Option<String>,
        reply: Reply<PushView>,
        after: &mut Vec<After>,
    ) -> Result<(), Fatal> {
        if let Some(url) = &endpoint
            && let Err(e) = kith_proto::wire::check_push_endpoint(url)
        {
            let _ = reply.send(Err(EngineError::BadEndpoint(e.to_string())));
            return Ok(());
        }
        match &endpoint {
            Some(url) => w.set_meta("push_endpoint", url.as_bytes())?,
            None => w.remove_meta("push_endpoint")?,
        }
        after.push(After::PushAll(endpoint, reply));
        Ok(())
    }

    /// Dials every mailbox this device is registered with.
    pub(super) fn dial_mailboxes(&mut self) {
        let dials: Vec<NetCommand> = self
            .my_mailboxes
            .iter()
            .filter_map(|m| {
                let peer = PeerId::from_bytes(&m.peer_id).ok()?;
                Some(NetCommand::Dial {
                    peer,
                    addrs: decode_addrs(&m.addrs),
                })
            })
            .collect();
        for d in dials {
            self.net_send(d);
        }
    }
}
