//! A response being written to the cache while readers follow it.
//!
//! The writer appends chunks; followers (including the writer's own client, through
//! `lookup_streaming_write`) read them as they arrive. A fill dropped before `finish` is marked
//! aborted, and a follower then gets an error: a truncated body must never look complete.

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Progress {
    Writing,
    Done,
    Aborted,
}

/// One fill in flight.
pub(crate) struct Fill {
    pub id: u64,
    pub meta: (Vec<u8>, Vec<u8>),
    chunks: Mutex<Vec<Bytes>>,
    progress: watch::Sender<Progress>,
}

impl Fill {
    pub fn new(id: u64, meta: (Vec<u8>, Vec<u8>)) -> Self {
        Fill {
            id,
            meta,
            chunks: Mutex::new(Vec::new()),
            progress: watch::Sender::new(Progress::Writing),
        }
    }

    pub fn push(&self, chunk: Bytes) {
        self.chunks.lock().push(chunk);
        // `send_replace` notifies even when the value is unchanged: followers wake for the chunk.
        self.progress.send_replace(Progress::Writing);
    }

    /// The whole body so far, in one buffer.
    pub fn concat(&self) -> Bytes {
        let chunks = self.chunks.lock();
        match chunks.len() {
            0 => Bytes::new(),
            1 => chunks[0].clone(),
            _ => {
                let len = chunks.iter().map(Bytes::len).sum();
                let mut body = Vec::with_capacity(len);
                for c in chunks.iter() {
                    body.extend_from_slice(c);
                }
                Bytes::from(body)
            }
        }
    }

    pub fn chunk(&self, index: usize) -> Option<Bytes> {
        self.chunks.lock().get(index).cloned()
    }

    pub fn set(&self, p: Progress) {
        self.progress.send_replace(p);
    }

    pub fn subscribe(&self) -> watch::Receiver<Progress> {
        self.progress.subscribe()
    }
}
