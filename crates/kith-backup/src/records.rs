//! The plaintext inside the stream: a sequence of records, each a tag byte and its fields
//! (integers little-endian).
//!
//! ```text
//! 'F' name_len u16, name (UTF-8 path relative to the data dir), len u64, len bytes   a file
//! 'T' name_len u16, name                                  the rows below are this table's
//! 'R' key_len u32, key, value_len u32, value              one row (redb's byte form)
//! 'E' files u64, tables u64, rows u64                     the end, with counts
//! ```
//!
//! Nothing may follow `E`, and a stream without `E` is incomplete. The reader checks every
//! length against a limit before it allocates.

use std::io::{Read, Write};

use crate::BackupError;

/// Most bytes of a file or table name.
pub const MAX_NAME: usize = 1024;

/// What [`read_records`] hands its sink.
pub trait Sink {
    /// A file starts; its `len` bytes follow through [`Sink::file_data`].
    fn file(&mut self, name: &str, len: u64) -> Result<(), BackupError>;
    /// Some bytes of the current file.
    fn file_data(&mut self, data: &[u8]) -> Result<(), BackupError>;
    /// The rows that follow are table `name`'s.
    fn table(&mut self, name: &str) -> Result<(), BackupError>;
    /// One row of the current table.
    fn row(&mut self, key: &[u8], value: &[u8]) -> Result<(), BackupError>;
}

/// Counts of what a backup holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Files (the key file, media).
    pub files: u64,
    /// Tables.
    pub tables: u64,
    /// Rows of all tables.
    pub rows: u64,
}

/// Writes records, counting them.
#[derive(Debug)]
pub struct RecordWriter<W: Write> {
    out: W,
    counts: Counts,
}

fn name_bytes(name: &str) -> Result<&[u8], BackupError> {
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(BackupError::Format("name too long"));
    }
    Ok(name.as_bytes())
}

impl<W: Write> RecordWriter<W> {
    /// A writer of records into `out`.
    pub fn new(out: W) -> Self {
        Self {
            out,
            counts: Counts::default(),
        }
    }

    /// A file of `len` bytes read from `data` (which must yield exactly `len` bytes).
    pub fn file(&mut self, name: &str, len: u64, data: &mut impl Read) -> Result<(), BackupError> {
        let n = name_bytes(name)?;
        self.out.write_all(b"F")?;
        self.out.write_all(&(n.len() as u16).to_le_bytes())?;
        self.out.write_all(n)?;
        self.out.write_all(&len.to_le_bytes())?;
        let copied = std::io::copy(&mut data.take(len), &mut self.out)?;
        if copied != len {
            return Err(BackupError::Changed(name.to_string()));
        }
        self.counts.files += 1;
        Ok(())
    }

    /// The rows that follow belong to table `name`.
    pub fn table(&mut self, name: &str) -> Result<(), BackupError> {
        let n = name_bytes(name)?;
        self.out.write_all(b"T")?;
        self.out.write_all(&(n.len() as u16).to_le_bytes())?;
        self.out.write_all(n)?;
        self.counts.tables += 1;
        Ok(())
    }

    /// One row.
    pub fn row(&mut self, key: &[u8], value: &[u8]) -> Result<(), BackupError> {
        if key.len() > kith_store::MAX_ROW_BYTES || value.len() > kith_store::MAX_ROW_BYTES {
            return Err(BackupError::Format("row too long"));
        }
        self.out.write_all(b"R")?;
        self.out.write_all(&(key.len() as u32).to_le_bytes())?;
        self.out.write_all(key)?;
        self.out.write_all(&(value.len() as u32).to_le_bytes())?;
        self.out.write_all(value)?;
        self.counts.rows += 1;
        Ok(())
    }

    /// Writes the end record and returns the inner writer with the counts.
    pub fn finish(mut self) -> Result<(W, Counts), BackupError> {
        let c = self.counts;
        self.out.write_all(b"E")?;
        for n in [c.files, c.tables, c.rows] {
            self.out.write_all(&n.to_le_bytes())?;
        }
        Ok((self.out, c))
    }
}

fn read_u16(r: &mut impl Read) -> Result<u16, BackupError> {
    let mut b = [0u8; 2];
    r.read_exact(&mut b)?;
    Ok(u16::from_le_bytes(b))
}

fn read_u32(r: &mut impl Read) -> Result<u32, BackupError> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b)?;
    Ok(u32::from_le_bytes(b))
}

fn read_u64(r: &mut impl Read) -> Result<u64, BackupError> {
    let mut b = [0u8; 8];
    r.read_exact(&mut b)?;
    Ok(u64::from_le_bytes(b))
}

fn read_name(r: &mut impl Read) -> Result<String, BackupError> {
    let len = read_u16(r)? as usize;
    if len == 0 || len > MAX_NAME {
        return Err(BackupError::Format("bad name length"));
    }
    let mut b = vec![0u8; len];
    r.read_exact(&mut b)?;
    String::from_utf8(b).map_err(|_| BackupError::Format("name is not UTF-8"))
}

fn read_blob(r: &mut impl Read, buf: &mut Vec<u8>) -> Result<(), BackupError> {
    let len = read_u32(r)? as usize;
    if len > kith_store::MAX_ROW_BYTES {
        return Err(BackupError::Format("row too long"));
    }
    buf.clear();
    buf.resize(len, 0);
    r.read_exact(buf)?;
    Ok(())
}

/// Reads every record of `r` into `sink`, and checks the end record's counts and that
/// nothing follows it.
pub fn read_records(r: &mut impl Read, sink: &mut impl Sink) -> Result<Counts, BackupError> {
    let mut counts = Counts::default();
    let mut key = Vec::new();
    let mut value = Vec::new();
    let mut in_table = false;
    let mut data = vec![0u8; 64 * 1024];
    loop {
        let mut tag = [0u8; 1];
        r.read_exact(&mut tag)?;
        match tag[0] {
            b'F' => {
                let name = read_name(r)?;
                let mut left = read_u64(r)?;
                sink.file(&name, left)?;
                while left > 0 {
                    let n = (left.min(data.len() as u64)) as usize;
                    r.read_exact(&mut data[..n])?;
                    sink.file_data(&data[..n])?;
                    left -= n as u64;
                }
                counts.files += 1;
                in_table = false;
            }
            b'T' => {
                let name = read_name(r)?;
                sink.table(&name)?;
                counts.tables += 1;
                in_table = true;
            }
            b'R' => {
                if !in_table {
                    return Err(BackupError::Format("a row outside a table"));
                }
                read_blob(r, &mut key)?;
                read_blob(r, &mut value)?;
                sink.row(&key, &value)?;
                counts.rows += 1;
            }
            b'E' => {
                let said = Counts {
                    files: read_u64(r)?,
                    tables: read_u64(r)?,
                    rows: read_u64(r)?,
                };
                if said != counts {
                    return Err(BackupError::Format("the end record's counts do not match"));
                }
                let mut more = [0u8; 1];
                if r.read(&mut more)? != 0 {
                    return Err(BackupError::Format("data after the end record"));
                }
                return Ok(counts);
            }
            _ => return Err(BackupError::Format("unknown record")),
        }
    }
}
