// SPDX-License-Identifier: GPL-2.0

//! The device's ring: the shared region and the state under the ring lock ([`Ring`],
//! [`RingState`]), its creation, the mailbox, and what happens to the ring as a whole (block,
//! reset, teardown).

use crate::blocks::{self, BlockAlloc};
use crate::cmd_ring::{self, CmdRing};
use crate::cmds::CmdTable;
use crate::complete::Deferred;
use crate::device::Settings;
use crate::fifo::Fifo;
use crate::modparams::limits;
use crate::params::{Params, CMDR_OFF};
use crate::reclaim::{Reclaimer, GLOBAL_PAGES};
use crate::stats::Stats;
use crate::submit::{Handoff, Queued};
use crate::tmr::Tmr;
use crate::{abi, entry};
use core::sync::atomic::{fence, AtomicBool, AtomicI32, AtomicU64, Ordering};
use kernel::{
    c_str, fmt, new_mutex,
    page::{Page, PAGE_SIZE},
    prelude::*,
    str::CString,
    sync::{Arc, Mutex},
    target,
    timer::{ArcTimer, ArcWork, ArcWorkCallback},
    uio::{self, SharedArea},
};

/// Mailbox capabilities: all four of the C module.
const MB_FLAGS: u16 = abi::TCMU_MAILBOX_FLAG_CAP_OOOC
    | abi::TCMU_MAILBOX_FLAG_CAP_READ_LEN
    | abi::TCMU_MAILBOX_FLAG_CAP_TMR
    | abi::TCMU_MAILBOX_FLAG_CAP_KEEP_BUF;

/// The shared region and everything the ring lock protects. Mappings of the region hold a
/// reference to it, so it can outlive the device.
#[pin_data]
pub(crate) struct Ring {
    /// The device's configfs name (C's `udev->name`), for the warnings.
    pub(crate) name: CString,
    /// Mailbox and command ring.
    pub(crate) area: SharedArea,
    pub(crate) cmdr_size: u32,
    /// Offset of the data area in the region.
    pub(crate) data_off: usize,
    pub(crate) map_pages: usize,
    pub(crate) blk_size: u32,
    pub(crate) pages_per_blk: u32,
    pub(crate) settings: Arc<Settings>,
    pub(crate) reclaimer: Arc<Reclaimer>,
    /// Wake-ups of the handler for new ring entries (plugging batches them).
    pub(crate) wakeups: AtomicU64,
    /// `/dev/uioN` is open (one handler at a time, as in C).
    pub(crate) open: AtomicBool,
    /// The handler's mappings, to take back reclaimed data pages.
    #[pin]
    pub(crate) mapping: uio::OpenMapping,
    /// Fires at the earliest command deadline; runs `work`, which fails expired commands.
    #[pin]
    timer: ArcTimer<Ring>,
    /// The timer fired: `work` must fail the expired commands.
    pub(crate) expire_due: AtomicBool,
    /// Large writes queued from the handler's CPU.
    pub(crate) handoff: Handoff,
    /// Runs the deferred Data-In copies (on a command's submitting CPU), the queueing of
    /// handed-off writes (on the handler's CPU) and the timer's expiry.
    #[pin]
    work: ArcWork<Ring>,
    /// Wakes up the handler from `work` (commands it moved from qfull to the ring).
    #[pin]
    pub(crate) waker: uio::Waker,
    #[pin]
    pub(crate) st: Mutex<RingState>,
}

kernel::impl_has_arc_timer!(Ring, timer);
kernel::impl_has_arc_work!(Ring, work);

impl ArcWorkCallback for Ring {
    fn run(this: Arc<Self>) {
        this.copy_deferred();
        if this.handoff.due.swap(false, Ordering::AcqRel) {
            this.run_handoff();
        }
        if this.expire_due.swap(false, Ordering::AcqRel) {
            this.expire();
        }
    }
}

