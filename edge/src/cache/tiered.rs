//! The [`Storage`] Pingora's cache drives: fills in flight first, then the memory tier.
//!
//! Lookups prefer a fill in flight so that a refetch of an expired object is visible to new
//! readers as it streams in. The disk tier (issue 3) joins here: looked up after memory, written
//! through on `finish`, promoted to memory on a hit.

use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;
use pingora::cache::key::{CacheHashKey, CacheKey};
use pingora::cache::storage::{
    HandleMiss, HitHandler, MissFinishType, MissHandler, PurgeOutcome, PurgeTarget, PurgeType,
    Storage,
};
use pingora::cache::trace::SpanHandle;
use pingora::cache::CacheMeta;
use pingora::{Error, ErrorType, Result};

use super::fill::{Fill, Progress};
use super::hit::{BodyHit, FillHit};
use super::memory::MemoryTier;
use super::{Hash, StoredObject};

/// The edge's cache storage.
pub struct TieredStorage {
    memory: MemoryTier,
    fills: Mutex<HashMap<Hash, Vec<Arc<Fill>>>>,
    next_fill: AtomicU64,
}

impl TieredStorage {
    /// Storage over a memory tier.
    pub fn new(memory: MemoryTier) -> Self {
        TieredStorage {
            memory,
            fills: Mutex::new(HashMap::new()),
            next_fill: AtomicU64::new(1),
        }
    }

    /// The memory tier (for metrics).
    pub fn memory(&self) -> &MemoryTier {
        &self.memory
    }

    /// Largest object any tier stores: bigger responses are not cached.
    pub fn max_object_size(&self) -> u64 {
        self.memory.max_object_size()
    }

    /// Drops every stored variant of a URL (its primary key). Fills in flight are left to finish:
    /// they started after the request that asks for this, or race with it as any write does.
    pub fn invalidate_primary(&self, primary: &Hash) -> usize {
        self.memory.remove_primary(primary)
    }

    fn latest_fill(&self, combined: &Hash) -> Option<Arc<Fill>> {
        self.fills
            .lock()
            .get(combined)
            .and_then(|v| v.last().cloned())
    }

    fn unregister(&self, combined: &Hash, id: u64) {
        let mut fills = self.fills.lock();
        if let Some(list) = fills.get_mut(combined) {
            list.retain(|f| f.id != id);
            if list.is_empty() {
                fills.remove(combined);
            }
        }
    }
}

fn hit_from_fill(fill: Arc<Fill>) -> Result<Option<(CacheMeta, HitHandler)>> {
    let meta = CacheMeta::deserialize(&fill.meta.0, &fill.meta.1)?;
    Ok(Some((meta, Box::new(FillHit::new(fill)))))
}

#[async_trait]
impl Storage for TieredStorage {
    async fn lookup(
        &'static self,
        key: &CacheKey,
        _trace: &SpanHandle,
    ) -> Result<Option<(CacheMeta, HitHandler)>> {
        let combined = key.combined_bin();
        if let Some(fill) = self.latest_fill(&combined) {
            return hit_from_fill(fill);
        }
        match self.memory.get(&combined) {
            Some(obj) => {
                let meta = CacheMeta::deserialize(&obj.meta.0, &obj.meta.1)?;
                Ok(Some((meta, Box::new(BodyHit::new(obj.body.clone())))))
            }
            None => Ok(None),
        }
    }

    async fn lookup_streaming_write(
        &'static self,
        key: &CacheKey,
        tag: Option<&[u8]>,
        trace: &SpanHandle,
    ) -> Result<Option<(CacheMeta, HitHandler)>> {
        let Some(id) = tag.and_then(|t| <[u8; 8]>::try_from(t).ok()) else {
            return self.lookup(key, trace).await;
        };
        let id = u64::from_be_bytes(id);
        let combined = key.combined_bin();
        let fill = self
            .fills
            .lock()
            .get(&combined)
            .and_then(|v| v.iter().find(|f| f.id == id).cloned());
        match fill {
            Some(fill) => hit_from_fill(fill),
            // Finished already: the object is in a tier now, or was not admitted.
            None => self.lookup(key, trace).await,
        }
    }

    async fn get_miss_handler(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        _trace: &SpanHandle,
    ) -> Result<MissHandler> {
        let id = self.next_fill.fetch_add(1, Ordering::Relaxed);
        let fill = Arc::new(Fill::new(id, meta.serialize()?));
        let combined = key.combined_bin();
        self.fills
            .lock()
            .entry(combined)
            .or_default()
            .push(fill.clone());
        Ok(Box::new(TieredMiss {
            storage: self,
            fill,
            combined,
            primary: key.primary_bin(),
            written: 0,
            tag: id.to_be_bytes(),
            finished: false,
        }))
    }

    async fn purge(
        &'static self,
        target: PurgeTarget<'_>,
        _purge_type: PurgeType,
        _trace: &SpanHandle,
    ) -> Result<PurgeOutcome> {
        let combined = target.key().combined_bin();
        Ok(if self.memory.remove(&combined) {
            PurgeOutcome::Purged(None)
        } else {
            PurgeOutcome::NotFound
        })
    }

    async fn update_meta(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        _trace: &SpanHandle,
    ) -> Result<bool> {
        Ok(self
            .memory
            .update_meta(&key.combined_bin(), meta.serialize()?))
    }

    fn support_streaming_partial_write(&self) -> bool {
        true
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync + 'static) {
        self
    }
}

/// Writes one response: chunks go to the fill that readers follow, and `finish` stores the
/// whole object.
struct TieredMiss {
    storage: &'static TieredStorage,
    fill: Arc<Fill>,
    combined: Hash,
    primary: Hash,
    written: u64,
    tag: [u8; 8],
    finished: bool,
}

#[async_trait]
impl HandleMiss for TieredMiss {
    async fn write_body(&mut self, data: Bytes, _eof: bool) -> Result<()> {
        self.written += data.len() as u64;
        if self.written > self.storage.max_object_size() {
            // Pingora's max-file-size check normally stops this first; never buffer unbounded.
            return Error::e_explain(
                ErrorType::InternalError,
                "response grew past the cache's max_object_size",
            );
        }
        if !data.is_empty() {
            self.fill.push(data);
        }
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> Result<MissFinishType> {
        let object = Arc::new(StoredObject {
            combined: self.combined,
            primary: self.primary,
            meta: self.fill.meta.clone(),
            body: self.fill.concat(),
        });
        let size = object.body.len();
        // Store before unregistering the fill, so a lookup in between finds one or the other.
        self.storage.memory.put(object);
        self.storage.unregister(&self.combined, self.fill.id);
        self.fill.set(Progress::Done);
        self.finished = true;
        Ok(MissFinishType::Created(size))
    }

    fn streaming_write_tag(&self) -> Option<&[u8]> {
        Some(&self.tag)
    }
}

impl Drop for TieredMiss {
    fn drop(&mut self) {
        if !self.finished {
            self.storage.unregister(&self.combined, self.fill.id);
            self.fill.set(Progress::Aborted);
        }
    }
}

/// Which source a hit comes from, for `Cache-Status` `detail`: a tier, or a fill in flight that
/// this request follows (a coalesced miss).
pub fn hit_source(hit: &HitHandler) -> &'static str {
    if hit.as_any().is::<FillHit>() {
        "coalesced"
    } else {
        "memory"
    }
}
