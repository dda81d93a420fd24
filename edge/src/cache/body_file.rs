//! The disk tier's body file: the body, then one CRC32 per 64 KiB block, then a footer.
//!
//! ```text
//! [body][crc32 of block 0 .. n-1, LE][body_len u64][block u32][crc32 of the table u32][hash 16][magic 8]
//! ```
//!
//! The length is implied three ways (the file's size, the footer, the catalog's record) and every
//! block is checked the first time an opened file reads it, before its bytes leave the process,
//! so neither a crash nor a damaged disk can make the edge serve a truncated or corrupt body: a
//! file that fails a check is an error, which the tier turns into a miss. A file kept open is not
//! checked again on every hit; the background scrub reads every body again over its interval. The checksum of a block, not of the whole file, is what lets a
//! Range request seek, and a large body stream, without reading everything first.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;

use super::{pread, Hash};

/// Bytes covered by one checksum, and the size of a read from disk. A block read for a client
/// is held until the client has taken it, so this is also what each client that stops reading
/// costs the node; a file written with another block size is refused (and refetched).
pub const BLOCK: u64 = 64 << 10;
const MAGIC: &[u8; 8] = b"EDGEBDY1";
const FOOTER: u64 = 8 + 4 + 4 + 16 + 8;

/// Why a body file cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The operating system refused a read or write.
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    /// The file exists but is not the body it should be.
    #[error("corrupt body file: {0}")]
    Corrupt(&'static str),
}

/// The size on disk of a body of `body_len` bytes.
pub fn file_len(body_len: u64) -> u64 {
    body_len + 4 * body_len.div_ceil(BLOCK) + FOOTER
}

/// Writes a body file as the body arrives. Readers of a fill in progress read the same file
/// (`shared()`) up to the length written so far.
pub struct BodyWriter {
    file: Arc<File>,
    crcs: Vec<u32>,
    block: crc32fast::Hasher,
    in_block: u64,
    len: u64,
}

impl BodyWriter {
    /// Creates `path`, which must not exist.
    pub fn create(path: &Path) -> io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)?;
        Ok(BodyWriter {
            file: Arc::new(file),
            crcs: Vec::new(),
            block: crc32fast::Hasher::new(),
            in_block: 0,
            len: 0,
        })
    }

    /// The file, for readers that follow the write.
    pub fn shared(&self) -> Arc<File> {
        self.file.clone()
    }

    /// Appends body bytes.
    pub fn write(&mut self, mut data: &[u8]) -> io::Result<()> {
        (&*self.file).write_all(data)?;
        self.len += data.len() as u64;
        while !data.is_empty() {
            let room = (BLOCK - self.in_block) as usize;
            let (now, rest) = data.split_at(room.min(data.len()));
            self.block.update(now);
            self.in_block += now.len() as u64;
            data = rest;
            if self.in_block == BLOCK {
                self.seal_block();
            }
        }
        Ok(())
    }

    fn seal_block(&mut self) {
        let hasher = std::mem::replace(&mut self.block, crc32fast::Hasher::new());
        self.crcs.push(hasher.finalize());
        self.in_block = 0;
    }

    /// Appends the checksum table and footer and makes the file durable. Returns its size.
    pub fn finish(mut self, hash: &Hash) -> io::Result<u64> {
        if self.in_block > 0 {
            self.seal_block();
        }
        let mut tail = Vec::with_capacity(self.crcs.len() * 4 + FOOTER as usize);
        for crc in &self.crcs {
            tail.extend_from_slice(&crc.to_le_bytes());
        }
        let table_crc = crc32fast::hash(&tail);
        tail.extend_from_slice(&self.len.to_le_bytes());
        tail.extend_from_slice(&(BLOCK as u32).to_le_bytes());
        tail.extend_from_slice(&table_crc.to_le_bytes());
        tail.extend_from_slice(hash);
        tail.extend_from_slice(MAGIC);
        (&*self.file).write_all(&tail)?;
        // The rename that publishes the file must not reach the disk before its contents.
        self.file.sync_data()?;
        Ok(self.len + tail.len() as u64)
    }
}

/// A complete body file, opened and its footer checked. Each block is checked the first time
/// this opened file reads it, not again: a file kept open stays verified, and damage made to it
/// afterwards is the scrub's to find (`scrub`, and a promotion to memory, check every block).
pub struct BodyFile {
    file: File,
    body_len: u64,
    crcs: Vec<u32>,
    /// One bit per block: checked already through this descriptor.
    verified: Box<[AtomicU64]>,
}

