// SPDX-License-Identifier: GPL-2.0

//! TCMU in Rust: the LIO `user` backstore, which passes SCSI commands to a userspace handler
//! through a UIO shared-memory ring (see `Documentation/target/tcmu-design.rst` for the ABI and
//! `Documentation/target/tcmu-rs.rst` for this module's design).
//!
//! It registers the target backend `user`, like `target_core_user`; the two modules exclude
//! each other because the target core refuses a second backend of the same name.
//!
//! Locking order: `UserDev::cfg` -> `UserDev::uio` -> `Ring::st`.

use core::sync::atomic::{fence, Ordering};
use kernel::{
    alloc::flags::{GFP_KERNEL, GFP_NOIO, __GFP_ZERO},
    c_str, fmt, new_mutex,
    page::{Page, PAGE_SIZE},
    pr_warn_ratelimited,
    prelude::*,
    str::CString,
    sync::{Arc, Mutex},
    target::{
        self, AttrList, Backend, DataDir, Device, Hba, HwLimits, PendingCmd, Rejected,
        SENSE_BUFFER_SIZE, TCM_INVALID_CDB_FIELD, TCM_LOGICAL_UNIT_COMMUNICATION_FAILURE,
        TCM_OUT_OF_RESOURCES,
    },
    uio::{self, FaultPage, Notifier, RootDevice, SharedArea},
};

mod abi;
mod blocks;
mod entry;
mod netlink;
mod params;
mod response;
mod ring;

use abi::{Iovec, Opcode};
use blocks::BlockAlloc;
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

/// Mailbox capabilities implemented so far.
const MB_FLAGS: u16 = abi::TCMU_MAILBOX_FLAG_CAP_OOOC | abi::TCMU_MAILBOX_FLAG_CAP_READ_LEN;
/// Defaults the C module applies at `enable`.
const DEF_HW_BLOCK_SIZE: u32 = 512;
const DEF_HW_MAX_SECTORS: u32 = 128;
const DEF_HW_QUEUE_DEPTH: u32 = 128;
/// Largest command id (ids are 16 bits, 0 is never used).
const MAX_CMD_ID: usize = 0xffff;

const LIMITS: Limits = Limits {
    page_shift: kernel::page::PAGE_SHIFT as u32,
    global_max_pages: params::TCMU_GLOBAL_MAX_PAGES_DEF,
};

struct User;

/// Module-wide data: the parent of all UIO devices and the netlink family.
struct Global {
    root: RootDevice,
    nl: kernel::genetlink::Registration<netlink::Nl>,
}

/// One `user_<n>` HBA.
struct UserHba {
    host_id: u32,
}

/// One `user` device.
#[pin_data]
struct UserDev {
    name: CString,
    #[pin]
    cfg: Mutex<Params>,
    /// The UIO device and its ring, from `enable` until the device is destroyed.
    #[pin]
    uio: Mutex<Option<Pin<KBox<uio::Registration<Ring>>>>>,
}

/// The shared region and everything the ring lock protects. Mappings of the region hold a
/// reference to it, so it can outlive the device.
#[pin_data]
struct Ring {
    /// Mailbox and command ring.
    area: SharedArea,
    cmdr_size: u32,
    /// Offset of the data area in the region.
    data_off: usize,
    map_pages: usize,
    blk_size: u32,
    pages_per_blk: u32,
    #[pin]
    st: Mutex<RingState>,
}

/// A command on the ring.
struct Inflight {
    cmd: PendingCmd<User>,
    /// Data blocks: first the Data-Out (or Data-In) ones, then the bidi Data-In ones.
    dbis: KVec<u32>,
    n_first: usize,
    info: CmdInfo,
}

struct RingState {
    ring: CmdRing<KVVec<u32>>,
    blocks: BlockAlloc<KVVec<u64>>,
    /// Data area pages by page index, allocated on first use.
    pages: KVVec<Option<Page>>,
    /// Commands on the ring by id (index 0 unused).
    cmds: KVVec<Option<Inflight>>,
    inflight: usize,
    /// Commands waiting for ring or data space, oldest first.
    qfull: Fifo<PendingCmd<User>>,
    /// Set when the handler broke the protocol: nothing more is reaped or queued.
    broken: bool,
}

/// A FIFO queue on a vector.
struct Fifo<T> {
    items: KVec<Option<T>>,
    head: usize,
}

