// SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note

//! TCMU userspace ABI, mirroring `include/uapi/linux/target_core_user.h`.
//!
//! This file is shared between the kernel module (`mod abi;`) and host
//! userspace tools (`tools/tcmu/abi`, crate `tcmu-abi`), so it only uses
//! `core` and contains no `unsafe` code.
//!
//! The shared memory region exported through UIO is laid out as:
//!
//! 1. the mailbox ([`Mailbox`], [`MAILBOX_SIZE`] bytes),
//! 2. the command ring (`cmdr_off`..`cmdr_off + cmdr_size`),
//! 3. the data area.
//!
//! Ring entries start with an [`EntryHdr`] and are always
//! [`TCMU_OP_ALIGN_SIZE`]-aligned within the ring. A command entry
//! (`struct tcmu_cmd_entry`) is a header followed by a union of a request
//! part ([`CmdReq`], written by the kernel) and a response part ([`CmdRsp`],
//! written by userspace). Instead of a Rust `union` (whose reads need
//! `unsafe`), both parts are plain structs and the byte offsets of every
//! field relative to the start of the entry are exported as constants
//! (`REQ_*_OFFSET`, `RSP_*_OFFSET`, ...), which is what code doing volatile
//! accesses to the shared memory needs.
//!
//! The C structs are `__packed`; the Rust structs are `#[repr(C)]` with
//! explicit padding fields so that sizes and field offsets are identical.
//! Their alignment may be larger than the C one (e.g. 4 or 8 instead of 1),
//! which is harmless since ring entries are 8-byte aligned. [`Mailbox`] has
//! the same 64-byte alignment as in C (`cmd_tail` is `__aligned__(64)`).
//!
//! Values that are not part of the UAPI header but of the ABI implemented by
//! `drivers/target/target_core_user.c` (generic netlink family name, version
//! and multicast group name) are defined here as well.

#![allow(dead_code, unreachable_pub)]

use core::mem::{offset_of, size_of};

// ---------------------------------------------------------------------------
// Version and mailbox.
// ---------------------------------------------------------------------------

/// TCMU interface version string (`TCMU_VERSION`), reported via configfs.
pub const TCMU_VERSION: &str = "2.0";

/// Version of the mailbox layout (`TCMU_MAILBOX_VERSION`), stored in
/// [`Mailbox::version`].
pub const TCMU_MAILBOX_VERSION: u16 = 2;

/// Cache line size assumed by the mailbox layout (`ALIGN_SIZE`);
/// [`Mailbox::cmd_tail`] lives on its own cache line.
pub const ALIGN_SIZE: usize = 64;

/// Mailbox capability flag: out-of-order completions are supported.
pub const TCMU_MAILBOX_FLAG_CAP_OOOC: u16 = 1 << 0;
/// Mailbox capability flag: userspace may report the read data length
/// ([`TCMU_UFLAG_READ_LEN`] and [`CmdRsp::read_len`]).
pub const TCMU_MAILBOX_FLAG_CAP_READ_LEN: u16 = 1 << 1;
/// Mailbox capability flag: TMR notifications ([`TCMU_OP_TMR`]) are sent.
pub const TCMU_MAILBOX_FLAG_CAP_TMR: u16 = 1 << 2;
/// Mailbox capability flag: userspace may keep the data buffer after command
/// completion ([`TCMU_UFLAG_KEEP_BUF`]).
pub const TCMU_MAILBOX_FLAG_CAP_KEEP_BUF: u16 = 1 << 3;