pub(crate) struct RingState {
    pub(crate) ring: CmdRing<KVVec<u32>>,
    pub(crate) blocks: BlockAlloc<KVVec<u64>>,
    /// Data area pages by page index, allocated on first use.
    pub(crate) pages: KVVec<Option<Page>>,
    /// Number of `Some` in `pages`.
    pub(crate) npages: usize,
    pub(crate) stats: Stats,
    /// Commands on the ring by id.
    pub(crate) cmds: CmdTable,
    /// Commands waiting for ring or data space, oldest first.
    pub(crate) qfull: Fifo<Queued>,
    /// TMR notifications waiting for ring space.
    pub(crate) tmr_queue: Fifo<Tmr>,
    /// Completed commands whose Data-In `Ring::work` copies.
    pub(crate) deferred: Fifo<Deferred>,
    /// Next tag of a queued command.
    pub(crate) qseq: usize,
    /// Set when the handler broke the protocol: nothing more is reaped or queued.
    pub(crate) broken: bool,
    /// Set at teardown: nothing more happens on this ring.
    pub(crate) dead: bool,
}

impl Drop for RingState {
    fn drop(&mut self) {
        GLOBAL_PAGES.fetch_sub(self.npages, Ordering::Relaxed);
    }
}

impl RingState {
    /// Removes command `id` from the table and frees its data blocks.
    pub(crate) fn free_slot(&mut self, id: u16) {
        if let Some(inf) = self.cmds.remove(id) {
            self.blocks.free(&inf.dbis);
        }
    }
}

/// Writes the mailbox fields the handler only reads.
fn write_mailbox(area: &SharedArea, cmdr_size: u32) {
    area.write_u16(abi::MAILBOX_VERSION_OFFSET, abi::TCMU_MAILBOX_VERSION);
    area.write_u16(abi::MAILBOX_FLAGS_OFFSET, MB_FLAGS);
    area.write_u32(abi::MAILBOX_CMDR_OFF_OFFSET, CMDR_OFF);
    area.write_u32(abi::MAILBOX_CMDR_SIZE_OFFSET, cmdr_size);
}

/// Writes entries into the shared area (bounds-checked volatile writes).
pub(crate) struct AreaSink<'a>(pub(crate) &'a SharedArea);

impl entry::EntrySink for AreaSink<'_> {
    fn put_bytes(&mut self, off: usize, data: &[u8]) -> Option<()> {
        self.0.write_bytes(off, data)
    }

    fn zero(&mut self, off: usize, len: usize) -> Option<()> {
        self.0.zero(off, len)
    }

    fn put_u8(&mut self, off: usize, v: u8) -> Option<()> {
        self.0.write_u8(off, v)
    }

    fn put_u16(&mut self, off: usize, v: u16) -> Option<()> {
        self.0.write_u16(off, v)
    }

    fn put_u32(&mut self, off: usize, v: u32) -> Option<()> {
        self.0.write_u32(off, v)
    }

    fn put_u64(&mut self, off: usize, v: u64) -> Option<()> {
        self.0.write_u64(off, v)
    }
}

impl Ring {
    pub(crate) fn new(
        name: &CStr,
        p: &Params,
        settings: Arc<Settings>,
        reclaimer: Arc<Reclaimer>,
    ) -> Result<Arc<Self>> {
        let limits = limits();
        let blk_size = p.data_blk_size(&limits).ok_or(EINVAL)?;
        let ring_bytes = CMDR_OFF.checked_add(p.cmdr_size).ok_or(EINVAL)? as usize;
        if ring_bytes % PAGE_SIZE != 0 || blk_size == 0 {
            return Err(EINVAL);
        }
        let data_size = limits.mbs_to_pages(p.data_area_mb) as usize * PAGE_SIZE;
        let map_pages = (ring_bytes + data_size) / PAGE_SIZE;
        let area = SharedArea::new(ring_bytes / PAGE_SIZE)?;
        write_mailbox(&area, p.cmdr_size);

        let fifo = KVVec::from_elem(0, cmd_ring::fifo_capacity(p.cmdr_size), GFP_KERNEL)?;
        let ring = CmdRing::new(p.cmdr_size, fifo).ok_or(EINVAL)?;
        let bitmap = KVVec::from_elem(0, blocks::bitmap_words(p.max_blocks), GFP_KERNEL)?;
        let blocks = BlockAlloc::new(p.max_blocks, bitmap).ok_or(EINVAL)?;
        let cmds = CmdTable::new()?;
        let name = CString::try_from_fmt(fmt!("{}", name))?;
        Arc::pin_init(
            pin_init!(Ring {
                name,
                area,
                cmdr_size: p.cmdr_size,
                data_off: ring_bytes,
                map_pages,
                blk_size,
                pages_per_blk: p.data_pages_per_blk,
                settings,
                reclaimer,
                wakeups: AtomicU64::new(0),
                open: AtomicBool::new(false),
                mapping <- uio::OpenMapping::new(),
                timer <- ArcTimer::new(),
                expire_due: AtomicBool::new(false),
                handoff: Handoff { cpu: AtomicI32::new(-1), due: AtomicBool::new(false) },
                work <- ArcWork::new(c_str!("tcmu_rs::Ring::work"), kernel::static_lock_class!()),
                waker <- uio::Waker::new(),
                st <- new_mutex!(RingState {
                    ring,
                    blocks,
                    pages: KVVec::new(),
                    npages: 0,
                    stats: Stats::default(),
                    cmds,
                    qfull: Fifo::new(),
                    tmr_queue: Fifo::new(),
                    deferred: Fifo::new(),
                    qseq: 0,
                    broken: false,
                    dead: false,
                }, "Ring::st"),
            }),
            GFP_KERNEL,
        )
    }

