// SPDX-License-Identifier: GPL-2.0

//! Submission: commands go on the ring ([`Ring::queue`], `try_ring`), or wait in the qfull
//! queue for ring or data space; large writes are handed off to the handler's CPU.

use crate::abi::{self, Iovec, Opcode};
use crate::cmds::{Inflight, INLINE_BLOCKS};
use crate::device::User;
use crate::entry::{self, CmdEntry};
use crate::modparams::global_max_pages;
use crate::params::CMDR_OFF;
use crate::placement::{self, DataBlocks};
use crate::reclaim::GLOBAL_PAGES;
use crate::response::{CmdInfo, DataDirection};
use crate::ringstate::{AreaSink, Ring, RingState};
use crate::smallvec::SmallVec;
use crate::timeout::deadline_in;
use core::sync::atomic::{fence, AtomicBool, AtomicI32, Ordering};
use kernel::{
    alloc::flags::__GFP_ZERO,
    page::{Page, PAGE_SIZE},
    pr_warn_ratelimited,
    prelude::*,
    scatterlist::SgList,
    sync::Arc,
    target::{
        self, DataDir, PendingCmd, Rejected, SenseReason, TCM_CHECK_CONDITION_ABORT_CMD,
        TCM_INVALID_CDB_FIELD, TCM_LOGICAL_UNIT_COMMUNICATION_FAILURE, TCM_LUN_BUSY,
        TCM_OUT_OF_RESOURCES,
    },
    time::Jiffies,
    timer::{current_cpu, ArcWork},
};

/// Tags of commands in the qfull queue (ring commands are tagged with their cmd_id).
const QUEUED_TAG: usize = 1 << 20;

/// Where and when `Ring::work` queues handed-off writes (see [`Ring::handoff_cpu`]).
pub(crate) struct Handoff {
    /// The CPU of the handler's last completion write (a hint; -1 before the first).
    pub(crate) cpu: AtomicI32,
    /// A large write was handed off: `work` must put the waiting commands on the ring.
    pub(crate) due: AtomicBool,
}

/// The status of a waiting command that cannot go on the ring after all (`try_ring` refused
/// it for `reason`): `CHECK CONDITION`, which the target core turns into LOGICAL UNIT
/// COMMUNICATION FAILURE, as C's `run_qfull_queue`; but `BUSY` on a blocked device, as C's
/// `tcmu_block_dev` fails the waiting commands, so that the initiator retries them once the
/// handler unblocks the device.
fn waiting_failed_status(reason: target::SenseReason) -> u8 {
    if reason == TCM_LUN_BUSY {
        target::SAM_STAT_BUSY
    } else {
        target::SAM_STAT_CHECK_CONDITION
    }
}

/// A command waiting for ring or data space.
pub(crate) struct Queued {
    pub(crate) cmd: PendingCmd<User>,
    pub(crate) deadline: Jiffies,
}

/// Data-Out of at least this many bytes is copied on the handler's CPU while the handler
/// sleeps (see [`Ring::handoff_cpu`]); smaller copies cost less than the hop.
const HANDOFF_MIN: usize = 64 * 1024;

/// Iovecs an entry is built from without allocating.
const INLINE_IOVS: usize = 16;

/// A command's entry: its iovecs (`iov_cnt` of the first blocks, then the bidi ones), the
/// offset of its CDB (`base`), its size and its cmd_id.
struct Layout {
    iovs: SmallVec<Iovec, INLINE_IOVS>,
    iov_cnt: usize,
    base: usize,
    total: usize,
    cmd_id: u16,
}

/// What [`Ring::place`] took for a command: its data blocks and its entry's layout.
struct Placed {
    dbis: SmallVec<u32, INLINE_BLOCKS>,
    entry: Layout,
}

/// Why [`Ring::place`] took nothing.
enum NoPlace {
    /// No ring or data space now.
    NoSpace,
    /// The command cannot be run at all.
    Fail(SenseReason),
}

/// Why a command could not go on the ring now.
enum NotQueued {
    /// No ring or data space: wait in the qfull queue.
    NoSpace(PendingCmd<User>),
    /// Cannot be run at all.
    Fail(PendingCmd<User>, target::SenseReason),
}

