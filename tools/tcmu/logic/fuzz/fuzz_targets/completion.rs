// SPDX-License-Identifier: GPL-2.0

//! Fuzzes what the kernel takes from the userspace handler when reaping:
//! `cmd_tail` (through `CmdRing::begin_reap`) and the completion values of
//! a CMD slot (through `response::decode_completion`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use tcmu_logic::abi::Opcode;
use tcmu_logic::cmd_ring::{fifo_capacity, CmdRing};
use tcmu_logic::response::{decode_completion, CmdInfo, DataDirection, RawCmdEntry};

fn u32_at(d: &[u8], i: usize) -> u32 {
    let mut b = [0u8; 4];
    for (k, x) in b.iter_mut().enumerate() {
        *x = d.get(i + k).copied().unwrap_or(0);
    }
    u32::from_le_bytes(b)
}

fuzz_target!(|data: &[u8]| {
    // Completion values.
    let raw = RawCmdEntry {
        len_op: u32_at(data, 0),
        cmd_id: u32_at(data, 4) as u16,
        uflags: data.get(6).copied().unwrap_or(0),
        scsi_status: data.get(7).copied().unwrap_or(0),
        read_len: u32_at(data, 8),
    };
    let dir = match data.get(12).copied().unwrap_or(0) % 4 {
        0 => DataDirection::None,
        1 => DataDirection::ToDevice,
        2 => DataDirection::FromDevice,
        _ => DataDirection::Bidirectional,
    };
    let info = CmdInfo { dir, data_length: u32_at(data, 13), bidi_length: u32_at(data, 17) };
    let _ = decode_completion(&raw, u32_at(data, 21), &info);
    let _ = decode_completion(&raw, raw.len_op, &info);

    // A ring filled by the kernel, reaped with tails from the input.
    let size = (u32_at(data, 25) % 4096) & !7;
    let Some(mut ring) = CmdRing::new(size.max(8), vec![0u32; fifo_capacity(size.max(8))]) else {
        return;
    };
    let mut i = 29;
    while i + 5 <= data.len() {
        let v = u32_at(data, i + 1);
        match data[i] % 3 {
            0 => {
                let _ = ring.reserve(v % 1024, Opcode::Cmd);
            }
            1 => {
                let _ = ring.reserve(v % 256, Opcode::Tmr);
            }
            _ => {
                if let Ok(mut reaper) = ring.begin_reap(v) {
                    while let Ok(Some(_)) = reaper.consume() {}
                }
            }
        }
        assert_eq!(ring.used() + ring.free() + 1, ring.size());
        i += 5;
    }
});
