// SPDX-License-Identifier: GPL-2.0

//! The ring driven by the fake kernel: in-order and out-of-order
//! completions, wrap-around with PAD entries, TMR and unknown entries,
//! READ_LEN, sense data, protocol violations.

use tcmu_ring::abi;
use tcmu_ring::fake::{Completion, FakeError, FakeKernel};
use tcmu_ring::{Command, Entry, Region, Response, Ring, RingError};

const ALL_CAPS: u16 = abi::TCMU_MAILBOX_FLAG_CAP_OOOC
    | abi::TCMU_MAILBOX_FLAG_CAP_READ_LEN
    | abi::TCMU_MAILBOX_FLAG_CAP_TMR
    | abi::TCMU_MAILBOX_FLAG_CAP_KEEP_BUF;

const READ10: [u8; 10] = [0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0];
const TUR: [u8; 6] = [0; 6];

fn setup(cmdr_size: u32, flags: u16) -> (FakeKernel, Ring) {
    let (k, mem) = FakeKernel::new(cmdr_size, 512, 64, flags);
    (k, Ring::new(mem).unwrap())
}

fn cmds(ring: &mut Ring) -> Vec<Command> {
    ring.entries()
        .map(|e| match e.unwrap() {
            Entry::Cmd(c) => c,
            other => panic!("unexpected {other:?}"),
        })
        .collect()
}

fn reap(k: &mut FakeKernel, ring: &mut Ring) -> Vec<Completion> {
    k.reap(ring.region_mut()).unwrap()
}

#[test]
fn in_order() {
    let (mut k, mut ring) = setup(4096, ALL_CAPS);
    let a = k.queue_cmd(ring.region_mut(), &TUR, &[], 0).unwrap();
    let b = k.queue_cmd(ring.region_mut(), &READ10, &[], 512).unwrap();
    let c = cmds(&mut ring);
    assert_eq!(c.len(), 2);
    assert_eq!((c[0].cmd_id, c[1].cmd_id), (a, b));
    assert_eq!(c[0].cdb, TUR);
    assert_eq!(c[1].cdb, READ10);
    assert!(c[0].iovs.is_empty());
    assert_eq!(c[1].data_len(), 512);
    assert_eq!(ring.inflight(), 2);
    assert!(!ring.take_tail_moved());
    assert!(ring.entries().next().is_none());

    ring.complete(a, &Response::GOOD).unwrap();
    assert!(ring.take_tail_moved());
    let done = reap(&mut k, &mut ring);
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].cmd_id, a);
    assert_eq!(done[0].status, 0);

    ring.copy_to_iovs(&c[1].iovs, &[7u8; 512]).unwrap();
    ring.complete(b, &Response::GOOD).unwrap();
    let done = reap(&mut k, &mut ring);
    assert_eq!(done[0].data_in, vec![7u8; 512]);
    assert_eq!(ring.tail(), k.head());
    assert_eq!(k.last_cleaned(), k.head());
    assert_eq!(ring.inflight(), 0);
    assert_eq!(k.inflight(), 0);
}

#[test]
fn out_of_order() {
    let (mut k, mut ring) = setup(4096, ALL_CAPS);
    let ids: Vec<u16> = (0..4)
        .map(|_| k.queue_cmd(ring.region_mut(), &READ10, &[], 512).unwrap())
        .collect();
    let c = cmds(&mut ring);
    assert_eq!(c.iter().map(|c| c.cmd_id).collect::<Vec<_>>(), ids);
    for (i, cmd) in c.iter().enumerate() {
        ring.copy_to_iovs(&cmd.iovs, &[i as u8; 512]).unwrap();
    }
    // Complete 3, 1, 0, 2: every completion goes into the oldest slot.
    let mut seen = Vec::new();
    for i in [3usize, 1, 0, 2] {
        ring.complete(ids[i], &Response::GOOD).unwrap();
        for d in reap(&mut k, &mut ring) {
            let idx = ids.iter().position(|&x| x == d.cmd_id).unwrap();
            assert_eq!(d.data_in, vec![idx as u8; 512]);
            seen.push(idx);
        }
    }
    assert_eq!(seen, vec![3, 1, 0, 2]);
    assert_eq!(ring.tail(), k.head());
    assert_eq!(k.inflight(), 0);
}

