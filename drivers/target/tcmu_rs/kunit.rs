// SPDX-License-Identifier: GPL-2.0

//! The KUnit suite `tcmu_rs`.

use crate::abi::{self, Opcode};
use crate::cmd_ring::{self, CmdRing};
use crate::cmds::{CmdTable, Inflight};
use crate::fifo::{kunit_fifo_bounded, kunit_fifo_order};
use crate::params::CMDR_OFF;
use crate::response::{CmdInfo, DataDirection};
use crate::smallvec::SmallVec;
use crate::tmr::tmr_type;
use kernel::{prelude::*, target};

fn kunit_len_op_roundtrip() {
    let v = abi::hdr_set_len(abi::hdr_set_op(0, abi::Opcode::Cmd), 4096);
    kernel::kunit_expect_eq!(abi::hdr_get_opcode(v), Ok(abi::Opcode::Cmd));
    kernel::kunit_expect_eq!(abi::hdr_get_len(v), 4096);
}

fn kunit_mailbox_layout() {
    kernel::kunit_expect_eq!(core::mem::offset_of!(abi::Mailbox, cmd_tail), 64);
    kernel::kunit_expect_eq!(CMDR_OFF as usize, abi::MAILBOX_SIZE);
}

fn kunit_alloc_id_lowest_free() {
    let Ok(mut cmds) = CmdTable::new() else {
        kernel::kunit_expect!(false);
        return;
    };
    kernel::kunit_expect_eq!(cmds.free_id(), Some(1));
    // Not taken until inserted.
    kernel::kunit_expect_eq!(cmds.free_id(), Some(1));
    kernel::kunit_expect_eq!(cmds.id_limit(), 2);
    kernel::kunit_expect!(cmds.get(1).is_none());
    kernel::kunit_expect!(cmds.remove(1).is_none());
    let idle = || -> Option<Inflight> {
        Some(Inflight {
            cmd: None,
            deadline: None,
            kept: false,
            dbis: SmallVec::filled(0, 0).ok()?,
            n_first: 0,
            info: CmdInfo {
                dir: DataDirection::None,
                data_length: 0,
                bidi_length: 0,
            },
        })
    };
    for want in 1..=3u16 {
        let id = cmds.free_id();
        kernel::kunit_expect_eq!(id, Some(want));
        if let (Some(id), Some(inf)) = (id, idle()) {
            kernel::kunit_expect!(cmds.insert(id, inf));
        }
    }
    // An id in use is not taken twice.
    if let Some(inf) = idle() {
        kernel::kunit_expect!(!cmds.insert(2, inf));
    }
    kernel::kunit_expect_eq!(cmds.len(), 3);
    kernel::kunit_expect!(cmds.remove(2).is_some());
    kernel::kunit_expect_eq!(cmds.len(), 2);
    kernel::kunit_expect_eq!(cmds.free_id(), Some(2));
    let mut n = 0;
    cmds.drain(|_| n += 1);
    kernel::kunit_expect_eq!(n, 2);
    kernel::kunit_expect_eq!(cmds.len(), 0);
    kernel::kunit_expect_eq!(cmds.free_id(), Some(1));
}

/// Every task management function the target core passes reaches the handler with C's type.
fn kunit_tmr_type_as_c() {
    use kernel::bindings as b;
    let cases = [
        (b::tcm_tmreq_table_TMR_ABORT_TASK, abi::TCMU_TMR_ABORT_TASK),
        (
            b::tcm_tmreq_table_TMR_ABORT_TASK_SET,
            abi::TCMU_TMR_ABORT_TASK_SET,
        ),
        (b::tcm_tmreq_table_TMR_CLEAR_ACA, abi::TCMU_TMR_CLEAR_ACA),
        (
            b::tcm_tmreq_table_TMR_CLEAR_TASK_SET,
            abi::TCMU_TMR_CLEAR_TASK_SET,
        ),
        (b::tcm_tmreq_table_TMR_LUN_RESET, abi::TCMU_TMR_LUN_RESET),
        (
            b::tcm_tmreq_table_TMR_TARGET_WARM_RESET,
            abi::TCMU_TMR_TARGET_WARM_RESET,
        ),
        (
            b::tcm_tmreq_table_TMR_TARGET_COLD_RESET,
            abi::TCMU_TMR_TARGET_COLD_RESET,
        ),
        (
            b::tcm_tmreq_table_TMR_LUN_RESET_PRO,
            abi::TCMU_TMR_LUN_RESET_PRO,
        ),
        (b::tcm_tmreq_table_TMR_UNKNOWN, abi::TCMU_TMR_UNKNOWN),
    ];
    for (raw, want) in cases {
        kernel::kunit_expect_eq!(tmr_type(target::Tmf::from_raw(raw)), want);
    }
}

/// An entry that does not fit before the end of the ring is placed at offset 0 after a PAD
/// that fills the end; reaping returns the PAD, then the entry, and the ring is empty again.
fn kunit_ring_wraps_with_pad() {
    let Ok(fifo) = KVVec::from_elem(0, cmd_ring::fifo_capacity(1024), GFP_KERNEL) else {
        kernel::kunit_expect!(false, "alloc");
        return;
    };
    let Some(mut r) = CmdRing::new(1024, fifo) else {
        kernel::kunit_expect!(false, "ring");
        return;
    };
    let first = r.reserve(640, Opcode::Cmd);
    kernel::kunit_expect_eq!(
        first,
        Some(cmd_ring::Placement {
            pad: None,
            offset: 0
        })
    );
    // Not reaped yet: no room for 512 more bytes (with or without the PAD).
    kernel::kunit_expect!(r.reserve(512, Opcode::Cmd).is_none());
    match r.begin_reap(640) {
        Ok(mut reaper) => {
            kernel::kunit_expect!(matches!(reaper.consume(), Ok(Some(s)) if s.offset == 0));
            kernel::kunit_expect!(matches!(reaper.consume(), Ok(None)));
        }
        Err(_) => kernel::kunit_expect!(false, "reap the first entry"),
    }
    // 384 bytes are left before the end: the next 512 wrap behind a PAD of 384 at 640.
    let wrapped = r.reserve(512, Opcode::Cmd);
    kernel::kunit_expect_eq!(
        wrapped,
        Some(cmd_ring::Placement {
            pad: Some((640, 384)),
            offset: 0
        })
    );
    kernel::kunit_expect_eq!(r.head(), 512);
    kernel::kunit_expect_eq!(r.pending_slots(), 2);
    match r.begin_reap(512) {
        Ok(mut reaper) => {
            let pad = reaper.consume();
            kernel::kunit_expect!(
                matches!(pad, Ok(Some(s)) if s.offset == 640 && s.len() == 384 && s.op() == abi::TCMU_OP_PAD)
            );
            let cmd = reaper.consume();
            kernel::kunit_expect!(
                matches!(cmd, Ok(Some(s)) if s.offset == 0 && s.len() == 512 && s.op() == abi::TCMU_OP_CMD)
            );
            kernel::kunit_expect!(matches!(reaper.consume(), Ok(None)));
        }
        Err(_) => kernel::kunit_expect!(false, "reap the PAD and the entry"),
    }
    kernel::kunit_expect!(r.is_empty());
    kernel::kunit_expect_eq!(r.last_cleaned(), 512);
}

kernel::kunit_tests!(
    tcmu_rs,
    [
        kunit_len_op_roundtrip,
        kunit_mailbox_layout,
        kunit_alloc_id_lowest_free,
        kunit_ring_wraps_with_pad,
        kunit_tmr_type_as_c,
        kunit_fifo_bounded,
        kunit_fifo_order
    ]
);
