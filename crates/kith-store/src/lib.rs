//! The node's durable state in one redb file.
//!
//! Each logical step of the messenger (queue an outgoing message, record received messages,
//! raise message states) is one write transaction: it commits whole, with fsync, or not at
//! all. The engine batches several steps into one transaction (group commit) and only
//! acknowledges anything after [`Store::write`] returns.
//!
//! Values are encoded with `kith_proto::codec`; the schema carries a version in the `meta`
//! table, and a file that is not a Kith store (or a newer one) is refused with a clear error.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod chat;
mod deposits;
mod dump;
mod groups;
mod held;
mod held_fill;
mod history;
mod media;
mod mentions;
mod model;
mod prekeys;
mod scrub;
mod seal;
mod stories;
mod topics;
mod tx;

use std::path::Path;

use kith_types::{CurveKey, DeviceKey, EnvelopeHash, IdentityKey};
use redb::{Database, ReadableDatabase, TableDefinition};

pub use chat::{ChatRef, ChatSettings, MessageMeta};
pub use deposits::MAX_DEPOSITS;
pub use dump::{MAX_ROW_BYTES, Snapshot, is_table};
pub use groups::{FrameRow, GroupMessage, GroupMsgKey, GroupRow, SenderRow};
pub use held::HeldRow;
pub use held_fill::{HeldFill, MAX_DEPOSITOR};
pub use media::MediaRow;
pub use model::*;
pub(crate) use seal::{Def, SealedDef};
pub use seal::{OVERHEAD as SEAL_OVERHEAD, Plain, SealedTable, StorageSeal};
pub use stories::StoredStory;
pub use topics::{Lacking, TopicLimits, TopicUsage, WatchChange, topic_digest};
pub use tx::{ReadTx, WriteTx};

/// The page cache a store gets unless told otherwise (64 MiB).
pub const DEFAULT_CACHE_BYTES: usize = 64 << 20;

/// The schema version this code writes.
pub const SCHEMA_VERSION: u32 = 1;

pub(crate) const META: SealedDef<&str> = SealedDef::new("meta");
pub(crate) const CONTACTS: SealedDef<IdentityKey> = SealedDef::new("contacts");
pub(crate) const CONTACT_NAMES: TableDefinition<&str, IdentityKey> =
    TableDefinition::new("contact_names");
pub(crate) const DEVICES: SealedDef<DeviceKey> = SealedDef::new("devices");
pub(crate) const CURVE_DEVICES: TableDefinition<CurveKey, DeviceKey> =
    TableDefinition::new("curve_devices");
pub(crate) const SESSIONS: SealedDef<DeviceKey> = SealedDef::new("sessions");
pub(crate) const MESSAGES: SealedDef<(IdentityKey, u64)> = SealedDef::new("messages");
pub(crate) const MSG_INDEX: TableDefinition<(IdentityKey, u128), u64> =
    TableDefinition::new("msg_index");
pub(crate) const OUTBOX: SealedDef<(DeviceKey, u64)> = SealedDef::new("outbox");
pub(crate) const SEEN: TableDefinition<EnvelopeHash, u64> = TableDefinition::new("seen_envelopes");
/// Mailbox service: devices registered here, by Curve25519 key → their device key.
/// Per contact, what is not part of the contact itself: blocked, last seen, their profile.
pub(crate) const CONTACT_EXTRAS: SealedDef<IdentityKey> = SealedDef::new("contact_extras");
pub(crate) const MAILBOX_USERS: TableDefinition<CurveKey, DeviceKey> =
    TableDefinition::new("mailbox_users");
/// Mailbox service: devices registered here by identity, (identity, device key) → (), for
/// the cap of devices per identity.
pub(crate) const MAILBOX_IDENTITIES: TableDefinition<(&[u8; 32], &[u8; 32]), ()> =
    TableDefinition::new("mailbox_identities");
/// How many items each device's outbox holds (by device key), changed in the same
/// transaction as the outbox rows it counts, so a mailbox checks its quota without counting.
pub(crate) const OUTBOX_LEN: TableDefinition<DeviceKey, u64> = TableDefinition::new("outbox_len");

/// Mailbox service: ciphertext bytes kept per device (by device key), changed in the same
/// transaction as the outbox rows they count.
pub(crate) const MAILBOX_BYTES: TableDefinition<DeviceKey, u64> =
    TableDefinition::new("mailbox_bytes");
/// Mailbox service: push endpoints of registered devices (by device key). Secret: never
/// logged.
pub(crate) const PUSH_ENDPOINTS: TableDefinition<DeviceKey, &str> =
    TableDefinition::new("push_endpoints");

/// The index by which a relayed envelope finds its session in one lookup (issue 14, hole
/// 3): the ratchet key a device last wrote with → the device, and back (so each device
/// holds one entry, and the index stays as big as the devices it names).
pub(crate) const RATCHET_DEVICES: TableDefinition<&[u8; 32], [u8; 32]> =
    TableDefinition::new("ratchet_devices");
