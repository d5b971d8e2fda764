// SPDX-License-Identifier: GPL-2.0

//! SCSI block command emulation (the part that needs no data buffers).
//!
//! [`decode`] turns a CDB into an [`Op`]: either a media access for the
//! caller to perform (READ, WRITE, VERIFY, SYNCHRONIZE CACHE), a ready
//! Data-In payload (INQUIRY, READ CAPACITY, MODE SENSE, ...), or a
//! [`Sense`] for CHECK CONDITION. Payloads are already truncated to the
//! CDB's allocation length.

/// Sense keys.
pub mod key {
    /// NO SENSE.
    pub const NO_SENSE: u8 = 0x00;
    /// MEDIUM ERROR.
    pub const MEDIUM_ERROR: u8 = 0x03;
    /// HARDWARE ERROR.
    pub const HARDWARE_ERROR: u8 = 0x04;
    /// ILLEGAL REQUEST.
    pub const ILLEGAL_REQUEST: u8 = 0x05;
    /// MISCOMPARE.
    pub const MISCOMPARE: u8 = 0x0e;
}

/// Sense data for CHECK CONDITION (fixed format).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sense {
    /// Sense key.
    pub key: u8,
    /// Additional sense code.
    pub asc: u8,
    /// Additional sense code qualifier.
    pub ascq: u8,
    /// Field pointer for ILLEGAL REQUEST: byte of the CDB (C/D = 1) and
    /// optional bit.
    pub field: Option<(u16, Option<u8>)>,
}

impl Sense {
    /// A sense without field pointer.
    pub const fn new(key: u8, asc: u8, ascq: u8) -> Self {
        Sense {
            key,
            asc,
            ascq,
            field: None,
        }
    }

    /// ILLEGAL REQUEST / INVALID COMMAND OPERATION CODE (0x20/0x00).
    pub const fn invalid_opcode() -> Self {
        Sense {
            key: key::ILLEGAL_REQUEST,
            asc: 0x20,
            ascq: 0,
            field: Some((0, None)),
        }
    }

    /// ILLEGAL REQUEST / LOGICAL BLOCK ADDRESS OUT OF RANGE (0x21/0x00).
    pub const fn lba_out_of_range() -> Self {
        Self::new(key::ILLEGAL_REQUEST, 0x21, 0)
    }

    /// ILLEGAL REQUEST / INVALID FIELD IN CDB (0x24/0x00), pointing at
    /// `byte` (and `bit`) of the CDB.
    pub const fn invalid_field(byte: u16, bit: Option<u8>) -> Self {
        Sense {
            key: key::ILLEGAL_REQUEST,
            asc: 0x24,
            ascq: 0,
            field: Some((byte, bit)),
        }
    }

    /// ILLEGAL REQUEST / SAVING PARAMETERS NOT SUPPORTED (0x39/0x00).
    pub const fn saving_not_supported() -> Self {
        Self::new(key::ILLEGAL_REQUEST, 0x39, 0)
    }

    /// MEDIUM ERROR / UNRECOVERED READ ERROR (0x11/0x00).
    pub const fn read_error() -> Self {
        Self::new(key::MEDIUM_ERROR, 0x11, 0)
    }

    /// MEDIUM ERROR / WRITE ERROR (0x0c/0x00).
    pub const fn write_error() -> Self {
        Self::new(key::MEDIUM_ERROR, 0x0c, 0)
    }

    /// MISCOMPARE / MISCOMPARE DURING VERIFY OPERATION (0x1d/0x00).
    pub const fn miscompare() -> Self {
        Self::new(key::MISCOMPARE, 0x1d, 0)
    }

    /// HARDWARE ERROR / INTERNAL TARGET FAILURE (0x44/0x00).
    pub const fn internal_failure() -> Self {
        Self::new(key::HARDWARE_ERROR, 0x44, 0)
    }

    /// Fixed-format sense data (response code 0x70, 18 bytes).
    pub fn fixed(&self) -> [u8; 18] {
        let mut b = [0u8; 18];
        b[0] = 0x70;
        b[2] = self.key & 0x0f;
        b[7] = 10; // additional sense length
        b[12] = self.asc;
        b[13] = self.ascq;
        if let Some((byte, bit)) = self.field {
            // SKSV, C/D (the error is in the CDB), BPV + bit pointer.
            b[15] = 0x80 | 0x40 | bit.map_or(0, |bit| 0x08 | (bit & 7));
            b[16..18].copy_from_slice(&byte.to_be_bytes());
        }
        b
    }
}

/// What the handler knows about the logical unit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LunParams {
    /// Logical block size in bytes (`attrib/hw_block_size`).
    pub block_size: u32,
    /// Number of logical blocks (`dev_size / block_size`).
    pub num_blocks: u64,
    /// Maximum transfer length in blocks (`attrib/hw_max_sectors`), for
    /// the Block Limits VPD page.
    pub max_sectors: u32,
    /// Whether a volatile write cache is enabled (WCE in the caching mode
    /// page); if so the initiator sends SYNCHRONIZE CACHE.
    pub write_cache: bool,
    /// Whether the medium is non-rotating (Block Device Characteristics).
    pub non_rotational: bool,
    /// Unit serial number (VPD 0x80), printable ASCII.
    pub serial: String,
    /// T10 vendor identification (8 bytes, space padded).
    pub vendor: String,
    /// Product identification (16 bytes, space padded).
    pub product: String,
    /// Product revision level (4 bytes, space padded).
    pub revision: String,
}

