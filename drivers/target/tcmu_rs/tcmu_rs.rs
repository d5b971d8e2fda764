// SPDX-License-Identifier: GPL-2.0

//! TCMU in Rust: the LIO `user` backstore, which passes SCSI commands to a userspace handler
//! through a UIO shared-memory ring (see `Documentation/target/tcmu-design.rst` for the ABI and
//! `Documentation/target/tcmu-rs.rst` for this module's design).
//!
//! It registers the target backend `user`, like `target_core_user`; the two modules exclude
//! each other because the target core refuses a second backend of the same name.
//!
//! Locking order (`Documentation/target/tcmu-rs.rst`, "Locking", has the reasons):
//! `UserDev::cfg` -> `UserDev::uio` -> the UIO core's `info_lock` -> `Ring::st` -> the page
//! lock of a data page -> `Ring::mapping` -> `Ring::waker` (innermost, taken with any of them
//! held, or none). `Reclaimer::rings` is taken alone (the reclaim work copies the list, then
//! locks each ring).

// `pin_init!` of `Ring` and `RingState` expands past the default limit of 128.
#![recursion_limit = "256"]

use core::fmt::Write as _;
use core::sync::atomic::{
    fence, AtomicBool, AtomicI32, AtomicI64, AtomicU32, AtomicU64, AtomicUsize, Ordering,
};
use kernel::{
    alloc::flags::{__GFP_ZERO, GFP_KERNEL, GFP_NOIO},
    c_str, fmt,
    module_param::{ParamContext, ParamOps, ParamShared, ParamWriter},
    new_mutex,
    page::{Page, PAGE_SIZE},
    pr_warn_ratelimited,
    prelude::*,
    str::CString,
    sync::{Arc, ArcBorrow, Mutex},
    target::{
        self, AttrDef, Backend, DataDir, Device, Hba, HwLimits, PageRef, PendingCmd, Rejected,
        ShowPage, SENSE_BUFFER_SIZE, TCM_CHECK_CONDITION_ABORT_CMD, TCM_INVALID_CDB_FIELD,
        TCM_LOGICAL_UNIT_COMMUNICATION_FAILURE, TCM_LUN_BUSY, TCM_OUT_OF_RESOURCES,
    },
    time::{msecs_to_jiffies, Jiffies},
    timer::{
        current_cpu, jiffies, time_after, ArcTimer, ArcTimerCallback, ArcWork, ArcWorkCallback,
    },
    uio::{self, FaultPage, Notifier, RootDevice, SharedArea},
};

mod abi;
mod blocks;
mod entry;
mod fifo;
mod ids;
mod kstrto;
mod netlink;
mod params;
mod race_delay;
mod response;
mod ring;
mod sense;
mod slots;

use abi::{Iovec, Opcode};
use blocks::BlockAlloc;
use fifo::Fifo;
use params::{Limits, Params, CMDR_OFF};
use response::{CmdInfo, CompletionKind, DataDirection, RawCmdEntry, SlotKind};
use ring::CmdRing;

module! {
    type: TcmuRs,
    name: "tcmu_rs",
    author: "TCMU in Rust developers",
    description: "TCM USER subsystem plugin (Rust)",
    license: "GPL",
    // The target core loads "target_core_<backend>" for an HBA of an unregistered backend.
    alias: ["target_core_user"],
}

/// Mailbox capabilities: all four of the C module.
const MB_FLAGS: u16 = abi::TCMU_MAILBOX_FLAG_CAP_OOOC
    | abi::TCMU_MAILBOX_FLAG_CAP_READ_LEN
    | abi::TCMU_MAILBOX_FLAG_CAP_TMR
    | abi::TCMU_MAILBOX_FLAG_CAP_KEEP_BUF;
/// Tags of commands in the qfull queue (ring commands are tagged with their cmd_id).
const QUEUED_TAG: usize = 1 << 20;
/// Defaults the C module applies at `enable`.
const DEF_HW_BLOCK_SIZE: u32 = 512;
const DEF_HW_MAX_SECTORS: u32 = 128;
const DEF_HW_QUEUE_DEPTH: u32 = 128;
/// Default command timeout, and the qfull timeout when neither is set (`TCMU_TIME_OUT`).
const TCMU_TIME_OUT_MS: u64 = 30_000;
/// Largest command id (ids are 16 bits, 0 is never used).
const MAX_CMD_ID: usize = 0xffff;

/// `global_max_data_area_mb` in pages (`tcmu_global_max_pages`).
static GLOBAL_MAX_PAGES: AtomicU32 = AtomicU32::new(params::TCMU_GLOBAL_MAX_PAGES_DEF);
/// Data area pages held by all devices (`global_page_count`).
static GLOBAL_PAGES: AtomicUsize = AtomicUsize::new(0);
/// The reclaimer, for the `global_max_data_area_mb` parameter.
static RECLAIMER: ParamShared<Reclaimer> = ParamShared::new();

/// The limits that follow from the page size and the module parameters.
fn limits() -> Limits {
    Limits {
        page_shift: kernel::page::PAGE_SHIFT as u32,
        global_max_pages: GLOBAL_MAX_PAGES.load(Ordering::Relaxed),
    }
}

/// `global_max_data_area_mb` in pages.
fn global_max_pages() -> usize {
    GLOBAL_MAX_PAGES.load(Ordering::Relaxed) as usize
}

/// Whether the data areas hold more pages than `global_max_data_area_mb` allows.
fn over_global_limit() -> bool {
    GLOBAL_PAGES.load(Ordering::Relaxed) > global_max_pages()
}

/// Module parameter `global_max_data_area_mb` (as C: decimal, > 0, capped per device at
/// configure time; lowering it below what is held reclaims unused pages at once).
struct GlobalMaxDataAreaMb;

impl ParamOps for GlobalMaxDataAreaMb {
    fn set(ctx: &ParamContext<'_>, val: &[u8]) -> Result {
        let mb = kstrto::kstrtoint_dec(val).map_err(|_| EINVAL)?;
        if mb <= 0 {
            pr_err!("global_max_data_area must be larger than 0.\n");
            return Err(EINVAL);
        }
        let pages = limits().mbs_to_pages(mb as u32).min(u64::from(u32::MAX)) as u32;
        GLOBAL_MAX_PAGES.store(pages, Ordering::Relaxed);
        if over_global_limit() {
            if let Some(r) = RECLAIMER.get_arc(ctx) {
                ArcWork::schedule(r);
            }
        }
        Ok(())
    }

    fn get(_ctx: &ParamContext<'_>, f: &mut ParamWriter<'_>) -> Result {
        writeln!(f, "{}", limits().global_max_mb()).map_err(|_| EINVAL)
    }
}

/// Module parameter `block_netlink`: 1 makes events that would wait for a reply fail.
struct BlockNetlink;

impl ParamOps for BlockNetlink {
    fn set(_ctx: &ParamContext<'_>, val: &[u8]) -> Result {
        let v = kstrto::kstrtou8(val).map_err(|e| Error::from_errno(e.to_errno()))?;
        if v > 1 {
            pr_err!("Invalid block netlink value {}\n", v);
            return Err(EINVAL);
        }
        netlink::BLOCKED.store(v == 1, Ordering::Relaxed);
        Ok(())
    }

    fn get(_ctx: &ParamContext<'_>, f: &mut ParamWriter<'_>) -> Result {
        let s = if netlink::BLOCKED.load(Ordering::Relaxed) {
            "blocked"
        } else {
            "unblocked"
        };
        writeln!(f, "{s}").map_err(|_| EINVAL)
    }
}

/// Module parameter `reset_netlink` (write-only): 1 fails the events waiting for a reply
/// with `EINTR`; refused with `EBUSY` unless `block_netlink` is set.
struct ResetNetlink;

impl ParamOps for ResetNetlink {
    fn set(_ctx: &ParamContext<'_>, val: &[u8]) -> Result {
        let v = kstrto::kstrtou8(val).map_err(|e| Error::from_errno(e.to_errno()))?;
        if v != 1 {
            pr_err!("Invalid reset netlink value {}\n", v);
            return Err(EINVAL);
        }
        netlink::reset_waiting()
    }
}

kernel::module_param_cb!(
    "global_max_data_area_mb",
    GlobalMaxDataAreaMb,
    0o644,
    "Max MBs allowed to be allocated to all the tcmu device's data areas."
);
kernel::module_param_cb!(
    "block_netlink",
    BlockNetlink,
    0o644,
    "Block new netlink commands."
);
kernel::module_param_cb!(
    "reset_netlink",
    ResetNetlink,
    0o200,
    "Reset netlink commands.",
    write_only
);

/// Frees the unused data pages of all devices when they hold more than the global limit
/// (C's `tcmu_unmap_work`).
#[pin_data]
struct Reclaimer {
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
    fn new() -> Result<Arc<Self>> {
        Arc::pin_init(
            pin_init!(Reclaimer {
                rings <- new_mutex!(slots::Slots::new()),
                work <- ArcWork::new(c_str!("tcmu_rs::Reclaimer::work"), kernel::static_lock_class!()),
                retry <- ArcTimer::new(),
            }),
            GFP_KERNEL,
        )
    }

