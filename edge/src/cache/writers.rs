//! The threads that make finished bodies durable on the disk tier, at a lower CPU priority than
//! the workers that serve requests.
//!
//! Nothing waits on these writes: the client has its response before its body is offered to the
//! disk. Run on Tokio's blocking pool at the workers' priority, a burst of misses had them take
//! a full share of the CPU from the workers serving the next requests (file creation, the
//! checksums, fsync). At a higher `nice` they take what the workers
//! leave; under a sustained burst the write queue then fills sooner and turns new bodies away,
//! which keeps them in memory only, the choice the tier already made past its queue.
#![allow(unsafe_code)]

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::oneshot;

/// How much lower than the workers' the writers' priority is, as a `nice` increment: 19 puts
/// them at the lowest priority `nice` allows, a CFS weight of 15 against a worker's 1,024. At 10
/// (a weight of 110) they still took a large share of the CPU from the workers in a steady miss
/// storm, and misses cost measurably more.
pub const NICE: i32 = 19;

type Job = Box<dyn FnOnce() + Send>;

/// A fixed set of low-priority threads, started on first use, taking jobs in order.
pub struct Writers {
    name: &'static str,
    threads: usize,
    queue: OnceLock<Option<mpsc::Sender<Job>>>,
}

/// The job did not run to its end: it panicked.
#[derive(Debug, thiserror::Error)]
#[error("disk write task panicked")]
pub struct Panicked;

impl Writers {
    /// `threads` writers (at least one).
    pub fn new(threads: usize) -> Self {
        Self::named("edge-disk-write", threads)
    }

    /// `threads` low-priority threads (at least one) named `name-0`, `name-1`...
    pub fn named(name: &'static str, threads: usize) -> Self {
        Writers {
            name,
            threads: threads.max(1),
            queue: OnceLock::new(),
        }
    }

    /// Runs `job` on a writer and waits for its result. Jobs beyond the number of writers wait
    /// their turn. If no writer thread could be started, the job runs on Tokio's blocking pool.
    pub async fn run<T, F>(&self, job: F) -> Result<T, Panicked>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job = move || {
            // A panic drops `tx` unsent, which the caller sees as `Panicked`; the thread lives on.
            if let Ok(r) = catch_unwind(AssertUnwindSafe(job)) {
                let _ = tx.send(r);
            }
        };
        match self.queue.get_or_init(|| self.start()) {
            Some(queue) => {
                if let Err(mpsc::SendError(job)) = queue.send(Box::new(job)) {
                    tokio::task::spawn_blocking(job);
                }
            }
            None => {
                tokio::task::spawn_blocking(job);
            }
        }
        rx.await.map_err(|_| Panicked)
    }

    fn start(&self) -> Option<mpsc::Sender<Job>> {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let mut started = 0;
        for i in 0..self.threads {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("{}-{i}", self.name))
                .spawn(move || {
                    lower_priority();
                    loop {
                        // The lock is held only while waiting for the next job, never while
                        // one runs; a poisoned lock still holds a usable receiver.
                        let job = match rx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(poisoned) => poisoned.into_inner().recv(),
                        };
                        match job {
                            Ok(job) => job(),
                            Err(mpsc::RecvError) => return,
                        }
                    }
                });
            match spawned {
                Ok(_) => started += 1,
                Err(e) => tracing::warn!(error = %e, "cannot start a disk writer thread"),
            }
        }
        (started > 0).then_some(tx)
    }
}

/// Adds [`NICE`] to the calling thread's `nice` value. Lowering one's own priority needs no
/// privilege; if the kernel refuses anyway, the writer runs at the workers' priority.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: nice takes an integer and touches no memory of this process. On Linux a nice
        // value belongs to a thread, and nice() changes the calling thread's only.
        let r = unsafe { libc::nice(NICE) };
        if r == -1 {
            tracing::debug!(error = %std::io::Error::last_os_error(), "disk writer keeps its priority");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nice_of_this_thread() -> i32 {
        // SAFETY: gettid and getpriority take integers and touch no memory of this process;
        // getpriority returns the thread's nice value.
        unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) }
    }

    #[tokio::test]
    async fn jobs_run_on_named_threads_at_the_lower_priority() {
        let ours = nice_of_this_thread();
        let writers = Writers::new(2);
        let (name, nice) = writers
            .run(|| {
                let name = std::thread::current().name().map(str::to_owned);
                (name, nice_of_this_thread())
            })
            .await
            .unwrap();
        assert!(name.unwrap().starts_with("edge-disk-write-"));
        assert_eq!(nice, (ours + NICE).min(19));
        // The caller's own thread is left as it was.
        assert_eq!(nice_of_this_thread(), ours);
    }

    #[tokio::test]
    async fn a_panicking_job_is_reported_and_the_writers_keep_working() {
        let writers = Writers::new(1);
        let r: Result<(), Panicked> = writers.run(|| panic!("boom")).await;
        assert!(r.is_err());
        assert_eq!(writers.run(|| 40 + 2).await.unwrap(), 42);
    }

    #[tokio::test]
    async fn jobs_beyond_the_threads_wait_their_turn_and_all_run() {
        let writers = Arc::new(Writers::new(2));
        let runs = (0..20u64).map(|i| {
            let writers = writers.clone();
            tokio::spawn(async move { writers.run(move || i * i).await.unwrap() })
        });
        let mut got = Vec::new();
        for r in runs {
            got.push(r.await.unwrap());
        }
        assert_eq!(got, (0..20u64).map(|i| i * i).collect::<Vec<_>>());
    }
}
