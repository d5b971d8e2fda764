// SPDX-License-Identifier: GPL-2.0

//! Decoding and validation of ring entries.
//!
//! [`decode`] reads one entry at a ring position and checks every value it
//! reads against the ring geometry: the entry length (non-zero, aligned,
//! not past the end of the ring nor past the kernel's head), the iovec
//! array (inside the entry), every iovec (inside the data area), the CDB
//! (inside the entry, after the iovecs) and the TMR command id list. The
//! result is an owned description of the entry, so nothing is read from the
//! ring again after decoding.

use std::fmt;

use tcmu_abi as abi;

use crate::mem::{MemError, Region};

/// Layout of the shared memory region, from the mailbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Offset of the command ring from the start of the region.
    pub cmdr_off: u32,
    /// Size of the command ring.
    pub cmdr_size: u32,
    /// Size of the whole region (mailbox, ring and data area).
    pub map_len: u64,
    /// Mailbox capability flags (`TCMU_MAILBOX_FLAG_CAP_*`).
    pub flags: u16,
}

impl Geometry {
    /// Offset of the data area (right after the ring).
    pub fn data_off(&self) -> u64 {
        self.cmdr_off as u64 + self.cmdr_size as u64
    }

    /// Offset in the region of ring position `pos`.
    pub fn ring_addr(&self, pos: u32) -> u64 {
        self.cmdr_off as u64 + pos as u64
    }

    /// Whether the kernel accepts out-of-order completions.
    pub fn cap_oooc(&self) -> bool {
        self.flags & abi::TCMU_MAILBOX_FLAG_CAP_OOOC != 0
    }

    /// Whether the kernel honours [`abi::TCMU_UFLAG_READ_LEN`].
    pub fn cap_read_len(&self) -> bool {
        self.flags & abi::TCMU_MAILBOX_FLAG_CAP_READ_LEN != 0
    }

    /// Whether the kernel sends TMR entries.
    pub fn cap_tmr(&self) -> bool {
        self.flags & abi::TCMU_MAILBOX_FLAG_CAP_TMR != 0
    }
}

/// Errors of the ring layer. Anything read from the shared memory that
/// breaks the protocol is reported here, never as a panic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RingError {
    /// An access outside the region (should not happen after validation).
    Mem(MemError),
    /// The mailbox is not a valid TCMU v2 mailbox.
    BadMailbox(String),
    /// `cmd_head` is out of range or misaligned.
    BadHead {
        /// Value read from the mailbox.
        head: u32,
        /// Ring size.
        size: u32,
    },
    /// An entry at ring position `pos` is malformed.
    BadEntry {
        /// Ring position of the entry.
        pos: u32,
        /// What is wrong.
        reason: String,
    },
    /// A command id is used by two in-flight entries.
    DuplicateCmdId(u16),
    /// Completion of a command id that is not in flight.
    UnknownCmdId(u16),
    /// Out-of-order completion without `TCMU_MAILBOX_FLAG_CAP_OOOC`.
    OutOfOrder {
        /// Command being completed.
        cmd_id: u16,
        /// The oldest in-flight command, which must be completed first.
        oldest: u16,
    },
    /// `cmd_tail` was changed behind our back (e.g. the `reset_ring`
    /// configfs action); call [`crate::Ring::resync`].
    Reset {
        /// Tail we last wrote.
        ours: u32,
        /// Tail found in the mailbox.
        found: u32,
    },
    /// A previous error left the ring unusable for reading new entries.
    Broken(String),
}