/// The mailbox at the start of the shared memory region
/// (`struct tcmu_mailbox`, 128 bytes, 64-byte aligned).
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mailbox {
    /// Mailbox version, [`TCMU_MAILBOX_VERSION`].
    pub version: u16,
    /// Capability flags (`TCMU_MAILBOX_FLAG_CAP_*`).
    pub flags: u16,
    /// Offset of the command ring from the start of the shared memory.
    pub cmdr_off: u32,
    /// Size of the command ring in bytes.
    pub cmdr_size: u32,
    /// Ring head offset (relative to the ring), updated by the kernel.
    pub cmd_head: u32,
    /// Padding up to the next cache line (implicit in C).
    pub _pad_head: [u8; 48],
    /// Ring tail offset (relative to the ring), updated by userspace.
    /// On its own cache line.
    pub cmd_tail: u32,
    /// Tail padding up to the struct size (implicit in C).
    pub _pad_tail: [u8; 60],
}

impl Mailbox {
    /// An all-zero mailbox.
    pub const ZEROED: Self = Self {
        version: 0,
        flags: 0,
        cmdr_off: 0,
        cmdr_size: 0,
        cmd_head: 0,
        _pad_head: [0; 48],
        cmd_tail: 0,
        _pad_tail: [0; 60],
    };
}

/// Size of [`Mailbox`] in bytes (`sizeof(struct tcmu_mailbox)`); the kernel
/// places the command ring right after it (`CMDR_OFF`).
pub const MAILBOX_SIZE: usize = size_of::<Mailbox>();
/// Byte offset of [`Mailbox::version`].
pub const MAILBOX_VERSION_OFFSET: usize = offset_of!(Mailbox, version);
/// Byte offset of [`Mailbox::flags`].
pub const MAILBOX_FLAGS_OFFSET: usize = offset_of!(Mailbox, flags);
/// Byte offset of [`Mailbox::cmdr_off`].
pub const MAILBOX_CMDR_OFF_OFFSET: usize = offset_of!(Mailbox, cmdr_off);
/// Byte offset of [`Mailbox::cmdr_size`].
pub const MAILBOX_CMDR_SIZE_OFFSET: usize = offset_of!(Mailbox, cmdr_size);
/// Byte offset of [`Mailbox::cmd_head`].
pub const MAILBOX_CMD_HEAD_OFFSET: usize = offset_of!(Mailbox, cmd_head);
/// Byte offset of [`Mailbox::cmd_tail`].
pub const MAILBOX_CMD_TAIL_OFFSET: usize = offset_of!(Mailbox, cmd_tail);

// ---------------------------------------------------------------------------
// Entry header and opcodes.
// ---------------------------------------------------------------------------

/// Opcode of padding entries, to be skipped (`TCMU_OP_PAD`).
pub const TCMU_OP_PAD: u32 = 0;
/// Opcode of SCSI command entries (`TCMU_OP_CMD`).
pub const TCMU_OP_CMD: u32 = 1;
/// Opcode of task management notification entries (`TCMU_OP_TMR`).
pub const TCMU_OP_TMR: u32 = 2;

/// Mask of the opcode bits in [`EntryHdr::len_op`] (`TCMU_OP_MASK`).
pub const TCMU_OP_MASK: u32 = 0x7;

/// Alignment of ring entries and their lengths (`TCMU_OP_ALIGN_SIZE`,
/// `sizeof(__u64)`).
pub const TCMU_OP_ALIGN_SIZE: usize = size_of::<u64>();

/// Userspace flag: the opcode of the entry is not known to userspace.
pub const TCMU_UFLAG_UNKNOWN_OP: u8 = 0x1;
/// Userspace flag: [`CmdRsp::read_len`] is valid.
pub const TCMU_UFLAG_READ_LEN: u8 = 0x2;
/// Userspace flag: keep the data buffer after completion.
pub const TCMU_UFLAG_KEEP_BUF: u8 = 0x4;

/// Header of every ring entry (`struct tcmu_cmd_entry_hdr`, 8 bytes).
///
/// No `kflags` values are defined by the UAPI; the kernel sets it to 0.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EntryHdr {
    /// Entry length (multiple of [`TCMU_OP_ALIGN_SIZE`]) in the high bits,
    /// opcode in the low [`TCMU_OP_MASK`] bits.
    pub len_op: u32,
    /// Command id, echoed back by userspace.
    pub cmd_id: u16,
    /// Flags set by the kernel.
    pub kflags: u8,
    /// Flags set by userspace (`TCMU_UFLAG_*`).
    pub uflags: u8,
}

