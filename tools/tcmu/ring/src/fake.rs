// SPDX-License-Identifier: GPL-2.0

//! An in-memory stand-in for the kernel side of the ring, for tests.
//!
//! [`FakeKernel`] drives a [`Region`] the way `target_core_user.c` does:
//! it initialises the mailbox like `tcmu_configure_device`, queues command
//! entries like `queue_cmd_ring` (ring space check with one byte kept free,
//! PAD entry when the entry does not fit before the end of the ring,
//! data area blocks with contiguous blocks merged into one iovec, CDB after
//! the iovecs, `cmd_head` update), queues TMR entries like `queue_tmr_ring`,
//! and reaps completions like `tcmu_handle_completions` (PAD and TMR
//! skipped, commands looked up by the id found in the slot, Data-In copied
//! out honouring `READ_LEN`).

use std::collections::HashMap;
use std::fmt;

use tcmu_abi as abi;

use crate::entry::scsi_command_size;
use crate::mem::Region;
use crate::pos;

/// Why the fake kernel refused to queue something or to reap.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FakeError {
    /// Not enough ring or data area space (the real kernel would queue the
    /// command internally until completions free space).
    Full,
    /// The command can never fit (`command_size > cmdr_size / 2` or the data
    /// area is too small).
    TooBig,
    /// The handler broke the protocol (the kernel would mark the ring
    /// broken).
    Broken(String),
}

impl fmt::Display for FakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?}")
    }
}

impl std::error::Error for FakeError {}

/// A completion reaped by [`FakeKernel::reap`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Completion {
    /// Id of the completed command.
    pub cmd_id: u16,
    /// SCSI status (CHECK CONDITION for UNKNOWN_OP, like the kernel).
    pub status: u8,
    /// Sense buffer as written by the handler.
    pub sense: Vec<u8>,
    /// `rsp.read_len` if `TCMU_UFLAG_READ_LEN` was set.
    pub read_len: Option<u32>,
    /// Whether `TCMU_UFLAG_UNKNOWN_OP` was set.
    pub unknown_op: bool,
    /// Data-In bytes as the kernel would gather them (`min(read_len,
    /// data_in_len)` when READ_LEN is valid, else `data_in_len`).
    pub data_in: Vec<u8>,
}

#[derive(Debug)]
struct InFlight {
    blocks: Vec<usize>,
    /// Data-In iovecs (offset, length).
    data_in: Vec<(u64, u64)>,
    data_in_len: usize,
}

/// The kernel side of a ring in a [`Region`], for tests.
#[derive(Debug)]
pub struct FakeKernel {
    cmdr_off: u32,
    cmdr_size: u32,
    data_off: u64,
    blk_size: usize,
    blocks: Vec<bool>,
    head: u32,
    last_cleaned: u32,
    next_id: u16,
    inflight: HashMap<u16, InFlight>,
    /// Byte written into Data-In buffers before queueing (the real kernel
    /// leaves stale data there).
    pub stale_byte: u8,
}

impl FakeKernel {
    /// Creates a region with a mailbox (`flags`), a ring of `cmdr_size`
    /// bytes and a data area of `nblocks` blocks of `blk_size` bytes.
    pub fn new(cmdr_size: u32, blk_size: usize, nblocks: usize, flags: u16) -> (Self, Region) {
        assert!(cmdr_size.is_multiple_of(8) && blk_size > 0);
        let cmdr_off = abi::MAILBOX_SIZE as u32;
        let data_off = (cmdr_off as u64 + cmdr_size as u64).next_multiple_of(8);
        let mut mem = Region::new_zeroed(data_off as usize + blk_size * nblocks);
        mem.write_u16(
            abi::MAILBOX_VERSION_OFFSET as u64,
            abi::TCMU_MAILBOX_VERSION,
        )
        .unwrap();
        mem.write_u16(abi::MAILBOX_FLAGS_OFFSET as u64, flags)
            .unwrap();
        mem.write_u32(abi::MAILBOX_CMDR_OFF_OFFSET as u64, cmdr_off)
            .unwrap();
        mem.write_u32(abi::MAILBOX_CMDR_SIZE_OFFSET as u64, cmdr_size)
            .unwrap();
        let k = FakeKernel {
            cmdr_off,
            cmdr_size,
            data_off,
            blk_size,
            blocks: vec![false; nblocks],
            head: 0,
            last_cleaned: 0,
            next_id: 1,
            inflight: HashMap::new(),
            stale_byte: 0xa5,
        };
        (k, mem)
    }

