//! The I/O side of delivery: reads a device's outbox and sends the next batch where the
//! delivery core (`crate::cores::delivery`) says, claiming a pre-key first when there is no
//! session; looks people up in the DHT when their devices cannot be reached.

use super::*;

impl Engine {
    /// A request to `dev` failed or could not be sent: the delivery core backs it off.
    pub(super) fn failed(&mut self, dev: DeviceKey) {
        let st = &mut self.st;
        let failure = st.delivery.failed(dev, Instant::now(), &mut st.rng);
        if failure.look_up {
            self.lookup_device(dev);
        }
    }

    /// Looks the device's owner up in the DHT, at most every [`delivery::LOOKUP_EVERY`].
    pub(super) fn lookup_device(&mut self, dev: DeviceKey) {
        let Ok(Some(d)) = self.store.read(|r| r.device(&dev)) else {
            return;
        };
        self.lookup_identity(d.identity);
    }

    /// Looks a person's user record up in the DHT, at most every [`delivery::LOOKUP_EVERY`].
    pub(super) fn lookup_identity(&mut self, identity: IdentityKey) {
        if !self.st.delivery.may_look_up(identity, Instant::now()) {
            return;
        }
        let tag = self.st.tag();
        let sent = self.st.net.send(NetCommand::GetRecord {
            tag,
            key: user_record_key(&identity),
        });
        if sent.is_ok() {
            self.st.record_tags.insert(tag, identity);
        }
    }

    /// Devices whose turn to claim a pre-key came (claims ended since): pumped now.
    pub(super) fn pump_claimers(&mut self) {
        while let Some(dev) = self.st.delivery.next_claimer() {
            self.pump(dev);
            self.st.delivery.turn_unused(&dev);
        }
    }

    /// Sends the next batch of a device's outbox, or claims a pre-key first.
    pub(super) fn pump(&mut self, dev: DeviceKey) {
        if !self.st.delivery.ready(&dev, Instant::now()) {
            return;
        }
        let read = self
            .store
            .read(|r| Ok((r.outbox(&dev, PUMP_READ)?, r.device(&dev)?)));
        let (items, device) = match read {
            Ok(x) => x,
            Err(e) => {
                warn!(error = %e, "cannot read outbox");
                return;
            }
        };
        let Some(device) = device.filter(|_| !items.is_empty()) else {
            self.st.delivery.forget(&dev);
            return;
        };
        let Ok(peer) = PeerId::from_bytes(&device.peer_id) else {
            self.st.delivery.forget(&dev);
            return;
        };
        // A mailbox hands kept mail only to a device that registered on its current
        // connection (it does on every connection): its registration answer then tells what
        // was kept, and offline devices are not dialled (they come to the mailbox).
        let head_is_kept_mail = items.first().is_some_and(|(_, it)| it.is_kept_mail());
        if !self.st.mailbox.hands_over(&peer, head_is_kept_mail) {
            self.st
                .delivery
                .hold(dev, Instant::now() + mailbox_core::KEPT_MAIL_HOLD);
            return;
        }
        // A device that did not answer twice is likely offline: hand its envelopes to one of
        // its mailboxes (a different one on each failure) until it is back.
        let mailbox = self
            .st
            .delivery
            .route(&dev, self.st.connected.contains(&peer), &device.mailboxes)
            .and_then(|m| {
                PeerId::from_bytes(&m.peer_id)
                    .ok()
                    .map(|p| (p, decode_addrs(&m.addrs)))
            });
        let addrs = decode_addrs(&device.addrs);
        if addrs.is_empty() && !self.st.connected.contains(&peer) {
            // Nowhere to dial yet: ask the DHT where the device is (the dial below may still
            // succeed through addresses the network layer learned by itself).
            self.lookup_device(dev);
        }
        let delivery::Batch { seqs, envelopes } = delivery::plan_batch(&items);
        if envelopes.is_empty()
            && self
                .store
                .read(|r| r.sessions(&dev))
                .is_ok_and(|s| !s.is_empty())
        {
            // A session exists but the first item is not sealed (it was queued while a
            // claim was answered): seal now and try again.
            let st = &mut self.st;
            let res = self.store.write_as(|w| {
                st.seal_waiting(w, &dev)?;
                st.flush_crypto(w)
            });
            match res {
                Ok(()) => {
                    if self
                        .store
                        .read(|r| r.outbox(&dev, 1))
                        .is_ok_and(|o| o.first().is_some_and(|(_, it)| it.sealed.is_some()))
                    {
                        return self.pump(dev);
                    }
                }
                Err(e) => {
                    warn!(error = %e, "cannot seal the outbox");
                    self.reload_after_failed_commit();
                }
            }
        } else if envelopes.is_empty()
            && mailbox.is_some()
            && let Some(bundle) = device.prekey.clone()
        {
            // No session, the device is away, but its record carries a signed fallback
            // pre-key: open the session from it, seal, and leave the envelopes with a mailbox.
            let ok = self.write_then(
                "cannot open a session from a published pre-key",
                |st, w, after| st.on_prekey(w, peer, dev, bundle, after),
            );
            if ok
                && self
                    .store
                    .read(|r| r.outbox(&dev, 1))
                    .is_ok_and(|o| o.first().is_some_and(|(_, it)| it.sealed.is_some()))
            {
                return self.pump(dev);
            }
            return;
        }
        if envelopes.is_empty() && !self.st.delivery.may_claim(dev) {
            // Too many claims out: wait in line (`pump_claimers` hands the turn back).
            self.st
                .delivery
                .hold(dev, Instant::now() + delivery::CLAIM_WAIT);
            return;
        }
        let tag = self.st.tag();
        let (req, pending, peer, addrs) = if envelopes.is_empty() {
            (Request::ClaimPrekey, Pending::Claim { dev }, peer, addrs)
        } else {
            let via_mailbox = mailbox.is_some();
            let (to, to_addrs) = mailbox.unwrap_or((peer, addrs));
            (
                Request::Deliver { envelopes },
                Pending::Deliver {
                    dev,
                    seqs,
                    via_mailbox,
                },
                to,
                to_addrs,
            )
        };
        // Deposits go from a throwaway identity, so the mailbox cannot tell who writes to its
        // user (sealed sender toward the mailbox), unless it can only be reached through a
        // relay, which that swarm cannot dial.
        let anonymous = matches!(
            pending,
            Pending::Deliver {
                via_mailbox: true,
                ..
            }
        ) && addrs.iter().any(|a| !kith_net::reach::is_circuit(a));
        let cmd = if anonymous {
            NetCommand::Deposit {
                tag,
                peer,
                addrs,
                req,
            }
        } else {
            NetCommand::Request {
                tag,
                peer,
                addrs,
                req,
            }
        };
        match self.st.net.send(cmd) {
            Ok(()) => {
                self.st.pending.insert(tag, pending);
                self.st.delivery.sent(dev);
            }
            Err(_) => self.failed(dev),
        }
    }
}
