// SPDX-License-Identifier: GPL-2.0

//! The handler's command execution driven through a fake kernel ring, the
//! way target_core_user feeds it.

use tcmu_handler::backstore::{Backstore, FileStore, NullStore, RamStore};
use tcmu_handler::device::Device;
use tcmu_handler::scsi::LunParams;
use tcmu_ring::abi;
use tcmu_ring::fake::{Completion, FakeKernel};
use tcmu_ring::{Entry, Ring};

const CAPS: u16 = abi::TCMU_MAILBOX_FLAG_CAP_OOOC
    | abi::TCMU_MAILBOX_FLAG_CAP_READ_LEN
    | abi::TCMU_MAILBOX_FLAG_CAP_TMR;

struct Rig {
    k: FakeKernel,
    ring: Ring,
    dev: Device,
}

impl Rig {
    fn new(store: Box<dyn Backstore>, bs: u32, blocks: u64) -> Self {
        let (k, mem) = FakeKernel::new(64 * 1024, 4096, 64, CAPS);
        let lun = LunParams::new(bs, blocks);
        Rig {
            k,
            ring: Ring::new(mem).unwrap(),
            dev: Device::new("test".into(), lun, store),
        }
    }

    fn ram(bs: u32, blocks: u64) -> Self {
        Self::new(
            Box::new(RamStore::new(bs as u64 * blocks).unwrap()),
            bs,
            blocks,
        )
    }

    /// Queues one command, lets the handler process the ring, reaps.
    fn run(&mut self, cdb: &[u8], out: &[u8], in_len: usize) -> Completion {
        self.k
            .queue_cmd(self.ring.region_mut(), cdb, out, in_len)
            .unwrap();
        let mut v = self.process();
        assert_eq!(v.len(), 1);
        v.pop().unwrap()
    }

    fn process(&mut self) -> Vec<Completion> {
        while let Some(e) = self.ring.next_entry().unwrap() {
            if let Entry::Cmd(c) = e {
                self.dev.handle(&mut self.ring, &c).unwrap();
            }
        }
        self.k.reap(self.ring.region_mut()).unwrap()
    }
}

fn rw10(op: u8, lba: u32, blocks: u16) -> Vec<u8> {
    let mut c = vec![op, 0];
    c.extend_from_slice(&lba.to_be_bytes());
    c.push(0);
    c.extend_from_slice(&blocks.to_be_bytes());
    c.push(0);
    c
}

fn rw16(op: u8, lba: u64, blocks: u32) -> Vec<u8> {
    let mut c = vec![op, 0];
    c.extend_from_slice(&lba.to_be_bytes());
    c.extend_from_slice(&blocks.to_be_bytes());
    c.extend_from_slice(&[0, 0]);
    c
}

fn sense_of(c: &Completion) -> (u8, u8, u8) {
    assert_eq!(c.status, 2, "expected CHECK CONDITION");
    assert_eq!(c.sense[0], 0x70);
    (c.sense[2], c.sense[12], c.sense[13])
}

fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[test]
fn write_then_read() {
    let mut r = Rig::ram(512, 2048);
    let data = pattern(3, 8 * 4096);
    let c = r.run(&rw10(0x2a, 100, 64), &data, 0);
    assert_eq!(c.status, 0);
    // Read it back in pieces with different opcodes.
    let c = r.run(&rw10(0x28, 100, 64), &[], data.len());
    assert_eq!(c.status, 0);
    assert_eq!(c.data_in, data);
    let c = r.run(&rw16(0x88, 108, 8), &[], 4096);
    assert_eq!(c.data_in, &data[4096..8192]);
    let c = r.run(&[0xa8, 0, 0, 0, 0, 101, 0, 0, 0, 1, 0, 0], &[], 512);
    assert_eq!(c.data_in, &data[512..1024]);
    let c = r.run(&[0x08, 0, 0, 102, 1, 0], &[], 512);
    assert_eq!(c.data_in, &data[1024..1536]);
    // WRITE(6), WRITE(12), WRITE(16), WRITE AND VERIFY(10).
    r.run(&[0x0a, 0, 0, 0, 1, 0], &[1; 512], 0);
    r.run(&[0xaa, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0], &[2; 512], 0);
    r.run(&rw16(0x8a, 2, 1), &[3; 512], 0);
    r.run(&rw10(0x2e, 3, 1), &[4; 512], 0);
    let c = r.run(&rw10(0x28, 0, 4), &[], 2048);
    for (i, chunk) in c.data_in.chunks(512).enumerate() {
        assert!(chunk.iter().all(|&b| b == i as u8 + 1), "block {i}");
    }
}

