// SPDX-License-Identifier: GPL-2.0

//! Decoding of completions.

use tcmu_logic::abi::*;
use tcmu_logic::response::*;

const CMD_LEN_OP: u32 = 120 | TCMU_OP_CMD;

fn raw(uflags: u8, status: u8, read_len: u32) -> RawCmdEntry {
    RawCmdEntry {
        len_op: CMD_LEN_OP,
        cmd_id: 5,
        uflags,
        scsi_status: status,
        read_len,
    }
}

fn info(dir: DataDirection, len: u32) -> CmdInfo {
    CmdInfo {
        dir,
        data_length: len,
        bidi_length: 0,
    }
}

fn status(c: Completion) -> Status {
    match c.kind {
        CompletionKind::Status(s) => s,
        k => panic!("{k:?}"),
    }
}

#[test]
fn slot_kinds() {
    assert_eq!(slot_kind(8 | TCMU_OP_PAD), Some(SlotKind::Pad));
    assert_eq!(slot_kind(32 | TCMU_OP_TMR), Some(SlotKind::Tmr));
    assert_eq!(slot_kind(CMD_LEN_OP), Some(SlotKind::Cmd));
    assert_eq!(slot_kind(8 | 5), None);
    assert!(is_skipped(8 | TCMU_OP_PAD));
    assert!(is_skipped(40 | TCMU_OP_TMR));
    assert!(!is_skipped(CMD_LEN_OP));
    assert!(!is_skipped(8 | 7));
    assert_eq!(
        check_len_op(40 | TCMU_OP_TMR, 40 | TCMU_OP_TMR),
        Ok(SlotKind::Tmr)
    );
    assert_eq!(
        check_len_op(40 | TCMU_OP_TMR, 48 | TCMU_OP_TMR),
        Err(BadEntry::LenOpMismatch {
            expected: 40 | TCMU_OP_TMR,
            found: 48 | TCMU_OP_TMR
        })
    );
    assert_eq!(check_len_op(8 | 6, 8 | 6), Err(BadEntry::NotCmd { op: 6 }));
}

#[test]
fn header_checks() {
    let mut r = raw(TCMU_UFLAG_KEEP_BUF | 0x80, 0, 0);
    let h = decode_header(&r, CMD_LEN_OP).unwrap();
    assert_eq!(
        h,
        CmdHeader {
            cmd_id: 5,
            keep_buf: true,
            unknown_uflags: 0x80
        }
    );
    // Userspace changed the length or the opcode.
    r.len_op = 112 | TCMU_OP_CMD;
    assert!(matches!(
        decode_header(&r, CMD_LEN_OP),
        Err(BadEntry::LenOpMismatch { .. })
    ));
    r.len_op = 120 | TCMU_OP_PAD;
    assert!(matches!(
        decode_header(&r, CMD_LEN_OP),
        Err(BadEntry::LenOpMismatch { .. })
    ));
    // A PAD slot is no completion.
    r.len_op = 120 | TCMU_OP_PAD;
    assert_eq!(
        decode_header(&r, 120 | TCMU_OP_PAD),
        Err(BadEntry::NotCmd { op: TCMU_OP_PAD })
    );
}

#[test]
fn good_read_full() {
    let c = decode_completion(
        &raw(0, 0, 0),
        CMD_LEN_OP,
        &info(DataDirection::FromDevice, 4096),
    )
    .unwrap();
    assert_eq!(c.cmd_id, 5);
    assert!(!c.keep_buf);
    assert_eq!(c.scsi_status(), 0);
    assert_eq!(
        status(c),
        Status {
            scsi_status: 0,
            read_len: None,
            check_condition: false,
            gather_len: Some(4096),
            invalid_status: None
        }
    );
}

