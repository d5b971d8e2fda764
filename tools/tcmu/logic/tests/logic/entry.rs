// SPDX-License-Identifier: GPL-2.0

//! Encoding of ring entries.

use tcmu_logic::abi::*;
use tcmu_logic::entry::{
    cmd_entry_size, tmr_entry_size, write_pad, write_tmr, EntrySink,
};

/// `write_cmd` with the entry's fields as arguments, as the tests spell them.
#[allow(clippy::too_many_arguments)]
pub(crate) fn write_cmd<S: tcmu_logic::entry::EntrySink + ?Sized>(
    sink: &mut S,
    cmdr_off: usize,
    offset: usize,
    total: usize,
    base: usize,
    cmd_id: u16,
    iovs: &[Iovec],
    iov_cnt: u32,
    iov_bidi_cnt: u32,
    cdb: &[u8],
) -> Option<()> {
    let e = tcmu_logic::entry::CmdEntry {
        offset,
        total,
        base,
        cmd_id,
        iovs,
        iov_cnt,
        iov_bidi_cnt,
        cdb,
    };
    tcmu_logic::entry::write_cmd(sink, cmdr_off, &e)
}

pub fn rd_u16(b: &[u8], off: usize) -> u16 {
    u16::from_ne_bytes(b[off..off + 2].try_into().unwrap())
}
pub fn rd_u32(b: &[u8], off: usize) -> u32 {
    u32::from_ne_bytes(b[off..off + 4].try_into().unwrap())
}
pub fn rd_u64(b: &[u8], off: usize) -> u64 {
    u64::from_ne_bytes(b[off..off + 8].try_into().unwrap())
}

#[test]
fn cmd_sizes_match_c() {
    // base = max(offsetof(req.iov[n]) = 48 + 16 n, 112)
    assert_eq!(cmd_entry_size(0, 6), Some((112, 120)));
    assert_eq!(cmd_entry_size(4, 6), Some((112, 120)));
    assert_eq!(cmd_entry_size(5, 10), Some((128, 144)));
    assert_eq!(cmd_entry_size(5, 16), Some((128, 144)));
    assert_eq!(cmd_entry_size(1, 32), Some((112, 144)));
    assert_eq!(cmd_entry_size(1, 0), Some((112, 112)));
    assert_eq!(cmd_entry_size(100, 260), Some((1648, 1648 + 264)));
    assert_eq!(cmd_entry_size(usize::MAX / 4, 6), None);
    assert_eq!(cmd_entry_size(1, usize::MAX), None);
    // Does not fit in len_op.
    assert_eq!(cmd_entry_size(1 << 28, 6), None);
}

#[test]
fn tmr_sizes_match_c() {
    assert_eq!(tmr_entry_size(0), Some(32));
    assert_eq!(tmr_entry_size(1), Some(40));
    assert_eq!(tmr_entry_size(4), Some(40));
    assert_eq!(tmr_entry_size(5), Some(48));
    assert_eq!(tmr_entry_size(65535), Some(32 + 131_072 - 2 + 2));
    assert_eq!(tmr_entry_size(usize::MAX), None);
}

#[test]
fn pad_header_only() {
    let mut b = vec![0xaau8; 256];
    write_pad(&mut b[..], 128, 64, 40).unwrap();
    let e = 128 + 64;
    assert_eq!(rd_u32(&b, e), 40 | TCMU_OP_PAD);
    assert_eq!(rd_u16(&b, e + 4), 0);
    assert_eq!(b[e + 6], 0);
    assert_eq!(b[e + 7], 0);
    // Body untouched, like C.
    assert!(b[e + 8..e + 40].iter().all(|&x| x == 0xaa));
    assert!(b[..e].iter().all(|&x| x == 0xaa));
    assert_eq!(write_pad(&mut b[..], 128, 64, 0), None);
    assert_eq!(write_pad(&mut b[..], 128, 64, 12), None);
    assert_eq!(write_pad(&mut b[..], 128, 128, 8), None); // out of range
    assert_eq!(write_pad(&mut b[..], usize::MAX, 8, 8), None);
}

