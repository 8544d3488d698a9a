//! Params and results of the backup commands (`backup.create`, `backup.schedule`,
//! `backup.schedule.get`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::PrepareCtx;
use crate::EngineError;

/// A passphrase: never shown by `Debug`, wiped when dropped.
#[derive(Clone, Serialize, Deserialize, Default)]
#[serde(transparent)]
pub struct Passphrase(pub String);

impl std::fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Passphrase(..)")
    }
}

impl Drop for Passphrase {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

/// Params of `backup.create`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackupCreateParams {
    /// The backup file to write (an absolute path; replaced if it exists).
    pub to: PathBuf,
    /// The passphrase the backup is sealed with.
    pub passphrase: Passphrase,
}

/// What a backup holds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BackupDone {
    /// The file written.
    pub path: PathBuf,
    /// Files (key file, media, photos).
    pub files: u64,
    /// Store rows.
    pub rows: u64,
    /// Bytes of the backup file.
    pub bytes: u64,
}

/// Params of `backup.schedule`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackupScheduleParams {
    /// The folder backups go to (absolute).
    pub dir: PathBuf,
    /// Seconds between backups (at least 60).
    pub every_secs: u64,
    /// How many of the newest backups in the folder are kept (1 to 1000).
    pub keep: u32,
    /// The passphrase the backups are sealed with. The key derived from it is kept in the
    /// store, so the node can back up unattended; the passphrase itself is not kept.
    pub passphrase: Passphrase,
    /// Filled by `prepare`: the derived key (never sent over the API).
    #[serde(skip)]
    pub(crate) derived: Option<KeptKey>,
}

impl BackupScheduleParams {
    /// Params for `backup.schedule` (an `every_secs` of 0 turns the schedule off).
    pub fn new(dir: PathBuf, every_secs: u64, keep: u32, passphrase: Passphrase) -> Self {
        Self {
            dir,
            every_secs,
            keep,
            passphrase,
            derived: None,
        }
    }
}

/// A derived backup key as kept in the store for scheduled backups. Secret.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct KeptKey {
    pub key: [u8; 32],
    pub check: [u8; 16],
    pub salt: [u8; 16],
    pub m_kib: u32,
    pub t: u32,
    pub p: u32,
}

impl std::fmt::Debug for KeptKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeptKey(..)")
    }
}

impl Drop for KeptKey {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.key);
    }
}

impl KeptKey {
    pub(crate) fn from_key(k: &kith_backup::BackupKey) -> Self {
        let (key, check) = k.secret_parts();
        let (salt, p) = k.salt_and_params();
        Self {
            key,
            check,
            salt,
            m_kib: p.m_kib,
            t: p.t,
            p: p.p,
        }
    }

    pub(crate) fn to_key(&self) -> kith_backup::BackupKey {
        kith_backup::BackupKey::from_parts(
            self.key,
            self.check,
            self.salt,
            kith_backup::KdfParams {
                m_kib: self.m_kib,
                t: self.t,
                p: self.p,
            },
        )
    }
}

/// Derives a backup key off the engine's thread (argon2id takes a fraction of a second and
/// 64 MiB).
pub(crate) async fn derive_key(pass: &Passphrase) -> Result<kith_backup::BackupKey, EngineError> {
    let pass = pass.clone();
    tokio::task::spawn_blocking(move || {
        kith_backup::BackupKey::derive_new(pass.0.as_bytes(), kith_backup::KdfParams::DEFAULT)
    })
    .await
    .map_err(|e| EngineError::Internal(e.to_string()))?
    .map_err(|e| EngineError::Internal(e.to_string()))
}

impl crate::actor::table::Prepare for BackupCreateParams {}

impl crate::actor::table::Prepare for BackupScheduleParams {
    async fn prepare(mut self, _ctx: PrepareCtx) -> Result<Self, EngineError> {
        if self.every_secs == 0 {
            return Ok(self);
        }
        if self.passphrase.0.is_empty() {
            return Err(EngineError::Internal("an empty passphrase".into()));
        }
        if !self.dir.is_absolute() {
            return Err(EngineError::Internal(
                "the backup folder must be an absolute path".into(),
            ));
        }
        self.derived = Some(KeptKey::from_key(&derive_key(&self.passphrase).await?));
        Ok(self)
    }
}

/// The backup schedule, as `backup.schedule` and `backup.schedule.get` show it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct BackupScheduleView {
    /// Whether scheduled backups are on.
    pub on: bool,
    /// The folder.
    pub dir: Option<PathBuf>,
    /// Seconds between backups.
    pub every_secs: u64,
    /// Backups kept.
    pub keep: u32,
    /// When the last scheduled backup was made (ms since the epoch).
    pub last_ms: Option<u64>,
    /// Why the last scheduled backup failed, if it did.
    pub last_error: Option<String>,
}
