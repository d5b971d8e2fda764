// SPDX-License-Identifier: GPL-2.0

//! The UIO device's file operations: open and release of `/dev/uioN`, the handler's
//! completion writes, and the faults of its mapping.

use crate::race_delay;
use crate::ringstate::Ring;
use core::sync::atomic::Ordering;
use kernel::{
    page::PAGE_SIZE,
    pr_warn_ratelimited,
    prelude::*,
    sync::{Arc, ArcBorrow},
    timer::current_cpu,
    uio::{self, FaultPage, Notifier},
};

impl uio::Operations for Ring {
    fn open(&self) -> Result {
        // One handler at a time, as the C module fakes O_EXCL.
        if self.open.swap(true, Ordering::AcqRel) {
            return Err(EBUSY);
        }
        Ok(())
    }

    fn release(this: ArcBorrow<'_, Self>) {
        let this: Arc<Self> = this.into();
        this.release_kept();
        this.open.store(false, Ordering::Release);
    }

    fn open_mapping(&self) -> Option<&uio::OpenMapping> {
        Some(&self.mapping)
    }

    fn waker(&self) -> Option<&uio::Waker> {
        Some(&self.waker)
    }

    fn irqcontrol(this: ArcBorrow<'_, Self>, notifier: &Notifier, _value: i32) -> Result {
        let this: Arc<Self> = this.into();
        this.handoff.cpu.store(current_cpu(), Ordering::Relaxed);
        if this.reap() {
            notifier.notify();
        }
        Ok(())
    }

    fn map_pages(&self) -> usize {
        self.map_pages
    }

    fn fault(&self, pgoff: usize) -> Option<FaultPage> {
        let data_first = self.data_off / PAGE_SIZE;
        if pgoff < data_first {
            return self.area.fault_page(pgoff);
        }
        // Locked: `reclaim` waits for it before it unmaps (see there).
        let page = match self.st.lock().pages.get(pgoff - data_first) {
            Some(Some(page)) => Some(FaultPage::locked(page)),
            _ => None,
        };
        if page.is_none() {
            pr_warn_ratelimited!(
                "{}: handler touched data page {} that holds no data\n",
                &*self.name,
                pgoff - data_first
            );
        }
        race_delay::hold(race_delay::Window::Fault);
        page
    }
}