impl<T> Fifo<T> {
    fn new() -> Self {
        Self {
            items: KVec::new(),
            head: 0,
        }
    }

    fn is_empty(&self) -> bool {
        self.head == self.items.len()
    }

    /// Appends `v`; on allocation failure `v` is dropped.
    fn push(&mut self, v: T) -> Result<(), kernel::alloc::AllocError> {
        self.items.push(Some(v), GFP_NOIO)
    }

    fn pop(&mut self) -> Option<T> {
        let v = self.items.get_mut(self.head)?.take();
        self.head += 1;
        if self.head == self.items.len() {
            self.items = KVec::new();
            self.head = 0;
        }
        v
    }

    /// Puts `v` back at the front (after a failed retry).
    fn unpop(&mut self, v: T) {
        if self.head > 0 {
            self.head -= 1;
            if let Some(slot) = self.items.get_mut(self.head) {
                *slot = Some(v);
            }
        }
    }
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
    fn new(p: &Params, name: &CStr) -> Result<Arc<Self>> {
        let blk_size = p.data_blk_size(&LIMITS).ok_or(EINVAL)?;
        let ring_bytes = CMDR_OFF.checked_add(p.cmdr_size).ok_or(EINVAL)? as usize;
        if ring_bytes % PAGE_SIZE != 0 || blk_size == 0 {
            return Err(EINVAL);
        }
        let data_size = LIMITS.mbs_to_pages(p.data_area_mb) as usize * PAGE_SIZE;
        let map_pages = (ring_bytes + data_size) / PAGE_SIZE;
        let area = SharedArea::new(ring_bytes / PAGE_SIZE)?;
        area.write_u16(abi::MAILBOX_VERSION_OFFSET, abi::TCMU_MAILBOX_VERSION);
        area.write_u16(abi::MAILBOX_FLAGS_OFFSET, MB_FLAGS);
        area.write_u32(abi::MAILBOX_CMDR_OFF_OFFSET, CMDR_OFF);
        area.write_u32(abi::MAILBOX_CMDR_SIZE_OFFSET, p.cmdr_size);

        let fifo = KVVec::from_elem(0, ring::fifo_capacity(p.cmdr_size), GFP_KERNEL)?;
        let ring = CmdRing::new(p.cmdr_size, fifo).ok_or(EINVAL)?;
        let bitmap = KVVec::from_elem(0, blocks::bitmap_words(p.max_blocks), GFP_KERNEL)?;
        let blocks = BlockAlloc::new(p.max_blocks, bitmap).ok_or(EINVAL)?;
        let mut cmds = KVVec::new();
        cmds.push(None, GFP_KERNEL)?;
        let _ = name;
        Arc::pin_init(
            pin_init!(Ring {
                area,
                cmdr_size: p.cmdr_size,
                data_off: ring_bytes,
                map_pages,
                blk_size,
                pages_per_blk: p.data_pages_per_blk,
                st <- new_mutex!(RingState {
                    ring,
                    blocks,
                    pages: KVVec::new(),
                    cmds,
                    inflight: 0,
                    qfull: Fifo::new(),
                    broken: false,
                }),
            }),
            GFP_KERNEL,
        )
    }

    /// Queues `cmd` on the ring, or in the qfull queue. Returns whether the handler must be
    /// woken up.
    fn queue(&self, cmd: PendingCmd<User>) -> Result<bool, Rejected<User>> {
        let mut st = self.st.lock();
        if st.broken {
            return Err(cmd.reject(TCM_LOGICAL_UNIT_COMMUNICATION_FAILURE));
        }
        // Keep the order: nothing overtakes commands already waiting.
        let res = if st.qfull.is_empty() {
            self.try_ring(&mut st, cmd)
        } else {
            Err(NotQueued::NoSpace(cmd))
        };
        match res {
            Ok(()) => Ok(true),
            Err(NotQueued::Fail(cmd, reason)) => Err(cmd.reject(reason)),
            Err(NotQueued::NoSpace(cmd)) => {
                // A failed push drops (and so fails) the command.
                let _ = st.qfull.push(cmd);
                Ok(false)
            }
        }
    }

