// SPDX-License-Identifier: GPL-2.0

//! The fuzzing handler against the fake kernel of `tcmu-ring`: correct
//! service, non-fatal mutations that keep the ring consistent, and fatal
//! ones that the kernel must detect.

use std::io;

use tcmu_fuzzer::engine::{BadIo, Config, Engine, Mapping, Port, Touch};
use tcmu_fuzzer::mutation::{Class, Mutation};
use tcmu_fuzzer::rng::Rng;
use tcmu_handler::backstore::RamStore;
use tcmu_handler::device::Device;
use tcmu_handler::scsi::LunParams;
use tcmu_ring::abi;
use tcmu_ring::fake::{Completion, FakeError, FakeKernel};
use tcmu_ring::Ring;

const CAPS: u16 = abi::TCMU_MAILBOX_FLAG_CAP_OOOC | abi::TCMU_MAILBOX_FLAG_CAP_READ_LEN;
const RING: u32 = 16 * 1024;
const BLK: usize = 4096;
const NBLK: usize = 256;
const BS: u32 = 512;
const BLOCKS: u64 = 2048;

struct FakePort {
    k: FakeKernel,
    ring: Ring,
    done: Vec<Completion>,
    broken: Option<String>,
    /// Why the ring was broken, at each reset.
    breaks: Vec<String>,
    resets: u32,
}

impl FakePort {
    fn new() -> Self {
        let (k, mem) = FakeKernel::new(RING, BLK, NBLK, CAPS);
        FakePort {
            k,
            ring: Ring::new(mem).unwrap(),
            done: Vec::new(),
            broken: None,
            breaks: Vec::new(),
            resets: 0,
        }
    }
}

impl Port for FakePort {
    fn ring(&mut self) -> &mut Ring {
        &mut self.ring
    }
    fn notify(&mut self) -> io::Result<()> {
        if self.broken.is_none() {
            match self.k.reap(self.ring.region_mut()) {
                Ok(v) => self.done.extend(v),
                Err(e) => self.broken = Some(e.to_string()),
            }
        }
        Ok(())
    }
    fn wait(&mut self, _timeout_ms: i32) -> io::Result<bool> {
        Ok(false)
    }
    fn reset_ring(&mut self, _level: u8) -> io::Result<()> {
        // The fake cannot reset: start over with a fresh ring (in-flight
        // commands are dropped, as the kernel fails them).
        let (k, mem) = FakeKernel::new(RING, BLK, NBLK, CAPS);
        self.k = k;
        self.ring = Ring::new(mem).unwrap();
        if let Some(b) = self.broken.take() {
            self.breaks.push(b);
        }
        self.resets += 1;
        Ok(())
    }
    fn touch(&mut self, _off: u64, _write: Option<u8>) -> Touch {
        Touch::Mapped
    }
    fn bad_io(&mut self, _rng: &mut Rng) -> BadIo {
        BadIo::Einval
    }
    fn extra_mapping(&mut self, _rng: &mut Rng) -> Mapping {
        Mapping::Refused
    }
    fn free_kept_buf(&mut self, _id: u16) -> io::Result<()> {
        // The fake kernel keeps no buffers.
        Err(io::Error::from_raw_os_error(libc::EINVAL))
    }
}

fn engine(cfg: Config, seed: u64) -> Engine<FakePort> {
    let dev = Device::new(
        "fake".into(),
        LunParams::new(BS, BLOCKS),
        Box::new(RamStore::new(BS as u64 * BLOCKS).unwrap()),
    );
    Engine::new(FakePort::new(), dev, cfg, seed)
}

fn rw10(op: u8, lba: u32, blocks: u16) -> Vec<u8> {
    let mut c = vec![op, 0];
    c.extend_from_slice(&lba.to_be_bytes());
    c.push(0);
    c.extend_from_slice(&blocks.to_be_bytes());
    c.push(0);
    c
}

/// Queues a random READ or WRITE; false if the fake ring is full.
fn queue_random(e: &mut Engine<FakePort>, rng: &mut Rng) -> bool {
    let blocks = rng.range(1, 16) as u16;
    let lba = rng.below(BLOCKS - blocks as u64) as u32;
    let p = &mut e.port;
    let r = if rng.chance(1, 2) {
        let mut data = vec![0u8; blocks as usize * BS as usize];
        rng.fill(&mut data);
        p.k.queue_cmd(p.ring.region_mut(), &rw10(0x2a, lba, blocks), &data, 0)
    } else {
        p.k.queue_cmd(
            p.ring.region_mut(),
            &rw10(0x28, lba, blocks),
            &[],
            blocks as usize * BS as usize,
        )
    };
    match r {
        Ok(_) => true,
        Err(FakeError::Full) => false,
        Err(e) => panic!("queue: {e}"),
    }
}