impl BodyFile {
    fn new(file: File, body_len: u64, crcs: Vec<u32>, verified: bool) -> Self {
        let words = crcs.len().div_ceil(64);
        let fill = if verified { u64::MAX } else { 0 };
        BodyFile {
            file,
            body_len,
            crcs,
            verified: (0..words).map(|_| AtomicU64::new(fill)).collect(),
        }
    }

    /// Opens the body stored for `hash`, which the catalog says is `body_len` bytes.
    pub fn open(path: &Path, hash: &Hash, body_len: u64) -> Result<Self, BodyError> {
        let file = File::open(path)?;
        if file.metadata()?.len() != file_len(body_len) {
            return Err(BodyError::Corrupt("size differs from the catalog"));
        }
        let blocks = body_len.div_ceil(BLOCK) as usize;
        let mut tail = vec![0; blocks * 4 + FOOTER as usize];
        file.read_exact_at(&mut tail, body_len)?;
        let crcs = check_tail(&tail, hash, body_len)?;
        Ok(BodyFile::new(file, body_len, crcs, false))
    }

    /// Opens the body stored for `hash` and reads it whole in one read, the footer and every
    /// block checked: for bodies small enough to hold. With `cached_only`, `None` if the page
    /// cache does not hold all of the file (the read would wait for the disk).
    pub fn open_whole(
        path: &Path,
        hash: &Hash,
        body_len: u64,
        cached_only: bool,
    ) -> Result<Option<(Self, Bytes)>, BodyError> {
        let file = File::open(path)?;
        // No `fstat` for the size: a shorter file fails the read, and bytes past the footer
        // (nothing writes any) change nothing that is checked or served.
        let len = file_len(body_len) as usize;
        let read = if cached_only {
            pread::read_cached_at(&file, len, 0)
        } else {
            pread::read_exact_at(&file, len, 0).map(Some)
        };
        let Some(all) = read.map_err(short)? else {
            return Ok(None);
        };
        let crcs = check_tail(&all[body_len as usize..], hash, body_len)?;
        let mut body = Bytes::from(all);
        body.truncate(body_len as usize);
        let opened = BodyFile::new(file, body_len, crcs, false);
        opened.check_all(&body)?;
        Ok(Some((opened, body)))
    }

    /// Reads the whole body of this opened file, checking the blocks not checked before
    /// (every block with `check_all`). With `cached_only`, `None` if the page cache does not
    /// hold all of it.
    pub fn read_all(&self, cached_only: bool, check_all: bool) -> Result<Option<Bytes>, BodyError> {
        let len = self.body_len as usize;
        let read = if cached_only {
            pread::read_cached_at(&self.file, len, 0)
        } else {
            pread::read_exact_at(&self.file, len, 0).map(Some)
        };
        let Some(body) = read.map_err(short)? else {
            return Ok(None);
        };
        let body = Bytes::from(body);
        if check_all {
            self.check_all(&body)?;
        } else {
            for index in 0..self.crcs.len() as u64 {
                if !self.is_verified(index) {
                    let (from, len) = self.block_span(index)?;
                    self.check(index, &body[from as usize..from as usize + len])?;
                }
            }
        }
        Ok(Some(body))
    }

    /// Reads and checks every block, whatever was checked before: the scrub's pass. Blocking.
    pub fn scrub(&self) -> Result<(), BodyError> {
        for index in 0..self.crcs.len() as u64 {
            let (from, len) = self.block_span(index)?;
            let buf = pread::read_exact_at(&self.file, len, from).map_err(short)?;
            self.check(index, &buf)?;
        }
        Ok(())
    }

    /// Whether the file still has a name: a file deleted behind the tier's back, or replaced by
    /// a rename over its name, has none, and is to be opened again by name.
    pub fn is_linked(&self) -> io::Result<bool> {
        Ok(self.file.metadata()?.nlink() > 0)
    }

    /// Body length.
    pub fn body_len(&self) -> u64 {
        self.body_len
    }

    /// Reads block `index`, checked unless checked before. Blocking.
    pub fn read_block(&self, index: u64) -> Result<Bytes, BodyError> {
        let (from, len) = self.block_span(index)?;
        let buf = pread::read_exact_at(&self.file, len, from)?;
        self.check_once(index, &buf)?;
        Ok(Bytes::from(buf))
    }