    /// The kernel's `cmd_head`.
    pub fn head(&self) -> u32 {
        self.head
    }

    /// The kernel's `cmdr_last_cleaned`.
    pub fn last_cleaned(&self) -> u32 {
        self.last_cleaned
    }

    /// Number of queued, not yet reaped commands.
    pub fn inflight(&self) -> usize {
        self.inflight.len()
    }

    /// Sets `cmd_head`/`cmd_tail`/`last_cleaned` to `at` on an idle ring,
    /// to test wrap-around from any position.
    pub fn set_positions(&mut self, mem: &mut Region, at: u32) {
        assert!(self.inflight.is_empty() && pos::valid_pos(at, self.cmdr_size));
        self.head = at;
        self.last_cleaned = at;
        mem.write_u32(abi::MAILBOX_CMD_HEAD_OFFSET as u64, at)
            .unwrap();
        mem.write_u32(abi::MAILBOX_CMD_TAIL_OFFSET as u64, at)
            .unwrap();
    }

    fn ring_addr(&self, p: u32) -> u64 {
        self.cmdr_off as u64 + p as u64
    }

    /// `is_ring_space_avail` + `ring_insert_padding`: returns the position
    /// of a contiguous `size`-byte entry.
    fn reserve(&mut self, mem: &mut Region, size: u32) -> Result<u32, FakeError> {
        if size > self.cmdr_size / 2 {
            return Err(FakeError::TooBig);
        }
        let to_end = pos::to_end(self.head, self.cmdr_size);
        let needed = if to_end >= size { size } else { size + to_end };
        if pos::free_space(self.head, self.last_cleaned, self.cmdr_size) < needed {
            return Err(FakeError::Full);
        }
        if to_end < size {
            let a = self.ring_addr(self.head);
            mem.write_u32(a, abi::hdr_len_op(to_end, abi::Opcode::Pad))
                .unwrap();
            mem.write_u16(a + 4, 0).unwrap();
            mem.write_u8(a + 6, 0).unwrap();
            mem.write_u8(a + 7, 0).unwrap();
            self.set_head(mem, pos::advance(self.head, to_end, self.cmdr_size));
            assert_eq!(self.head, 0);
        }
        Ok(self.head)
    }

    fn set_head(&mut self, mem: &mut Region, head: u32) {
        self.head = head;
        mem.write_u32(abi::MAILBOX_CMD_HEAD_OFFSET as u64, head)
            .unwrap();
    }

    fn alloc_blocks(&mut self, n: usize) -> Result<Vec<usize>, FakeError> {
        if n > self.blocks.len() {
            return Err(FakeError::TooBig);
        }
        let free: Vec<usize> = (0..self.blocks.len())
            .filter(|&i| !self.blocks[i])
            .take(n)
            .collect();
        if free.len() < n {
            return Err(FakeError::Full);
        }
        for &i in &free {
            self.blocks[i] = true;
        }
        Ok(free)
    }

    /// Iovecs covering `len` bytes of `blocks`, merging contiguous blocks
    /// (`new_block_to_iov`).
    fn iovs_for(&self, blocks: &[usize], mut len: usize) -> Vec<(u64, u64)> {
        let mut iovs: Vec<(u64, u64)> = Vec::new();
        let mut prev: Option<usize> = None;
        for &b in blocks {
            if len == 0 {
                break;
            }
            let n = len.min(self.blk_size) as u64;
            let off = self.data_off + (b * self.blk_size) as u64;
            match (prev, iovs.last_mut()) {
                (Some(p), Some(last)) if p + 1 == b => last.1 += n,
                _ => iovs.push((off, n)),
            }
            prev = Some(b);
            len -= n as usize;
        }
        iovs
    }

    fn alloc_id(&mut self) -> u16 {
        loop {
            let id = self.next_id;
            self.next_id = if id == u16::MAX { 1 } else { id + 1 };
            if !self.inflight.contains_key(&id) {
                return id;
            }
        }
    }

