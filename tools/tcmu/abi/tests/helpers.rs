// SPDX-License-Identifier: GPL-2.0

//! Unit tests of the ABI helpers (no C involved).

use tcmu_abi::*;

/// Evaluated at compile time: the helpers are usable in constants.
const CMD_LEN_OP: u32 = hdr_set_len(hdr_set_op(0, Opcode::Cmd), CMD_ENTRY_SIZE as u32);
const PAD_OPCODE: Result<Opcode, UnknownValue> = hdr_get_opcode(0x40);

#[test]
fn const_evaluation() {
    assert_eq!(CMD_LEN_OP, 112 | 1);
    assert_eq!(PAD_OPCODE, Ok(Opcode::Pad));
}

#[test]
fn opcode_from_all_raw_values() {
    for raw in 0..=TCMU_OP_MASK {
        let expected = match raw {
            0 => Ok(Opcode::Pad),
            1 => Ok(Opcode::Cmd),
            2 => Ok(Opcode::Tmr),
            _ => Err(UnknownValue(raw)),
        };
        assert_eq!(Opcode::from_raw(raw), expected, "raw {raw}");
        assert_eq!(Opcode::try_from(raw), expected, "raw {raw}");
        // Any length, the opcode only depends on the low bits.
        for len in [0u32, 8, 64, 0x1000, 0xfffffff8] {
            assert_eq!(
                hdr_get_opcode(len | raw),
                expected,
                "len {len:#x} raw {raw}"
            );
        }
        if let Ok(op) = expected {
            assert_eq!(op.as_raw(), raw);
            assert_eq!(u32::from(op), raw);
        }
    }
    // Out of the 3 bits: an error, not a panic.
    for raw in [8, 9, 0x100, u32::MAX] {
        assert_eq!(Opcode::from_raw(raw), Err(UnknownValue(raw)));
    }
    assert_eq!(Opcode::Pad.as_raw(), TCMU_OP_PAD);
    assert_eq!(Opcode::Cmd.as_raw(), TCMU_OP_CMD);
    assert_eq!(Opcode::Tmr.as_raw(), TCMU_OP_TMR);
}

#[test]
fn get_op_and_len() {
    for raw in 0..=TCMU_OP_MASK {
        for len in [0u32, 8, 16, 112, 4096, 0x7ffffff8, 0xfffffff8] {
            let len_op = len | raw;
            assert_eq!(hdr_get_op(len_op), raw);
            assert_eq!(hdr_get_len(len_op), len);
        }
    }
    // Lengths that are not multiples of 8: the low bits are the opcode.
    for len in [1u32, 7, 9, 13, 100, 0x1001, u32::MAX] {
        assert_eq!(hdr_get_op(len), len & 7);
        assert_eq!(hdr_get_len(len), len & !7);
        assert_eq!(hdr_get_len(len) % TCMU_OP_ALIGN_SIZE as u32, 0);
    }
}

#[test]
fn set_op_keeps_len() {
    for len_op in [0u32, 7, 8, 13, 112 | 2, 0xffffffff, 0x12345678] {
        for op in [Opcode::Pad, Opcode::Cmd, Opcode::Tmr] {
            let r = hdr_set_op(len_op, op);
            assert_eq!(hdr_get_op(r), op.as_raw());
            assert_eq!(hdr_get_len(r), hdr_get_len(len_op));
            assert_eq!(hdr_get_opcode(r), Ok(op));
        }
    }
}

#[test]
fn set_len_keeps_op() {
    for op in 0..=TCMU_OP_MASK {
        for len in [0u32, 8, 112, 4096, 0xfffffff8] {
            let r = hdr_set_len(0xfffffff8 | op, len);
            assert_eq!(hdr_get_op(r), op);
            assert_eq!(hdr_get_len(r), len);
        }
    }
}

#[test]
fn set_len_unaligned_is_ored_like_c() {
    // Like tcmu_hdr_set_len(): an unaligned length leaks into the opcode.
    let r = hdr_set_len(hdr_set_op(0, Opcode::Cmd), 13);
    assert_eq!(r, 13);
    assert_eq!(hdr_get_op(r), 5);
    assert_eq!(hdr_get_opcode(r), Err(UnknownValue(5)));
    assert_eq!(hdr_get_len(r), 8);
    // hdr_len_op() masks instead.
    let r = hdr_len_op(13, Opcode::Cmd);
    assert_eq!(hdr_get_op(r), TCMU_OP_CMD);
    assert_eq!(hdr_get_len(r), 8);
    for len in [0u32, 8, 112, 0xfffffff8] {
        for op in [Opcode::Pad, Opcode::Cmd, Opcode::Tmr] {
            assert_eq!(hdr_len_op(len, op), hdr_set_len(hdr_set_op(0, op), len));
        }
    }
}

