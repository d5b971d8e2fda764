// SPDX-License-Identifier: GPL-2.0

//! Decoding and validation of completed ring slots.
//!
//! The kernel reads each value of a completed slot from shared memory once
//! (with volatile reads) into a [`RawCmdEntry`] and passes it here together
//! with the `len_op` it wrote into that slot itself (from
//! [`super::cmd_ring::Slot`]). Everything in a [`RawCmdEntry`] is controlled by
//! the (possibly hostile) userspace handler.
//!
//! Decoding follows C's `tcmu_handle_completions` and
//! `tcmu_handle_completion`, with these checks added:
//!
//! * the `len_op` userspace sees must equal the one the kernel wrote (C
//!   trusts whatever length is in shared memory);
//! * SCSI status values outside the set a target may return
//!   ([`is_valid_status`]) are replaced by CHECK CONDITION (C passes any
//!   byte to `target_complete_cmd`). The original value is reported in
//!   [`Status::invalid_status`] so the caller can warn.
//!
//! Unknown `uflags` bits are ignored, as in C, and reported in
//! [`Completion::unknown_uflags`]. `kflags` is not looked at.
//!
//! This file only uses `core` and is shared between the `tcmu_rs` kernel
//! module and the host test crate `tcmu-logic`.

#![allow(dead_code, unreachable_pub)]

use super::abi::{
    hdr_get_op, TCMU_OP_CMD, TCMU_OP_PAD, TCMU_OP_TMR, TCMU_UFLAG_KEEP_BUF, TCMU_UFLAG_READ_LEN,
    TCMU_UFLAG_UNKNOWN_OP,
};

/// SCSI status GOOD.
pub const SAM_STAT_GOOD: u8 = 0x00;
/// SCSI status CHECK CONDITION.
pub const SAM_STAT_CHECK_CONDITION: u8 = 0x02;
/// SCSI status CONDITION MET.
pub const SAM_STAT_CONDITION_MET: u8 = 0x04;
/// SCSI status BUSY.
pub const SAM_STAT_BUSY: u8 = 0x08;
/// SCSI status RESERVATION CONFLICT.
pub const SAM_STAT_RESERVATION_CONFLICT: u8 = 0x18;
/// SCSI status TASK SET FULL.
pub const SAM_STAT_TASK_SET_FULL: u8 = 0x28;
/// SCSI status ACA ACTIVE.
pub const SAM_STAT_ACA_ACTIVE: u8 = 0x30;
/// SCSI status TASK ABORTED.
pub const SAM_STAT_TASK_ABORTED: u8 = 0x40;

/// All `uflags` bits defined by the ABI.
pub const KNOWN_UFLAGS: u8 = TCMU_UFLAG_UNKNOWN_OP | TCMU_UFLAG_READ_LEN | TCMU_UFLAG_KEEP_BUF;

/// Returns `true` for the SCSI status values a handler may complete a
/// command with: GOOD, CHECK CONDITION, CONDITION MET, BUSY, RESERVATION
/// CONFLICT, TASK SET FULL, ACA ACTIVE and TASK ABORTED. The obsolete
/// INTERMEDIATE, INTERMEDIATE-CONDITION MET and COMMAND TERMINATED values
/// (linked commands, SAM-2) and anything else are rejected.
pub const fn is_valid_status(status: u8) -> bool {
    matches!(
        status,
        SAM_STAT_GOOD
            | SAM_STAT_CHECK_CONDITION
            | SAM_STAT_CONDITION_MET
            | SAM_STAT_BUSY
            | SAM_STAT_RESERVATION_CONFLICT
            | SAM_STAT_TASK_SET_FULL
            | SAM_STAT_ACA_ACTIVE
            | SAM_STAT_TASK_ABORTED
    )
}

/// Values of a completed CMD slot, each read once from shared memory by the
/// caller.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RawCmdEntry {
    /// `hdr.len_op`.
    pub len_op: u32,
    /// `hdr.cmd_id`: with out-of-order completion, the id of whichever
    /// command userspace completed in this slot.
    pub cmd_id: u16,
    /// `hdr.uflags`.
    pub uflags: u8,
    /// `rsp.scsi_status`.
    pub scsi_status: u8,
    /// `rsp.read_len`.
    pub read_len: u32,
}