/// The other direction of [`RATCHET_DEVICES`]: a device → the ratchet key it last wrote with.
pub(crate) const DEVICE_RATCHETS: TableDefinition<&[u8; 32], [u8; 32]> =
    TableDefinition::new("device_ratchets");

/// Whether the store's values are sealed: `"sealed"` → 1 once [`WriteTx::seal_all`] ran.
/// Kept in its own table, in clear, so a store says whether it needs its key before
/// anything is opened.
pub(crate) const SEAL_STATE: TableDefinition<&str, u64> = TableDefinition::new("seal_state");

/// Store failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Another process has the store open.
    #[error("the data directory is in use by another kith process")]
    InUse,
    /// The file is not a Kith store, or is damaged.
    #[error("the store file is damaged or not a kith store: {0}")]
    Corrupt(String),
    /// The file was written by a newer Kith.
    #[error("the store has schema version {found}; this kith understands up to {SCHEMA_VERSION}")]
    TooNew { found: u32 },
    /// A disk or database error.
    #[error("storage error")]
    Storage(#[source] Box<redb::Error>),
    /// A value could not be encoded.
    #[error("encoding error: {0}")]
    Encode(String),
    /// A stored value does not decode (a damaged row, or a bug that wrote it).
    #[error("a stored value does not decode")]
    Undecodable(#[source] kith_proto::codec::DecodeError),
    /// A device certificate names a Curve25519 key bound to another device (callers check
    /// [`crate::ReadTx::curve_free_for`] first; a key is never rebound).
    #[error("a Curve25519 key bound to one device cannot be rebound to another")]
    CurveBound,
    /// A sealed value does not open: the storage key is not this store's, or the row was
    /// changed or moved.
    #[error("a sealed row does not open (wrong storage key, or a damaged or moved row)")]
    Unsealable,
    /// The store is sealed and was opened without its storage key.
    #[error("the store is sealed and needs its storage key")]
    NeedsKey,
    /// A step of a transaction failed on purpose (fault injection in tests and simulations).
    #[error("injected failure: {0}")]
    Injected(&'static str),
}

impl From<redb::Error> for StoreError {
    fn from(e: redb::Error) -> Self {
        match e {
            redb::Error::DatabaseAlreadyOpen => StoreError::InUse,
            redb::Error::Corrupted(s) => StoreError::Corrupt(s),
            other => StoreError::Storage(Box::new(other)),
        }
    }
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::from(redb::Error::from(e))
            }
        }
    )*};
}
from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// The node's redb database.
#[derive(Debug)]
pub struct Store {
    db: Database,
    /// Commits without fsync, but one in [`SYNC_EVERY`] (see [`Store::without_fsync`]).
    lazy: Option<std::sync::atomic::AtomicU64>,
    /// Failures injected on demand (tests).
    faults: Faults,
    /// Seals values at rest (none: values in clear).
    seal: Option<std::sync::Arc<StorageSeal>>,
}

/// Fault injection for tests: makes steps of later transactions fail on demand, as a full
/// disk or an I/O error would, so that tests can show what a failed commit leaves behind.
/// Shared by clones; a store built without one never fails on purpose.
#[derive(Clone, Debug, Default)]
pub struct Faults(std::sync::Arc<std::sync::atomic::AtomicU32>);

impl Faults {
    /// The next `n` writes of a group op fail (and with them their transactions).
    pub fn fail_group_op_writes(&self, n: u32) {
        self.0.store(n, std::sync::atomic::Ordering::SeqCst);
    }

    /// How many injected failures are still to come.
    pub fn left(&self) -> u32 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Whether this write fails (counting it).
    fn fire(&self) -> bool {
        self.0
            .fetch_update(
                std::sync::atomic::Ordering::SeqCst,
                std::sync::atomic::Ordering::SeqCst,
                |n| n.checked_sub(1),
            )
            .is_ok()
    }
}

/// With [`Store::without_fsync`], one commit in this many is still made durable (redb frees
/// the pages of non-durable commits only after a durable one).
pub const SYNC_EVERY: u64 = 64;

