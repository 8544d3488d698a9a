//! Backups of the running node (`backup.create`, scheduled backups).
//!
//! Data flow:
//!
//! 1. The engine takes a [`kith_store::Snapshot`] (one read transaction: the store as of
//!    this instant, while the engine goes on writing) — the only step on the engine's task.
//! 2. A backup thread derives the key (argon2id) when given a passphrase, and streams the
//!    key file, the snapshot's rows and the media and photo files into the sealed file
//!    (`kith_backup::create`), then answers the caller.
//! 3. Scheduled backups: on the engine's tick, when the schedule kept in the store is due
//!    and no backup is running, step 1 and 2 run with the key kept at `backup.schedule`;
//!    the thread then deletes the oldest backups in the folder beyond `keep`. When each
//!    ran and whether it failed is kept in the store's meta table.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};

use super::{Engine, Reply, State};
use crate::EngineError;
use crate::command::{
    BackupCreateParams, BackupDone, BackupScheduleParams, BackupScheduleView, KeptKey,
};
use kith_store::WriteTx;

/// The meta key of the schedule.
const SCHEDULE_META: &str = "backup_schedule";
/// The meta key of the last scheduled run (ms, and the error if it failed).
const LAST_META: &str = "backup_last";
/// Scheduled backup files are named `PREFIX<ms since the epoch, 13 digits>SUFFIX`.
const PREFIX: &str = "kith-backup-";
const SUFFIX: &str = ".kbak";
/// Shortest interval between scheduled backups.
pub(crate) const MIN_EVERY_SECS: u64 = 60;
/// Most backups kept by a schedule.
pub(crate) const MAX_KEEP: u32 = 1000;

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Schedule {
    dir: PathBuf,
    every_secs: u64,
    keep: u32,
    key: KeptKey,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Last {
    at_ms: u64,
    error: Option<String>,
}

/// The backup state the engine keeps between ticks.
#[derive(Debug, Default)]
pub(crate) struct Backups {
    schedule: Option<Schedule>,
    last: Last,
    /// A backup thread is running.
    running: Arc<AtomicBool>,
    /// The outcome of the last scheduled run, written by its thread, stored on the tick.
    outcome: Arc<std::sync::Mutex<Option<Last>>>,
}

impl Backups {
    pub(crate) fn load(store: &kith_store::Store) -> Self {
        let get = |k: &str| store.read(|r| r.meta(k)).ok().flatten();
        let schedule = get(SCHEDULE_META).and_then(|b| kith_proto::codec::decode(&b, 4096).ok());
        let last = get(LAST_META)
            .and_then(|b| kith_proto::codec::decode(&b, 4096).ok())
            .unwrap_or_default();
        Self {
            schedule,
            last,
            ..Self::default()
        }
    }

    fn view(&self) -> BackupScheduleView {
        match &self.schedule {
            None => BackupScheduleView::default(),
            Some(s) => BackupScheduleView {
                on: true,
                dir: Some(s.dir.clone()),
                every_secs: s.every_secs,
                keep: s.keep,
                last_ms: (self.last.at_ms > 0).then_some(self.last.at_ms),
                last_error: self.last.error.clone(),
            },
        }
    }
}

fn internal(e: impl std::fmt::Display) -> EngineError {
    EngineError::Internal(e.to_string())
}

fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, kith_store::StoreError> {
    kith_proto::codec::encode(v).map_err(|e| kith_store::StoreError::Encode(e.to_string()))
}

/// Writes one backup (the thread's work).
fn write_backup(
    snapshot: &kith_store::Snapshot,
    data_dir: &Path,
    key: &kith_backup::BackupKey,
    to: &Path,
) -> Result<BackupDone, EngineError> {
    let counts = kith_backup::create(snapshot, data_dir, key, to).map_err(internal)?;
    let bytes = std::fs::metadata(to).map(|m| m.len()).unwrap_or(0);
    Ok(BackupDone {
        path: to.to_path_buf(),
        files: counts.files,
        rows: counts.rows,
        bytes,
    })
}

/// Deletes the oldest scheduled backups in `dir` beyond the newest `keep`.
fn prune(dir: &Path, keep: u32) -> std::io::Result<()> {
    let mut names: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with(PREFIX) && n.ends_with(SUFFIX))
        .collect();
    names.sort();
    let extra = names.len().saturating_sub(keep as usize);
    for n in &names[..extra] {
        std::fs::remove_file(dir.join(n))?;
    }
    Ok(())
}