impl LunParams {
    /// Parameters with the given geometry and defaults for the rest.
    pub fn new(block_size: u32, num_blocks: u64) -> Self {
        LunParams {
            block_size,
            num_blocks,
            max_sectors: 128,
            write_cache: false,
            non_rotational: true,
            serial: "tcmu-rs".into(),
            vendor: "TCMU-RS".into(),
            product: "tcmu-rs-handler".into(),
            revision: "0001".into(),
        }
    }

    /// Last LBA (`num_blocks - 1`, 0 for an empty unit).
    pub fn last_lba(&self) -> u64 {
        self.num_blocks.saturating_sub(1)
    }
}

/// What to do for a CDB.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Read `blocks` blocks at `lba` into the Data-In buffer.
    Read {
        /// First block.
        lba: u64,
        /// Number of blocks.
        blocks: u32,
        /// FUA bit (data must come from the medium: nothing to do here).
        fua: bool,
    },
    /// Write `blocks` blocks from the Data-Out buffer at `lba`.
    Write {
        /// First block.
        lba: u64,
        /// Number of blocks.
        blocks: u32,
        /// FUA bit: the data must be on stable storage at completion.
        fua: bool,
        /// WRITE AND VERIFY.
        verify: bool,
    },
    /// VERIFY: range check only (`bytchk` 0), compare `blocks` blocks of
    /// Data-Out with the medium (1), or one block of Data-Out with each of
    /// the `blocks` blocks (3).
    Verify {
        /// First block.
        lba: u64,
        /// Number of blocks.
        blocks: u32,
        /// BYTCHK field.
        bytchk: u8,
    },
    /// SYNCHRONIZE CACHE (range already checked).
    Sync,
    /// Return this Data-In payload (already truncated to the allocation
    /// length).
    DataIn(Vec<u8>),
    /// Nothing to do: GOOD.
    Good,
}

/// SCSI operation codes handled here.
pub mod opc {
    #![allow(missing_docs)]
    pub const TEST_UNIT_READY: u8 = 0x00;
    pub const REQUEST_SENSE: u8 = 0x03;
    pub const READ_6: u8 = 0x08;
    pub const WRITE_6: u8 = 0x0a;
    pub const INQUIRY: u8 = 0x12;
    pub const MODE_SENSE_6: u8 = 0x1a;
    pub const START_STOP_UNIT: u8 = 0x1b;
    pub const READ_CAPACITY_10: u8 = 0x25;
    pub const READ_10: u8 = 0x28;
    pub const WRITE_10: u8 = 0x2a;
    pub const WRITE_VERIFY_10: u8 = 0x2e;
    pub const VERIFY_10: u8 = 0x2f;
    pub const SYNCHRONIZE_CACHE_10: u8 = 0x35;
    pub const MODE_SENSE_10: u8 = 0x5a;
    pub const READ_16: u8 = 0x88;
    pub const WRITE_16: u8 = 0x8a;
    pub const WRITE_VERIFY_16: u8 = 0x8e;
    pub const VERIFY_16: u8 = 0x8f;
    pub const SYNCHRONIZE_CACHE_16: u8 = 0x91;
    pub const SERVICE_ACTION_IN_16: u8 = 0x9e;
    pub const SAI_READ_CAPACITY_16: u8 = 0x10;
    pub const REPORT_LUNS: u8 = 0xa0;
    pub const READ_12: u8 = 0xa8;
    pub const WRITE_12: u8 = 0xaa;
    pub const WRITE_VERIFY_12: u8 = 0xae;
    pub const VERIFY_12: u8 = 0xaf;
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn be64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_be_bytes(a)
}

/// Fails unless `lba..lba + blocks` is on the unit.
pub fn check_range(lun: &LunParams, lba: u64, blocks: u64) -> Result<(), Sense> {
    match lba.checked_add(blocks) {
        Some(end) if end <= lun.num_blocks && lba < lun.num_blocks.max(1) => Ok(()),
        // A zero-length transfer at the last LBA + 1 is still out of range.
        _ => Err(Sense::lba_out_of_range()),
    }
}

fn truncate(mut v: Vec<u8>, alloc: usize) -> Vec<u8> {
    v.truncate(alloc);
    v
}