#[test]
fn tmr_type_from_raw() {
    let known = [
        (TCMU_TMR_UNKNOWN, TmrType::Unknown),
        (TCMU_TMR_ABORT_TASK, TmrType::AbortTask),
        (TCMU_TMR_ABORT_TASK_SET, TmrType::AbortTaskSet),
        (TCMU_TMR_CLEAR_ACA, TmrType::ClearAca),
        (TCMU_TMR_CLEAR_TASK_SET, TmrType::ClearTaskSet),
        (TCMU_TMR_LUN_RESET, TmrType::LunReset),
        (TCMU_TMR_TARGET_WARM_RESET, TmrType::TargetWarmReset),
        (TCMU_TMR_TARGET_COLD_RESET, TmrType::TargetColdReset),
        (TCMU_TMR_LUN_RESET_PRO, TmrType::LunResetPro),
    ];
    for raw in 0..=u8::MAX {
        match known.iter().find(|(r, _)| *r == raw) {
            Some((_, t)) => {
                assert_eq!(TmrType::from_raw(raw), Ok(*t));
                assert_eq!(t.as_raw(), raw);
            }
            None => assert_eq!(TmrType::from_raw(raw), Err(UnknownValue(raw.into()))),
        }
    }
}

#[test]
fn genl_cmd_from_raw() {
    let mut ok = 0;
    for raw in 0..=u8::MAX {
        match GenlCmd::from_raw(raw) {
            Ok(c) => {
                ok += 1;
                assert_eq!(c.as_raw(), raw);
                assert!(raw <= TCMU_CMD_MAX);
            }
            Err(e) => {
                assert_eq!(e, UnknownValue(raw.into()));
                assert!(raw > TCMU_CMD_MAX);
            }
        }
    }
    assert_eq!(ok, usize::from(TCMU_CMD_MAX) + 1);
    assert_eq!(
        GenlCmd::from_raw(TCMU_CMD_SET_FEATURES),
        Ok(GenlCmd::SetFeatures)
    );
}

#[test]
fn genl_attr_from_raw() {
    let mut ok = 0;
    for raw in 0..=u16::MAX {
        match GenlAttr::from_raw(raw) {
            Ok(a) => {
                ok += 1;
                assert_eq!(a.as_raw(), raw);
                assert!(raw <= TCMU_ATTR_MAX);
            }
            Err(e) => {
                assert_eq!(e, UnknownValue(raw.into()));
                assert!(raw > TCMU_ATTR_MAX);
            }
        }
    }
    assert_eq!(ok, usize::from(TCMU_ATTR_MAX) + 1);
    assert_eq!(
        GenlAttr::from_raw(TCMU_ATTR_DEVICE_ID),
        Ok(GenlAttr::DeviceId)
    );
}

#[test]
fn entry_sizes() {
    assert_eq!(cmd_entry_base_size(0), Some(CMD_ENTRY_SIZE));
    assert_eq!(cmd_entry_base_size(4), Some(CMD_ENTRY_SIZE));
    assert_eq!(
        cmd_entry_base_size(5),
        Some(REQ_IOV_OFFSET + 5 * IOVEC_SIZE)
    );
    assert_eq!(cmd_entry_base_size(usize::MAX), None);
    assert_eq!(cmd_entry_base_size(usize::MAX / IOVEC_SIZE), None);
    assert_eq!(tmr_entry_base_size(0), Some(TMR_ENTRY_SIZE));
    assert_eq!(tmr_entry_base_size(3), Some(TMR_ENTRY_SIZE + 6));
    assert_eq!(tmr_entry_base_size(usize::MAX), None);
    assert_eq!(op_align(0), Some(0));
    assert_eq!(op_align(1), Some(8));
    assert_eq!(op_align(8), Some(8));
    assert_eq!(op_align(38), Some(40));
    assert_eq!(op_align(usize::MAX - 7), Some(usize::MAX - 7));
    assert_eq!(op_align(usize::MAX - 6), None);
}

#[test]
fn zeroed_values() {
    assert_eq!(Mailbox::ZEROED.cmd_tail, 0);
    assert_eq!(CmdRsp::default(), CmdRsp::ZEROED);
    assert_eq!(CmdRsp::ZEROED.sense_buffer, [0; TCMU_SENSE_BUFFERSIZE]);
    assert_eq!(EntryHdr::default().len_op, 0);
    assert_eq!(TmrEntry::default().cmd_cnt, 0);
    assert_eq!(UnknownValue(5).to_string(), "unknown TCMU ABI value 5");
}
