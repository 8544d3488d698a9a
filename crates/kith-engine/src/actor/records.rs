//! This device's user record in the DHT: what it advertises, publishing and republishing it,
//! and publishing again soon when no DHT peer stored it.

use super::*;

/// The wait before publishing the user record again after `failures` publications in a row
/// that no DHT peer stored: 2 s, doubling, at most [`MAX_RECORD_RETRY`].
pub(super) fn record_retry_after(failures: u32) -> Duration {
    Duration::from_secs(1u64 << failures.clamp(1, 16)).min(MAX_RECORD_RETRY)
}

impl Engine {
    /// The outcome of publishing our record. A record no DHT peer stored (a node that
    /// published before it had found any DHT peers, or while they were unreachable) leaves
    /// this user unreachable for anyone without their addresses, so it is published again
    /// soon, backing off to [`MAX_RECORD_RETRY`], instead of waiting for the half-hourly
    /// republication.
    pub(super) fn record_published(&mut self, ok: bool) {
        if ok {
            self.st.record_failures = 0;
            self.st.record_retry = None;
            return;
        }
        self.st.record_failures = self.st.record_failures.saturating_add(1);
        let wait = record_retry_after(self.st.record_failures);
        if self.st.record_failures == 1 {
            warn!(
                retry_in_s = wait.as_secs(),
                "no DHT peer stored the user record; publishing it again soon"
            );
        }
        self.st.record_retry = Some(Instant::now() + wait);
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
        self.st.record_tag = Some(tag);
        let issued = now_ms();
        let mut rec = UserRecord {
            version: 1,
            identity: self.st.me.0,
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
                    key: user_record_key(&self.st.me.0),
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
    /// Listen addresses worth telling others: no unspecified ones, and loopback only when
    /// there is nothing else.
    pub(super) fn advertised_addrs(&self) -> Vec<Multiaddr> {
        use kith_net::Multiaddr as M;
        let all: Vec<M> = self
            .net
            .listen_addrs()
            .into_iter()
            .filter(|a| {
                !a.iter().any(|p| {
                    matches!(p,
                        Protocol::Ip4(ip) if ip.is_unspecified())
                        || matches!(p, Protocol::Ip6(ip) if ip.is_unspecified())
                })
            })
            .collect();
        let non_loop: Vec<M> = all
            .iter()
            .filter(|a| {
                !a.iter().any(|p| {
                    matches!(p, Protocol::Ip4(ip) if ip.is_loopback())
                        || matches!(p, Protocol::Ip6(ip) if ip.is_loopback())
                })
            })
            .cloned()
            .collect();
        let (circuits, direct): (Vec<M>, Vec<M>) = if non_loop.is_empty() { all } else { non_loop }
            .into_iter()
            .partition(kith_net::reach::is_circuit);
        // Relay addresses always get room: behind NAT they are the only ones that work.
        let mut circuits = circuits;
        circuits.truncate(MAX_DEVICE_ADDRS / 2);
        let mut out = direct;
        out.truncate(MAX_DEVICE_ADDRS - circuits.len());
        out.extend(circuits);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_record_is_published_again_soon_then_less_often() {
        assert_eq!(record_retry_after(0), Duration::from_secs(2));
        assert_eq!(record_retry_after(1), Duration::from_secs(2));
        assert_eq!(record_retry_after(2), Duration::from_secs(4));
        assert_eq!(record_retry_after(7), Duration::from_secs(128));
        assert_eq!(record_retry_after(8), Duration::from_secs(256));
        assert_eq!(record_retry_after(9), MAX_RECORD_RETRY);
        assert_eq!(record_retry_after(u32::MAX), MAX_RECORD_RETRY);
        assert!(MAX_RECORD_RETRY < REPUBLISH_EVERY);
    }
}