#[test]
fn read_len_rules() {
    let fd = info(DataDirection::FromDevice, 4096);
    // READ_LEN with a shorter length.
    let s = status(decode_completion(&raw(TCMU_UFLAG_READ_LEN, 0, 512), CMD_LEN_OP, &fd).unwrap());
    assert_eq!((s.read_len, s.gather_len), (Some(512), Some(512)));
    // Clamped to the data length.
    let s =
        status(decode_completion(&raw(TCMU_UFLAG_READ_LEN, 0, u32::MAX), CMD_LEN_OP, &fd).unwrap());
    assert_eq!((s.read_len, s.gather_len), (Some(4096), Some(4096)));
    // read_len 0 means not valid.
    let s = status(decode_completion(&raw(TCMU_UFLAG_READ_LEN, 0, 0), CMD_LEN_OP, &fd).unwrap());
    assert_eq!((s.read_len, s.gather_len), (None, Some(4096)));
    // Flag not set: ignored.
    let s = status(decode_completion(&raw(0, 0, 100), CMD_LEN_OP, &fd).unwrap());
    assert_eq!((s.read_len, s.gather_len), (None, Some(4096)));
    // Only for DMA_FROM_DEVICE.
    for dir in [DataDirection::ToDevice, DataDirection::None] {
        let s = status(
            decode_completion(
                &raw(TCMU_UFLAG_READ_LEN, 0, 100),
                CMD_LEN_OP,
                &info(dir, 4096),
            )
            .unwrap(),
        );
        assert_eq!((s.read_len, s.gather_len), (None, None));
    }
    let bidi = CmdInfo {
        dir: DataDirection::Bidirectional,
        data_length: 4096,
        bidi_length: 1024,
    };
    let s =
        status(decode_completion(&raw(TCMU_UFLAG_READ_LEN, 0, 100), CMD_LEN_OP, &bidi).unwrap());
    assert_eq!((s.read_len, s.gather_len), (None, Some(1024)));
}

#[test]
fn check_condition() {
    let fd = info(DataDirection::FromDevice, 4096);
    // Without a valid read_len: sense copied, no data.
    let s = status(decode_completion(&raw(0, 2, 0), CMD_LEN_OP, &fd).unwrap());
    assert_eq!(
        s,
        Status {
            scsi_status: 2,
            read_len: None,
            check_condition: true,
            gather_len: None,
            invalid_status: None
        }
    );
    // With a valid read_len: treated as a normal read of read_len bytes.
    let s = status(decode_completion(&raw(TCMU_UFLAG_READ_LEN, 2, 1000), CMD_LEN_OP, &fd).unwrap());
    assert_eq!(
        (s.check_condition, s.read_len, s.gather_len),
        (true, Some(1000), Some(1000))
    );
    // Bidi with CHECK CONDITION: no data.
    let bidi = CmdInfo {
        dir: DataDirection::Bidirectional,
        data_length: 512,
        bidi_length: 512,
    };
    let s = status(decode_completion(&raw(0, 2, 0), CMD_LEN_OP, &bidi).unwrap());
    assert_eq!(s.gather_len, None);
}

#[test]
fn unknown_op() {
    let c = decode_completion(
        &raw(
            TCMU_UFLAG_UNKNOWN_OP | TCMU_UFLAG_KEEP_BUF | TCMU_UFLAG_READ_LEN,
            0,
            5,
        ),
        CMD_LEN_OP,
        &info(DataDirection::FromDevice, 4096),
    )
    .unwrap();
    assert_eq!(c.kind, CompletionKind::UnknownOp);
    assert_eq!(c.scsi_status(), 2);
    assert!(c.keep_buf);
}

#[test]
fn status_values() {
    let fd = info(DataDirection::FromDevice, 4096);
    for st in 0..=255u8 {
        let valid = matches!(st, 0 | 2 | 4 | 8 | 0x18 | 0x28 | 0x30 | 0x40);
        assert_eq!(is_valid_status(st), valid);
        let s =
            status(decode_completion(&raw(TCMU_UFLAG_READ_LEN, st, 8), CMD_LEN_OP, &fd).unwrap());
        if valid {
            assert_eq!((s.scsi_status, s.invalid_status), (st, None));
        } else {
            assert_eq!(
                s,
                Status {
                    scsi_status: 2,
                    read_len: None,
                    check_condition: false,
                    gather_len: None,
                    invalid_status: Some(st)
                }
            );
        }
    }
    // BUSY etc. on a read: C still gathers the data.
    let s = status(decode_completion(&raw(0, 8, 0), CMD_LEN_OP, &fd).unwrap());
    assert_eq!(s.gather_len, Some(4096));
}
