// SPDX-License-Identifier: GPL-2.0

//! Completion: the reap of the entries the handler released, the completion of their commands
//! (in batches, after the ring lock is dropped), deferred Data-In copies, and the buffers
//! kept with `KEEP_BUF`.

use crate::abi;
use crate::blocks::BlockAlloc;
use crate::cmds::{CmdTable, INLINE_BLOCKS};
use crate::device::User;
use crate::error::BrokenRing;
use crate::fifo::Fifo;
use crate::params::CMDR_OFF;
use crate::response::{self, CompletionKind, RawCmdEntry, SlotKind};
use crate::ringstate::{Ring, RingState};
use crate::sense;
use crate::smallvec::SmallVec;
use crate::stats::Stats;
use core::sync::atomic::{fence, Ordering};
use kernel::{
    page::{Page, PageRef, PAGE_SIZE},
    pr_warn_ratelimited,
    prelude::*,
    sync::Arc,
    target::{self, DataDir, PendingCmd, SENSE_BUFFER_SIZE},
    timer::{current_cpu, ArcWork},
};

/// A command the handler finished, to complete once the ring lock is dropped.
pub(crate) struct Done {
    cmd: PendingCmd<User>,
    status: u8,
    /// The handler's `read_len`, if it reported one.
    len: Option<u32>,
}

