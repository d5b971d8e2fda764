// SPDX-License-Identifier: GPL-2.0

//! The counters of a ring and the `attrib/stats` text.

use crate::reclaim::GLOBAL_PAGES;
use crate::ringstate::Ring;
use core::sync::atomic::Ordering;

/// Counters of `attrib/stats`.
#[derive(Default)]
pub(crate) struct Stats {
    pub(crate) submitted: u64,
    pub(crate) completed: u64,
    pub(crate) timed_out: u64,
    pub(crate) aborted: u64,
    pub(crate) qfull: u64,
    pub(crate) deferred: u64,
    /// Large Data-In copied at once: too few commands on the ring, or submitted on the
    /// handler's CPU.
    pub(crate) defer_idle: u64,
    pub(crate) defer_same_cpu: u64,
    /// Large writes whose Data-Out copy was handed off to the handler's CPU.
    pub(crate) handoff: u64,
    /// Data pages freed by reclaim (over the global limit or idle), not by removal.
    pub(crate) reclaimed: u64,
    pub(crate) ring_peak: u32,
    pub(crate) blocks_peak: u32,
    /// The longest the qfull queue has been.
    pub(crate) qfull_peak: usize,
}

impl Ring {
    /// Writes `attrib/stats`.
    pub(crate) fn write_stats(&self, f: &mut dyn core::fmt::Write) -> core::fmt::Result {
        let st = self.st.lock();
        let s = &st.stats;
        writeln!(f, "cmds_submitted {}", s.submitted)?;
        writeln!(f, "cmds_completed {}", s.completed)?;
        writeln!(f, "cmds_timed_out {}", s.timed_out)?;
        writeln!(f, "cmds_aborted {}", s.aborted)?;
        writeln!(f, "qfull_events {}", s.qfull)?;
        writeln!(f, "qfull_waiting {}", st.qfull.len())?;
        writeln!(f, "qfull_peak {}", s.qfull_peak)?;
        writeln!(f, "qfull_slots {}", st.qfull.capacity())?;
        writeln!(f, "data_in_deferred {}", s.deferred)?;
        writeln!(f, "data_in_not_deferred_idle {}", s.defer_idle)?;
        writeln!(f, "data_in_not_deferred_same_cpu {}", s.defer_same_cpu)?;
        writeln!(f, "data_out_handed_off {}", s.handoff)?;
        writeln!(
            f,
            "handler_wakeups {}",
            self.wakeups.load(Ordering::Relaxed)
        )?;
        writeln!(f, "cmds_inflight {}", st.cmds.len())?;
        writeln!(f, "ring_used_bytes {}", st.ring.used())?;
        writeln!(f, "ring_peak_bytes {}", s.ring_peak)?;
        writeln!(f, "ring_size_bytes {}", self.cmdr_size)?;
        writeln!(f, "data_blocks_used {}", st.blocks.used())?;
        writeln!(f, "data_blocks_peak {}", s.blocks_peak)?;
        writeln!(f, "data_blocks_max {}", st.blocks.max_blocks())?;
        writeln!(f, "data_pages {}", st.npages)?;
        writeln!(f, "data_pages_reclaimed {}", s.reclaimed)?;
        writeln!(
            f,
            "global_data_pages {}",
            GLOBAL_PAGES.load(Ordering::Relaxed)
        )
    }
}