#[test]
fn unwritten_blocks_read_as_zero() {
    // The fake kernel leaves stale bytes in Data-In buffers.
    let mut r = Rig::ram(4096, 64);
    let c = r.run(&rw10(0x28, 5, 3), &[], 3 * 4096);
    assert_eq!(c.status, 0);
    assert!(c.data_in.iter().all(|&b| b == 0));
    let mut n = Rig::new(Box::new(NullStore), 512, 1 << 20);
    n.run(&rw10(0x2a, 0, 8), &[9; 4096], 0);
    let c = n.run(&rw10(0x28, 0, 8), &[], 4096);
    assert_eq!(c.data_in, vec![0; 4096]);
}

#[test]
fn range_errors() {
    let mut r = Rig::ram(512, 2048);
    assert_eq!(
        sense_of(&r.run(&rw10(0x28, 2047, 2), &[], 1024)),
        (5, 0x21, 0)
    );
    assert_eq!(
        sense_of(&r.run(&rw10(0x2a, 2048, 1), &[0; 512], 0)),
        (5, 0x21, 0)
    );
    assert_eq!(
        sense_of(&r.run(&rw16(0x88, u64::MAX, 1), &[], 512)),
        (5, 0x21, 0)
    );
    assert_eq!(r.run(&rw10(0x28, 2047, 1), &[], 512).status, 0);
    // Buffer smaller than the transfer length.
    assert_eq!(sense_of(&r.run(&rw10(0x28, 0, 2), &[], 512)), (5, 0x24, 0));
    assert_eq!(
        sense_of(&r.run(&rw10(0x2a, 0, 2), &[0; 512], 0)),
        (5, 0x24, 0)
    );
    // Unsupported opcodes.
    assert_eq!(
        sense_of(&r.run(&[0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0], &[0; 24], 0)),
        (5, 0x20, 0)
    );
    assert_eq!(
        sense_of(&r.run(&[0x4d, 0, 0, 0, 0, 0, 0, 0x10, 0, 0], &[], 4096)),
        (5, 0x20, 0)
    );
}

#[test]
fn larger_buffer_than_transfer() {
    let mut r = Rig::ram(512, 2048);
    r.run(&rw10(0x2a, 0, 1), &[7; 512], 0);
    let c = r.run(&rw10(0x28, 0, 1), &[], 4096);
    assert_eq!(c.read_len, Some(512));
    assert_eq!(c.data_in, vec![7; 512]);
}