impl Engine {
    /// `backup.create`: snapshot now, write the file on a thread, answer from there.
    pub(super) fn backup_create(&mut self, p: BackupCreateParams, r: Reply<BackupDone>) {
        if !p.to.is_absolute() {
            let _ = r.send(Err(internal("the backup path must be absolute")));
            return;
        }
        if p.passphrase.0.is_empty() {
            let _ = r.send(Err(internal("an empty passphrase")));
            return;
        }
        let snapshot = match self.store.snapshot() {
            Ok(s) => s,
            Err(e) => {
                let _ = r.send(Err(internal(e)));
                return;
            }
        };
        let data_dir = self.st.data_dir.clone();
        let spawned = std::thread::Builder::new()
            .name("kith-backup".into())
            .spawn(move || {
                let res = kith_backup::BackupKey::derive_new(
                    p.passphrase.0.as_bytes(),
                    kith_backup::KdfParams::DEFAULT,
                )
                .map_err(internal)
                .and_then(|key| write_backup(&snapshot, &data_dir, &key, &p.to));
                let _ = r.send(res);
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start the backup thread");
        }
    }

    /// Runs a scheduled backup when one is due (on the engine's tick).
    pub(super) fn backup_tick(&mut self) {
        let outcome = self
            .st
            .backups
            .outcome
            .lock()
            .ok()
            .and_then(|mut o| o.take());
        if let Some(last) = outcome {
            if let Ok(b) = encode(&last) {
                let _ = self.store.write(|w| w.set_meta(LAST_META, &b));
            }
            self.st.backups.last = last;
        }
        let Some(s) = self.st.backups.schedule.clone() else {
            return;
        };
        let now = kith_types::now_ms();
        let due = self
            .st
            .backups
            .last
            .at_ms
            .saturating_add(s.every_secs.saturating_mul(1000));
        if now < due || self.st.backups.running.load(Ordering::SeqCst) {
            return;
        }
        let snapshot = match self.store.snapshot() {
            Ok(snap) => snap,
            Err(e) => {
                tracing::warn!(error = %e, "scheduled backup: no snapshot");
                return;
            }
        };
        // Counted as run now, so a failing backup is retried at the next interval, not on
        // every tick.
        self.st.backups.last = Last {
            at_ms: now,
            error: None,
        };
        self.st.backups.running.store(true, Ordering::SeqCst);
        let running = self.st.backups.running.clone();
        let outcome = self.st.backups.outcome.clone();
        let data_dir = self.st.data_dir.clone();
        let spawned = std::thread::Builder::new()
            .name("kith-backup".into())
            .spawn(move || {
                let to = s.dir.join(format!("{PREFIX}{now:013}{SUFFIX}"));
                let res = std::fs::create_dir_all(&s.dir)
                    .map_err(internal)
                    .and_then(|()| write_backup(&snapshot, &data_dir, &s.key.to_key(), &to))
                    .and_then(|_| prune(&s.dir, s.keep).map_err(internal));
                let error = res.err().map(|e| e.to_string());
                match &error {
                    Some(e) => tracing::warn!(error = %e, "scheduled backup failed"),
                    None => tracing::info!("scheduled backup written"),
                }
                if let Ok(mut o) = outcome.lock() {
                    *o = Some(Last { at_ms: now, error });
                }
                running.store(false, Ordering::SeqCst);
            });
        if spawned.is_err() {
            self.st.backups.running.store(false, Ordering::SeqCst);
        }
    }

    /// `backup.schedule.get`.
    pub(super) fn backup_schedule_view(&self) -> BackupScheduleView {
        self.st.backups.view()
    }
}

impl State {
    /// `backup.schedule`: keep (or, with `every_secs` 0, clear) the schedule.
    pub(super) fn backup_schedule(
        &mut self,
        w: &mut WriteTx<'_>,
        mut p: BackupScheduleParams,
    ) -> crate::model::Outcome<BackupScheduleView> {
        if p.every_secs == 0 {
            w.set_meta(SCHEDULE_META, &[])?;
            self.backups.schedule = None;
            return Ok(Ok(self.backups.view()));
        }
        if p.every_secs < MIN_EVERY_SECS || p.keep == 0 || p.keep > MAX_KEEP {
            return Ok(Err(internal(format!(
                "the interval must be at least {MIN_EVERY_SECS} s and keep 1 to {MAX_KEEP}"
            ))));
        }
        let Some(key) = p.derived.take() else {
            return Ok(Err(internal("no key was derived")));
        };
        let s = Schedule {
            dir: p.dir.clone(),
            every_secs: p.every_secs,
            keep: p.keep,
            key,
        };
        w.set_meta(SCHEDULE_META, &encode(&s)?)?;
        self.backups.schedule = Some(s);
        Ok(Ok(self.backups.view()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prune_keeps_the_newest_scheduled_backups_only() {
        let dir = tempfile::tempdir().unwrap();
        for ms in [1u64, 2, 3, 4] {
            std::fs::write(dir.path().join(format!("{PREFIX}{ms:013}{SUFFIX}")), b"x").unwrap();
        }
        std::fs::write(dir.path().join("other.kbak"), b"x").unwrap();
        prune(dir.path(), 2).unwrap();
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(
            left,
            vec![
                format!("{PREFIX}{:013}{SUFFIX}", 3),
                format!("{PREFIX}{:013}{SUFFIX}", 4),
                "other.kbak".to_string()
            ]
        );
    }
}