    fn try_ring(&self, st: &mut RingState, cmd: PendingCmd<User>) -> Result<(), NotQueued> {
        let dir = cmd.direction();
        let data_len = cmd.data_length();
        let bidi_len = if dir == DataDir::Bidi { cmd.bidi_sg().len() as u32 } else { 0 };
        let n_first = blocks::blocks_for(data_len.into(), self.blk_size);
        let n_bidi = blocks::blocks_for(bidi_len.into(), self.blk_size);
        let (Some(n_first), Some(n_bidi)) = (n_first, n_bidi) else {
            return Err(NotQueued::Fail(cmd, TCM_INVALID_CDB_FIELD));
        };
        let n = n_first as usize + n_bidi as usize;
        if n > st.blocks.max_blocks() as usize {
            pr_warn_ratelimited!(
                "tcmu_rs: request of {} bytes is too big for the data area\n",
                u64::from(data_len) + u64::from(bidi_len)
            );
            return Err(NotQueued::Fail(cmd, TCM_INVALID_CDB_FIELD));
        }
        let Ok(mut dbis) = KVec::from_elem(0, n, GFP_NOIO) else {
            return Err(NotQueued::Fail(cmd, TCM_OUT_OF_RESOURCES));
        };
        if st.blocks.alloc(n as u32, &mut dbis).is_none() {
            return Err(NotQueued::NoSpace(cmd));
        }
        if self.ensure_pages(st, &dbis).is_err() {
            st.blocks.free(&dbis);
            return Err(NotQueued::NoSpace(cmd));
        }
        let (first, bidi) = dbis.split_at(n_first as usize);
        let iov_cnt = blocks::iov_count(first);
        let iov_bidi_cnt = blocks::iov_count(bidi);
        let cdb = cmd.cdb();
        let Some((base, total)) = entry::cmd_entry_size(iov_cnt + iov_bidi_cnt, cdb.len()) else {
            st.blocks.free(&dbis);
            return Err(NotQueued::Fail(cmd, TCM_INVALID_CDB_FIELD));
        };
        if total > (self.cmdr_size / 2) as usize {
            st.blocks.free(&dbis);
            pr_warn_ratelimited!("tcmu_rs: request of {} bytes is too big for the ring\n", total);
            return Err(NotQueued::Fail(cmd, TCM_INVALID_CDB_FIELD));
        }
        if !st.ring.fits(total as u32) {
            st.blocks.free(&dbis);
            return Err(NotQueued::NoSpace(cmd));
        }
        let Some(cmd_id) = alloc_id(&mut st.cmds) else {
            st.blocks.free(&dbis);
            return Err(NotQueued::Fail(cmd, TCM_OUT_OF_RESOURCES));
        };
        let Ok(mut iovs) = KVec::from_elem(Iovec { base: 0, len: 0 }, iov_cnt + iov_bidi_cnt, GFP_NOIO)
        else {
            st.blocks.free(&dbis);
            return Err(NotQueued::Fail(cmd, TCM_OUT_OF_RESOURCES));
        };
        let data_off = self.data_off as u64;
        let (iov_first, iov_bidi) = iovs.split_at_mut(iov_cnt);
        let ok = blocks::fill_iovecs(first, data_len.into(), self.blk_size, data_off, iov_first)
            .and_then(|_| blocks::fill_iovecs(bidi, bidi_len.into(), self.blk_size, data_off, iov_bidi));
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
        self.area.write_u32(abi::MAILBOX_CMD_HEAD_OFFSET, st.ring.head());
        let info = CmdInfo {
            dir: data_direction(dir),
            data_length: data_len,
            bidi_length: bidi_len,
        };
        if let Some(slot) = st.cmds.get_mut(cmd_id as usize) {
            *slot = Some(Inflight {
                cmd,
                dbis,
                n_first: n_first as usize,
                info,
            });
            st.inflight += 1;
        }
        Ok(())
    }

