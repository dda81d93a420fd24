//! Hit handlers: a complete body (seekable, zero-copy slices) or a fill being followed.

use std::any::Any;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use pingora::cache::key::CacheKey;
use pingora::cache::storage::{HandleHit, Storage};
use pingora::cache::trace::SpanHandle;
use pingora::{Error, ErrorType, Result};
use tokio::sync::watch;

use super::fill::{Fill, Progress};

/// Bodies are handed to Pingora in slices of at most this, so one large hit does not become one
/// huge write.
const READ_SLICE: usize = 256 << 10;

/// A hit on a complete body.
pub(crate) struct BodyHit {
    body: Bytes,
    pos: usize,
    end: usize,
}

impl BodyHit {
    pub fn new(body: Bytes) -> Self {
        let end = body.len();
        BodyHit { body, pos: 0, end }
    }
}

/// A hit that follows a fill in progress.
pub(crate) struct FillHit {
    fill: Arc<Fill>,
    progress: watch::Receiver<Progress>,
    next: usize,
}

impl FillHit {
    pub fn new(fill: Arc<Fill>) -> Self {
        let progress = fill.subscribe();
        FillHit {
            fill,
            progress,
            next: 0,
        }
    }
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
        if start >= self.body.len() {
            return Error::e_explain(
                ErrorType::InternalError,
                format!("seek start {start} beyond body of {}", self.body.len()),
            );
        }
        self.pos = start;
        self.end = end.map_or(self.body.len(), |e| e.min(self.body.len()));
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
        loop {
            // Read the state before the chunks: a chunk pushed after this read re-marks the
            // channel changed, so `changed()` below cannot miss it.
            let state = *self.progress.borrow_and_update();
            if let Some(chunk) = self.fill.chunk(self.next) {
                self.next += 1;
                return Ok(Some(chunk));
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
