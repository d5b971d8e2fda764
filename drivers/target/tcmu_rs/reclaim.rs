// SPDX-License-Identifier: GPL-2.0

//! Reclaim of data area pages: the global page count, the [`Reclaimer`] that frees the unused
//! pages of all devices over `global_max_data_area_mb`, and the reclaim of one ring.

use crate::modparams::global_max_pages;
use crate::ringstate::{Ring, RingState};
use crate::slots;
use crate::timeout::deadline_in;
use core::sync::atomic::{AtomicUsize, Ordering};
use kernel::{
    c_str, new_mutex,
    prelude::*,
    sync::{Arc, Mutex},
    timer::{ArcTimer, ArcTimerCallback, ArcWork, ArcWorkCallback},
    uio,
};

/// Data area pages held by all devices (`global_page_count`).
pub(crate) static GLOBAL_PAGES: AtomicUsize = AtomicUsize::new(0);

/// Whether the data areas hold more pages than `global_max_data_area_mb` allows.
pub(crate) fn over_global_limit() -> bool {
    GLOBAL_PAGES.load(Ordering::Relaxed) > global_max_pages()
}

/// Frees the unused data pages of all devices when they hold more than the global limit
/// (C's `tcmu_unmap_work`).
#[pin_data]
pub(crate) struct Reclaimer {
    /// The rings of enabled devices.
    #[pin]
    rings: Mutex<slots::Slots<Arc<Ring>>>,
    #[pin]
    work: ArcWork<Reclaimer>,
    /// Runs `work` again while the data areas stay over the limit (as C, every 5 s).
    #[pin]
    retry: ArcTimer<Reclaimer>,
}

/// How long the reclaimer waits before it tries again while over the limit.
const RECLAIM_RETRY_MS: u64 = 5000;

kernel::impl_has_arc_work!(Reclaimer, work);
kernel::impl_has_arc_timer!(Reclaimer, retry);

impl ArcWorkCallback for Reclaimer {
    fn run(this: Arc<Self>) {
        this.reclaim_all();
        if over_global_limit() {
            ArcTimer::arm_earlier(&this, deadline_in(RECLAIM_RETRY_MS));
        }
    }
}

impl ArcTimerCallback for Reclaimer {
    fn expired(this: Arc<Self>) {
        ArcWork::schedule(this);
    }
}

impl Reclaimer {
    pub(crate) fn new() -> Result<Arc<Self>> {
        Arc::pin_init(
            pin_init!(Reclaimer {
                rings <- new_mutex!(slots::Slots::new(), "Reclaimer::rings"),
                work <- ArcWork::new(
                    c_str!("tcmu_rs::Reclaimer::work"),
                    kernel::static_lock_class!()
                ),
                retry <- ArcTimer::new(),
            }),
            GFP_KERNEL,
        )
    }

    pub(crate) fn add(&self, ring: Arc<Ring>) -> Result {
        self.rings.lock().add(ring, GFP_KERNEL)
    }

    pub(crate) fn remove(&self, ring: &Arc<Ring>) {
        self.rings.lock().remove_where(|r| Arc::ptr_eq(r, ring));
    }

    fn reclaim_all(&self) {
        // As C's `find_free_blocks`: nothing to do under the limit (a retry may come after
        // the limit was raised or pages were freed; it must not empty every device).
        if !over_global_limit() {
            return;
        }
        let mut rings = KVec::new();
        for r in self.rings.lock().iter() {
            if rings.push(r.clone(), GFP_KERNEL).is_err() {
                break;
            }
        }
        let freed: usize = rings.iter().map(|r| r.reclaim()).sum();
        pr_debug!(
            "reclaimed {} data pages, {} held\n",
            freed,
            GLOBAL_PAGES.load(Ordering::Relaxed)
        );
    }
}

impl Ring {
    /// Frees the data pages after the last block in use (C's `find_free_blocks` for one
    /// device): the handler's mappings of them go first, so its next touch faults in the
    /// page a later command allocates. Returns the number of pages freed.
    fn reclaim(&self) -> usize {
        let mut st = self.st.lock();
        if st.dead {
            return 0;
        }
        let Some(r) = st.blocks.reclaim() else {
            return 0;
        };
        // No block from `start` on is in use: free every page from there.
        let from = r.start as usize * self.pages_per_blk as usize;
        let mut freed = 0;
        for slot in st.pages.iter_mut().skip(from) {
            if let Some(page) = slot.take() {
                // A fault that found the page before it left the table has mapped it once this
                // returns (`fault` hands it over locked), so the unmap below removes that
                // mapping too: the handler cannot keep a page the device no longer owns.
                uio::wait_for_fault(&page);
                freed += 1;
            }
        }
        // Mapped pages hold their own reference until this unmaps them.
        let off = self.data_off as u64 + u64::from(r.start) * u64::from(self.blk_size);
        self.mapping.unmap(off, 0);
        st.npages -= freed;
        st.stats.reclaimed += freed as u64;
        GLOBAL_PAGES.fetch_sub(freed, Ordering::Relaxed);
        freed
    }

    /// Idle and over the global limit: schedules the reclaim of unused pages (C does it when
    /// it reaps). Called when commands leave: at the end of a reap, and when the deferred
    /// copies free their blocks (the reclaim only frees pages above the last block in use).
    pub(crate) fn reclaim_if_idle(&self, st: &RingState) {
        if st.cmds.len() == 0
            && st.qfull.is_empty()
            && st.deferred.is_empty()
            && over_global_limit()
        {
            ArcWork::schedule(self.reclaimer.clone());
        }
    }
}