    /// Reads block `index` if the page cache holds all of it (checked unless checked before);
    /// `None` if that read would wait for the disk. Never blocks, so an async worker may call it.
    pub fn read_block_cached(&self, index: u64) -> Result<Option<Bytes>, BodyError> {
        let (from, len) = self.block_span(index)?;
        match pread::read_cached_at(&self.file, len, from)? {
            Some(buf) => {
                self.check_once(index, &buf)?;
                Ok(Some(Bytes::from(buf)))
            }
            None => Ok(None),
        }
    }

    /// Where block `index` starts, and its length.
    fn block_span(&self, index: u64) -> Result<(u64, usize), BodyError> {
        let from = index * BLOCK;
        if from >= self.body_len {
            return Err(BodyError::Corrupt("block beyond the body"));
        }
        Ok((from, BLOCK.min(self.body_len - from) as usize))
    }

    fn check_all(&self, body: &[u8]) -> Result<(), BodyError> {
        for (index, block) in body.chunks(BLOCK as usize).enumerate() {
            self.check(index as u64, block)?;
        }
        Ok(())
    }

    fn check_once(&self, index: u64, block: &[u8]) -> Result<(), BodyError> {
        if self.is_verified(index) {
            return Ok(());
        }
        self.check(index, block)
    }

    /// Checks block `index` and, when it passes, marks it checked.
    fn check(&self, index: u64, block: &[u8]) -> Result<(), BodyError> {
        if crc32fast::hash(block) != self.crcs[index as usize] {
            return Err(BodyError::Corrupt("block checksum mismatch"));
        }
        self.verified[(index / 64) as usize].fetch_or(1 << (index % 64), Ordering::Relaxed);
        Ok(())
    }

    fn is_verified(&self, index: u64) -> bool {
        self.verified[(index / 64) as usize].load(Ordering::Relaxed) & (1 << (index % 64)) != 0
    }
}

/// A read cut short is a file shorter than the catalog says.
fn short(e: io::Error) -> BodyError {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        BodyError::Corrupt("shorter than the catalog says")
    } else {
        e.into()
    }
}