/// Size of [`EntryHdr`] (`sizeof(struct tcmu_cmd_entry_hdr)`).
pub const ENTRY_HDR_SIZE: usize = size_of::<EntryHdr>();
/// Byte offset of [`EntryHdr::len_op`] within an entry.
pub const HDR_LEN_OP_OFFSET: usize = offset_of!(EntryHdr, len_op);
/// Byte offset of [`EntryHdr::cmd_id`] within an entry.
pub const HDR_CMD_ID_OFFSET: usize = offset_of!(EntryHdr, cmd_id);
/// Byte offset of [`EntryHdr::kflags`] within an entry.
pub const HDR_KFLAGS_OFFSET: usize = offset_of!(EntryHdr, kflags);
/// Byte offset of [`EntryHdr::uflags`] within an entry.
pub const HDR_UFLAGS_OFFSET: usize = offset_of!(EntryHdr, uflags);

/// Returns the raw opcode bits of `len_op` (`tcmu_hdr_get_op`).
pub const fn hdr_get_op(len_op: u32) -> u32 {
    len_op & TCMU_OP_MASK
}

/// Returns the decoded opcode of `len_op`, or an error for unknown opcodes.
pub const fn hdr_get_opcode(len_op: u32) -> Result<Opcode, UnknownValue> {
    Opcode::from_raw(hdr_get_op(len_op))
}

/// Returns the entry length encoded in `len_op` (`tcmu_hdr_get_len`).
pub const fn hdr_get_len(len_op: u32) -> u32 {
    len_op & !TCMU_OP_MASK
}

/// Returns `len_op` with its opcode replaced by `op` (`tcmu_hdr_set_op`).
pub const fn hdr_set_op(len_op: u32, op: Opcode) -> u32 {
    (len_op & !TCMU_OP_MASK) | (op.as_raw() & TCMU_OP_MASK)
}

/// Returns `len_op` with its length replaced by `len` (`tcmu_hdr_set_len`).
///
/// Like the C helper, `len` is not masked: it must be a multiple of
/// [`TCMU_OP_ALIGN_SIZE`], otherwise its low bits are OR-ed into the opcode.
pub const fn hdr_set_len(len_op: u32, len: u32) -> u32 {
    (len_op & TCMU_OP_MASK) | len
}

/// Builds a `len_op` value from a length and an opcode.
///
/// The low bits of `len` are discarded (unlike [`hdr_set_len`]).
pub const fn hdr_len_op(len: u32, op: Opcode) -> u32 {
    (len & !TCMU_OP_MASK) | (op.as_raw() & TCMU_OP_MASK)
}

/// A raw ABI value that does not correspond to any known enum member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnknownValue(pub u32);

impl core::fmt::Display for UnknownValue {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "unknown TCMU ABI value {}", self.0)
    }
}

/// Ring entry opcode (`enum tcmu_opcode`).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Opcode {
    /// Padding entry ([`TCMU_OP_PAD`]).
    Pad = TCMU_OP_PAD,
    /// SCSI command entry ([`TCMU_OP_CMD`]).
    Cmd = TCMU_OP_CMD,
    /// Task management notification entry ([`TCMU_OP_TMR`]).
    Tmr = TCMU_OP_TMR,
}

impl Opcode {
    /// Decodes a raw opcode value; unknown values are returned as an error.
    pub const fn from_raw(raw: u32) -> Result<Self, UnknownValue> {
        match raw {
            TCMU_OP_PAD => Ok(Self::Pad),
            TCMU_OP_CMD => Ok(Self::Cmd),
            TCMU_OP_TMR => Ok(Self::Tmr),
            _ => Err(UnknownValue(raw)),
        }
    }