#[test]
fn in_order_only_without_oooc() {
    let (mut k, mut ring) = setup(4096, abi::TCMU_MAILBOX_FLAG_CAP_READ_LEN);
    let a = k.queue_cmd(ring.region_mut(), &TUR, &[], 0).unwrap();
    let b = k.queue_cmd(ring.region_mut(), &TUR, &[], 0).unwrap();
    cmds(&mut ring);
    assert_eq!(
        ring.complete(b, &Response::GOOD),
        Err(RingError::OutOfOrder {
            cmd_id: b,
            oldest: a
        })
    );
    ring.complete(a, &Response::GOOD).unwrap();
    ring.complete(b, &Response::GOOD).unwrap();
    let ids: Vec<u16> = reap(&mut k, &mut ring).iter().map(|c| c.cmd_id).collect();
    assert_eq!(ids, vec![a, b]);
}

#[test]
fn unknown_and_double_completion() {
    let (mut k, mut ring) = setup(4096, ALL_CAPS);
    let a = k.queue_cmd(ring.region_mut(), &TUR, &[], 0).unwrap();
    assert_eq!(
        ring.complete(a, &Response::GOOD),
        Err(RingError::UnknownCmdId(a))
    );
    cmds(&mut ring);
    assert_eq!(
        ring.complete(a + 1, &Response::GOOD),
        Err(RingError::UnknownCmdId(a + 1))
    );
    ring.complete(a, &Response::GOOD).unwrap();
    assert_eq!(
        ring.complete(a, &Response::GOOD),
        Err(RingError::UnknownCmdId(a))
    );
    assert_eq!(reap(&mut k, &mut ring).len(), 1);
}

#[test]
fn wrap_around_with_pad() {
    // Ring of 1024 bytes; a READ(10) with one iovec takes 128 bytes.
    for start in (0..1024).step_by(8) {
        let (mut k, mut ring) = setup(1024, ALL_CAPS);
        k.set_positions(ring.region_mut(), start);
        ring.resync().unwrap();
        let mut ids = Vec::new();
        for _ in 0..3 {
            ids.push(k.queue_cmd(ring.region_mut(), &READ10, &[], 512).unwrap());
        }
        let c = cmds(&mut ring);
        assert_eq!(
            c.iter().map(|c| c.cmd_id).collect::<Vec<_>>(),
            ids,
            "start {start}"
        );
        for (i, cmd) in c.iter().enumerate() {
            assert_eq!(cmd.pos % 8, 0);
            assert!(
                cmd.pos + 128 <= 1024,
                "entry at {} crosses the end",
                cmd.pos
            );
            ring.copy_to_iovs(&cmd.iovs, &[i as u8 + 1; 512]).unwrap();
        }
        // Complete the last one first to make the PAD land between slots.
        for i in [2usize, 0, 1] {
            ring.complete(ids[i], &Response::GOOD).unwrap();
        }
        let done = reap(&mut k, &mut ring);
        assert_eq!(
            done.iter().map(|d| d.cmd_id).collect::<Vec<_>>(),
            vec![ids[2], ids[0], ids[1]]
        );
        assert_eq!(done[0].data_in, vec![3u8; 512]);
        assert_eq!(ring.tail(), k.head(), "start {start}");
        assert_eq!(k.last_cleaned(), k.head());
    }
}

#[test]
fn pad_alone_moves_tail() {
    let (mut k, mut ring) = setup(1024, ALL_CAPS);
    k.set_positions(ring.region_mut(), 1024 - 64);
    ring.resync().unwrap();
    let a = k.queue_cmd(ring.region_mut(), &TUR, &[], 0).unwrap();
    assert_eq!(k.head(), 120);
    let c = cmds(&mut ring);
    assert_eq!(c[0].pos, 0);
    // The PAD before the command was retired as soon as it was read.
    assert_eq!(ring.tail(), 0);
    assert!(ring.take_tail_moved());
    ring.complete(a, &Response::GOOD).unwrap();
    assert_eq!(reap(&mut k, &mut ring).len(), 1);
}

