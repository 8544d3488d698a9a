//! Sealing at rest: every value of a table declared with [`SealedDef`] is stored sealed with
//! XChaCha20-Poly1305 under a key derived from the node's storage key, with the table's name
//! and the row's key bound as associated data (a row moved to another key or table no longer
//! opens). Callers keep their types: [`SealedTable`] has the methods of a redb table (get,
//! insert, remove, iter, range, …) and hands out opened values ([`Plain`]).
//!
//! Keys stay in clear (they are what lookups and ranges order by): they are ids, hashes and
//! numbers, except contact names, which are replaced by a keyed hash ([`StorageSeal::name_slot`]).
//!
//! A value on disk is `1 (version) ‖ nonce (24) ‖ ciphertext ‖ tag (16)`; the associated
//! data is `"kith-store-v1" ‖ 0 ‖ table name ‖ 0 ‖ key bytes`.
//!
//! A store opened without a storage key ([`crate::Store::open`]) keeps values in clear (tests,
//! tools); a store that was sealed refuses to open without its key. A clear store opened with
//! a key is sealed in place in one write transaction ([`crate::WriteTx::seal_all`]).

use std::borrow::Borrow;
use std::marker::PhantomData;
use std::sync::Arc;

use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use redb::{AccessGuard, Key, ReadableTable, Table, TableDefinition};
use sha2::{Digest, Sha256};

use crate::StoreError;

/// The version byte of a sealed value.
const VERSION: u8 = 1;
/// Nonce bytes of a sealed value.
const NONCE: usize = 24;
/// Bytes a sealed value has beyond its plain text.
pub const OVERHEAD: usize = 1 + NONCE + 16;

/// The keys that seal rows, derived from the storage key. Never printed.
pub struct StorageSeal {
    cipher: XChaCha20Poly1305,
    names: [u8; 32],
}

impl std::fmt::Debug for StorageSeal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StorageSeal(..)")
    }
}

impl Drop for StorageSeal {
    fn drop(&mut self) {
        self.names = [0; 32];
    }
}

fn derive(label: &[u8], key: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(label);
    h.update([0u8]);
    h.update(key);
    h.finalize().into()
}

impl StorageSeal {
    /// The sealing keys of the storage key `key` (32 random bytes kept in the key file).
    pub fn new(key: &[u8; 32]) -> Self {
        let cipher = XChaCha20Poly1305::new(&derive(b"kith-store-seal-v1", key).into());
        Self {
            cipher,
            names: derive(b"kith-store-names-v1", key),
        }
    }

    fn aad(table: &str, key: &[u8]) -> Vec<u8> {
        let mut aad = Vec::with_capacity(16 + table.len() + key.len());
        aad.extend_from_slice(b"kith-store-v1\0");
        aad.extend_from_slice(table.as_bytes());
        aad.push(0);
        aad.extend_from_slice(key);
        aad
    }

    /// Seals `plain` as the value of row `key` of `table`.
    pub(crate) fn seal(
        &self,
        table: &str,
        key: &[u8],
        plain: &[u8],
    ) -> Result<Vec<u8>, StoreError> {
        let nonce: [u8; NONCE] = rand::random();
        let mut buf = Vec::with_capacity(plain.len() + OVERHEAD);
        buf.extend_from_slice(plain);
        self.cipher
            .encrypt_in_place(&XNonce::from(nonce), &Self::aad(table, key), &mut buf)
            .map_err(|_| StoreError::Encode("sealing a row failed".into()))?;
        let mut out = Vec::with_capacity(buf.len() + 1 + NONCE);
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&buf);
        Ok(out)
    }

    /// Opens the sealed value of row `key` of `table`.
    pub(crate) fn open(
        &self,
        table: &str,
        key: &[u8],
        sealed: &[u8],
    ) -> Result<Vec<u8>, StoreError> {
        if sealed.len() < OVERHEAD || sealed[0] != VERSION {
            return Err(StoreError::Unsealable);
        }
        let nonce: [u8; NONCE] = sealed[1..1 + NONCE]
            .try_into()
            .map_err(|_| StoreError::Unsealable)?;
        #[cfg(test)]
        OPENS.with(|n| n.set(n.get() + 1));
        let mut buf = sealed[1 + NONCE..].to_vec();
        self.cipher
            .decrypt_in_place(&XNonce::from(nonce), &Self::aad(table, key), &mut buf)
            .map_err(|_| StoreError::Unsealable)?;
        Ok(buf)
    }

    /// The key under which a contact name is stored: a keyed hash (hex), so the name is not
    /// on disk in clear while lookups by name still take one step.
    pub(crate) fn name_slot(&self, name: &str) -> String {
        let mut h = Sha256::new();
        h.update(b"kith-contact-name\0");
        h.update(self.names);
        h.update(name.as_bytes());
        let d: [u8; 32] = h.finalize().into();
        let mut s = String::with_capacity(64);
        for b in d {
            s.push_str(&format!("{b:02x}"));
        }
        s
    }
}

