// SPDX-License-Identifier: GPL-2.0

//! Submission: commands go on the ring ([`Ring::queue`], `try_ring`), or wait in the qfull
//! queue for ring or data space; large writes are handed off to the handler's CPU.

use crate::abi::{self, Iovec, Opcode};
use crate::blocks;
use crate::cmds::{Inflight, INLINE_BLOCKS};
use crate::device::User;
use crate::entry;
use crate::modparams::global_max_pages;
use crate::params::CMDR_OFF;
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
    sync::Arc,
    target::{
        self, DataDir, PendingCmd, Rejected, TCM_CHECK_CONDITION_ABORT_CMD, TCM_INVALID_CDB_FIELD,
        TCM_LOGICAL_UNIT_COMMUNICATION_FAILURE, TCM_LUN_BUSY, TCM_OUT_OF_RESOURCES,
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
        let (n, _) = self.blocks_needed(st, len, 0)?;
        self.entry_size(n as usize, cmd.cdb().len()).ok()?;
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

    /// The data blocks of a command with `data_len` bytes (and `bidi_len` bidi Data-In
    /// bytes): the first and the bidi ones; `None` if the data area can never hold them.
    fn blocks_needed(&self, st: &RingState, data_len: u32, bidi_len: u32) -> Option<(u32, u32)> {
        let n_first = blocks::blocks_for(data_len.into(), self.blk_size)?;
        let n_bidi = blocks::blocks_for(bidi_len.into(), self.blk_size)?;
        let fits = u64::from(n_first) + u64::from(n_bidi) <= u64::from(st.blocks.max_blocks());
        fits.then_some((n_first, n_bidi))
    }

    /// The offset of the iovecs in, and the size of, a command entry with `iovs` iovecs and a
    /// CDB of `cdb_len` bytes. `Err(size)` if it can never fit the ring: entries take at most
    /// half of it, as in C.
    fn entry_size(&self, iovs: usize, cdb_len: usize) -> Result<(usize, usize), usize> {
        match entry::cmd_entry_size(iovs, cdb_len) {
            Some((base, total)) if total <= (self.cmdr_size / 2) as usize => Ok((base, total)),
            size => Err(size.map_or(usize::MAX, |(_, total)| total)),
        }
    }

    /// Puts `cmd` on the ring (and arms the timer for its deadline).
    fn try_ring(
        self: &Arc<Self>,
        st: &mut RingState,
        mut cmd: PendingCmd<User>,
    ) -> Result<(), NotQueued> {
        // As C's `queue_cmd_ring`: nothing goes on a ring the handler broke.
        if st.broken {
            return Err(NotQueued::Fail(cmd, TCM_LOGICAL_UNIT_COMMUNICATION_FAILURE));
        }
        if self.settings.blocked.load(Ordering::Relaxed) {
            return Err(NotQueued::Fail(cmd, TCM_LUN_BUSY));
        }
        let dir = cmd.direction();
        let data_len = cmd.data_length();
        let bidi_len = if dir == DataDir::Bidi {
            cmd.bidi_sg().len() as u32
        } else {
            0
        };
        let Some((n_first, n_bidi)) = self.blocks_needed(st, data_len, bidi_len) else {
            let len = u64::from(data_len) + u64::from(bidi_len);
            pr_warn_ratelimited!(
                "{}: request of {} bytes is too big for the data area\n",
                &*self.name,
                len
            );
            return Err(NotQueued::Fail(cmd, TCM_INVALID_CDB_FIELD));
        };
        let n = n_first as usize + n_bidi as usize;
        let Ok(mut dbis) = SmallVec::<u32, INLINE_BLOCKS>::filled(0, n) else {
            return Err(NotQueued::Fail(cmd, TCM_OUT_OF_RESOURCES));
        };
        if st.blocks.alloc(n as u32, &mut dbis).is_none() {
            return Err(NotQueued::NoSpace(cmd));
        }
        // `min`: equal by construction, and no panic path.
        let all: &[u32] = &dbis;
        let (first, bidi) = all.split_at((n_first as usize).min(all.len()));
        if self.ensure_pages(st, first, data_len).is_err()
            || self.ensure_pages(st, bidi, bidi_len).is_err()
        {
            st.blocks.free(&dbis);
            return Err(NotQueued::NoSpace(cmd));
        }
        let iov_cnt = blocks::iov_count(first);
        let iov_bidi_cnt = blocks::iov_count(bidi);
        let cdb = cmd.cdb();
        let (base, total) = match self.entry_size(iov_cnt + iov_bidi_cnt, cdb.len()) {
            Ok(size) => size,
            Err(total) => {
                st.blocks.free(&dbis);
                pr_warn_ratelimited!(
                    "{}: request of {} bytes is too big for the ring\n",
                    &*self.name,
                    total
                );
                return Err(NotQueued::Fail(cmd, TCM_INVALID_CDB_FIELD));
            }
        };
        if !st.ring.fits(total as u32) {
            st.blocks.free(&dbis);
            return Err(NotQueued::NoSpace(cmd));
        }
        let Some(cmd_id) = st.cmds.free_id() else {
            st.blocks.free(&dbis);
            return Err(NotQueued::Fail(cmd, TCM_OUT_OF_RESOURCES));
        };
        let Ok(mut iovs) = SmallVec::<Iovec, INLINE_IOVS>::filled(
            Iovec { base: 0, len: 0 },
            iov_cnt + iov_bidi_cnt,
        ) else {
            st.blocks.free(&dbis);
            return Err(NotQueued::Fail(cmd, TCM_OUT_OF_RESOURCES));
        };
        let data_off = self.data_off as u64;
        let all_iovs: &mut [Iovec] = &mut iovs;
        let n_iovs = all_iovs.len();
        let (iov_first, iov_bidi) = all_iovs.split_at_mut(iov_cnt.min(n_iovs));
        let ok = blocks::fill_iovecs(first, data_len.into(), self.blk_size, data_off, iov_first)
            .and_then(|_| {
                blocks::fill_iovecs(bidi, bidi_len.into(), self.blk_size, data_off, iov_bidi)
            });
        if ok.is_none() {
            st.blocks.free(&dbis);
            return Err(NotQueued::Fail(cmd, TCM_INVALID_CDB_FIELD));
        }
        // Data-Out goes into the blocks before the entry is published.
        if matches!(dir, DataDir::ToDevice | DataDir::Bidi) {
            self.copy_sg(&st.pages, &cmd.data_sg(), first, data_len as usize, true);
        }
        let Some(place) = st.ring.reserve(total as u32, Opcode::Cmd) else {
            st.blocks.free(&dbis);
            return Err(NotQueued::NoSpace(cmd));
        };
        let mut sink = AreaSink(&self.area);
        let cmdr = CMDR_OFF as usize;
        if let Some((off, len)) = place.pad {
            entry::write_pad(&mut sink, cmdr, off as usize, len as usize);
        }
        entry::write_cmd(
            &mut sink,
            cmdr,
            place.offset as usize,
            total,
            base,
            cmd_id,
            &iovs,
            iov_cnt as u32,
            iov_bidi_cnt as u32,
            cdb,
        );
        // Publish: the entry must be visible before the new head.
        fence(Ordering::Release);
        self.area
            .write_u32(abi::MAILBOX_CMD_HEAD_OFFSET, st.ring.head());
        let info = CmdInfo {
            dir: data_direction(dir),
            data_length: data_len,
            bidi_length: bidi_len,
        };
        let tmo = self.settings.cmd_time_out_ms.load(Ordering::Relaxed);
        let deadline = (tmo > 0).then(|| deadline_in(tmo));
        cmd.set_tag(usize::from(cmd_id));
        let inf = Inflight {
            cmd: Some(cmd),
            deadline,
            kept: false,
            dbis,
            n_first: n_first as usize,
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
        Ok(())
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
        sg: &target::SgList<'_>,
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