    fn init_mailbox(&self) {
        write_mailbox(&self.area, self.cmdr_size);
    }

    /// Blocks (`true`) or unblocks the device, as `action/block_dev`.
    pub(crate) fn set_blocked(self: &Arc<Self>, block: bool) {
        if !block {
            self.settings.blocked.store(false, Ordering::Relaxed);
            return;
        }
        if self.settings.blocked.swap(true, Ordering::Relaxed) {
            return;
        }
        // Complete what the handler finished, fail what waits to be queued (with `BUSY`: see
        // `waiting_failed_status`).
        self.reap();
        let mut st = self.st.lock();
        while let Some(q) = st.qfull.pop() {
            q.cmd.complete(target::SAM_STAT_BUSY);
        }
    }

    /// Empties the ring, as `action/reset_ring`: commands on it complete with `BUSY` (level 1)
    /// or `CHECK CONDITION` (level 2), then waiting commands are retried. Returns whether the
    /// handler must be woken up.
    pub(crate) fn reset(self: &Arc<Self>, level: u8) -> bool {
        let mut st = self.st.lock();
        let RingState {
            ring,
            blocks,
            cmds,
            broken,
            tmr_queue,
            ..
        } = &mut *st;
        cmds.drain(|inf| {
            if let Some(cmd) = inf.cmd {
                cmd.complete(if level == 1 {
                    target::SAM_STAT_BUSY
                } else {
                    target::SAM_STAT_CHECK_CONDITION
                });
            }
            blocks.free(&inf.dbis);
        });
        // A new handler starts from a sane mailbox even if the old one scribbled on it.
        self.init_mailbox();
        // After a reset the handler starts afresh: queued TMRs are no longer relevant.
        while tmr_queue.pop().is_some() {}
        ring.reset();
        self.area.write_u32(abi::MAILBOX_CMD_TAIL_OFFSET, 0);
        fence(Ordering::Release);
        self.area.write_u32(abi::MAILBOX_CMD_HEAD_OFFSET, 0);
        *broken = false;
        self.run_qfull(&mut st)
    }

    /// Fails every command still owned by the device and stops the timer (at teardown).
    pub(crate) fn shutdown(self: &Arc<Self>) {
        let mut st = self.st.lock();
        st.dead = true;
        // Deferred copies the work has not taken: made here (the work may be running one).
        while let Some(mut d) = st.deferred.pop() {
            d.copy();
            st.blocks.free(&d.dbis);
            if let Some(done) = d.done.take() {
                done.complete();
            }
        }
        while let Some(q) = st.qfull.pop() {
            q.cmd.complete(target::SAM_STAT_BUSY);
        }
        for inf in st.cmds.iter_mut() {
            if let Some(cmd) = inf.cmd.take() {
                cmd.complete(target::SAM_STAT_CHECK_CONDITION);
            }
        }
        drop(st);
        // `dead` keeps the work from re-arming the timer: cancel both, the timer twice in
        // case the work ran in between.
        ArcTimer::cancel(&**self);
        ArcWork::cancel_sync(&**self);
        ArcTimer::cancel(&**self);
    }
}