/// Data direction of a command (`enum dma_data_direction` plus `SCF_BIDI`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataDirection {
    /// No data (`DMA_NONE`).
    None,
    /// Data-Out only (`DMA_TO_DEVICE`).
    ToDevice,
    /// Data-In only (`DMA_FROM_DEVICE`).
    FromDevice,
    /// Data-Out and Data-In (`SCF_BIDI`).
    Bidirectional,
}

/// What the kernel knows about the command a completion refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CmdInfo {
    /// Data direction.
    pub dir: DataDirection,
    /// `se_cmd->data_length`: length of the Data-In buffer for
    /// [`DataDirection::FromDevice`], of the Data-Out buffer otherwise.
    pub data_length: u32,
    /// Length of the Data-In buffer of a bidirectional command (C's
    /// `data_len_bidi`); ignored for other directions.
    pub bidi_length: u32,
}

/// Kind of a slot, from its opcode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotKind {
    /// Padding: skipped when reaping.
    Pad,
    /// Task management notification: skipped when reaping.
    Tmr,
    /// A command: carries a completion.
    Cmd,
}

/// Why a completed slot is rejected. Every variant means the ring is broken
/// (C sets `TCMU_DEV_BIT_BROKEN`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadEntry {
    /// The `len_op` userspace left in the slot differs from the one the
    /// kernel wrote.
    LenOpMismatch {
        /// The `len_op` the kernel wrote.
        expected: u32,
        /// The `len_op` found in shared memory.
        found: u32,
    },
    /// The slot is not a CMD slot (or has an opcode the kernel never
    /// writes), but a completion was expected.
    NotCmd {
        /// Raw opcode of the slot.
        op: u32,
    },
}

/// Returns the kind of a slot from the `len_op` the kernel wrote, or `None`
/// for an opcode the kernel never writes.
pub const fn slot_kind(slot_len_op: u32) -> Option<SlotKind> {
    match hdr_get_op(slot_len_op) {
        TCMU_OP_PAD => Some(SlotKind::Pad),
        TCMU_OP_TMR => Some(SlotKind::Tmr),
        TCMU_OP_CMD => Some(SlotKind::Cmd),
        _ => None,
    }
}

/// Returns `true` if a slot is skipped when reaping (PAD and TMR slots, as
/// in C's `tcmu_handle_completions`): only `last_cleaned` moves past it.
pub const fn is_skipped(slot_len_op: u32) -> bool {
    matches!(slot_kind(slot_len_op), Some(SlotKind::Pad | SlotKind::Tmr))
}

/// Compares the `len_op` userspace sees (`found`) with the one the kernel
/// wrote (`slot_len_op`) and returns the kind of the slot.
pub fn check_len_op(slot_len_op: u32, found: u32) -> Result<SlotKind, BadEntry> {
    if found != slot_len_op {
        return Err(BadEntry::LenOpMismatch {
            expected: slot_len_op,
            found,
        });
    }
    slot_kind(slot_len_op).ok_or(BadEntry::NotCmd {
        op: hdr_get_op(slot_len_op),
    })
}

/// Header of a completion: enough to look the command up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CmdHeader {
    /// Id of the completed command. Id 0 is never allocated by C (its ids
    /// are 1..=0xffff), so looking it up fails and breaks the ring.
    pub cmd_id: u16,
    /// `TCMU_UFLAG_KEEP_BUF`: userspace keeps the data buffer; the command
    /// stays allocated (C uses `xa_load` instead of `xa_erase`).
    pub keep_buf: bool,
    /// `uflags` bits not defined by the ABI (ignored, as in C).
    pub unknown_uflags: u8,
}

/// Validates the header of a completed CMD slot and returns what is needed
/// to look the command up.
pub fn decode_header(raw: &RawCmdEntry, slot_len_op: u32) -> Result<CmdHeader, BadEntry> {
    match check_len_op(slot_len_op, raw.len_op)? {
        SlotKind::Cmd => {}
        _ => {
            return Err(BadEntry::NotCmd {
                op: hdr_get_op(slot_len_op),
            })
        }
    }
    Ok(CmdHeader {
        cmd_id: raw.cmd_id,
        keep_buf: raw.uflags & TCMU_UFLAG_KEEP_BUF != 0,
        unknown_uflags: raw.uflags & !KNOWN_UFLAGS,
    })
}