fn data_direction(d: DataDir) -> DataDirection {
    match d {
        DataDir::None => DataDirection::None,
        DataDir::ToDevice => DataDirection::ToDevice,
        DataDir::FromDevice => DataDirection::FromDevice,
        DataDir::Bidi => DataDirection::Bidirectional,
    }
}

impl Ring {
    /// Queues `cmd` on the ring, or in the qfull queue. Returns whether it went on the ring
    /// (the handler must be woken up; not if it waits for space).
    /// `handler_idle` tells whether the handler sleeps waiting for commands (asked only for a
    /// large write).
    pub(crate) fn queue(
        self: &Arc<Self>,
        cmd: PendingCmd<User>,
        handler_idle: impl FnOnce() -> bool,
    ) -> Result<bool, Rejected<User>> {
        let mut st = self.st.lock();
        if st.broken || st.dead {
            return Err(cmd.reject(TCM_LOGICAL_UNIT_COMMUNICATION_FAILURE));
        }
        // Under the lock `tmr` takes: either the TMR that aborted it named it, or it is
        // refused here and never reaches the handler (as C's `tcmu_queue_cmd`).
        if cmd.is_aborted() {
            return Err(cmd.reject(TCM_CHECK_CONDITION_ABORT_CMD));
        }
        // Keep the order: nothing overtakes commands already waiting.
        let res = if !st.qfull.is_empty() {
            Err(NotQueued::NoSpace(cmd))
        } else if let Some((cpu, wait)) = self.handoff_cpu(&st, &cmd, handler_idle) {
            // It waits in the qfull queue, which keeps the order of the commands after it and
            // its timeout, abort, block and teardown handling; `work` takes it from there.
            st.stats.handoff += 1;
            self.push_waiting(&mut st, cmd, deadline_in(wait));
            drop(st);
            self.handoff.due.store(true, Ordering::Release);
            ArcWork::schedule_on(self.clone(), cpu);
            return Ok(false);
        } else {
            self.try_ring(&mut st, cmd)
        };
        match res {
            Ok(()) => Ok(true),
            Err(NotQueued::Fail(cmd, reason)) => Err(cmd.reject(reason)),
            Err(NotQueued::NoSpace(cmd)) => {
                let Some(wait) = self.settings.qfull_wait_ms() else {
                    return Err(cmd.reject(TCM_OUT_OF_RESOURCES));
                };
                st.stats.qfull += 1;
                self.push_waiting(&mut st, cmd, deadline_in(wait));
                Ok(false)
            }
        }
    }

    /// Puts `cmd` at the end of the qfull queue, waiting until `deadline`.
    fn push_waiting(
        self: &Arc<Self>,
        st: &mut RingState,
        mut cmd: PendingCmd<User>,
        deadline: Jiffies,
    ) {
        cmd.set_tag(QUEUED_TAG | (st.qseq & (QUEUED_TAG - 1)));
        st.qseq = st.qseq.wrapping_add(1);
        // A failed push drops (and so fails) the command.
        if st.qfull.push(Queued { cmd, deadline }).is_ok() {
            self.arm_deadline(st, deadline);
        }
        st.stats.qfull_peak = st.stats.qfull_peak.max(st.qfull.len());
    }

    /// Where to hand off `cmd`, a large write, instead of copying its Data-Out here, and for
    /// how long it may wait: the handler's CPU, if the handler sleeps waiting for commands (so
    /// its CPU has time for the copy) and it is another CPU than this one. `None`: queue it
    /// here, as usual (also when waiting is not allowed, `qfull_time_out` 0, and for a
    /// command `try_ring` may refuse: it is refused there, with its reason).
    fn handoff_cpu(
        &self,
        st: &RingState,
        cmd: &PendingCmd<User>,
        handler_idle: impl FnOnce() -> bool,
    ) -> Option<(i32, u64)> {
        let len = cmd.data_length();
        if cmd.direction() != DataDir::ToDevice
            || (len as usize) < HANDOFF_MIN
            || self.settings.blocked.load(Ordering::Relaxed)
            || !handler_idle()
        {
            return None;
        }
        // `try_ring`'s size checks, with the most iovecs the blocks can take (one per block).
        let data = DataBlocks::new(len, 0, self.blk_size, st.blocks.max_blocks())?;
        placement::entry_fit(data.total(), cmd.cdb().len(), self.cmdr_size).ok()?;
        let cpu = self.handoff.cpu.load(Ordering::Relaxed);
        if cpu < 0 || cpu == current_cpu() {
            return None;
        }
        Some((cpu, self.settings.qfull_wait_ms()?))
    }