impl Store {
    /// Opens (or creates) the store at `path` with the default cache
    /// ([`DEFAULT_CACHE_BYTES`]) and checks its schema version.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with_cache(path, DEFAULT_CACHE_BYTES)
    }

    /// Like [`Store::open`], with a page cache of at most `cache_bytes` (redb's own default
    /// is 1 GiB, too much for a phone-class device or for many nodes in one process).
    pub fn open_with_cache(path: &Path, cache_bytes: usize) -> Result<Self, StoreError> {
        Self::open_inner(path, cache_bytes, None)
    }

    /// Like [`Store::open_with_cache`], with values sealed at rest under `seal` (see
    /// [`StorageSeal`]). A store still in clear is sealed in place first, in one write
    /// transaction; a store sealed under another key is refused
    /// ([`StoreError::Unsealable`]) and left as it was.
    pub fn open_sealed(
        path: &Path,
        cache_bytes: usize,
        seal: StorageSeal,
    ) -> Result<Self, StoreError> {
        Self::open_inner(path, cache_bytes, Some(std::sync::Arc::new(seal)))
    }

    fn open_inner(
        path: &Path,
        cache_bytes: usize,
        seal: Option<std::sync::Arc<StorageSeal>>,
    ) -> Result<Self, StoreError> {
        let db = redb::Builder::new()
            .set_cache_size(cache_bytes)
            .create(path)
            .map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen => StoreError::InUse,
                redb::DatabaseError::Storage(redb::StorageError::Corrupted(s)) => {
                    StoreError::Corrupt(s)
                }
                redb::DatabaseError::Storage(redb::StorageError::Io(io))
                    if io.kind() == std::io::ErrorKind::InvalidData =>
                {
                    StoreError::Corrupt(io.to_string())
                }
                other => StoreError::Corrupt(other.to_string()),
            })?;
        let mut store = Self {
            db,
            lazy: None,
            faults: Faults::default(),
            seal,
        };
        if store.init_schema()? {
            // The clear values were just sealed: their old pages are free but still hold
            // them; compaction moves what is live and gives the rest back.
            store
                .db
                .compact()
                .map_err(|e| StoreError::Corrupt(format!("compacting after sealing: {e}")))?;
        }
        Ok(store)
    }

    /// Commits from now on skip the fsync (but one in [`SYNC_EVERY`]): a crash may lose the
    /// latest commits. Only for simulations that run hundreds of nodes on one disk, where
    /// every node's fsyncs queue behind every other's; never for a real node, which
    /// acknowledges nothing before it is on disk.
    pub fn without_fsync(mut self) -> Self {
        self.lazy = Some(std::sync::atomic::AtomicU64::new(0));
        self
    }

    /// Uses these injected faults from now on (tests).
    pub fn with_faults(mut self, faults: Faults) -> Self {
        self.faults = faults;
        self
    }

    /// Creates the tables, checks the version and the seal; returns whether the store was
    /// sealed just now.
    fn init_schema(&self) -> Result<bool, StoreError> {
        self.write(|w| {
            w.create_tables()?;
            let sealed_now = w.check_seal()?;
            match w.meta_u32("schema_version")? {
                Some(v) if v > SCHEMA_VERSION => return Err(StoreError::TooNew { found: v }),
                Some(_) => {}
                None => w.set_meta("schema_version", &SCHEMA_VERSION.to_le_bytes())?,
            }
            // Stores written before the byte counter existed: count what is kept, once.
            if w.meta("mailbox_bytes_counted")?.is_none() {
                w.recount_mailbox_bytes()?;
                w.set_meta("mailbox_bytes_counted", &[1])?;
            }
            // Stores written before the outbox counter existed: count the outbox, once.
            if w.meta("outbox_len_counted")?.is_none() {
                w.recount_outbox()?;
                w.set_meta("outbox_len_counted", &[1])?;
            }
            Ok(sealed_now)
        })
    }

    /// Runs `f` in one write transaction and commits it durably. Nothing `f` did is kept if
    /// it returns an error or the commit fails.
    pub fn write<T>(
        &self,
        f: impl FnOnce(&mut WriteTx<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.write_as(f)
    }

    /// Like [`Store::write`], for a caller whose steps fail with its own error type (which
    /// store errors convert into): any error rolls the transaction back.
    pub fn write_as<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&mut WriteTx<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut txn = self.db.begin_write().map_err(StoreError::from)?;
        if let Some(n) = &self.lazy
            && n.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % SYNC_EVERY != 0
        {
            // Fails only if a savepoint is in use, which this store never makes: then the
            // commit is simply durable.
            let _ = txn.set_durability(redb::Durability::None);
        }
        let out = {
            let mut w = WriteTx::new(&txn, &self.faults, self.seal.clone());
            let out = f(&mut w)?;
            // The outbox counters this transaction changed (`tx::counters`).
            w.flush_counters()?;
            out
        };
        txn.commit().map_err(StoreError::from)?;
        Ok(out)
    }

    /// Runs `f` on a consistent snapshot.
    pub fn read<T>(
        &self,
        f: impl FnOnce(&ReadTx) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let txn = self.db.begin_read()?;
        let r = ReadTx::new(txn, self.seal.clone());
        f(&r)
    }

    /// A read transaction of its own: a consistent view as of now that can move to another
    /// thread (e.g. to build something from the whole history while the engine goes on).
    pub fn begin_read(&self) -> Result<ReadTx, StoreError> {
        Ok(ReadTx::new(self.db.begin_read()?, self.seal.clone()))
    }
}
