// SPDX-License-Identifier: GPL-2.0

//! The handler's side of the command ring.
//!
//! The kernel advances `cmd_head` after writing entries; [`Ring`] decodes
//! entries from its own read position up to the head ([`Ring::next_entry`])
//! and keeps a local list of the slots between `cmd_tail` and the read
//! position. [`Ring::complete`] writes a response into the oldest command
//! slot (the slot at the tail once PAD, TMR and unknown entries are
//! skipped), stores the completed command's id in it (out-of-order
//! completion: the kernel looks commands up by the id found in the slot),
//! and advances `cmd_tail`. Nothing is re-read from the ring after
//! decoding, so a misbehaving writer cannot make the completion logic
//! write outside the slots it validated.
//!
//! Notifying the kernel (a 4-byte write to the UIO device) is left to the
//! caller, see [`Ring::take_tail_moved`] and [`crate::uio::UioDevice`].

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{fence, Ordering};

use tcmu_abi as abi;

use crate::entry::{decode, Entry, Geometry, IoVec, RingError};
use crate::mem::Region;
use crate::pos;

/// SCSI status GOOD.
pub const SAM_STAT_GOOD: u8 = 0x00;
/// SCSI status CHECK CONDITION.
pub const SAM_STAT_CHECK_CONDITION: u8 = 0x02;

/// The response to a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Response<'a> {
    /// SCSI status.
    pub status: u8,
    /// Sense data (truncated to [`abi::TCMU_SENSE_BUFFERSIZE`] bytes).
    pub sense: &'a [u8],
    /// Number of Data-In bytes actually produced, reported with
    /// [`abi::TCMU_UFLAG_READ_LEN`] when the kernel supports it (the kernel
    /// ignores 0, meaning "all of the buffer").
    pub read_len: Option<u32>,
}

impl Response<'static> {
    /// GOOD status, full data length.
    pub const GOOD: Response<'static> = Response {
        status: SAM_STAT_GOOD,
        sense: &[],
        read_len: None,
    };
}