    /// Puts handed-off writes (and the commands queued behind them) on the ring, from `work`
    /// on the handler's CPU, and wakes the handler if any went on.
    pub(crate) fn run_handoff(self: &Arc<Self>) {
        let mut st = self.st.lock();
        let queued = self.retry_waiting(&mut st);
        drop(st);
        if queued {
            self.waker.notify();
        }
    }

    /// Puts `cmd` on the ring (and arms the timer for its deadline).
    fn try_ring(
        self: &Arc<Self>,
        st: &mut RingState,
        cmd: PendingCmd<User>,
    ) -> Result<(), NotQueued> {
        let data = match self.admit(st, &cmd) {
            Ok(data) => data,
            Err(reason) => return Err(NotQueued::Fail(cmd, reason)),
        };
        match self.place(st, cmd.cdb().len(), &data) {
            Ok(placed) => self.publish(st, cmd, &data, placed),
            Err(NoPlace::NoSpace) => Err(NotQueued::NoSpace(cmd)),
            Err(NoPlace::Fail(reason)) => Err(NotQueued::Fail(cmd, reason)),
        }
    }

    /// Whether `cmd` may go on the ring at all, and the data blocks it takes.
    fn admit(&self, st: &RingState, cmd: &PendingCmd<User>) -> Result<DataBlocks, SenseReason> {
        // As C's `queue_cmd_ring`: nothing goes on a ring the handler broke.
        if st.broken {
            return Err(TCM_LOGICAL_UNIT_COMMUNICATION_FAILURE);
        }
        if self.settings.blocked.load(Ordering::Relaxed) {
            return Err(TCM_LUN_BUSY);
        }
        let data_len = cmd.data_length();
        let bidi_len = if cmd.direction() == DataDir::Bidi {
            cmd.bidi_sg().len() as u32
        } else {
            0
        };
        let data = DataBlocks::new(data_len, bidi_len, self.blk_size, st.blocks.max_blocks());
        if data.is_none() {
            let len = u64::from(data_len) + u64::from(bidi_len);
            pr_warn_ratelimited!(
                "{}: request of {} bytes is too big for the data area\n",
                &*self.name,
                len
            );
        }
        data.ok_or(TCM_INVALID_CDB_FIELD)
    }

    /// Takes what a command with `data` and a CDB of `cdb_len` bytes needs to go on the ring
    /// now: its data blocks (with their pages), its iovecs, its entry's room and a cmd_id.
    /// Nothing stays taken on error.
    fn place(
        &self,
        st: &mut RingState,
        cdb_len: usize,
        data: &DataBlocks,
    ) -> Result<Placed, NoPlace> {
        let dbis = self.alloc_data(st, data)?;
        match self.lay_out(st, cdb_len, data, &dbis) {
            Ok(entry) => Ok(Placed { dbis, entry }),
            Err(e) => {
                st.blocks.free(&dbis);
                Err(e)
            }
        }
    }

    /// The data blocks of `data`, with their pages.
    fn alloc_data(
        &self,
        st: &mut RingState,
        data: &DataBlocks,
    ) -> Result<SmallVec<u32, INLINE_BLOCKS>, NoPlace> {
        let n = data.total();
        let Ok(mut dbis) = SmallVec::<u32, INLINE_BLOCKS>::filled(0, n) else {
            return Err(NoPlace::Fail(TCM_OUT_OF_RESOURCES));
        };
        st.blocks
            .alloc(n as u32, &mut dbis)
            .ok_or(NoPlace::NoSpace)?;
        let (first, bidi) = data.split(&dbis);
        if self.ensure_pages(st, first, data.data_len).is_err()
            || self.ensure_pages(st, bidi, data.bidi_len).is_err()
        {
            st.blocks.free(&dbis);
            return Err(NoPlace::NoSpace);
        }
        Ok(dbis)
    }