    /// Allocates the missing pages of blocks `dbis`.
    fn ensure_pages(&self, st: &mut RingState, dbis: &[u32]) -> Result {
        let ppb = self.pages_per_blk as usize;
        for &dbi in dbis {
            let first = dbi as usize * ppb;
            if st.pages.len() < first + ppb {
                let n = first + ppb - st.pages.len();
                for _ in 0..n {
                    st.pages.push(None, GFP_NOIO)?;
                }
            }
            for slot in &mut st.pages[first..first + ppb] {
                if slot.is_none() {
                    *slot = Some(Page::alloc_page(GFP_NOIO | __GFP_ZERO)?);
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
        let mut done = 0usize;
        'blocks: for &dbi in dbis {
            for i in 0..ppb {
                if done >= len {
                    break 'blocks;
                }
                let Some(Some(page)) = pages.get(dbi as usize * ppb + i) else {
                    break 'blocks;
                };
                let n = (len - done).min(PAGE_SIZE);
                let r = if to_blocks {
                    sg.copy_to_page(done, page, 0, n)
                } else {
                    sg.copy_from_page(done, page, 0, n)
                };
                match r {
                    Ok(c) if c == n => done += n,
                    _ => break 'blocks,
                }
            }
        }
    }

    /// Reaps the entries the handler released (up to `cmd_tail`) and completes their commands,
    /// then retries waiting commands. Returns whether new commands went on the ring.
    fn reap(&self) -> bool {
        let mut st = self.st.lock();
        if st.broken {
            return false;
        }
        // Read the handler's tail once; entries before it must be read after it.
        let Some(tail) = self.area.read_u32(abi::MAILBOX_CMD_TAIL_OFFSET) else {
            return false;
        };
        fence(Ordering::Acquire);
        if let Err(why) = self.reap_to(&mut st, tail) {
            pr_warn_ratelimited!("tcmu_rs: ring broken: {}\n", why);
            st.broken = true;
            return false;
        }
        self.run_qfull(&mut st)
    }

    fn reap_to(&self, st: &mut RingState, tail: u32) -> Result<(), &'static str> {
        let RingState {
            ring,
            blocks,
            pages,
            cmds,
            inflight,
            ..
        } = st;
        let mut reaper = ring.begin_reap(tail).map_err(|_| "bad cmd_tail")?;
        let cmdr = CMDR_OFF as usize;
        loop {
            let slot = match reaper.peek() {
                Ok(Some(slot)) => slot,
                Ok(None) => return Ok(()),
                Err(_) => return Err("cmd_tail inside an entry"),
            };
            let off = cmdr + slot.offset as usize;
            let found = self.area.read_u32(off + abi::HDR_LEN_OP_OFFSET).ok_or("entry")?;
            let kind =
                response::check_len_op(slot.len_op, found).map_err(|_| "entry header changed")?;
            if kind == SlotKind::Cmd {
                let raw = RawCmdEntry {
                    len_op: found,
                    cmd_id: self.area.read_u16(off + abi::HDR_CMD_ID_OFFSET).ok_or("entry")?,
                    uflags: self.area.read_u8(off + abi::HDR_UFLAGS_OFFSET).ok_or("entry")?,
                    scsi_status: self
                        .area
                        .read_u8(off + abi::RSP_SCSI_STATUS_OFFSET)
                        .ok_or("entry")?,
                    read_len: self.area.read_u32(off + abi::RSP_READ_LEN_OFFSET).ok_or("entry")?,
                };
                let hdr = response::decode_header(&raw, slot.len_op).map_err(|_| "bad entry")?;
                let Some(inf) = cmds.get_mut(hdr.cmd_id as usize).and_then(Option::take) else {
                    return Err("unknown cmd_id");
                };
                *inflight -= 1;
                let kind = response::decode_status(&raw, &inf.info);
                self.complete(pages, inf.cmd, &inf.dbis, inf.n_first, kind, off);
                blocks.free(&inf.dbis);
            }
            reaper.consume().map_err(|_| "ring")?;
        }
    }

    /// Completes a command the handler finished with the response `kind` read from the entry
    /// at `off`.
    fn complete(
        &self,
        pages: &KVVec<Option<Page>>,
        cmd: PendingCmd<User>,
        dbis: &[u32],
        n_first: usize,
        kind: CompletionKind,
        off: usize,
    ) {
        let s = match kind {
            CompletionKind::UnknownOp => {
                pr_warn_ratelimited!("tcmu_rs: handler set UNKNOWN_OP on a command\n");
                cmd.complete(target::SAM_STAT_CHECK_CONDITION);
                return;
            }
            CompletionKind::Status(s) => s,
        };
        if let Some(bad) = s.invalid_status {
            pr_warn_ratelimited!("tcmu_rs: handler returned invalid SCSI status {:#x}\n", bad);
        }
        if s.check_condition {
            let mut sense = [0u8; SENSE_BUFFER_SIZE];
            if self.area.read_bytes(off + abi::RSP_SENSE_BUFFER_OFFSET, &mut sense).is_some() {
                cmd.set_sense(&sense);
            }
            if s.read_len.is_some() {
                cmd.set_treat_read_as_normal();
            }
        }
        if let Some(len) = s.gather_len {
            let (first, bidi) = dbis.split_at(n_first.min(dbis.len()));
            if cmd.direction() == DataDir::Bidi {
                self.copy_sg(pages, &cmd.bidi_sg(), bidi, len as usize, false);
            } else {
                self.copy_sg(pages, &cmd.data_sg(), first, len as usize, false);
            }
        }
        match s.read_len {
            Some(len) => cmd.complete_with_length(s.scsi_status, len),
            None => cmd.complete(s.scsi_status),
        }
    }

    /// Moves waiting commands to the ring while there is room. Returns whether any moved.
    fn run_qfull(&self, st: &mut RingState) -> bool {
        let mut queued = false;
        while let Some(cmd) = st.qfull.pop() {
            match self.try_ring(st, cmd) {
                Ok(()) => queued = true,
                Err(NotQueued::NoSpace(cmd)) => {
                    st.qfull.unpop(cmd);
                    break;
                }
                Err(NotQueued::Fail(cmd, _)) => cmd.complete(target::SAM_STAT_CHECK_CONDITION),
            }
        }
        queued
    }

    /// Fails every command still owned by the device (at teardown).
    fn fail_all(&self) {
        let mut st = self.st.lock();
        st.broken = true;
        while let Some(cmd) = st.qfull.pop() {
            cmd.complete(target::SAM_STAT_BUSY);
        }
        for slot in st.cmds.iter_mut() {
            if let Some(inf) = slot.take() {
                inf.cmd.complete(target::SAM_STAT_CHECK_CONDITION);
            }
        }
        st.inflight = 0;
    }
}

/// Allocates the lowest free command id (1..=0xffff), like the C module's `xa_alloc`.
fn alloc_id(cmds: &mut KVVec<Option<Inflight>>) -> Option<u16> {
    if let Some(id) = cmds.iter().skip(1).position(Option::is_none) {
        return u16::try_from(id + 1).ok();
    }
    let id = cmds.len();
    if id > MAX_CMD_ID || cmds.push(None, GFP_NOIO).is_err() {
        return None;
    }
    u16::try_from(id).ok()
}

impl uio::Operations for Ring {
    fn irqcontrol(&self, notifier: &Notifier, _value: i32) -> Result {
        if self.reap() {
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
        let st = self.st.lock();
        match st.pages.get(pgoff - data_first) {
            Some(Some(page)) => Some(FaultPage::from_page(page)),
            _ => {
                pr_warn_ratelimited!(
                    "tcmu_rs: handler touched data page {} that holds no data\n",
                    pgoff - data_first
                );
                None
            }
        }
    }
}

impl Backend for User {
    const NAME: &'static CStr = c_str!("user");
    const INQUIRY_PROD: &'static CStr = c_str!("USER");
    const INQUIRY_REV: &'static CStr = c_str!("2.0");

