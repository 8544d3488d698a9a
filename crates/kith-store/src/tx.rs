//! Typed access to the tables inside one transaction.

use kith_proto::codec;
use redb::{ReadTransaction, ReadableTable, ReadableTableMetadata, WriteTransaction};
use serde::Serialize;
use serde::de::DeserializeOwned;

use kith_types::{CurveKey, DeviceKey, EnvelopeHash, IdentityKey};

use crate::model::*;
use crate::*;

pub(crate) fn enc<T: Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    codec::encode(v).map_err(|e| StoreError::Encode(e.to_string()))
}

pub(crate) fn dec<T: DeserializeOwned>(b: &[u8]) -> Result<T, StoreError> {
    codec::decode(b, MAX_VALUE).map_err(StoreError::Undecodable)
}

/// Reads shared by read and write transactions.
macro_rules! reads {
    () => {
        /// A meta value.
        pub fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
            let t = open!(self, META);
            Ok(t.get(key)?.map(|v| v.value().to_vec()))
        }

        /// A meta value holding a little-endian u32.
        pub fn meta_u32(&self, key: &str) -> Result<Option<u32>, StoreError> {
            match self.meta(key)? {
                None => Ok(None),
                Some(b) => {
                    let arr: [u8; 4] = b
                        .as_slice()
                        .try_into()
                        .map_err(|_| StoreError::Corrupt(format!("meta {key}")))?;
                    Ok(Some(u32::from_le_bytes(arr)))
                }
            }
        }

        /// A contact by identity.
        pub fn contact(&self, identity: &IdentityKey) -> Result<Option<Contact>, StoreError> {
            let t = open!(self, CONTACTS);
            t.get(*identity)?.map(|v| dec(v.value())).transpose()
        }

        /// What is kept about a contact besides the contact itself (default when none).
        pub fn contact_extra(&self, identity: &IdentityKey) -> Result<ContactExtra, StoreError> {
            let t = open!(self, CONTACT_EXTRAS);
            Ok(t.get(*identity)?
                .map(|v| dec(v.value()))
                .transpose()?
                .unwrap_or_default())
        }

        /// The identity a contact name refers to.
        pub fn contact_by_name(&self, name: &str) -> Result<Option<Contact>, StoreError> {
            let t = open!(self, CONTACT_NAMES);
            let id = t.get(self.name_slot(name).as_ref())?.map(|v| v.value());
            match id {
                Some(id) => self.contact(&id),
                None => Ok(None),
            }
        }

        /// Every contact, ordered by identity.
        pub fn contacts(&self) -> Result<Vec<Contact>, StoreError> {
            let t = open!(self, CONTACTS);
            let mut out = Vec::new();
            for row in t.iter()? {
                let (_, v) = row?;
                out.push(dec(v.value())?);
            }
            Ok(out)
        }

        /// A remote device by its [`device_key`].
        pub fn device(&self, key: &DeviceKey) -> Result<Option<KnownDevice>, StoreError> {
            let t = open!(self, DEVICES);
            t.get(*key)?.map(|v| dec(v.value())).transpose()
        }

        /// The key of the remote device with this Curve25519 key, if its certificate is known.
        pub fn device_by_curve(&self, curve: &CurveKey) -> Result<Option<DeviceKey>, StoreError> {
            let t = open!(self, CURVE_DEVICES);
            Ok(t.get(*curve)?.map(|v| v.value()))
        }

        /// Whether `curve` may be bound to device `dev`: it is bound to no device yet, or to
        /// `dev` already. A Curve25519 key bound to one device is never rebound to another
        /// (issue 14, hole 2: a certificate from another identity or device naming a known
        /// key is refused wherever certificates are learned).
        pub fn curve_free_for(
            &self,
            curve: &CurveKey,
            dev: &DeviceKey,
        ) -> Result<bool, StoreError> {
            Ok(self.device_by_curve(curve)?.is_none_or(|d| d == *dev))
        }

        /// The device whose last envelope carried the Olm ratchet key `ratchet` (the index a
        /// relayed envelope finds its session by, in one lookup).
        pub fn device_by_ratchet(
            &self,
            ratchet: &[u8; 32],
        ) -> Result<Option<DeviceKey>, StoreError> {
            let t = open!(self, RATCHET_DEVICES);
            Ok(t.get(ratchet)?.map(|v| DeviceKey(v.value())))
        }

        /// Every known remote device.
        pub fn devices(&self) -> Result<Vec<KnownDevice>, StoreError> {
            let t = open!(self, DEVICES);
            let mut out = Vec::new();
            for row in t.iter()? {
                let (_, v) = row?;
                out.push(dec(v.value())?);
            }
            Ok(out)
        }

        /// The encrypted session pickles for a remote device (by device key).
        pub fn sessions(&self, key: &DeviceKey) -> Result<Vec<String>, StoreError> {
            let t = open!(self, SESSIONS);
            Ok(t.get(*key)?
                .map(|v| dec(v.value()))
                .transpose()?
                .unwrap_or_default())
        }

        /// The local sequence number of a message in a conversation, if stored.
        pub fn message_seq(&self, conv: &IdentityKey, id: u128) -> Result<Option<u64>, StoreError> {
            let t = open!(self, MSG_INDEX);
            Ok(t.get((*conv, id))?.map(|v| v.value()))
        }

        /// The last `limit` messages of a conversation, oldest first.
        pub fn history(
            &self,
            conv: &IdentityKey,
            limit: usize,
        ) -> Result<Vec<(u64, StoredMessage)>, StoreError> {
            let conv = *conv;
            let t = open!(self, MESSAGES);
            let mut out = Vec::new();
            for row in t.range((conv, 0u64)..=(conv, u64::MAX))?.rev().take(limit) {
                let (k, v) = row?;
                out.push((k.value().1, dec(v.value())?));
            }
            out.reverse();
            Ok(out)
        }

        /// The first `limit` outbox items for a device, in order.
        pub fn outbox(
            &self,
            device: &DeviceKey,
            limit: usize,
        ) -> Result<Vec<(u64, OutboxItem)>, StoreError> {
            let device = *device;
            let t = open!(self, OUTBOX);
            let mut out = Vec::new();
            for row in t.range((device, 0u64)..=(device, u64::MAX))?.take(limit) {
                let (k, v) = row?;
                out.push((k.value().1, dec(v.value())?));
            }
            Ok(out)
        }

        /// One outbox item.
        pub fn outbox_item(
            &self,
            device: &DeviceKey,
            seq: u64,
        ) -> Result<Option<OutboxItem>, StoreError> {
            let t = open!(self, OUTBOX);
            t.get((*device, seq))?.map(|v| dec(v.value())).transpose()
        }

        /// The devices that have anything in the outbox.
        pub fn outbox_devices(&self) -> Result<Vec<DeviceKey>, StoreError> {
            let t = open!(self, OUTBOX);
            let mut out: Vec<DeviceKey> = Vec::new();
            let mut next = Some(DeviceKey([0u8; 32]));
            while let Some(from) = next {
                let first = t.range((from, 0u64)..)?.next().transpose()?;
                next = None;
                if let Some((k, _)) = first {
                    let dev = k.value().0;
                    out.push(dev);
                    next = successor(dev.0).map(DeviceKey);
                }
            }
            Ok(out)
        }

        /// The device key of a device registered with this node's mailbox, by its Curve25519
        /// key.
        pub fn mailbox_user(&self, curve: &CurveKey) -> Result<Option<DeviceKey>, StoreError> {
            let t = open!(self, MAILBOX_USERS);
            Ok(t.get(*curve)?.map(|v| v.value()))
        }

        /// How many devices are registered with this node's mailbox.
        pub fn mailbox_users_len(&self) -> Result<usize, StoreError> {
            let t = open!(self, MAILBOX_USERS);
            Ok(t.len()? as usize)
        }

        /// How many devices of `identity` are registered with this node's mailbox, counting
        /// no further than `upto` (the caller's cap).
        pub fn mailbox_identity_devices(
            &self,
            identity: &IdentityKey,
            upto: usize,
        ) -> Result<usize, StoreError> {
            let t = open!(self, MAILBOX_IDENTITIES);
            let id = identity.as_bytes();
            let mut n = 0;
            for row in t.range((id, &[0u8; 32])..=(id, &[0xffu8; 32]))?.take(upto) {
                row?;
                n += 1;
            }
            Ok(n)
        }

        /// The push endpoint a device registered with this node's mailbox gave (secret).
        pub fn push_endpoint(&self, dev: &DeviceKey) -> Result<Option<String>, StoreError> {
            let t = open!(self, PUSH_ENDPOINTS);
            Ok(t.get(*dev)?.map(|v| v.value().to_string()))
        }

        /// Devices that have Olm sessions with us (for opening envelopes a mailbox relayed).
        pub fn session_devices(&self, limit: usize) -> Result<Vec<DeviceKey>, StoreError> {
            let t = open!(self, SESSIONS);
            let mut out = Vec::new();
            for row in t.iter()?.take(limit) {
                out.push(row?.0.value());
            }
            Ok(out)
        }

        /// Whether an envelope with this hash was already stored.
        pub fn seen(&self, hash: &EnvelopeHash) -> Result<bool, StoreError> {
            let t = open!(self, SEEN);
            Ok(t.get(*hash)?.is_some())
        }
    };
}