/// How a command is to be completed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status {
    /// Status to complete the command with (`target_complete_cmd*`).
    pub scsi_status: u8,
    /// `Some(len)`: complete with `target_complete_cmd_with_length(len)`.
    /// Only for [`DataDirection::FromDevice`] commands when userspace set
    /// `TCMU_UFLAG_READ_LEN` with a non-zero `read_len`; clamped to the
    /// data length, as in C.
    pub read_len: Option<u32>,
    /// Userspace returned CHECK CONDITION: copy its sense buffer
    /// (`transport_copy_sense_to_cmd`), and, if `read_len` is `Some`, set
    /// `SCF_TREAT_READ_AS_NORMAL`.
    pub check_condition: bool,
    /// `Some(len)`: copy `len` bytes of Data-In from the data area back to
    /// the command's Data-In scatterlist (the `t_bidi_data_sg` one for
    /// bidirectional commands) before completing.
    pub gather_len: Option<u32>,
    /// The status userspace returned, if it was not valid
    /// ([`is_valid_status`]) and was replaced by CHECK CONDITION (without
    /// sense data from userspace, so the target core reports LOGICAL UNIT
    /// COMMUNICATION FAILURE, and without any Data-In).
    pub invalid_status: Option<u8>,
}

/// Outcome of a completion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompletionKind {
    /// Userspace set `TCMU_UFLAG_UNKNOWN_OP`: complete with CHECK CONDITION
    /// and no sense data from userspace, no Data-In.
    UnknownOp,
    /// Userspace returned a status.
    Status(Status),
}

/// A decoded completion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Completion {
    /// Id of the completed command.
    pub cmd_id: u16,
    /// How to complete it.
    pub kind: CompletionKind,
    /// Keep the data buffer after completion (`TCMU_UFLAG_KEEP_BUF`).
    pub keep_buf: bool,
    /// `uflags` bits not defined by the ABI (ignored, as in C).
    pub unknown_uflags: u8,
}

impl Completion {
    /// The status to complete the command with.
    pub fn scsi_status(&self) -> u8 {
        match self.kind {
            CompletionKind::UnknownOp => SAM_STAT_CHECK_CONDITION,
            CompletionKind::Status(st) => st.scsi_status,
        }
    }
}

/// Decodes the status part of a completion for the command described by
/// `info` (C's `tcmu_handle_completion`).
pub fn decode_status(raw: &RawCmdEntry, info: &CmdInfo) -> CompletionKind {
    if raw.uflags & TCMU_UFLAG_UNKNOWN_OP != 0 {
        return CompletionKind::UnknownOp;
    }
    if !is_valid_status(raw.scsi_status) {
        return CompletionKind::Status(Status {
            scsi_status: SAM_STAT_CHECK_CONDITION,
            read_len: None,
            check_condition: false,
            gather_len: None,
            invalid_status: Some(raw.scsi_status),
        });
    }
    let read_len = if info.dir == DataDirection::FromDevice
        && raw.uflags & TCMU_UFLAG_READ_LEN != 0
        && raw.read_len != 0
    {
        Some(raw.read_len.min(info.data_length))
    } else {
        None
    };
    let check_condition = raw.scsi_status == SAM_STAT_CHECK_CONDITION;
    let gather_len = if check_condition && read_len.is_none() {
        None
    } else {
        match info.dir {
            DataDirection::FromDevice => Some(read_len.unwrap_or(info.data_length)),
            // C gathers `se_cmd->data_length` bytes into the bidi
            // scatterlist, stopping when that list is exhausted.
            DataDirection::Bidirectional => Some(info.data_length.min(info.bidi_length)),
            DataDirection::None | DataDirection::ToDevice => None,
        }
    };
    CompletionKind::Status(Status {
        scsi_status: raw.scsi_status,
        read_len,
        check_condition,
        gather_len,
        invalid_status: None,
    })
}

/// Validates and decodes a completed CMD slot in one go: [`decode_header`]
/// then [`decode_status`].
pub fn decode_completion(
    raw: &RawCmdEntry,
    slot_len_op: u32,
    info: &CmdInfo,
) -> Result<Completion, BadEntry> {
    let hdr = decode_header(raw, slot_len_op)?;
    Ok(Completion {
        cmd_id: hdr.cmd_id,
        kind: decode_status(raw, info),
        keep_buf: hdr.keep_buf,
        unknown_uflags: hdr.unknown_uflags,
    })
}