    type Data = Global;
    type HbaData = UserHba;
    type DevData = UserDev;

    fn attach_hba(host_id: u32) -> Result<UserHba> {
        Ok(UserHba { host_id })
    }

    fn alloc_device(_hba: &Hba<Self>, name: &CStr) -> impl PinInit<UserDev, Error> {
        try_pin_init!(UserDev {
            name: CString::try_from_fmt(fmt!("{}", name))?,
            cfg <- new_mutex!(Params::new(&LIMITS)),
            uio <- new_mutex!(None),
        })
    }

    fn configure_device(dev: &Device<Self>) -> Result {
        let p = *dev.cfg.lock();
        let mut uio = dev.uio.lock();
        if uio.is_some() {
            return Err(EEXIST);
        }
        let ring = Ring::new(&p, &dev.name)?;
        let config = core::str::from_utf8(p.dev_config()).unwrap_or("");
        let hba = dev.hba();
        let name = CString::try_from_fmt(fmt!(
            "tcm-user/{}/{}/{}",
            hba.data().host_id,
            &*dev.name,
            config
        ))?;
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
            block_size: if hw.block_size == 0 { DEF_HW_BLOCK_SIZE } else { hw.block_size },
            max_sectors: if hw.max_sectors == 0 { DEF_HW_MAX_SECTORS } else { hw.max_sectors },
            queue_depth: DEF_HW_QUEUE_DEPTH,
        });
        // A device that did not opt out follows the handler's SET_FEATURES.
        let global = dev.backend_data();
        let nl_reply = if p.nl_reply_supported >= 0 {
            let v = i32::from(global.nl.data().reply_supported());
            dev.cfg.lock().nl_reply_supported = v;
            v
        } else {
            p.nl_reply_supported
        };
        let ev = netlink::DevEvent {
            uio_name: reg.name(),
            minor: reg.minor(),
            dev_index: dev.index(),
            nl_reply_supported: nl_reply,
        };
        netlink::Nl::send_event(&global.nl, abi::TCMU_CMD_ADDED_DEVICE, &ev)?;
        *uio = Some(reg);
        Ok(())
    }

