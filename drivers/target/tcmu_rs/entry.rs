// SPDX-License-Identifier: GPL-2.0

//! Encoding of command ring entries (PAD, CMD and TMR).
//!
//! Entries are written through an [`EntrySink`], a byte sink addressed by
//! offsets relative to the start of the whole shared region (mailbox
//! included). The kernel implements it over its vmalloc area with volatile
//! writes; tests use a plain byte slice.
//!
//! The functions just write everything the entry needs; nothing is visible
//! to userspace until the caller publishes the new `cmd_head` (with a single
//! release store after all the writes). If a function returns `None` the
//! entry may be partially written and must not be published.
//!
//! This file only uses `core` and is shared between the `tcmu_rs` kernel
//! module and the host test crate `tcmu-logic`.

#![allow(dead_code, unreachable_pub)]

use super::abi::{
    cmd_entry_base_size, hdr_len_op, op_align, tmr_entry_base_size, Iovec, Opcode,
    HDR_CMD_ID_OFFSET, HDR_KFLAGS_OFFSET, HDR_LEN_OP_OFFSET, HDR_UFLAGS_OFFSET, IOVEC_SIZE,
    REQ_CDB_OFF_OFFSET, REQ_IOV_BIDI_CNT_OFFSET, REQ_IOV_CNT_OFFSET, REQ_IOV_DIF_CNT_OFFSET,
    REQ_IOV_OFFSET, TCMU_OP_ALIGN_SIZE, TMR_CMD_CNT_OFFSET, TMR_CMD_IDS_OFFSET,
    TMR_TMR_TYPE_OFFSET,
};

/// A byte sink over the shared memory region.
///
/// Offsets are relative to the start of the region. Multi-byte values are
/// stored in native byte order (the shared memory ABI is native-endian).
/// Every method returns `None` if the range is outside the region.
///
/// Only [`EntrySink::put_bytes`] and [`EntrySink::zero`] are required; the
/// fixed-size writes default to `put_bytes` and may be overridden.
pub trait EntrySink {
    /// Writes `data` at `off`.
    fn put_bytes(&mut self, off: usize, data: &[u8]) -> Option<()>;

    /// Writes `len` zero bytes at `off`.
    fn zero(&mut self, off: usize, len: usize) -> Option<()>;

    /// Writes a `u8` at `off`.
    fn put_u8(&mut self, off: usize, v: u8) -> Option<()> {
        self.put_bytes(off, &[v])
    }

    /// Writes a `u16` at `off`.
    fn put_u16(&mut self, off: usize, v: u16) -> Option<()> {
        self.put_bytes(off, &v.to_ne_bytes())
    }

    /// Writes a `u32` at `off`.
    fn put_u32(&mut self, off: usize, v: u32) -> Option<()> {
        self.put_bytes(off, &v.to_ne_bytes())
    }

    /// Writes a `u64` at `off`.
    fn put_u64(&mut self, off: usize, v: u64) -> Option<()> {
        self.put_bytes(off, &v.to_ne_bytes())
    }
}

impl EntrySink for [u8] {
    fn put_bytes(&mut self, off: usize, data: &[u8]) -> Option<()> {
        let end = off.checked_add(data.len())?;
        self.get_mut(off..end)?.copy_from_slice(data);
        Some(())
    }

    fn zero(&mut self, off: usize, len: usize) -> Option<()> {
        let end = off.checked_add(len)?;
        self.get_mut(off..end)?.fill(0);
        Some(())
    }
}

/// Returns `true` if `len` is a valid entry length: a non-zero multiple of
/// `TCMU_OP_ALIGN_SIZE` that fits in the length bits of `len_op`.
fn valid_len(len: usize) -> bool {
    len >= TCMU_OP_ALIGN_SIZE && len % TCMU_OP_ALIGN_SIZE == 0 && u32::try_from(len).is_ok()
}