impl Done {
    pub(crate) fn complete(self) {
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

/// The ring state a reap changes besides the command ring, which its reaper holds.
struct Reaping<'a> {
    blocks: &'a mut BlockAlloc<KVVec<u64>>,
    pages: &'a KVVec<Option<Page>>,
    cmds: &'a mut CmdTable,
    stats: &'a mut Stats,
    deferred: &'a mut Fifo<Deferred>,
    /// The handler's CPU (a hint): a copy is only deferred to another one.
    here: i32,
}

/// Whether a reap defers the copy of `len` bytes of Data-In to the CPU that submitted the
/// command: only for a large copy, while the ring is `busy`, and to an `other_cpu`.
fn defers(stats: &mut Stats, len: usize, busy: bool, other_cpu: bool) -> bool {
    if len < DEFER_COPY_MIN {
        false
    } else if !busy {
        stats.defer_idle += 1;
        false
    } else if !other_cpu {
        stats.defer_same_cpu += 1;
        false
    } else {
        true
    }
}

/// An empty slot of [`Finished`] (an array of a non-`Copy` type is built from a constant).
const NO_DONE: Option<Done> = None;

/// Completions a reap defers.
const REAP_BATCH: usize = 32;
/// Data-In bytes a reap copies before it completes its batch.
const REAP_COPY_BUDGET: usize = 64 * 1024;

impl Finished {
    fn new() -> Self {
        Self {
            items: [NO_DONE; REAP_BATCH],
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
pub(crate) struct Deferred {
    /// `None` once completed.
    pub(crate) done: Option<Done>,
    pub(crate) dbis: SmallVec<u32, INLINE_BLOCKS>,
    /// The pages of the Data-In, in order.
    pages: KVec<PageRef>,
    len: usize,
}

impl Deferred {
    pub(crate) fn copy(&self) {
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
/// copy then runs), and only while at least this many commands are on the ring: the hop adds
/// latency to each command, which only pays when enough others keep the handler busy meanwhile
/// (measured: 1 MiB reads at iodepth 8, 128 commands of 64 KiB, gained 29%; 64 KiB reads at
/// iodepth 8 lost 20%).
const DEFER_MIN_INFLIGHT: usize = 16;

impl Ring {
    /// Frees the blocks of a command completed with `KEEP_BUF` (`action/free_kept_buf`).
    /// Returns whether the handler must be woken up.
    pub(crate) fn free_kept_buf(self: &Arc<Self>, cmd_id: u16) -> Result<bool> {
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
    pub(crate) fn release_kept(self: &Arc<Self>) {
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

    /// Reaps the entries the handler released (up to `cmd_tail`) and completes their commands,
    /// then retries waiting commands. Returns whether new commands went on the ring.
    pub(crate) fn reap(self: &Arc<Self>) -> bool {
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
    ) -> Result<bool, BrokenRing> {
        let RingState {
            ring,
            blocks,
            pages,
            cmds,
            stats,
            deferred,
            ..
        } = st;
        let mut r = Reaping {
            blocks,
            pages,
            cmds,
            stats,
            deferred,
            here: current_cpu(),
        };
        let mut reaper = ring.begin_reap(tail).map_err(|_| BrokenRing::BadCmdTail)?;
        loop {
            let slot = match reaper.peek() {
                Ok(Some(slot)) => slot,
                Ok(None) => return Ok(false),
                Err(_) => return Err(BrokenRing::TailInsideEntry),
            };
            let off = CMDR_OFF as usize + slot.offset as usize;
            if let Some(raw) = self.read_cmd_entry(off, slot.len_op)? {
                self.reap_cmd(&mut r, &raw, slot.len_op, off, done)?;
            }
            reaper.consume().map_err(|_| BrokenRing::Bookkeeping)?;
            if done.is_full() {
                return Ok(reaper.remaining() > 0);
            }
        }
    }

    /// The handler's response in the entry at `off`, whose header the driver wrote as
    /// `len_op`; `None` for a PAD. Each field is read once.
    fn read_cmd_entry(&self, off: usize, len_op: u32) -> Result<Option<RawCmdEntry>, BrokenRing> {
        let area = &self.area;
        let found = area
            .read_u32(off + abi::HDR_LEN_OP_OFFSET)
            .ok_or(BrokenRing::Unreadable)?;
        let kind = response::check_len_op(len_op, found).map_err(|_| BrokenRing::HeaderChanged)?;
        if kind != SlotKind::Cmd {
            return Ok(None);
        }
        let u8_at = |field: usize| area.read_u8(off + field).ok_or(BrokenRing::Unreadable);
        Ok(Some(RawCmdEntry {
            len_op: found,
            cmd_id: area
                .read_u16(off + abi::HDR_CMD_ID_OFFSET)
                .ok_or(BrokenRing::Unreadable)?,
            uflags: u8_at(abi::HDR_UFLAGS_OFFSET)?,
            scsi_status: u8_at(abi::RSP_SCSI_STATUS_OFFSET)?,
            read_len: area
                .read_u32(off + abi::RSP_READ_LEN_OFFSET)
                .ok_or(BrokenRing::Unreadable)?,
        }))
    }

    /// Takes the completion `raw` (of the entry at `off`) of a command in flight: its
    /// command completes (now, in `done`, or after a deferred copy) unless it timed out
    /// before, and its blocks are freed, kept (`KEEP_BUF`) or freed after the copy.
    fn reap_cmd(
        &self,
        r: &mut Reaping<'_>,
        raw: &RawCmdEntry,
        len_op: u32,
        off: usize,
        done: &mut Finished,
    ) -> Result<(), BrokenRing> {
        let hdr = response::decode_header(raw, len_op).map_err(|_| BrokenRing::BadEntry)?;
        let busy = r.cmds.len() >= DEFER_MIN_INFLIGHT;
        let inf = r.cmds.get_mut(hdr.cmd_id).ok_or(BrokenRing::UnknownCmdId)?;
        if inf.kept {
            return Err(BrokenRing::KeptTwice);
        }
        // A command that timed out was failed already: its late completion only releases the
        // entry (and the blocks, unless kept).
        let mut later = None;
        if let Some(cmd) = inf.cmd.take() {
            r.stats.completed += 1;
            let kind = response::decode_status(raw, &inf.info);
            let refs = match &kind {
                CompletionKind::Status(s)
                    if !hdr.keep_buf && cmd.direction() == DataDir::FromDevice =>
                {
                    let len = s.gather_len.map_or(0, |l| l as usize);
                    if defers(r.stats, len, busy, cmd.cpu() != r.here) {
                        self.page_refs(r.pages, &inf.dbis, len).map(|p| (p, len))
                    } else {
                        None
                    }
                }
                _ => None,
            };
            let copy_from = refs.is_none().then_some((&inf.dbis[..], inf.n_first));
            let (d, copied) = self.finish(r.pages, cmd, kind, off, copy_from);
            match refs {
                None => done.push(d, copied),
                Some((pages, len)) => later = Some((d, pages, len)),
            }
        }
        if let Some((d, refs, len)) = later {
            // Its blocks stay allocated until the copy is done.
            let inf = r.cmds.remove(hdr.cmd_id).ok_or(BrokenRing::CmdTable)?;
            let def = Deferred {
                done: Some(d),
                dbis: inf.dbis,
                pages: refs,
                len,
            };
            match r.deferred.try_push(def) {
                Ok(()) => r.stats.deferred += 1,
                Err(mut def) => {
                    def.copy();
                    r.blocks.free(&def.dbis);
                    if let Some(d) = def.done.take() {
                        done.push(d, len);
                    }
                }
            }
        } else if hdr.keep_buf {
            inf.kept = true;
            inf.deadline = None;
        } else if let Some(inf) = r.cmds.remove(hdr.cmd_id) {
            r.blocks.free(&inf.dbis);
        }
        Ok(())
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

    /// Runs the deferred Data-In copies (from `work`): each is copied without the ring lock,
    /// then completed, and its blocks freed; commands waiting for space are then retried.
    /// One batch, all that is there: copies deferred meanwhile schedule the work again (the
    /// reap does when it finds none waiting), and the expiry it also runs is not put off.
    pub(crate) fn copy_deferred(self: &Arc<Self>) {
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
    /// finished: sense and Data-In are copied now (the Data-In from `copy_from`, its blocks
    /// and how many of them are the first ones, unless the copy is deferred), the completion
    /// itself is returned, to be made once the ring lock is dropped, with the number of Data-In
    /// bytes.
    fn finish(
        &self,
        pages: &KVVec<Option<Page>>,
        mut cmd: PendingCmd<User>,
        kind: CompletionKind,
        off: usize,
        copy_from: Option<(&[u32], usize)>,
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
        if let Some((dbis, n_first)) = copy_from.filter(|_| copied > 0) {
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
}
