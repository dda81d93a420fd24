//! A response being written to the cache while readers follow it.
//!
//! The writer appends chunks; followers (including the writer's own client, through
//! `lookup_streaming_write`) read them as they arrive. A body that may go to the memory tier is
//! kept in memory; a larger one is only in its disk file, which followers read up to the length
//! written so far, so a GiB object never sits in memory however slow its readers are. If the
//! disk write fails, the rest of the body is kept in memory instead: the response goes on.
//! A fill dropped before `finish` is marked aborted, and a follower then gets an error: a
//! truncated body must never look complete.

use std::collections::VecDeque;
use std::fs::File;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::watch;

use super::object::Head;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Progress {
    Writing,
    Done,
    Aborted,
}

/// Where a follower at some offset reads next.
pub(crate) enum Next {
    /// These bytes, from memory.
    Data(Bytes),
    /// From the file, which holds the body up to this length.
    File(Arc<File>, u64),
    /// Nothing there yet: wait for progress (or stop, if the fill is done or aborted).
    Wait,
}

struct Body {
    /// Chunks covering `[mem_start, total)`, and the offset each starts at.
    mem: VecDeque<(u64, Bytes)>,
    total: u64,
    /// Whether chunks that reach the file are also kept (a memory-tier candidate).
    keep: bool,
    /// The disk file and how much of the body it holds.
    file: Option<Arc<File>>,
    file_len: u64,
}

/// One fill in flight.
pub(crate) struct Fill {
    pub id: u64,
    /// The primary hash of its key: what an invalidation of the URL names.
    pub primary: super::Hash,
    /// Set when the URL was invalidated (an unsafe method) while the fill ran: it finishes for
    /// the clients following it, and is stored nowhere.
    invalidated: std::sync::atomic::AtomicBool,
    /// Key and meta, made from the live meta the fill began with: followers (the writer's own
    /// client first) read it, and the memory tier stores it as it is.
    pub head: Arc<Head>,
    body: Mutex<Body>,
    progress: watch::Sender<Progress>,
}

impl Fill {
    /// A fill of `head` whose body goes to `file` (if any) and is kept in memory while `keep`.
    pub fn new(
        id: u64,
        primary: super::Hash,
        head: Arc<Head>,
        file: Option<Arc<File>>,
        keep: bool,
    ) -> Self {
        Fill {
            id,
            primary,
            invalidated: std::sync::atomic::AtomicBool::new(false),
            head,
            body: Mutex::new(Body {
                mem: VecDeque::new(),
                total: 0,
                keep,
                file,
                file_len: 0,
            }),
            progress: watch::Sender::new(Progress::Writing),
        }
    }

    /// Marks the fill as overtaken by an invalidation of its URL.
    pub fn invalidate(&self) {
        self.invalidated
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// Whether its URL was invalidated while it ran.
    pub fn invalidated(&self) -> bool {
        self.invalidated.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Appends a chunk; `in_file` says whether it was written to the file first.
    pub fn append(&self, chunk: Bytes, in_file: bool) {
        let len = chunk.len() as u64;
        {
            let mut b = self.body.lock();
            if in_file {
                b.file_len += len;
            }
            if !in_file || b.keep {
                let at = b.total;
                b.mem.push_back((at, chunk));
            }
            b.total += len;
        }
        // `send_replace` notifies even when the value is unchanged: followers wake for the chunk.
        self.progress.send_replace(Progress::Writing);
    }

    /// Stops keeping the body in memory (it outgrew the memory tier) and drops what the file
    /// already holds. Without a healthy file, everything stays: followers still need it.
    pub fn release_memory(&self) {
        let mut b = self.body.lock();
        b.keep = false;
        if b.file.is_some() && b.file_len == b.total {
            b.mem.clear();
        }
    }

    /// The whole body, if it is all in memory.
    pub fn concat(&self) -> Option<Bytes> {
        let b = self.body.lock();
        match b.mem.front() {
            None if b.total == 0 => Some(Bytes::new()),
            Some((0, _)) if b.keep || b.file.is_none() => Some(match b.mem.len() {
                1 => b.mem[0].1.clone(),
                _ => {
                    let mut body = Vec::with_capacity(b.total as usize);
                    for (_, c) in &b.mem {
                        body.extend_from_slice(c);
                    }
                    Bytes::from(body)
                }
            }),
            _ => None,
        }
    }

    /// What a follower that has read `pos` bytes reads next.
    pub fn next(&self, pos: u64) -> Next {
        let b = self.body.lock();
        if pos >= b.total {
            return Next::Wait;
        }
        if let Some((start, _)) = b.mem.front() {
            if pos >= *start {
                let i = b.mem.partition_point(|(s, _)| *s <= pos) - 1;
                let (s, c) = &b.mem[i];
                return Next::Data(c.slice((pos - s) as usize..));
            }
        }
        match &b.file {
            Some(f) if pos < b.file_len => Next::File(f.clone(), b.file_len),
            // Unreachable by construction: every byte is in memory or in the file.
            _ => Next::Wait,
        }
    }

    pub fn set(&self, p: Progress) {
        self.progress.send_replace(p);
    }

    pub fn subscribe(&self) -> watch::Receiver<Progress> {
        self.progress.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fill(file: Option<Arc<File>>) -> Fill {
        let header = pingora::http::ResponseHeader::build(200, None).unwrap();
        let t = std::time::UNIX_EPOCH;
        let meta = pingora::cache::CacheMeta::new(t, t, 0, 0, header);
        let head = Head::of_live(bytes::Bytes::new(), &meta).unwrap();
        Fill::new(1, [0; 16], Arc::new(head), file, true)
    }

    fn data(n: &Next) -> Option<Bytes> {
        match n {
            Next::Data(b) => Some(b.clone()),
            _ => None,
        }
    }

    #[test]
    fn memory_fill_reads_from_any_offset() {
        let f = fill(None);
        f.append(Bytes::from_static(b"hello "), false);
        f.append(Bytes::from_static(b"world"), false);
        assert_eq!(data(&f.next(0)).unwrap(), "hello ");
        assert_eq!(data(&f.next(8)).unwrap(), "rld");
        assert!(matches!(f.next(11), Next::Wait));
        assert_eq!(f.concat().unwrap(), "hello world");
    }

    #[test]
    fn released_fill_reads_from_the_file_then_memory_after_a_disk_failure() {
        let path = std::env::temp_dir().join(format!("edge-fill-{}", std::process::id()));
        let file = Arc::new(File::create(&path).unwrap());
        let f = fill(Some(file));
        f.append(Bytes::from_static(b"abc"), true);
        f.release_memory();
        f.append(Bytes::from_static(b"def"), true);
        assert!(matches!(f.next(0), Next::File(_, 6)));
        assert!(f.concat().is_none());
        // The disk failed: the rest stays in memory, after what the file holds.
        f.append(Bytes::from_static(b"ghi"), false);
        assert!(matches!(f.next(5), Next::File(_, 6)));
        assert_eq!(data(&f.next(7)).unwrap(), "hi");
        let _ = std::fs::remove_file(path);
    }
}
