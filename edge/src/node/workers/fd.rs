//! The call on listening sockets the workers need that the standard library lacks.
#![allow(unsafe_code)]

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::RawFd;

/// How many connections wait in the accept queue of the listening TCP socket `fd`: for a
/// listener the kernel reports its accept backlog as `tcpi_unacked`.
pub(super) fn queued(fd: RawFd) -> io::Result<u32> {
    let mut info = MaybeUninit::<libc::tcp_info>::zeroed();
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: `info` is a writable buffer of `len` bytes, and the kernel writes at most `len`.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            info.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: zeroed, then partly overwritten by the kernel: every field is an integer, and
    // any bit pattern is a valid integer.
    let info = unsafe { info.assume_init() };
    Ok(info.tcpi_unacked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn the_accept_queue_length_counts_connections_not_yet_accepted() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        assert_eq!(queued(listener.as_raw_fd()).unwrap(), 0);
        let _a = std::net::TcpStream::connect(addr).unwrap();
        let _b = std::net::TcpStream::connect(addr).unwrap();
        // The handshake's last ACK may still be on its way when `connect` returns.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while queued(listener.as_raw_fd()).unwrap() < 2 {
            assert!(
                std::time::Instant::now() < deadline,
                "two connections never queued"
            );
            std::thread::yield_now();
        }
        assert_eq!(queued(listener.as_raw_fd()).unwrap(), 2);
        let _accepted = listener.accept().unwrap();
        assert_eq!(queued(listener.as_raw_fd()).unwrap(), 1);
        assert!(queued(-1).is_err());
    }
}
