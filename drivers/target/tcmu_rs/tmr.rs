// SPDX-License-Identifier: GPL-2.0

//! Task management: aborts of waiting commands and the `TCMU_OP_TMR` notifications of the
//! handler.

use crate::abi::{self, Opcode};
use crate::entry;
use crate::params::CMDR_OFF;
use crate::ringstate::{AreaSink, Ring, RingState};
use core::sync::atomic::{fence, Ordering};
use kernel::{prelude::*, target};

/// Largest command id (ids are 16 bits, 0 is never used).
const MAX_CMD_ID: usize = 0xffff;

/// A TMR notification for the handler.
pub(crate) struct Tmr {
    tmr_type: u8,
    cmd_ids: KVec<u16>,
}

/// The TMR type the handler sees for `tmf` (C's `tcmu_tmr_type`).
pub(crate) fn tmr_type(tmf: target::Tmf) -> u8 {
    match tmf {
        target::Tmf::AbortTask => abi::TCMU_TMR_ABORT_TASK,
        target::Tmf::AbortTaskSet => abi::TCMU_TMR_ABORT_TASK_SET,
        target::Tmf::ClearAca => abi::TCMU_TMR_CLEAR_ACA,
        target::Tmf::ClearTaskSet => abi::TCMU_TMR_CLEAR_TASK_SET,
        target::Tmf::LunReset => abi::TCMU_TMR_LUN_RESET,
        target::Tmf::TargetWarmReset => abi::TCMU_TMR_TARGET_WARM_RESET,
        target::Tmf::TargetColdReset => abi::TCMU_TMR_TARGET_COLD_RESET,
        target::Tmf::LunResetPro => abi::TCMU_TMR_LUN_RESET_PRO,
        target::Tmf::Other => abi::TCMU_TMR_UNKNOWN,
    }
}

impl Ring {
    /// Handles a task management function: aborted commands still waiting for space are
    /// completed with `TASK ABORTED`; if `tmr_notification` is on, the handler gets a
    /// `TCMU_OP_TMR` entry with the ids of the aborted commands on the ring. Returns whether
    /// the handler must be woken up.
    /// `aborted` yields the commands' tags: read here, under the ring lock, under which every
    /// tag is set, so a command the queueing moves from qfull to the ring meanwhile, or one
    /// the reap completes and whose id a new command takes, is seen as it is now.
    pub(crate) fn tmr(&self, tmr_type: u8, aborted: &mut dyn Iterator<Item = usize>) -> bool {
        let mut st = self.st.lock();
        if st.dead {
            return false;
        }
        let mut tags = KVec::new();
        for t in aborted.filter(|&t| t != 0) {
            if tags.push(t, GFP_NOIO).is_err() {
                break;
            }
        }
        let tags = &tags[..];
        st.stats.aborted += tags.len() as u64;
        st.qfull.take_where(
            |q| tags.contains(&q.cmd.tag()),
            |q| q.cmd.complete(target::SAM_STAT_TASK_ABORTED),
        );
        if !self.settings.tmr_notification.load(Ordering::Relaxed) || st.broken {
            return false;
        }
        let mut cmd_ids = KVec::new();
        for &t in tags {
            if (1..=MAX_CMD_ID).contains(&t) && cmd_ids.push(t as u16, GFP_NOIO).is_err() {
                return false;
            }
        }
        let tmr = Tmr { tmr_type, cmd_ids };
        if !st.tmr_queue.is_empty() {
            let _ = st.tmr_queue.push(tmr);
            return false;
        }
        match self.try_tmr(&mut st, tmr) {
            Ok(()) => true,
            Err(tmr) => {
                let _ = st.tmr_queue.push(tmr);
                false
            }
        }
    }

    /// Puts a TMR entry on the ring, or gives it back if there is no room.
    fn try_tmr(&self, st: &mut RingState, tmr: Tmr) -> Result<(), Tmr> {
        let Some(size) = entry::tmr_entry_size(tmr.cmd_ids.len()) else {
            return Ok(());
        };
        if size > (self.cmdr_size / 2) as usize {
            // Cannot ever fit: drop it (the handler learns of the aborts by timeouts).
            return Ok(());
        }
        let Some(place) = st.ring.reserve(size as u32, Opcode::Tmr) else {
            return Err(tmr);
        };
        let mut sink = AreaSink(&self.area);
        let cmdr = CMDR_OFF as usize;
        if let Some((off, len)) = place.pad {
            entry::write_pad(&mut sink, cmdr, off as usize, len as usize);
        }
        entry::write_tmr(
            &mut sink,
            cmdr,
            place.offset as usize,
            tmr.tmr_type,
            &tmr.cmd_ids,
        );
        fence(Ordering::Release);
        self.area
            .write_u32(abi::MAILBOX_CMD_HEAD_OFFSET, st.ring.head());
        Ok(())
    }

    /// Moves waiting TMR notifications to the ring while there is room.
    pub(crate) fn run_tmr_queue(&self, st: &mut RingState) -> bool {
        let mut queued = false;
        while let Some(tmr) = st.tmr_queue.pop() {
            match self.try_tmr(st, tmr) {
                Ok(()) => queued = true,
                Err(tmr) => {
                    st.tmr_queue.unpop(tmr);
                    break;
                }
            }
        }
        queued
    }
}

#[kunit_tests(tcmu_rs_tmr)]
mod tests {
    use super::*;

    /// Every task management function the target core passes reaches the handler with C's type.
    #[test]
    fn tmr_type_as_c() {
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
            assert_eq!(tmr_type(target::Tmf::from_raw(raw)), want);
        }
    }
}
