// SPDX-License-Identifier: GPL-2.0

//! Command ring bookkeeping.

use std::collections::VecDeque;

use proptest::prelude::*;
use tcmu_logic::abi::{hdr_get_len, hdr_get_op, hdr_len_op, Opcode, TCMU_OP_CMD, TCMU_OP_PAD};
use tcmu_logic::cmd_ring::{fifo_capacity, CmdRing, Placement, RingError, Slot, MIN_ENTRY_SIZE};

fn ring(size: u32) -> CmdRing<Vec<u32>> {
    CmdRing::new(size, vec![0; fifo_capacity(size)]).unwrap()
}

/// Reaps everything up to the current head, returning the slots.
fn reap_all(r: &mut CmdRing<Vec<u32>>) -> Vec<Slot> {
    let tail = r.head();
    let mut reaper = r.begin_reap(tail).unwrap();
    let mut out = Vec::new();
    while let Some(slot) = reaper.consume().unwrap() {
        out.push(slot);
    }
    out
}

/// Moves an empty ring to `off` (head = last_cleaned = off).
fn move_to(r: &mut CmdRing<Vec<u32>>, off: u32) {
    assert!(r.is_empty());
    if off != 0 {
        let p = r.reserve(off, Opcode::Cmd).unwrap();
        assert_eq!(
            p,
            Placement {
                pad: None,
                offset: 0
            }
        );
        reap_all(r);
    }
    assert_eq!((r.head(), r.last_cleaned()), (off, off));
}

#[test]
fn new_validates_size() {
    assert!(CmdRing::new(0, vec![0u32; 4]).is_none());
    assert!(CmdRing::new(12, vec![0u32; 4]).is_none());
    assert!(CmdRing::new(1 << 31, vec![0u32; 4]).is_none());
    assert!(CmdRing::new((1 << 31) - 8, vec![0u32; 4]).is_some());
    let r = CmdRing::new(8, vec![0u32; 4]).unwrap();
    assert_eq!((r.size(), r.used(), r.free()), (8, 0, 7));
}

#[test]
fn fifo_capacity_bound() {
    assert_eq!(MIN_ENTRY_SIZE, 32);
    // 8 MiB ring of the C driver.
    assert_eq!(fifo_capacity(8 * 1024 * 1024 - 128), 262_141);
    // Worst case: a PAD plus as many minimal TMR entries as fit.
    for size in [64u32, 72, 1000, 1024, 4096 + 8] {
        let mut r = ring(size);
        // Put the head near the end so that the first entry needs a PAD.
        move_to(&mut r, size - 8);
        let mut n = 0;
        while r.reserve(MIN_ENTRY_SIZE, Opcode::Tmr).is_some() {
            n += 1;
        }
        // The ring ran out of bytes, not of FIFO slots.
        assert!(r.free() < MIN_ENTRY_SIZE, "size {size}");
        assert!(r.pending_slots() <= fifo_capacity(size));
        assert_eq!(r.pending_slots(), n + 1);
    }
}

#[test]
fn small_fifo_reports_full() {
    let mut r = CmdRing::new(1024, vec![0u32; 2]).unwrap();
    assert!(r.reserve(112, Opcode::Cmd).is_some());
    assert!(r.reserve(112, Opcode::Cmd).is_some());
    assert!(!r.fits(112));
    assert_eq!(r.reserve(112, Opcode::Cmd), None);
    assert_eq!(r.head(), 224);
    reap_all(&mut r);
    assert!(r.reserve(112, Opcode::Cmd).is_some());
    // A PAD needs a FIFO slot too.
    let mut r = CmdRing::new(1024, vec![0u32; 2]).unwrap();
    move_to(&mut r, 1016);
    assert!(r.fits(112));
    r.reserve(112, Opcode::Cmd).unwrap();
    assert!(!r.fits(8));
}

#[test]
fn reserve_rejects_bad_lengths() {
    let mut r = ring(1024);
    for len in [0u32, 4, 12, 1024, 2048, u32::MAX] {
        assert!(!r.fits(len));
        assert_eq!(r.reserve(len, Opcode::Cmd), None);
    }
    assert_eq!((r.head(), r.pending_slots()), (0, 0));
}

