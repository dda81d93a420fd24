//! Graceful binary upgrade (Pingora's): a new process takes the listening sockets over from the
//! running one, which drains and exits; no request fails, and the disk cache carries over.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed set-up is a failed test

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use edge_tests::client;
use edge_tests::edge::{DiskCache, Edge, Scratch};
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
    let mut edge = Edge::with_pool(&format!("servers: [\"{}\"]", origin.addr))
        .node_id(&id)
        .cache(
            DiskCache::at(&dir.0.join("cache"))
                .memory("1MiB")
                .disk("64MiB"),
        )
        .start();
    edge.get("/kept.css", &[]).assert_cache_status("stored");
    edge.wait_disk_objects(1, std::time::Duration::from_secs(10));
    let old_pid = edge.pid();

    // Requests keep coming during the whole upgrade: from before it starts until well after.
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let (addr, s2, d2) = (edge.addr, stop.clone(), done.clone());
    let load = std::thread::spawn(move || {
        let mut statuses = Vec::new();
        let mut i = 0;
        while !s2.load(Ordering::SeqCst) {
            statuses.push(client::get(addr, "example.com", &format!("/l{}", i % 20), &[]).status);
            d2.fetch_add(1, Ordering::SeqCst);
            i += 1;
        }
        statuses
    });
    let load_ran = |n: usize| {
        edge_tests::eventually(std::time::Duration::from_secs(10), "the load", || {
            (done.load(Ordering::SeqCst) >= n).then_some(())
        })
    };
    load_ran(5);
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
    load_ran(done.load(Ordering::SeqCst) + 20);
    stop.store(true, Ordering::SeqCst);
    let statuses = load.join().unwrap();
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
    // The new process opened the same disk cache.
    let r = edge.get("/kept.css", &[]);
    r.assert_cache_status("hit");
    r.assert_cache_status("detail=disk");
    assert_eq!(origin.count("/kept.css"), 1);
}

#[test]
fn a_request_in_flight_during_an_upgrade_is_answered_in_full() {
    // Headers after 1.5 s: the old process has handed the sockets over by then.
    let origin = Origin::start(|r| {
        Reply::ok(format!("slow {}", r.target), &[]).delayed(std::time::Duration::from_millis(1500))
    });
    let id = format!("upgrade-slow-{}", std::process::id());
    let pool = format!("servers: [\"{}\"]", origin.addr);
    let mut edge = Edge::with_pool(&pool)
        .node_id(&id)
        .shutdown_timeout("20s")
        .start();
    let addr = edge.addr;
    let slow = std::thread::spawn(move || client::get(addr, "example.com", "/slow", &[]));
    edge_tests::eventually(
        std::time::Duration::from_secs(10),
        "the origin fetch",
        || (origin.count("/slow") == 1).then_some(()),
    );
    let old_pid = edge.pid();
    assert!(edge.upgrade(&[]).success());
    assert_ne!(edge.pid(), old_pid);
    let r = slow.join().unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "slow /slow");
    assert_eq!(edge.get("/after", &[]).status, 200);
}

#[test]
fn sigquit_without_a_new_process_keeps_the_node_serving() {
    let origin = Origin::start(|_| Reply::ok("still here", &[]));
    let id = format!("upgrade-alone-{}", std::process::id());
    let mut edge = Edge::with_pool(&format!("servers: [\"{}\"]", origin.addr))
        .node_id(&id)
        .start();
    edge.signal("QUIT");
    // Pingora gives up on the handover after about 5 s of retries.
    edge_tests::eventually(
        std::time::Duration::from_secs(20),
        "the handover to fail",
        || {
            edge.log()
                .contains("could not be handed over")
                .then_some(())
        },
    );
    assert!(edge.is_running(), "{}", edge.log());
    assert_eq!(edge.ready_status(), 200);
    assert_eq!(edge.get("/x", &[]).text(), "still here");
    // And it still stops as asked.
    assert!(edge.signal_and_wait("TERM").success());
}
