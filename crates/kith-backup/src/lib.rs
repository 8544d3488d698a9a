//! Encrypted backups of a Kith data directory, and their restore.
//!
//! A backup holds the key file, every row of the store (read from one read transaction, so
//! it is a consistent snapshot while the daemon goes on writing) and the media files. The
//! file is a header and a stream of chunks sealed with XChaCha20-Poly1305 under a key
//! derived from a passphrase with argon2id ([`stream`]); inside, a sequence of records
//! ([`records`]). The format is described in docs/protocol.md, "Backups".
//!
//! Nothing is ever held whole in memory: [`create`] streams rows and files into the
//! sealing writer, and [`restore`] reads the file twice: once to verify every chunk and
//! record without writing anything, then again into a temporary directory beside the
//! target, renamed into place only when the whole file has been read a second time. A wrong
//! passphrase, a damaged or cut file, or a target that is not empty leaves the target as
//! it was.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod records;
pub mod stream;

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Component, Path, PathBuf};

use kith_store::{Snapshot, Store, StoreError};

pub use records::Counts;
pub use stream::{BackupKey, Header, KdfParams};

use records::{RecordWriter, Sink};
use stream::{StreamReader, StreamWriter};

/// The key file's name in a data directory.
pub const KEY_FILE: &str = "keys";
/// The store's name in a data directory.
pub const STORE_FILE: &str = "kith.redb";
/// The folders of a data directory whose files a backup holds: media files, and
/// contacts' photos.
pub const FILE_DIRS: [&str; 2] = ["media", "avatars"];
/// How deep media folders are walked.
const MAX_DEPTH: usize = 8;
/// Tables a restore leaves empty: the Olm sessions with contacts' devices and the index
/// from their ratchet keys. A restored node starts new sessions (see [`restore`]).
pub const NOT_RESTORED: [&str; 3] = ["sessions", "ratchet_devices", "device_ratchets"];
/// Rows buffered per table before they are written on restore.
const IMPORT_BATCH_BYTES: usize = 8 << 20;

/// Backup and restore failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    /// The passphrase is not the one the backup was made with.
    #[error("wrong passphrase")]
    WrongPassphrase,
    /// The file is not a Kith backup.
    #[error("not a kith backup file")]
    NotABackup,
    /// A backup written by a newer Kith.
    #[error("backup format version {0} is not supported by this kith")]
    UnknownVersion(u16),
    /// The file was changed, cut or damaged.
    #[error("the backup file is damaged or incomplete: {0}")]
    Damaged(String),
    /// The content breaks the format.
    #[error("the backup file is damaged: {0}")]
    Format(&'static str),
    /// The restore target is not empty.
    #[error("{0} is not empty: restore only into an empty or new data directory")]
    NotEmpty(PathBuf),
    /// A file changed while it was being backed up.
    #[error("{0} changed while it was being backed up; try again")]
    Changed(String),
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// A disk error.
    #[error("{0}")]
    Io(std::io::Error),
}

impl From<std::io::Error> for BackupError {
    fn from(e: std::io::Error) -> Self {
        match e.kind() {
            std::io::ErrorKind::InvalidData => match e.into_inner() {
                Some(inner) => BackupError::Damaged(inner.to_string()),
                None => BackupError::Damaged("invalid data".into()),
            },
            std::io::ErrorKind::UnexpectedEof => {
                BackupError::Damaged("the content ends early".into())
            }
            _ => BackupError::Io(e),
        }
    }
}