#[test]
fn cmd_layout() {
    let cmdr_off = MAILBOX_SIZE;
    let mut b = vec![0xffu8; cmdr_off + 1024];
    let iovs = [
        Iovec {
            base: 0x10_0000,
            len: 8192,
        },
        Iovec {
            base: 0x20_0000,
            len: 100,
        },
        Iovec {
            base: 0x30_0000,
            len: 4096,
        },
        Iovec {
            base: 0x40_0000,
            len: 4096,
        },
        Iovec {
            base: 0x50_0000,
            len: 512,
        },
    ];
    let cdb = [0x28u8, 0, 0, 0, 0, 1, 0, 0, 8, 0];
    let (base, total) = cmd_entry_size(iovs.len(), cdb.len()).unwrap();
    assert_eq!((base, total), (128, 144));
    let off = 200;
    write_cmd(
        &mut b[..],
        cmdr_off,
        off,
        total,
        base,
        0x1234,
        &iovs,
        3,
        2,
        &cdb,
    )
    .unwrap();
    let e = cmdr_off + off;
    assert_eq!(rd_u32(&b, e + HDR_LEN_OP_OFFSET), 144 | TCMU_OP_CMD);
    assert_eq!(rd_u16(&b, e + HDR_CMD_ID_OFFSET), 0x1234);
    assert_eq!(b[e + HDR_KFLAGS_OFFSET], 0);
    assert_eq!(b[e + HDR_UFLAGS_OFFSET], 0);
    assert_eq!(rd_u32(&b, e + REQ_IOV_CNT_OFFSET), 3);
    assert_eq!(rd_u32(&b, e + REQ_IOV_BIDI_CNT_OFFSET), 2);
    assert_eq!(rd_u32(&b, e + REQ_IOV_DIF_CNT_OFFSET), 0);
    let cdb_off = rd_u64(&b, e + REQ_CDB_OFF_OFFSET) as usize;
    assert_eq!(cdb_off, cmdr_off + off + base);
    for (i, iov) in iovs.iter().enumerate() {
        let o = e + REQ_IOV_OFFSET + i * IOVEC_SIZE;
        assert_eq!(rd_u64(&b, o), iov.base);
        assert_eq!(rd_u64(&b, o + 8), iov.len);
    }
    assert_eq!(&b[cdb_off..cdb_off + cdb.len()], &cdb);
    // The rest of the entry is zeroed (pads, CDB padding).
    assert!(b[cdb_off + cdb.len()..e + total].iter().all(|&x| x == 0));
    assert_eq!(rd_u32(&b, e + 20), 0); // req._pad0
    assert_eq!(rd_u64(&b, e + 32), 0);
    assert_eq!(rd_u64(&b, e + 40), 0);
    // Outside untouched.
    assert!(b[..e].iter().all(|&x| x == 0xff));
    assert!(b[e + total..].iter().all(|&x| x == 0xff));
}

#[test]
fn cmd_small_entry_has_room_for_response() {
    let mut b = vec![0xffu8; 1024];
    let iovs = [Iovec {
        base: 4096,
        len: 512,
    }];
    let cdb = [0u8; 6];
    let (base, total) = cmd_entry_size(1, 6).unwrap();
    write_cmd(&mut b[..], 0, 0, total, base, 1, &iovs, 1, 0, &cdb).unwrap();
    assert_eq!(total, 120);
    assert!(total >= RSP_SENSE_BUFFER_OFFSET + TCMU_SENSE_BUFFERSIZE);
    assert_eq!(rd_u64(&b, REQ_CDB_OFF_OFFSET), 112);
}