impl<'a> Response<'a> {
    /// CHECK CONDITION with the given sense data.
    pub fn check_condition(sense: &'a [u8]) -> Self {
        Response {
            status: SAM_STAT_CHECK_CONDITION,
            sense,
            read_len: None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// A command slot with the id the kernel wrote into it.
    Cmd(u16),
    /// PAD or TMR: skipped by the tail.
    Skip,
    /// Unknown opcode: flagged with UNKNOWN_OP, then skipped.
    Unknown,
}

#[derive(Clone, Copy, Debug)]
struct Slot {
    pos: u32,
    len: u32,
    kind: Kind,
}

/// The handler's view of a TCMU command ring in a shared memory region.
#[derive(Debug)]
pub struct Ring {
    mem: Region,
    geo: Geometry,
    /// Our copy of `cmd_tail`.
    tail: u32,
    /// Ring position of the next entry to decode.
    next: u32,
    /// Decoded slots between `tail` and `next`.
    slots: VecDeque<Slot>,
    /// Ids of decoded, not yet completed commands.
    inflight: HashSet<u16>,
    broken: Option<RingError>,
    tail_moved: bool,
}

impl Ring {
    /// Validates the mailbox at the start of `mem` and attaches to the ring.
    /// Entries already between `cmd_tail` and `cmd_head` (left by a previous
    /// handler) are returned by [`Ring::next_entry`] like new ones.
    pub fn new(mem: Region) -> Result<Self, RingError> {
        let geo = Self::read_geometry(&mem)?;
        let mut ring = Ring {
            mem,
            geo,
            tail: 0,
            next: 0,
            slots: VecDeque::new(),
            inflight: HashSet::new(),
            broken: None,
            tail_moved: false,
        };
        ring.resync()?;
        Ok(ring)
    }

    fn read_geometry(mem: &Region) -> Result<Geometry, RingError> {
        let bad = |s: String| RingError::BadMailbox(s);
        if mem.len() < abi::MAILBOX_SIZE {
            return Err(bad(format!(
                "region of {} bytes is smaller than the mailbox",
                mem.len()
            )));
        }
        let version = mem.read_u16(abi::MAILBOX_VERSION_OFFSET as u64)?;
        if version != abi::TCMU_MAILBOX_VERSION {
            return Err(bad(format!(
                "version {version}, expected {}",
                abi::TCMU_MAILBOX_VERSION
            )));
        }
        let flags = mem.read_u16(abi::MAILBOX_FLAGS_OFFSET as u64)?;
        let cmdr_off = mem.read_u32(abi::MAILBOX_CMDR_OFF_OFFSET as u64)?;
        let cmdr_size = mem.read_u32(abi::MAILBOX_CMDR_SIZE_OFFSET as u64)?;
        let align = abi::TCMU_OP_ALIGN_SIZE as u32;
        if (cmdr_off as usize) < abi::MAILBOX_SIZE || cmdr_off % align != 0 {
            return Err(bad(format!("cmdr_off {cmdr_off:#x}")));
        }
        if (cmdr_size as usize) < 2 * abi::CMD_ENTRY_SIZE || cmdr_size % align != 0 {
            return Err(bad(format!("cmdr_size {cmdr_size:#x}")));
        }
        if cmdr_off as u64 + cmdr_size as u64 > mem.len() as u64 {
            return Err(bad(format!(
                "ring {cmdr_off:#x}+{cmdr_size:#x} does not fit in the {:#x}-byte region",
                mem.len()
            )));
        }
        Ok(Geometry {
            cmdr_off,
            cmdr_size,
            map_len: mem.len() as u64,
            flags,
        })
    }

    /// Forgets all local state and restarts from the mailbox's `cmd_tail`
    /// (after a [`RingError::Reset`], e.g. the `reset_ring` configfs
    /// action). Commands in flight are forgotten: the kernel has already
    /// failed them.
    pub fn resync(&mut self) -> Result<(), RingError> {
        let tail = self.mem.read_u32(abi::MAILBOX_CMD_TAIL_OFFSET as u64)?;
        if !pos::valid_pos(tail, self.geo.cmdr_size) {
            return Err(RingError::BadMailbox(format!("cmd_tail {tail:#x}")));
        }
        self.read_head()?;
        self.tail = tail;
        self.next = tail;
        self.slots.clear();
        self.inflight.clear();
        self.broken = None;
        Ok(())
    }

    /// The ring layout read from the mailbox.
    pub fn geometry(&self) -> &Geometry {
        &self.geo
    }

    /// The underlying region.
    pub fn region(&self) -> &Region {
        &self.mem
    }

    /// The underlying region, mutably (used by [`crate::fake::FakeKernel`]
    /// to play the kernel's part in tests).
    pub fn region_mut(&mut self) -> &mut Region {
        &mut self.mem
    }

    /// Our `cmd_tail`.
    pub fn tail(&self) -> u32 {
        self.tail
    }

    /// Number of decoded commands not completed yet.
    pub fn inflight(&self) -> usize {
        self.inflight.len()
    }

    /// Whether command `cmd_id` is decoded and not completed yet.
    pub fn is_inflight(&self, cmd_id: u16) -> bool {
        self.inflight.contains(&cmd_id)
    }

    /// The error that made the ring unusable for reading, if any.
    pub fn broken(&self) -> Option<&RingError> {
        self.broken.as_ref()
    }

    /// Reads and validates `cmd_head`, with acquire ordering for the
    /// entries the kernel wrote before it.
    pub fn read_head(&self) -> Result<u32, RingError> {
        let head = self.mem.read_u32(abi::MAILBOX_CMD_HEAD_OFFSET as u64)?;
        fence(Ordering::Acquire);
        if !pos::valid_pos(head, self.geo.cmdr_size) {
            return Err(RingError::BadHead {
                head,
                size: self.geo.cmdr_size,
            });
        }
        Ok(head)
    }

    fn check_tail(&self) -> Result<(), RingError> {
        let found = self.mem.read_u32(abi::MAILBOX_CMD_TAIL_OFFSET as u64)?;
        if found != self.tail {
            return Err(RingError::Reset {
                ours: self.tail,
                found,
            });
        }
        Ok(())
    }

    fn fail(&mut self, e: RingError) -> RingError {
        self.broken = Some(e.clone());
        e
    }

    /// Whether entries the handler has not seen yet are on the ring.
    pub fn has_new_entries(&self) -> Result<bool, RingError> {
        Ok(self.read_head()? != self.next)
    }

    /// Decodes the next new entry, or returns `None` when the read position
    /// reached `cmd_head`. PAD entries are skipped. A malformed entry or
    /// head breaks the ring: the error is returned, and
    /// [`RingError::Broken`] on later calls (completions still work).
    pub fn next_entry(&mut self) -> Result<Option<Entry>, RingError> {
        if let Some(e) = &self.broken {
            return Err(RingError::Broken(e.to_string()));
        }
        self.check_tail()?;
        let head = self.read_head().map_err(|e| self.fail(e))?;
        let size = self.geo.cmdr_size;
        while self.next != head {
            let avail = pos::distance(self.next, head, size);
            let dec = decode(&self.mem, &self.geo, self.next, avail).map_err(|e| self.fail(e))?;
            let at = self.next;
            let kind = match &dec.entry {
                Some(Entry::Cmd(c)) => {
                    if !self.inflight.insert(c.cmd_id) {
                        return Err(self.fail(RingError::DuplicateCmdId(c.cmd_id)));
                    }
                    Kind::Cmd(c.cmd_id)
                }
                Some(Entry::Unknown { .. }) => Kind::Unknown,
                Some(Entry::Tmr(_)) | None => Kind::Skip,
            };
            self.slots.push_back(Slot {
                pos: at,
                len: dec.len,
                kind,
            });
            self.next = pos::advance(at, dec.len, size);
            self.retire()?;
            if dec.entry.is_some() {
                return Ok(dec.entry);
            }
        }
        Ok(None)
    }

    /// Iterates over the new entries (see [`Ring::next_entry`]); stops
    /// after the first error.
    pub fn entries(&mut self) -> Entries<'_> {
        Entries {
            ring: self,
            done: false,
        }
    }

    /// Moves the tail over leading non-command slots; publishes the tail
    /// if it moved.
    fn retire(&mut self) -> Result<(), RingError> {
        let mut moved = false;
        while let Some(slot) = self.slots.front().copied() {
            match slot.kind {
                Kind::Cmd(_) => break,
                Kind::Unknown => {
                    let at = self.geo.ring_addr(slot.pos) + abi::HDR_UFLAGS_OFFSET as u64;
                    let uflags = self.mem.read_u8(at)?;
                    self.mem.write_u8(at, uflags | abi::TCMU_UFLAG_UNKNOWN_OP)?;
                }
                Kind::Skip => {}
            }
            self.tail = pos::advance(self.tail, slot.len, self.geo.cmdr_size);
            self.slots.pop_front();
            moved = true;
        }
        if moved {
            self.publish_tail()?;
        }
        Ok(())
    }

    fn publish_tail(&mut self) -> Result<(), RingError> {
        fence(Ordering::Release);
        self.mem
            .write_u32(abi::MAILBOX_CMD_TAIL_OFFSET as u64, self.tail)?;
        self.tail_moved = true;
        Ok(())
    }

    /// Returns whether the tail moved since the last call, i.e. whether the
    /// kernel must be notified.
    pub fn take_tail_moved(&mut self) -> bool {
        std::mem::take(&mut self.tail_moved)
    }

    /// Completes command `cmd_id` with `rsp`.
    pub fn complete(&mut self, cmd_id: u16, rsp: &Response<'_>) -> Result<(), RingError> {
        let mut uflags = 0;
        let mut read_len = 0;
        if let Some(n) = rsp.read_len {
            if self.geo.cap_read_len() {
                uflags |= abi::TCMU_UFLAG_READ_LEN;
                read_len = n;
            }
        }
        self.finish(cmd_id, uflags, rsp.status, rsp.sense, read_len)
    }

    /// Completes command `cmd_id` with [`abi::TCMU_UFLAG_UNKNOWN_OP`]: the
    /// kernel fails it with CHECK CONDITION.
    pub fn complete_unknown_op(&mut self, cmd_id: u16) -> Result<(), RingError> {
        self.finish(
            cmd_id,
            abi::TCMU_UFLAG_UNKNOWN_OP,
            SAM_STAT_CHECK_CONDITION,
            &[],
            0,
        )
    }

    fn finish(
        &mut self,
        cmd_id: u16,
        uflags: u8,
        status: u8,
        sense: &[u8],
        read_len: u32,
    ) -> Result<(), RingError> {
        if !self.inflight.contains(&cmd_id) {
            return Err(RingError::UnknownCmdId(cmd_id));
        }
        self.check_tail()?;
        self.retire()?;
        let slot = match self.slots.front() {
            Some(s) => *s,
            None => {
                return Err(RingError::Broken(
                    "no command slot for an in-flight command".into(),
                ))
            }
        };
        let Kind::Cmd(oldest) = slot.kind else {
            return Err(RingError::Broken("tail slot is not a command".into()));
        };
        if oldest != cmd_id && !self.geo.cap_oooc() {
            return Err(RingError::OutOfOrder { cmd_id, oldest });
        }
        let b = self.geo.ring_addr(slot.pos);
        let m = &mut self.mem;
        m.write_u16(b + abi::HDR_CMD_ID_OFFSET as u64, cmd_id)?;
        m.write_u8(b + abi::HDR_UFLAGS_OFFSET as u64, uflags)?;
        m.write_u8(b + abi::RSP_SCSI_STATUS_OFFSET as u64, status)?;
        m.write_u8(b + abi::RSP_SCSI_STATUS_OFFSET as u64 + 1, 0)?;
        m.write_u16(b + abi::RSP_SCSI_STATUS_OFFSET as u64 + 2, 0)?;
        m.write_u32(b + abi::RSP_READ_LEN_OFFSET as u64, read_len)?;
        let n = sense.len().min(abi::TCMU_SENSE_BUFFERSIZE);
        let sb = b + abi::RSP_SENSE_BUFFER_OFFSET as u64;
        m.write_bytes(sb, &sense[..n])?;
        m.fill(sb + n as u64, (abi::TCMU_SENSE_BUFFERSIZE - n) as u64, 0)?;
        self.slots.pop_front();
        self.inflight.remove(&cmd_id);
        self.tail = pos::advance(self.tail, slot.len, self.geo.cmdr_size);
        // Also skip the PAD/TMR entries that follow, and publish.
        self.retire()?;
        self.publish_tail()
    }

    fn check_iov(&self, iov: &IoVec) -> Result<(), RingError> {
        let end = iov.off().checked_add(iov.len());
        if iov.off() < self.geo.data_off() || end.is_none_or(|e| e > self.geo.map_len) {
            return Err(RingError::Broken(format!(
                "iovec {iov:?} is not in this ring's data area"
            )));
        }
        Ok(())
    }

    /// The bytes of a data buffer.
    pub fn data(&self, iov: &IoVec) -> Result<&[u8], RingError> {
        self.check_iov(iov)?;
        Ok(self.mem.slice(iov.off(), iov.len())?)
    }

    /// The bytes of a data buffer, mutably.
    pub fn data_mut(&mut self, iov: &IoVec) -> Result<&mut [u8], RingError> {
        self.check_iov(iov)?;
        Ok(self.mem.slice_mut(iov.off(), iov.len())?)
    }

    /// Copies `src` into the buffers `iovs`, in order; returns the number of
    /// bytes copied (less than `src.len()` if the buffers are shorter).
    pub fn copy_to_iovs(&mut self, iovs: &[IoVec], src: &[u8]) -> Result<usize, RingError> {
        let mut done = 0;
        for iov in iovs {
            if done == src.len() {
                break;
            }
            let dst = self.data_mut(iov)?;
            let n = dst.len().min(src.len() - done);
            dst[..n].copy_from_slice(&src[done..done + n]);
            done += n;
        }
        Ok(done)
    }

    /// Copies the buffers `iovs` into `dst`, in order; returns the number of
    /// bytes copied.
    pub fn copy_from_iovs(&self, iovs: &[IoVec], dst: &mut [u8]) -> Result<usize, RingError> {
        let mut done = 0;
        for iov in iovs {
            if done == dst.len() {
                break;
            }
            let src = self.data(iov)?;
            let n = src.len().min(dst.len() - done);
            dst[done..done + n].copy_from_slice(&src[..n]);
            done += n;
        }
        Ok(done)
    }

    /// Zeroes the buffers `iovs` from byte `from` (counted over all of
    /// them) to their end.
    pub fn zero_iovs(&mut self, iovs: &[IoVec], from: u64) -> Result<(), RingError> {
        let mut at = 0u64;
        for iov in iovs {
            let end = at + iov.len();
            if end > from {
                let skip = from.saturating_sub(at) as usize;
                self.data_mut(iov)?[skip..].fill(0);
            }
            at = end;
        }
        Ok(())
    }
}

/// Iterator over new entries, see [`Ring::entries`].
pub struct Entries<'a> {
    ring: &'a mut Ring,
    done: bool,
}

impl Iterator for Entries<'_> {
    type Item = Result<Entry, RingError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.ring.next_entry() {
            Ok(Some(e)) => Some(Ok(e)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}
