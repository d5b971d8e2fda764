// SPDX-License-Identifier: GPL-2.0

//! A simulated kernel and userspace handler sharing a `Vec<u8>`: the kernel
//! queues commands (and TMR notifications) with `ring`, `blocks` and
//! `entry`, the handler completes them out of order like libtcmu does
//! (writing the completed command's id into the next CMD slot at the tail),
//! and the kernel reaps them with `ring` and `response`. Every command must
//! be completed exactly once, with what the handler returned.

use std::collections::{HashMap, HashSet};

use proptest::prelude::*;
use tcmu_logic::abi::*;
use tcmu_logic::blocks::{bitmap_words, BlockAlloc};
use tcmu_logic::cmd_ring::{fifo_capacity, CmdRing, RingError};
use tcmu_logic::entry::{
    cmd_entry_size, tmr_entry_size, write_pad, write_tmr, EntrySink,
};
use tcmu_logic::placement::{entry_fit, DataBlocks};
use tcmu_logic::response::*;

use super::entry::{rd_u16, rd_u32, rd_u64, write_cmd};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }
}

const CMDR_OFF: usize = MAILBOX_SIZE;
const BLK: u32 = 512;
const MAX_BLOCKS: u32 = 24;

struct KCmd {
    seq: u64,
    info: CmdInfo,
    dbis: Vec<u32>,
    /// Number of Data-Out blocks (the rest are Data-In of a bidi command).
    out_blocks: usize,
    kept: bool,
}

/// What the handler returned for a command.
#[derive(Clone, Copy, Debug)]
struct Reply {
    seq: u64,
    uflags: u8,
    status: u8,
    read_len: u32,
}

struct Kernel {
    ring: CmdRing<Vec<u32>>,
    blocks: BlockAlloc<Vec<u64>>,
    cmds: HashMap<u16, KCmd>,
    data_off: usize,
    next_seq: u64,
    queued: u64,
    completed: HashSet<u64>,
    /// cmd_id originally written in each CMD slot, by ring offset.
    slot_ids: HashMap<u32, u16>,
    stats: Stats,
}

/// What a simulation exercised.
#[derive(Debug, Default, Clone, Copy)]
struct Stats {
    queued: u64,
    tmrs: u64,
    pads: u64,
    out_of_order: u64,
    kept: u64,
    read_len: u64,
    full: u64,
}

struct Handler {
    read_ptr: u32,
    tail: u32,
    /// Commands read from the ring and not completed yet: (cmd_id, seq).
    pending: Vec<(u16, u64)>,
    /// seq written into the CDB by the kernel, to identify commands.
    replies: HashMap<u16, Reply>,
    tmrs_seen: u64,
}

fn dir_code(dir: DataDirection) -> u8 {
    match dir {
        DataDirection::None => 0,
        DataDirection::ToDevice => 1,
        DataDirection::FromDevice => 2,
        DataDirection::Bidirectional => 3,
    }
}

fn data_byte(seq: u64, i: usize) -> u8 {
    (seq as usize).wrapping_mul(31).wrapping_add(i) as u8
}

impl Kernel {
    fn publish_head(&self, shm: &mut [u8]) {
        shm.put_u32(MAILBOX_CMD_HEAD_OFFSET, self.ring.head())
            .unwrap();
    }