impl fmt::Display for RingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RingError::Mem(e) => write!(f, "{e}"),
            RingError::BadMailbox(s) => write!(f, "bad mailbox: {s}"),
            RingError::BadHead { head, size } => {
                write!(f, "bad cmd_head {head:#x} (ring size {size:#x})")
            }
            RingError::BadEntry { pos, reason } => write!(f, "bad entry at ring offset {pos:#x}: {reason}"),
            RingError::DuplicateCmdId(id) => write!(f, "command id {id} is already in flight"),
            RingError::UnknownCmdId(id) => write!(f, "command id {id} is not in flight"),
            RingError::OutOfOrder { cmd_id, oldest } => write!(
                f,
                "cannot complete command {cmd_id} before {oldest}: no out-of-order completion support"
            ),
            RingError::Reset { ours, found } => {
                write!(f, "cmd_tail changed behind our back ({ours:#x} -> {found:#x}): ring reset?")
            }
            RingError::Broken(s) => write!(f, "ring is broken: {s}"),
        }
    }
}

impl std::error::Error for RingError {}

impl From<MemError> for RingError {
    fn from(e: MemError) -> Self {
        RingError::Mem(e)
    }
}

/// A validated data buffer of a command: `len` bytes at offset `off` of
/// the region, inside the data area.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoVec {
    off: u64,
    len: u64,
}

impl IoVec {
    /// Offset from the start of the region (`iov_base`).
    pub fn off(&self) -> u64 {
        self.off
    }

    /// Length in bytes (`iov_len`).
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the buffer is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Total length of a list of iovecs.
pub fn iovs_len(iovs: &[IoVec]) -> u64 {
    iovs.iter().map(|v| v.len).fold(0u64, u64::saturating_add)
}

/// A SCSI command entry ([`abi::TCMU_OP_CMD`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command {
    /// Command id, to pass to [`crate::Ring::complete`].
    pub cmd_id: u16,
    /// Kernel flags of the entry header.
    pub kflags: u8,
    /// The CDB, copied out of the ring (`scsi_command_size` bytes).
    pub cdb: Vec<u8>,
    /// Data buffers (Data-Out for writes, Data-In for reads).
    pub iovs: Vec<IoVec>,
    /// Data-In buffers of bidirectional commands.
    pub bidi_iovs: Vec<IoVec>,
    /// Protection information buffers (unused by Linux).
    pub dif_iovs: Vec<IoVec>,
    /// Ring position of the entry.
    pub pos: u32,
}

impl Command {
    /// Total length of [`Command::iovs`].
    pub fn data_len(&self) -> u64 {
        iovs_len(&self.iovs)
    }
}

/// A task management notification ([`abi::TCMU_OP_TMR`]). It needs no
/// completion: the ring skips it when the tail passes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tmr {
    /// Raw TMR type (`TCMU_TMR_*`).
    pub raw_type: u8,
    /// Decoded TMR type, `None` if unknown to this ABI version.
    pub tmr_type: Option<abi::TmrType>,
    /// Ids of the aborted commands (which still need a completion).
    pub cmd_ids: Vec<u16>,
    /// Ring position of the entry.
    pub pos: u32,
}

/// A decoded entry, as returned by [`crate::Ring::next_entry`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// A SCSI command, to be completed.
    Cmd(Command),
    /// A TMR notification.
    Tmr(Tmr),
    /// An entry with an opcode unknown to this ABI version; it is flagged
    /// with [`abi::TCMU_UFLAG_UNKNOWN_OP`] and skipped by the ring.
    Unknown {
        /// Raw opcode.
        op: u32,
        /// Ring position of the entry.
        pos: u32,
        /// Entry length.
        len: u32,
    },
}

/// What [`decode`] found: the entry (`None` for PAD) and its length.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decoded {
    /// The entry, `None` for PAD.
    pub entry: Option<Entry>,
    /// Length of the entry in the ring.
    pub len: u32,
}

/// CDB length for an opcode, as the kernel's `scsi_command_size()`:
/// `additional + 8` for VARIABLE LENGTH (0x7f, `additional` is byte 7),
/// else by group code (6, 10, 10, 12, 16, 12, 10, 10).
pub const fn scsi_command_size(opcode: u8, additional: u8) -> usize {
    const TBL: [usize; 8] = [6, 10, 10, 12, 16, 12, 10, 10];
    if opcode == 0x7f {
        additional as usize + 8
    } else {
        TBL[(opcode >> 5) as usize]
    }
}