    /// Returns the raw opcode value.
    pub const fn as_raw(self) -> u32 {
        self as u32
    }
}

impl TryFrom<u32> for Opcode {
    type Error = UnknownValue;

    fn try_from(raw: u32) -> Result<Self, UnknownValue> {
        Self::from_raw(raw)
    }
}

impl From<Opcode> for u32 {
    fn from(op: Opcode) -> u32 {
        op.as_raw()
    }
}

// ---------------------------------------------------------------------------
// Command entries.
// ---------------------------------------------------------------------------

/// Size of the SCSI sense buffer in [`CmdRsp`] (`TCMU_SENSE_BUFFERSIZE`).
pub const TCMU_SENSE_BUFFERSIZE: usize = 96;

/// An I/O vector in a command entry (`struct iovec` of a 64-bit kernel,
/// 16 bytes). `base` is an offset into the shared memory region.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Iovec {
    /// Offset of the data buffer from the start of the shared memory.
    pub base: u64,
    /// Length of the data buffer in bytes.
    pub len: u64,
}

/// Size of [`Iovec`] (`sizeof(struct iovec)`).
pub const IOVEC_SIZE: usize = size_of::<Iovec>();

/// Request part of a command entry (`tcmu_cmd_entry.req`, 40 bytes plus the
/// trailing `iov` flexible array), filled in by the kernel.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CmdReq {
    /// Number of data iovecs.
    pub iov_cnt: u32,
    /// Number of bidirectional (data-in) iovecs following the data ones.
    pub iov_bidi_cnt: u32,
    /// Number of DIF iovecs.
    pub iov_dif_cnt: u32,
    /// Padding before `cdb_off` (implicit in C).
    pub _pad0: u32,
    /// Offset of the CDB from the start of the shared memory.
    pub cdb_off: u64,
    /// Reserved (`__pad1`).
    pub __pad1: u64,
    /// Reserved (`__pad2`).
    pub __pad2: u64,
    // Followed by `iov_cnt + iov_bidi_cnt + iov_dif_cnt` [`Iovec`]s, at
    // `REQ_IOV_OFFSET` from the start of the entry.
}

/// Response part of a command entry (`tcmu_cmd_entry.rsp`, 104 bytes),
/// filled in by userspace.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CmdRsp {
    /// SCSI status of the command.
    pub scsi_status: u8,
    /// Reserved (`__pad1`).
    pub __pad1: u8,
    /// Reserved (`__pad2`).
    pub __pad2: u16,
    /// Number of bytes read, valid if [`TCMU_UFLAG_READ_LEN`] is set.
    pub read_len: u32,
    /// Sense data, valid for CHECK CONDITION status.
    pub sense_buffer: [u8; TCMU_SENSE_BUFFERSIZE],
}

impl CmdRsp {
    /// An all-zero response.
    pub const ZEROED: Self = Self {
        scsi_status: 0,
        __pad1: 0,
        __pad2: 0,
        read_len: 0,
        sense_buffer: [0; TCMU_SENSE_BUFFERSIZE],
    };
}

impl Default for CmdRsp {
    fn default() -> Self {
        Self::ZEROED
    }
}

/// Byte offset of the request/response union within a command entry.
pub const CMD_ENTRY_UNION_OFFSET: usize = ENTRY_HDR_SIZE;
/// Size of the request/response union in a command entry.
pub const CMD_ENTRY_UNION_SIZE: usize = {
    let req = size_of::<CmdReq>();
    let rsp = size_of::<CmdRsp>();
    if req > rsp {
        req
    } else {
        rsp
    }
};
/// Size of a command entry without iovecs (`sizeof(struct tcmu_cmd_entry)`,
/// 112 bytes).
pub const CMD_ENTRY_SIZE: usize = CMD_ENTRY_UNION_OFFSET + CMD_ENTRY_UNION_SIZE;