    /// Tries to queue a command; returns false if out of space (C would put
    /// it on the qfull queue).
    fn queue_cmd(&mut self, shm: &mut [u8], rng: &mut Rng) -> bool {
        let dir = match rng.below(4) {
            0 => DataDirection::None,
            1 => DataDirection::ToDevice,
            2 => DataDirection::FromDevice,
            _ => DataDirection::Bidirectional,
        };
        let mut data_length = if dir == DataDirection::None {
            0
        } else {
            1 + rng.below(4 * BLK as u64) as u32
        };
        let bidi_length = if dir == DataDirection::Bidirectional {
            1 + rng.below(3 * BLK as u64) as u32
        } else {
            0
        };
        if dir == DataDirection::Bidirectional && rng.chance(50) {
            data_length = bidi_length;
        }
        let info = CmdInfo {
            dir,
            data_length,
            bidi_length,
        };
        // The kernel's sizing, as `try_ring` does it.
        let data = DataBlocks::new(data_length, bidi_length, BLK, self.blocks.max_blocks()).unwrap();
        let mut dbis = vec![0u32; data.total()];
        if self.blocks.alloc(data.total() as u32, &mut dbis).is_none() {
            return false;
        }
        let (iov_cnt, iov_bidi_cnt) = data.iov_counts(&dbis);
        let mut iovs = vec![Iovec::default(); iov_cnt + iov_bidi_cnt];
        data.fill_iovecs(&dbis, BLK, self.data_off as u64, &mut iovs)
            .unwrap();
        let seq = self.next_seq;
        let cdb_len = [6usize, 10, 12, 16, 32][rng.below(5) as usize];
        // The CDB carries the sequence number and the direction, so the
        // handler can check and produce data.
        let mut cdb = vec![0u8; cdb_len];
        cdb[0] = 0x28;
        cdb[1] = dir_code(dir);
        cdb[2..6].copy_from_slice(&(seq as u32).to_le_bytes());
        let cdb = &cdb[..];
        let Ok((base, total)) = entry_fit(iovs.len(), cdb_len, self.ring.size()) else {
            assert_eq!(self.blocks.free(&dbis), 0);
            return false;
        };
        if !self.ring.fits(total as u32) {
            assert_eq!(self.blocks.free(&dbis), 0);
            return false;
        }
        let cmd_id = (1..=u16::MAX)
            .find(|id| !self.cmds.contains_key(id))
            .unwrap();
        let p = self.ring.reserve(total as u32, Opcode::Cmd).unwrap();
        self.slot_ids.insert(p.offset, cmd_id);
        if let Some((off, len)) = p.pad {
            self.stats.pads += 1;
            write_pad(shm, CMDR_OFF, off as usize, len as usize).unwrap();
        }
        // Data-Out: copy the "scatterlist" into the data area.
        if matches!(dir, DataDirection::ToDevice | DataDirection::Bidirectional) {
            let mut i = 0usize;
            for iov in &iovs[..iov_cnt] {
                for b in 0..iov.len as usize {
                    shm[iov.base as usize + b] = data_byte(seq, i);
                    i += 1;
                }
            }
        }
        write_cmd(
            shm,
            CMDR_OFF,
            p.offset as usize,
            total,
            base,
            cmd_id,
            &iovs,
            iov_cnt as u32,
            iov_bidi_cnt as u32,
            cdb,
        )
        .unwrap();
        self.publish_head(shm);
        self.cmds.insert(
            cmd_id,
            KCmd {
                seq,
                info,
                dbis,
                out_blocks: data.n_first as usize,
                kept: false,
            },
        );
        self.next_seq += 1;
        self.queued += 1;
        true
    }

    fn queue_tmr(&mut self, shm: &mut [u8], rng: &mut Rng) -> bool {
        let ids: Vec<u16> = self
            .cmds
            .keys()
            .copied()
            .take(rng.below(6) as usize)
            .collect();
        let size = tmr_entry_size(ids.len()).unwrap();
        let Some(p) = self.ring.reserve(size as u32, Opcode::Tmr) else {
            return false;
        };
        if let Some((off, len)) = p.pad {
            self.stats.pads += 1;
            write_pad(shm, CMDR_OFF, off as usize, len as usize).unwrap();
        }
        write_tmr(
            shm,
            CMDR_OFF,
            p.offset as usize,
            TCMU_TMR_ABORT_TASK_SET,
            &ids,
        )
        .unwrap();
        self.publish_head(shm);
        true
    }