/// Decodes `cdb` for a unit with parameters `lun`.
pub fn decode(cdb: &[u8], lun: &LunParams) -> Result<Op, Sense> {
    let Some(&op) = cdb.first() else {
        return Err(Sense::invalid_opcode());
    };
    let need = tcmu_ring::entry::scsi_command_size(op, cdb.get(7).copied().unwrap_or(0));
    if cdb.len() < need {
        return Err(Sense::invalid_opcode());
    }
    match op {
        opc::TEST_UNIT_READY | opc::START_STOP_UNIT => Ok(Op::Good),
        opc::READ_6 | opc::WRITE_6 => {
            let lba = (((cdb[1] & 0x1f) as u64) << 16) | ((cdb[2] as u64) << 8) | cdb[3] as u64;
            let blocks = if cdb[4] == 0 { 256 } else { cdb[4] as u32 };
            check_range(lun, lba, blocks as u64)?;
            Ok(if op == opc::READ_6 {
                Op::Read {
                    lba,
                    blocks,
                    fua: false,
                }
            } else {
                Op::Write {
                    lba,
                    blocks,
                    fua: false,
                    verify: false,
                }
            })
        }
        opc::READ_10 | opc::WRITE_10 | opc::WRITE_VERIFY_10 | opc::VERIFY_10 => {
            rw(op, cdb, be32(&cdb[2..]) as u64, be16(&cdb[7..]) as u32, lun)
        }
        opc::READ_12 | opc::WRITE_12 | opc::WRITE_VERIFY_12 | opc::VERIFY_12 => {
            rw(op, cdb, be32(&cdb[2..]) as u64, be32(&cdb[6..]), lun)
        }
        opc::READ_16 | opc::WRITE_16 | opc::WRITE_VERIFY_16 | opc::VERIFY_16 => {
            rw(op, cdb, be64(&cdb[2..]), be32(&cdb[10..]), lun)
        }
        opc::SYNCHRONIZE_CACHE_10 => {
            check_range(lun, be32(&cdb[2..]) as u64, be16(&cdb[7..]) as u64)?;
            Ok(Op::Sync)
        }
        opc::SYNCHRONIZE_CACHE_16 => {
            check_range(lun, be64(&cdb[2..]), be32(&cdb[10..]) as u64)?;
            Ok(Op::Sync)
        }
        opc::INQUIRY => inquiry(cdb, lun),
        opc::READ_CAPACITY_10 => {
            let pmi = cdb[8] & 1 != 0;
            if !pmi && be32(&cdb[2..]) != 0 {
                return Err(Sense::invalid_field(2, None));
            }
            let mut b = Vec::with_capacity(8);
            b.extend_from_slice(&(lun.last_lba().min(0xffff_ffff) as u32).to_be_bytes());
            b.extend_from_slice(&lun.block_size.to_be_bytes());
            Ok(Op::DataIn(b))
        }
        opc::SERVICE_ACTION_IN_16 => {
            if cdb[1] & 0x1f != opc::SAI_READ_CAPACITY_16 {
                return Err(Sense::invalid_field(1, Some(4)));
            }
            let pmi = cdb[14] & 1 != 0;
            if !pmi && be64(&cdb[2..]) != 0 {
                return Err(Sense::invalid_field(2, None));
            }
            Ok(Op::DataIn(truncate(
                read_capacity_16(lun),
                be32(&cdb[10..]) as usize,
            )))
        }
        opc::MODE_SENSE_6 | opc::MODE_SENSE_10 => mode_sense(cdb, lun),
        opc::REQUEST_SENSE => {
            let desc = cdb[1] & 1 != 0;
            let b = if desc {
                let mut b = vec![0u8; 8];
                b[0] = 0x72;
                b
            } else {
                Sense::new(key::NO_SENSE, 0, 0).fixed().to_vec()
            };
            Ok(Op::DataIn(truncate(b, cdb[4] as usize)))
        }
        opc::REPORT_LUNS => {
            let alloc = be32(&cdb[6..]) as usize;
            if alloc < 16 {
                return Err(Sense::invalid_field(6, None));
            }
            let select = cdb[2];
            let luns: &[u8] = if matches!(select, 0x00 | 0x02) {
                &[0u8; 8]
            } else {
                &[]
            };
            if !matches!(select, 0x00..=0x02 | 0x10..=0x12) {
                return Err(Sense::invalid_field(2, None));
            }
            let mut b = Vec::with_capacity(16);
            b.extend_from_slice(&(luns.len() as u32).to_be_bytes());
            b.extend_from_slice(&[0u8; 4]);
            b.extend_from_slice(luns);
            Ok(Op::DataIn(truncate(b, alloc)))
        }
        _ => Err(Sense::invalid_opcode()),
    }
}

fn rw(op: u8, cdb: &[u8], lba: u64, blocks: u32, lun: &LunParams) -> Result<Op, Sense> {
    check_range(lun, lba, blocks as u64)?;
    let fua = cdb[1] & 0x08 != 0;
    Ok(match op {
        opc::READ_10 | opc::READ_12 | opc::READ_16 => Op::Read { lba, blocks, fua },
        opc::WRITE_10 | opc::WRITE_12 | opc::WRITE_16 => Op::Write {
            lba,
            blocks,
            fua,
            verify: false,
        },
        opc::WRITE_VERIFY_10 | opc::WRITE_VERIFY_12 | opc::WRITE_VERIFY_16 => Op::Write {
            lba,
            blocks,
            fua: true,
            verify: true,
        },
        _ => {
            let bytchk = (cdb[1] >> 1) & 3;
            if bytchk == 2 {
                return Err(Sense::invalid_field(1, Some(2)));
            }
            Op::Verify {
                lba,
                blocks,
                bytchk,
            }
        }
    })
}

