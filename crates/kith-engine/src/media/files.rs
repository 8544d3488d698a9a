//! The media files beside the store, in `<data>/media/`, named by the file's root in hex:
//!
//! | name | what |
//! | --- | --- |
//! | `<root>` | the whole file (sent, or received and checked), in sealed chunks |
//! | `<root>.idx` | its index (the chunk hashes), to serve and to check chunks |
//! | `<root>.part` | a file being received, sealed chunks written at their offsets |
//! | `<root>.have` | which chunks of the `.part` are on disk for sure (a bitmap) |
//!
//! At rest a file stays in the form it travels in: chunk `i`, sealed under the file's key
//! (XChaCha20-Poly1305, see `kith_proto::media::seal_chunk`), at offset
//! `i × (chunk size + tag)`. The file's key is in its manifest, which lies in the sealed
//! store; so nothing of a file's content is in clear on disk. Serving a chunk reads it as
//! it is; [`export`] (`kith save`) opens the chunks one by one into the user's file. A file
//! an older version kept in clear (its length is the plain size) is still served and saved,
//! and [`seal_legacy`] seals it in place.
//!
//! A chunk counts in `.have` only after the `.part` was synced with it in it, and `.have`
//! is replaced whole (written aside, synced, renamed), so after a kill -9 a download
//! resumes from every chunk `.have` lists and fetches the others again. Everything here is
//! blocking file I/O, run off the engine's task.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use kith_proto::media::{
    self, CHUNK, Hash, IndexBuilder, MAX_FILE, MAX_NAME, Manifest, TAG, chunk_count, open_chunk,
    seal_chunk,
};

/// Where sealed chunk `i` of the file of `m` lies in its file on disk.
pub fn sealed_offset(m: &Manifest, i: u32) -> u64 {
    u64::from(i) * (u64::from(m.chunk_size) + TAG as u64)
}

/// The chunk index a thumbnail is sealed under (no file has that many chunks, so its nonce
/// is never a chunk's).
const THUMB_INDEX: u32 = u32::MAX;

/// A thumbnail of the file of `m`, sealed under the file's key as it is kept on disk.
pub fn seal_thumb(m: &Manifest, thumb: &[u8]) -> Vec<u8> {
    seal_chunk(&m.key, THUMB_INDEX, m.chunks(), thumb)
}

/// The thumbnail of the file of `m` kept on disk, opened (one an older version kept in
/// clear is taken as it is when it looks like one).
pub fn read_thumb(dir: &Dir, m: &Manifest) -> io::Result<Vec<u8>> {
    let raw = fs::read(dir.thumb(&m.root))?;
    if raw.len() > media::MAX_THUMBNAIL + TAG {
        return Err(io::ErrorKind::InvalidData.into());
    }
    match open_chunk(&m.key, THUMB_INDEX, m.chunks(), raw.clone()) {
        Ok(plain) => Ok(plain),
        Err(_) if super::thumb::acceptable(&raw) => Ok(raw),
        Err(_) => Err(io::ErrorKind::InvalidData.into()),
    }
}

/// The length on disk of the whole file of `m`, in sealed chunks.
pub fn sealed_size(m: &Manifest) -> u64 {
    m.size + u64::from(m.chunks()) * TAG as u64
}

/// The folder of a file's parts.
#[derive(Debug, Clone)]
pub struct Dir(pub PathBuf);

impl Dir {
    fn named(&self, root: &Hash, ext: &str) -> PathBuf {
        self.0.join(format!("{}{ext}", hex::encode(root)))
    }
    /// The whole file.
    pub fn file(&self, root: &Hash) -> PathBuf {
        self.named(root, "")
    }
    /// Its index.
    pub fn index(&self, root: &Hash) -> PathBuf {
        self.named(root, ".idx")
    }
    /// The file being received.
    pub fn part(&self, root: &Hash) -> PathBuf {
        self.named(root, ".part")
    }
    /// Which chunks of the `.part` are on disk.
    pub fn have(&self, root: &Hash) -> PathBuf {
        self.named(root, ".have")
    }
    /// Its thumbnail (a JPEG or PNG).
    pub fn thumb(&self, root: &Hash) -> PathBuf {
        self.named(root, ".thumb")
    }
    /// As a mailbox: the folder of the sealed chunks of a file kept for devices.
    pub fn held(&self, root: &Hash) -> PathBuf {
        self.0.join("held").join(hex::encode(root))
    }
    /// As a mailbox: the index of a file kept for devices.
    pub fn held_index(&self, root: &Hash) -> PathBuf {
        self.0
            .join("held")
            .join(format!("{}.idx", hex::encode(root)))
    }