/// Byte offset of [`CmdReq`] within a command entry.
pub const REQ_OFFSET: usize = CMD_ENTRY_UNION_OFFSET;
/// Byte offset of [`CmdReq::iov_cnt`] within a command entry.
pub const REQ_IOV_CNT_OFFSET: usize = REQ_OFFSET + offset_of!(CmdReq, iov_cnt);
/// Byte offset of [`CmdReq::iov_bidi_cnt`] within a command entry.
pub const REQ_IOV_BIDI_CNT_OFFSET: usize = REQ_OFFSET + offset_of!(CmdReq, iov_bidi_cnt);
/// Byte offset of [`CmdReq::iov_dif_cnt`] within a command entry.
pub const REQ_IOV_DIF_CNT_OFFSET: usize = REQ_OFFSET + offset_of!(CmdReq, iov_dif_cnt);
/// Byte offset of [`CmdReq::cdb_off`] within a command entry.
pub const REQ_CDB_OFF_OFFSET: usize = REQ_OFFSET + offset_of!(CmdReq, cdb_off);
/// Byte offset of the first [`Iovec`] (`req.iov[0]`) within a command entry.
pub const REQ_IOV_OFFSET: usize = REQ_OFFSET + size_of::<CmdReq>();

/// Byte offset of [`CmdRsp`] within a command entry.
pub const RSP_OFFSET: usize = CMD_ENTRY_UNION_OFFSET;
/// Byte offset of [`CmdRsp::scsi_status`] within a command entry.
pub const RSP_SCSI_STATUS_OFFSET: usize = RSP_OFFSET + offset_of!(CmdRsp, scsi_status);
/// Byte offset of [`CmdRsp::read_len`] within a command entry.
pub const RSP_READ_LEN_OFFSET: usize = RSP_OFFSET + offset_of!(CmdRsp, read_len);
/// Byte offset of [`CmdRsp::sense_buffer`] within a command entry.
pub const RSP_SENSE_BUFFER_OFFSET: usize = RSP_OFFSET + offset_of!(CmdRsp, sense_buffer);

/// Size of a command entry with `iov_cnt` iovecs, before rounding up to
/// [`TCMU_OP_ALIGN_SIZE`]:
/// `max(offsetof(struct tcmu_cmd_entry, req.iov[iov_cnt]), sizeof(struct tcmu_cmd_entry))`.
///
/// Returns `None` on overflow.
pub const fn cmd_entry_base_size(iov_cnt: usize) -> Option<usize> {
    let iov_end = match iov_cnt.checked_mul(IOVEC_SIZE) {
        Some(n) => match n.checked_add(REQ_IOV_OFFSET) {
            Some(end) => end,
            None => return None,
        },
        None => return None,
    };
    if iov_end > CMD_ENTRY_SIZE {
        Some(iov_end)
    } else {
        Some(CMD_ENTRY_SIZE)
    }
}

/// Rounds `size` up to a multiple of [`TCMU_OP_ALIGN_SIZE`]; `None` on
/// overflow.
pub const fn op_align(size: usize) -> Option<usize> {
    match size.checked_add(TCMU_OP_ALIGN_SIZE - 1) {
        Some(n) => Some(n & !(TCMU_OP_ALIGN_SIZE - 1)),
        None => None,
    }
}

// ---------------------------------------------------------------------------
// TMR entries.
// ---------------------------------------------------------------------------

