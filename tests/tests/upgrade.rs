//! Graceful binary upgrade (Pingora's): a new process takes the listening sockets over from the
//! running one, which drains and exits; no request fails, and the disk cache carries over.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed set-up is a failed test

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use edge_tests::client;
use edge_tests::edge::{disk_cache, node_yaml, site, Edge, Scratch};
use edge_tests::origin::{Origin, Reply};

#[test]
fn an_upgrade_hands_over_the_sockets_without_failing_a_request() {
    let origin = Origin::start(|r| {
        Reply::ok(
            format!("body of {}", r.target),
            &[("cache-control", "max-age=600")],
        )
    });
    let dir = Scratch::new("upgrade");
    // Its own node id: the upgrade socket is named after it.
    let id = format!("upgrade-{}", std::process::id());
    let cache = disk_cache(&dir.0.join("cache"), "1MiB", "64MiB");
    let mut edge = Edge::start_config(&id, |port, admin| {
        format!(
            "{}origins:\n  origin: {{ servers: [\"{}\"] }}\nsites:\n{}",
            node_yaml(&id, port, admin).replace(edge_tests::edge::DEFAULT_CACHE, &cache),
            origin.addr,
            site("")
        )
    });
    edge.get("/kept.css", &[]).assert_cache_status("stored");
    edge.wait_disk_objects(1, std::time::Duration::from_secs(10));
    let old_pid = edge.pid();

    // Requests keep coming during the whole upgrade.
    let stop = Arc::new(AtomicBool::new(false));
    let (addr, s2) = (edge.addr, stop.clone());
    let load = std::thread::spawn(move || {
        let mut statuses = Vec::new();
        let mut i = 0;
        while !s2.load(Ordering::SeqCst) {
            statuses.push(client::get(addr, "example.com", &format!("/l{}", i % 20), &[]).status);
            i += 1;
        }
        statuses
    });
    // Stands in for systemd's notification socket (`Type=notify`).
    let notify_path = dir.0.join("notify.sock");
    let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let exit = edge.upgrade(&[("NOTIFY_SOCKET", notify_path.as_os_str())]);
    assert!(
        exit.success(),
        "the old process drained and exited cleanly: {exit}"
    );
    assert_ne!(edge.pid(), old_pid);
    // systemd is told the new process is the main one as soon as it has the sockets, then that
    // it is ready.
    let mut buf = [0u8; 256];
    let n = notify.recv(&mut buf).unwrap();
    assert_eq!(
        std::str::from_utf8(&buf[..n]).unwrap(),
        format!("MAINPID={}\n", edge.pid())
    );
    let n = notify.recv(&mut buf).unwrap();
    assert_eq!(
        std::str::from_utf8(&buf[..n]).unwrap(),
        format!("MAINPID={}\nREADY=1\n", edge.pid())
    );
    for _ in 0..20 {
        assert_eq!(edge.get("/during", &[]).status, 200);
    }
    stop.store(true, Ordering::SeqCst);
    let statuses = load.join().unwrap();
    assert!(statuses.len() > 20, "load ran: {}", statuses.len());
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
    // The new process opened the same disk cache.
    let r = edge.get("/kept.css", &[]);
    r.assert_cache_status("hit");
    r.assert_cache_status("detail=disk");
    assert_eq!(origin.count("/kept.css"), 1);
}
