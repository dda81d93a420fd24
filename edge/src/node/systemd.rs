//! systemd notifications (`Type=notify`): `READY=1` once the node serves, and `MAINPID` from a
//! process that took the sockets over in a graceful upgrade, so systemd follows the new process
//! rather than stopping the service when the old one exits. Needs `NotifyAccess=all`, since the
//! new process is started by `ExecReload`. Without `NOTIFY_SOCKET` (not under systemd) nothing
//! is sent.

use std::os::unix::net::UnixDatagram;

fn send(message: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let sent = UnixDatagram::unbound().and_then(|sock| {
        let bytes = path.as_encoded_bytes();
        match bytes.strip_prefix(b"@") {
            // An abstract socket name (Linux).
            Some(name) => {
                use std::os::linux::net::SocketAddrExt;
                let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
                sock.send_to_addr(message.as_bytes(), &addr)
            }
            None => sock.send_to(message.as_bytes(), &path),
        }
    });
    if let Err(e) = sent {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
}

/// This process is now the service's main process (after taking the sockets over).
pub fn main_pid() {
    send(&format!("MAINPID={}\n", std::process::id()));
}

/// The node serves.
pub fn ready() {
    send(&format!("MAINPID={}\nREADY=1\n", std::process::id()));
}