/// TMR type: unknown/unsupported task management function.
pub const TCMU_TMR_UNKNOWN: u8 = 0;
/// TMR type: ABORT TASK.
pub const TCMU_TMR_ABORT_TASK: u8 = 1;
/// TMR type: ABORT TASK SET.
pub const TCMU_TMR_ABORT_TASK_SET: u8 = 2;
/// TMR type: CLEAR ACA.
pub const TCMU_TMR_CLEAR_ACA: u8 = 3;
/// TMR type: CLEAR TASK SET.
pub const TCMU_TMR_CLEAR_TASK_SET: u8 = 4;
/// TMR type: LOGICAL UNIT RESET.
pub const TCMU_TMR_LUN_RESET: u8 = 5;
/// TMR type: TARGET WARM RESET.
pub const TCMU_TMR_TARGET_WARM_RESET: u8 = 6;
/// TMR type: TARGET COLD RESET.
pub const TCMU_TMR_TARGET_COLD_RESET: u8 = 7;
/// TMR type: pseudo LUN reset due to a received PERSISTENT RESERVE OUT.
pub const TCMU_TMR_LUN_RESET_PRO: u8 = 128;

/// Task management function type of a TMR entry (`TCMU_TMR_*`).
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TmrType {
    /// [`TCMU_TMR_UNKNOWN`].
    Unknown = TCMU_TMR_UNKNOWN,
    /// [`TCMU_TMR_ABORT_TASK`].
    AbortTask = TCMU_TMR_ABORT_TASK,
    /// [`TCMU_TMR_ABORT_TASK_SET`].
    AbortTaskSet = TCMU_TMR_ABORT_TASK_SET,
    /// [`TCMU_TMR_CLEAR_ACA`].
    ClearAca = TCMU_TMR_CLEAR_ACA,
    /// [`TCMU_TMR_CLEAR_TASK_SET`].
    ClearTaskSet = TCMU_TMR_CLEAR_TASK_SET,
    /// [`TCMU_TMR_LUN_RESET`].
    LunReset = TCMU_TMR_LUN_RESET,
    /// [`TCMU_TMR_TARGET_WARM_RESET`].
    TargetWarmReset = TCMU_TMR_TARGET_WARM_RESET,
    /// [`TCMU_TMR_TARGET_COLD_RESET`].
    TargetColdReset = TCMU_TMR_TARGET_COLD_RESET,
    /// [`TCMU_TMR_LUN_RESET_PRO`].
    LunResetPro = TCMU_TMR_LUN_RESET_PRO,
}

impl TmrType {
    /// Decodes a raw TMR type; unknown values are returned as an error.
    pub const fn from_raw(raw: u8) -> Result<Self, UnknownValue> {
        match raw {
            TCMU_TMR_UNKNOWN => Ok(Self::Unknown),
            TCMU_TMR_ABORT_TASK => Ok(Self::AbortTask),
            TCMU_TMR_ABORT_TASK_SET => Ok(Self::AbortTaskSet),
            TCMU_TMR_CLEAR_ACA => Ok(Self::ClearAca),
            TCMU_TMR_CLEAR_TASK_SET => Ok(Self::ClearTaskSet),
            TCMU_TMR_LUN_RESET => Ok(Self::LunReset),
            TCMU_TMR_TARGET_WARM_RESET => Ok(Self::TargetWarmReset),
            TCMU_TMR_TARGET_COLD_RESET => Ok(Self::TargetColdReset),
            TCMU_TMR_LUN_RESET_PRO => Ok(Self::LunResetPro),
            _ => Err(UnknownValue(raw as u32)),
        }
    }

    /// Returns the raw TMR type value.
    pub const fn as_raw(self) -> u8 {
        self as u8
    }
}

/// Task management notification entry (`struct tcmu_tmr_entry`, 32 bytes
/// plus the trailing `cmd_ids` flexible array).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TmrEntry {
    /// Entry header, opcode [`TCMU_OP_TMR`].
    pub hdr: EntryHdr,
    /// Task management function (`TCMU_TMR_*`).
    pub tmr_type: u8,
    /// Reserved (`__pad1`).
    pub __pad1: u8,
    /// Reserved (`__pad2`).
    pub __pad2: u16,
    /// Number of aborted command ids following the entry.
    pub cmd_cnt: u32,
    /// Reserved (`__pad3`).
    pub __pad3: u64,
    /// Reserved (`__pad4`).
    pub __pad4: u64,
    // Followed by `cmd_cnt` u16 command ids, at `TMR_CMD_IDS_OFFSET`.
}