#[test]
fn serves_correctly_without_mutations() {
    let mut e = engine(Config::default(), 1);
    let mut rng = Rng::new(5);
    let mut expect = vec![0u8; (BS as u64 * BLOCKS) as usize];
    let mut checked = 0;
    for round in 0..200 {
        // A write, then a read of the same range.
        let blocks = rng.range(1, 24) as u16;
        let lba = rng.below(BLOCKS - blocks as u64) as u32;
        let n = blocks as usize * BS as usize;
        let mut data = vec![0u8; n];
        rng.fill(&mut data);
        let at = lba as usize * BS as usize;
        expect[at..at + n].copy_from_slice(&data);
        let p = &mut e.port;
        p.k.queue_cmd(p.ring.region_mut(), &rw10(0x2a, lba, blocks), &data, 0)
            .unwrap();
        p.k.queue_cmd(p.ring.region_mut(), &rw10(0x28, lba, blocks), &[], n)
            .unwrap();
        e.serve_step().unwrap();
        assert_eq!(e.pending(), 0, "round {round}");
        let done = std::mem::take(&mut e.port.done);
        assert_eq!(done.len(), 2);
        for c in &done {
            assert_eq!(c.status, 0);
            if !c.data_in.is_empty() {
                assert_eq!(c.data_in, expect[at..at + n]);
                checked += 1;
            }
        }
        assert!(e.port.broken.is_none());
    }
    assert_eq!(checked, 200);
    assert_eq!(e.stats.mutations, 0);
}

#[test]
fn command_mutations_keep_the_ring_consistent() {
    let cfg = Config {
        cmd_chance: (1, 1),
        step_chance: (0, 1),
        fatal: false,
        hold_ms: (0, 3),
        recover_every: 0,
        mutations: u64::MAX,
        ..Config::default()
    };
    let mut e = engine(cfg, 77);
    let mut rng = Rng::new(8);
    for _ in 0..3000 {
        for _ in 0..rng.range(0, 6) {
            if !queue_random(&mut e, &mut rng) {
                break;
            }
        }
        e.step().unwrap();
        assert!(
            e.port.broken.is_none(),
            "after {} mutations: {:?}",
            e.stats.mutations,
            e.port.broken
        );
    }
    for &m in Mutation::ALL.iter().filter(|m| m.class() == Class::Command) {
        assert!(e.stats.by_kind[m.index()] > 0, "{} never applied", m.name());
    }
    assert!(e.stats.completions > 1000);
    // Only lost commands (and those released without a response, which
    // the fake still completes) may be missing.
    assert_eq!(e.stats.recoveries.iter().sum::<u64>(), e.port.resets as u64);
}

#[test]
fn fatal_mutations_break_the_ring_then_recover() {
    let fatal: Vec<Mutation> = Mutation::ALL
        .iter()
        .copied()
        .filter(|m| m.class() == Class::Fatal && *m != Mutation::LenOpChange)
        .collect();
    for (i, &m) in fatal.iter().enumerate() {
        let cfg = Config {
            cmd_chance: (0, 1),
            step_chance: (0, 1),
            fatal_gap_ms: (0, 0),
            fatal_delay_ms: (0, 0),
            recover_every: 0,
            only: vec![m],
            mutations: 1,
            ..Config::default()
        };
        let mut e = engine(cfg, 100 + i as u64);
        let mut rng = Rng::new(i as u64);
        // Some correct traffic first (released slots, completed ids).
        for _ in 0..5 {
            queue_random(&mut e, &mut rng);
            e.serve_step().unwrap();
        }
        e.set_fuzzing(true);
        let mut steps = 0;
        while e.stats.by_kind[m.index()] == 0 {
            for _ in 0..3 {
                queue_random(&mut e, &mut rng);
            }
            e.step().unwrap();
            steps += 1;
            assert!(steps < 50, "{} never applied", m.name());
        }
        assert_eq!(e.stats.mutations, 1);
        assert!(
            e.port.broken.is_some() || !e.port.breaks.is_empty(),
            "{}: the fake kernel did not notice",
            m.name()
        );
        // Recovered (delay 0) in the same step, and the ring works again.
        e.step().unwrap();
        assert_eq!(e.stats.recoveries[0], 1, "{}", m.name());
        assert_eq!(e.port.resets, 1);
        assert!(e.port.broken.is_none());
        e.port.done.clear();
        for _ in 0..3 {
            queue_random(&mut e, &mut rng);
            e.serve_step().unwrap();
        }
        assert_eq!(e.port.done.len(), 3, "{}", m.name());
        assert!(e.port.done.iter().all(|c| c.status == 0));
    }
}

#[test]
fn runs_are_deterministic_per_seed() {
    let run = |seed| {
        let cfg = Config {
            hold_ms: (0, 0),
            fatal_gap_ms: (0, 0),
            fatal_delay_ms: (0, 0),
            mutations: u64::MAX,
            ..Config::default()
        };
        let mut e = engine(cfg, seed);
        let mut rng = Rng::new(3);
        for _ in 0..500 {
            queue_random(&mut e, &mut rng);
            e.step().unwrap();
            if e.port.broken.is_some() {
                // Recovery in the next step (delay 0).
                e.step().unwrap();
            }
        }
        (e.stats.by_kind, e.stats.completions)
    };
    let a = run(42);
    assert_eq!(a, run(42));
    assert_ne!(a, run(43));
}