fn successor(mut k: [u8; 32]) -> Option<[u8; 32]> {
    for i in (0..32).rev() {
        if k[i] == 255 {
            k[i] = 0;
        } else {
            k[i] += 1;
            return Some(k);
        }
    }
    None
}

/// A read-only snapshot.
pub struct ReadTx {
    txn: ReadTransaction,
    seal: Option<std::sync::Arc<StorageSeal>>,
}

impl std::fmt::Debug for ReadTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReadTx")
    }
}

macro_rules! open {
    ($s:expr, $t:expr) => {
        match $s.open_def($t) {
            Ok(t) => t,
            Err(e) => return Err(StoreError::from(e)),
        }
    };
}

impl ReadTx {
    pub(crate) fn new(txn: ReadTransaction, seal: Option<std::sync::Arc<StorageSeal>>) -> Self {
        Self { txn, seal }
    }

    pub(crate) fn table<D: Def>(&self, d: D) -> Result<D::Ro, StoreError> {
        d.ro(&self.txn, &self.seal)
    }

    fn open_def<D: Def>(&self, d: D) -> Result<D::Ro, StoreError> {
        d.ro(&self.txn, &self.seal)
    }

    /// Where a contact name is kept in the name index (a keyed hash when sealed).
    fn name_slot<'n>(&self, name: &'n str) -> std::borrow::Cow<'n, str> {
        match &self.seal {
            Some(s) => std::borrow::Cow::Owned(s.name_slot(name)),
            None => std::borrow::Cow::Borrowed(name),
        }
    }

    reads!();

    /// How many items wait in a device's outbox (a counter kept with the outbox: one
    /// lookup, however long the outbox is).
    pub fn outbox_len(&self, device: &DeviceKey) -> Result<usize, StoreError> {
        let t = open!(self, OUTBOX_LEN);
        Ok(usize::try_from(t.get(*device)?.map_or(0, |v| v.value())).unwrap_or(usize::MAX))
    }

    /// Ciphertext bytes this node's mailbox keeps for a device (by device key).
    pub fn mailbox_bytes(&self, dev: &DeviceKey) -> Result<u64, StoreError> {
        let t = open!(self, MAILBOX_BYTES);
        Ok(t.get(*dev)?.map_or(0, |v| v.value()))
    }
}