/// Size of a CMD entry with `iov_cnt` iovecs and a CDB of `cdb_len` bytes,
/// exactly as C computes it: returns `(base, total)` with
/// `base = max(offsetof(struct tcmu_cmd_entry, req.iov[iov_cnt]),
/// sizeof(struct tcmu_cmd_entry))` and
/// `total = base + round_up(cdb_len, TCMU_OP_ALIGN_SIZE)`.
///
/// The CDB goes at `base` within the entry. Returns `None` on overflow or if
/// `total` does not fit in a `u32`.
pub fn cmd_entry_size(iov_cnt: usize, cdb_len: usize) -> Option<(usize, usize)> {
    let base = cmd_entry_base_size(iov_cnt)?;
    let total = base.checked_add(op_align(cdb_len)?)?;
    if !valid_len(total) {
        return None;
    }
    Some((base, total))
}

/// Size of a TMR entry with `cmd_cnt` command ids, exactly as C's
/// `queue_tmr_ring` computes it:
/// `round_up(sizeof(struct tcmu_tmr_entry) + cmd_cnt * 2, TCMU_OP_ALIGN_SIZE)`.
///
/// Returns `None` on overflow or if the size does not fit in a `u32`.
pub fn tmr_entry_size(cmd_cnt: usize) -> Option<usize> {
    let size = op_align(tmr_entry_base_size(cmd_cnt)?)?;
    if !valid_len(size) {
        return None;
    }
    Some(size)
}

/// Writes an entry header at `entry` (absolute offset): `len_op`, `cmd_id`,
/// `kflags = 0` and `uflags = 0`.
fn write_hdr<S: EntrySink + ?Sized>(
    sink: &mut S,
    entry: usize,
    len: usize,
    op: Opcode,
    cmd_id: u16,
) -> Option<()> {
    let len = u32::try_from(len).ok()?;
    sink.put_u32(entry.checked_add(HDR_LEN_OP_OFFSET)?, hdr_len_op(len, op))?;
    sink.put_u16(entry.checked_add(HDR_CMD_ID_OFFSET)?, cmd_id)?;
    sink.put_u8(entry.checked_add(HDR_KFLAGS_OFFSET)?, 0)?;
    sink.put_u8(entry.checked_add(HDR_UFLAGS_OFFSET)?, 0)
}

/// Writes a PAD entry of `len` bytes at ring offset `offset` (the ring
/// starts at `cmdr_off` in the shared region).
///
/// Like C's `ring_insert_padding`, only the header is written (`len_op` with
/// `TCMU_OP_PAD`, `cmd_id`, `kflags` and `uflags` all 0); the body of the PAD
/// is left as is. `len` must be a non-zero multiple of `TCMU_OP_ALIGN_SIZE`.
pub fn write_pad<S: EntrySink + ?Sized>(
    sink: &mut S,
    cmdr_off: usize,
    offset: usize,
    len: usize,
) -> Option<()> {
    if !valid_len(len) {
        return None;
    }
    let entry = cmdr_off.checked_add(offset)?;
    write_hdr(sink, entry, len, Opcode::Pad, 0)
}

/// A CMD entry to write, at ring offset `offset`.
///
/// `(base, total)` must be what [`cmd_entry_size`] returns for `iovs.len()` and
/// `cdb.len()`, and `iovs.len()` must be `iov_cnt + iov_bidi_cnt`: `iov_cnt`
/// iovecs for the Data-Out (or Data-In) buffer followed by `iov_bidi_cnt`
/// iovecs for the Data-In buffer of a bidirectional command.
#[derive(Clone, Copy, Debug)]
pub struct CmdEntry<'a> {
    /// Offset of the entry in the ring.
    pub offset: usize,
    /// Size of the entry.
    pub total: usize,
    /// Offset of the CDB in the entry.
    pub base: usize,
    /// The command's id.
    pub cmd_id: u16,
    /// The iovecs.
    pub iovs: &'a [Iovec],
    /// Iovecs of the Data-Out or Data-In buffer.
    pub iov_cnt: u32,
    /// Iovecs of the bidi Data-In buffer.
    pub iov_bidi_cnt: u32,
    /// The CDB.
    pub cdb: &'a [u8],
}

