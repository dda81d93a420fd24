//! Sending a whole response's header with its body (`TCP_CORK`).
//!
//! Pingora writes a response header into a write buffer of one MSS and flushes it on its own
//! as soon as a body too big for that buffer follows, so every hit larger than about 1 KiB went
//! out as a lone header segment, then the body: two transmissions through the TCP stack and two
//! wake-ups of the client for one response, a visible share of a 100 KiB hit's CPU (`perf`,
//! `benches/load/ab.sh` with `SIZE=102400`). Corking
//! the socket while a fast hit writes lets the kernel put the header in front of the body's
//! first segment; uncorking sends what is left at once. Plain-TCP HTTP/1 only: a TLS stream
//! has its own record buffering, and an HTTP/2 connection carries other streams.
#![allow(unsafe_code)]

use std::os::fd::{AsRawFd, RawFd};

use pingora::http::ResponseHeader;
use pingora::protocols::http::ServerSession;
use pingora::protocols::l4::stream::Stream as TcpStream;
use pingora::protocols::l4::stream::DEFAULT_L4_WRITE_BUFFER_SIZE as WRITE_BUFFER;

/// Corked while held; uncorked (which sends any partial segment held back) when dropped.
pub struct Cork {
    fd: RawFd,
}

impl Cork {
    /// Corks the connection under `session` for a response of `header` and `body_len` bytes of
    /// body if the two do not fit Pingora's write buffer together (the listeners keep its
    /// default), so that the header would go out alone; `None` (and nothing changed) otherwise.
    pub fn around(
        session: &ServerSession,
        header: &ResponseHeader,
        body_len: usize,
    ) -> Option<Cork> {
        (body_len + header_len(header) > WRITE_BUFFER)
            .then(|| Cork::new(session))
            .flatten()
    }

    /// Corks the connection under `session` if it is plain TCP carrying HTTP/1; `None` (and
    /// nothing changed) otherwise, or if the kernel refuses.
    pub fn new(session: &ServerSession) -> Option<Cork> {
        let stream = session.stream()?;
        let tcp = stream.as_any().downcast_ref::<TcpStream>()?;
        Cork::fd(tcp.as_raw_fd())
    }

    fn fd(fd: RawFd) -> Option<Cork> {
        set(fd, true).then_some(Cork { fd })
    }
}

impl Drop for Cork {
    fn drop(&mut self) {
        // A connection that fails here is failing anyway; the kernel also sends what a cork
        // holds back after 200 ms.
        set(self.fd, false);
    }
}

/// The bytes `header` takes on the wire in HTTP/1: the status line, a line per field, the blank
/// line.
fn header_len(header: &ResponseHeader) -> usize {
    let status_line =
        "HTTP/1.1 200 \r\n".len() + header.status.canonical_reason().map_or(0, str::len);
    let fields: usize = header
        .headers
        .iter()
        .map(|(name, value)| name.as_str().len() + ": \r\n".len() + value.len())
        .sum();
    status_line + fields + "\r\n".len()
}

/// Sets `TCP_CORK` on `fd`; whether the kernel accepted it.
fn set(fd: RawFd, on: bool) -> bool {
    let value = libc::c_int::from(on);
    // SAFETY: setsockopt reads `size_of::<c_int>()` bytes from `&value`, which lives across the
    // call. `fd` is the session's socket: a `Cork` is made and dropped inside one call that holds
    // the session, so the socket is still open, and a bad descriptor would only fail the call.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_CORK,
            std::ptr::addr_of!(value).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    r == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corked(fd: RawFd) -> bool {
        let mut value: libc::c_int = -1;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: getsockopt writes at most `len` bytes into `value`.
        let r = unsafe {
            libc::getsockopt(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_CORK,
                std::ptr::addr_of_mut!(value).cast(),
                &mut len,
            )
        };
        assert_eq!(r, 0, "{}", std::io::Error::last_os_error());
        value != 0
    }

    #[test]
    fn a_socket_is_corked_while_the_cork_lives_and_uncorked_after() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        let fd = server.as_raw_fd();
        assert!(!corked(fd));
        let cork = Cork::fd(fd).expect("a TCP socket can be corked");
        assert!(corked(fd));
        drop(cork);
        assert!(!corked(fd));
        drop(client);
    }

    #[test]
    fn a_headers_length_is_what_pingora_writes_for_it() {
        let mut header = ResponseHeader::build(200, None).unwrap();
        header.insert_header("Content-Length", "102400").unwrap();
        header.insert_header("cache-status", "edge; hit").unwrap();
        let mut fields = Vec::new();
        header.header_to_h1_wire(&mut fields);
        let wire = "HTTP/1.1 200 OK\r\n".len() + fields.len() + "\r\n".len();
        assert_eq!(header_len(&header), wire);
    }

    #[test]
    fn a_socket_that_is_not_tcp_is_left_alone() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        assert!(Cork::fd(a.as_raw_fd()).is_none());
    }
}