/// Size of a TMR entry without command ids (`sizeof(struct tcmu_tmr_entry)`).
pub const TMR_ENTRY_SIZE: usize = size_of::<TmrEntry>();
/// Byte offset of [`TmrEntry::tmr_type`] within a TMR entry.
pub const TMR_TMR_TYPE_OFFSET: usize = offset_of!(TmrEntry, tmr_type);
/// Byte offset of [`TmrEntry::cmd_cnt`] within a TMR entry.
pub const TMR_CMD_CNT_OFFSET: usize = offset_of!(TmrEntry, cmd_cnt);
/// Byte offset of the command id array (`cmd_ids[0]`) within a TMR entry.
pub const TMR_CMD_IDS_OFFSET: usize = TMR_ENTRY_SIZE;

/// Size of a TMR entry with `cmd_cnt` command ids, before rounding up to
/// [`TCMU_OP_ALIGN_SIZE`]: `sizeof(struct tcmu_tmr_entry) + cmd_cnt * 2`.
///
/// Returns `None` on overflow.
pub const fn tmr_entry_base_size(cmd_cnt: usize) -> Option<usize> {
    match cmd_cnt.checked_mul(size_of::<u16>()) {
        Some(n) => n.checked_add(TMR_ENTRY_SIZE),
        None => None,
    }
}

// ---------------------------------------------------------------------------
// Generic netlink interface (in its own file, re-exported here).
// ---------------------------------------------------------------------------

#[path = "abi_netlink.rs"]
mod netlink;
pub use netlink::*;

// ---------------------------------------------------------------------------
// Compile-time layout checks (the host tests compare against the C header).
// ---------------------------------------------------------------------------

const _: () = assert!(size_of::<Mailbox>() == 128);
const _: () = assert!(core::mem::align_of::<Mailbox>() == ALIGN_SIZE);
const _: () = assert!(MAILBOX_CMD_HEAD_OFFSET == 12);
const _: () = assert!(MAILBOX_CMD_TAIL_OFFSET == ALIGN_SIZE);
const _: () = assert!(size_of::<EntryHdr>() == 8);
const _: () = assert!(size_of::<Iovec>() == 16);
const _: () = assert!(size_of::<CmdReq>() == 40);
const _: () = assert!(size_of::<CmdRsp>() == 104);
const _: () = assert!(REQ_CDB_OFF_OFFSET == 24);
const _: () = assert!(REQ_IOV_OFFSET == 48);
const _: () = assert!(RSP_READ_LEN_OFFSET == 12);
const _: () = assert!(RSP_SENSE_BUFFER_OFFSET == 16);
const _: () = assert!(CMD_ENTRY_SIZE == 112);
const _: () = assert!(CMD_ENTRY_SIZE & (TCMU_OP_ALIGN_SIZE - 1) == 0);
const _: () = assert!(size_of::<TmrEntry>() == 32);
const _: () = assert!(TMR_CMD_CNT_OFFSET == 12);
const _: () = assert!(TMR_ENTRY_SIZE & (TCMU_OP_ALIGN_SIZE - 1) == 0);

#[cfg(CONFIG_KUNIT)]
#[kernel::prelude::kunit_tests(tcmu_rs_abi)]
mod tests {
    use super::*;
    use crate::params::CMDR_OFF;

    #[test]
    fn len_op_roundtrip() {
        let v = hdr_set_len(hdr_set_op(0, Opcode::Cmd), 4096);
        assert_eq!(hdr_get_opcode(v), Ok(Opcode::Cmd));
        assert_eq!(hdr_get_len(v), 4096);
    }

    #[test]
    fn mailbox_layout() {
        assert_eq!(core::mem::offset_of!(Mailbox, cmd_tail), 64);
        assert_eq!(CMDR_OFF as usize, MAILBOX_SIZE);
    }
}