    /// Queues a SCSI command (`queue_cmd_ring`): `data_out` is copied into
    /// the data area; `data_in_len` bytes of Data-In buffers follow it
    /// (bidirectional if both are non-empty). Returns the command id.
    pub fn queue_cmd(
        &mut self,
        mem: &mut Region,
        cdb: &[u8],
        data_out: &[u8],
        data_in_len: usize,
    ) -> Result<u16, FakeError> {
        let cdb_len = scsi_command_size(cdb[0], cdb.get(7).copied().unwrap_or(0));
        assert!(cdb.len() >= cdb_len, "CDB shorter than its opcode implies");
        let bs = self.blk_size;
        let n_out = data_out.len().div_ceil(bs);
        let n_in = data_in_len.div_ceil(bs);
        if n_out + n_in > self.blocks.len() {
            return Err(FakeError::TooBig);
        }
        // Check ring space before taking blocks (iovec count is at most the
        // block count).
        let blocks = self.alloc_blocks(n_out + n_in)?;
        let out_iovs = self.iovs_for(&blocks[..n_out], data_out.len());
        let in_iovs = self.iovs_for(&blocks[n_out..], data_in_len);
        let bidi = !data_out.is_empty() && data_in_len > 0;
        let iov_cnt = out_iovs.len() + in_iovs.len();
        let base = abi::cmd_entry_base_size(iov_cnt).unwrap();
        let size = (base + abi::op_align(cdb_len).unwrap()) as u32;
        let at = match self.reserve(mem, size) {
            Ok(at) => at,
            Err(e) => {
                for b in blocks {
                    self.blocks[b] = false;
                }
                return Err(e);
            }
        };
        let id = self.alloc_id();
        let a = self.ring_addr(at);
        mem.fill(a, size as u64, 0).unwrap();
        // Data-Out into the data area, stale bytes into the Data-In buffers.
        let mut done = 0;
        for &(o, l) in &out_iovs {
            mem.write_bytes(o, &data_out[done..done + l as usize])
                .unwrap();
            done += l as usize;
        }
        for &(o, l) in &in_iovs {
            mem.fill(o, l, self.stale_byte).unwrap();
        }
        let (cnt, bidi_cnt) = if bidi {
            (out_iovs.len(), in_iovs.len())
        } else {
            (iov_cnt, 0)
        };
        mem.write_u32(a + abi::REQ_IOV_CNT_OFFSET as u64, cnt as u32)
            .unwrap();
        mem.write_u32(a + abi::REQ_IOV_BIDI_CNT_OFFSET as u64, bidi_cnt as u32)
            .unwrap();
        for (i, &(o, l)) in out_iovs.iter().chain(in_iovs.iter()).enumerate() {
            let ia = a + (abi::REQ_IOV_OFFSET + i * abi::IOVEC_SIZE) as u64;
            mem.write_u64(ia, o).unwrap();
            mem.write_u64(ia + 8, l).unwrap();
        }
        mem.write_u16(a + abi::HDR_CMD_ID_OFFSET as u64, id)
            .unwrap();
        mem.write_u32(a, abi::hdr_len_op(size, abi::Opcode::Cmd))
            .unwrap();
        let cdb_off = a + base as u64;
        mem.write_bytes(cdb_off, &cdb[..cdb_len]).unwrap();
        mem.write_u64(a + abi::REQ_CDB_OFF_OFFSET as u64, cdb_off)
            .unwrap();
        self.set_head(mem, pos::advance(at, size, self.cmdr_size));
        self.inflight.insert(
            id,
            InFlight {
                blocks,
                data_in: in_iovs,
                data_in_len,
            },
        );
        Ok(id)
    }

    /// Queues a TMR notification (`queue_tmr_ring`).
    pub fn queue_tmr(
        &mut self,
        mem: &mut Region,
        tmr_type: u8,
        cmd_ids: &[u16],
    ) -> Result<(), FakeError> {
        let size = abi::op_align(abi::tmr_entry_base_size(cmd_ids.len()).unwrap()).unwrap() as u32;
        let at = self.reserve(mem, size)?;
        let a = self.ring_addr(at);
        mem.fill(a, size as u64, 0).unwrap();
        mem.write_u32(a, abi::hdr_len_op(size, abi::Opcode::Tmr))
            .unwrap();
        mem.write_u8(a + abi::TMR_TMR_TYPE_OFFSET as u64, tmr_type)
            .unwrap();
        mem.write_u32(a + abi::TMR_CMD_CNT_OFFSET as u64, cmd_ids.len() as u32)
            .unwrap();
        for (i, id) in cmd_ids.iter().enumerate() {
            mem.write_u16(a + (abi::TMR_CMD_IDS_OFFSET + 2 * i) as u64, *id)
                .unwrap();
        }
        self.set_head(mem, pos::advance(at, size, self.cmdr_size));
        Ok(())
    }