    /// The entry of a command whose data is in `dbis`, if it fits the ring now.
    fn lay_out(
        &self,
        st: &mut RingState,
        cdb_len: usize,
        data: &DataBlocks,
        dbis: &[u32],
    ) -> Result<Layout, NoPlace> {
        let (iov_cnt, iov_bidi_cnt) = data.iov_counts(dbis);
        let (base, total) = placement::entry_fit(iov_cnt + iov_bidi_cnt, cdb_len, self.cmdr_size)
            .map_err(|total| {
            pr_warn_ratelimited!(
                "{}: request of {} bytes is too big for the ring\n",
                &*self.name,
                total
            );
            NoPlace::Fail(TCM_INVALID_CDB_FIELD)
        })?;
        if !st.ring.fits(total as u32) {
            return Err(NoPlace::NoSpace);
        }
        let cmd_id = st
            .cmds
            .free_id()
            .ok_or(NoPlace::Fail(TCM_OUT_OF_RESOURCES))?;
        let empty = Iovec { base: 0, len: 0 };
        let Ok(mut iovs) = SmallVec::<Iovec, INLINE_IOVS>::filled(empty, iov_cnt + iov_bidi_cnt)
        else {
            return Err(NoPlace::Fail(TCM_OUT_OF_RESOURCES));
        };
        data.fill_iovecs(dbis, self.blk_size, self.data_off as u64, &mut iovs)
            .ok_or(NoPlace::Fail(TCM_INVALID_CDB_FIELD))?;
        Ok(Layout {
            iovs,
            iov_cnt,
            base,
            total,
            cmd_id,
        })
    }

    /// Copies the Data-Out of `cmd` into its blocks, writes its entry (after a PAD if the ring
    /// wraps), publishes the new head and keeps the command in flight.
    fn publish(
        self: &Arc<Self>,
        st: &mut RingState,
        cmd: PendingCmd<User>,
        data: &DataBlocks,
        placed: Placed,
    ) -> Result<(), NotQueued> {
        // Data-Out goes into the blocks before the entry is published.
        if matches!(cmd.direction(), DataDir::ToDevice | DataDir::Bidi) {
            let (first, _) = data.split(&placed.dbis);
            self.copy_sg(
                &st.pages,
                &cmd.data_sg(),
                first,
                data.data_len as usize,
                true,
            );
        }
        let e = &placed.entry;
        let Some(place) = st.ring.reserve(e.total as u32, Opcode::Cmd) else {
            st.blocks.free(&placed.dbis);
            return Err(NotQueued::NoSpace(cmd));
        };
        let mut sink = AreaSink(&self.area);
        let cmdr = CMDR_OFF as usize;
        if let Some((off, len)) = place.pad {
            entry::write_pad(&mut sink, cmdr, off as usize, len as usize);
        }
        let iov_bidi_cnt = e.iovs.len() - e.iov_cnt.min(e.iovs.len());
        let cmd_entry = CmdEntry {
            offset: place.offset as usize,
            total: e.total,
            base: e.base,
            cmd_id: e.cmd_id,
            iovs: &e.iovs,
            iov_cnt: e.iov_cnt as u32,
            iov_bidi_cnt: iov_bidi_cnt as u32,
            cdb: cmd.cdb(),
        };
        entry::write_cmd(&mut sink, cmdr, &cmd_entry);
        // Publish: the entry must be visible before the new head.
        fence(Ordering::Release);
        self.area
            .write_u32(abi::MAILBOX_CMD_HEAD_OFFSET, st.ring.head());
        self.track(st, cmd, data, placed);
        Ok(())
    }