/// Writes the CMD entry `e` (the ring starts at `cmdr_off` in the shared
/// region), like C's `queue_cmd_ring`.
///
/// The whole entry is zeroed, then the header (`len_op = total | CMD`,
/// `cmd_id`, `kflags = uflags = 0`), `req.iov_cnt`, `req.iov_bidi_cnt`,
/// `req.iov_dif_cnt = 0`, `req.cdb_off = cmdr_off + offset + base`, the
/// iovecs and the CDB (at `cdb_off`) are written. `None`, with nothing
/// written, if `e` is inconsistent or does not fit the sink.
pub fn write_cmd<S: EntrySink + ?Sized>(
    sink: &mut S,
    cmdr_off: usize,
    e: &CmdEntry<'_>,
) -> Option<()> {
    let CmdEntry {
        offset,
        total,
        base,
        cmd_id,
        iovs,
        iov_cnt,
        iov_bidi_cnt,
        cdb,
    } = *e;
    let counted = u64::from(iov_cnt) + u64::from(iov_bidi_cnt);
    if u64::try_from(iovs.len()).ok()? != counted {
        return None;
    }
    if cmd_entry_size(iovs.len(), cdb.len())? != (base, total) {
        return None;
    }
    let entry = cmdr_off.checked_add(offset)?;
    let cdb_off = entry.checked_add(base)?;
    // Check the whole entry is addressable before writing anything.
    entry.checked_add(total)?;

    sink.zero(entry, total)?;
    write_hdr(sink, entry, total, Opcode::Cmd, cmd_id)?;
    sink.put_u32(entry + REQ_IOV_CNT_OFFSET, iov_cnt)?;
    sink.put_u32(entry + REQ_IOV_BIDI_CNT_OFFSET, iov_bidi_cnt)?;
    sink.put_u32(entry + REQ_IOV_DIF_CNT_OFFSET, 0)?;
    sink.put_u64(entry + REQ_CDB_OFF_OFFSET, u64::try_from(cdb_off).ok()?)?;
    let mut iov_off = entry + REQ_IOV_OFFSET;
    for iov in iovs {
        // iov_off + IOVEC_SIZE <= entry + base <= entry + total: no overflow.
        sink.put_u64(iov_off, iov.base)?;
        sink.put_u64(iov_off + 8, iov.len)?;
        iov_off += IOVEC_SIZE;
    }
    sink.put_bytes(cdb_off, cdb)
}

/// Writes a TMR entry at ring offset `offset` (the ring starts at
/// `cmdr_off` in the shared region), like C's `queue_tmr_ring`: the entry
/// of [`tmr_entry_size`]`(cmd_ids.len())` bytes is zeroed, then the header
/// (`len_op = size | TMR`, `cmd_id = 0`, flags 0), `tmr_type`, `cmd_cnt`
/// and the command ids are written.
///
/// Returns the size of the entry.
pub fn write_tmr<S: EntrySink + ?Sized>(
    sink: &mut S,
    cmdr_off: usize,
    offset: usize,
    tmr_type: u8,
    cmd_ids: &[u16],
) -> Option<usize> {
    let size = tmr_entry_size(cmd_ids.len())?;
    let cmd_cnt = u32::try_from(cmd_ids.len()).ok()?;
    let entry = cmdr_off.checked_add(offset)?;
    entry.checked_add(size)?;

    sink.zero(entry, size)?;
    write_hdr(sink, entry, size, Opcode::Tmr, 0)?;
    sink.put_u8(entry + TMR_TMR_TYPE_OFFSET, tmr_type)?;
    sink.put_u32(entry + TMR_CMD_CNT_OFFSET, cmd_cnt)?;
    let mut id_off = entry + TMR_CMD_IDS_OFFSET;
    for &id in cmd_ids {
        // id_off + 2 <= entry + size: no overflow.
        sink.put_u16(id_off, id)?;
        id_off += 2;
    }
    Some(size)
}