/// The definition of a table whose values are sealed (see the module docs).
pub(crate) struct SealedDef<K: Key + 'static> {
    pub(crate) name: &'static str,
    pub(crate) def: TableDefinition<'static, K, &'static [u8]>,
}

impl<K: Key + 'static> Clone for SealedDef<K> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<K: Key + 'static> Copy for SealedDef<K> {}

impl<K: Key + 'static> SealedDef<K> {
    pub(crate) const fn new(name: &'static str) -> Self {
        Self {
            name,
            def: TableDefinition::new(name),
        }
    }
}

/// What a table definition opens to, in a read or a write transaction: a plain definition
/// to the redb table, a [`SealedDef`] to a [`SealedTable`].
pub(crate) trait Def: Copy {
    type Key: Key + 'static;
    type Value: redb::Value + 'static;
    /// The table in a read transaction.
    type Ro;
    /// The table in a write transaction.
    type Rw<'a>;
    /// The definition of the table as redb stores it.
    fn raw(self) -> TableDefinition<'static, Self::Key, Self::Value>;
    fn ro(
        self,
        txn: &redb::ReadTransaction,
        seal: &Option<Arc<StorageSeal>>,
    ) -> Result<Self::Ro, StoreError>;
    fn rw<'a>(
        self,
        txn: &'a redb::WriteTransaction,
        seal: &Option<Arc<StorageSeal>>,
    ) -> Result<Self::Rw<'a>, StoreError>;
    /// Seals the table's clear values in place (nothing for a table that is not sealed);
    /// returns how many rows were sealed.
    fn seal_in_place(
        self,
        _txn: &redb::WriteTransaction,
        _seal: &StorageSeal,
    ) -> Result<u64, StoreError> {
        Ok(0)
    }
}

impl<K: Key + 'static, V: redb::Value + 'static> Def for TableDefinition<'static, K, V> {
    type Key = K;
    type Value = V;
    type Ro = redb::ReadOnlyTable<K, V>;
    type Rw<'a> = Table<'a, K, V>;
    fn raw(self) -> TableDefinition<'static, K, V> {
        self
    }
    fn ro(
        self,
        txn: &redb::ReadTransaction,
        _: &Option<Arc<StorageSeal>>,
    ) -> Result<Self::Ro, StoreError> {
        Ok(txn.open_table(self)?)
    }
    fn rw<'a>(
        self,
        txn: &'a redb::WriteTransaction,
        _: &Option<Arc<StorageSeal>>,
    ) -> Result<Self::Rw<'a>, StoreError> {
        Ok(txn.open_table(self)?)
    }
}

impl<K: Key + 'static> Def for SealedDef<K> {
    type Key = K;
    type Value = &'static [u8];
    type Ro = SealedTable<K, redb::ReadOnlyTable<K, &'static [u8]>>;
    type Rw<'a> = SealedTable<K, Table<'a, K, &'static [u8]>>;
    fn raw(self) -> TableDefinition<'static, K, &'static [u8]> {
        self.def
    }
    fn ro(
        self,
        txn: &redb::ReadTransaction,
        seal: &Option<Arc<StorageSeal>>,
    ) -> Result<Self::Ro, StoreError> {
        Ok(SealedTable::new(txn.open_table(self.def)?, self.name, seal))
    }
    fn rw<'a>(
        self,
        txn: &'a redb::WriteTransaction,
        seal: &Option<Arc<StorageSeal>>,
    ) -> Result<Self::Rw<'a>, StoreError> {
        Ok(SealedTable::new(txn.open_table(self.def)?, self.name, seal))
    }
    fn seal_in_place(
        self,
        txn: &redb::WriteTransaction,
        seal: &StorageSeal,
    ) -> Result<u64, StoreError> {
        seal_table(txn, self, seal)
    }
}