    /// Queues a raw entry of `len` bytes with opcode bits `op`, for tests of
    /// unknown opcodes.
    pub fn queue_raw(&mut self, mem: &mut Region, op: u32, len: u32) -> Result<(), FakeError> {
        let at = self.reserve(mem, len)?;
        let a = self.ring_addr(at);
        mem.fill(a, len as u64, 0).unwrap();
        mem.write_u32(a, (len & !abi::TCMU_OP_MASK) | (op & abi::TCMU_OP_MASK))
            .unwrap();
        self.set_head(mem, pos::advance(at, len, self.cmdr_size));
        Ok(())
    }

    /// Reaps completions up to `cmd_tail` (`tcmu_handle_completions`).
    pub fn reap(&mut self, mem: &mut Region) -> Result<Vec<Completion>, FakeError> {
        let tail = mem.read_u32(abi::MAILBOX_CMD_TAIL_OFFSET as u64).unwrap();
        if !pos::valid_pos(tail, self.cmdr_size) {
            return Err(FakeError::Broken(format!("cmd_tail {tail:#x}")));
        }
        if pos::distance(self.last_cleaned, tail, self.cmdr_size)
            > pos::distance(self.last_cleaned, self.head, self.cmdr_size)
        {
            return Err(FakeError::Broken(format!(
                "cmd_tail {tail:#x} is past cmd_head"
            )));
        }
        let mut out = Vec::new();
        while self.last_cleaned != tail {
            let a = self.ring_addr(self.last_cleaned);
            let len_op = mem.read_u32(a).unwrap();
            let len = abi::hdr_get_len(len_op);
            if len == 0 || len > pos::distance(self.last_cleaned, tail, self.cmdr_size) {
                return Err(FakeError::Broken(format!(
                    "cmd_tail {tail:#x} is not at an entry boundary"
                )));
            }
            match abi::hdr_get_op(len_op) {
                abi::TCMU_OP_PAD | abi::TCMU_OP_TMR => {}
                abi::TCMU_OP_CMD => {
                    let id = mem.read_u16(a + abi::HDR_CMD_ID_OFFSET as u64).unwrap();
                    let uflags = mem.read_u8(a + abi::HDR_UFLAGS_OFFSET as u64).unwrap();
                    let Some(cmd) = self.inflight.remove(&id) else {
                        return Err(FakeError::Broken(format!(
                            "cmd_id {id} not found, ring is broken"
                        )));
                    };
                    let status = mem.read_u8(a + abi::RSP_SCSI_STATUS_OFFSET as u64).unwrap();
                    let rl = mem.read_u32(a + abi::RSP_READ_LEN_OFFSET as u64).unwrap();
                    let mut sense = vec![0u8; abi::TCMU_SENSE_BUFFERSIZE];
                    mem.read_bytes(a + abi::RSP_SENSE_BUFFER_OFFSET as u64, &mut sense)
                        .unwrap();
                    let unknown_op = uflags & abi::TCMU_UFLAG_UNKNOWN_OP != 0;
                    let read_len = (uflags & abi::TCMU_UFLAG_READ_LEN != 0).then_some(rl);
                    let mut n = cmd.data_in_len;
                    if let Some(rl) = read_len {
                        if rl != 0 {
                            n = n.min(rl as usize);
                        }
                    }
                    let mut data_in = Vec::with_capacity(n);
                    for &(o, l) in &cmd.data_in {
                        let take = (n - data_in.len()).min(l as usize);
                        data_in.extend_from_slice(mem.slice(o, take as u64).unwrap());
                    }
                    for b in cmd.blocks {
                        self.blocks[b] = false;
                    }
                    out.push(Completion {
                        cmd_id: id,
                        status: if unknown_op { 2 } else { status },
                        sense,
                        read_len,
                        unknown_op,
                        data_in,
                    });
                }
                op => {
                    // Documented protocol for unknown opcodes: flagged and
                    // skipped by userspace.
                    let uflags = mem.read_u8(a + abi::HDR_UFLAGS_OFFSET as u64).unwrap();
                    if uflags & abi::TCMU_UFLAG_UNKNOWN_OP == 0 {
                        return Err(FakeError::Broken(format!(
                            "entry with opcode {op} passed without UNKNOWN_OP"
                        )));
                    }
                }
            }
            self.last_cleaned = pos::advance(self.last_cleaned, len, self.cmdr_size);
        }
        Ok(out)
    }
}