    /// C's tcmu_handle_completions.
    fn reap(&mut self, shm: &mut [u8], replies: &HashMap<u16, Reply>) -> usize {
        let tail = rd_u32(shm, MAILBOX_CMD_TAIL_OFFSET);
        let mut reaper = self.ring.begin_reap(tail).expect("valid tail");
        let mut n = 0;
        while let Some(slot) = reaper.peek().unwrap() {
            let e = CMDR_OFF + slot.offset as usize;
            let found = rd_u32(shm, e + HDR_LEN_OP_OFFSET);
            match check_len_op(slot.len_op, found).unwrap() {
                SlotKind::Pad | SlotKind::Tmr => {
                    assert!(is_skipped(slot.len_op));
                }
                SlotKind::Cmd => {
                    let raw = RawCmdEntry {
                        len_op: found,
                        cmd_id: rd_u16(shm, e + HDR_CMD_ID_OFFSET),
                        uflags: shm[e + HDR_UFLAGS_OFFSET],
                        scsi_status: shm[e + RSP_SCSI_STATUS_OFFSET],
                        read_len: rd_u32(shm, e + RSP_READ_LEN_OFFSET),
                    };
                    let hdr = decode_header(&raw, slot.len_op).unwrap();
                    if self.slot_ids[&slot.offset] != hdr.cmd_id {
                        self.stats.out_of_order += 1;
                    }
                    if raw.uflags & TCMU_UFLAG_READ_LEN != 0 && raw.read_len != 0 {
                        self.stats.read_len += 1;
                    }
                    let cmd = self.cmds.get(&hdr.cmd_id).expect("known cmd_id");
                    assert!(!cmd.kept, "second completion of a kept command");
                    let reply = replies[&hdr.cmd_id];
                    assert_eq!(reply.seq, cmd.seq);
                    assert_eq!(hdr.keep_buf, reply.uflags & TCMU_UFLAG_KEEP_BUF != 0);
                    let kind = decode_status(&raw, &cmd.info);
                    check(self.data_off, cmd, &reply, kind, shm);
                    assert!(self.completed.insert(cmd.seq), "completed twice");
                    if hdr.keep_buf {
                        self.stats.kept += 1;
                        self.cmds.get_mut(&hdr.cmd_id).unwrap().kept = true;
                    } else {
                        let cmd = self.cmds.remove(&hdr.cmd_id).unwrap();
                        assert_eq!(self.blocks.free(&cmd.dbis), 0);
                    }
                    n += 1;
                }
            }
            reaper.consume().unwrap();
        }
        n
    }
}

fn check(data_off: usize, cmd: &KCmd, reply: &Reply, kind: CompletionKind, shm: &[u8]) {
    if reply.uflags & TCMU_UFLAG_UNKNOWN_OP != 0 {
        assert_eq!(kind, CompletionKind::UnknownOp);
        return;
    }
    let CompletionKind::Status(st) = kind else {
        panic!()
    };
    if !is_valid_status(reply.status) {
        assert_eq!(st.invalid_status, Some(reply.status));
        assert_eq!(st.scsi_status, SAM_STAT_CHECK_CONDITION);
        return;
    }
    assert_eq!(st.scsi_status, reply.status);
    let rl_valid = cmd.info.dir == DataDirection::FromDevice
        && reply.uflags & TCMU_UFLAG_READ_LEN != 0
        && reply.read_len != 0;
    assert_eq!(
        st.read_len,
        rl_valid.then(|| reply.read_len.min(cmd.info.data_length))
    );
    // Data-In written by the handler can be read back from the blocks.
    if let Some(len) = st.gather_len {
        let blocks = match cmd.info.dir {
            DataDirection::Bidirectional => &cmd.dbis[cmd.out_blocks..],
            _ => &cmd.dbis[..],
        };
        for i in 0..len as usize {
            let dbi = blocks[i / BLK as usize] as usize;
            let b = shm[data_off + dbi * BLK as usize + i % BLK as usize];
            assert_eq!(b, !data_byte(cmd.seq, i));
        }
    }
}

impl Kernel {
    /// Userspace wrote the id of a kept command to `free_kept_buf`.
    fn free_kept(&mut self) {
        let kept: Vec<u16> = self
            .cmds
            .iter()
            .filter(|(_, c)| c.kept)
            .map(|(&id, _)| id)
            .collect();
        for id in kept {
            let cmd = self.cmds.remove(&id).unwrap();
            assert_eq!(self.blocks.free(&cmd.dbis), 0);
        }
    }
}

