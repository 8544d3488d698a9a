//! This device's user record in the DHT: what it advertises, publishing and republishing it,
//! and publishing again soon when no DHT peer stored it. The schedule and the choice of
//! addresses are the record core's (`crate::cores::record`); this is its I/O.

use super::*;

impl Engine {
    /// The DHT answered publication `tag`: the record core decides whether and when it goes
    /// out again (see `crate::cores::record`).
    pub(super) fn record_published(&mut self, tag: u64, stored: bool) {
        let now = Instant::now();
        if let record::Outcome::Failed {
            retry_at,
            first: true,
        } = self.st.record.outcome(tag, stored, now)
        {
            warn!(
                retry_in_s = retry_at.saturating_duration_since(now).as_secs(),
                "no DHT peer stored the user record; publishing it again soon"
            );
        }
    }

    pub(super) fn publish_record(&mut self) {
        let tag = self.st.tag();
        self.publish_record_tagged(tag);
    }

    /// Publishes the user record; [`NetEvent::Published`] with `tag` follows. Returns
    /// whether the record went to the network.
    pub(super) fn publish_record_tagged(&mut self, tag: u64) -> bool {
        let addrs = self.st.advertised_addrs();
        if addrs.is_empty() {
            return false;
        }
        self.st.record.sent(tag);
        let issued = now_ms();
        let mut rec = UserRecord {
            version: 1,
            identity: self.st.me,
            devices: vec![RecordDevice {
                cert: self.st.device.cert().clone(),
                addrs: addrs.iter().map(|a| a.to_vec()).collect(),
                mailboxes: self.st.my_mailboxes.clone(),
                prekey: Some(self.st.device.claim_prekey(true)),
            }],
            issued_ms: issued,
            expires_ms: issued + RECORD_LIFETIME_MS,
            signature: Vec::new(),
        };
        let Ok(msg) = rec.signing_bytes() else {
            return false;
        };
        rec.signature = self.st.keys.identity.sign(&msg);
        match kith_proto::codec::encode(&rec) {
            Ok(value) => self
                .st
                .net
                .send(NetCommand::PutRecord {
                    key: user_record_key(&self.st.me),
                    value,
                    tag: Some(tag),
                })
                .is_ok(),
            Err(e) => {
                warn!(error = %e, "cannot encode user record");
                false
            }
        }
    }
}

impl State {
    /// Listen addresses worth telling others (see [`record::advertised`]).
    pub(super) fn advertised_addrs(&self) -> Vec<Multiaddr> {
        record::advertised(self.net.listen_addrs())
    }
}
