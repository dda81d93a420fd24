//! Descriptors: the process's limit, raised to the hard limit at start (each client connection
//! takes one, and the usual soft limit of 1024 is far below `limits.max_connections`), read by
//! the disk tier to size its open files and watched for readiness; and duplicates of sockets
//! (the workers' shared listeners, the connection watchdog's hold on a socket).
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// The soft and hard `RLIMIT_NOFILE`.
pub fn limits() -> io::Result<(u64, u64)> {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one `rlimit` into `l`, which is valid for writes.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((l.rlim_cur, l.rlim_max))
}

/// Raises the soft descriptor limit to the hard one; returns the limit now in force.
pub fn raise() -> io::Result<u64> {
    let (soft, hard) = limits()?;
    if soft >= hard {
        return Ok(soft);
    }
    let l = libc::rlimit {
        rlim_cur: hard,
        rlim_max: hard,
    };
    // SAFETY: setrlimit reads one `rlimit` from `l`, which is valid for reads.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &l) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(hard)
}

/// Descriptors the process has open now.
pub fn open() -> io::Result<u64> {
    Ok(std::fs::read_dir("/proc/self/fd")?.count() as u64)
}

/// A new descriptor, closed on exec, for the socket `fd` names; closed when dropped.
pub fn duplicate(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: fcntl(F_DUPFD_CLOEXEC) touches no memory of this process; if `fd` were not open
    // it would fail with EBADF, returned below.
    let dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    if dup < 0 {
        Err(io::Error::last_os_error())
    } else {
        // SAFETY: `dup` was just opened by this call and nothing else owns it.
        Ok(unsafe { OwnedFd::from_raw_fd(dup) })
    }
}

/// Descriptors kept free for the node's own files (disk bodies, the catalog, origin
/// connections, logs) once clients have taken the rest: readiness fails past this.
const RESERVE: u64 = 256;

/// Whether the process is short of descriptors, having `open` of them ([`open`]'s answer):
/// within [`RESERVE`] (or a twentieth of the limit, whichever is smaller) of its soft limit, or
/// out of them (counting them takes one).
pub fn short(open: io::Result<u64>) -> bool {
    match (open, limits()) {
        (Ok(open), Ok((soft, _))) => open + RESERVE.min(soft / 20) >= soft,
        (Err(e), _) => e.raw_os_error() == Some(libc::EMFILE),
        _ => false,
    }
}

/// Client connections the descriptor limit leaves room for: the soft limit less what the disk
/// tier may keep open under it (`kept_open` of the limit) and [`RESERVE`] for the rest.
/// `limits.max_connections` above it would run the process out of descriptors first, where
/// every accept fails and is retried a second later instead of being refused at once.
pub fn connection_ceiling(kept_open: impl Fn(u64) -> u64) -> usize {
    match limits() {
        Ok((soft, _)) => soft
            .saturating_sub(kept_open(soft))
            .saturating_sub(RESERVE)
            .max(1)
            .try_into()
            .unwrap_or(usize::MAX),
        Err(_) => usize::MAX,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn a_duplicate_is_a_new_descriptor_for_the_same_socket() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let dup = duplicate(listener.as_raw_fd()).unwrap();
        assert_ne!(dup.as_raw_fd(), listener.as_raw_fd());
        let shared = std::net::TcpListener::from(dup);
        assert_eq!(shared.local_addr().unwrap(), listener.local_addr().unwrap());
        drop(listener);
        // The socket outlives the first descriptor: a client still connects through the copy.
        let _client = std::net::TcpStream::connect(shared.local_addr().unwrap()).unwrap();
        assert!(shared.accept().is_ok());
        assert!(duplicate(-1).is_err());
    }

    #[test]
    fn the_soft_limit_is_raised_to_the_hard_one_and_descriptors_are_counted() {
        let limit = raise().unwrap();
        let (soft, hard) = limits().unwrap();
        assert_eq!((soft, hard), (limit, hard));
        let before = open().unwrap();
        let files: Vec<_> = (0..5)
            .map(|_| std::fs::File::open("/proc/self/status").unwrap())
            .collect();
        // Other tests open and close files meanwhile: at least this one's five.
        assert!(open().unwrap() + 64 >= before + files.len() as u64);
        assert!(!short(open()));
        assert!(short(Err(io::Error::from_raw_os_error(libc::EMFILE))));
        assert!(short(Ok(soft)));
        let ceiling = connection_ceiling(|l| l / 4) as u64;
        assert_eq!(ceiling, (soft - soft / 4 - RESERVE).max(1), "of {soft}");
    }
}