    /// Keeps `cmd`, now on the ring, in flight under its cmd_id until the handler completes
    /// it (or its deadline passes).
    fn track(
        self: &Arc<Self>,
        st: &mut RingState,
        mut cmd: PendingCmd<User>,
        data: &DataBlocks,
        placed: Placed,
    ) {
        let info = CmdInfo {
            dir: data_direction(cmd.direction()),
            data_length: data.data_len,
            bidi_length: data.bidi_len,
        };
        let tmo = self.settings.cmd_time_out_ms.load(Ordering::Relaxed);
        let deadline = (tmo > 0).then(|| deadline_in(tmo));
        let cmd_id = placed.entry.cmd_id;
        cmd.set_tag(usize::from(cmd_id));
        let inf = Inflight {
            cmd: Some(cmd),
            deadline,
            kept: false,
            dbis: placed.dbis,
            n_first: data.n_first as usize,
            info,
        };
        // Always inserted: `free_id` returned the id under this lock.
        st.cmds.insert(cmd_id, inf);
        st.stats.submitted += 1;
        st.stats.ring_peak = st.stats.ring_peak.max(st.ring.used());
        st.stats.blocks_peak = st.stats.blocks_peak.max(st.blocks.used());
        if let Some(d) = deadline {
            self.arm_deadline(st, d);
        }
    }

    /// Allocates the missing pages of blocks `dbis` that hold `len` bytes of data: all pages of
    /// the full blocks, only those the data reaches in the last one (as C; a block of 256
    /// pages is not filled for 4 KiB). Schedules a reclaim when the data areas go over the
    /// global limit, busy or not (as C).
    fn ensure_pages(&self, st: &mut RingState, dbis: &[u32], len: u32) -> Result {
        let ppb = self.pages_per_blk as usize;
        let mut left = len as usize;
        for &dbi in dbis {
            let in_blk = left.min(self.blk_size as usize);
            left -= in_blk;
            let n = in_blk.div_ceil(PAGE_SIZE).min(ppb);
            let first = (dbi as usize).saturating_mul(ppb);
            while st.pages.len() < first.saturating_add(n) {
                st.pages.push(None, GFP_NOIO)?;
            }
            for slot in st.pages.iter_mut().skip(first).take(n) {
                if slot.is_none() {
                    *slot = Some(Page::alloc_page(GFP_NOIO | __GFP_ZERO)?);
                    st.npages += 1;
                    if GLOBAL_PAGES.fetch_add(1, Ordering::Relaxed) >= global_max_pages() {
                        ArcWork::schedule(self.reclaimer.clone());
                    }
                }
            }
        }
        Ok(())
    }

    /// Copies `len` bytes between the scatterlist and blocks `dbis`: into the blocks if
    /// `to_blocks`, else out of them.
    pub(crate) fn copy_sg(
        &self,
        pages: &KVVec<Option<Page>>,
        sg: &SgList<'_>,
        dbis: &[u32],
        len: usize,
        to_blocks: bool,
    ) {
        let ppb = self.pages_per_blk as usize;
        // Page `i` of the data: page `i % ppb` of block `dbis[i / ppb]`.
        // Checked arithmetic: no panic path even for a `ppb` of 0 (refused at configure time).
        sg.copy_pages(len, to_blocks, |i| {
            let dbi = *dbis.get(i.checked_div(ppb)?)? as usize;
            pages
                .get(dbi.checked_mul(ppb)?.checked_add(i.checked_rem(ppb)?)?)?
                .as_ref()
        });
    }

    /// Retries the waiting commands after space was freed or a handed-off write is due, unless
    /// TMR notifications wait (they go first, as in C) or the device is gone. Returns whether
    /// any went on the ring (the caller wakes the handler). On a broken ring they fail.
    pub(crate) fn retry_waiting(self: &Arc<Self>, st: &mut RingState) -> bool {
        !st.dead && st.tmr_queue.is_empty() && self.run_qfull(st)
    }

    /// Moves waiting commands to the ring while there is room (`try_ring` arms the timer for
    /// their ring deadlines). Returns whether any moved.
    pub(crate) fn run_qfull(self: &Arc<Self>, st: &mut RingState) -> bool {
        let mut queued = false;
        while let Some(q) = st.qfull.pop() {
            let deadline = q.deadline;
            match self.try_ring(st, q.cmd) {
                Ok(()) => queued = true,
                Err(NotQueued::NoSpace(cmd)) => {
                    st.qfull.unpop(Queued { cmd, deadline });
                    break;
                }
                Err(NotQueued::Fail(cmd, reason)) => cmd.complete(waiting_failed_status(reason)),
            }
        }
        queued
    }
}
