//! The background scrub of the disk tier: every body read again and checked over
//! `cache.disk.scrub_interval`, one object at a time, paced evenly over the interval, on a thread
//! at the lowest CPU priority. A hit checks a body the first time its file is opened, not on
//! every hit, so damage made to a file after that is the scrub's to find: a body that fails is
//! removed (and counted), and its next request refetches it.

use std::time::Duration;

use tokio::sync::watch;

use super::disk::{DiskTier, Scrubbed};
use super::writers::Writers;
use super::Hash;

/// Objects listed from the catalog at a time.
const CHUNK: usize = 256;
/// The longest a pass with nothing to scrub waits before it looks again.
const IDLE: Duration = Duration::from_secs(60);

/// Scrubs one disk tier.
pub struct Scrubber {
    disk: &'static DiskTier,
    interval: Duration,
    thread: Writers,
}

/// What one pass found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    /// Bodies read and found whole.
    pub whole: u64,
    /// Bodies found damaged and removed.
    pub damaged: u64,
}

impl Scrubber {
    /// A scrub of `disk` whose pass over every object takes about `interval`.
    pub fn new(disk: &'static DiskTier, interval: Duration) -> Self {
        Scrubber {
            disk,
            interval,
            thread: Writers::named("edge-disk-scrub", 1),
        }
    }

    /// Runs passes until `stop` turns true.
    pub async fn run(&self, mut stop: watch::Receiver<bool>) {
        loop {
            match self.pass(&mut stop).await {
                Some(pass) => {
                    if pass.damaged > 0 {
                        tracing::warn!(
                            whole = pass.whole,
                            damaged = pass.damaged,
                            "disk scrub pass removed damaged bodies"
                        );
                    } else {
                        tracing::debug!(whole = pass.whole, "disk scrub pass found nothing wrong");
                    }
                }
                None => return,
            }
        }
    }

    /// One pass over every object committed when it reaches it; `None` once `stop` turns true.
    pub async fn pass(&self, stop: &mut watch::Receiver<bool>) -> Option<Pass> {
        let disk = self.disk;
        let mut pass = Pass::default();
        // Each object's share of the interval, from the count when the pass starts.
        let count = disk.count() as u32;
        if count == 0 {
            pause(stop, self.interval.min(IDLE)).await?;
            return Some(pass);
        }
        let pace = self.interval / count;
        let mut after: Option<Hash> = None;
        loop {
            let from = after;
            let chunk = match self
                .thread
                .run(move || disk.scan(from.as_ref(), CHUNK))
                .await
            {
                Ok(Ok(chunk)) => chunk,
                // A catalog that cannot be read (the tier is closing) ends the pass.
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "disk scrub stopped");
                    return Some(pass);
                }
                Err(_) => return Some(pass),
            };
            let Some((last, _)) = chunk.last() else {
                return Some(pass);
            };
            after = Some(*last);
            for (hash, _) in chunk {
                pause(stop, pace).await?;
                let Some(entry) = disk.peek(&hash) else {
                    continue;
                };
                match self.thread.run(move || disk.scrub(&hash, &entry)).await {
                    Ok(Scrubbed::Whole) => pass.whole += 1,
                    Ok(Scrubbed::Damaged) => pass.damaged += 1,
                    Ok(Scrubbed::Gone) | Err(_) => {}
                }
            }
        }
    }
}

/// Waits `d`, or returns `None` at once when `stop` turns true.
async fn pause(stop: &mut watch::Receiver<bool>, d: Duration) -> Option<()> {
    if *stop.borrow() {
        return None;
    }
    tokio::select! {
        _ = tokio::time::sleep(d) => Some(()),
        _ = stop.wait_for(|s| *s) => None,
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::FileExt;
    use std::path::Path;

    use super::*;
    use crate::cache::catalog::Record;
    use crate::cache::disk::test_tier;

    fn files(dir: &Path) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        let mut stack = vec![dir.join("objects")];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    out.push(p);
                }
            }
        }
        out
    }

    #[tokio::test]
    async fn a_pass_removes_a_damaged_body_and_keeps_the_others() {
        let dir = std::env::temp_dir().join(format!("edge-scrub-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let disk: &'static DiskTier = Box::leak(Box::new(test_tier(&dir)));
        for n in 0..3u8 {
            let hash = [n; 16];
            let gen = disk.write_whole(&hash, &[n; 5000]).unwrap();
            let record = Record {
                meta: (vec![1], vec![2]),
                key: vec![n],
            };
            assert!(disk
                .commit(hash, gen, 5000, hash, &record, || true)
                .await
                .unwrap());
        }
        let damaged = files(&dir).into_iter().next().unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&damaged)
            .unwrap()
            .write_all_at(b"x", 10)
            .unwrap();
        let scrubber = Scrubber::new(disk, Duration::from_millis(30));
        let (_tx, mut stop) = watch::channel(false);
        let pass = scrubber.pass(&mut stop).await.unwrap();
        assert_eq!(
            pass,
            Pass {
                whole: 2,
                damaged: 1
            }
        );
        assert_eq!(disk.count(), 2);
        assert!(!damaged.exists());
        // Stopped, a pass ends at once.
        let (tx, mut stop) = watch::channel(false);
        tx.send(true).unwrap();
        assert_eq!(
            Scrubber::new(disk, Duration::from_secs(3600))
                .pass(&mut stop)
                .await,
            None
        );
    }
}