fn padded(s: &str, n: usize) -> Vec<u8> {
    let mut v: Vec<u8> = s
        .bytes()
        .filter(|b| (0x20..0x7f).contains(b))
        .take(n)
        .collect();
    v.resize(n, b' ');
    v
}

/// VPD pages reported in the Supported VPD Pages page.
pub const VPD_PAGES: [u8; 5] = [0x00, 0x80, 0x83, 0xb0, 0xb1];

/// IEEE company id used in the NAA designator (the one LIO and
/// tcmu-runner use).
pub const NAA_OUI: u32 = 0x001405;

fn inquiry(cdb: &[u8], lun: &LunParams) -> Result<Op, Sense> {
    let evpd = cdb[1] & 1 != 0;
    if cdb[1] & 0x02 != 0 {
        return Err(Sense::invalid_field(1, Some(1))); // CMDDT
    }
    let page = cdb[2];
    let alloc = be16(&cdb[3..]) as usize;
    let data = if !evpd {
        if page != 0 {
            return Err(Sense::invalid_field(2, None));
        }
        standard_inquiry(lun)
    } else {
        vpd_page(page, lun).ok_or(Sense::invalid_field(2, None))?
    };
    Ok(Op::DataIn(truncate(data, alloc)))
}

/// Standard INQUIRY data (36 bytes).
pub fn standard_inquiry(lun: &LunParams) -> Vec<u8> {
    let mut b = vec![0u8; 8];
    b[0] = 0x00; // peripheral qualifier 0, direct access block device
    b[2] = 0x06; // SPC-4
    b[3] = 0x02; // response data format 2
    b[7] = 0x02; // CmdQue
    b.extend(padded(&lun.vendor, 8));
    b.extend(padded(&lun.product, 16));
    b.extend(padded(&lun.revision, 4));
    b[4] = (b.len() - 5) as u8;
    b
}

/// NAA IEEE Registered Extended (type 6) identifier: the OUI, then the hex
/// digits of the serial number (others ignored), zero padded.
pub fn naa_id(serial: &str) -> [u8; 16] {
    let mut nib = vec![6u8];
    nib.extend((0..6).rev().map(|i| ((NAA_OUI >> (4 * i)) & 0xf) as u8));
    nib.extend(
        serial
            .chars()
            .filter_map(|c| c.to_digit(16))
            .map(|d| d as u8)
            .take(32 - nib.len()),
    );
    nib.resize(32, 0);
    let mut out = [0u8; 16];
    for (i, o) in out.iter_mut().enumerate() {
        *o = (nib[2 * i] << 4) | nib[2 * i + 1];
    }
    out
}

/// A VPD page, `None` if not supported.
pub fn vpd_page(page: u8, lun: &LunParams) -> Option<Vec<u8>> {
    let mut b = vec![0u8, page, 0, 0];
    match page {
        0x00 => b.extend_from_slice(&VPD_PAGES),
        0x80 => b.extend(padded(&lun.serial, lun.serial.len().min(250))),
        0x83 => {
            // NAA designator, binary, LU association.
            b.extend_from_slice(&[0x01, 0x03, 0x00, 16]);
            b.extend_from_slice(&naa_id(&lun.serial));
            // T10 vendor id designator, ASCII: vendor + serial.
            let mut id = padded(&lun.vendor, 8);
            id.extend(padded(&lun.serial, lun.serial.len().min(200)));
            b.extend_from_slice(&[0x02, 0x01, 0x00, id.len() as u8]);
            b.extend(id);
        }
        0xb0 => {
            b.resize(64, 0);
            // Optimal transfer length granularity: 1 block.
            b[6..8].copy_from_slice(&1u16.to_be_bytes());
            b[8..12].copy_from_slice(&lun.max_sectors.to_be_bytes());
            b[12..16].copy_from_slice(&lun.max_sectors.to_be_bytes());
        }
        0xb1 => {
            b.resize(64, 0);
            let rate: u16 = if lun.non_rotational { 1 } else { 0 };
            b[4..6].copy_from_slice(&rate.to_be_bytes());
        }
        _ => return None,
    }
    let len = (b.len() - 4) as u16;
    b[2..4].copy_from_slice(&len.to_be_bytes());
    Some(b)
}

/// READ CAPACITY(16) parameter data (32 bytes).
pub fn read_capacity_16(lun: &LunParams) -> Vec<u8> {
    let mut b = vec![0u8; 32];
    b[0..8].copy_from_slice(&lun.last_lba().to_be_bytes());
    b[8..12].copy_from_slice(&lun.block_size.to_be_bytes());
    b
}