    /// The hash of chunk `n` of a held file, from its index.
    pub fn held_entry(&self, root: &Hash, n: u32) -> io::Result<Hash> {
        let mut want = [0u8; 32];
        File::open(self.held_index(root))?.read_exact_at(&mut want, u64::from(n) * 32)?;
        Ok(want)
    }
    /// Whether the whole file is here.
    pub fn ready(&self, root: &Hash) -> bool {
        self.file(root).is_file()
    }
}

/// Writes `bytes` to `path` through a synced temporary file and a rename.
pub fn replace(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_data()?;
    fs::rename(&tmp, path)
}

/// Why a file could not be taken for sending.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read the file: {0}")]
    Io(#[from] io::Error),
    #[error("the file is empty")]
    Empty,
    #[error("the file is over 2 GiB")]
    TooLarge,
    #[error("the file changed while it was read")]
    Changed,
}

/// Copies `src` into the media folder as a file to send: reads it once, chunk by chunk
/// (memory stays at one chunk), seals each chunk under a new key, and writes the sealed
/// chunks (the copy at rest), the index and the manifest's fields. `voice` marks a voice note.
pub fn import(dir: &Dir, src: &Path, voice: bool) -> Result<Manifest, ImportError> {
    fs::create_dir_all(&dir.0)?;
    let mut input = File::open(src)?;
    let size = input.metadata()?.len();
    if size == 0 {
        return Err(ImportError::Empty);
    }
    if size > MAX_FILE {
        return Err(ImportError::TooLarge);
    }
    let key = zeroize::Zeroizing::new(rand::random::<[u8; 32]>());
    let count = chunk_count(size, CHUNK as u32);
    let tmp = dir
        .0
        .join(format!("import-{:016x}.tmp", rand::random::<u64>()));
    let result = (|| {
        let mut out = File::create(&tmp)?;
        let mut builder = IndexBuilder::new(count);
        let mut buf = vec![0u8; CHUNK];
        let mut head = Vec::new();
        let mut tail = Vec::new();
        let mut total = 0u64;
        for i in 0..count {
            let want = (size - total).min(CHUNK as u64) as usize;
            input.read_exact(&mut buf[..want]).map_err(|e| {
                if e.kind() == io::ErrorKind::UnexpectedEof {
                    ImportError::Changed
                } else {
                    ImportError::Io(e)
                }
            })?;
            let chunk = &buf[..want];
            if i == 0 {
                head = chunk[..want.min(64 * 1024)].to_vec();
            }
            if i + 1 == count {
                tail = chunk[want.saturating_sub(64 * 1024)..].to_vec();
            }
            let sealed = seal_chunk(&key, i, count, chunk);
            out.write_all(&sealed)?;
            builder.push(&sealed);
            total += want as u64;
        }
        out.sync_data()?;
        let (root, index) = builder.finish();
        replace(&dir.index(&root), index.as_bytes())?;
        fs::rename(&tmp, dir.file(&root))?;
        let (mime, kind) = media::sniff(&head, voice);
        let dimensions = if mime.starts_with("image/") {
            media::image_dimensions(&head)
        } else {
            None
        };
        let duration_ms = if mime == "audio/ogg" || mime == "audio/opus" {
            media::opus_duration_ms(&head, &tail)
        } else {
            None
        };
        let thumbnail = if kind == media::MediaKind::Photo {
            super::thumb::make(src, size)
        } else {
            None
        };
        let manifest = Manifest {
            root,
            size,
            chunk_size: CHUNK as u32,
            key: *key,
            kind,
            mime,
            name: file_name(src),
            dimensions,
            duration_ms,
            thumbnail,
        };
        if let Some(t) = &manifest.thumbnail {
            replace(&dir.thumb(&root), &seal_thumb(&manifest, t))?;
        }
        Ok(manifest)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// The file name of `path`, cut to [`MAX_NAME`] bytes at a character boundary.
fn file_name(path: &Path) -> String {
    let mut name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    while name.len() > MAX_NAME {
        name.pop();
    }
    name
}

/// A name safe to write under a folder: no separators, no leading dots, not empty.
pub fn safe_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c == '/' || c == '\\' || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    let cleaned = cleaned.trim_start_matches('.').to_string();
    if cleaned.is_empty() {
        "file".into()
    } else {
        cleaned
    }
}

/// Sealed chunk `i` of a whole file here.
pub fn sealed_chunk(dir: &Dir, m: &Manifest, i: u32) -> io::Result<Vec<u8>> {
    sealed_chunk_at(&dir.file(&m.root), m, i)
}

/// Sealed chunk `i` of the file of `m` at `path` (whole, or a `.part` that holds that
/// chunk), as it lies on disk; a whole file an older version kept in clear is read and
/// sealed.
pub fn sealed_chunk_at(path: &Path, m: &Manifest, i: u32) -> io::Result<Vec<u8>> {
    let len = m.chunk_len(i);
    if len == 0 {
        return Err(io::ErrorKind::NotFound.into());
    }
    let f = File::open(path)?;
    if f.metadata()?.len() == m.size {
        let mut buf = vec![0u8; len];
        f.read_exact_at(&mut buf, u64::from(i) * u64::from(m.chunk_size))?;
        return Ok(seal_chunk(&m.key, i, m.chunks(), &buf));
    }
    let mut buf = vec![0u8; len + TAG];
    f.read_exact_at(&mut buf, sealed_offset(m, i))?;
    Ok(buf)
}

/// Why a file could not be saved.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("{0} exists already")]
    Exists(String),
    #[error("the file here is damaged (chunk {0} does not open)")]
    Damaged(u32),
}

/// Writes the whole file of `m` here, opened, to a new file `dest` (never overwritten),
/// chunk by chunk (memory stays at one chunk). A failure removes what was written.
pub fn export(dir: &Dir, m: &Manifest, dest: &Path) -> Result<u64, ExportError> {
    let src = dir.file(&m.root);
    let input = File::open(&src)?;
    let legacy = input.metadata()?.len() == m.size;
    let mut out = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(dest)
        .map_err(|e| match e.kind() {
            io::ErrorKind::AlreadyExists => ExportError::Exists(dest.display().to_string()),
            _ => ExportError::Io(e),
        })?;
    let result = (|| {
        let count = m.chunks();
        for i in 0..count {
            let len = m.chunk_len(i);
            let plain = if legacy {
                let mut buf = vec![0u8; len];
                input.read_exact_at(&mut buf, u64::from(i) * u64::from(m.chunk_size))?;
                buf
            } else {
                let mut buf = vec![0u8; len + TAG];
                input.read_exact_at(&mut buf, sealed_offset(m, i))?;
                open_chunk(&m.key, i, count, buf).map_err(|_| ExportError::Damaged(i))?
            };
            out.write_all(&plain)?;
        }
        out.sync_data()?;
        Ok(m.size)
    })();
    if result.is_err() {
        let _ = fs::remove_file(dest);
    }
    result
}

/// Seals in place a whole file an older version kept in clear (its length is the plain
/// size): written aside, synced and renamed. Returns whether there was one to seal.
pub fn seal_legacy(dir: &Dir, m: &Manifest) -> io::Result<bool> {
    let path = dir.file(&m.root);
    let input = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    if input.metadata()?.len() != m.size {
        return Ok(false);
    }
    let tmp = path.with_extension("seal.tmp");
    let result = (|| {
        let mut out = File::create(&tmp)?;
        for i in 0..m.chunks() {
            out.write_all(&sealed_chunk_at(&path, m, i)?)?;
        }
        out.sync_data()?;
        fs::rename(&tmp, &path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map(|()| true)
}

/// Seals in place the thumbnail of the file of `m` when an older version kept it in clear:
/// written aside, synced and renamed. Returns whether there was one to seal.
pub fn seal_legacy_thumb(dir: &Dir, m: &Manifest) -> io::Result<bool> {
    let path = dir.thumb(&m.root);
    let raw = match fs::read(&path) {
        Ok(raw) => raw,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    if raw.len() > media::MAX_THUMBNAIL
        || open_chunk(&m.key, THUMB_INDEX, m.chunks(), raw.clone()).is_ok()
        || !super::thumb::acceptable(&raw)
    {
        return Ok(false);
    }
    write_aside(&path, &seal_thumb(m, &raw)).map(|()| true)
}

/// Writes `bytes` to `path` through a synced file beside it and a rename.
pub fn write_aside(path: &std::path::Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("seal.tmp");
    let result = (|| {
        let mut out = File::create(&tmp)?;
        out.write_all(bytes)?;
        out.sync_data()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// A file being received: the open `.part` and which chunks it holds.
#[derive(Debug)]
pub struct Partial {
    /// Shared with the threads that write checked chunks into it.
    file: std::sync::Arc<File>,
    have: Vec<u8>,
    count: u32,
    held: u32,
    /// Chunks written since the last sync.
    unsynced: u32,
}

impl Partial {
    /// Opens (or creates) the `.part` of a file of `count` chunks and reads what `.have`
    /// says it holds.
    pub fn open(dir: &Dir, m: &Manifest) -> io::Result<Self> {
        fs::create_dir_all(&dir.0)?;
        let count = m.chunks();
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(dir.part(&m.root))?;
        let len = file.metadata()?.len();
        if len == m.size {
            // A `.part` an older version wrote in clear: started again, sealed.
            file.set_len(0)?;
            let _ = fs::remove_file(dir.have(&m.root));
        }
        if len != sealed_size(m) {
            file.set_len(sealed_size(m))?;
        }
        let bytes = count.div_ceil(8) as usize;
        let mut have = fs::read(dir.have(&m.root)).unwrap_or_default();
        if have.len() != bytes {
            have = vec![0; bytes];
        }
        let held = (0..count).filter(|i| bit(&have, *i)).count() as u32;
        Ok(Self {
            file: std::sync::Arc::new(file),
            have,
            count,
            held,
            unsynced: 0,
        })
    }

    /// Whether chunk `i` is here.
    pub fn has(&self, i: u32) -> bool {
        bit(&self.have, i)
    }

    /// The chunks here, one bit each (`kith_proto::media::have_bit`'s layout).
    pub fn have_bits(&self) -> &[u8] {
        &self.have
    }

    /// Chunks held.
    pub fn held(&self) -> u32 {
        self.held
    }

    /// Whether every chunk is here.
    pub fn complete(&self) -> bool {
        self.held >= self.count
    }

    /// Writes checked sealed chunk `i` at `offset` ([`sealed_offset`]); every `sync_every`
    /// chunks the file is synced and `.have` replaced.
    pub fn write(
        &mut self,
        dir: &Dir,
        root: &Hash,
        i: u32,
        offset: u64,
        sealed: &[u8],
        sync_every: u32,
    ) -> io::Result<()> {
        if self.has(i) {
            return Ok(());
        }
        self.file.write_all_at(sealed, offset)?;
        self.mark(dir, root, i, sync_every)
    }

    /// The open `.part`, to write checked chunks into off the caller's thread (then
    /// [`Partial::mark`] them).
    pub fn file(&self) -> std::sync::Arc<File> {
        self.file.clone()
    }

    /// Counts chunk `i` as written (by a writer of [`Partial::file`]); every `sync_every`
    /// chunks the file is synced and `.have` replaced.
    pub fn mark(&mut self, dir: &Dir, root: &Hash, i: u32, sync_every: u32) -> io::Result<()> {
        if self.has(i) || i >= self.count {
            return Ok(());
        }
        if let Some(b) = self.have.get_mut((i / 8) as usize) {
            *b |= 1 << (i % 8);
        }
        self.held += 1;
        self.unsynced += 1;
        if self.unsynced >= sync_every {
            self.sync(dir, root)?;
        }
        Ok(())
    }

    /// Syncs the `.part` and records what it holds in `.have`.
    pub fn sync(&mut self, dir: &Dir, root: &Hash) -> io::Result<()> {
        if self.unsynced == 0 {
            return Ok(());
        }
        self.file.sync_data()?;
        replace(&dir.have(root), &self.have)?;
        self.unsynced = 0;
        Ok(())
    }

    /// Makes the finished `.part` the whole file.
    pub fn finish(mut self, dir: &Dir, root: &Hash) -> io::Result<()> {
        self.file.sync_data()?;
        self.unsynced = 0;
        fs::rename(dir.part(root), dir.file(root))?;
        let _ = fs::remove_file(dir.have(root));
        Ok(())
    }
}

fn bit(have: &[u8], i: u32) -> bool {
    have.get((i / 8) as usize)
        .is_some_and(|b| b & (1 << (i % 8)) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kith_proto::media::{Index, open_chunk};

    /// A file imported, then received chunk by chunk with a restart in the middle, comes out
    /// identical; the restart keeps what was synced.
    #[test]
    fn import_then_receive_with_a_restart() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("doc.bin");
        let data: Vec<u8> = (0..(3 * CHUNK + 1000)).map(|i| (i * 7) as u8).collect();
        fs::write(&src, &data).unwrap();
        let a = Dir(tmp.path().join("a"));
        let m = import(&a, &src, false).unwrap();
        assert_eq!(m.size, data.len() as u64);
        assert_eq!(m.name, "doc.bin");
        let on_disk = fs::read(a.file(&m.root)).unwrap();
        assert_eq!(on_disk.len() as u64, sealed_size(&m));
        assert!(
            !on_disk
                .windows(64)
                .any(|w| data.windows(64).next() == Some(w)),
            "the copy at rest is sealed"
        );
        let index =
            Index::from_bytes(&m.root, m.chunks(), fs::read(a.index(&m.root)).unwrap()).unwrap();

        let b = Dir(tmp.path().join("b"));
        let mut p = Partial::open(&b, &m).unwrap();
        for i in 0..2 {
            let s = sealed_chunk(&a, &m, i).unwrap();
            index.verify(i, &s).unwrap();
            open_chunk(&m.key, i, m.chunks(), s.clone()).unwrap();
            p.write(&b, &m.root, i, sealed_offset(&m, i), &s, 1)
                .unwrap();
        }
        drop(p);
        let mut p = Partial::open(&b, &m).unwrap();
        assert_eq!(p.held(), 2, "what was synced survives a restart");
        for i in 2..m.chunks() {
            let s = sealed_chunk(&a, &m, i).unwrap();
            p.write(&b, &m.root, i, sealed_offset(&m, i), &s, 16)
                .unwrap();
        }
        assert!(p.complete());
        p.finish(&b, &m.root).unwrap();
        assert_eq!(fs::read(b.file(&m.root)).unwrap(), on_disk);
        assert!(!b.have(&m.root).exists());
        let out = tmp.path().join("saved.bin");
        export(&b, &m, &out).unwrap();
        assert_eq!(fs::read(&out).unwrap(), data);
        assert!(matches!(export(&b, &m, &out), Err(ExportError::Exists(_))));
    }

    /// A file an older version kept in clear is served and saved as it is, then sealed in
    /// place; a damaged sealed file is not saved.
    #[test]
    fn a_clear_file_is_sealed_in_place_and_damage_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("doc.bin");
        let data: Vec<u8> = (0..(CHUNK + 77)).map(|i| (i * 13) as u8).collect();
        fs::write(&src, &data).unwrap();
        let a = Dir(tmp.path().join("a"));
        let m = import(&a, &src, false).unwrap();
        let sealed: Vec<Vec<u8>> = (0..m.chunks())
            .map(|i| sealed_chunk(&a, &m, i).unwrap())
            .collect();
        fs::write(a.file(&m.root), &data).unwrap();
        for (i, s) in sealed.iter().enumerate() {
            assert_eq!(&sealed_chunk(&a, &m, i as u32).unwrap(), s);
        }
        assert!(seal_legacy(&a, &m).unwrap());
        assert!(!seal_legacy(&a, &m).unwrap(), "once");
        assert_eq!(fs::read(a.file(&m.root)).unwrap(), sealed.concat());
        let out = tmp.path().join("out.bin");
        export(&a, &m, &out).unwrap();
        assert_eq!(fs::read(&out).unwrap(), data);
        let mut bad = sealed.concat();
        bad[10] ^= 1;
        fs::write(a.file(&m.root), &bad).unwrap();
        let out2 = tmp.path().join("out2.bin");
        assert!(matches!(
            export(&a, &m, &out2),
            Err(ExportError::Damaged(0))
        ));
        assert!(!out2.exists(), "nothing left behind");
    }

    /// A thumbnail is kept sealed under the file's key and opens again; one kept in clear
    /// by an older version is read as it is; a damaged one is refused.
    #[test]
    fn thumbnails_are_sealed_at_rest() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("doc.bin");
        fs::write(&src, b"some bytes").unwrap();
        let d = Dir(tmp.path().join("m"));
        let m = import(&d, &src, false).unwrap();
        let jpeg = [0xff, 0xd8, 0xff, 0xe0, 1, 2, 3, 4, 5, 6, 7, 8];
        replace(&d.thumb(&m.root), &seal_thumb(&m, &jpeg)).unwrap();
        assert_ne!(&fs::read(d.thumb(&m.root)).unwrap()[..2], &jpeg[..2]);
        assert_eq!(read_thumb(&d, &m).unwrap(), jpeg);
        let mut bad = seal_thumb(&m, &jpeg);
        bad[0] ^= 0x55;
        replace(&d.thumb(&m.root), &bad).unwrap();
        assert!(read_thumb(&d, &m).is_err());
    }

    #[test]
    fn names_are_made_safe() {
        assert_eq!(safe_name("../../etc/passwd"), "_.._etc_passwd");
        assert_eq!(safe_name("..."), "file");
        assert_eq!(safe_name("photo.jpg"), "photo.jpg");
    }

    #[test]
    fn empty_files_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("e");
        fs::write(&src, b"").unwrap();
        assert!(matches!(
            import(&Dir(tmp.path().join("m")), &src, false),
            Err(ImportError::Empty)
        ));
    }

    /// A thumbnail an older version kept in clear is sealed in place once, and reads back the
    /// same; a sealed one is left as it is.
    #[test]
    fn a_clear_thumbnail_is_sealed_in_place() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("doc.bin");
        fs::write(&src, vec![7u8; 5000]).unwrap();
        let a = Dir(tmp.path().join("a"));
        let m = import(&a, &src, false).unwrap();
        let img = image::RgbImage::from_fn(8, 6, |x, y| image::Rgb([x as u8, y as u8, 99]));
        let mut clear = Vec::new();
        image::DynamicImage::ImageRgb8(img)
            .write_to(
                &mut std::io::Cursor::new(&mut clear),
                image::ImageFormat::Png,
            )
            .unwrap();
        fs::write(a.thumb(&m.root), &clear).unwrap();
        assert!(seal_legacy_thumb(&a, &m).unwrap());
        let on_disk = fs::read(a.thumb(&m.root)).unwrap();
        assert_ne!(on_disk, clear, "sealed at rest");
        assert_eq!(read_thumb(&a, &m).unwrap(), clear);
        assert!(!seal_legacy_thumb(&a, &m).unwrap(), "sealed once");
        assert_eq!(fs::read(a.thumb(&m.root)).unwrap(), on_disk);
    }
}