impl Handler {
    /// Reads new entries up to cmd_head, checking them like a careful
    /// handler would.
    fn read_new(&mut self, shm: &mut [u8], size: u32, data_off: usize) {
        let head = rd_u32(shm, MAILBOX_CMD_HEAD_OFFSET);
        while self.read_ptr != head {
            let e = CMDR_OFF + self.read_ptr as usize;
            let len_op = rd_u32(shm, e);
            let len = hdr_get_len(len_op);
            assert!(len >= 8 && self.read_ptr + len <= size);
            match hdr_get_opcode(len_op).unwrap() {
                Opcode::Pad => assert_eq!(self.read_ptr + len, size),
                Opcode::Tmr => {
                    let cnt = rd_u32(shm, e + TMR_CMD_CNT_OFFSET) as usize;
                    assert_eq!(tmr_entry_size(cnt), Some(len as usize));
                    self.tmrs_seen += 1;
                }
                Opcode::Cmd => {
                    let cmd_id = rd_u16(shm, e + HDR_CMD_ID_OFFSET);
                    let iov_cnt = rd_u32(shm, e + REQ_IOV_CNT_OFFSET) as usize;
                    let bidi = rd_u32(shm, e + REQ_IOV_BIDI_CNT_OFFSET) as usize;
                    let cdb_off = rd_u64(shm, e + REQ_CDB_OFF_OFFSET) as usize;
                    let (base, total) = cmd_entry_size(iov_cnt + bidi, 6).unwrap();
                    assert_eq!(cdb_off, e + base);
                    assert!(total <= len as usize);
                    let dir = shm[cdb_off + 1];
                    let seq = u64::from(rd_u32(shm, cdb_off + 2));
                    // Data-Out must be there; fill Data-In.
                    let mut i = 0usize;
                    for k in 0..iov_cnt + bidi {
                        let o = e + REQ_IOV_OFFSET + k * IOVEC_SIZE;
                        let base = rd_u64(shm, o) as usize;
                        let l = rd_u64(shm, o + 8) as usize;
                        assert!(base >= data_off && base + l <= shm.len());
                        if k == iov_cnt {
                            i = 0;
                        }
                        let data_in = k >= iov_cnt || dir == 2;
                        for b in 0..l {
                            if data_in {
                                shm[base + b] = !data_byte(seq, i);
                            } else {
                                assert_eq!(shm[base + b], data_byte(seq, i));
                            }
                            i += 1;
                        }
                    }
                    assert!(bidi == 0 || dir == 3);
                    self.pending.push((cmd_id, seq));
                }
            }
            self.read_ptr = (self.read_ptr + len) % size;
        }
    }

    /// Completes one random pending command in the next CMD slot at the
    /// tail (out of order), like libtcmu's tcmulib_command_complete.
    fn complete_one(&mut self, shm: &mut [u8], size: u32, rng: &mut Rng) {
        let k = rng.below(self.pending.len() as u64) as usize;
        let (cmd_id, seq) = self.pending.swap_remove(k);
        loop {
            let e = CMDR_OFF + self.tail as usize;
            let len_op = rd_u32(shm, e);
            if hdr_get_op(len_op) == TCMU_OP_CMD {
                break;
            }
            self.tail = (self.tail + hdr_get_len(len_op)) % size;
        }
        let e = CMDR_OFF + self.tail as usize;
        let mut uflags = 0u8;
        if rng.chance(40) {
            uflags |= TCMU_UFLAG_READ_LEN;
        }
        if rng.chance(5) {
            uflags |= TCMU_UFLAG_KEEP_BUF;
        }
        if rng.chance(3) {
            uflags |= TCMU_UFLAG_UNKNOWN_OP;
        }
        if rng.chance(3) {
            uflags |= 0x40;
        }
        let status = match rng.below(10) {
            0 => SAM_STAT_CHECK_CONDITION,
            1 => SAM_STAT_BUSY,
            2 => rng.next() as u8,
            _ => SAM_STAT_GOOD,
        };
        let read_len = if rng.chance(30) {
            0
        } else {
            rng.below(5000) as u32
        };
        shm.put_u16(e + HDR_CMD_ID_OFFSET, cmd_id).unwrap();
        shm.put_u8(e + HDR_UFLAGS_OFFSET, uflags).unwrap();
        shm.put_u8(e + RSP_SCSI_STATUS_OFFSET, status).unwrap();
        shm.put_u32(e + RSP_READ_LEN_OFFSET, read_len).unwrap();
        self.replies.insert(
            cmd_id,
            Reply {
                seq,
                uflags,
                status,
                read_len,
            },
        );
        self.tail = (self.tail + hdr_get_len(rd_u32(shm, e))) % size;
        // Sometimes also skip PAD/TMR slots right after.
        while rng.chance(50) && self.tail != self.read_ptr {
            let len_op = rd_u32(shm, CMDR_OFF + self.tail as usize);
            if hdr_get_op(len_op) == TCMU_OP_CMD {
                break;
            }
            self.tail = (self.tail + hdr_get_len(len_op)) % size;
        }
    }

    fn publish_tail(&self, shm: &mut [u8]) {
        shm.put_u32(MAILBOX_CMD_TAIL_OFFSET, self.tail).unwrap();
    }
}

