//! Hit handlers: a complete body in memory (seekable, zero-copy slices), a body file on disk
//! (seekable, read and checked a block at a time), or a fill being followed.

use std::any::Any;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use pingora::cache::key::CacheKey;
use pingora::cache::storage::{HandleHit, Storage};
use pingora::cache::trace::SpanHandle;
use pingora::{Error, ErrorType, Result};
use tokio::sync::watch;

use super::body_file::{BodyFile, BLOCK};
use super::catalog::Entry;
use super::disk::DiskTier;
use super::fill::{Fill, Next, Progress};
use super::pread;
use super::{BufferHold, ClientBuffers, Hash, Tier};

/// Bodies are handed to Pingora in slices of at most this, so one large hit does not become one
/// huge write.
const READ_SLICE: usize = BLOCK as usize;

/// A hit on a complete body held in memory: from the memory tier, or read whole from disk.
pub(crate) struct BodyHit {
    body: Bytes,
    pos: usize,
    end: usize,
    /// The tier that answered, for `Cache-Status`.
    pub tier: Tier,
}

impl BodyHit {
    pub fn new(body: Bytes, tier: Tier) -> Self {
        let end = body.len();
        BodyHit {
            body,
            pos: 0,
            end,
            tier,
        }
    }
}

/// A hit that follows a fill in progress.
pub(crate) struct FillHit {
    fill: Arc<Fill>,
    progress: watch::Receiver<Progress>,
    pos: u64,
    buffers: Arc<dyn ClientBuffers>,
    /// The block read from the fill's file last, until the client has taken it.
    held: Option<BufferHold>,
}

impl FillHit {
    pub fn new(fill: Arc<Fill>, buffers: Arc<dyn ClientBuffers>) -> Self {
        let progress = fill.subscribe();
        FillHit {
            fill,
            progress,
            pos: 0,
            buffers,
            held: None,
        }
    }
}

/// A hit streamed from a body file, a block at a time; each block is checked before any of it
/// is sent, the first time its opened file reads it.
pub(crate) struct DiskHit {
    file: Arc<BodyFile>,
    /// A block read and checked already (the first, read at lookup).
    ready: Option<(u64, Bytes)>,
    tier: &'static DiskTier,
    hash: Hash,
    entry: Entry,
    pos: u64,
    end: u64,
    buffers: Arc<dyn ClientBuffers>,
    /// The block handed out last, until the client has taken it: the read of the next one
    /// waits for that, as Pingora writes one body chunk before it asks for another.
    held: Option<BufferHold>,
}

impl DiskHit {
    pub fn new(
        file: Arc<BodyFile>,
        first: Bytes,
        tier: &'static DiskTier,
        hash: Hash,
        entry: Entry,
        buffers: Arc<dyn ClientBuffers>,
    ) -> Self {
        let end = file.body_len();
        let held = Some(buffers.hold(first.len()));
        DiskHit {
            file,
            ready: Some((0, first)),
            tier,
            hash,
            entry,
            pos: 0,
            end,
            buffers,
            held,
        }
    }
}

/// The byte range `[start, end)` a seek selects in a body of `len` bytes (Pingora's `end` is
/// exclusive); a start past the end is an error.
fn seek_range(start: usize, end: Option<usize>, len: u64) -> Result<(u64, u64)> {
    let start = start as u64;
    if start >= len {
        return Error::e_explain(
            ErrorType::InternalError,
            format!("seek start {start} beyond body of {len}"),
        );
    }
    Ok((start, end.map_or(len, |e| (e as u64).min(len))))
}

fn io_error(context: &'static str, e: impl std::fmt::Display) -> Box<Error> {
    Error::explain(ErrorType::InternalError, format!("{context}: {e}"))
}

