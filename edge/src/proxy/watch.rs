//! What one client request's task shares with the connection layer that runs it
//! ([`Guarded`](crate::node::conn::Guarded)): whether the proxy's first hook saw its head, whether a
//! write to its client timed out, and a way to cut it short from outside the task. A
//! task-local, so the proxy's hooks and the cache's hit handlers, deep in Pingora's call, find
//! the request they run for without a handle passed down to them.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

/// One request's shared state.
#[derive(Debug, Default)]
pub struct Watch {
    head_read: AtomicBool,
    /// The response could not be written in `send_timeout`.
    send_timed_out: AtomicBool,
    cut: AtomicBool,
    /// The request's task, once [`Watch::cutting`] has been polled.
    waker: parking_lot::Mutex<Option<Waker>>,
}

impl Watch {
    /// Cuts the request; `false` if it was cut already.
    pub fn cut(&self) -> bool {
        let first = !self.cut.swap(true, Ordering::AcqRel);
        if first {
            if let Some(waker) = self.waker.lock().take() {
                waker.wake();
            }
        }
        first
    }

    /// Whether the request was cut.
    pub fn is_cut(&self) -> bool {
        self.cut.load(Ordering::Acquire)
    }

    /// Whether the proxy's first hook has run: the request head arrived whole.
    pub fn head_was_read(&self) -> bool {
        self.head_read.load(Ordering::Acquire)
    }

    /// Whether a write to the client timed out.
    pub fn send_timed_out(&self) -> bool {
        self.send_timed_out.load(Ordering::Acquire)
    }

    /// Ready once the request is cut.
    pub fn cutting(&self) -> Cutting<'_> {
        Cutting {
            watch: self,
            registered: false,
        }
    }
}

/// See [`Watch::cutting`]. It leaves its task's waker once, on its first poll: a task's waker
/// stays the same, and most requests are never cut, so the common poll is one load.
pub struct Cutting<'a> {
    watch: &'a Watch,
    registered: bool,
}

impl Future for Cutting<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if !self.registered {
            *self.watch.waker.lock() = Some(cx.waker().clone());
            self.registered = true;
        }
        if self.watch.is_cut() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

tokio::task_local! {
    static REQUEST: Arc<Watch>;
}

/// Runs `request` with `watch` as its task's current request.
pub fn scope<F: Future>(watch: Arc<Watch>, request: F) -> impl Future<Output = F::Output> {
    REQUEST.scope(watch, request)
}

/// Marks the current request's head as read: its deadline no longer applies. Called by the
/// proxy's first hook.
pub fn head_read() {
    let _ = REQUEST.try_with(|w| w.head_read.store(true, Ordering::Release));
}

/// Notes how the current request ended, from the proxy's last hook: a write to the client that
/// timed out is counted when the request's task returns.
pub fn request_ended(error: Option<&pingora::Error>) {
    if error.is_some_and(|e| e.etype() == &pingora::ErrorType::WriteTimedout) {
        let _ = REQUEST.try_with(|w| w.send_timed_out.store(true, Ordering::Release));
    }
}

/// The current request's [`Watch`], when the caller runs in a client request's task.
pub fn current() -> Option<Arc<Watch>> {
    REQUEST.try_with(Arc::clone).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_cut_once() {
        let watch = Watch::default();
        assert!(!watch.is_cut());
        assert!(watch.cut());
        assert!(!watch.cut());
        assert!(watch.is_cut());
    }

    #[tokio::test]
    async fn the_watch_is_seen_only_inside_the_request() {
        assert!(current().is_none());
        head_read();
        let watch = Arc::new(Watch::default());
        scope(watch.clone(), async {
            head_read();
            current().unwrap().cut();
        })
        .await;
        assert!(watch.head_was_read());
        assert!(watch.is_cut());
    }

    #[tokio::test]
    async fn a_cut_wakes_the_request_waiting_for_it() {
        let watch = Arc::new(Watch::default());
        let waiting = tokio::spawn({
            let watch = watch.clone();
            async move { watch.cutting().await }
        });
        tokio::task::yield_now().await;
        assert!(watch.cut());
        tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .expect("woken")
            .unwrap();
    }
}