#[test]
fn sense_and_read_len() {
    let (mut k, mut ring) = setup(4096, ALL_CAPS);
    let a = k
        .queue_cmd(ring.region_mut(), &READ10, &[], 6 * 512)
        .unwrap();
    let b = k.queue_cmd(ring.region_mut(), &READ10, &[], 1024).unwrap();
    let c = cmds(&mut ring);
    assert_eq!(c[0].iovs.len(), 1, "contiguous blocks are merged");
    let sense = [0x70, 0, 5, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x24, 0];
    ring.complete(a, &Response::check_condition(&sense))
        .unwrap();
    ring.zero_iovs(&c[1].iovs, 0).unwrap();
    ring.copy_to_iovs(&c[1].iovs, b"hello").unwrap();
    ring.complete(
        b,
        &Response {
            status: 0,
            sense: &[],
            read_len: Some(5),
        },
    )
    .unwrap();
    let d = reap(&mut k, &mut ring);
    assert_eq!(d[0].status, 2);
    assert_eq!(&d[0].sense[..sense.len()], &sense);
    assert!(d[0].sense[sense.len()..].iter().all(|&x| x == 0));
    assert_eq!(d[0].read_len, None);
    assert_eq!(d[1].read_len, Some(5));
    assert_eq!(d[1].data_in, b"hello");
}

#[test]
fn read_len_ignored_without_cap() {
    let (mut k, mut ring) = setup(4096, abi::TCMU_MAILBOX_FLAG_CAP_OOOC);
    let a = k.queue_cmd(ring.region_mut(), &READ10, &[], 512).unwrap();
    let c = cmds(&mut ring);
    ring.zero_iovs(&c[0].iovs, 0).unwrap();
    ring.complete(
        a,
        &Response {
            status: 0,
            sense: &[],
            read_len: Some(5),
        },
    )
    .unwrap();
    let d = reap(&mut k, &mut ring);
    assert_eq!(d[0].read_len, None);
    assert_eq!(d[0].data_in.len(), 512);
}

#[test]
fn data_out_and_bidi() {
    let (mut k, mut ring) = setup(4096, ALL_CAPS);
    let payload: Vec<u8> = (0..1500u32).map(|i| (i * 7) as u8).collect();
    let w = [0x2a, 0, 0, 0, 0, 0, 0, 0, 3, 0];
    k.queue_cmd(ring.region_mut(), &w, &payload, 0).unwrap();
    k.queue_cmd(ring.region_mut(), &w, &payload[..100], 200)
        .unwrap();
    let c = cmds(&mut ring);
    let mut got = vec![0u8; 1500];
    assert_eq!(ring.copy_from_iovs(&c[0].iovs, &mut got).unwrap(), 1500);
    assert_eq!(got, payload);
    assert!(c[0].bidi_iovs.is_empty());
    assert_eq!(c[1].data_len(), 100);
    assert_eq!(tcmu_ring::iovs_len(&c[1].bidi_iovs), 200);
    // zero_iovs from the middle.
    ring.zero_iovs(&c[0].iovs, 1000).unwrap();
    ring.copy_from_iovs(&c[0].iovs, &mut got).unwrap();
    assert_eq!(&got[..1000], &payload[..1000]);
    assert!(got[1000..].iter().all(|&x| x == 0));
}

#[test]
fn tmr_entries() {
    let (mut k, mut ring) = setup(4096, ALL_CAPS);
    // A TMR on an idle ring is retired at once.
    k.queue_tmr(ring.region_mut(), abi::TCMU_TMR_LUN_RESET, &[])
        .unwrap();
    match ring.entries().next().unwrap().unwrap() {
        Entry::Tmr(t) => {
            assert_eq!(t.tmr_type, Some(abi::TmrType::LunReset));
            assert!(t.cmd_ids.is_empty());
        }
        e => panic!("{e:?}"),
    }
    assert!(ring.take_tail_moved());
    assert_eq!(ring.tail(), k.head());
    assert!(reap(&mut k, &mut ring).is_empty());

    let a = k.queue_cmd(ring.region_mut(), &TUR, &[], 0).unwrap();
    k.queue_tmr(ring.region_mut(), abi::TCMU_TMR_ABORT_TASK, &[a])
        .unwrap();
    let b = k.queue_cmd(ring.region_mut(), &TUR, &[], 0).unwrap();
    let e: Vec<Entry> = ring.entries().map(Result::unwrap).collect();
    assert_eq!(e.len(), 3);
    let Entry::Tmr(t) = &e[1] else { panic!() };
    assert_eq!(t.cmd_ids, vec![a]);
    ring.complete(b, &Response::GOOD).unwrap();
    ring.complete(a, &Response::GOOD).unwrap();
    let ids: Vec<u16> = reap(&mut k, &mut ring).iter().map(|c| c.cmd_id).collect();
    assert_eq!(ids, vec![b, a]);
    assert_eq!(ring.tail(), k.head());
}