/// Writes a backup of the data directory `data_dir`, whose store is seen through
/// `snapshot`, to `to` (through a temporary file beside it, renamed at the end).
pub fn create(
    snapshot: &Snapshot,
    data_dir: &Path,
    key: &BackupKey,
    to: &Path,
) -> Result<Counts, BackupError> {
    let tmp = tmp_beside(to, "tmp");
    let res = (|| {
        let file = File::create(&tmp)?;
        let stream = StreamWriter::new(BufWriter::with_capacity(256 * 1024, file), key)?;
        let mut w = RecordWriter::new(stream);
        let keys = data_dir.join(KEY_FILE);
        if keys.exists() {
            add_file(&mut w, data_dir, &keys)?;
        }
        let mut current = String::new();
        snapshot.export::<BackupError>(|table, k, v| {
            if table != current {
                w.table(table)?;
                current = table.to_string();
            }
            w.row(k, v)
        })?;
        for d in FILE_DIRS {
            let dir = data_dir.join(d);
            if dir.is_dir() {
                add_dir(&mut w, data_dir, &dir, 0)?;
            }
        }
        let (stream, counts) = w.finish()?;
        let buf = stream.finish()?;
        let file = buf.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&tmp, to)?;
        if let Some(dir) = to.parent().filter(|p| !p.as_os_str().is_empty()) {
            File::open(dir)?.sync_all()?;
        }
        Ok(counts)
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

fn tmp_beside(path: &Path, what: &str) -> PathBuf {
    let n: u32 = rand::random();
    let name = path
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{what}-{n:08x}"))
}

fn add_file<W: Write>(
    w: &mut RecordWriter<W>,
    root: &Path,
    path: &Path,
) -> Result<(), BackupError> {
    let rel = path
        .strip_prefix(root)
        .map_err(|_| BackupError::Format("file outside the data directory"))?;
    let name = rel
        .to_str()
        .ok_or(BackupError::Format("a file name is not UTF-8"))?;
    let mut f = File::open(path)?;
    let len = f.metadata()?.len();
    w.file(name, len, &mut f)
}

fn add_dir<W: Write>(
    w: &mut RecordWriter<W>,
    root: &Path,
    dir: &Path,
    depth: usize,
) -> Result<(), BackupError> {
    if depth > MAX_DEPTH {
        return Ok(());
    }
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let t = e.file_type()?;
        if t.is_dir() {
            add_dir(w, root, &e.path(), depth + 1)?;
        } else if t.is_file() {
            add_file(w, root, &e.path())?;
        }
    }
    Ok(())
}

/// Whether a file name from a backup may be written: the key file, or a relative path
/// under one of [`FILE_DIRS`] with plain components only.
fn allowed(name: &str) -> bool {
    if name == KEY_FILE {
        return true;
    }
    let p = Path::new(name);
    let mut comps = p.components();
    matches!(comps.next(), Some(Component::Normal(d)) if FILE_DIRS.iter().any(|f| d == *f))
        && p.components().count() >= 2
        && comps.all(|c| matches!(c, Component::Normal(_)))
}

/// Reads the header of the backup at `path` (to learn its KDF parameters before asking for
/// a passphrase).
pub fn read_header(path: &Path) -> Result<Header, BackupError> {
    Header::read_from(&mut File::open(path)?)
}

/// Derives the key for the backup at `path` from `passphrase` and checks it.
pub fn key_for(path: &Path, passphrase: &[u8]) -> Result<BackupKey, BackupError> {
    let h = read_header(path)?;
    let key = BackupKey::derive(passphrase, h.salt, h.params)?;
    if !h.key_matches(&key) {
        return Err(BackupError::WrongPassphrase);
    }
    Ok(key)
}

/// Checks every chunk and record of the backup at `path` without writing anything.
pub fn verify(path: &Path, key: &BackupKey) -> Result<Counts, BackupError> {
    struct Check;
    impl Sink for Check {
        fn file(&mut self, name: &str, _: u64) -> Result<(), BackupError> {
            if !allowed(name) {
                return Err(BackupError::Format(
                    "a file name outside the data directory",
                ));
            }
            Ok(())
        }
        fn file_data(&mut self, _: &[u8]) -> Result<(), BackupError> {
            Ok(())
        }
        fn table(&mut self, name: &str) -> Result<(), BackupError> {
            if !kith_store::is_table(name) {
                return Err(BackupError::Format("an unknown table"));
            }
            Ok(())
        }
        fn row(&mut self, _: &[u8], _: &[u8]) -> Result<(), BackupError> {
            Ok(())
        }
    }
    let mut r = StreamReader::new(BufReader::with_capacity(256 * 1024, File::open(path)?), key)?;
    records::read_records(&mut r, &mut Check)
}

/// Writes a backup's content into a new directory.
struct Writer {
    dir: PathBuf,
    store: Store,
    table: String,
    rows: Vec<(Vec<u8>, Vec<u8>)>,
    bytes: usize,
    file: Option<BufWriter<File>>,
}

impl Writer {
    fn flush_rows(&mut self) -> Result<(), BackupError> {
        if !self.rows.is_empty() {
            self.store.import(&self.table, &self.rows)?;
            self.rows.clear();
            self.bytes = 0;
        }
        Ok(())
    }

    fn close_file(&mut self) -> Result<(), BackupError> {
        if let Some(f) = self.file.take() {
            f.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        }
        Ok(())
    }
}

impl Sink for Writer {
    fn file(&mut self, name: &str, _: u64) -> Result<(), BackupError> {
        self.flush_rows()?;
        self.close_file()?;
        if !allowed(name) {
            return Err(BackupError::Format(
                "a file name outside the data directory",
            ));
        }
        let path = self.dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        use std::os::unix::fs::OpenOptionsExt;
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        self.file = Some(BufWriter::new(f));
        Ok(())
    }

    fn file_data(&mut self, data: &[u8]) -> Result<(), BackupError> {
        match &mut self.file {
            Some(f) => Ok(f.write_all(data)?),
            None => Err(BackupError::Format("file data outside a file")),
        }
    }

    fn table(&mut self, name: &str) -> Result<(), BackupError> {
        self.flush_rows()?;
        self.close_file()?;
        if !kith_store::is_table(name) {
            return Err(BackupError::Format("an unknown table"));
        }
        self.table = name.to_string();
        Ok(())
    }

    fn row(&mut self, key: &[u8], value: &[u8]) -> Result<(), BackupError> {
        if NOT_RESTORED.contains(&self.table.as_str()) {
            return Ok(());
        }
        self.bytes += key.len() + value.len() + 64;
        self.rows.push((key.to_vec(), value.to_vec()));
        if self.bytes >= IMPORT_BATCH_BYTES {
            self.flush_rows()?;
        }
        Ok(())
    }
}

/// Whether `dir` is missing or an empty directory.
fn is_empty_or_missing(dir: &Path) -> Result<bool, BackupError> {
    match std::fs::read_dir(dir) {
        Ok(mut it) => Ok(it.next().is_none()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(e.into()),
    }
}

/// A file [`restore`] leaves in the data directory: the node's first start after a restore
/// renews its group sending sessions (the device may have sent with them after the backup
/// was made, so their next message keys may be used already), then removes it.
pub const RESTORED_MARK: &str = "restored-from-backup";

/// Restores the backup at `path` into `target`, which must be missing or empty: verifies
/// the whole file first, then writes it into a temporary directory beside `target` and
/// renames that into place. On any error `target` is left as it was.
///
/// The Olm sessions with contacts' devices are not restored ([`NOT_RESTORED`]): the ratchet
/// state as of the backup may be behind the contacts' (messages flowed since), and sending
/// with it would reuse message keys already used. The restored node opens new sessions
/// from the contacts' pre-key bundles when it next sends, and a contact's message sealed
/// with an old session is answered `Undecryptable`, upon which the contact starts a new
/// session and seals it again (the engine's ordinary recovery).
pub fn restore(path: &Path, key: &BackupKey, target: &Path) -> Result<Counts, BackupError> {
    if !is_empty_or_missing(target)? {
        return Err(BackupError::NotEmpty(target.to_path_buf()));
    }
    verify(path, key)?;
    let tmp = tmp_beside(target, "restore");
    let res = (|| {
        {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new().mode(0o700).create(&tmp)?;
        }
        let mut w = Writer {
            store: Store::open(&tmp.join(STORE_FILE))?,
            dir: tmp.clone(),
            table: String::new(),
            rows: Vec::new(),
            bytes: 0,
            file: None,
        };
        let mut r =
            StreamReader::new(BufReader::with_capacity(256 * 1024, File::open(path)?), key)?;
        let counts = records::read_records(&mut r, &mut w)?;
        w.flush_rows()?;
        w.close_file()?;
        drop(w);
        // Tells the node's first start that it runs from a backup (see [`RESTORED_MARK`]).
        {
            let mut f = File::create(tmp.join(RESTORED_MARK))?;
            f.write_all(b"restored from a backup\n")?;
            f.sync_all()?;
        }
        if !is_empty_or_missing(target)? {
            return Err(BackupError::NotEmpty(target.to_path_buf()));
        }
        if target.exists() {
            std::fs::remove_dir(target)?;
        }
        std::fs::rename(&tmp, target)?;
        if let Some(dir) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
            File::open(dir)?.sync_all()?;
        }
        Ok(counts)
    })();
    if res.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    res
}

#[cfg(test)]
mod tests;