fn simulate(seed: u64, ring_size: u32, steps: usize) -> Stats {
    let mut rng = Rng(seed | 1);
    let data_off = CMDR_OFF + ring_size as usize;
    let mut shm = vec![0u8; data_off + (MAX_BLOCKS * BLK) as usize];
    let mut k = Kernel {
        ring: CmdRing::new(ring_size, vec![0; fifo_capacity(ring_size)]).unwrap(),
        blocks: BlockAlloc::new(MAX_BLOCKS, vec![0; bitmap_words(MAX_BLOCKS)]).unwrap(),
        cmds: HashMap::new(),
        data_off,
        next_seq: 1,
        queued: 0,
        completed: HashSet::new(),
        slot_ids: HashMap::new(),
        stats: Stats::default(),
    };
    let mut h = Handler {
        read_ptr: 0,
        tail: 0,
        pending: vec![],
        replies: HashMap::new(),
        tmrs_seen: 0,
    };
    let mut tmrs = 0u64;
    for _ in 0..steps {
        match rng.below(10) {
            0..=3 => {
                if !k.queue_cmd(&mut shm, &mut rng) {
                    k.stats.full += 1;
                }
            }
            4 => {
                if k.queue_tmr(&mut shm, &mut rng) {
                    tmrs += 1;
                }
            }
            5 => h.read_new(&mut shm, ring_size, data_off),
            6 | 7 => {
                for _ in 0..rng.below(4) {
                    if !h.pending.is_empty() {
                        h.complete_one(&mut shm, ring_size, &mut rng);
                    }
                }
                if rng.chance(70) {
                    h.publish_tail(&mut shm);
                }
            }
            8 => {
                k.reap(&mut shm, &h.replies);
            }
            _ => k.free_kept(),
        }
        assert_eq!(k.ring.used() + k.ring.free() + 1, ring_size);
    }
    // Drain.
    loop {
        h.read_new(&mut shm, ring_size, data_off);
        while !h.pending.is_empty() {
            h.complete_one(&mut shm, ring_size, &mut rng);
        }
        // Skip trailing PAD/TMR slots.
        while h.tail != h.read_ptr {
            let len_op = rd_u32(&shm, CMDR_OFF + h.tail as usize);
            assert_ne!(hdr_get_op(len_op), TCMU_OP_CMD);
            h.tail = (h.tail + hdr_get_len(len_op)) % ring_size;
        }
        h.publish_tail(&mut shm);
        k.reap(&mut shm, &h.replies);
        k.free_kept();
        if k.cmds.is_empty() {
            break;
        }
    }
    assert!(k.ring.is_empty());
    assert_eq!(k.ring.pending_slots(), 0);
    assert_eq!(k.blocks.used(), 0);
    assert_eq!(k.completed.len() as u64, k.queued);
    assert!((1..k.next_seq).all(|s| k.completed.contains(&s)));
    assert_eq!(h.tmrs_seen, tmrs);
    Stats {
        queued: k.queued,
        tmrs,
        ..k.stats
    }
}

#[test]
fn simulation_fixed_seeds() {
    for (seed, size) in [
        (1u64, 1000u32),
        (2, 1024),
        (3, 2048 - 128),
        (4, 4096),
        (5, 504),
    ] {
        let st = simulate(seed, size, 5000);
        eprintln!("seed {seed} ring {size}: {st:?}");
        assert!(st.queued > 300, "{st:?}");
        assert!(
            st.tmrs > 50 && st.pads > 20 && st.out_of_order > 100,
            "{st:?}"
        );
        assert!(st.kept > 5 && st.read_len > 20 && st.full > 10, "{st:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn simulation_random(seed in any::<u64>(), size in (40u32..600).prop_map(|n| n * 8)) {
        simulate(seed, size, 1500);
    }
}

/// A handler that moves the tail into the middle of an entry or behind the
/// head is caught by begin_reap / the reaper.
#[test]
fn hostile_tail() {
    let mut r = CmdRing::new(1024, vec![0; fifo_capacity(1024)]).unwrap();
    r.reserve(120, Opcode::Cmd).unwrap();
    r.reserve(120, Opcode::Cmd).unwrap();
    assert!(matches!(r.begin_reap(128).unwrap().consume(), Ok(Some(_))));
    assert!(matches!(
        r.begin_reap(200).unwrap().consume(),
        Err(RingError::TailInsideEntry { tail: 200, .. })
    ));
    assert_eq!(
        r.begin_reap(248).err(),
        Some(RingError::TailOutsideUsed { tail: 248 })
    );
}