#[test]
fn unknown_opcode_entries() {
    let (mut k, mut ring) = setup(4096, ALL_CAPS);
    let a = k.queue_cmd(ring.region_mut(), &TUR, &[], 0).unwrap();
    k.queue_raw(ring.region_mut(), 5, 64).unwrap();
    let e: Vec<Entry> = ring.entries().map(Result::unwrap).collect();
    assert!(matches!(e[1], Entry::Unknown { op: 5, len: 64, .. }));
    // The unknown entry is behind a command: the tail cannot pass it yet.
    assert!(!ring.take_tail_moved());
    ring.complete(a, &Response::GOOD).unwrap();
    assert_eq!(ring.tail(), k.head());
    assert_eq!(reap(&mut k, &mut ring).len(), 1);
}

#[test]
fn complete_unknown_op() {
    let (mut k, mut ring) = setup(4096, ALL_CAPS);
    let a = k
        .queue_cmd(
            ring.region_mut(),
            &[0xc0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            &[],
            0,
        )
        .unwrap();
    cmds(&mut ring);
    ring.complete_unknown_op(a).unwrap();
    let d = reap(&mut k, &mut ring);
    assert!(d[0].unknown_op);
    assert_eq!(d[0].status, 2);
}

#[test]
fn pending_entries_on_attach() {
    let (mut k, mut mem) = FakeKernel::new(4096, 512, 64, ALL_CAPS);
    let a = k.queue_cmd(&mut mem, &TUR, &[], 0).unwrap();
    let b = k.queue_cmd(&mut mem, &TUR, &[], 0).unwrap();
    let mut ring = Ring::new(mem).unwrap();
    let ids: Vec<u16> = cmds(&mut ring).iter().map(|c| c.cmd_id).collect();
    assert_eq!(ids, vec![a, b]);
}

#[test]
fn full_ring_and_refill() {
    let (mut k, mut ring) = setup(1024, ALL_CAPS);
    let mut n = 0;
    loop {
        match k.queue_cmd(ring.region_mut(), &TUR, &[], 0) {
            Ok(_) => n += 1,
            Err(FakeError::Full) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(n, 1023 / 120);
    let c = cmds(&mut ring);
    assert_eq!(c.len(), n);
    for cmd in c.iter().rev() {
        ring.complete(cmd.cmd_id, &Response::GOOD).unwrap();
    }
    assert_eq!(reap(&mut k, &mut ring).len(), n);
    assert!(k.queue_cmd(ring.region_mut(), &TUR, &[], 0).is_ok());
    assert_eq!(cmds(&mut ring).len(), 1);
}

#[test]
fn broken_head_and_entries() {
    let (mut k, mut ring) = setup(4096, ALL_CAPS);
    let a = k.queue_cmd(ring.region_mut(), &TUR, &[], 0).unwrap();
    cmds(&mut ring);
    // Misaligned head.
    ring.region_mut()
        .write_u32(abi::MAILBOX_CMD_HEAD_OFFSET as u64, 115)
        .unwrap();
    assert!(matches!(
        ring.next_entry(),
        Err(RingError::BadHead { head: 115, .. })
    ));
    assert!(matches!(ring.next_entry(), Err(RingError::Broken(_))));
    // Completions of validated commands still work.
    ring.complete(a, &Response::GOOD).unwrap();

    // Head out of range.
    let (_, mut ring) = setup(4096, ALL_CAPS);
    ring.region_mut()
        .write_u32(abi::MAILBOX_CMD_HEAD_OFFSET as u64, 4096)
        .unwrap();
    assert!(ring.next_entry().is_err());

    // A length running past the head.
    let (mut k, mut ring) = setup(4096, ALL_CAPS);
    k.queue_cmd(ring.region_mut(), &TUR, &[], 0).unwrap();
    let base = abi::MAILBOX_SIZE as u64;
    ring.region_mut()
        .write_u32(base, abi::hdr_len_op(128, abi::Opcode::Cmd))
        .unwrap();
    assert!(matches!(ring.next_entry(), Err(RingError::BadEntry { .. })));

    // Duplicate command ids.
    let (mut k, mut ring) = setup(4096, ALL_CAPS);
    k.queue_cmd(ring.region_mut(), &TUR, &[], 0).unwrap();
    k.queue_cmd(ring.region_mut(), &TUR, &[], 0).unwrap();
    ring.region_mut().write_u16(base + 120 + 4, 1).unwrap();
    assert!(ring.next_entry().unwrap().is_some());
    assert_eq!(ring.next_entry(), Err(RingError::DuplicateCmdId(1)));
}

#[test]
fn reset_detection() {
    let (mut k, mut ring) = setup(4096, ALL_CAPS);
    k.queue_cmd(ring.region_mut(), &TUR, &[], 0).unwrap();
    cmds(&mut ring);
    // What the reset_ring action does: tail = head.
    let head = k.head();
    ring.region_mut()
        .write_u32(abi::MAILBOX_CMD_TAIL_OFFSET as u64, head)
        .unwrap();
    assert_eq!(
        ring.next_entry(),
        Err(RingError::Reset {
            ours: 0,
            found: head
        })
    );
    assert!(matches!(
        ring.complete(1, &Response::GOOD),
        Err(RingError::Reset { .. })
    ));
    ring.resync().unwrap();
    assert_eq!(ring.inflight(), 0);
    assert_eq!(ring.next_entry(), Ok(None));
}

#[test]
fn bad_mailboxes() {
    let mk = |f: &dyn Fn(&mut Region)| {
        let (_, mut mem) = FakeKernel::new(1024, 512, 4, ALL_CAPS);
        f(&mut mem);
        Ring::new(mem)
    };
    assert!(mk(&|_| {}).is_ok());
    assert!(mk(&|m| m.write_u16(0, 1).unwrap()).is_err());
    assert!(mk(&|m| m
        .write_u32(abi::MAILBOX_CMDR_OFF_OFFSET as u64, 64)
        .unwrap())
    .is_err());
    assert!(mk(&|m| m
        .write_u32(abi::MAILBOX_CMDR_OFF_OFFSET as u64, 132)
        .unwrap())
    .is_err());
    assert!(mk(&|m| m
        .write_u32(abi::MAILBOX_CMDR_SIZE_OFFSET as u64, 1 << 30)
        .unwrap())
    .is_err());
    assert!(mk(&|m| m
        .write_u32(abi::MAILBOX_CMDR_SIZE_OFFSET as u64, 1020)
        .unwrap())
    .is_err());
    assert!(mk(&|m| m
        .write_u32(abi::MAILBOX_CMD_TAIL_OFFSET as u64, 1024)
        .unwrap())
    .is_err());
    assert!(mk(&|m| m.write_u32(abi::MAILBOX_CMD_HEAD_OFFSET as u64, 3).unwrap()).is_err());
    assert!(Ring::new(Region::new_zeroed(64)).is_err());
}

/// Tiny deterministic PRNG (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Random mix of commands of various sizes (so PADs land everywhere),
/// TMRs, random completion order, small ring and data area.
#[test]
fn randomized_against_fake_kernel() {
    for seed in 1..=20u64 {
        let (mut k, mem) = FakeKernel::new(1024 + 8 * seed as u32, 256, 16, ALL_CAPS);
        let mut ring = Ring::new(mem).unwrap();
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        // cmd id -> (Data-Out, Data-In length)
        let mut expected: std::collections::HashMap<u16, (Vec<u8>, usize)> = Default::default();
        let pattern =
            |id: u16, len: usize| -> Vec<u8> { (0..len).map(|i| (i as u16 ^ id) as u8).collect() };
        let mut pending: Vec<Command> = Vec::new();
        let mut completed = 0usize;
        let mut fails = 0usize;
        for step in 0..3000 {
            match rng.below(4) {
                0 | 1 => {
                    let cdb: Vec<u8> = match rng.below(4) {
                        0 => TUR.to_vec(),
                        1 => READ10.to_vec(),
                        2 => vec![0x88; 16],
                        _ => {
                            let mut v = vec![0u8; 40];
                            v[0] = 0x7f;
                            v[7] = 32;
                            v
                        }
                    };
                    let out_len = if rng.below(2) == 0 {
                        0
                    } else {
                        rng.below(700) as usize
                    };
                    let out: Vec<u8> = (0..out_len).map(|_| rng.next() as u8).collect();
                    let in_len = if rng.below(2) == 0 {
                        0
                    } else {
                        rng.below(700) as usize
                    };
                    match k.queue_cmd(ring.region_mut(), &cdb, &out, in_len) {
                        Ok(id) => {
                            expected.insert(id, (out, in_len));
                        }
                        Err(FakeError::Full) | Err(FakeError::TooBig) => fails += 1,
                        Err(e) => panic!("{e}"),
                    }
                }
                2 => {
                    if rng.below(8) == 0 {
                        let ids: Vec<u16> = pending.iter().take(3).map(|c| c.cmd_id).collect();
                        let _ = k.queue_tmr(ring.region_mut(), abi::TCMU_TMR_ABORT_TASK, &ids);
                    }
                    for e in ring.entries() {
                        match e.unwrap() {
                            Entry::Cmd(c) => pending.push(c),
                            Entry::Tmr(_) => {}
                            Entry::Unknown { .. } => panic!(),
                        }
                    }
                }
                _ => {
                    if pending.is_empty() || rng.below(4) == 0 {
                        for d in k.reap(ring.region_mut()).unwrap() {
                            let (_, in_len) = expected.remove(&d.cmd_id).unwrap();
                            assert_eq!(
                                d.data_in,
                                pattern(d.cmd_id, in_len),
                                "seed {seed} step {step}"
                            );
                            completed += 1;
                        }
                        continue;
                    }
                    let c = pending.swap_remove(rng.below(pending.len() as u64) as usize);
                    let (out, in_len) = &expected[&c.cmd_id];
                    let in_iovs = if out.is_empty() {
                        &c.iovs
                    } else {
                        &c.bidi_iovs
                    };
                    if !out.is_empty() {
                        let mut buf = vec![0u8; c.data_len() as usize];
                        ring.copy_from_iovs(&c.iovs, &mut buf).unwrap();
                        assert_eq!(&buf, out, "seed {seed} step {step}");
                    }
                    assert_eq!(tcmu_ring::iovs_len(in_iovs), *in_len as u64);
                    ring.copy_to_iovs(in_iovs, &pattern(c.cmd_id, *in_len))
                        .unwrap();
                    ring.complete(c.cmd_id, &Response::GOOD).unwrap();
                    if rng.below(3) == 0 {
                        for d in k.reap(ring.region_mut()).unwrap() {
                            let (_, in_len) = expected.remove(&d.cmd_id).unwrap();
                            assert_eq!(
                                d.data_in,
                                pattern(d.cmd_id, in_len),
                                "seed {seed} step {step}"
                            );
                            completed += 1;
                        }
                    }
                }
            }
        }
        // Drain.
        for e in ring.entries() {
            if let Entry::Cmd(c) = e.unwrap() {
                pending.push(c);
            }
        }
        for c in pending.drain(..) {
            ring.complete(c.cmd_id, &Response::GOOD).unwrap();
        }
        completed += k.reap(ring.region_mut()).unwrap().len();
        assert!(
            completed > 200,
            "seed {seed}: only {completed} completions, {fails} refused"
        );
        assert_eq!(k.inflight(), 0);
        assert_eq!(ring.inflight(), 0);
        assert_eq!(ring.tail(), k.head());
    }
}