fn bad(pos: u32, reason: impl Into<String>) -> RingError {
    RingError::BadEntry {
        pos,
        reason: reason.into(),
    }
}

/// Decodes the entry at ring position `pos`, with `avail` bytes (> 0)
/// between `pos` and the kernel's head.
pub fn decode(mem: &Region, geo: &Geometry, pos: u32, avail: u32) -> Result<Decoded, RingError> {
    let size = geo.cmdr_size;
    if !crate::pos::valid_pos(pos, size) {
        return Err(bad(pos, "misaligned or out of the ring"));
    }
    let room = crate::pos::to_end(pos, size).min(avail);
    if (room as usize) < abi::ENTRY_HDR_SIZE {
        return Err(bad(
            pos,
            format!("only {room} bytes before the head or ring end"),
        ));
    }
    let base = geo.ring_addr(pos);
    let len_op = mem.read_u32(base + abi::HDR_LEN_OP_OFFSET as u64)?;
    let len = abi::hdr_get_len(len_op);
    let op = abi::hdr_get_op(len_op);
    if len == 0 {
        return Err(bad(pos, "zero length"));
    }
    if len > room {
        return Err(bad(
            pos,
            format!("length {len} runs past the head or the ring end ({room} bytes available)"),
        ));
    }
    let cmd_id = mem.read_u16(base + abi::HDR_CMD_ID_OFFSET as u64)?;
    let kflags = mem.read_u8(base + abi::HDR_KFLAGS_OFFSET as u64)?;
    let entry = match abi::Opcode::from_raw(op) {
        Ok(abi::Opcode::Pad) => None,
        Ok(abi::Opcode::Cmd) => Some(Entry::Cmd(decode_cmd(mem, geo, pos, len, cmd_id, kflags)?)),
        Ok(abi::Opcode::Tmr) => Some(Entry::Tmr(decode_tmr(mem, geo, pos, len)?)),
        Err(_) => Some(Entry::Unknown { op, pos, len }),
    };
    Ok(Decoded { entry, len })
}

fn decode_cmd(
    mem: &Region,
    geo: &Geometry,
    pos: u32,
    len: u32,
    cmd_id: u16,
    kflags: u8,
) -> Result<Command, RingError> {
    if (len as usize) < abi::CMD_ENTRY_SIZE {
        return Err(bad(
            pos,
            format!(
                "command entry of {len} bytes, less than {}",
                abi::CMD_ENTRY_SIZE
            ),
        ));
    }
    let base = geo.ring_addr(pos);
    let end = base + len as u64;
    let cnt = mem.read_u32(base + abi::REQ_IOV_CNT_OFFSET as u64)? as u64;
    let bidi = mem.read_u32(base + abi::REQ_IOV_BIDI_CNT_OFFSET as u64)? as u64;
    let dif = mem.read_u32(base + abi::REQ_IOV_DIF_CNT_OFFSET as u64)? as u64;
    let total = cnt + bidi + dif; // < 2^34, no overflow
    let iov_end = abi::REQ_IOV_OFFSET as u64 + total * abi::IOVEC_SIZE as u64;
    if iov_end > len as u64 {
        return Err(bad(
            pos,
            format!("{cnt}+{bidi}+{dif} iovecs do not fit in an entry of {len} bytes"),
        ));
    }
    let data_off = geo.data_off();
    let mut iovs = Vec::with_capacity(total as usize);
    for i in 0..total {
        let at = base + abi::REQ_IOV_OFFSET as u64 + i * abi::IOVEC_SIZE as u64;
        let off = mem.read_u64(at)?;
        let ilen = mem.read_u64(at + 8)?;
        let ok = off >= data_off && off.checked_add(ilen).is_some_and(|e| e <= geo.map_len);
        if !ok {
            return Err(bad(
                pos,
                format!(
                    "iovec {i} ({off:#x}, {ilen:#x}) is outside the data area {data_off:#x}..{:#x}",
                    geo.map_len
                ),
            ));
        }
        iovs.push(IoVec { off, len: ilen });
    }
    let dif_iovs = iovs.split_off((cnt + bidi) as usize);
    let bidi_iovs = iovs.split_off(cnt as usize);

    let cdb_off = mem.read_u64(base + abi::REQ_CDB_OFF_OFFSET as u64)?;
    if cdb_off < base + iov_end || cdb_off >= end {
        return Err(bad(
            pos,
            format!("cdb_off {cdb_off:#x} is not inside the entry after the iovecs"),
        ));
    }
    let opcode = mem.read_u8(cdb_off)?;
    let additional = if opcode == 0x7f && cdb_off + 8 <= end {
        mem.read_u8(cdb_off + 7)?
    } else {
        0
    };
    let cdb_len = scsi_command_size(opcode, additional) as u64;
    if cdb_off + cdb_len > end {
        return Err(bad(
            pos,
            format!("CDB of {cdb_len} bytes at {cdb_off:#x} runs past the entry"),
        ));
    }
    let mut cdb = vec![0u8; cdb_len as usize];
    mem.read_bytes(cdb_off, &mut cdb)?;
    Ok(Command {
        cmd_id,
        kflags,
        cdb,
        iovs,
        bidi_iovs,
        dif_iovs,
        pos,
    })
}