/// Every start offset, every entry length: PAD exactly when the entry does
/// not fit before the end, success exactly when `len + pad <= free`.
#[test]
fn wrap_around_every_offset() {
    for size in [1000u32, 1024, 1016, 200, 64] {
        for off in (0..size).step_by(8) {
            for len in (8..size).step_by(8) {
                let mut r = ring(size);
                move_to(&mut r, off);
                let to_end = size - off;
                let pad = if to_end >= len { 0 } else { to_end };
                let ok = pad + len < size; // free of an empty ring is size - 1
                let p = r.reserve(len, Opcode::Cmd);
                if !ok {
                    assert_eq!(p, None, "size {size} off {off} len {len}");
                    assert_eq!((r.head(), r.pending_slots()), (off, 0));
                    continue;
                }
                let p = p.unwrap();
                if pad != 0 {
                    assert_eq!(
                        p,
                        Placement {
                            pad: Some((off, pad)),
                            offset: 0
                        }
                    );
                    assert_eq!(r.head(), len % size);
                } else {
                    assert_eq!(
                        p,
                        Placement {
                            pad: None,
                            offset: off
                        }
                    );
                    assert_eq!(r.head(), (off + len) % size);
                }
                assert_eq!(r.used(), pad + len);
                assert_eq!(r.used() + r.free() + 1, size);
                let slots = reap_all(&mut r);
                let mut want = Vec::new();
                if pad != 0 {
                    want.push(Slot {
                        offset: off,
                        len_op: hdr_len_op(pad, Opcode::Pad),
                    });
                }
                want.push(Slot {
                    offset: p.offset,
                    len_op: hdr_len_op(len, Opcode::Cmd),
                });
                assert_eq!(slots, want);
                assert!(r.is_empty());
                assert_eq!(r.free(), size - 1);
            }
        }
    }
}

#[test]
fn begin_reap_validates_tail() {
    let mut r = ring(1024);
    move_to(&mut r, 512);
    r.reserve(112, Opcode::Cmd).unwrap(); // 512..624
    r.reserve(32, Opcode::Tmr).unwrap(); // 624..656
    assert_eq!(
        r.begin_reap(1024).err(),
        Some(RingError::TailOutOfRange { tail: 1024 })
    );
    assert_eq!(
        r.begin_reap(u32::MAX).err(),
        Some(RingError::TailOutOfRange { tail: u32::MAX })
    );
    assert_eq!(
        r.begin_reap(516).err(),
        Some(RingError::TailMisaligned { tail: 516 })
    );
    assert_eq!(
        r.begin_reap(664).err(),
        Some(RingError::TailOutsideUsed { tail: 664 })
    );
    assert_eq!(
        r.begin_reap(0).err(),
        Some(RingError::TailOutsideUsed { tail: 0 })
    );
    assert_eq!(
        r.begin_reap(504).err(),
        Some(RingError::TailOutsideUsed { tail: 504 })
    );
    // Nothing to do.
    assert_eq!(r.begin_reap(512).unwrap().peek(), Ok(None));
    // Tail inside the first entry: reported when reached, nothing consumed.
    {
        let mut reaper = r.begin_reap(520).unwrap();
        let slot = Slot {
            offset: 512,
            len_op: hdr_len_op(112, Opcode::Cmd),
        };
        assert_eq!(
            reaper.peek(),
            Err(RingError::TailInsideEntry { tail: 520, slot })
        );
        assert_eq!(
            reaper.consume(),
            Err(RingError::TailInsideEntry { tail: 520, slot })
        );
    }
    assert_eq!(r.last_cleaned(), 512);
    // Tail inside the second entry: the first one is reaped.
    {
        let mut reaper = r.begin_reap(632).unwrap();
        assert_eq!(reaper.remaining(), 120);
        let s = reaper.consume().unwrap().unwrap();
        assert_eq!((s.offset, s.len(), s.op()), (512, 112, TCMU_OP_CMD));
        assert!(matches!(
            reaper.consume(),
            Err(RingError::TailInsideEntry { tail: 632, .. })
        ));
    }
    assert_eq!(r.last_cleaned(), 624);
    assert_eq!(r.pending_slots(), 1);
    // Peek does not consume.
    {
        let mut reaper = r.begin_reap(656).unwrap();
        assert_eq!(reaper.peek(), reaper.peek());
        assert!(reaper.consume().unwrap().is_some());
        assert_eq!(reaper.consume(), Ok(None));
    }
    assert!(r.is_empty());
}

#[test]
fn reset_empties() {
    let mut r = ring(1024);
    r.reserve(512, Opcode::Cmd).unwrap();
    r.reserve(480, Opcode::Cmd).unwrap();
    r.reset();
    assert_eq!(
        (r.head(), r.last_cleaned(), r.used(), r.pending_slots()),
        (0, 0, 0, 0)
    );
    assert_eq!(
        r.begin_reap(8).err(),
        Some(RingError::TailOutsideUsed { tail: 8 })
    );
    assert!(r.reserve(1016, Opcode::Cmd).is_some());
}

/// A model of live slots, checked against the ring after random operations.
#[derive(Debug, Clone)]
enum Op {
    Reserve(u32, bool),
    Reap(usize),
    BadTail(u32),
}

