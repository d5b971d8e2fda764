// SPDX-License-Identifier: GPL-2.0

//! Fuzz-style property tests: arbitrary (hostile) inputs never panic and
//! never break the ring invariants.

use proptest::prelude::*;
use tcmu_logic::abi::{Iovec, Opcode};
use tcmu_logic::blocks::{fill_iovecs, iov_count, BlockAlloc};
use tcmu_logic::cmd_ring::{fifo_capacity, CmdRing};
use tcmu_logic::entry::{write_pad, write_tmr};

use super::entry::write_cmd;
use tcmu_logic::params::{format_info, Lossy, last_lba, set_params, Limits, Params};
use tcmu_logic::response::{decode_completion, CmdInfo, DataDirection, RawCmdEntry};
use tcmu_logic::sense::{sanitize, SENSE_LEN};

fn dir(d: u8) -> DataDirection {
    match d % 4 {
        0 => DataDirection::None,
        1 => DataDirection::ToDevice,
        2 => DataDirection::FromDevice,
        _ => DataDirection::Bidirectional,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Arbitrary tails against a ring in an arbitrary state.
    #[test]
    fn begin_reap_any_tail(
        size in prop_oneof![Just(8u32), Just(1000), Just(1024), any::<u32>()],
        fifo in 0usize..64,
        lens in proptest::collection::vec(any::<u32>(), 0..20),
        tails in proptest::collection::vec(any::<u32>(), 1..10),
    ) {
        let Some(mut r) = CmdRing::new(size, vec![0u32; fifo]) else { return Ok(()); };
        for (i, len) in lens.iter().enumerate() {
            let op = if i % 3 == 0 { Opcode::Tmr } else { Opcode::Cmd };
            let _ = r.reserve(len % 2048 & !7, op);
            let _ = r.reserve(*len, op);
        }
        for t in tails {
            let t = if t % 2 == 0 { t % size.max(1) } else { t };
            let used = r.used();
            if let Ok(mut reaper) = r.begin_reap(t) {
                let rem = reaper.remaining();
                prop_assert!(rem <= used);
                while let Ok(Some(s)) = reaper.consume() {
                    prop_assert!(s.len() <= rem);
                }
            }
            prop_assert_eq!(r.used() + r.free() + 1, r.size());
            prop_assert!(r.pending_slots() <= r.slot_capacity());
        }
    }

    /// Arbitrary completion values.
    #[test]
    fn decode_any_completion(
        len_op in any::<u32>(),
        slot in any::<u32>(),
        cmd_id in any::<u16>(),
        uflags in any::<u8>(),
        status in any::<u8>(),
        read_len in any::<u32>(),
        d in any::<u8>(),
        data_length in any::<u32>(),
        bidi_length in any::<u32>(),
    ) {
        let raw = RawCmdEntry { len_op, cmd_id, uflags, scsi_status: status, read_len };
        let info = CmdInfo { dir: dir(d), data_length, bidi_length };
        for s in [slot, len_op] {
            if let Ok(c) = decode_completion(&raw, s, &info) {
                prop_assert_eq!(c.cmd_id, cmd_id);
                if let tcmu_logic::response::CompletionKind::Status(st) = c.kind {
                    if let Some(rl) = st.read_len {
                        prop_assert!(rl <= data_length && rl != 0);
                    }
                    if let Some(g) = st.gather_len {
                        prop_assert!(g <= data_length);
                    }
                }
            }
        }
    }

    /// Arbitrary control strings.
    #[test]
    fn control_any_bytes(
        input in proptest::collection::vec(any::<u8>(), 0..200),
        words in proptest::collection::vec(
            prop_oneof![
                Just("dev_config=".to_string()),
                Just("dev_size=".to_string()),
                Just("hw_block_size=".to_string()),
                Just("hw_max_sectors=".to_string()),
                Just("nl_reply_supported=".to_string()),
                Just("max_data_area_mb=".to_string()),
                Just("data_pages_per_blk=".to_string()),
                Just("cmd_ring_size_mb=".to_string()),
                "[-+0-9xXa-f]{0,30}",
                Just(",".to_string()),
                Just("\n".to_string()),
            ],
            0..30,
        ),
        enabled in any::<bool>(),
        page_shift in 0u32..70,
        global in any::<u32>(),
    ) {
        let l = Limits { page_shift, global_max_pages: global };
        for inp in [input, words.concat().into_bytes()] {
            let mut p = Params::new(&l);
            let _ = set_params(&mut p, &inp, enabled, &l);
            let mut s = String::new();
            format_info(&p, &mut Lossy(&mut s)).unwrap();
            prop_assert!(s.ends_with('\n'));
            prop_assert!(p.data_pages_per_blk > 0);
            prop_assert!(p.cmdr_size > 0 && p.cmdr_size <= 8 * 1024 * 1024 - 128);
            let _ = last_lba(p.dev_size, p.hw_block_size);
            let _ = p.data_blk_size(&l);
        }
    }

    /// Arbitrary arguments to the entry writers and block helpers.
    #[test]
    fn writers_any_args(
        buf_len in 0usize..600,
        cmdr_off in prop_oneof![0usize..600, any::<usize>()],
        offset in prop_oneof![0usize..600, any::<usize>()],
        total in prop_oneof![0usize..600, any::<usize>()],
        base in prop_oneof![0usize..600, any::<usize>()],
        niov in 0usize..8,
        c1 in any::<u32>(),
        c2 in any::<u32>(),
        cdb in proptest::collection::vec(any::<u8>(), 0..40),
        ids in proptest::collection::vec(any::<u16>(), 0..40),
        dbis in proptest::collection::vec(any::<u32>(), 0..10),
        len in any::<u64>(),
        blk in any::<u32>(),
        data_off in any::<u64>(),
    ) {
        let mut b = vec![0u8; buf_len];
        let iovs = vec![Iovec { base: 1, len: 2 }; niov];
        let _ = write_pad(&mut b[..], cmdr_off, offset, total);
        let _ = write_cmd(&mut b[..], cmdr_off, offset, total, base, 1, &iovs, c1 % 8, c2 % 8, &cdb);
        let _ = write_cmd(&mut b[..], cmdr_off, offset, total, base, 1, &iovs, c1, c2, &cdb);
        let _ = write_tmr(&mut b[..], cmdr_off, offset, 1, &ids);
        prop_assert_eq!(b.len(), buf_len);
        let mut out = vec![Iovec::default(); 4];
        let _ = fill_iovecs(&dbis, len, blk, data_off, &mut out);
        let _ = fill_iovecs(&dbis, len % 5000, blk % 1024, data_off, &mut out);
        prop_assert!(iov_count(&dbis) <= dbis.len());
        let mut a = BlockAlloc::new(70, vec![0u64; 2]).unwrap();
        let mut o = vec![0u32; 80];
        let _ = a.alloc(c1 % 80, &mut o);
        let bad = a.free(&dbis);
        prop_assert!(bad as usize <= dbis.len());
        let _ = a.reclaim();
    }

    /// Arbitrary sense bytes from the handler, biased to descriptor format.
    #[test]
    fn sanitize_any_sense(
        bytes in proptest::collection::vec(any::<u8>(), SENSE_LEN),
        b0 in prop_oneof![Just(0x72u8), Just(0x70), any::<u8>()],
    ) {
        let mut s: [u8; SENSE_LEN] = bytes.try_into().unwrap();
        let _ = sanitize(&mut s);
        s[0] = b0;
        let _ = sanitize(&mut s);
        prop_assert!(usize::from(s[7]) + 8 <= SENSE_LEN);
    }
}

#[test]
fn fifo_capacity_extremes() {
    assert_eq!(fifo_capacity(0), 1);
    assert_eq!(fifo_capacity(u32::MAX), (u32::MAX / 32) as usize + 1);
}