    fn add(&self, ring: Arc<Ring>) -> Result {
        self.rings.lock().add(ring, GFP_KERNEL)
    }

    fn remove(&self, ring: &Arc<Ring>) {
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

struct User;

/// Module-wide data: the parent of all UIO devices, the netlink family, the reclaimer.
struct Global {
    root: RootDevice,
    nl: kernel::genetlink::Registration<netlink::Nl>,
    reclaimer: Arc<Reclaimer>,
}

/// One `user_<n>` HBA.
struct UserHba {
    host_id: u32,
}

/// Device settings that configfs can change at any time, read on the I/O path.
struct Settings {
    /// `cmd_time_out` in ms; 0: commands never time out.
    cmd_time_out_ms: AtomicU64,
    /// `qfull_time_out` in ms; -1: use `cmd_time_out` (or the default), 0: fail at once.
    qfull_time_out_ms: AtomicI64,
    /// `action/block_dev`: new commands are refused with `LUN BUSY`.
    blocked: AtomicBool,
    /// `tmr_notification`: task management functions are passed to the handler.
    tmr_notification: AtomicBool,
}

impl Settings {
    /// How long a command may wait for ring space, or `None` to fail it at once.
    fn qfull_wait_ms(&self) -> Option<u64> {
        let q = self.qfull_time_out_ms.load(Ordering::Relaxed);
        let c = self.cmd_time_out_ms.load(Ordering::Relaxed);
        match q {
            0 => None,
            q if q > 0 => Some(q as u64),
            _ if c > 0 => Some(c),
            _ => Some(TCMU_TIME_OUT_MS),
        }
    }
}

/// `jiffies` `ms` from now.
fn deadline_in(ms: u64) -> Jiffies {
    jiffies().wrapping_add(msecs_to_jiffies(ms.min(u32::MAX as u64) as u32))
}

/// The earlier of two optional deadlines.
fn earlier(a: Option<Jiffies>, b: Jiffies) -> Option<Jiffies> {
    match a {
        Some(a) if !time_after(a, b) => Some(a),
        _ => Some(b),
    }
}

/// One `user` device.
#[pin_data]
struct UserDev {
    name: CString,
    settings: Arc<Settings>,
    #[pin]
    cfg: Mutex<Params>,
    /// The UIO device and its ring, from `enable` until the device is destroyed.
    #[pin]
    uio: Mutex<Option<Pin<KBox<uio::Registration<Ring>>>>>,
    /// A batch of queued submissions is running: the handler is woken up at its end.
    plugged: AtomicBool,
    /// Commands went on the ring while plugged.
    notify_pending: AtomicBool,
}

/// The shared region and everything the ring lock protects. Mappings of the region hold a
/// reference to it, so it can outlive the device.
#[pin_data]
struct Ring {
    /// The device's configfs name (C's `udev->name`), for the warnings.
    name: CString,
    /// Mailbox and command ring.
    area: SharedArea,
    cmdr_size: u32,
    /// Offset of the data area in the region.
    data_off: usize,
    map_pages: usize,
    blk_size: u32,
    pages_per_blk: u32,
    settings: Arc<Settings>,
    reclaimer: Arc<Reclaimer>,
    /// Wake-ups of the handler for new ring entries (plugging batches them).
    wakeups: AtomicU64,
    /// `/dev/uioN` is open (one handler at a time, as in C).
    open: AtomicBool,
    /// The handler's mappings, to take back reclaimed data pages.
    #[pin]
    mapping: uio::OpenMapping,
    /// Fires at the earliest command deadline; runs `work`, which fails expired commands.
    #[pin]
    timer: ArcTimer<Ring>,
    /// The timer fired: `work` must fail the expired commands.
    expire_due: AtomicBool,
    /// Large writes queued from the handler's CPU.
    handoff: Handoff,
    /// Runs the deferred Data-In copies (on a command's submitting CPU), the queueing of
    /// handed-off writes (on the handler's CPU) and the timer's expiry.
    #[pin]
    work: ArcWork<Ring>,
    /// Wakes up the handler from `work` (commands it moved from qfull to the ring).
    #[pin]
    waker: uio::Waker,
    #[pin]
    st: Mutex<RingState>,
}

kernel::impl_has_arc_timer!(Ring, timer);
kernel::impl_has_arc_work!(Ring, work);

impl ArcTimerCallback for Ring {
    fn expired(this: Arc<Self>) {
        this.expire_due.store(true, Ordering::Release);
        ArcWork::schedule(this);
    }
}

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

/// A TMR notification for the handler.
struct Tmr {
    tmr_type: u8,
    cmd_ids: KVec<u16>,
}

/// Where and when `Ring::work` queues handed-off writes (see [`Ring::handoff_cpu`]).
struct Handoff {
    /// The CPU of the handler's last completion write (a hint; -1 before the first).
    cpu: AtomicI32,
    /// A large write was handed off: `work` must put the waiting commands on the ring.
    due: AtomicBool,
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
struct Queued {
    cmd: PendingCmd<User>,
    deadline: Jiffies,
}

/// A command the handler finished, to complete once the ring lock is dropped.
struct Done {
    cmd: PendingCmd<User>,
    status: u8,
    /// The handler's `read_len`, if it reported one.
    len: Option<u32>,
}

impl Done {
    fn complete(self) {
        match self.len {
            Some(len) => self.cmd.complete_with_length(self.status, len),
            None => self.cmd.complete(self.status),
        }
    }
}

/// Completions collected by one reap under the ring lock and made after it is dropped (the
/// target core's completion queues work on another CPU: not while submissions wait for the
/// lock). A reap stops collecting once the batch is full or holds `REAP_COPY_BUDGET` bytes
/// of Data-In, completes it, and goes on with a new one: the first commands of a batch do
/// not wait for the copies of all the others.
struct Finished {
    items: [Option<Done>; REAP_BATCH],
    n: usize,
    /// Data-In bytes copied for the commands of the batch.
    copied: usize,
}

/// Completions a reap defers.
const REAP_BATCH: usize = 32;
/// Data-In bytes a reap copies before it completes its batch.
const REAP_COPY_BUDGET: usize = 64 * 1024;

impl Finished {
    fn new() -> Self {
        Self {
            items: [const { None }; REAP_BATCH],
            n: 0,
            copied: 0,
        }
    }

    /// Adds `d`, whose Data-In copy was `copied` bytes; completes it at once if the batch
    /// is full (the reap stops before that).
    fn push(&mut self, d: Done, copied: usize) {
        self.copied = self.copied.saturating_add(copied);
        match self.items.get_mut(self.n) {
            Some(slot) => {
                *slot = Some(d);
                self.n += 1;
            }
            None => d.complete(),
        }
    }

    /// Whether the reap should complete this batch before it reaps more.
    fn is_full(&self) -> bool {
        self.n >= REAP_BATCH || self.copied >= REAP_COPY_BUDGET
    }
}

impl Drop for Finished {
    fn drop(&mut self) {
        for d in self.items.iter_mut().take(self.n).filter_map(Option::take) {
            d.complete();
        }
    }
}

/// A command the handler completed whose Data-In is copied later, by `Ring::work` on the
/// CPU that submitted it, not in the handler's `write()`: a large copy there would take the
/// handler's CPU from its next commands. Its blocks stay allocated until the copy is done
/// (so no new command reuses them), and it holds its own references to their pages (so the
/// copy runs without the ring lock).
struct Deferred {
    /// `None` once completed.
    done: Option<Done>,
    dbis: SmallVec<u32, INLINE_BLOCKS>,
    /// The pages of the Data-In, in order.
    pages: KVec<PageRef>,
    len: usize,
}

impl Deferred {
    fn copy(&self) {
        if let Some(d) = &self.done {
            d.cmd
                .data_sg()
                .copy_pages(self.len, false, |i| self.pages.get(i));
        }
    }
}

/// Data-In of at least this many bytes is deferred (see [`Deferred`]); smaller copies cost
/// less than the hop to another CPU.
const DEFER_COPY_MIN: usize = 64 * 1024;
/// ... and only if the command was submitted on another CPU than the handler's (where the
/// copy then runs), and only while at least this many commands are on the ring: the hop adds latency to
/// each command, which only pays when enough others keep the handler busy meanwhile
/// (measured: 1 MiB reads at iodepth 8, 128 commands of 64 KiB, gained 29%; 64 KiB reads at
/// iodepth 8 lost 20%).
const DEFER_MIN_INFLIGHT: usize = 16;
/// Data-Out of at least this many bytes is copied on the handler's CPU while the handler
/// sleeps (see [`Ring::handoff_cpu`]); smaller copies cost less than the hop.
const HANDOFF_MIN: usize = 64 * 1024;

/// A command on the ring.
struct Inflight {
    /// `None` once the command timed out and was failed: the handler still owns its entry
    /// and blocks until it completes it (that late completion is ignored) or the ring is reset.
    cmd: Option<PendingCmd<User>>,
    deadline: Option<Jiffies>,
    /// Completed with `KEEP_BUF`: the handler still uses the blocks until `free_kept_buf`.
    kept: bool,
    /// Data blocks: first the Data-Out (or Data-In) ones, then the bidi Data-In ones.
    dbis: SmallVec<u32, INLINE_BLOCKS>,
    n_first: usize,
    info: CmdInfo,
}

struct RingState {
    ring: CmdRing<KVVec<u32>>,
    blocks: BlockAlloc<KVVec<u64>>,
    /// Data area pages by page index, allocated on first use.
    pages: KVVec<Option<Page>>,
    /// Number of `Some` in `pages`.
    npages: usize,
    stats: Stats,
    /// Commands on the ring by id.
    cmds: CmdTable,
    /// Commands waiting for ring or data space, oldest first.
    qfull: Fifo<Queued>,
    /// TMR notifications waiting for ring space.
    tmr_queue: Fifo<Tmr>,
    /// Completed commands whose Data-In `Ring::work` copies.
    deferred: Fifo<Deferred>,
    /// Next tag of a queued command.
    qseq: usize,
    /// Set when the handler broke the protocol: nothing more is reaped or queued.
    broken: bool,
    /// Set at teardown: nothing more happens on this ring.
    dead: bool,
}

/// Counters of `attrib/stats`.
#[derive(Default)]
struct Stats {
    submitted: u64,
    completed: u64,
    timed_out: u64,
    aborted: u64,
    qfull: u64,
    deferred: u64,
    /// Large Data-In copied at once: too few commands on the ring, or submitted on the
    /// handler's CPU.
    defer_idle: u64,
    defer_same_cpu: u64,
    /// Large writes whose Data-Out copy was handed off to the handler's CPU.
    handoff: u64,
    /// Data pages freed by reclaim (over the global limit or idle), not by removal.
    reclaimed: u64,
    ring_peak: u32,
    blocks_peak: u32,
    /// The longest the qfull queue has been.
    qfull_peak: usize,
}

impl Drop for RingState {
    fn drop(&mut self) {
        GLOBAL_PAGES.fetch_sub(self.npages, Ordering::Relaxed);
    }
}

impl RingState {
    /// Removes command `id` from the table and frees its data blocks.
    fn free_slot(&mut self, id: u16) {
        if let Some(inf) = self.cmds.remove(id) {
            self.blocks.free(&inf.dbis);
        }
    }
}

/// The commands on a ring by id: a slot per id up to the highest used so far (index 0
/// unused), and a bitmap of the ids in use, so the lowest free id is found without walking
/// the slots. A slot is `Some` exactly when its id is marked in use.
struct CmdTable {
    slots: KVVec<Option<Inflight>>,
    ids: ids::IdMap<KVVec<u64>>,
}

impl CmdTable {
    fn new() -> Result<Self> {
        let mut slots = KVVec::new();
        slots.push(None, GFP_KERNEL)?;
        let bits = KVVec::from_elem(0, ids::ID_WORDS, GFP_KERNEL)?;
        Ok(Self {
            slots,
            ids: ids::IdMap::new(bits).ok_or(EINVAL)?,
        })
    }

    /// The lowest free id (as C's `xa_alloc`), with a slot ready for it; `None` if all ids
    /// are in use or the table cannot grow.
    fn free_id(&mut self) -> Option<u16> {
        let id = self.ids.lowest_free()?;
        while self.slots.len() <= usize::from(id) {
            self.slots.push(None, GFP_NOIO).ok()?;
        }
        Some(id)
    }

    /// Puts `inf` in the slot of `id`, which `free_id` returned. Returns whether it did (not
    /// if the id is in use).
    fn insert(&mut self, id: u16, inf: Inflight) -> bool {
        match self.slots.get_mut(usize::from(id)) {
            Some(slot @ None) if self.ids.set(id) => {
                *slot = Some(inf);
                true
            }
            _ => false,
        }
    }

    fn get(&self, id: u16) -> Option<&Inflight> {
        self.slots.get(usize::from(id))?.as_ref()
    }

    fn get_mut(&mut self, id: u16) -> Option<&mut Inflight> {
        self.slots.get_mut(usize::from(id))?.as_mut()
    }

    fn remove(&mut self, id: u16) -> Option<Inflight> {
        let inf = self.slots.get_mut(usize::from(id))?.take()?;
        self.ids.clear(id);
        Some(inf)
    }

    /// Number of commands in the table (on the ring, timed out or kept).
    fn len(&self) -> usize {
        self.ids.used() as usize
    }

    /// One past the highest id that has a slot.
    fn id_limit(&self) -> usize {
        self.slots.len()
    }

    fn iter_mut(&mut self) -> impl Iterator<Item = &mut Inflight> {
        self.slots.iter_mut().flatten()
    }

    /// Empties the table, passing each command to `f`.
    fn drain(&mut self, mut f: impl FnMut(Inflight)) {
        for (id, slot) in self.slots.iter_mut().enumerate() {
            if let Some(inf) = slot.take() {
                // `id` < `slots.len()` <= 0x10000.
                self.ids.clear(id as u16);
                f(inf);
            }
        }
    }
}

/// Blocks a command keeps without allocating (256 KiB with the default 16 KiB blocks).
const INLINE_BLOCKS: usize = 16;
/// Iovecs an entry is built from without allocating.
const INLINE_IOVS: usize = 16;

/// A vector of up to `N` elements kept inline (no allocation on the I/O path for the usual
/// sizes), larger ones on the heap.
enum SmallVec<T: Copy, const N: usize> {
    Inline([T; N], usize),
    Heap(KVec<T>),
}

impl<T: Copy, const N: usize> SmallVec<T, N> {
    /// `n` copies of `v`.
    fn filled(v: T, n: usize) -> Result<Self, kernel::alloc::AllocError> {
        if n <= N {
            Ok(Self::Inline([v; N], n))
        } else {
            Ok(Self::Heap(KVec::from_elem(v, n, GFP_NOIO)?))
        }
    }
}

impl<T: Copy, const N: usize> core::ops::Deref for SmallVec<T, N> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        match self {
            Self::Inline(a, n) => a.get(..*n).unwrap_or_default(),
            Self::Heap(v) => v,
        }
    }
}

impl<T: Copy, const N: usize> core::ops::DerefMut for SmallVec<T, N> {
    fn deref_mut(&mut self) -> &mut [T] {
        match self {
            Self::Inline(a, n) => a.get_mut(..*n).unwrap_or_default(),
            Self::Heap(v) => v,
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
struct AreaSink<'a>(&'a SharedArea);

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
    fn new(
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

        let fifo = KVVec::from_elem(0, ring::fifo_capacity(p.cmdr_size), GFP_KERNEL)?;
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
                }),
            }),
            GFP_KERNEL,
        )
    }

    /// Queues `cmd` on the ring, or in the qfull queue. Returns whether it went on the ring
    /// (the handler must be woken up; not if it waits for space).
    /// `handler_idle` tells whether the handler sleeps waiting for commands (asked only for a
    /// large write).
    fn queue(
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

    /// Makes the timer fire by `deadline` (unless the ring is dead: `shutdown` stopped it).
    /// Under the ring lock, so that no deadline set meanwhile is left without a timer.
    fn arm_deadline(self: &Arc<Self>, st: &RingState, deadline: Jiffies) {
        if !st.dead {
            ArcTimer::arm_earlier(self, deadline);
        }
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
    fn run_handoff(self: &Arc<Self>) {
        let mut st = self.st.lock();
        let queued = self.retry_waiting(&mut st);
        drop(st);
        if queued {
            self.waker.notify();
        }
    }

    fn init_mailbox(&self) {
        write_mailbox(&self.area, self.cmdr_size);
    }

    /// Fails the commands whose deadline passed (run from the timer's work) and re-arms the
    /// timer for the next deadline.
    fn expire(self: &Arc<Self>) {
        let mut st = self.st.lock();
        if st.dead {
            return;
        }
        let now = jiffies();
        let mut next = None;
        let mut expired = 0u32;
        for inf in st.cmds.iter_mut() {
            let (Some(d), true) = (inf.deadline, inf.cmd.is_some()) else {
                continue;
            };
            if time_after(d, now) {
                next = earlier(next, d);
            } else if let Some(cmd) = inf.cmd.take() {
                expired += 1;
                cmd.complete(target::SAM_STAT_CHECK_CONDITION);
            }
        }
        let mut qexpired = 0u64;
        st.qfull.take_where(
            |q| !time_after(q.deadline, now),
            |q| {
                qexpired += 1;
                q.cmd.complete(target::SAM_STAT_TASK_SET_FULL)
            },
        );
        st.stats.timed_out += u64::from(expired) + qexpired;
        for q in st.qfull.iter() {
            next = earlier(next, q.deadline);
        }
        drop(st);
        if expired > 0 {
            pr_warn_ratelimited!(
                "{}: {} command(s) timed out on the ring\n",
                &*self.name,
                expired
            );
        }
        // Not `arm`: a command queued since the lock was dropped may have armed it earlier.
        if let Some(d) = next {
            ArcTimer::arm_earlier(self, d);
        }
    }

    /// Blocks (`true`) or unblocks the device, as `action/block_dev`.
    fn set_blocked(self: &Arc<Self>, block: bool) {
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
    fn reset(self: &Arc<Self>, level: u8) -> bool {
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

    /// Writes `attrib/stats`.
    fn write_stats(&self, f: &mut dyn core::fmt::Write) -> core::fmt::Result {
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

    /// Handles a task management function: aborted commands still waiting for space are
    /// completed with `TASK ABORTED`; if `tmr_notification` is on, the handler gets a
    /// `TCMU_OP_TMR` entry with the ids of the aborted commands on the ring. Returns whether
    /// the handler must be woken up.
    /// `aborted` yields the commands' tags: read here, under the ring lock, under which every
    /// tag is set, so a command the queueing moves from qfull to the ring meanwhile, or one
    /// the reap completes and whose id a new command takes, is seen as it is now.
    fn tmr(&self, tmr_type: u8, aborted: &mut dyn Iterator<Item = usize>) -> bool {
        let mut st = self.st.lock();
        if st.dead {
            return false;
        }
        let mut tags = KVec::new();
        for t in aborted.filter(|&t| t != 0) {
            if tags.push(t, GFP_NOIO).is_err() {
                break;
            }
        }
        let tags = &tags[..];
        st.stats.aborted += tags.len() as u64;
        st.qfull.take_where(
            |q| tags.contains(&q.cmd.tag()),
            |q| q.cmd.complete(target::SAM_STAT_TASK_ABORTED),
        );
        if !self.settings.tmr_notification.load(Ordering::Relaxed) || st.broken {
            return false;
        }
        let mut cmd_ids = KVec::new();
        for &t in tags {
            if (1..=MAX_CMD_ID).contains(&t) && cmd_ids.push(t as u16, GFP_NOIO).is_err() {
                return false;
            }
        }
        let tmr = Tmr { tmr_type, cmd_ids };
        if !st.tmr_queue.is_empty() {
            let _ = st.tmr_queue.push(tmr);
            return false;
        }
        match self.try_tmr(&mut st, tmr) {
            Ok(()) => true,
            Err(tmr) => {
                let _ = st.tmr_queue.push(tmr);
                false
            }
        }
    }

    /// Puts a TMR entry on the ring, or gives it back if there is no room.
    fn try_tmr(&self, st: &mut RingState, tmr: Tmr) -> Result<(), Tmr> {
        let Some(size) = entry::tmr_entry_size(tmr.cmd_ids.len()) else {
            return Ok(());
        };
        if size > (self.cmdr_size / 2) as usize {
            // Cannot ever fit: drop it (the handler learns of the aborts by timeouts).
            return Ok(());
        }
        let Some(place) = st.ring.reserve(size as u32, Opcode::Tmr) else {
            return Err(tmr);
        };
        let mut sink = AreaSink(&self.area);
        let cmdr = CMDR_OFF as usize;
        if let Some((off, len)) = place.pad {
            entry::write_pad(&mut sink, cmdr, off as usize, len as usize);
        }
        entry::write_tmr(
            &mut sink,
            cmdr,
            place.offset as usize,
            tmr.tmr_type,
            &tmr.cmd_ids,
        );
        fence(Ordering::Release);
        self.area
            .write_u32(abi::MAILBOX_CMD_HEAD_OFFSET, st.ring.head());
        Ok(())
    }

    /// Moves waiting TMR notifications to the ring while there is room.
    fn run_tmr_queue(&self, st: &mut RingState) -> bool {
        let mut queued = false;
        while let Some(tmr) = st.tmr_queue.pop() {
            match self.try_tmr(st, tmr) {
                Ok(()) => queued = true,
                Err(tmr) => {
                    st.tmr_queue.unpop(tmr);
                    break;
                }
            }
        }
        queued
    }

    /// Frees the blocks of a command completed with `KEEP_BUF` (`action/free_kept_buf`).
    /// Returns whether the handler must be woken up.
    fn free_kept_buf(self: &Arc<Self>, cmd_id: u16) -> Result<bool> {
        let mut st = self.st.lock();
        match st.cmds.get(cmd_id) {
            Some(inf) if inf.kept => st.free_slot(cmd_id),
            Some(_) => {
                pr_warn_ratelimited!(
                    "{}: free_kept_buf: cmd_id {} was not completed with KEEP_BUF\n",
                    &*self.name,
                    cmd_id
                );
                return Err(EINVAL);
            }
            _ => {
                pr_warn_ratelimited!(
                    "{}: free_kept_buf: cmd_id {} not found\n",
                    &*self.name,
                    cmd_id
                );
                return Err(EINVAL);
            }
        }
        // Only data space was freed: retry commands unless TMRs wait (as C).
        Ok(self.retry_waiting(&mut st))
    }

    /// Frees the buffers kept for a handler that closed the device: a new handler cannot know
    /// about them.
    fn release_kept(self: &Arc<Self>) {
        let mut st = self.st.lock();
        let mut freed = false;
        // `id_limit()` <= 0x10000.
        for id in (1..st.cmds.id_limit()).map(|i| i as u16) {
            if st.cmds.get(id).is_some_and(|inf| inf.kept) {
                st.free_slot(id);
                freed = true;
            }
        }
        if freed {
            self.retry_waiting(&mut st);
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
    fn copy_sg(
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

    /// Reaps the entries the handler released (up to `cmd_tail`) and completes their commands,
    /// then retries waiting commands. Returns whether new commands went on the ring.
    fn reap(self: &Arc<Self>) -> bool {
        loop {
            // Declared before the guard, so dropped after it: the commands complete unlocked.
            let mut done = Finished::new();
            let mut st = self.st.lock();
            if st.broken || st.dead {
                return false;
            }
            // Read the handler's tail once per batch; entries before it must be read after it.
            let Some(tail) = self.area.read_u32(abi::MAILBOX_CMD_TAIL_OFFSET) else {
                return false;
            };
            fence(Ordering::Acquire);
            let idle = st.deferred.is_empty();
            let reaped = self.reap_to(&mut st, tail, &mut done);
            // Newly deferred copies: run them on the CPU that submitted the first one.
            if idle {
                if let Some(d) = st.deferred.iter().find_map(|d| d.done.as_ref()) {
                    ArcWork::schedule_on(self.clone(), d.cmd.cpu());
                }
            }
            match reaped {
                Err(why) => {
                    pr_warn_ratelimited!("{}: ring broken: {}\n", &*self.name, why);
                    st.broken = true;
                    // Waiting commands fail now (`try_ring` refuses them), not at their timeout.
                    self.run_qfull(&mut st);
                    return false;
                }
                // A full batch: complete it unlocked, then reap on (re-reading the tail).
                Ok(true) => {
                    drop(st);
                    drop(done);
                    continue;
                }
                Ok(false) => {}
            }
            self.reclaim_if_idle(&st);
            // TMR notifications first; commands only once none waits (as C).
            let tmrs = self.run_tmr_queue(&mut st);
            if !st.tmr_queue.is_empty() {
                return tmrs;
            }
            return self.run_qfull(&mut st) || tmrs;
        }
    }

    /// Reaps entries up to `tail` into `done`. Returns whether it stopped early because the
    /// batch is full (entries remain before `tail`).
    fn reap_to(
        &self,
        st: &mut RingState,
        tail: u32,
        done: &mut Finished,
    ) -> Result<bool, &'static str> {
        let RingState {
            ring,
            blocks,
            pages,
            cmds,
            stats,
            deferred,
            ..
        } = st;
        let mut reaper = ring.begin_reap(tail).map_err(|_| "bad cmd_tail")?;
        let cmdr = CMDR_OFF as usize;
        // The handler's CPU (a hint): a copy is only deferred to another one.
        let here = current_cpu();
        loop {
            let slot = match reaper.peek() {
                Ok(Some(slot)) => slot,
                Ok(None) => return Ok(false),
                Err(_) => return Err("cmd_tail inside an entry"),
            };
            let off = cmdr + slot.offset as usize;
            let found = self
                .area
                .read_u32(off + abi::HDR_LEN_OP_OFFSET)
                .ok_or("entry")?;
            let kind =
                response::check_len_op(slot.len_op, found).map_err(|_| "entry header changed")?;
            if kind == SlotKind::Cmd {
                let raw = RawCmdEntry {
                    len_op: found,
                    cmd_id: self
                        .area
                        .read_u16(off + abi::HDR_CMD_ID_OFFSET)
                        .ok_or("entry")?,
                    uflags: self
                        .area
                        .read_u8(off + abi::HDR_UFLAGS_OFFSET)
                        .ok_or("entry")?,
                    scsi_status: self
                        .area
                        .read_u8(off + abi::RSP_SCSI_STATUS_OFFSET)
                        .ok_or("entry")?,
                    read_len: self
                        .area
                        .read_u32(off + abi::RSP_READ_LEN_OFFSET)
                        .ok_or("entry")?,
                };
                let hdr = response::decode_header(&raw, slot.len_op).map_err(|_| "bad entry")?;
                let busy = cmds.len() >= DEFER_MIN_INFLIGHT;
                let Some(inf) = cmds.get_mut(hdr.cmd_id) else {
                    return Err("unknown cmd_id");
                };
                if inf.kept {
                    return Err("cmd_id already completed with KEEP_BUF");
                }
                // A command that timed out was failed already: its late completion only
                // releases the entry (and the blocks, unless kept).
                let mut later = None;
                if let Some(cmd) = inf.cmd.take() {
                    stats.completed += 1;
                    let kind = response::decode_status(&raw, &inf.info);
                    let refs = match &kind {
                        CompletionKind::Status(s)
                            if !hdr.keep_buf && cmd.direction() == DataDir::FromDevice =>
                        {
                            let len = s.gather_len.map_or(0, |l| l as usize);
                            if len < DEFER_COPY_MIN {
                                None
                            } else if !busy {
                                stats.defer_idle += 1;
                                None
                            } else if cmd.cpu() == here {
                                stats.defer_same_cpu += 1;
                                None
                            } else {
                                self.page_refs(pages, &inf.dbis, len).map(|r| (r, len))
                            }
                        }
                        _ => None,
                    };
                    let copy = refs.is_none();
                    let (d, copied) =
                        self.finish(pages, cmd, &inf.dbis, inf.n_first, kind, off, copy);
                    match refs {
                        None => done.push(d, copied),
                        Some((pages, len)) => later = Some((d, pages, len)),
                    }
                }
                if let Some((d, refs, len)) = later {
                    // Its blocks stay allocated until the copy is done.
                    let Some(inf) = cmds.remove(hdr.cmd_id) else {
                        return Err("cmd table");
                    };
                    let def = Deferred {
                        done: Some(d),
                        dbis: inf.dbis,
                        pages: refs,
                        len,
                    };
                    match deferred.try_push(def) {
                        Ok(()) => stats.deferred += 1,
                        Err(mut def) => {
                            def.copy();
                            blocks.free(&def.dbis);
                            if let Some(d) = def.done.take() {
                                done.push(d, len);
                            }
                        }
                    }
                } else if hdr.keep_buf {
                    inf.kept = true;
                    inf.deadline = None;
                } else if let Some(inf) = cmds.remove(hdr.cmd_id) {
                    blocks.free(&inf.dbis);
                }
            }
            reaper.consume().map_err(|_| "ring")?;
            if done.is_full() {
                return Ok(reaper.remaining() > 0);
            }
        }
    }

    /// References to the pages holding the first `len` bytes of blocks `dbis` (the Data-In
    /// of a command about to be deferred); `None` if a page is missing or the vector cannot
    /// be allocated (the copy is then made at once).
    fn page_refs(
        &self,
        pages: &KVVec<Option<Page>>,
        dbis: &[u32],
        len: usize,
    ) -> Option<KVec<PageRef>> {
        let ppb = self.pages_per_blk as usize;
        let n = len.div_ceil(PAGE_SIZE);
        let mut v = KVec::with_capacity(n, GFP_NOIO).ok()?;
        for i in 0..n {
            // As `copy_sg`: page `i % ppb` of block `dbis[i / ppb]`.
            let dbi = *dbis.get(i.checked_div(ppb)?)? as usize;
            let page = pages
                .get(dbi.checked_mul(ppb)?.checked_add(i.checked_rem(ppb)?)?)?
                .as_ref()?;
            v.push(PageRef::new(page), GFP_NOIO).ok()?;
        }
        Some(v)
    }

    /// Idle and over the global limit: schedules the reclaim of unused pages (C does it when
    /// it reaps). Called when commands leave: at the end of a reap, and when the deferred
    /// copies free their blocks (the reclaim only frees pages above the last block in use).
    fn reclaim_if_idle(&self, st: &RingState) {
        if st.cmds.len() == 0
            && st.qfull.is_empty()
            && st.deferred.is_empty()
            && over_global_limit()
        {
            ArcWork::schedule(self.reclaimer.clone());
        }
    }

    /// Runs the deferred Data-In copies (from `work`): each is copied without the ring lock,
    /// then completed, and its blocks freed; commands waiting for space are then retried.
    /// One batch, all that is there: copies deferred meanwhile schedule the work again (the
    /// reap does when it finds none waiting), and the expiry it also runs is not put off.
    fn copy_deferred(self: &Arc<Self>) {
        // One lock round trip to take them, one more to free their blocks.
        let mut batch = core::mem::replace(&mut self.st.lock().deferred, Fifo::new());
        if batch.is_empty() {
            return;
        }
        for d in batch.iter_mut() {
            d.copy();
            if let Some(done) = d.done.take() {
                done.complete();
            }
        }
        let mut st = self.st.lock();
        while let Some(d) = batch.pop() {
            st.blocks.free(&d.dbis);
        }
        let queued = self.retry_waiting(&mut st);
        if !st.dead {
            self.reclaim_if_idle(&st);
        }
        drop(st);
        if queued {
            self.waker.notify();
        }
    }

    /// Takes the response `kind` read from the entry at `off` for a command the handler
    /// finished: sense and (if `copy`) Data-In are copied now, the completion itself is
    /// returned, to be made once the ring lock is dropped, with the number of Data-In bytes
    /// copied.
    #[allow(clippy::too_many_arguments)]
    fn finish(
        &self,
        pages: &KVVec<Option<Page>>,
        mut cmd: PendingCmd<User>,
        dbis: &[u32],
        n_first: usize,
        kind: CompletionKind,
        off: usize,
        copy: bool,
    ) -> (Done, usize) {
        // Its id may be reused before it completes: a TMR must not name it any more.
        cmd.set_tag(0);
        let s = match kind {
            CompletionKind::UnknownOp => {
                pr_warn_ratelimited!("{}: handler set UNKNOWN_OP on a command\n", &*self.name);
                return (
                    Done {
                        cmd,
                        status: target::SAM_STAT_CHECK_CONDITION,
                        len: None,
                    },
                    0,
                );
            }
            CompletionKind::Status(s) => s,
        };
        if let Some(bad) = s.invalid_status {
            pr_warn_ratelimited!(
                "{}: handler returned invalid SCSI status {:#x}\n",
                &*self.name,
                bad
            );
        }
        if s.check_condition {
            let mut sense = [0u8; SENSE_BUFFER_SIZE];
            if self
                .area
                .read_bytes(off + abi::RSP_SENSE_BUFFER_OFFSET, &mut sense)
                .is_some()
            {
                // The kernel's sense parsers trust the lengths inside (see `sense.rs`).
                let what = sense::sanitize(&mut sense);
                if what != sense::Sanitized::Unchanged {
                    pr_warn_ratelimited!(
                        "{}: handler returned malformed sense data ({:?})\n",
                        &*self.name,
                        what
                    );
                }
                cmd.set_sense(&sense);
            }
            if s.read_len.is_some() {
                cmd.set_treat_read_as_normal();
            }
        }
        let copied = s.gather_len.map_or(0, |len| len as usize);
        if copied > 0 && copy {
            let (first, bidi) = dbis.split_at(n_first.min(dbis.len()));
            if cmd.direction() == DataDir::Bidi {
                self.copy_sg(pages, &cmd.bidi_sg(), bidi, copied, false);
            } else {
                self.copy_sg(pages, &cmd.data_sg(), first, copied, false);
            }
        }
        (
            Done {
                cmd,
                status: s.scsi_status,
                len: s.read_len,
            },
            copied,
        )
    }

    /// Retries the waiting commands after space was freed or a handed-off write is due, unless
    /// TMR notifications wait (they go first, as in C) or the device is gone. Returns whether
    /// any went on the ring (the caller wakes the handler). On a broken ring they fail.
    fn retry_waiting(self: &Arc<Self>, st: &mut RingState) -> bool {
        !st.dead && st.tmr_queue.is_empty() && self.run_qfull(st)
    }

    /// Moves waiting commands to the ring while there is room (`try_ring` arms the timer for
    /// their ring deadlines). Returns whether any moved.
    fn run_qfull(self: &Arc<Self>, st: &mut RingState) -> bool {
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

    /// Fails every command still owned by the device and stops the timer (at teardown).
    fn shutdown(self: &Arc<Self>) {
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

// Device attributes (`<dev>/attrib`), in the order of the C module.
const A_CMD_TIME_OUT: usize = 0;
const A_QFULL_TIME_OUT: usize = 1;
const A_MAX_DATA_AREA_MB: usize = 2;
const A_DATA_PAGES_PER_BLK: usize = 3;
const A_CMD_RING_SIZE_MB: usize = 4;
const A_DEV_CONFIG: usize = 5;
const A_DEV_SIZE: usize = 6;
const A_NL_REPLY_SUPPORTED: usize = 7;
const A_TMR_NOTIFICATION: usize = 8;
const A_EMULATE_WRITE_CACHE: usize = 9;
const A_STATS: usize = 10;
// Device actions (`<dev>/action`).
const ACT_BLOCK_DEV: usize = 0;
const ACT_RESET_RING: usize = 1;
const ACT_FREE_KEPT_BUF: usize = 2;

/// For an enabled device, announces a change to the handler (`RECONFIG_DEVICE`) and returns
/// its answer; `ESRCH` when no handler listens, as in C. Nothing to do before `enable`.
fn reconfig(dev: &Device<User>, r: netlink::Reconfig<'_>) -> Result {
    // Lock order: `cfg` before `uio`; neither is held while the handler answers.
    let nl_reply_supported = dev.cfg.lock().nl_reply_supported;
    let Some((uio_name, minor)) = dev.uio.lock().as_ref().map(event_id).transpose()? else {
        return Ok(());
    };
    let ev = netlink::DevEvent {
        uio_name: &uio_name,
        minor,
        dev_index: dev.index(),
        nl_reply_supported,
        reconfig: r,
    };
    netlink::Nl::send_event(&dev.backend_data().nl, abi::TCMU_CMD_RECONFIG_DEVICE, &ev)
        .inspect_err(|_| pr_warn_ratelimited!("{}: unable to reconfigure device\n", &*dev.name))
}

/// What netlink events say to identify a device: its UIO name and minor.
fn event_id(reg: &Pin<KBox<uio::Registration<Ring>>>) -> Result<(CString, u32)> {
    Ok((reg.name()?, reg.minor()))
}

/// Wakes the handler up for new ring entries (counted in `attrib/stats`).
fn wake_handler(reg: &uio::Registration<Ring>) {
    reg.data().wakeups.fetch_add(1, Ordering::Relaxed);
    reg.notify();
}

/// The concatenation of `parts` as a C string (`EINVAL` if one holds a NUL byte).
fn cstring_of(parts: &[&[u8]]) -> Result<CString> {
    let mut v = KVec::new();
    for p in parts {
        v.extend_from_slice(p, GFP_KERNEL)?;
    }
    v.push(0, GFP_KERNEL)?;
    let c = kernel::str::CStr::from_bytes_with_nul(&v).map_err(|_| EINVAL)?;
    Ok(CString::try_from(c)?)
}

/// The UIO name of a device: `tcm-user/<hba>/<dev>[/<dev_config>]`, the config bytes as they
/// are (as C: the handler parses them).
fn uio_name(dev: &Device<User>, config: &[u8]) -> Result<CString> {
    let hba = dev.hba();
    let prefix = CString::try_from_fmt(fmt!("tcm-user/{}/{}", hba.data().host_id, &*dev.name))?;
    if config.is_empty() {
        Ok(prefix)
    } else {
        cstring_of(&[prefix.as_bytes(), b"/", config])
    }
}

impl params::WriteBytes for ShowPage<'_> {
    fn write_bytes(&mut self, bytes: &[u8]) -> core::fmt::Result {
        ShowPage::write_bytes(self, bytes)
    }
}

/// The TMR type the handler sees for `tmf` (C's `tcmu_tmr_type`).
fn tmr_type(tmf: target::Tmf) -> u8 {
    match tmf {
        target::Tmf::AbortTask => abi::TCMU_TMR_ABORT_TASK,
        target::Tmf::AbortTaskSet => abi::TCMU_TMR_ABORT_TASK_SET,
        target::Tmf::ClearAca => abi::TCMU_TMR_CLEAR_ACA,
        target::Tmf::ClearTaskSet => abi::TCMU_TMR_CLEAR_TASK_SET,
        target::Tmf::LunReset => abi::TCMU_TMR_LUN_RESET,
        target::Tmf::TargetWarmReset => abi::TCMU_TMR_TARGET_WARM_RESET,
        target::Tmf::TargetColdReset => abi::TCMU_TMR_TARGET_COLD_RESET,
        target::Tmf::LunResetPro => abi::TCMU_TMR_LUN_RESET_PRO,
        target::Tmf::Other => abi::TCMU_TMR_UNKNOWN,
    }
}

fn kerr(e: kstrto::KstrtoError) -> Error {
    Error::from_errno(e.to_errno())
}

impl Backend for User {
    const NAME: &'static CStr = c_str!("user");
    const INQUIRY_PROD: &'static CStr = c_str!("USER");
    const INQUIRY_REV: &'static CStr = c_str!("2.0");
    // As C: no task attribute ordering by the target core (the handler sees the commands as
    // they come); alua_support and pgr_support may be switched off.
    const TRANSPORT_FLAGS_DEFAULT: u8 = target::TRANSPORT_FLAG_PASSTHROUGH;
    const TRANSPORT_FLAGS_CHANGEABLE: u8 =
        target::TRANSPORT_FLAG_PASSTHROUGH_PGR | target::TRANSPORT_FLAG_PASSTHROUGH_ALUA;

    type Data = Global;
    type HbaData = UserHba;
    type DevData = UserDev;

    const DEV_ATTRS: &'static [AttrDef] = &[
        AttrDef::rw(c_str!("cmd_time_out")),
        AttrDef::rw(c_str!("qfull_time_out")),
        AttrDef::ro(c_str!("max_data_area_mb")),
        AttrDef::ro(c_str!("data_pages_per_blk")),
        AttrDef::ro(c_str!("cmd_ring_size_mb")),
        AttrDef::rw(c_str!("dev_config")),
        AttrDef::rw(c_str!("dev_size")),
        AttrDef::rw(c_str!("nl_reply_supported")),
        AttrDef::rw(c_str!("tmr_notification")),
        AttrDef::rw(c_str!("emulate_write_cache")),
        // Not in the C module: counters and ring/data use (read-only, skipped by saveconfig).
        AttrDef::ro(c_str!("stats")),
    ];
    const ACTION_ATTRS: &'static [AttrDef] = &[
        AttrDef::rw(c_str!("block_dev")),
        AttrDef::wo(c_str!("reset_ring")),
        AttrDef::wo(c_str!("free_kept_buf")),
    ];

    fn dev_attr_show(dev: &Device<Self>, id: usize, f: &mut ShowPage<'_>) -> Result {
        let st = &dev.settings;
        let r = match id {
            A_CMD_TIME_OUT => writeln!(f, "{}", st.cmd_time_out_ms.load(Ordering::Relaxed) / 1000),
            A_QFULL_TIME_OUT => {
                let q = st.qfull_time_out_ms.load(Ordering::Relaxed);
                writeln!(f, "{}", if q <= 0 { q } else { q / 1000 })
            }
            A_TMR_NOTIFICATION => {
                writeln!(
                    f,
                    "{}",
                    u8::from(st.tmr_notification.load(Ordering::Relaxed))
                )
            }
            A_EMULATE_WRITE_CACHE => writeln!(f, "{}", u8::from(dev.write_cache())),
            A_STATS => match dev.uio.lock().as_ref() {
                Some(reg) => reg.data().write_stats(f),
                None => writeln!(f, "enabled 0"),
            },
            _ => {
                let p = dev.cfg.lock();
                match id {
                    A_MAX_DATA_AREA_MB => writeln!(f, "{}", p.data_area_mb),
                    A_DATA_PAGES_PER_BLK => writeln!(f, "{}", p.data_pages_per_blk),
                    A_CMD_RING_SIZE_MB => writeln!(f, "{}", p.cmd_ring_size_mb()),
                    A_DEV_CONFIG => f
                        .write_bytes(p.dev_config())
                        .and_then(|()| f.write_str("\n")),
                    A_DEV_SIZE => writeln!(f, "{}", p.dev_size),
                    A_NL_REPLY_SUPPORTED => writeln!(f, "{}", p.nl_reply_supported),
                    _ => return Err(EINVAL),
                }
            }
        };
        r.map_err(|_| EINVAL)
    }

    fn dev_attr_store(dev: &Device<Self>, id: usize, data: &[u8]) -> Result<usize> {
        let st = &dev.settings;
        match id {
            A_CMD_TIME_OUT => {
                if dev.export_count() > 0 {
                    pr_warn_ratelimited!(
                        "{}: cannot set cmd_time_out while exports exist\n",
                        &*dev.name
                    );
                    return Err(EINVAL);
                }
                let v = kstrto::kstrtou32(data).map_err(kerr)?;
                st.cmd_time_out_ms
                    .store(u64::from(v) * 1000, Ordering::Relaxed);
            }
            A_QFULL_TIME_OUT => {
                let v = kstrto::kstrtos32(data).map_err(kerr)?;
                let ms = match v {
                    v if v >= 0 => i64::from(v) * 1000,
                    -1 => -1,
                    _ => {
                        pr_warn_ratelimited!("{}: invalid qfull_time_out {}\n", &*dev.name, v);
                        return Err(EINVAL);
                    }
                };
                st.qfull_time_out_ms.store(ms, Ordering::Relaxed);
            }
            A_DEV_CONFIG => {
                let v = data.split(|&b| b == 0).next().unwrap_or(&[]);
                if v.is_empty() || v.len() > params::TCMU_CONFIG_LEN - 1 {
                    return Err(EINVAL);
                }
                let c = cstring_of(&[v])?;
                reconfig(dev, netlink::Reconfig::DevConfig(&c))?;
                dev.cfg.lock().set_dev_config(v);
                // The handler finds its configuration in the UIO name (as C updates it).
                if let Some(reg) = dev.uio.lock().as_ref() {
                    reg.set_name(uio_name(dev, v)?);
                }
            }
            A_DEV_SIZE => {
                let v = kstrto::kstrtoull(data).map_err(kerr)?;
                reconfig(dev, netlink::Reconfig::DevSize(v))?;
                dev.cfg.lock().dev_size = v;
            }
            A_EMULATE_WRITE_CACHE => {
                let v = kstrto::kstrtou8(data).map_err(kerr)?;
                reconfig(dev, netlink::Reconfig::WriteCache(v))?;
                dev.set_write_cache(v != 0);
            }
            A_TMR_NOTIFICATION => match kstrto::kstrtou8(data).map_err(kerr)? {
                v @ (0 | 1) => st.tmr_notification.store(v == 1, Ordering::Relaxed),
                v => {
                    pr_warn_ratelimited!("{}: invalid tmr_notification value {}\n", &*dev.name, v);
                    return Err(EINVAL);
                }
            },
            A_NL_REPLY_SUPPORTED => {
                let v = kstrto::kstrtoll(data).map_err(kerr)?;
                let v = i8::try_from(v).map_err(|_| ERANGE)?;
                dev.cfg.lock().nl_reply_supported = i32::from(v);
            }
            _ => return Err(EINVAL),
        }
        Ok(data.len())
    }

    fn action_show(dev: &Device<Self>, id: usize, f: &mut ShowPage<'_>) -> Result {
        if id != ACT_BLOCK_DEV {
            return Err(EINVAL);
        }
        let blocked = dev.settings.blocked.load(Ordering::Relaxed);
        writeln!(f, "{}", if blocked { "blocked" } else { "unblocked" }).map_err(|_| EINVAL)
    }

    fn action_store(dev: &Device<Self>, id: usize, data: &[u8]) -> Result<usize> {
        let uio = dev.uio.lock();
        let Some(reg) = uio.as_ref() else {
            pr_warn_ratelimited!("{}: device is not configured\n", &*dev.name);
            return Err(EINVAL);
        };
        let ring = reg.data();
        match id {
            ACT_BLOCK_DEV => match kstrto::kstrtou8(data).map_err(kerr)? {
                v @ (0 | 1) => ring.set_blocked(v == 1),
                v => {
                    pr_warn_ratelimited!("{}: invalid block value {}\n", &*dev.name, v);
                    return Err(EINVAL);
                }
            },
            ACT_RESET_RING => match kstrto::kstrtou8(data).map_err(kerr)? {
                v @ (1 | 2) => {
                    if ring.reset(v) {
                        reg.notify();
                    }
                }
                v => {
                    pr_warn_ratelimited!("{}: invalid reset ring value {}\n", &*dev.name, v);
                    return Err(EINVAL);
                }
            },
            ACT_FREE_KEPT_BUF => {
                let id = kstrto::kstrtou16(data).map_err(kerr)?;
                if ring.free_kept_buf(id)? {
                    reg.notify();
                }
            }
            _ => return Err(EINVAL),
        }
        Ok(data.len())
    }

    fn attach_hba(host_id: u32) -> Result<UserHba> {
        Ok(UserHba { host_id })
    }

    fn alloc_device(_hba: &Hba<Self>, name: &CStr) -> impl PinInit<UserDev, Error> {
        let settings = Arc::new(
            Settings {
                cmd_time_out_ms: AtomicU64::new(TCMU_TIME_OUT_MS),
                qfull_time_out_ms: AtomicI64::new(-1),
                blocked: AtomicBool::new(false),
                tmr_notification: AtomicBool::new(false),
            },
            GFP_KERNEL,
        );
        try_pin_init!(UserDev {
            name: CString::try_from_fmt(fmt!("{}", name))?,
            settings: settings?,
            cfg <- new_mutex!(Params::new(&limits())),
            uio <- new_mutex!(None),
            plugged: AtomicBool::new(false),
            notify_pending: AtomicBool::new(false),
        })
    }

    fn configure_device(dev: &Device<Self>) -> Result {
        let global = dev.backend_data();
        // A device that did not opt out follows the handler's SET_FEATURES (as C, this sticks
        // even if enabling fails below).
        let p = {
            let mut c = dev.cfg.lock();
            if c.nl_reply_supported >= 0 {
                c.nl_reply_supported = i32::from(global.nl.data().reply_supported());
            }
            *c
        };
        let mut uio = dev.uio.lock();
        if uio.is_some() {
            return Err(EEXIST);
        }
        let ring = Ring::new(
            &dev.name,
            &p,
            dev.settings.clone(),
            global.reclaimer.clone(),
        )?;
        let name = uio_name(dev, p.dev_config())?;
        let reg = KBox::pin_init(
            uio::Registration::new(
                &dev.backend_data().root,
                &THIS_MODULE,
                name,
                c_str!("2"),
                c_str!("tcm-user command & data buffer"),
                ring,
            ),
            GFP_KERNEL,
        )?;
        let hw = dev.hw_limits();
        dev.set_hw_limits(HwLimits {
            block_size: if hw.block_size == 0 {
                DEF_HW_BLOCK_SIZE
            } else {
                hw.block_size
            },
            max_sectors: if hw.max_sectors == 0 {
                DEF_HW_MAX_SECTORS
            } else {
                hw.max_sectors
            },
            queue_depth: DEF_HW_QUEUE_DEPTH,
        });
        let (uio_name, minor) = event_id(&reg)?;
        global.reclaimer.add(reg.data().clone())?;
        *uio = Some(reg);
        // The handler reacts to the event by opening the device and writing its attributes and
        // actions (tcmu-runner blocks it during setup): no lock may be held while waiting.
        drop(uio);
        let ev = netlink::DevEvent {
            uio_name: &uio_name,
            minor,
            dev_index: dev.index(),
            nl_reply_supported: p.nl_reply_supported,
            reconfig: netlink::Reconfig::None,
        };
        if let Err(e) = netlink::Nl::send_event(&global.nl, abi::TCMU_CMD_ADDED_DEVICE, &ev) {
            if let Some(reg) = dev.uio.lock().take() {
                let ring = reg.data().clone();
                drop(reg);
                global.reclaimer.remove(&ring);
                ring.shutdown();
            }
            return Err(e);
        }
        Ok(())
    }

    fn destroy_device(dev: &Device<Self>) {
        let nl_reply_supported = dev.cfg.lock().nl_reply_supported;
        // Announce the removal while the device is still whole and unlocked: the handler
        // may block it or touch its attributes before answering.
        let id = dev.uio.lock().as_ref().map(|reg| event_id(reg));
        if let Some(Ok((uio_name, minor))) = id {
            let ev = netlink::DevEvent {
                uio_name: &uio_name,
                minor,
                dev_index: dev.index(),
                nl_reply_supported,
                reconfig: netlink::Reconfig::None,
            };
            // As in C, the handler's answer does not stop the removal.
            let _ =
                netlink::Nl::send_event(&dev.backend_data().nl, abi::TCMU_CMD_REMOVED_DEVICE, &ev);
        }
        let reg = dev.uio.lock().take();
        if let Some(reg) = reg {
            let ring = reg.data().clone();
            // Unregister first: no more completions or opens race with the teardown.
            drop(reg);
            race_delay::hold(race_delay::Window::Unregister);
            dev.backend_data().reclaimer.remove(&ring);
            ring.shutdown();
        }
    }

    fn set_params(dev: &Device<Self>, params: &[u8]) -> Result<usize> {
        let mut p = dev.cfg.lock();
        let enabled = dev.uio.lock().is_some();
        let res = params::set_params(&mut p, params, enabled, &limits());
        // Block size and transfer limit go to the device attributes at once, as in C.
        let mut hw = dev.hw_limits();
        if p.hw_block_size != 0 {
            hw.block_size = p.hw_block_size;
        }
        if p.hw_max_sectors != 0 {
            hw.max_sectors = p.hw_max_sectors;
        }
        dev.set_hw_limits(hw);
        match res {
            Ok(()) => Ok(params.len()),
            Err(e) => {
                pr_warn_ratelimited!("{}: invalid control parameters\n", &*dev.name);
                Err(Error::from_errno(e.to_errno()))
            }
        }
    }

    fn tmr_notify(dev: &Device<Self>, tmf: target::Tmf, aborted: &mut dyn Iterator<Item = usize>) {
        let uio = dev.uio.lock();
        if let Some(reg) = uio.as_ref() {
            if reg.data().tmr(tmr_type(tmf), aborted) {
                reg.notify();
            }
        }
    }

    fn show_params(dev: &Device<Self>, f: &mut ShowPage<'_>) -> core::fmt::Result {
        params::format_info(&dev.cfg.lock(), f)
    }

    fn last_lba(dev: &Device<Self>) -> u64 {
        params::last_lba(dev.cfg.lock().dev_size, dev.block_size())
    }

    fn execute(dev: &Device<Self>, cmd: PendingCmd<Self>) -> Result<(), Rejected<Self>> {
        // Holding `uio` across the queueing keeps `destroy_device` (which takes it) from
        // tearing the device down under us even if the command completes meanwhile.
        let uio = dev.uio.lock();
        let Some(reg) = uio.as_ref() else {
            return Err(cmd.reject(TCM_LOGICAL_UNIT_COMMUNICATION_FAILURE));
        };
        // Plugged: one wake-up at `unplug` for the whole batch (as C). The order of the flag
        // operations (here and in `unplug`) makes sure one of the two sides notifies.
        if reg.data().queue(cmd, || reg.has_waiters())? {
            dev.notify_pending.store(true, Ordering::SeqCst);
            if !dev.plugged.load(Ordering::SeqCst)
                && dev.notify_pending.swap(false, Ordering::SeqCst)
            {
                wake_handler(reg);
            }
        }
        Ok(())
    }

    const PLUG: bool = true;

    fn plug(dev: &Device<Self>) -> bool {
        !dev.plugged.swap(true, Ordering::SeqCst)
    }

    fn unplug(dev: &Device<Self>) {
        dev.plugged.store(false, Ordering::SeqCst);
        if dev.notify_pending.swap(false, Ordering::SeqCst) {
            if let Some(reg) = dev.uio.lock().as_ref() {
                wake_handler(reg);
            }
        }
    }
}

struct TcmuRs {
    _backend: target::Registration<User>,
    reclaimer: Arc<Reclaimer>,
    module: &'static ThisModule,
}

impl kernel::Module for TcmuRs {
    fn init(module: &'static ThisModule) -> Result<Self> {
        // The netlink family first: its name clashes with the C module's, so loading next to
        // it fails here, cleanly, before anything else is set up.
        let nl = kernel::genetlink::Registration::new(module, netlink::Nl::new()?)?;
        let root = RootDevice::new(c_str!("tcmu_rs"), module)?;
        let reclaimer = Reclaimer::new()?;
        RECLAIMER.publish(module, reclaimer.clone());
        let backend = target::Registration::<User>::new(
            module,
            Global {
                root,
                nl,
                reclaimer: reclaimer.clone(),
            },
        );
        let backend = match backend {
            Ok(b) => b,
            Err(e) => {
                RECLAIMER.withdraw(module);
                return Err(e);
            }
        };
        pr_info!("TCMU in Rust loaded (ABI {})\n", abi::TCMU_VERSION);
        Ok(TcmuRs {
            _backend: backend,
            reclaimer,
            module,
        })
    }
}

impl Drop for TcmuRs {
    fn drop(&mut self) {
        // No device is left (each holds a reference on the module): stop the parameter's
        // access to the reclaimer, then wait for a reclaim still running.
        RECLAIMER.withdraw(self.module);
        // The timer twice: the work may arm it while being cancelled.
        ArcTimer::cancel(&*self.reclaimer);
        ArcWork::cancel_sync(&*self.reclaimer);
        ArcTimer::cancel(&*self.reclaimer);
    }
}

fn kunit_len_op_roundtrip() {
    let v = abi::hdr_set_len(abi::hdr_set_op(0, abi::Opcode::Cmd), 4096);
    kernel::kunit_expect_eq!(abi::hdr_get_opcode(v), Ok(abi::Opcode::Cmd));
    kernel::kunit_expect_eq!(abi::hdr_get_len(v), 4096);
}

fn kunit_mailbox_layout() {
    kernel::kunit_expect_eq!(core::mem::offset_of!(abi::Mailbox, cmd_tail), 64);
    kernel::kunit_expect_eq!(CMDR_OFF as usize, abi::MAILBOX_SIZE);
}

fn kunit_alloc_id_lowest_free() {
    let Ok(mut cmds) = CmdTable::new() else {
        kernel::kunit_expect!(false);
        return;
    };
    kernel::kunit_expect_eq!(cmds.free_id(), Some(1));
    // Not taken until inserted.
    kernel::kunit_expect_eq!(cmds.free_id(), Some(1));
    kernel::kunit_expect_eq!(cmds.id_limit(), 2);
    kernel::kunit_expect!(cmds.get(1).is_none());
    kernel::kunit_expect!(cmds.remove(1).is_none());
    let idle = || -> Option<Inflight> {
        Some(Inflight {
            cmd: None,
            deadline: None,
            kept: false,
            dbis: SmallVec::filled(0, 0).ok()?,
            n_first: 0,
            info: CmdInfo {
                dir: DataDirection::None,
                data_length: 0,
                bidi_length: 0,
            },
        })
    };
    for want in 1..=3u16 {
        let id = cmds.free_id();
        kernel::kunit_expect_eq!(id, Some(want));
        if let (Some(id), Some(inf)) = (id, idle()) {
            kernel::kunit_expect!(cmds.insert(id, inf));
        }
    }
    // An id in use is not taken twice.
    if let Some(inf) = idle() {
        kernel::kunit_expect!(!cmds.insert(2, inf));
    }
    kernel::kunit_expect_eq!(cmds.len(), 3);
    kernel::kunit_expect!(cmds.remove(2).is_some());
    kernel::kunit_expect_eq!(cmds.len(), 2);
    kernel::kunit_expect_eq!(cmds.free_id(), Some(2));
    let mut n = 0;
    cmds.drain(|_| n += 1);
    kernel::kunit_expect_eq!(n, 2);
    kernel::kunit_expect_eq!(cmds.len(), 0);
    kernel::kunit_expect_eq!(cmds.free_id(), Some(1));
}

use fifo::{kunit_fifo_bounded, kunit_fifo_order};

/// Every task management function the target core passes reaches the handler with C's type.
fn kunit_tmr_type_as_c() {
    use kernel::bindings as b;
    let cases = [
        (b::tcm_tmreq_table_TMR_ABORT_TASK, abi::TCMU_TMR_ABORT_TASK),
        (
            b::tcm_tmreq_table_TMR_ABORT_TASK_SET,
            abi::TCMU_TMR_ABORT_TASK_SET,
        ),
        (b::tcm_tmreq_table_TMR_CLEAR_ACA, abi::TCMU_TMR_CLEAR_ACA),
        (
            b::tcm_tmreq_table_TMR_CLEAR_TASK_SET,
            abi::TCMU_TMR_CLEAR_TASK_SET,
        ),
        (b::tcm_tmreq_table_TMR_LUN_RESET, abi::TCMU_TMR_LUN_RESET),
        (
            b::tcm_tmreq_table_TMR_TARGET_WARM_RESET,
            abi::TCMU_TMR_TARGET_WARM_RESET,
        ),
        (
            b::tcm_tmreq_table_TMR_TARGET_COLD_RESET,
            abi::TCMU_TMR_TARGET_COLD_RESET,
        ),
        (
            b::tcm_tmreq_table_TMR_LUN_RESET_PRO,
            abi::TCMU_TMR_LUN_RESET_PRO,
        ),
        (b::tcm_tmreq_table_TMR_UNKNOWN, abi::TCMU_TMR_UNKNOWN),
    ];
    for (raw, want) in cases {
        kernel::kunit_expect_eq!(tmr_type(target::Tmf::from_raw(raw)), want);
    }
}

/// An entry that does not fit before the end of the ring is placed at offset 0 after a PAD
/// that fills the end; reaping returns the PAD, then the entry, and the ring is empty again.
fn kunit_ring_wraps_with_pad() {
    let Ok(fifo) = KVVec::from_elem(0, ring::fifo_capacity(1024), GFP_KERNEL) else {
        kernel::kunit_expect!(false, "alloc");
        return;
    };
    let Some(mut r) = CmdRing::new(1024, fifo) else {
        kernel::kunit_expect!(false, "ring");
        return;
    };
    let first = r.reserve(640, Opcode::Cmd);
    kernel::kunit_expect_eq!(
        first,
        Some(ring::Placement {
            pad: None,
            offset: 0
        })
    );
    // Not reaped yet: no room for 512 more bytes (with or without the PAD).
    kernel::kunit_expect!(r.reserve(512, Opcode::Cmd).is_none());
    match r.begin_reap(640) {
        Ok(mut reaper) => {
            kernel::kunit_expect!(matches!(reaper.consume(), Ok(Some(s)) if s.offset == 0));
            kernel::kunit_expect!(matches!(reaper.consume(), Ok(None)));
        }
        Err(_) => kernel::kunit_expect!(false, "reap the first entry"),
    }
    // 384 bytes are left before the end: the next 512 wrap behind a PAD of 384 at 640.
    let wrapped = r.reserve(512, Opcode::Cmd);
    kernel::kunit_expect_eq!(
        wrapped,
        Some(ring::Placement {
            pad: Some((640, 384)),
            offset: 0
        })
    );
    kernel::kunit_expect_eq!(r.head(), 512);
    kernel::kunit_expect_eq!(r.pending_slots(), 2);
    match r.begin_reap(512) {
        Ok(mut reaper) => {
            let pad = reaper.consume();
            kernel::kunit_expect!(
                matches!(pad, Ok(Some(s)) if s.offset == 640 && s.len() == 384 && s.op() == abi::TCMU_OP_PAD)
            );
            let cmd = reaper.consume();
            kernel::kunit_expect!(
                matches!(cmd, Ok(Some(s)) if s.offset == 0 && s.len() == 512 && s.op() == abi::TCMU_OP_CMD)
            );
            kernel::kunit_expect!(matches!(reaper.consume(), Ok(None)));
        }
        Err(_) => kernel::kunit_expect!(false, "reap the PAD and the entry"),
    }
    kernel::kunit_expect!(r.is_empty());
    kernel::kunit_expect_eq!(r.last_cleaned(), 512);
}

kernel::kunit_tests!(
    tcmu_rs,
    [
        kunit_len_op_roundtrip,
        kunit_mailbox_layout,
        kunit_alloc_id_lowest_free,
        kunit_ring_wraps_with_pad,
        kunit_tmr_type_as_c,
        kunit_fifo_bounded,
        kunit_fifo_order
    ]
);