/// An opened value of a sealed table.
pub struct Plain(Vec<u8>);

impl std::fmt::Debug for Plain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Plain({} bytes)", self.0.len())
    }
}

impl Plain {
    /// The value's bytes.
    pub fn value(&self) -> &[u8] {
        &self.0
    }
}

#[cfg(test)]
thread_local! {
    /// Sealed values opened on this thread (tests count the decryptions an operation costs).
    pub(crate) static OPENS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// A redb table whose values are sealed (or clear, in a store opened without a key).
pub struct SealedTable<K: Key + 'static, T> {
    t: T,
    name: &'static str,
    seal: Option<Arc<StorageSeal>>,
    _k: PhantomData<K>,
}

impl<K: Key + 'static, T> std::fmt::Debug for SealedTable<K, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SealedTable({})", self.name)
    }
}

/// A row read from a [`SealedTable`].
pub(crate) type Row<'g, K> = (AccessGuard<'g, K>, Plain);

impl<K: Key + 'static, T> SealedTable<K, T> {
    fn new(t: T, name: &'static str, seal: &Option<Arc<StorageSeal>>) -> Self {
        Self {
            t,
            name,
            seal: seal.clone(),
            _k: PhantomData,
        }
    }

    fn open_value(&self, key: &[u8], v: &[u8]) -> Result<Plain, StoreError> {
        match &self.seal {
            Some(s) => s.open(self.name, key, v).map(Plain),
            None => Ok(Plain(v.to_vec())),
        }
    }

    fn open_row<'g>(
        &self,
        r: Result<(AccessGuard<'g, K>, AccessGuard<'g, &'static [u8]>), redb::StorageError>,
    ) -> Result<Row<'g, K>, StoreError> {
        let (k, v) = r?;
        let p = self.open_value(K::as_bytes(&k.value()).as_ref(), v.value())?;
        Ok((k, p))
    }
}

impl<K: Key + 'static, T: ReadableTable<K, &'static [u8]>> SealedTable<K, T> {
    /// The opened value of a row.
    pub fn get<'k>(&self, key: impl Borrow<K::SelfType<'k>>) -> Result<Option<Plain>, StoreError> {
        let k = key.borrow();
        match self.t.get(k)? {
            Some(v) => Ok(Some(self.open_value(K::as_bytes(k).as_ref(), v.value())?)),
            None => Ok(None),
        }
    }

    /// Every row, in key order.
    pub fn iter(
        &self,
    ) -> Result<impl DoubleEndedIterator<Item = Result<Row<'_, K>, StoreError>> + '_, StoreError>
    {
        Ok(self.t.iter()?.map(move |r| self.open_row(r)))
    }

    /// The rows in a range of keys, in key order.
    pub fn range<'a, KR>(
        &self,
        range: impl std::ops::RangeBounds<KR> + 'a,
    ) -> Result<impl DoubleEndedIterator<Item = Result<Row<'_, K>, StoreError>> + '_, StoreError>
    where
        KR: Borrow<K::SelfType<'a>> + 'a,
    {
        Ok(self.t.range(range)?.map(move |r| self.open_row(r)))
    }

    /// The key of the last row in `range`, without opening any value: for a caller that
    /// needs only where a run of keys ends (the next sequence number of an outbox or a
    /// conversation), which would otherwise decrypt a whole row to read its key.
    pub fn last_key_in<'a, KR>(
        &self,
        range: impl std::ops::RangeBounds<KR> + 'a,
    ) -> Result<Option<AccessGuard<'_, K>>, StoreError>
    where
        KR: Borrow<K::SelfType<'a>> + 'a,
    {
        Ok(self
            .t
            .range(range)?
            .next_back()
            .transpose()?
            .map(|(k, _)| k))
    }

    /// The first row.
    pub fn first(&self) -> Result<Option<Row<'_, K>>, StoreError> {
        self.t
            .first()
            .map_err(StoreError::from)?
            .map(|r| self.open_row(Ok(r)))
            .transpose()
    }

    /// The last row.
    pub fn last(&self) -> Result<Option<Row<'_, K>>, StoreError> {
        self.t
            .last()
            .map_err(StoreError::from)?
            .map(|r| self.open_row(Ok(r)))
            .transpose()
    }

    /// How many rows the table has.
    pub fn len(&self) -> Result<u64, StoreError> {
        Ok(self.t.len()?)
    }

    /// Whether the table has no rows.
    pub fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.t.is_empty()?)
    }
}