    fn destroy_device(dev: &Device<Self>) {
        let reg = dev.uio.lock().take();
        if let Some(reg) = reg {
            let ev = netlink::DevEvent {
                uio_name: reg.name(),
                minor: reg.minor(),
                dev_index: dev.index(),
                nl_reply_supported: dev.cfg.lock().nl_reply_supported,
            };
            // As in C, the handler's answer does not stop the removal.
            let _ = netlink::Nl::send_event(&dev.backend_data().nl, abi::TCMU_CMD_REMOVED_DEVICE, &ev);
            let ring = reg.data().clone();
            // Unregister first: no more completions or opens race with the teardown.
            drop(reg);
            ring.fail_all();
        }
    }

    fn set_params(dev: &Device<Self>, params: &[u8]) -> Result<usize> {
        let mut p = dev.cfg.lock();
        let enabled = dev.uio.lock().is_some();
        let res = params::set_params(&mut p, params, enabled, &LIMITS);
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
                pr_warn_ratelimited!("tcmu_rs: invalid control parameters\n");
                Err(Error::from_errno(e.to_errno()))
            }
        }
    }

    fn show_params(dev: &Device<Self>, f: &mut dyn core::fmt::Write) -> core::fmt::Result {
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
        if reg.data().queue(cmd)? {
            reg.notify();
        }
        Ok(())
    }
}

struct TcmuRs {
    _backend: target::Registration<User>,
}

impl kernel::Module for TcmuRs {
    fn init(module: &'static ThisModule) -> Result<Self> {
        let attrs = AttrList::passthrough(GFP_KERNEL)?;
        // The netlink family first: its name clashes with the C module's, so loading next to
        // it fails here, cleanly, before anything else is set up.
        let nl = kernel::genetlink::Registration::new(module, netlink::Nl::new()?)?;
        let root = RootDevice::new(c_str!("tcmu_rs"), module)?;
        let backend =
            target::Registration::<User>::new(module, Global { root, nl }, Some(attrs), None)?;
        pr_info!("TCMU in Rust loaded (ABI {})\n", abi::TCMU_VERSION);
        Ok(TcmuRs { _backend: backend })
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
    let mut cmds = KVVec::new();
    kernel::kunit_expect!(cmds.push(None, GFP_KERNEL).is_ok());
    kernel::kunit_expect_eq!(alloc_id(&mut cmds), Some(1));
    kernel::kunit_expect_eq!(alloc_id(&mut cmds), Some(1));
    kernel::kunit_expect_eq!(cmds.len(), 2);
}

fn kunit_ring_wraps_with_pad() {
    let Ok(fifo) = KVVec::from_elem(0, ring::fifo_capacity(1024), GFP_KERNEL) else {
        kernel::kunit_expect!(false, "alloc");
        return;
    };
    let Some(mut r) = CmdRing::new(1024, fifo) else {
        kernel::kunit_expect!(false, "ring");
        return;
    };
    kernel::kunit_expect!(r.reserve(1000, Opcode::Cmd).is_some());
    // Nothing reaped yet: no room for another entry.
    kernel::kunit_expect!(r.reserve(112, Opcode::Cmd).is_none());
}

kernel::kunit_tests!(
    tcmu_rs,
    [
        kunit_len_op_roundtrip,
        kunit_mailbox_layout,
        kunit_alloc_id_lowest_free,
        kunit_ring_wraps_with_pad
    ]
);
