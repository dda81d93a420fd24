//! Positional reads into fresh buffers, in two modes: one that may wait for the disk (for a
//! blocking thread), and one that takes only what the page cache holds (`preadv2` with
//! `RWF_NOWAIT`), so that an async worker can serve a warm body file itself instead of handing
//! every block to Tokio's blocking pool.
//!
//! The `unsafe` here is kept for what it measured on large disk-tier hits (an A/B with
//! `benches/load/ab.sh`): a hand-off per block to the blocking pool into a zeroed buffer cost
//! about twice the CPU, and far more context switches and page faults, than reading warm
//! blocks here into unzeroed buffers.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;

/// Reads exactly `len` bytes at `pos`, waiting for the disk if need be. Blocking.
pub fn read_exact_at(file: &File, len: usize, pos: u64) -> io::Result<Vec<u8>> {
    // A read allowed to wait never declines; the error only keeps this free of a panic.
    read(file, len, pos, false)?.ok_or_else(|| io::Error::from(io::ErrorKind::WouldBlock))
}

/// Reads exactly `len` bytes at `pos` if the page cache holds them all; `None` if the read would
/// have to wait for the disk (or this kernel or file system cannot say), and the caller should
/// read on a blocking thread instead.
pub fn read_cached_at(file: &File, len: usize, pos: u64) -> io::Result<Option<Vec<u8>>> {
    read(file, len, pos, true)
}

#[cfg(target_os = "linux")]
fn read(file: &File, len: usize, pos: u64, nowait: bool) -> io::Result<Option<Vec<u8>>> {
    use std::os::fd::AsRawFd;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// Set once `RWF_NOWAIT` is refused as unsupported, so later reads go straight to the
    /// blocking path.
    static NOWAIT_UNSUPPORTED: AtomicBool = AtomicBool::new(false);
    if nowait && NOWAIT_UNSUPPORTED.load(Ordering::Relaxed) {
        return Ok(None);
    }
    let flags = if nowait { libc::RWF_NOWAIT } else { 0 };
    let mut buf = Vec::<u8>::with_capacity(len);
    while buf.len() < len {
        let spare = buf.spare_capacity_mut();
        let iov = libc::iovec {
            iov_base: spare.as_mut_ptr().cast(),
            iov_len: spare.len(),
        };
        let offset = libc::off_t::try_from(pos + buf.len() as u64)
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: `iov` describes `buf`'s spare capacity, valid for writes of `iov_len` bytes
        // for the whole call; the kernel writes at most that many and returns how many.
        let n = unsafe { libc::preadv2(file.as_raw_fd(), &iov, 1, offset, flags) };
        match usize::try_from(n) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                // SAFETY: the kernel initialised the first `n` bytes of the spare capacity,
                // and `n` is at most its length.
                unsafe { buf.set_len(buf.len() + n) };
            }
            Err(_) => {
                let e = io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::EINTR) => {}
                    Some(libc::EAGAIN) if nowait => return Ok(None),
                    Some(libc::EOPNOTSUPP | libc::EINVAL | libc::ENOSYS) if nowait => {
                        NOWAIT_UNSUPPORTED.store(true, Ordering::Relaxed);
                        return Ok(None);
                    }
                    _ => return Err(e),
                }
            }
        }
    }
    Ok(Some(buf))
}

#[cfg(not(target_os = "linux"))]
fn read(file: &File, len: usize, pos: u64, nowait: bool) -> io::Result<Option<Vec<u8>>> {
    use std::os::unix::fs::FileExt;
    if nowait {
        return Ok(None);
    }
    let mut buf = vec![0; len];
    file.read_exact_at(&mut buf, pos)?;
    Ok(Some(buf))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file_with(body: &[u8]) -> (std::path::PathBuf, File) {
        let path =
            std::env::temp_dir().join(format!("edge-pread-{}-{}", std::process::id(), body.len()));
        let mut f = File::create(&path).unwrap();
        f.write_all(body).unwrap();
        (path.clone(), File::open(&path).unwrap())
    }

    #[test]
    fn reads_the_bytes_asked_for_and_refuses_to_read_past_the_end() {
        let body: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let (path, f) = file_with(&body);
        assert_eq!(read_exact_at(&f, 1000, 5).unwrap(), body[5..1005]);
        assert_eq!(read_exact_at(&f, body.len(), 0).unwrap(), body);
        let e = read_exact_at(&f, 10, body.len() as u64 - 5).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        // Just written, so in the page cache: a cached read either returns the same bytes or
        // declines; it never returns other bytes.
        if let Some(got) = read_cached_at(&f, 200_000, 7).unwrap() {
            assert_eq!(got, body[7..200_007]);
        }
        std::fs::remove_file(path).unwrap();
    }
}