impl<K: Key + 'static> SealedTable<K, Table<'_, K, &'static [u8]>> {
    /// Sets a row's value, returning the old one (opened).
    pub fn insert<'k>(
        &mut self,
        key: impl Borrow<K::SelfType<'k>>,
        value: &[u8],
    ) -> Result<Option<Plain>, StoreError> {
        let k = key.borrow();
        let kb = K::as_bytes(k).as_ref().to_vec();
        let old = match &self.seal {
            Some(s) => {
                let sealed = s.seal(self.name, &kb, value)?;
                self.t
                    .insert(k, sealed.as_slice())?
                    .map(|v| v.value().to_vec())
            }
            None => self.t.insert(k, value)?.map(|v| v.value().to_vec()),
        };
        old.map(|v| self.open_value(&kb, &v)).transpose()
    }

    /// Removes a row, returning its opened value.
    pub fn remove<'k>(
        &mut self,
        key: impl Borrow<K::SelfType<'k>>,
    ) -> Result<Option<Plain>, StoreError> {
        let k = key.borrow();
        let kb = K::as_bytes(k).as_ref().to_vec();
        let old = self.t.remove(k)?.map(|v| v.value().to_vec());
        old.map(|v| self.open_value(&kb, &v)).transpose()
    }

    /// Keeps the rows for which `keep` holds (a row that does not open is kept).
    pub fn retain(
        &mut self,
        keep: impl for<'f> FnMut(K::SelfType<'f>, &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        let seal = self.seal.clone();
        let name = self.name;
        self.t.retain(opening(seal, name, keep))?;
        Ok(())
    }

    /// Keeps the rows in `range` for which `keep` holds (a row that does not open is kept).
    pub fn retain_in<'a, KR>(
        &mut self,
        range: impl std::ops::RangeBounds<KR> + 'a,
        keep: impl for<'f> FnMut(K::SelfType<'f>, &[u8]) -> bool,
    ) -> Result<(), StoreError>
    where
        KR: Borrow<K::SelfType<'a>> + 'a,
    {
        let seal = self.seal.clone();
        let name = self.name;
        self.t.retain_in(range, opening(seal, name, keep))?;
        Ok(())
    }

    /// Removes and returns the first row.
    pub fn pop_first(&mut self) -> Result<Option<(Vec<u8>, Plain)>, StoreError> {
        let r = self.t.pop_first()?.map(|(k, v)| {
            (
                K::as_bytes(&k.value()).as_ref().to_vec(),
                v.value().to_vec(),
            )
        });
        match r {
            Some((k, v)) => {
                let p = self.open_value(&k, &v)?;
                Ok(Some((k, p)))
            }
            None => Ok(None),
        }
    }
}

/// A predicate on opened values as a predicate on stored ones.
fn opening<K: Key + 'static>(
    seal: Option<Arc<StorageSeal>>,
    name: &'static str,
    mut keep: impl for<'f> FnMut(K::SelfType<'f>, &[u8]) -> bool,
) -> impl for<'f> FnMut(K::SelfType<'f>, &'f [u8]) -> bool {
    move |k, v| match &seal {
        Some(s) => {
            let kb = K::as_bytes(&k).as_ref().to_vec();
            match s.open(name, &kb, v) {
                Ok(p) => keep(k, &p),
                Err(_) => true,
            }
        }
        None => keep(k, v),
    }
}

/// Seals every clear value of table `def` in place (the pass that seals a clear store).
pub(crate) fn seal_table<K: Key + 'static>(
    txn: &redb::WriteTransaction,
    def: SealedDef<K>,
    seal: &StorageSeal,
) -> Result<u64, StoreError> {
    let name = def.name;
    let mut t = txn.open_table(def.def)?;
    let mut rows: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    for r in t.iter()? {
        let (k, v) = r?;
        let kb = K::as_bytes(&k.value()).as_ref().to_vec();
        let sealed = seal.seal(name, &kb, v.value())?;
        rows.push((kb, sealed));
    }
    let n = rows.len() as u64;
    for (k, v) in rows {
        t.insert(K::from_bytes(&k), v.as_slice())?;
    }
    Ok(n)
}

#[cfg(test)]
mod tests;