#[test]
fn cmd_rejects_inconsistent_args() {
    let mut b = vec![0u8; 4096];
    let iovs = [Iovec::default(); 2];
    let cdb = [0u8; 16];
    let (base, total) = cmd_entry_size(2, 16).unwrap();
    assert!(write_cmd(&mut b[..], 0, 0, total, base, 1, &iovs, 2, 0, &cdb).is_some());
    assert!(write_cmd(&mut b[..], 0, 0, total, base, 1, &iovs, 1, 1, &cdb).is_some());
    // Counts not matching the iovecs.
    assert!(write_cmd(&mut b[..], 0, 0, total, base, 1, &iovs, 1, 0, &cdb).is_none());
    assert!(write_cmd(&mut b[..], 0, 0, total, base, 1, &iovs, u32::MAX, 3, &cdb).is_none());
    // Sizes not matching.
    assert!(write_cmd(&mut b[..], 0, 0, total + 8, base, 1, &iovs, 2, 0, &cdb).is_none());
    assert!(write_cmd(&mut b[..], 0, 0, total, base + 8, 1, &iovs, 2, 0, &cdb).is_none());
    // Out of the sink.
    assert!(write_cmd(&mut b[..], 0, 4096 - 64, total, base, 1, &iovs, 2, 0, &cdb).is_none());
    assert!(write_cmd(
        &mut b[..],
        usize::MAX - 8,
        0,
        total,
        base,
        1,
        &iovs,
        2,
        0,
        &cdb
    )
    .is_none());
}

#[test]
fn tmr_layout() {
    let mut b = vec![0xffu8; 256];
    let ids = [3u16, 0xffff, 7, 1, 2];
    let size = write_tmr(&mut b[..], 16, 8, TCMU_TMR_LUN_RESET, &ids).unwrap();
    assert_eq!(size, 48);
    let e = 24;
    assert_eq!(rd_u32(&b, e), 48 | TCMU_OP_TMR);
    assert_eq!(rd_u16(&b, e + 4), 0);
    assert_eq!(b[e + TMR_TMR_TYPE_OFFSET], TCMU_TMR_LUN_RESET);
    assert_eq!(rd_u32(&b, e + TMR_CMD_CNT_OFFSET), 5);
    for (i, &id) in ids.iter().enumerate() {
        assert_eq!(rd_u16(&b, e + TMR_CMD_IDS_OFFSET + 2 * i), id);
    }
    assert_eq!(rd_u16(&b, e + TMR_CMD_IDS_OFFSET + 10), 0);
    assert!(b[e + 9..e + 12].iter().all(|&x| x == 0));
    assert!(b[e + 16..e + 32].iter().all(|&x| x == 0));
    assert!(b[e + 48..].iter().all(|&x| x == 0xff));
    let size = write_tmr(&mut b[..], 0, 0, TCMU_TMR_ABORT_TASK, &[]).unwrap();
    assert_eq!(size, 32);
    assert_eq!(write_tmr(&mut b[..], 0, 240, 0, &[]), None);
}

/// A sink that records writes, to check `[u8]` default methods and that a
/// custom sink works.
struct Recorder(Vec<(usize, Vec<u8>)>);

impl EntrySink for Recorder {
    fn put_bytes(&mut self, off: usize, data: &[u8]) -> Option<()> {
        self.0.push((off, data.to_vec()));
        Some(())
    }
    fn zero(&mut self, off: usize, len: usize) -> Option<()> {
        self.0.push((off, vec![0; len]));
        Some(())
    }
}

#[test]
fn custom_sink_zeroes_first() {
    let mut r = Recorder(Vec::new());
    let (base, total) = cmd_entry_size(0, 6).unwrap();
    write_cmd(
        &mut r,
        128,
        0,
        total,
        base,
        9,
        &[],
        0,
        0,
        &[0x12, 0, 0, 0, 0, 0],
    )
    .unwrap();
    assert_eq!(r.0[0], (128, vec![0; 120]));
    assert_eq!(r.0.last().unwrap().0, 128 + 112);
}