/// Caching mode page (0x08), current values.
pub fn caching_page(lun: &LunParams, changeable: bool) -> Vec<u8> {
    let mut p = vec![0u8; 20];
    p[0] = 0x08;
    p[1] = 0x12;
    if lun.write_cache && !changeable {
        p[2] |= 0x04; // WCE
    }
    p
}

/// Control mode page (0x0a).
pub fn control_page(changeable: bool) -> Vec<u8> {
    let mut p = vec![0u8; 12];
    p[0] = 0x0a;
    p[1] = 0x0a;
    if !changeable {
        p[3] = 0x10; // queue algorithm modifier 1: unrestricted reordering
        p[8..10].copy_from_slice(&0xffffu16.to_be_bytes()); // busy timeout: unlimited
    }
    p
}

fn mode_sense(cdb: &[u8], lun: &LunParams) -> Result<Op, Sense> {
    let ten = cdb[0] == opc::MODE_SENSE_10;
    let dbd = cdb[1] & 0x08 != 0;
    let llbaa = ten && cdb[1] & 0x10 != 0;
    let pc = cdb[2] >> 6;
    let page = cdb[2] & 0x3f;
    let subpage = cdb[3];
    let alloc = if ten {
        be16(&cdb[7..]) as usize
    } else {
        cdb[4] as usize
    };
    if pc == 3 {
        return Err(Sense::saving_not_supported());
    }
    let changeable = pc == 1;
    let mut pages = Vec::new();
    match (page, subpage) {
        (0x08, 0) => pages.extend(caching_page(lun, changeable)),
        (0x0a, 0) => pages.extend(control_page(changeable)),
        (0x3f, 0) | (0x3f, 0xff) => {
            pages.extend(caching_page(lun, changeable));
            pages.extend(control_page(changeable));
        }
        (0x08 | 0x0a | 0x3f, _) => return Err(Sense::invalid_field(3, None)),
        _ => return Err(Sense::invalid_field(2, Some(5))),
    }
    let mut bd = Vec::new();
    if !dbd {
        if llbaa {
            bd.extend_from_slice(&lun.num_blocks.to_be_bytes());
            bd.extend_from_slice(&[0u8; 4]);
            bd.extend_from_slice(&lun.block_size.to_be_bytes());
        } else {
            // Short LBA block descriptor (SBC): 4-byte block count (all
            // ones if too large), reserved byte, 3-byte block length.
            let n = lun.num_blocks.min(0xffff_ffff) as u32;
            bd.extend_from_slice(&n.to_be_bytes());
            bd.push(0);
            bd.extend_from_slice(&lun.block_size.to_be_bytes()[1..]);
        }
    }
    // Device-specific parameter: WP = 0, DPOFUA = 0.
    let mut b = if ten {
        let mut h = vec![0u8; 8];
        if llbaa && !dbd {
            h[4] = 1; // LONGLBA
        }
        h[6..8].copy_from_slice(&(bd.len() as u16).to_be_bytes());
        h
    } else {
        vec![0, 0, 0, bd.len() as u8]
    };
    b.extend(bd);
    b.extend(pages);
    if ten {
        let len = (b.len() - 2) as u16;
        b[0..2].copy_from_slice(&len.to_be_bytes());
    } else {
        b[0] = (b.len() - 1) as u8;
    }
    Ok(Op::DataIn(truncate(b, alloc)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lun() -> LunParams {
        let mut l = LunParams::new(512, 131072); // 64 MiB
        l.serial = "0123456789abcdef-xyz".into();
        l
    }

    fn data(cdb: &[u8]) -> Vec<u8> {
        match decode(cdb, &lun()) {
            Ok(Op::DataIn(v)) => v,
            other => panic!("{cdb:02x?}: {other:?}"),
        }
    }

    fn err(cdb: &[u8]) -> Sense {
        decode(cdb, &lun()).unwrap_err()
    }

    #[test]
    fn sense_format() {
        let s = Sense::lba_out_of_range().fixed();
        assert_eq!(
            s,
            [0x70, 0, 5, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x21, 0, 0, 0, 0, 0]
        );
        let s = Sense::invalid_field(2, None).fixed();
        assert_eq!((s[2], s[12], s[13]), (5, 0x24, 0));
        assert_eq!(&s[15..18], &[0xc0, 0, 2]);
        let s = Sense::invalid_field(1, Some(4)).fixed();
        assert_eq!(&s[15..18], &[0xcc, 0, 1]);
        let s = Sense::invalid_opcode().fixed();
        assert_eq!((s[2], s[12], s[13]), (5, 0x20, 0));
        assert_eq!(Sense::miscompare().fixed()[2], 0x0e);
    }

    #[test]
    fn read_write_decoding() {
        let l = lun();
        assert_eq!(
            decode(
                &[0x08, 0x1f, 0xff, 0xff, 0, 0],
                &LunParams::new(512, 1 << 22)
            ),
            Ok(Op::Read {
                lba: 0x1fffff,
                blocks: 256,
                fua: false
            })
        );
        assert_eq!(
            decode(&[0x0a, 0, 0, 1, 8, 0], &l),
            Ok(Op::Write {
                lba: 1,
                blocks: 8,
                fua: false,
                verify: false
            })
        );
        assert_eq!(
            decode(&[0x28, 0x08, 0, 0, 1, 0, 0, 0, 16, 0], &l),
            Ok(Op::Read {
                lba: 256,
                blocks: 16,
                fua: true
            })
        );
        assert_eq!(
            decode(&[0x2a, 0, 0, 1, 0xff, 0xf8, 0, 0, 8, 0], &l),
            Ok(Op::Write {
                lba: 131064,
                blocks: 8,
                fua: false,
                verify: false
            })
        );
        assert_eq!(
            decode(&[0xa8, 0, 0, 0, 0, 5, 0, 0, 0, 2, 0, 0], &l),
            Ok(Op::Read {
                lba: 5,
                blocks: 2,
                fua: false
            })
        );
        let mut c16 = [0u8; 16];
        c16[0] = 0x8a;
        c16[9] = 7;
        c16[13] = 1;
        assert_eq!(
            decode(&c16, &l),
            Ok(Op::Write {
                lba: 7,
                blocks: 1,
                fua: false,
                verify: false
            })
        );
        c16[0] = 0x88;
        assert_eq!(
            decode(&c16, &l),
            Ok(Op::Read {
                lba: 7,
                blocks: 1,
                fua: false
            })
        );
        c16[0] = 0x8e;
        assert_eq!(
            decode(&c16, &l),
            Ok(Op::Write {
                lba: 7,
                blocks: 1,
                fua: true,
                verify: true
            })
        );
        // Zero-length transfers are fine inside the unit.
        assert_eq!(
            decode(&[0x28, 0, 0, 0, 0, 0, 0, 0, 0, 0], &l),
            Ok(Op::Read {
                lba: 0,
                blocks: 0,
                fua: false
            })
        );
        // Short CDB.
        assert_eq!(decode(&[0x28, 0, 0], &l), Err(Sense::invalid_opcode()));
        assert_eq!(decode(&[], &l), Err(Sense::invalid_opcode()));
    }

    #[test]
    fn lba_checks() {
        let oor = Sense::lba_out_of_range();
        // Last block is fine, one past is not.
        assert!(decode(&[0x28, 0, 0, 1, 0xff, 0xff, 0, 0, 1, 0], &lun()).is_ok());
        assert_eq!(err(&[0x28, 0, 0, 1, 0xff, 0xff, 0, 0, 2, 0]), oor);
        assert_eq!(err(&[0x28, 0, 0, 2, 0, 0, 0, 0, 0, 0]), oor);
        assert_eq!(
            err(&[0x2a, 0, 0xff, 0xff, 0xff, 0xff, 0, 0xff, 0xff, 0]),
            oor
        );
        // READ(6) of 256 blocks crossing the end.
        assert_eq!(err(&[0x08, 0x01, 0xff, 0x80, 0, 0]), oor);
        // LBA + length overflowing u64.
        let mut c16 = [0xffu8; 16];
        c16[0] = 0x88;
        c16[1] = 0;
        c16[15] = 0;
        assert_eq!(err(&c16), oor);
        // SYNCHRONIZE CACHE ranges.
        assert_eq!(
            decode(&[0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0], &lun()),
            Ok(Op::Sync)
        );
        assert_eq!(err(&[0x35, 0, 0, 2, 0, 0, 0, 0, 0, 0]), oor);
        let mut s16 = [0u8; 16];
        s16[0] = 0x91;
        assert_eq!(decode(&s16, &lun()), Ok(Op::Sync));
        s16[2] = 1;
        assert_eq!(err(&s16), oor);
    }

    #[test]
    fn verify() {
        let l = lun();
        assert_eq!(
            decode(&[0x2f, 0, 0, 0, 0, 9, 0, 0, 3, 0], &l),
            Ok(Op::Verify {
                lba: 9,
                blocks: 3,
                bytchk: 0
            })
        );
        assert_eq!(
            decode(&[0x2f, 0x02, 0, 0, 0, 9, 0, 0, 3, 0], &l),
            Ok(Op::Verify {
                lba: 9,
                blocks: 3,
                bytchk: 1
            })
        );
        assert_eq!(
            decode(&[0x2f, 0x06, 0, 0, 0, 9, 0, 0, 3, 0], &l),
            Ok(Op::Verify {
                lba: 9,
                blocks: 3,
                bytchk: 3
            })
        );
        assert_eq!(
            decode(&[0x2f, 0x04, 0, 0, 0, 9, 0, 0, 3, 0], &l),
            Err(Sense::invalid_field(1, Some(2)))
        );
        let mut c = [0u8; 16];
        c[0] = 0x8f;
        c[13] = 1;
        assert_eq!(
            decode(&c, &l),
            Ok(Op::Verify {
                lba: 0,
                blocks: 1,
                bytchk: 0
            })
        );
        assert_eq!(
            decode(&[0xaf, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0], &l),
            Ok(Op::Verify {
                lba: 1,
                blocks: 1,
                bytchk: 0
            })
        );
    }

    #[test]
    fn simple_commands() {
        assert_eq!(decode(&[0; 6], &lun()), Ok(Op::Good));
        assert_eq!(decode(&[0x1b, 0, 0, 0, 1, 0], &lun()), Ok(Op::Good));
        assert_eq!(err(&[0x5d, 0, 0, 0, 0, 0]), Sense::invalid_opcode()); // SEND DIAGNOSTIC
        assert_eq!(
            err(&[0xa3, 0x0c, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0]),
            Sense::invalid_opcode()
        );
        assert_eq!(
            err(&[0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0]),
            Sense::invalid_opcode()
        ); // UNMAP
        let rs = data(&[0x03, 0, 0, 0, 252, 0]);
        assert_eq!(rs.len(), 18);
        assert_eq!((rs[0], rs[2], rs[7], rs[12]), (0x70, 0, 10, 0));
        assert_eq!(
            data(&[0x03, 1, 0, 0, 252, 0]),
            vec![0x72, 0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(data(&[0x03, 0, 0, 0, 8, 0]).len(), 8);
    }

    #[test]
    fn report_luns() {
        let r = data(&[0xa0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0]);
        assert_eq!(r, [0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        let r = data(&[0xa0, 0, 1, 0, 0, 0, 0, 0, 0x10, 0, 0, 0]);
        assert_eq!(r, [0u8; 8]);
        assert_eq!(
            err(&[0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0]),
            Sense::invalid_field(6, None)
        );
        assert_eq!(
            err(&[0xa0, 0, 7, 0, 0, 0, 0, 0, 16, 0, 0, 0]),
            Sense::invalid_field(2, None)
        );
    }

    #[test]
    fn inquiry_standard() {
        let d = data(&[0x12, 0, 0, 0, 96, 0]);
        assert_eq!(d.len(), 36);
        assert_eq!(d[0], 0);
        assert_eq!(d[2], 6);
        assert_eq!(d[3], 2);
        assert_eq!(d[4], 31);
        assert_eq!(d[7] & 0x02, 0x02);
        assert_eq!(&d[8..16], b"TCMU-RS ");
        assert_eq!(&d[16..32], b"tcmu-rs-handler ");
        assert_eq!(&d[32..36], b"0001");
        assert_eq!(data(&[0x12, 0, 0, 0, 5, 0]).len(), 5);
        assert_eq!(data(&[0x12, 0, 0, 0, 0, 0]).len(), 0);
        assert_eq!(
            err(&[0x12, 0, 0x80, 0, 96, 0]),
            Sense::invalid_field(2, None)
        );
        assert_eq!(
            err(&[0x12, 2, 0, 0, 96, 0]),
            Sense::invalid_field(1, Some(1))
        );
    }

    #[test]
    fn inquiry_vpd() {
        let d = data(&[0x12, 1, 0x00, 0, 255, 0]);
        assert_eq!(d, [0, 0, 0, 5, 0x00, 0x80, 0x83, 0xb0, 0xb1]);
        let d = data(&[0x12, 1, 0x80, 0, 255, 0]);
        assert_eq!(&d[..4], &[0, 0x80, 0, 20]);
        assert_eq!(&d[4..], b"0123456789abcdef-xyz");
        let d = data(&[0x12, 1, 0x83, 0, 255, 0]);
        assert_eq!(&d[..2], &[0, 0x83]);
        assert_eq!(be16(&d[2..]) as usize, d.len() - 4);
        assert_eq!(&d[4..8], &[0x01, 0x03, 0x00, 16]);
        assert_eq!(
            &d[8..24],
            &[0x60, 0x01, 0x40, 0x50, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0, 0, 0, 0]
        );
        assert_eq!(&d[24..28], &[0x02, 0x01, 0x00, 28]);
        assert_eq!(&d[28..], b"TCMU-RS 0123456789abcdef-xyz");
        let d = data(&[0x12, 1, 0xb0, 0, 255, 0]);
        assert_eq!(d.len(), 64);
        assert_eq!(&d[..4], &[0, 0xb0, 0, 0x3c]);
        assert_eq!(be32(&d[8..]), 128);
        let d = data(&[0x12, 1, 0xb1, 0, 255, 0]);
        assert_eq!(&d[..6], &[0, 0xb1, 0, 0x3c, 0, 1]);
        assert_eq!(
            err(&[0x12, 1, 0x89, 0, 255, 0]),
            Sense::invalid_field(2, None)
        );
        // Truncation to the allocation length.
        assert_eq!(data(&[0x12, 1, 0x83, 0, 4, 0]).len(), 4);
    }

    #[test]
    fn naa() {
        assert_eq!(
            naa_id(""),
            [0x60, 0x01, 0x40, 0x50, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        );
        let n = naa_id("8a4bb2b8-13f5-4b2a-8c60-4d9e2b1c7a11ffff");
        assert_eq!(n[3], 0x58);
        assert_eq!(
            n,
            [
                0x60, 0x01, 0x40, 0x58, 0xa4, 0xbb, 0x2b, 0x81, 0x3f, 0x54, 0xb2, 0xa8, 0xc6, 0x04,
                0xd9, 0xe2
            ]
        );
    }

    #[test]
    fn read_capacity() {
        assert_eq!(
            data(&[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            [0, 1, 0xff, 0xff, 0, 0, 2, 0]
        );
        assert_eq!(
            err(&[0x25, 0, 0, 0, 0, 1, 0, 0, 0, 0]),
            Sense::invalid_field(2, None)
        );
        assert!(decode(&[0x25, 0, 0, 0, 0, 1, 0, 0, 1, 0], &lun()).is_ok());
        let big = LunParams::new(4096, 1 << 40);
        match decode(&[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0], &big) {
            Ok(Op::DataIn(d)) => assert_eq!(d, [0xff, 0xff, 0xff, 0xff, 0, 0, 0x10, 0]),
            o => panic!("{o:?}"),
        }
        let mut c = [0u8; 16];
        c[0] = 0x9e;
        c[1] = 0x10;
        c[13] = 32;
        let d = data(&c);
        assert_eq!(d.len(), 32);
        assert_eq!(be64(&d), 131071);
        assert_eq!(be32(&d[8..]), 512);
        assert!(d[12..].iter().all(|&b| b == 0));
        c[13] = 12;
        assert_eq!(data(&c).len(), 12);
        c[1] = 0x11;
        assert_eq!(err(&c), Sense::invalid_field(1, Some(4)));
    }

    #[test]
    fn mode_sense_6() {
        let mut l = lun();
        // All pages with block descriptor.
        let d = data(&[0x1a, 0, 0x3f, 0, 255, 0]);
        assert_eq!(d[0] as usize, d.len() - 1);
        assert_eq!(d.len(), 4 + 8 + 20 + 12);
        assert_eq!(d[2], 0); // no WP, no DPOFUA
        assert_eq!(d[3], 8);
        assert_eq!(&d[4..12], &[0, 0x02, 0, 0, 0, 0, 0x02, 0]);
        assert_eq!(&d[12..14], &[0x08, 0x12]);
        assert_eq!(d[14] & 0x04, 0);
        assert_eq!(&d[32..34], &[0x0a, 0x0a]);
        // sd's first probe: 4 bytes of everything.
        assert_eq!(data(&[0x1a, 0, 0x3f, 0, 4, 0]), vec![43, 0, 0, 8]);
        // Caching page, DBD, write cache on.
        l.write_cache = true;
        let Ok(Op::DataIn(d)) = decode(&[0x1a, 0x08, 0x08, 0, 255, 0], &l) else {
            panic!()
        };
        assert_eq!(d.len(), 4 + 20);
        assert_eq!(d[3], 0);
        assert_eq!(d[4], 0x08);
        assert_eq!(d[6] & 0x04, 0x04);
        // Changeable values: nothing.
        let Ok(Op::DataIn(d)) = decode(&[0x1a, 0x08, 0x48, 0, 255, 0], &l) else {
            panic!()
        };
        assert_eq!(d[6], 0);
        // Control page alone.
        let d = data(&[0x1a, 0x08, 0x0a, 0, 255, 0]);
        assert_eq!(&d[4..6], &[0x0a, 0x0a]);
        assert_eq!(d.len(), 16);
        // Saved values, unknown pages and subpages.
        assert_eq!(
            err(&[0x1a, 0, 0xc8, 0, 255, 0]),
            Sense::saving_not_supported()
        );
        assert_eq!(
            err(&[0x1a, 0, 0x1c, 0, 255, 0]),
            Sense::invalid_field(2, Some(5))
        );
        assert_eq!(
            err(&[0x1a, 0, 0x08, 1, 255, 0]),
            Sense::invalid_field(3, None)
        );
        assert!(decode(&[0x1a, 0, 0x3f, 0xff, 255, 0], &lun()).is_ok());
    }

    #[test]
    fn mode_sense_10() {
        let d = data(&[0x5a, 0, 0x08, 0, 0, 0, 0, 1, 0, 0]);
        assert_eq!(be16(&d) as usize, d.len() - 2);
        assert_eq!(d.len(), 8 + 8 + 20);
        assert_eq!(be16(&d[6..]), 8);
        assert_eq!(&d[8..16], &[0, 0x02, 0, 0, 0, 0, 0x02, 0]);
        // LLBAA: 16-byte descriptor.
        let d = data(&[0x5a, 0x10, 0x0a, 0, 0, 0, 0, 1, 0, 0]);
        assert_eq!(d[4], 1);
        assert_eq!(be16(&d[6..]), 16);
        assert_eq!(be64(&d[8..]), 131072);
        assert_eq!(be32(&d[20..]), 512);
        assert_eq!(&d[24..26], &[0x0a, 0x0a]);
        // DBD.
        let d = data(&[0x5a, 0x08, 0x3f, 0, 0, 0, 0, 1, 0, 0]);
        assert_eq!(d.len(), 8 + 32);
        assert_eq!(data(&[0x5a, 0x08, 0x3f, 0, 0, 0, 0, 0, 8, 0]).len(), 8);
    }
}