mod counters;

/// One write transaction; see [`Store::write`].
pub struct WriteTx<'a> {
    txn: &'a WriteTransaction,
    faults: &'a crate::Faults,
    seal: Option<std::sync::Arc<StorageSeal>>,
    /// The outbox counters this transaction read or changed (`counters`).
    counters: std::cell::RefCell<counters::Counters>,
}

impl std::fmt::Debug for WriteTx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WriteTx")
    }
}

impl<'a> WriteTx<'a> {
    pub(crate) fn new(
        txn: &'a WriteTransaction,
        faults: &'a crate::Faults,
        seal: Option<std::sync::Arc<StorageSeal>>,
    ) -> Self {
        Self {
            txn,
            faults,
            seal,
            counters: Default::default(),
        }
    }

    /// The redb transaction and the seal (for the sealing pass).
    pub(crate) fn raw_parts(&self) -> (&'a WriteTransaction, Option<std::sync::Arc<StorageSeal>>) {
        (self.txn, self.seal.clone())
    }

    fn open_def<D: Def>(&self, d: D) -> Result<D::Rw<'a>, StoreError> {
        d.rw(self.txn, &self.seal)
    }

    /// Where a contact name is kept in the name index (a keyed hash when sealed).
    fn name_slot<'n>(&self, name: &'n str) -> std::borrow::Cow<'n, str> {
        match &self.seal {
            Some(s) => std::borrow::Cow::Owned(s.name_slot(name)),
            None => std::borrow::Cow::Borrowed(name),
        }
    }

    /// Fails when a fault was injected for this kind of write (tests).
    pub(crate) fn injected(&self, what: &'static str) -> Result<(), StoreError> {
        if self.faults.fire() {
            return Err(StoreError::Injected(what));
        }
        Ok(())
    }

    pub(crate) fn table<D: Def>(&self, d: D) -> Result<D::Rw<'a>, StoreError> {
        d.rw(self.txn, &self.seal)
    }

    pub(crate) fn table_mut<D: Def>(&mut self, d: D) -> Result<D::Rw<'a>, StoreError> {
        d.rw(self.txn, &self.seal)
    }

    reads!();

    pub(crate) fn create_tables(&mut self) -> Result<(), StoreError> {
        self.table_mut(META)?;
        self.table_mut(SEAL_STATE)?;
        self.table_mut(CONTACTS)?;
        self.table_mut(CONTACT_NAMES)?;
        self.table_mut(DEVICES)?;
        self.table_mut(CURVE_DEVICES)?;
        self.table_mut(SESSIONS)?;
        self.table_mut(MESSAGES)?;
        self.table_mut(MSG_INDEX)?;
        self.table_mut(OUTBOX)?;
        self.table_mut(SEEN)?;
        self.table_mut(MAILBOX_USERS)?;
        self.table_mut(MAILBOX_IDENTITIES)?;
        self.table_mut(MAILBOX_BYTES)?;
        self.table_mut(PUSH_ENDPOINTS)?;
        self.table_mut(OUTBOX_LEN)?;
        self.table_mut(CONTACT_EXTRAS)?;
        self.table_mut(RATCHET_DEVICES)?;
        self.table_mut(DEVICE_RATCHETS)?;
        self.create_group_tables()?;
        self.create_topic_tables()?;
        self.create_prekey_tables()?;
        self.create_media_tables()?;
        self.create_held_tables()?;
        self.create_held_fill_tables()?;
        self.create_deposit_tables()?;
        self.create_chat_tables()?;
        self.create_story_tables()?;
        self.create_mention_tables()?;
        Ok(())
    }

    /// Recomputes every device's outbox counter by counting the outbox.
    pub(crate) fn recount_outbox(&mut self) -> Result<(), StoreError> {
        let mut counts: Vec<(DeviceKey, u64)> = Vec::new();
        for row in open!(self, OUTBOX).iter()? {
            let dev = row?.0.value().0;
            match counts.last_mut() {
                Some((d, n)) if *d == dev => *n += 1,
                _ => counts.push((dev, 1)),
            }
        }
        let mut t = open!(self, OUTBOX_LEN);
        t.retain(|_, _| false)?;
        for (dev, n) in counts {
            t.insert(dev, n)?;
        }
        self.forget_all_counters();
        Ok(())
    }

    /// Recomputes every device's kept-bytes counter from the outbox.
    pub(crate) fn recount_mailbox_bytes(&mut self) -> Result<(), StoreError> {
        let mut sums: Vec<(DeviceKey, u64)> = Vec::new();
        for dev in self.outbox_devices()? {
            let mut n = 0u64;
            for (_, item) in self.outbox(&dev, usize::MAX)? {
                n = n.saturating_add(item.kept_bytes());
            }
            if n > 0 {
                sums.push((dev, n));
            }
        }
        let mut t = open!(self, MAILBOX_BYTES);
        t.retain(|_, _| false)?;
        for (dev, n) in sums {
            t.insert(dev, n)?;
        }
        self.forget_all_counters();
        Ok(())
    }

    /// Sets (or with `None` removes) the push endpoint of a device registered with this
    /// node's mailbox.
    pub fn set_push_endpoint(
        &mut self,
        dev: &DeviceKey,
        endpoint: Option<&str>,
    ) -> Result<(), StoreError> {
        let dev = *dev;
        let mut t = open!(self, PUSH_ENDPOINTS);
        match endpoint {
            Some(url) => t.insert(dev, url)?,
            None => t.remove(dev)?,
        };
        Ok(())
    }

    /// Removes a meta value.
    pub fn remove_meta(&mut self, key: &str) -> Result<(), StoreError> {
        open!(self, META).remove(key)?;
        Ok(())
    }

    /// Sets a meta value.
    pub fn set_meta(&mut self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        open!(self, META).insert(key, value)?;
        Ok(())
    }

    /// Adds or replaces a contact and its name. The caller checks the name is free.
    pub fn put_contact(&mut self, c: &Contact) -> Result<(), StoreError> {
        if let Some(old) = self.contact(&c.identity)?
            && old.name != c.name
        {
            open!(self, CONTACT_NAMES).remove(self.name_slot(&old.name).as_ref())?;
        }
        open!(self, CONTACTS).insert(c.identity, enc(c)?.as_slice())?;
        open!(self, CONTACT_NAMES).insert(self.name_slot(&c.name).as_ref(), c.identity)?;
        Ok(())
    }

    /// Adds or replaces a remote device.
    pub fn put_device(&mut self, key: &DeviceKey, d: &KnownDevice) -> Result<(), StoreError> {
        // A certificate the device had already leaves the key → device map as it is (a store
        // written before keys were never rebound may map its key elsewhere); a new one may
        // bind only a key that is free or the device's own.
        let had = self.device(key)?.and_then(|d| d.cert).map(|c| c.curve25519);
        let binds = d
            .cert
            .as_ref()
            .map(|c| c.curve25519)
            .filter(|c| had != Some(*c));
        if let Some(curve) = &binds
            && !self.curve_free_for(curve, key)?
        {
            return Err(StoreError::CurveBound);
        }
        open!(self, DEVICES).insert(*key, enc(d)?.as_slice())?;
        if let Some(curve) = binds {
            open!(self, CURVE_DEVICES).insert(curve, *key)?;
        }
        Ok(())
    }

    /// Removes a contact and its name; the conversation stays (it reappears if the same
    /// identity is added again).
    pub fn remove_contact(&mut self, identity: &IdentityKey) -> Result<(), StoreError> {
        if let Some(c) = self.contact(identity)? {
            open!(self, CONTACT_NAMES).remove(self.name_slot(&c.name).as_ref())?;
        }
        open!(self, CONTACTS).remove(*identity)?;
        open!(self, CONTACT_EXTRAS).remove(*identity)?;
        Ok(())
    }

    /// Replaces what is kept about a contact besides the contact itself.
    pub fn put_contact_extra(
        &mut self,
        identity: &IdentityKey,
        extra: &ContactExtra,
    ) -> Result<(), StoreError> {
        open!(self, CONTACT_EXTRAS).insert(*identity, enc(extra)?.as_slice())?;
        Ok(())
    }

    /// Records that `dev`'s latest envelope opened carried the ratchet key `ratchet`: its
    /// next ones under the same key find it by [`Self::device_by_ratchet`]. The device's
    /// earlier key leaves the index (one entry per device); a key never moves to another
    /// device (the first stays: `false`).
    pub fn set_ratchet(&mut self, dev: &DeviceKey, ratchet: &[u8; 32]) -> Result<bool, StoreError> {
        if let Some(owner) = self.device_by_ratchet(ratchet)? {
            return Ok(owner == *dev);
        }
        let old = open!(self, DEVICE_RATCHETS)
            .insert(dev.as_bytes(), *ratchet)?
            .map(|v| v.value());
        let mut t = open!(self, RATCHET_DEVICES);
        if let Some(old) = old {
            t.remove(&old)?;
        }
        t.insert(ratchet, dev.to_bytes())?;
        Ok(true)
    }

    /// Removes a device with its sessions and everything waiting for it.
    pub fn remove_device(&mut self, key: &DeviceKey) -> Result<(), StoreError> {
        let old = open!(self, DEVICE_RATCHETS)
            .remove(key.as_bytes())?
            .map(|v| v.value());
        if let Some(old) = old {
            open!(self, RATCHET_DEVICES).remove(&old)?;
        }
        if let Some(d) = self.device(key)?
            && let Some(cert) = d.cert
            && self.device_by_curve(&cert.curve25519)? == Some(*key)
        {
            open!(self, CURVE_DEVICES).remove(cert.curve25519)?;
        }
        open!(self, DEVICES).remove(*key)?;
        open!(self, SESSIONS).remove(*key)?;
        let seqs: Vec<u64> = self
            .outbox(key, usize::MAX)?
            .into_iter()
            .map(|(s, _)| s)
            .collect();
        let key = *key;
        {
            let mut t = open!(self, OUTBOX);
            for s in seqs {
                t.remove((key, s))?;
            }
        }
        open!(self, MAILBOX_BYTES).remove(key)?;
        open!(self, PUSH_ENDPOINTS).remove(key)?;
        open!(self, OUTBOX_LEN).remove(key)?;
        self.forget_counters(&key);
        Ok(())
    }

    /// Forgets the sessions with a device (after it could not decrypt ours).
    pub fn drop_sessions(&mut self, key: &DeviceKey) -> Result<(), StoreError> {
        open!(self, SESSIONS).remove(*key)?;
        Ok(())
    }

    /// Saves the session pickles for a remote device.
    pub fn put_sessions(&mut self, key: &DeviceKey, pickles: &[String]) -> Result<(), StoreError> {
        open!(self, SESSIONS).insert(*key, enc(&pickles)?.as_slice())?;
        Ok(())
    }

    /// Appends a message to a conversation unless one with its id is there already.
    /// Returns the new sequence number, or `None` for a duplicate.
    pub fn append_message(
        &mut self,
        conv: &IdentityKey,
        msg: &StoredMessage,
    ) -> Result<Option<u64>, StoreError> {
        if self.message_seq(conv, msg.id)?.is_some() {
            return Ok(None);
        }
        let conv = *conv;
        let mut t = open!(self, MESSAGES);
        let seq = match t.last_key_in((conv, 0u64)..=(conv, u64::MAX))? {
            Some(k) => k.value().1 + 1,
            None => 1,
        };
        t.insert((conv, seq), enc(msg)?.as_slice())?;
        open!(self, MSG_INDEX).insert((conv, msg.id), seq)?;
        Ok(Some(seq))
    }

    /// Raises the status of an outgoing (`outgoing == true`) or incoming message; never
    /// lowers it. Returns the new status if it changed.
    pub fn raise_status(
        &mut self,
        conv: &IdentityKey,
        id: u128,
        outgoing: bool,
        to: Status,
    ) -> Result<Option<Status>, StoreError> {
        let Some(seq) = self.message_seq(conv, id)? else {
            return Ok(None);
        };
        let conv = *conv;
        let mut t = open!(self, MESSAGES);
        let Some(mut msg) = t
            .get((conv, seq))?
            .map(|v| dec::<StoredMessage>(v.value()))
            .transpose()?
        else {
            return Ok(None);
        };
        if msg.outgoing != outgoing || msg.status >= to {
            return Ok(None);
        }
        msg.status = to;
        t.insert((conv, seq), enc(&msg)?.as_slice())?;
        Ok(Some(to))
    }

    /// Appends an item to a device's outbox.
    /// Kept mail (see [`OutboxItem::kept_bytes`]) is added to the device's byte counter.
    pub fn push_outbox(
        &mut self,
        device: &DeviceKey,
        item: &OutboxItem,
    ) -> Result<u64, StoreError> {
        let seq = {
            let dev = *device;
            let mut t = open!(self, OUTBOX);
            let seq = match t.last_key_in((dev, 0u64)..=(dev, u64::MAX))? {
                Some(k) => k.value().1 + 1,
                None => 1,
            };
            t.insert((dev, seq), enc(item)?.as_slice())?;
            seq
        };
        self.adjust_kept(device, item.kept_bytes(), 0)?;
        self.count_outbox(device, true)?;
        Ok(seq)
    }

    /// Replaces an outbox item (after sealing it).
    pub fn update_outbox(
        &mut self,
        device: &DeviceKey,
        seq: u64,
        item: &OutboxItem,
    ) -> Result<(), StoreError> {
        // An update never changes an item's conversation: the node's own messages (with a
        // conversation) are never kept mail, and need no decoding of the old value here.
        let kept = item.conversation == NO_CONVERSATION;
        let (new, old_kept) = {
            let mut t = open!(self, OUTBOX);
            let old = t.insert((*device, seq), enc(item)?.as_slice())?;
            match old {
                None => (true, 0),
                Some(v) if kept => (false, dec::<OutboxItem>(v.value())?.kept_bytes()),
                Some(_) => (false, 0),
            }
        };
        if new {
            self.count_outbox(device, true)?;
        }
        if kept {
            self.adjust_kept(device, item.kept_bytes(), old_kept)?;
        }
        Ok(())
    }

    /// Removes an outbox item, returning it.
    pub fn take_outbox(
        &mut self,
        device: &DeviceKey,
        seq: u64,
    ) -> Result<Option<OutboxItem>, StoreError> {
        let v: Option<OutboxItem> = open!(self, OUTBOX)
            .remove((*device, seq))?
            .map(|v| dec(v.value()))
            .transpose()?;
        if let Some(item) = &v {
            self.adjust_kept(device, 0, item.kept_bytes())?;
            self.count_outbox(device, false)?;
        }
        Ok(v)
    }

    /// Registers a device with this node's mailbox.
    pub fn put_mailbox_user(
        &mut self,
        curve: &CurveKey,
        dev: &DeviceKey,
    ) -> Result<(), StoreError> {
        if self.mailbox_user(curve)?.is_some_and(|d| d != *dev) {
            return Err(StoreError::CurveBound);
        }
        open!(self, MAILBOX_USERS).insert(*curve, dev)?;
        Ok(())
    }

    /// Counts a device registered with this node's mailbox against its identity.
    pub fn put_mailbox_identity(
        &mut self,
        identity: &IdentityKey,
        dev: &DeviceKey,
    ) -> Result<(), StoreError> {
        open!(self, MAILBOX_IDENTITIES).insert((identity.as_bytes(), dev.as_bytes()), ())?;
        Ok(())
    }

    /// Records that an envelope was stored.
    pub fn mark_seen(&mut self, hash: &EnvelopeHash, now_ms: u64) -> Result<(), StoreError> {
        open!(self, SEEN).insert(*hash, now_ms)?;
        Ok(())
    }

    /// Forgets envelope hashes older than `before_ms`; returns how many.
    pub fn prune_seen(&mut self, before_ms: u64) -> Result<u64, StoreError> {
        let mut t = open!(self, SEEN);
        let before = t.len()?;
        t.retain(|_, at| at >= before_ms)?;
        Ok(before - t.len()?)
    }
}

#[cfg(test)]
mod tests;
