//! The header a fast hit answers with, before its `Age` and `Cache-Status`: kept ready on each
//! worker thread for the objects it serves most.
//!
//! Made afresh on every hit, it is a clone of the stored header with this node's internal fields
//! removed and `Accept-Ranges` added: four removals and an insertion into two maps, and for every
//! field a reference count taken and given back on the one allocation the stored header's bytes
//! share. That count is shared by every worker serving the object, so on a hot object each hit
//! moved its cache line between the cores some forty times (`bytes::shared_clone` and
//! `shared_drop` stood out in the profile of a small hit). A worker's own copy, made once,
//! is stripped already and its bytes are the worker's alone.

use std::cell::RefCell;
use std::sync::{Arc, Weak};

use pingora::http::ResponseHeader;

use crate::cache::stored_header::StoredHeader;
use crate::cache::Head;

/// Ready headers per worker thread; a few hundred KiB at most.
const SLOTS: usize = 256;

/// A ready header, and the head it was made from. The `Weak` keeps the head's allocation, so no
/// other head can be made at its address while the slot names it.
struct Ready {
    head: Weak<Head>,
    header: ResponseHeader,
}

#[derive(Default)]
struct Slot {
    ready: Option<Ready>,
    /// The head that last found this slot holding another: a head gets the slot on its second
    /// hit in a row there, so a tail of objects hit once each does not churn it.
    knocked: usize,
}

thread_local! {
    static SLOTS_OF_THIS_THREAD: RefCell<Vec<Slot>> = const { RefCell::new(Vec::new()) };
}

/// The header for a hit on `head`: `stored` (its kept header) made ready by `prepare`, from
/// this thread's slots when it is there.
pub(super) fn for_hit(
    head: &Arc<Head>,
    stored: &StoredHeader,
    prepare: impl Fn(&mut ResponseHeader) -> pingora::Result<()>,
) -> pingora::Result<ResponseHeader> {
    let at = Arc::as_ptr(head) as usize;
    let ready = SLOTS_OF_THIS_THREAD.with(|slots| {
        let mut slots = slots.try_borrow_mut().ok()?;
        if slots.is_empty() {
            slots.resize_with(SLOTS, Slot::default);
        }
        let slot = &mut slots[slot_of(at)];
        if let Some(r) = &slot.ready {
            if r.head.as_ptr() as usize == at {
                return Some(Ok(r.header.clone()));
            }
        }
        if slot.ready.is_some() && slot.knocked != at {
            slot.knocked = at;
            return None;
        }
        // This thread's own copy: its bytes in an allocation no other thread counts.
        let mut header = match stored.header() {
            Ok(h) => h,
            Err(e) => return Some(Err(e)),
        };
        if let Err(e) = prepare(&mut header) {
            return Some(Err(e));
        }
        slot.ready = Some(Ready {
            head: Arc::downgrade(head),
            header: header.clone(),
        });
        slot.knocked = 0;
        Some(Ok(header))
    });
    match ready {
        Some(r) => r,
        None => {
            let mut header = stored.header()?;
            prepare(&mut header)?;
            Ok(header)
        }
    }
}

/// The slot of the head at address `at` (Fibonacci hashing: heads sit a size class apart, and
/// the product spreads any stride over the slots).
fn slot_of(at: usize) -> usize {
    ((at as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as usize % SLOTS
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn head(n: u8) -> Arc<Head> {
        let mut header = ResponseHeader::build(200, None).unwrap();
        header.insert_header("X-N", n.to_string()).unwrap();
        let meta = pingora::cache::CacheMeta::new(
            std::time::UNIX_EPOCH,
            std::time::UNIX_EPOCH,
            0,
            0,
            header,
        );
        Arc::new(Head::of_live(Bytes::from(vec![n]), &meta).unwrap())
    }

    fn stored(h: &Head) -> &StoredHeader {
        &h.decoded().unwrap().header
    }

    fn prepare(
        calls: &std::cell::Cell<u32>,
    ) -> impl Fn(&mut ResponseHeader) -> pingora::Result<()> + '_ {
        move |h| {
            calls.set(calls.get() + 1);
            h.insert_header("X-Ready", "1")
        }
    }

    #[test]
    fn a_header_is_prepared_once_per_head_and_thread() {
        let calls = std::cell::Cell::new(0);
        let a = head(1);
        for _ in 0..3 {
            let h = for_hit(&a, stored(&a), prepare(&calls)).unwrap();
            assert_eq!(h.headers["x-n"], "1");
            assert_eq!(h.headers["x-ready"], "1");
        }
        assert_eq!(calls.get(), 1);
    }

    #[test]
    fn a_new_head_at_a_dropped_heads_slot_gets_its_own_header() {
        let calls = std::cell::Cell::new(0);
        for n in 0..50u8 {
            // Each head is dropped before the next is made, so allocations are reused.
            let h = head(n);
            let got = for_hit(&h, stored(&h), prepare(&calls)).unwrap();
            assert_eq!(got.headers["x-n"], n.to_string().as_str());
        }
    }

    #[test]
    fn a_slot_goes_to_a_head_on_its_second_hit_in_a_row() {
        let calls = std::cell::Cell::new(0);
        let heads: Vec<_> = (0..=255u8).map(head).collect();
        // Two heads on one slot: the first holds it, the second is prepared every time until
        // it knocks twice in a row.
        let at = |h: &Arc<Head>| slot_of(Arc::as_ptr(h) as usize);
        let (a, b) = heads
            .iter()
            .enumerate()
            .find_map(|(i, a)| {
                heads[i + 1..]
                    .iter()
                    .find(|b| at(b) == at(a))
                    .map(|b| (a, b))
            })
            .expect("256 heads over 256 slots share one");
        for_hit(a, stored(a), prepare(&calls)).unwrap();
        for_hit(a, stored(a), prepare(&calls)).unwrap();
        assert_eq!(calls.get(), 1);
        for_hit(b, stored(b), prepare(&calls)).unwrap();
        assert_eq!(
            calls.get(),
            2,
            "the first knock prepares b's header without keeping it"
        );
        let got = for_hit(b, stored(b), prepare(&calls)).unwrap();
        assert_eq!(got.headers["x-n"].as_bytes(), stored(b).get("x-n").unwrap());
        assert_eq!(calls.get(), 3, "the second knock prepares and keeps it");
        for_hit(b, stored(b), prepare(&calls)).unwrap();
        assert_eq!(calls.get(), 3);
        let got = for_hit(a, stored(a), prepare(&calls)).unwrap();
        assert_eq!(got.headers["x-n"].as_bytes(), stored(a).get("x-n").unwrap());
    }
}