/// Checks the checksum table and footer; returns the table.
fn check_tail(tail: &[u8], hash: &Hash, body_len: u64) -> Result<Vec<u32>, BodyError> {
    let blocks = body_len.div_ceil(BLOCK) as usize;
    if tail.len() != blocks * 4 + FOOTER as usize {
        return Err(BodyError::Corrupt("size differs from the catalog"));
    }
    let (table, footer) = tail.split_at(blocks * 4);
    let word = |at: usize| {
        u32::from_le_bytes([footer[at], footer[at + 1], footer[at + 2], footer[at + 3]])
    };
    let mut len = [0u8; 8];
    len.copy_from_slice(&footer[..8]);
    if &footer[32..40] != MAGIC {
        return Err(BodyError::Corrupt("no footer"));
    }
    if u64::from_le_bytes(len) != body_len || u64::from(word(8)) != BLOCK {
        return Err(BodyError::Corrupt("footer disagrees with the catalog"));
    }
    if &footer[16..32] != hash {
        return Err(BodyError::Corrupt("file belongs to another key"));
    }
    if crc32fast::hash(table) != word(12) {
        return Err(BodyError::Corrupt("checksum table damaged"));
    }
    Ok(table
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, body: &[u8], hash: &Hash) -> std::path::PathBuf {
        let path = dir.join(name);
        let mut w = BodyWriter::create(&path).unwrap();
        for piece in body.chunks(100_000) {
            w.write(piece).unwrap();
        }
        assert_eq!(w.finish(hash).unwrap(), file_len(body.len() as u64));
        path
    }

    /// The body of a file opened and read whole.
    fn whole(
        path: &Path,
        hash: &Hash,
        len: u64,
        cached_only: bool,
    ) -> Result<Option<Bytes>, BodyError> {
        BodyFile::open_whole(path, hash, len, cached_only).map(|o| o.map(|(_, body)| body))
    }

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("edge-body-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn round_trips_whole_and_by_block() {
        let dir = scratch("roundtrip");
        let body: Vec<u8> = (0..(BLOCK as usize * 2 + 1234))
            .map(|i| (i % 251) as u8)
            .collect();
        let path = write(&dir, "a", &body, &[7; 16]);
        let read = whole(&path, &[7; 16], body.len() as u64, false).unwrap();
        assert_eq!(read.as_deref(), Some(&body[..]));
        // Just written: a read from the page cache alone gives the same bytes, or declines.
        if let Some(cached) = whole(&path, &[7; 16], body.len() as u64, true).unwrap() {
            assert_eq!(&cached[..], &body[..]);
        }
        let f = BodyFile::open(&path, &[7; 16], body.len() as u64).unwrap();
        let mut all = Vec::new();
        for i in 0..3 {
            all.extend_from_slice(&f.read_block(i).unwrap());
        }
        assert_eq!(all, body);
        let empty = write(&dir, "empty", b"", &[1; 16]);
        assert!(whole(&empty, &[1; 16], 0, false)
            .unwrap()
            .is_some_and(|b| b.is_empty()));
    }

    #[test]
    fn rejects_damage_truncation_and_the_wrong_key() {
        let dir = scratch("damage");
        let body = vec![42u8; BLOCK as usize + 10];
        let path = write(&dir, "a", &body, &[3; 16]);
        // A flipped byte in the second block: the first block still reads, the second does not.
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.write_all_at(&[0], BLOCK + 5).unwrap();
        let opened = BodyFile::open(&path, &[3; 16], body.len() as u64).unwrap();
        assert!(opened.read_block(0).is_ok());
        assert!(matches!(opened.read_block(1), Err(BodyError::Corrupt(_))));
        assert!(matches!(
            whole(&path, &[3; 16], body.len() as u64, false),
            Err(BodyError::Corrupt(_))
        ));
        // From the page cache alone, it is checked all the same (or declined, never served).
        assert!(!matches!(
            whole(&path, &[3; 16], body.len() as u64, true),
            Ok(Some(_))
        ));
        assert!(matches!(
            BodyFile::open(&path, &[4; 16], body.len() as u64),
            Err(BodyError::Corrupt(_))
        ));
        f.set_len(100).unwrap();
        assert!(matches!(
            BodyFile::open(&path, &[3; 16], body.len() as u64),
            Err(BodyError::Corrupt(_))
        ));
        for cached_only in [false, true] {
            assert!(!matches!(
                whole(&path, &[3; 16], body.len() as u64, cached_only),
                Ok(Some(_))
            ));
        }
        // A small file with bytes after its footer still gives its checked body; cut short by
        // one byte, it is refused.
        let small = write(&dir, "small", b"hello", &[5; 16]);
        let len = std::fs::metadata(&small).unwrap().len();
        let g = OpenOptions::new().write(true).open(&small).unwrap();
        g.write_all_at(b"trailing", len).unwrap();
        let read = whole(&small, &[5; 16], 5, false).unwrap();
        assert_eq!(read.as_deref(), Some(&b"hello"[..]));
        g.set_len(len - 1).unwrap();
        assert!(matches!(
            whole(&small, &[5; 16], 5, false),
            Err(BodyError::Corrupt(_))
        ));
    }

    #[test]
    fn an_opened_file_checks_each_block_once_and_the_scrub_every_time() {
        let dir = scratch("once");
        let body = vec![9u8; BLOCK as usize * 2];
        let path = write(&dir, "a", &body, &[6; 16]);
        let (kept, read) = BodyFile::open_whole(&path, &[6; 16], body.len() as u64, false)
            .unwrap()
            .unwrap();
        assert_eq!(&read[..], &body[..]);
        let streamed = BodyFile::open(&path, &[6; 16], body.len() as u64).unwrap();
        assert!(streamed.read_block(1).is_ok());
        // Damaged after both were checked: what was checked through a descriptor is not
        // checked again through it (the scrub's to find), but nothing new trusts it.
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .write_all_at(&[0], 5)
            .unwrap();
        assert!(kept.read_all(false, false).unwrap().is_some());
        assert!(matches!(
            kept.read_all(false, true),
            Err(BodyError::Corrupt(_))
        ));
        assert!(matches!(kept.scrub(), Err(BodyError::Corrupt(_))));
        assert!(streamed.read_block(1).is_ok(), "block 1 is intact");
        assert!(matches!(streamed.read_block(0), Err(BodyError::Corrupt(_))));
        let fresh = BodyFile::open(&path, &[6; 16], body.len() as u64).unwrap();
        assert!(matches!(fresh.read_block(0), Err(BodyError::Corrupt(_))));
        assert!(matches!(
            whole(&path, &[6; 16], body.len() as u64, false),
            Err(BodyError::Corrupt(_))
        ));
    }
}