#[test]
fn inquiry_and_capacity() {
    let mut r = Rig::ram(512, 131072);
    let c = r.run(&[0x12, 0, 0, 0, 96, 0], &[], 96);
    assert_eq!(c.status, 0);
    assert_eq!(c.read_len, Some(36));
    assert_eq!(c.data_in.len(), 36);
    assert_eq!(&c.data_in[8..16], b"TCMU-RS ");
    let c = r.run(&[0x12, 1, 0xb0, 0, 64, 0], &[], 64);
    assert_eq!(&c.data_in[..4], &[0, 0xb0, 0, 0x3c]);
    let c = r.run(&[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0], &[], 8);
    assert_eq!(c.data_in, [0, 1, 0xff, 0xff, 0, 0, 2, 0]);
    assert_eq!(c.read_len, Some(8));
    let mut rc16 = [0u8; 16];
    rc16[0] = 0x9e;
    rc16[1] = 0x10;
    rc16[13] = 32;
    let c = r.run(&rc16, &[], 32);
    assert_eq!(
        &c.data_in[..12],
        &[0, 0, 0, 0, 0, 1, 0xff, 0xff, 0, 0, 2, 0]
    );
    assert_eq!(
        sense_of(&r.run(&[0x12, 1, 0x99, 0, 64, 0], &[], 64)),
        (5, 0x24, 0)
    );
    let c = r.run(&[0x1a, 0, 0x3f, 0, 192, 0], &[], 192);
    assert_eq!(c.read_len, Some(44));
    assert_eq!(c.data_in[0], 43);
    let c = r.run(&[0xa0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0], &[], 256);
    assert_eq!(c.data_in, [0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    for cdb in [[0u8; 6], [0x1b, 0, 0, 0, 1, 0]] {
        assert_eq!(r.run(&cdb, &[], 0).status, 0);
    }
    assert_eq!(r.run(&[0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0], &[], 0).status, 0);
}

#[test]
fn verify_compares() {
    let mut r = Rig::ram(512, 64);
    let data = pattern(1, 1024);
    r.run(&rw10(0x2a, 4, 2), &data, 0);
    assert_eq!(r.run(&rw10(0x2f, 4, 2), &[], 0).status, 0);
    let mut bytchk = rw10(0x2f, 4, 2);
    bytchk[1] = 0x02;
    assert_eq!(r.run(&bytchk, &data, 0).status, 0);
    let mut bad = data.clone();
    bad[700] ^= 1;
    assert_eq!(sense_of(&r.run(&bytchk, &bad, 0)), (0x0e, 0x1d, 0));
    // BYTCHK 11b: one block against each of the range.
    r.run(&rw10(0x2a, 10, 3), &[6; 1536], 0);
    let mut one = rw10(0x2f, 10, 3);
    one[1] = 0x06;
    assert_eq!(r.run(&one, &[6; 512], 0).status, 0);
    assert_eq!(sense_of(&r.run(&one, &[5; 512], 0)), (0x0e, 0x1d, 0));
    assert_eq!(sense_of(&r.run(&rw10(0x2f, 64, 1), &[], 0)), (5, 0x21, 0));
}

#[test]
fn file_backstore() {
    let p = std::env::temp_dir().join(format!("tcmu-handler-dev-{}", std::process::id()));
    let _ = std::fs::remove_file(&p);
    let mut r = Rig::new(Box::new(FileStore::open(&p).unwrap()), 512, 1024);
    let data = pattern(9, 2048);
    r.run(&rw10(0x2a, 10, 4), &data, 0);
    let mut fua = rw10(0x2a, 20, 1);
    fua[1] = 0x08;
    r.run(&fua, &data[..512], 0);
    assert_eq!(r.run(&rw16(0x91, 0, 0), &[], 0).status, 0);
    let on_disk = std::fs::read(&p).unwrap();
    assert_eq!(&on_disk[5120..7168], &data[..]);
    assert_eq!(&on_disk[10240..10752], &data[..512]);
    // Past the end of the (sparse, short) file: zeros.
    let c = r.run(&rw10(0x28, 1000, 2), &[], 1024);
    assert_eq!(c.data_in, vec![0; 1024]);
    std::fs::remove_file(&p).unwrap();
}

#[test]
fn many_commands_out_of_order_ring_wrap() {
    // Queue batches bigger than what fits before the end of the ring.
    let mut r = Rig::ram(512, 4096);
    let mut model = vec![0u8; 512 * 4096];
    let mut seed = 1u8;
    for round in 0..200u32 {
        let mut expect = Vec::new();
        for j in 0..4u32 {
            let lba = (round * 37 + j * 101) % 4000;
            let blocks = 1 + (round + j) % 8;
            if (round + j) % 3 == 0 {
                let data = pattern(seed, blocks as usize * 512);
                seed = seed.wrapping_add(1);
                model[lba as usize * 512..][..data.len()].copy_from_slice(&data);
                let id =
                    r.k.queue_cmd(
                        r.ring.region_mut(),
                        &rw10(0x2a, lba, blocks as u16),
                        &data,
                        0,
                    )
                    .unwrap();
                expect.push((id, None));
            } else {
                let id =
                    r.k.queue_cmd(
                        r.ring.region_mut(),
                        &rw10(0x28, lba, blocks as u16),
                        &[],
                        blocks as usize * 512,
                    )
                    .unwrap();
                expect.push((
                    id,
                    Some(model[lba as usize * 512..][..blocks as usize * 512].to_vec()),
                ));
            }
        }
        let done = r.process();
        assert_eq!(done.len(), 4);
        for c in done {
            let (_, exp) = expect.iter().find(|(id, _)| *id == c.cmd_id).unwrap();
            assert_eq!(c.status, 0);
            if let Some(exp) = exp {
                assert_eq!(&c.data_in, exp, "round {round}");
            }
        }
    }
    assert_eq!(r.ring.tail(), r.k.head());
    assert_eq!(r.dev.stats.cmds, 800);
}