/// The result of a read `here` if it could be done without waiting for the disk (`Some`), else of
/// `blocking` on a blocking thread: a hand-off costs more than copying a warm block, so only a
/// read the disk must supply takes one.
pub(super) async fn warm_here_or_blocking<T, E>(
    here: Result<Option<T>, E>,
    blocking: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<Result<T, E>>
where
    T: Send + 'static,
    E: Send + 'static,
{
    match here {
        Ok(Some(v)) => Ok(Ok(v)),
        Ok(None) => tokio::task::spawn_blocking(blocking)
            .await
            .map_err(|e| io_error("cache file read task", e)),
        Err(e) => Ok(Err(e)),
    }
}

/// Reads `len` bytes at `pos` from a fill's file (just written, so most likely warm).
async fn read_at(file: Arc<std::fs::File>, pos: u64, len: u64) -> Result<Bytes> {
    let len = len as usize;
    let here = pread::read_cached_at(&file, len, pos);
    warm_here_or_blocking(here, move || pread::read_exact_at(&file, len, pos))
        .await?
        .map(Bytes::from)
        .map_err(|e| io_error("cache file read", e))
}

fn aborted() -> Box<Error> {
    Error::explain(
        ErrorType::InternalError,
        "the cache fill this response was following was aborted",
    )
}

#[async_trait]
impl HandleHit for BodyHit {
    async fn read_body(&mut self) -> Result<Option<Bytes>> {
        if self.pos >= self.end {
            return Ok(None);
        }
        let to = self.end.min(self.pos + READ_SLICE);
        let out = self.body.slice(self.pos..to);
        self.pos = to;
        Ok(Some(out))
    }

    async fn finish(
        self: Box<Self>,
        _storage: &'static (dyn Storage + Sync),
        _key: &CacheKey,
        _trace: &SpanHandle,
    ) -> Result<()> {
        Ok(())
    }

    fn can_seek(&self) -> bool {
        true
    }

    fn seek(&mut self, start: usize, end: Option<usize>) -> Result<()> {
        let (from, to) = seek_range(start, end, self.body.len() as u64)?;
        (self.pos, self.end) = (from as usize, to as usize);
        Ok(())
    }

    fn get_eviction_weight(&self) -> usize {
        self.body.len()
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync) {
        self
    }

    fn as_any_mut(&mut self) -> &mut (dyn Any + Send + Sync) {
        self
    }
}

#[async_trait]
impl HandleHit for FillHit {
    async fn read_body(&mut self) -> Result<Option<Bytes>> {
        self.held = None;
        loop {
            // Read the state before the chunks: a chunk pushed after this read re-marks the
            // channel changed, so `changed()` below cannot miss it.
            let state = *self.progress.borrow_and_update();
            match self.fill.next(self.pos) {
                Next::Data(chunk) => {
                    self.pos += chunk.len() as u64;
                    return Ok(Some(chunk));
                }
                Next::File(file, len) => {
                    let chunk = read_at(file, self.pos, (len - self.pos).min(BLOCK)).await?;
                    self.held = Some(self.buffers.hold(chunk.len()));
                    self.pos += chunk.len() as u64;
                    return Ok(Some(chunk));
                }
                Next::Wait => {}
            }
            match state {
                Progress::Done => return Ok(None),
                Progress::Aborted => return Err(aborted()),
                Progress::Writing => {
                    if self.progress.changed().await.is_err() {
                        return Err(aborted());
                    }
                }
            }
        }
    }

    async fn finish(
        self: Box<Self>,
        _storage: &'static (dyn Storage + Sync),
        _key: &CacheKey,
        _trace: &SpanHandle,
    ) -> Result<()> {
        Ok(())
    }

    fn should_count_access(&self) -> bool {
        false
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync) {
        self
    }

    fn as_any_mut(&mut self) -> &mut (dyn Any + Send + Sync) {
        self
    }
}

#[async_trait]
impl HandleHit for DiskHit {
    async fn read_body(&mut self) -> Result<Option<Bytes>> {
        // The client took the last block: Pingora asks for the next once it was written.
        self.held = None;
        if self.pos >= self.end {
            return Ok(None);
        }
        let index = self.pos / BLOCK;
        let block = match self.ready.take() {
            Some((i, block)) if i == index => {
                self.held = Some(self.buffers.hold(block.len()));
                Ok(block)
            }
            _ => {
                let file = self.file.clone();
                let here = file.read_block_cached(index);
                warm_here_or_blocking(here, move || file.read_block(index)).await?
            }
        };
        let block = match block {
            Ok(b) => b,
            Err(e) => {
                // Part of the body may be sent already: the response fails rather than ends
                // early, and the object is removed so the next request refetches it.
                let e = e.into();
                self.tier.fail(&self.hash, &self.entry, &e);
                return Err(io_error("disk cache read", e));
            }
        };
        if self.held.is_none() {
            self.held = Some(self.buffers.hold(block.len()));
        }
        let start = index * BLOCK;
        let from = (self.pos - start) as usize;
        let to = ((self.end - start) as usize).min(block.len());
        self.pos = start + to as u64;
        Ok(Some(block.slice(from..to)))
    }

    async fn finish(
        self: Box<Self>,
        _storage: &'static (dyn Storage + Sync),
        _key: &CacheKey,
        _trace: &SpanHandle,
    ) -> Result<()> {
        Ok(())
    }

    fn can_seek(&self) -> bool {
        true
    }

    fn seek(&mut self, start: usize, end: Option<usize>) -> Result<()> {
        (self.pos, self.end) = seek_range(start, end, self.file.body_len())?;
        Ok(())
    }

    fn get_eviction_weight(&self) -> usize {
        self.file.body_len() as usize
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync) {
        self
    }

    fn as_any_mut(&mut self) -> &mut (dyn Any + Send + Sync) {
        self
    }
}