fn op_strategy(size: u32) -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (
            prop_oneof![
                Just(32u32),
                Just(112),
                Just(120),
                Just(8),
                (1u32..(size / 8)).prop_map(|n| n * 8),
                any::<u32>(),
            ],
            any::<bool>()
        )
            .prop_map(|(l, tmr)| Op::Reserve(l, tmr)),
        2 => (0usize..6).prop_map(Op::Reap),
        1 => any::<u32>().prop_map(Op::BadTail),
    ]
}

fn overlaps(a: (u32, u32), b: (u32, u32)) -> bool {
    a.0 < b.0 + b.1 && b.0 < a.0 + a.1
}

fn run_model(size: u32, fifo: usize, ops: Vec<Op>) {
    let mut r = CmdRing::new(size, vec![0u32; fifo]).unwrap();
    let mut live: VecDeque<Slot> = VecDeque::new();
    for op in ops {
        match op {
            Op::Reserve(len, tmr) => {
                let opc = if tmr { Opcode::Tmr } else { Opcode::Cmd };
                let head = r.head();
                let used: u32 = live.iter().map(|s| s.len()).sum();
                assert_eq!(used, r.used());
                let to_end = size - head;
                let pad = if to_end >= len { 0 } else { to_end };
                let slots = if pad != 0 { 2 } else { 1 };
                let valid = len >= 8 && len % 8 == 0 && len < size;
                let want_ok = valid
                    && u64::from(pad) + u64::from(len) <= u64::from(size - used - 1)
                    && live.len() + slots <= fifo;
                assert_eq!(r.fits(len), want_ok);
                match r.reserve(len, opc) {
                    None => assert!(!want_ok),
                    Some(p) => {
                        assert!(want_ok);
                        let mut new = Vec::new();
                        if let Some((o, l)) = p.pad {
                            assert_eq!((o, l), (head, pad));
                            assert_eq!(o + l, size);
                            new.push(Slot {
                                offset: o,
                                len_op: hdr_len_op(l, Opcode::Pad),
                            });
                        }
                        assert!(p.offset + len <= size);
                        new.push(Slot {
                            offset: p.offset,
                            len_op: hdr_len_op(len, opc),
                        });
                        for n in &new {
                            for s in &live {
                                assert!(
                                    !overlaps((n.offset, n.len()), (s.offset, s.len())),
                                    "{n:?} overwrites live {s:?}"
                                );
                            }
                        }
                        live.extend(new);
                    }
                }
            }
            Op::Reap(k) => {
                let k = k.min(live.len());
                let tail = if k == live.len() {
                    r.head()
                } else {
                    live[k].offset
                };
                let mut reaper = r.begin_reap(tail).unwrap();
                for _ in 0..k {
                    let s = reaper.consume().unwrap().unwrap();
                    assert_eq!(s, live.pop_front().unwrap());
                }
                assert_eq!(reaper.consume(), Ok(None));
            }
            Op::BadTail(t) => {
                let before = (r.head(), r.last_cleaned(), r.pending_slots());
                if let Ok(mut reaper) = r.begin_reap(t) {
                    // Valid tail: it must be within the used region.
                    loop {
                        match reaper.consume() {
                            Ok(Some(s)) => assert_eq!(s, live.pop_front().unwrap()),
                            Ok(None) => break,
                            Err(RingError::TailInsideEntry { slot, .. }) => {
                                assert_eq!(slot, live[0]);
                                break;
                            }
                            Err(e) => panic!("{e:?}"),
                        }
                    }
                } else {
                    assert_eq!(before, (r.head(), r.last_cleaned(), r.pending_slots()));
                }
            }
        }
        assert_eq!(r.used() + r.free() + 1, size);
        assert_eq!(r.pending_slots(), live.len());
        assert_eq!(live.iter().map(|s| s.len()).sum::<u32>(), r.used());
        assert!(
            live.iter()
                .filter(|s| hdr_get_op(s.len_op) == TCMU_OP_PAD)
                .count()
                <= 1
        );
        if let Some(s) = live.front() {
            assert_eq!(s.offset, r.last_cleaned());
        }
        for s in &live {
            assert!(hdr_get_len(s.len_op) >= 8);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn random_reserve_reap(
        size in prop_oneof![Just(1000u32), Just(1024), Just(504), (2u32..200).prop_map(|n| n * 8)],
        ops in proptest::collection::vec(op_strategy(1024), 1..200),
    ) {
        run_model(size, fifo_capacity(size), ops);
    }

    #[test]
    fn random_reserve_reap_small_fifo(
        size in prop_oneof![Just(1000u32), Just(1024)],
        fifo in 0usize..6,
        ops in proptest::collection::vec(op_strategy(1024), 1..200),
    ) {
        run_model(size, fifo, ops);
    }
}
