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

    /// Publishes the user record; [`NetEvent::Published`] with its tag follows, which the
    /// record core takes as the outcome (`record_published`).
    pub(super) fn publish_record(&mut self) {
        let addrs = self.st.advertised_addrs();
        // A device that took another identity (linked) publishes once restarted.
        if addrs.is_empty() || self.st.links.relinked() {
            return;
        }
        // This device and the person's other devices (docs/protocol.md, "Linked devices").
        let others = self.own_record_devices();
        let Some(rec) = self.st.signed_record(others, RECORD_LIFETIME_MS) else {
            return;
        };
        let tag = self.st.tag();
        self.st.record.sent(tag);
        let sent = match kith_proto::codec::encode(&rec) {
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
        };
        if !sent {
            // The network's queue was full: as if no peer stored it (tried again later).
            self.record_published(tag, false);
        }
    }
}

impl State {
    /// Listen addresses worth telling others (see [`record::advertised`]).
    pub(super) fn advertised_addrs(&self) -> Vec<Multiaddr> {
        record::advertised(self.net.listen_addrs())
    }
}