fn decode_tmr(mem: &Region, geo: &Geometry, pos: u32, len: u32) -> Result<Tmr, RingError> {
    if (len as usize) < abi::TMR_ENTRY_SIZE {
        return Err(bad(
            pos,
            format!(
                "TMR entry of {len} bytes, less than {}",
                abi::TMR_ENTRY_SIZE
            ),
        ));
    }
    let base = geo.ring_addr(pos);
    let raw_type = mem.read_u8(base + abi::TMR_TMR_TYPE_OFFSET as u64)?;
    let cnt = mem.read_u32(base + abi::TMR_CMD_CNT_OFFSET as u64)? as u64;
    if abi::TMR_CMD_IDS_OFFSET as u64 + cnt * 2 > len as u64 {
        return Err(bad(
            pos,
            format!("{cnt} TMR command ids do not fit in {len} bytes"),
        ));
    }
    let mut cmd_ids = Vec::with_capacity(cnt as usize);
    for i in 0..cnt {
        cmd_ids.push(mem.read_u16(base + abi::TMR_CMD_IDS_OFFSET as u64 + 2 * i)?);
    }
    Ok(Tmr {
        raw_type,
        tmr_type: abi::TmrType::from_raw(raw_type).ok(),
        cmd_ids,
        pos,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CMDR_OFF: u32 = abi::MAILBOX_SIZE as u32;
    const CMDR_SIZE: u32 = 1024;
    const MAP: usize = 8192;

    fn geo() -> Geometry {
        Geometry {
            cmdr_off: CMDR_OFF,
            cmdr_size: CMDR_SIZE,
            map_len: MAP as u64,
            flags: 0,
        }
    }

    fn data_off() -> u64 {
        (CMDR_OFF + CMDR_SIZE) as u64
    }

    /// Writes a command entry at `pos` with the given iovecs and CDB.
    fn put_cmd(mem: &mut Region, pos: u32, id: u16, iovs: &[(u64, u64)], cdb: &[u8]) -> u32 {
        let base = (CMDR_OFF + pos) as u64;
        let bsize = abi::cmd_entry_base_size(iovs.len()).unwrap();
        let len = abi::op_align(bsize + cdb.len()).unwrap() as u32;
        mem.write_u32(base, abi::hdr_len_op(len, abi::Opcode::Cmd))
            .unwrap();
        mem.write_u16(base + 4, id).unwrap();
        mem.write_u32(base + abi::REQ_IOV_CNT_OFFSET as u64, iovs.len() as u32)
            .unwrap();
        for (i, (o, l)) in iovs.iter().enumerate() {
            let at = base + (abi::REQ_IOV_OFFSET + 16 * i) as u64;
            mem.write_u64(at, *o).unwrap();
            mem.write_u64(at + 8, *l).unwrap();
        }
        mem.write_u64(base + abi::REQ_CDB_OFF_OFFSET as u64, base + bsize as u64)
            .unwrap();
        mem.write_bytes(base + bsize as u64, cdb).unwrap();
        len
    }

    #[test]
    fn command_roundtrip() {
        let mut mem = Region::new_zeroed(MAP);
        let d = data_off();
        let cdb = [0x28, 0, 0, 0, 0, 1, 0, 0, 8, 0];
        let len = put_cmd(&mut mem, 16, 7, &[(d, 512), (d + 512, 3584)], &cdb);
        assert_eq!(len, 128); // base max(48 + 32, 112) + 10-byte CDB, aligned
        let dec = decode(&mem, &geo(), 16, 1000).unwrap();
        assert_eq!(dec.len, 128);
        let Some(Entry::Cmd(c)) = dec.entry else {
            panic!()
        };
        assert_eq!(c.cmd_id, 7);
        assert_eq!(c.cdb, cdb);
        assert_eq!(c.iovs.len(), 2);
        assert_eq!(c.iovs[1].off(), d + 512);
        assert_eq!(c.data_len(), 4096);
        assert!(c.bidi_iovs.is_empty());
    }

    #[test]
    fn variable_length_cdb() {
        let mut mem = Region::new_zeroed(MAP);
        let mut cdb = vec![0u8; 32];
        cdb[0] = 0x7f;
        cdb[7] = 24;
        put_cmd(&mut mem, 0, 1, &[], &cdb);
        let Some(Entry::Cmd(c)) = decode(&mem, &geo(), 0, 1000).unwrap().entry else {
            panic!()
        };
        assert_eq!(c.cdb.len(), 32);
        // Claimed additional length larger than the entry.
        let base = CMDR_OFF as u64 + 112;
        mem.write_u8(base + 7, 200).unwrap();
        assert!(matches!(
            decode(&mem, &geo(), 0, 1000),
            Err(RingError::BadEntry { .. })
        ));
    }

    #[test]
    fn scsi_sizes() {
        assert_eq!(scsi_command_size(0x12, 0), 6);
        assert_eq!(scsi_command_size(0x28, 0), 10);
        assert_eq!(scsi_command_size(0x5a, 0), 10);
        assert_eq!(scsi_command_size(0x88, 0), 16);
        assert_eq!(scsi_command_size(0xa8, 0), 12);
        assert_eq!(scsi_command_size(0x7f, 0x18), 32);
        assert_eq!(scsi_command_size(0xff, 0), 10);
    }

    #[test]
    fn rejects_bad_lengths() {
        let mut mem = Region::new_zeroed(MAP);
        let g = geo();
        // Zero length.
        assert!(matches!(
            decode(&mem, &g, 0, 64),
            Err(RingError::BadEntry { .. })
        ));
        // Longer than what the head allows.
        mem.write_u32(CMDR_OFF as u64, abi::hdr_len_op(128, abi::Opcode::Pad))
            .unwrap();
        assert!(decode(&mem, &g, 0, 120).is_err());
        assert_eq!(
            decode(&mem, &g, 0, 128).unwrap(),
            Decoded {
                entry: None,
                len: 128
            }
        );
        // Running past the end of the ring.
        let pos = CMDR_SIZE - 64;
        mem.write_u32(
            (CMDR_OFF + pos) as u64,
            abi::hdr_len_op(72, abi::Opcode::Pad),
        )
        .unwrap();
        assert!(decode(&mem, &g, pos, 200).is_err());
        // Misaligned position, position past the ring, too little room.
        assert!(decode(&mem, &g, 4, 200).is_err());
        assert!(decode(&mem, &g, CMDR_SIZE, 200).is_err());
        assert!(decode(&mem, &g, 0, 4).is_err());
        // A command entry shorter than struct tcmu_cmd_entry.
        mem.write_u32(CMDR_OFF as u64, abi::hdr_len_op(64, abi::Opcode::Cmd))
            .unwrap();
        assert!(decode(&mem, &g, 0, 200).is_err());
    }

    #[test]
    fn rejects_bad_iovecs_and_cdb() {
        let g = geo();
        let d = data_off();
        let cdb = [0u8; 6];
        for iov in [
            (0u64, 16u64),
            (d - 8, 16),
            (d, MAP as u64),
            (u64::MAX, 2),
            (d + 8, u64::MAX),
        ] {
            let mut mem = Region::new_zeroed(MAP);
            put_cmd(&mut mem, 0, 1, &[iov], &cdb);
            assert!(
                matches!(decode(&mem, &g, 0, 512), Err(RingError::BadEntry { .. })),
                "{iov:?}"
            );
        }
        // An iovec ending exactly at the end of the mapping is fine.
        let mut mem = Region::new_zeroed(MAP);
        put_cmd(&mut mem, 0, 1, &[(d, MAP as u64 - d)], &cdb);
        assert!(decode(&mem, &g, 0, 512).is_ok());
        // Huge iovec counts.
        mem.write_u32(CMDR_OFF as u64 + abi::REQ_IOV_CNT_OFFSET as u64, u32::MAX)
            .unwrap();
        assert!(decode(&mem, &g, 0, 512).is_err());
        let mut mem = Region::new_zeroed(MAP);
        put_cmd(&mut mem, 0, 1, &[], &cdb);
        mem.write_u32(CMDR_OFF as u64 + abi::REQ_IOV_BIDI_CNT_OFFSET as u64, 5)
            .unwrap();
        assert!(decode(&mem, &g, 0, 512).is_err());
        // CDB offsets outside the entry or inside the iovec array.
        for off in [
            0u64,
            CMDR_OFF as u64 + 40,
            CMDR_OFF as u64 + 116,
            CMDR_OFF as u64 + 120,
            u64::MAX,
        ] {
            let mut mem = Region::new_zeroed(MAP);
            put_cmd(&mut mem, 0, 1, &[], &cdb);
            mem.write_u64(CMDR_OFF as u64 + abi::REQ_CDB_OFF_OFFSET as u64, off)
                .unwrap();
            assert!(decode(&mem, &g, 0, 512).is_err(), "{off:#x}");
        }
    }

    #[test]
    fn tmr_and_unknown() {
        let mut mem = Region::new_zeroed(MAP);
        let g = geo();
        let base = CMDR_OFF as u64;
        mem.write_u32(base, abi::hdr_len_op(40, abi::Opcode::Tmr))
            .unwrap();
        mem.write_u8(
            base + abi::TMR_TMR_TYPE_OFFSET as u64,
            abi::TCMU_TMR_ABORT_TASK,
        )
        .unwrap();
        mem.write_u32(base + abi::TMR_CMD_CNT_OFFSET as u64, 3)
            .unwrap();
        for (i, id) in [5u16, 6, 9].iter().enumerate() {
            mem.write_u16(base + 32 + 2 * i as u64, *id).unwrap();
        }
        let dec = decode(&mem, &g, 0, 64).unwrap();
        assert_eq!(
            dec.entry,
            Some(Entry::Tmr(Tmr {
                raw_type: 1,
                tmr_type: Some(abi::TmrType::AbortTask),
                cmd_ids: vec![5, 6, 9],
                pos: 0
            }))
        );
        mem.write_u32(base + abi::TMR_CMD_CNT_OFFSET as u64, 5)
            .unwrap();
        assert!(decode(&mem, &g, 0, 64).is_err());
        mem.write_u32(base, 16 | 5).unwrap();
        assert_eq!(
            decode(&mem, &g, 0, 64).unwrap().entry,
            Some(Entry::Unknown {
                op: 5,
                pos: 0,
                len: 16
            })
        );
    }
}
