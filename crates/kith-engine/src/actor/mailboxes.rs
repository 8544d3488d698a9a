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

/// Largest encoded per-mailbox map read back from the store.
const MAX_BY_MAILBOX: usize = 16 * 1024;

/// A map kept per mailbox (tokens, quota figures), as it is stored: a list of (encoded peer
/// id, value), the same bytes as when the maps were keyed by the encoded peer id.
pub(super) fn encode_by_mailbox<V: serde::Serialize + Clone>(
    map: &HashMap<PeerId, V>,
) -> Result<Vec<u8>, kith_proto::codec::EncodeError> {
    let list: Vec<(Vec<u8>, V)> = map.iter().map(|(k, v)| (k.to_bytes(), v.clone())).collect();
    kith_proto::codec::encode(&list)
}

/// Reads back a map [`encode_by_mailbox`] stored under the meta `key`. Nothing stored, or a
/// value that does not decode, is an empty map; an entry whose key is not a peer id is
/// dropped (no mailbox is registered with under one).
pub(super) fn load_by_mailbox<V: serde::de::DeserializeOwned>(
    store: &Store,
    key: &str,
) -> HashMap<PeerId, V> {
    store
        .read(|r| r.meta(key))
        .ok()
        .flatten()
        .map(|b| decode_by_mailbox(&b))
        .unwrap_or_default()
}

/// The map in bytes [`encode_by_mailbox`] made (empty when they do not decode).
fn decode_by_mailbox<V: serde::de::DeserializeOwned>(bytes: &[u8]) -> HashMap<PeerId, V> {
    kith_proto::codec::decode::<Vec<(Vec<u8>, V)>>(bytes, MAX_BY_MAILBOX)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(k, v)| PeerId::from_bytes(&k).ok().map(|p| (p, v)))
        .collect()
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
        if self.my_mailboxes.iter().any(|m| m.peer_id == mailbox)
            && let Ok(p) = PeerId::from_bytes(mailbox)
        {
            self.push_status.insert(p, status);
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
        let mailbox = PeerId::from_bytes(mailbox).ok();
        if let Some(p) = mailbox {
            self.mailbox_usage.insert(p, u);
        }
        let mine: HashSet<&Vec<u8>> = self.my_mailboxes.iter().map(|m| &m.peer_id).collect();
        self.mailbox_usage
            .retain(|k, _| Some(*k) == mailbox || mine.contains(&k.to_bytes()));
        let bytes = encode_by_mailbox(&self.mailbox_usage)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The per-mailbox maps are stored as they were when keyed by encoded peer ids.
    #[test]
    fn per_mailbox_maps_keep_their_stored_bytes() {
        let (a, b) = (PeerId::random(), PeerId::random());
        // One entry: the list's order does not depend on the map's.
        let old: Vec<(Vec<u8>, String)> = vec![(a.to_bytes(), "t".into())];
        let old_bytes = kith_proto::codec::encode(&old).unwrap();
        let map: HashMap<PeerId, String> = decode_by_mailbox(&old_bytes);
        assert_eq!(map.get(&a).map(String::as_str), Some("t"));
        assert_eq!(encode_by_mailbox(&map).unwrap(), old_bytes);
        // Two entries come back whatever order they were written in.
        let two: HashMap<PeerId, u32> = [(a, 1), (b, 2)].into_iter().collect();
        let back: HashMap<PeerId, u32> = decode_by_mailbox(&encode_by_mailbox(&two).unwrap());
        assert_eq!(back, two);
        // A key that is no peer id is dropped; bytes that do not decode are an empty map.
        let bad = vec![(vec![0xff, 0xff], 1u32), (b.to_bytes(), 2)];
        let bad: HashMap<PeerId, u32> =
            decode_by_mailbox(&kith_proto::codec::encode(&bad).unwrap());
        assert_eq!(bad, [(b, 2)].into_iter().collect::<HashMap<_, _>>());
        assert!(decode_by_mailbox::<u32>(&[0xff; 3]).is_empty());
    }
}
