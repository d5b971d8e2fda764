// SPDX-License-Identifier: GPL-2.0

//! The fuzzer's side of the ring: a handler that serves commands correctly
//! most of the time and misbehaves on purpose the rest of it.
//!
//! It does not use [`tcmu_ring::Ring`]'s completion logic (which refuses
//! to break the protocol) but keeps its own copy of the ring positions and
//! writes responses, `cmd_tail` and everything else directly into the
//! shared memory. Entries are decoded with [`tcmu_ring::entry::decode`]
//! and SCSI commands executed by the real handler's
//! [`tcmu_handler::device::Device`], so I/O progresses between mutations.
//!
//! Everything the kernel talks to goes through a [`Port`]: the UIO device
//! in the guest ([`crate::port::UioPort`]), a fake kernel in the tests.

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{fence, Ordering};
use std::time::{Duration, Instant};

use tcmu_handler::device::Device;
use tcmu_ring::abi;
use tcmu_ring::entry::{decode, Command, Entry, Geometry, IoVec};
use tcmu_ring::{pos, Region, Ring};

use crate::mutation::{self, Avail, BadTail, Class, Mutation, COUNT};
use crate::rng::Rng;

/// Result of touching a data-area page from a child process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Touch {
    /// The access worked (the page holds data).
    Mapped,
    /// SIGBUS (the page holds no data).
    Sigbus,
    /// Anything else (another signal, a stuck child, fork failure).
    Other(String),
}

/// Result of a wrong-size read or write of the UIO device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BadIo {
    /// Refused with `EINVAL`, as expected.
    Einval,
    /// Anything else.
    Unexpected(String),
}

/// Result of an extra mapping of the device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mapping {
    /// The kernel refused it, as expected.
    Refused,
    /// It worked and behaved (mapped the same memory), as expected.
    Fine,
    /// A mapping the kernel should have refused worked, or a mapping did
    /// not show the same memory.
    Unexpected(String),
}

/// The kernel, as the fuzzer sees it.
pub trait Port {
    /// The mapped ring (only its region and data buffer helpers are used).
    fn ring(&mut self) -> &mut Ring;
    /// Tells the kernel to reap (4-byte write to the device).
    fn notify(&mut self) -> io::Result<()>;
    /// Waits up to `timeout_ms` for a kernel notification.
    fn wait(&mut self, timeout_ms: i32) -> io::Result<bool>;
    /// `echo <level> > action/reset_ring`.
    fn reset_ring(&mut self, level: u8) -> io::Result<()>;
    /// Reads (or writes `Some(byte)` to) region offset `off` from a child.
    fn touch(&mut self, off: u64, write: Option<u8>) -> Touch;
    /// A read or write of `/dev/uioN` with a size other than 4.
    fn bad_io(&mut self, rng: &mut Rng) -> BadIo;
    /// Maps the device a second time, in some odd way.
    fn extra_mapping(&mut self, rng: &mut Rng) -> Mapping;
    /// `echo <id> > action/free_kept_buf`.
    fn free_kept_buf(&mut self, id: u16) -> io::Result<()>;
}

/// Tunables.
#[derive(Clone, Debug)]
pub struct Config {
    /// Stop fuzzing after this many mutations.
    pub mutations: u64,
    /// Stop fuzzing after this long.
    pub time: Option<Duration>,
    /// Recover after this many mutations without a recovery.
    pub recover_every: u64,
    /// Chance (num, den) that a READ/WRITE command gets a mutation.
    pub cmd_chance: (u64, u64),
    /// Chance (num, den) of ring-level mutations per wakeup.
    pub step_chance: (u64, u64),
    /// Up to this many ring-level mutations in a row when they happen.
    pub step_burst: u64,
    /// Fatal mutations (one at a time, then a recovery).
    pub fatal: bool,
    /// Minimum time between a recovery and the next fatal mutation, drawn
    /// in this range (ms), so that I/O progresses in between.
    pub fatal_gap_ms: (u64, u64),
    /// Delay between a fatal mutation and the recovery (ms).
    pub fatal_delay_ms: (u64, u64),
    /// How long a held command waits (ms); around `cmd_time_out`.
    pub hold_ms: (u64, u64),
    /// No new entry for this long: recover.
    pub stall: Duration,
    /// Longest wait for the kernel between rounds while fuzzing (ms): ring-level
    /// mutations happen once per round.
    pub tick_ms: i32,
    /// Only these mutations (all if empty).
    pub only: Vec<Mutation>,
    /// Verbosity.
    pub verbose: u8,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            mutations: 20_000,
            time: None,
            recover_every: 2_000,
            cmd_chance: (2, 5),
            step_chance: (1, 2),
            step_burst: 6,
            fatal: true,
            fatal_gap_ms: (300, 1200),
            fatal_delay_ms: (20, 300),
            hold_ms: (1_500, 4_500),
            stall: Duration::from_secs(2),
            tick_ms: 5,
            only: Vec::new(),
            verbose: 0,
        }
    }
}

/// Why a recovery was done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    /// After a fatal mutation.
    Fatal,
    /// Every [`Config::recover_every`] mutations.
    Periodic,
    /// No new entry for [`Config::stall`].
    Stall,
    /// Our view of the ring no longer made sense (decode error).
    Desync,
    /// At the end of the run.
    Final,
}

/// Counters.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Mutations applied, in total.
    pub mutations: u64,
    /// By kind ([`Mutation::index`]).
    pub by_kind: [u64; COUNT],
    /// Recoveries by cause: fatal, periodic, stall, desync, final.
    pub recoveries: [u64; 5],
    /// Commands decoded.
    pub cmds: u64,
    /// TMR notifications decoded.
    pub tmrs: u64,
    /// Completions written.
    pub completions: u64,
    /// Notifications sent (including spurious ones).
    pub notifies: u64,
    /// Data pages touched: SIGBUS.
    pub sigbus: u64,
    /// Data pages touched: mapped.
    pub touched: u64,
    /// Wrong-size reads/writes refused with EINVAL.
    pub einval: u64,
    /// Extra mappings refused / fine.
    pub maps_refused: u64,
    /// Extra mappings that worked as they should.
    pub maps_fine: u64,
    /// Commands lost on purpose (overwrite-slot): the kernel must time them
    /// out.
    pub lost: u64,
    /// Kept buffers freed with `free_kept_buf`.
    pub kept_freed: u64,
    /// `free_kept_buf` of ids not kept, refused as expected.
    pub kept_refused: u64,
    /// Time spent (µs) waiting, decoding, in ring-level mutations,
    /// completing, recovering.
    pub time_us: [u64; 5],
    /// Time spent (µs) in ring-level mutations, by kind.
    pub kind_us: [u64; COUNT],
    /// Longest time without a new entry outside recoveries (ms).
    pub max_quiet_ms: u64,
    /// Things that look like kernel bugs.
    pub anomalies: Vec<String>,
    /// Informational oddities (possibly caused by our own mutations).
    pub notes: Vec<String>,
}

impl Stats {
    /// Total recoveries.
    pub fn total_recoveries(&self) -> u64 {
        self.recoveries.iter().sum()
    }
}

#[derive(Clone, Copy, Debug)]
struct Slot {
    pos: u32,
    len: u32,
    /// The id the kernel wrote into a command slot; `None` for PAD, TMR
    /// and unknown entries (skipped by the tail).
    id: Option<u16>,
}

#[derive(Clone, Debug)]
struct Pending {
    cmd: Command,
    hold_until: Option<Instant>,
}

/// A response to write into a slot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resp {
    /// `hdr.uflags`.
    pub uflags: u8,
    /// `rsp.scsi_status`.
    pub status: u8,
    /// Sense bytes (up to 96).
    pub sense: Vec<u8>,
    /// `rsp.read_len`.
    pub read_len: u32,
}

const MAX_NOTES: usize = 50;
const MAX_ANOMALIES: usize = 50;

/// Whether a CDB is a READ or WRITE (6, 10, 12, 16): only these get
/// per-command mutations, so that the disk's identity (INQUIRY, READ
/// CAPACITY, ...) stays sane and the LUN usable after recovery.
pub fn is_rw(cdb: &[u8]) -> bool {
    matches!(
        cdb.first(),
        Some(0x08 | 0x0a | 0x28 | 0x2a | 0xa8 | 0xaa | 0x88 | 0x8a)
    )
}

/// The fuzzing handler.
pub struct Engine<P: Port> {
    /// The kernel.
    pub port: P,
    /// SCSI execution (backstore, LUN parameters).
    pub dev: Device,
    /// Configuration.
    pub cfg: Config,
    /// The PRNG (every decision but the sense edge cases).
    pub rng: Rng,
    /// The sense edge cases of [`Mutation::RandomSense`]: a stream of their
    /// own, so that adding them left the other draws of a seed unchanged.
    sense_rng: Rng,
    /// Counters.
    pub stats: Stats,
    geo: Geometry,
    /// Mailbox values at attach time (version, flags, cmdr_off, cmdr_size).
    mailbox: [(u64, usize, u32); 4],
    mailbox_dirty: bool,
    /// `(garbage, original)` written into `cmd_head`, to take back.
    head_garbage: Option<(u32, u32)>,
    tail: u32,
    next: u32,
    last_head: u32,
    slots: VecDeque<Slot>,
    pending: Vec<Pending>,
    /// Ids completed recently (for stale ids).
    done_ids: VecDeque<u16>,
    /// Positions released since the last recovery (for rewinds).
    released: VecDeque<u32>,
    /// Ids completed with `KEEP_BUF` since the last recovery.
    kept: Vec<u16>,
    tail_dirty: bool,
    start: Instant,
    last_entry: Instant,
    last_recovery: Instant,
    fatal_allowed_at: Instant,
    /// The next fatal mutation, drawn at each recovery and applied at the
    /// first opportunity after `fatal_allowed_at`.
    next_fatal: Option<Mutation>,
    /// A fatal mutation was done: recover at this time.
    recover_at: Option<Instant>,
    since_recovery: u64,
    /// Consecutive stall recoveries without a new entry.
    dead_recoveries: u32,
    /// Fuzzing (false: serve correctly).
    fuzzing: bool,
}

fn rd32(m: &Region, off: u64) -> u32 {
    m.read_u32(off).unwrap_or(0)
}

impl<P: Port> Engine<P> {
    /// Attaches to the ring behind `port`, from the mailbox's `cmd_tail`.
    pub fn new(mut port: P, dev: Device, cfg: Config, seed: u64) -> Self {
        let geo = *port.ring().geometry();
        let m = port.ring().region();
        let mailbox = [
            (
                abi::MAILBOX_VERSION_OFFSET as u64,
                2,
                m.read_u16(abi::MAILBOX_VERSION_OFFSET as u64).unwrap_or(0) as u32,
            ),
            (
                abi::MAILBOX_FLAGS_OFFSET as u64,
                2,
                m.read_u16(abi::MAILBOX_FLAGS_OFFSET as u64).unwrap_or(0) as u32,
            ),
            (
                abi::MAILBOX_CMDR_OFF_OFFSET as u64,
                4,
                rd32(m, abi::MAILBOX_CMDR_OFF_OFFSET as u64),
            ),
            (
                abi::MAILBOX_CMDR_SIZE_OFFSET as u64,
                4,
                rd32(m, abi::MAILBOX_CMDR_SIZE_OFFSET as u64),
            ),
        ];
        let tail = rd32(m, abi::MAILBOX_CMD_TAIL_OFFSET as u64);
        let now = Instant::now();
        let mut e = Engine {
            port,
            dev,
            cfg,
            rng: Rng::new(seed),
            sense_rng: Rng::new(seed ^ 0x5e45_e5e4_5e00_0000),
            stats: Stats::default(),
            geo,
            mailbox,
            mailbox_dirty: false,
            head_garbage: None,
            tail,
            next: tail,
            last_head: tail,
            slots: VecDeque::new(),
            pending: Vec::new(),
            done_ids: VecDeque::new(),
            released: VecDeque::new(),
            kept: Vec::new(),
            tail_dirty: false,
            start: now,
            last_entry: now,
            last_recovery: now,
            fatal_allowed_at: now,
            next_fatal: None,
            recover_at: None,
            since_recovery: 0,
            dead_recoveries: 0,
            fuzzing: true,
        };
        if !pos::valid_pos(tail, geo.cmdr_size) {
            e.note(format!("cmd_tail {tail:#x} invalid at attach: recovering"));
            e.recover(Cause::Desync);
        }
        e.draw_fatal();
        e
    }

    fn log(&self, level: u8, msg: &str) {
        if self.cfg.verbose >= level {
            eprintln!(
                "tcmu-rs-fuzzer: [{:.3}] {msg}",
                self.start.elapsed().as_secs_f64()
            );
        }
    }

    fn note(&mut self, msg: String) {
        self.log(1, &format!("note: {msg}"));
        if self.stats.notes.len() < MAX_NOTES {
            self.stats.notes.push(msg);
        }
    }

    fn anomaly(&mut self, msg: String) {
        eprintln!("tcmu-rs-fuzzer: ANOMALY: {msg}");
        if self.stats.anomalies.len() < MAX_ANOMALIES {
            self.stats.anomalies.push(msg);
        }
    }

    fn mem(&mut self) -> &mut Region {
        self.port.ring().region_mut()
    }

    fn count(&mut self, m: Mutation) {
        self.stats.mutations += 1;
        self.stats.by_kind[m.index()] += 1;
        self.since_recovery += 1;
        if self.cfg.verbose >= 2 {
            self.log(
                2,
                &format!("mutation {} ({})", self.stats.mutations, m.name()),
            );
        }
    }

    /// Whether the mutation budget or the time is used up.
    pub fn done(&self) -> bool {
        self.stats.mutations >= self.cfg.mutations
            || self.cfg.time.is_some_and(|t| self.start.elapsed() >= t)
    }

    fn allowed(&self, m: Mutation) -> bool {
        self.cfg.only.is_empty() || self.cfg.only.contains(&m)
    }

    fn choose(&mut self, a: &Avail, classes: &[(Class, u32)]) -> Option<Mutation> {
        if self.cfg.only.is_empty() {
            return mutation::choose(&mut self.rng, a, classes);
        }
        // Same draw, restricted to the allowed kinds.
        let weights: Vec<u32> = Mutation::ALL
            .iter()
            .map(|&m| {
                let cw = classes
                    .iter()
                    .find(|(c, _)| *c == m.class())
                    .map_or(0, |(_, w)| *w);
                if cw > 0 && self.allowed(m) && m.possible(a) {
                    m.weight() * cw
                } else {
                    0
                }
            })
            .collect();
        self.rng.weighted(&weights).map(|i| Mutation::ALL[i])
    }

    // ----- ring bookkeeping -----

    fn publish_tail(&mut self) {
        fence(Ordering::Release);
        let t = self.tail;
        let _ = self.mem().write_u32(abi::MAILBOX_CMD_TAIL_OFFSET as u64, t);
        self.tail_dirty = true;
    }

    fn notify(&mut self) {
        self.stats.notifies += 1;
        if let Err(e) = self.port.notify() {
            self.note(format!("notify: {e}"));
        }
    }

    fn flush(&mut self) {
        if std::mem::take(&mut self.tail_dirty) {
            self.notify();
        }
    }

    /// Releases the front slot (the tail moves over it).
    fn pop_front(&mut self) -> Option<Slot> {
        let s = self.slots.pop_front()?;
        self.released.push_back(s.pos);
        if self.released.len() > 64 {
            self.released.pop_front();
        }
        self.tail = pos::advance(self.tail, s.len, self.geo.cmdr_size);
        Some(s)
    }

    /// Moves the tail over leading PAD/TMR/unknown slots.
    fn retire(&mut self) {
        let mut moved = false;
        while self.slots.front().is_some_and(|s| s.id.is_none()) {
            self.pop_front();
            moved = true;
        }
        if moved {
            self.publish_tail();
        }
    }

    fn slot_addr(&self, s: &Slot) -> u64 {
        self.geo.ring_addr(s.pos)
    }

    fn write_rsp(&mut self, at: u64, id: u16, r: &Resp) {
        let m = self.mem();
        let _ = m.write_u16(at + abi::HDR_CMD_ID_OFFSET as u64, id);
        let _ = m.write_u8(at + abi::HDR_UFLAGS_OFFSET as u64, r.uflags);
        let _ = m.write_u8(at + abi::RSP_SCSI_STATUS_OFFSET as u64, r.status);
        let _ = m.write_u32(at + abi::RSP_READ_LEN_OFFSET as u64, r.read_len);
        let n = r.sense.len().min(abi::TCMU_SENSE_BUFFERSIZE);
        let sb = at + abi::RSP_SENSE_BUFFER_OFFSET as u64;
        let _ = m.write_bytes(sb, &r.sense[..n]);
        let _ = m.fill(sb + n as u64, (abi::TCMU_SENSE_BUFFERSIZE - n) as u64, 0);
    }

    /// Writes a completion of `id` into the oldest command slot and
    /// releases it (and the PAD/TMR slots after it). Returns the slot.
    fn complete_front(&mut self, id: u16, r: &Resp) -> Option<Slot> {
        self.retire();
        let s = *self.slots.front()?;
        let at = self.slot_addr(&s);
        self.write_rsp(at, id, r);
        self.pop_front();
        self.stats.completions += 1;
        self.done_ids.push_back(id);
        if self.done_ids.len() > 256 {
            self.done_ids.pop_front();
        }
        self.retire();
        self.publish_tail();
        Some(s)
    }

    fn take_pending(&mut self, id: u16) -> Option<Pending> {
        let i = self.pending.iter().position(|p| p.cmd.cmd_id == id)?;
        Some(self.pending.swap_remove(i))
    }

    fn is_pending(&self, id: u16) -> bool {
        self.pending.iter().any(|p| p.cmd.cmd_id == id)
    }

    /// Decodes the entries between our read position and `cmd_head`.
    fn scan(&mut self) {
        if let Some((garbage, orig)) = self.head_garbage.take() {
            let _ =
                self.mem()
                    .compare_exchange_u32(abi::MAILBOX_CMD_HEAD_OFFSET as u64, garbage, orig);
        }
        let size = self.geo.cmdr_size;
        let head = rd32(
            self.port.ring().region(),
            abi::MAILBOX_CMD_HEAD_OFFSET as u64,
        );
        fence(Ordering::Acquire);
        if !pos::valid_pos(head, size) {
            self.desync(format!("cmd_head {head:#x} invalid"));
            return;
        }
        self.last_head = head;
        while self.next != head {
            let avail = pos::distance(self.next, head, size);
            let at = self.next;
            let dec = match decode(self.port.ring().region(), &self.geo, at, avail) {
                Ok(d) => d,
                Err(e) => {
                    self.desync(format!("entry at {at:#x}: {e}"));
                    return;
                }
            };
            let id = match dec.entry {
                Some(Entry::Cmd(c)) => {
                    let id = c.cmd_id;
                    if self.is_pending(id) {
                        self.desync(format!("kernel reused in-flight command id {id}"));
                        return;
                    }
                    self.stats.cmds += 1;
                    self.pending.push(Pending {
                        cmd: c,
                        hold_until: None,
                    });
                    Some(id)
                }
                Some(Entry::Unknown { pos, .. }) => {
                    let a = self.geo.ring_addr(pos) + abi::HDR_UFLAGS_OFFSET as u64;
                    let _ = self.mem().write_u8(a, abi::TCMU_UFLAG_UNKNOWN_OP);
                    self.note(format!(
                        "kernel wrote an entry with an unknown opcode at {pos:#x}"
                    ));
                    None
                }
                Some(Entry::Tmr(t)) => {
                    self.stats.tmrs += 1;
                    self.log(1, &format!("TMR {:?} for {:?}", t.tmr_type, t.cmd_ids));
                    None
                }
                None => None,
            };
            self.slots.push_back(Slot {
                pos: at,
                len: dec.len,
                id,
            });
            self.next = pos::advance(at, dec.len, size);
            let now = Instant::now();
            if self.fuzzing {
                let quiet = now.duration_since(self.last_entry.max(self.last_recovery));
                self.stats.max_quiet_ms = self.stats.max_quiet_ms.max(quiet.as_millis() as u64);
            }
            self.last_entry = now;
            self.dead_recoveries = 0;
        }
        self.retire();
    }

    /// Our view of the ring is wrong: expected after our own fatal
    /// mutations, a kernel problem otherwise.
    fn desync(&mut self, why: String) {
        // Fatal mutations stop all reading until their recovery, and every
        // other write of ours stays inside slots we own: a bad view here is
        // the kernel's doing.
        self.anomaly(format!("ring view broken without a fatal mutation: {why}"));
        self.recover(Cause::Desync);
    }

    // ----- command execution -----

    /// Executes a command and returns the correct response.
    fn execute(&mut self, cmd: &Command) -> Resp {
        let res = self.dev.execute(self.port.ring(), cmd);
        self.dev.stats.cmds += 1;
        match res {
            Ok(read_len) => {
                let mut r = Resp::default();
                if let Some(n) = read_len {
                    if self.geo.cap_read_len() {
                        r.uflags = abi::TCMU_UFLAG_READ_LEN;
                        r.read_len = n;
                    }
                }
                r
            }
            Err(sense) => Resp {
                uflags: 0,
                status: tcmu_ring::SAM_STAT_CHECK_CONDITION,
                sense: sense.fixed().to_vec(),
                read_len: 0,
            },
        }
    }

    fn garbage_iovs(&mut self, iovs: &[IoVec]) {
        for iov in iovs {
            let n = iov.len().min(1 << 20) as usize;
            let mut buf = vec![0u8; n];
            self.rng.fill(&mut buf);
            if let Ok(d) = self.port.ring().data_mut(iov) {
                d[..n].copy_from_slice(&buf);
            }
        }
    }

    /// What is possible now; `current` is the command being handled (taken
    /// out of the pending list already).
    fn avail(&self, ready: usize, current: Option<u16>) -> Avail {
        let front_pending = self
            .slots
            .iter()
            .find(|s| s.id.is_some())
            .and_then(|s| s.id)
            .is_some_and(|id| Some(id) == current || self.is_pending(id));
        Avail {
            ready,
            released: !self.released.is_empty(),
            stale_id: self.done_ids.iter().any(|&id| !self.is_pending(id)),
            fatal: self.fuzzing
                && self.recover_at.is_none()
                && Instant::now() >= self.fatal_allowed_at,
            front_pending,
        }
    }

    fn fatal_done(&mut self) {
        let (lo, hi) = self.cfg.fatal_delay_ms;
        let d = self.rng.range(lo, hi);
        self.recover_at = Some(Instant::now() + Duration::from_millis(d));
    }

    /// Completes the commands that are ready.
    fn complete_ready(&mut self) {
        let now = Instant::now();
        let mut ready: Vec<u16> = self
            .pending
            .iter()
            .filter(|p| p.hold_until.is_none_or(|t| now >= t))
            .map(|p| p.cmd.cmd_id)
            .collect();
        if ready.is_empty() {
            return;
        }
        if self.fuzzing && self.rng.chance(1, 2) {
            // Out-of-order completion (the kernel offers it).
            self.rng.shuffle(&mut ready);
        }
        let mut i = 0;
        while i < ready.len() {
            if self.recover_at.is_some() {
                // The ring is expected broken: stop talking to it until
                // the recovery.
                break;
            }
            let id = ready[i];
            i += 1;
            let Some(p) = self.take_pending(id) else {
                continue;
            };
            let was_held = p.hold_until.is_some();
            let cmd = p.cmd;
            let m = if self.fuzzing && !was_held && !self.done() && is_rw(&cmd.cdb) {
                let left = ready.len() - i;
                let a = self.avail(1 + left, Some(cmd.cmd_id));
                match self.fatal_due() {
                    Some(f) if f.needs_command() && f.possible(&a) && self.rng.chance(1, 2) => {
                        self.next_fatal = None;
                        Some(f)
                    }
                    _ if self
                        .rng
                        .chance(self.cfg.cmd_chance.0, self.cfg.cmd_chance.1) =>
                    {
                        self.choose(&a, &[(Class::Command, 1)])
                    }
                    _ => None,
                }
            } else {
                None
            };
            match m {
                None => {
                    let r = self.execute(&cmd);
                    self.complete_front(cmd.cmd_id, &r);
                }
                Some(m) => {
                    let other = ready.get(i).copied();
                    if self.apply_cmd(m, cmd, other) {
                        // The other command was used too.
                        i += 1;
                    }
                }
            }
        }
        self.flush();
    }

    /// Applies per-command (or fatal, command-based) mutation `m` to `cmd`.
    /// `other` is another ready command, if any. Returns whether `other`
    /// was consumed.
    fn apply_cmd(&mut self, m: Mutation, cmd: Command, other: Option<u16>) -> bool {
        use Mutation::*;
        self.count(m);
        let id = cmd.cmd_id;
        match m {
            RandomStatus => {
                let mut r = self.execute(&cmd);
                r.status = mutation::random_status(&mut self.rng);
                self.complete_front(id, &r);
            }
            RandomSense => {
                let mut r = if self.rng.chance(1, 2) {
                    self.execute(&cmd)
                } else {
                    Resp::default()
                };
                r.status = if self.rng.chance(3, 4) {
                    tcmu_ring::SAM_STAT_CHECK_CONDITION
                } else {
                    mutation::random_status(&mut self.rng)
                };
                r.sense = mutation::random_sense(&mut self.rng);
                if let Some((_, sense)) = mutation::maybe_edge_sense(&mut self.sense_rng) {
                    // The kernel only passes sense on with CHECK CONDITION.
                    r.status = tcmu_ring::SAM_STAT_CHECK_CONDITION;
                    r.sense = sense;
                }
                self.complete_front(id, &r);
            }
            UnknownOp => {
                let r = Resp {
                    uflags: abi::TCMU_UFLAG_UNKNOWN_OP
                        | (self.rng.byte() & abi::TCMU_UFLAG_READ_LEN),
                    status: mutation::random_status(&mut self.rng),
                    sense: Vec::new(),
                    read_len: self.rng.next_u32(),
                };
                self.complete_front(id, &r);
            }
            HugeReadLen => {
                let mut r = self.execute(&cmd);
                r.uflags |= abi::TCMU_UFLAG_READ_LEN;
                let len = cmd.data_len() as u32;
                r.read_len = match self.rng.below(4) {
                    0 => u32::MAX,
                    1 => len.saturating_add(self.rng.range(1, 1 << 20) as u32),
                    2 => self.rng.next_u32(),
                    _ => self.rng.below(len as u64 + 1) as u32,
                };
                self.complete_front(id, &r);
            }
            KeepBuf => {
                let mut r = self.execute(&cmd);
                r.uflags |= abi::TCMU_UFLAG_KEEP_BUF;
                self.complete_front(id, &r);
                self.kept.push(id);
            }
            RandomUflags => {
                let mut r = self.execute(&cmd);
                r.uflags = self.rng.byte();
                if self.rng.chance(1, 2) {
                    r.read_len = self.rng.next_u32();
                }
                self.complete_front(id, &r);
                if r.uflags & abi::TCMU_UFLAG_KEEP_BUF != 0 {
                    self.kept.push(id);
                }
            }
            GarbageData => {
                let r = self.execute(&cmd);
                let iovs = cmd.iovs.clone();
                self.garbage_iovs(&iovs);
                self.complete_front(id, &r);
            }
            SkipExecute => {
                self.complete_front(id, &Resp::default());
            }
            EntryGarbage => {
                // Random bytes into the request part of a slot we still own.
                let k = self.rng.below(self.slots.len() as u64) as usize;
                if let Some(s) = self.slots.get(k).copied() {
                    let at = self.slot_addr(&s);
                    let n = self.rng.range(1, 16);
                    for _ in 0..n {
                        let off = self.rng.range(abi::ENTRY_HDR_SIZE as u64, s.len as u64 - 1);
                        let b = self.rng.byte();
                        let _ = self.mem().write_u8(at + off, b);
                    }
                }
                let r = self.execute(&cmd);
                self.complete_front(id, &r);
            }
            HoldCommand => {
                let (lo, hi) = self.cfg.hold_ms;
                let d = Duration::from_millis(self.rng.range(lo, hi));
                self.pending.push(Pending {
                    cmd,
                    hold_until: Some(Instant::now() + d),
                });
            }
            OverwriteSlot => {
                // `cmd`'s response goes into the front slot, then `other`'s
                // over it: the kernel only sees `other`, `cmd` is lost.
                let r = self.execute(&cmd);
                self.retire();
                if let Some(s) = self.slots.front().copied() {
                    let at = self.slot_addr(&s);
                    self.write_rsp(at, id, &r);
                }
                self.stats.lost += 1;
                if let Some(p) = other.and_then(|o| self.take_pending(o)) {
                    let r2 = self.execute(&p.cmd);
                    self.complete_front(p.cmd.cmd_id, &r2);
                    return true;
                }
            }
            PrematureRelease => {
                // The oldest slot's own command is released without a
                // response; `cmd` is served normally afterwards.
                self.retire();
                if let Some(s) = self.slots.front().copied() {
                    if let Some(front_id) = s.id {
                        if front_id == id || self.take_pending(front_id).is_some() {
                            self.pop_front();
                            self.retire();
                            self.publish_tail();
                            if front_id == id {
                                return false;
                            }
                        }
                    }
                }
                let r = self.execute(&cmd);
                self.complete_front(id, &r);
            }
            TailInsideEntry => {
                let r = self.execute(&cmd);
                self.complete_front(id, &r);
                let cands: Vec<Slot> = self.slots.iter().copied().filter(|s| s.len >= 16).collect();
                let kind = if cands.is_empty() {
                    BadTail::Misaligned
                } else {
                    let s = *self.rng.pick(&cands);
                    BadTail::InsideEntry {
                        pos: s.pos,
                        len: s.len,
                    }
                };
                self.write_bad_tail(kind);
            }
            LenOpChange => {
                let r = self.execute(&cmd);
                self.retire();
                if let Some(s) = self.slots.front().copied() {
                    let at = self.slot_addr(&s);
                    let orig = rd32(self.port.ring().region(), at);
                    let bad = mutation::bad_len_op(&mut self.rng, orig);
                    self.complete_front(id, &r);
                    let _ = self.mem().write_u32(at, bad);
                    self.notify();
                }
                self.fatal_done();
            }
            BadCmdId => {
                let r = self.execute(&cmd);
                let pend: Vec<u16> = self.pending.iter().map(|p| p.cmd.cmd_id).collect();
                let bad = mutation::bad_cmd_id(&mut self.rng, &|x| x == id || pend.contains(&x));
                self.complete_front(bad, &r);
                self.notify();
                self.fatal_done();
            }
            StaleCmdId => {
                let r = self.execute(&cmd);
                let cands: Vec<u16> = self
                    .done_ids
                    .iter()
                    .copied()
                    .filter(|&x| x != id && !self.is_pending(x))
                    .collect();
                let stale = if cands.is_empty() {
                    0
                } else {
                    *self.rng.pick(&cands)
                };
                self.complete_front(stale, &r);
                self.notify();
                self.fatal_done();
            }
            DuplicateCmdId => {
                let r = self.execute(&cmd);
                self.complete_front(id, &r);
                self.complete_front(id, &r);
                self.notify();
                self.fatal_done();
            }
            DoubleComplete => {
                let r = self.execute(&cmd);
                let s = self.complete_front(id, &r);
                self.notify();
                if self.slots.iter().any(|s| s.id.is_some()) {
                    self.complete_front(id, &r);
                } else if let Some(s) = s {
                    // No other slot: complete the same slot again, moving
                    // the tail back to it and over it once more.
                    let at = self.slot_addr(&s);
                    self.write_rsp(at, id, &r);
                    self.tail = s.pos;
                    self.publish_tail();
                    self.notify();
                    self.tail = pos::advance(s.pos, s.len, self.geo.cmdr_size);
                    self.publish_tail();
                }
                self.notify();
                self.fatal_done();
            }
            _ => {
                // A mutation that needs no command: serve `cmd` first.
                let r = self.execute(&cmd);
                self.complete_front(id, &r);
                self.apply_ring(m);
            }
        }
        false
    }

    fn write_bad_tail(&mut self, kind: BadTail) {
        let v = mutation::bad_tail(&mut self.rng, kind, self.tail, self.geo.cmdr_size);
        let _ = self.mem().write_u32(abi::MAILBOX_CMD_TAIL_OFFSET as u64, v);
        self.log(2, &format!("bad cmd_tail {v:#x} ({kind:?})"));
        self.notify();
        self.fatal_done();
    }

    /// The fatal mutation to do now, if its time has come.
    fn fatal_due(&self) -> Option<Mutation> {
        if self.fuzzing
            && self.cfg.fatal
            && self.recover_at.is_none()
            && Instant::now() >= self.fatal_allowed_at
        {
            self.next_fatal
        } else {
            None
        }
    }

    /// Draws the next fatal mutation (among the allowed ones).
    fn draw_fatal(&mut self) {
        let all = Avail {
            ready: 2,
            released: true,
            stale_id: true,
            fatal: true,
            front_pending: true,
        };
        self.next_fatal = if self.cfg.fatal {
            self.choose(&all, &[(Class::Fatal, 1)])
        } else {
            None
        };
    }

    /// The fatal mutation that needs no command, if it is due.
    fn ring_fatal(&mut self) {
        let Some(f) = self.fatal_due() else {
            return;
        };
        let a = self.avail(0, None);
        if f.needs_command() || !f.possible(&a) || !self.rng.chance(1, 4) {
            return;
        }
        self.next_fatal = None;
        self.count(f);
        self.apply_ring(f);
    }

    /// A ring-level noise mutation.
    fn step_mutation(&mut self) {
        let a = self.avail(0, None);
        let Some(m) = self.choose(&a, &[(Class::Shared, 1)]) else {
            return;
        };
        self.count(m);
        let t = Instant::now();
        self.apply_ring(m);
        self.stats.kind_us[m.index()] += t.elapsed().as_micros() as u64;
    }

    /// Applies a mutation that needs no command.
    fn apply_ring(&mut self, m: Mutation) {
        use Mutation::*;
        match m {
            TailMisaligned => self.write_bad_tail(BadTail::Misaligned),
            TailBeyond => self.write_bad_tail(BadTail::Beyond),
            TailBehind => {
                let head = self.last_head;
                self.write_bad_tail(BadTail::Behind { head })
            }
            RewindTail => {
                let cands: Vec<u32> = self
                    .released
                    .iter()
                    .copied()
                    .filter(|&p| p != self.tail)
                    .collect();
                let v = if cands.is_empty() {
                    mutation::bad_tail(
                        &mut self.rng,
                        BadTail::Misaligned,
                        self.tail,
                        self.geo.cmdr_size,
                    )
                } else {
                    *self.rng.pick(&cands)
                };
                let _ = self.mem().write_u32(abi::MAILBOX_CMD_TAIL_OFFSET as u64, v);
                self.notify();
                self.fatal_done();
            }
            MailboxGarbage => {
                let (off, size, v) = mutation::mailbox_garbage(&mut self.rng);
                let m = self.mem();
                let _ = if size == 2 {
                    m.write_u16(off, v as u16)
                } else {
                    m.write_u32(off, v)
                };
                self.mailbox_dirty = true;
                if self.rng.chance(1, 2) {
                    self.notify();
                }
            }
            HeadGarbage => {
                let off = abi::MAILBOX_CMD_HEAD_OFFSET as u64;
                // Take back earlier garbage first, so that `orig` is real.
                if let Some((garbage, orig)) = self.head_garbage.take() {
                    let _ = self.mem().compare_exchange_u32(off, garbage, orig);
                }
                let orig = rd32(self.port.ring().region(), off);
                let g = mutation::head_garbage(&mut self.rng, orig, self.geo.cmdr_size);
                if let Ok(Ok(_)) = self.mem().compare_exchange_u32(off, orig, g) {
                    self.head_garbage = Some((g, orig));
                }
                if self.rng.chance(1, 2) {
                    self.notify();
                }
            }
            TouchDataPage => {
                let data_off = self.geo.data_off();
                let span = self.geo.map_len.saturating_sub(data_off);
                if span == 0 {
                    return;
                }
                // Mostly pages near the start of the data area (the ones
                // that get allocated), sometimes anywhere.
                let limit = if self.rng.chance(3, 4) {
                    span.min(8 << 20)
                } else {
                    span
                };
                let off = data_off + self.rng.below(limit);
                let write = if self.rng.chance(1, 4) {
                    Some(self.rng.byte())
                } else {
                    None
                };
                match self.port.touch(off, write) {
                    Touch::Mapped => self.stats.touched += 1,
                    Touch::Sigbus => self.stats.sigbus += 1,
                    Touch::Other(why) => {
                        self.anomaly(format!("touching data area offset {off:#x}: {why}"))
                    }
                }
            }
            SpuriousNotify => self.notify(),
            BadNotifySize => match self.port.bad_io(&mut self.rng) {
                BadIo::Einval => self.stats.einval += 1,
                BadIo::Unexpected(why) => self.anomaly(format!("wrong-size device I/O: {why}")),
            },
            ExtraMapping => match self.port.extra_mapping(&mut self.rng) {
                Mapping::Refused => self.stats.maps_refused += 1,
                Mapping::Fine => self.stats.maps_fine += 1,
                Mapping::Unexpected(why) => self.anomaly(format!("extra mapping: {why}")),
            },
            FreeKeptBuf => {
                if !self.kept.is_empty() && self.rng.chance(2, 3) {
                    let i = self.rng.below(self.kept.len() as u64) as usize;
                    let id = self.kept.swap_remove(i);
                    match self.port.free_kept_buf(id) {
                        Ok(()) => self.stats.kept_freed += 1,
                        Err(e) => self.note(format!("free_kept_buf {id} (kept): {e}")),
                    }
                } else {
                    let pend: Vec<u16> = self.pending.iter().map(|p| p.cmd.cmd_id).collect();
                    let id = match self.rng.below(3) {
                        0 if !pend.is_empty() => *self.rng.pick(&pend),
                        1 => 0,
                        _ => self.rng.next_u32() as u16,
                    };
                    if self.kept.contains(&id) {
                        return;
                    }
                    match self.port.free_kept_buf(id) {
                        Ok(()) => {
                            self.anomaly(format!("free_kept_buf {id} worked on an id not kept"))
                        }
                        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                            self.stats.kept_refused += 1
                        }
                        Err(e) => {
                            self.anomaly(format!("free_kept_buf {id}: {e} (expected EINVAL)"))
                        }
                    }
                }
            }
            _ => {}
        }
    }

    // ----- recovery -----

    fn restore_mailbox(&mut self) {
        if let Some((garbage, orig)) = self.head_garbage.take() {
            let _ =
                self.mem()
                    .compare_exchange_u32(abi::MAILBOX_CMD_HEAD_OFFSET as u64, garbage, orig);
        }
        if std::mem::take(&mut self.mailbox_dirty) {
            let mb = self.mailbox;
            let m = self.mem();
            for (off, size, v) in mb {
                let _ = if size == 2 {
                    m.write_u16(off, v as u16)
                } else {
                    m.write_u32(off, v)
                };
            }
        }
    }

    /// `reset_ring`, then starts over from the mailbox's positions.
    pub fn recover(&mut self, cause: Cause) {
        self.restore_mailbox();
        let level = if self.rng.chance(1, 4) { 2 } else { 1 };
        self.log(
            1,
            &format!(
                "recovery ({cause:?}, level {level}) after {} mutations",
                self.stats.mutations
            ),
        );
        if let Err(e) = self.port.reset_ring(level) {
            self.anomaly(format!("reset_ring {level}: {e}"));
        }
        let m = self.port.ring().region();
        let tail = rd32(m, abi::MAILBOX_CMD_TAIL_OFFSET as u64);
        let head = rd32(m, abi::MAILBOX_CMD_HEAD_OFFSET as u64);
        if tail != 0 || !pos::valid_pos(head, self.geo.cmdr_size) {
            self.anomaly(format!(
                "after reset_ring: cmd_tail {tail:#x}, cmd_head {head:#x}"
            ));
        }
        let tail = if pos::valid_pos(tail, self.geo.cmdr_size) {
            tail
        } else {
            0
        };
        self.tail = tail;
        self.next = tail;
        self.last_head = tail;
        self.tail_dirty = false;
        self.slots.clear();
        self.pending.clear();
        self.released.clear();
        self.kept.clear();
        self.recover_at = None;
        self.since_recovery = 0;
        let now = Instant::now();
        self.last_recovery = now;
        let (lo, hi) = self.cfg.fatal_gap_ms;
        self.fatal_allowed_at = now + Duration::from_millis(self.rng.range(lo, hi));
        self.draw_fatal();
        let i = match cause {
            Cause::Fatal => 0,
            Cause::Periodic => 1,
            Cause::Stall => 2,
            Cause::Desync => 3,
            Cause::Final => 4,
        };
        self.stats.recoveries[i] += 1;
    }

    fn check_recovery(&mut self) {
        let now = Instant::now();
        if self.recover_at.is_some_and(|t| now >= t) {
            self.recover(Cause::Fatal);
            return;
        }
        if self.cfg.recover_every > 0 && self.since_recovery >= self.cfg.recover_every {
            self.recover(Cause::Periodic);
            return;
        }
        let quiet = now.duration_since(self.last_entry.max(self.last_recovery));
        if quiet >= self.cfg.stall && self.pending.iter().all(|p| p.hold_until.is_none()) {
            self.dead_recoveries += 1;
            self.log(
                1,
                &format!(
                    "no new entry for {} ms: {} commands pending, {} kept buffers, {} mutations since the last recovery",
                    quiet.as_millis(),
                    self.pending.len(),
                    self.kept.len(),
                    self.since_recovery
                ),
            );
            if self.dead_recoveries == 5 {
                self.note("no new command through 5 stall recoveries in a row (fio done?)".into());
            }
            self.recover(Cause::Stall);
        }
    }

    /// One round: wait for the kernel, decode, complete, maybe misbehave.
    pub fn step(&mut self) -> io::Result<()> {
        let now = Instant::now();
        // Short waits while fuzzing: ring-level mutations happen per wakeup.
        let mut timeout = if self.fuzzing { self.cfg.tick_ms.max(1) } else { 20 };
        for p in &self.pending {
            if let Some(t) = p.hold_until {
                let ms = t.saturating_duration_since(now).as_millis() as i32;
                timeout = timeout.min(ms.max(1));
            }
        }
        if let Some(t) = self.recover_at {
            timeout = timeout
                .min(t.saturating_duration_since(now).as_millis() as i32)
                .max(0);
        }
        let t = Instant::now();
        self.port.wait(timeout)?;
        let t = self.lap(0, t);
        if self.recover_at.is_none() {
            self.scan();
        }
        let t = self.lap(1, t);
        if !self.done() {
            self.ring_fatal();
        }
        if self.fuzzing
            && !self.done()
            && self
                .rng
                .chance(self.cfg.step_chance.0, self.cfg.step_chance.1)
        {
            for _ in 0..self.rng.range(1, self.cfg.step_burst.max(1)) {
                if self.done() {
                    break;
                }
                self.step_mutation();
            }
        }
        let t = self.lap(2, t);
        self.complete_ready();
        let t = self.lap(3, t);
        if self.fuzzing {
            self.check_recovery();
        }
        self.lap(4, t);
        Ok(())
    }

    fn lap(&mut self, i: usize, t: Instant) -> Instant {
        let now = Instant::now();
        self.stats.time_us[i] += now.duration_since(t).as_micros() as u64;
        now
    }

    /// Fuzzes until the budget, the time or `stop()`.
    pub fn fuzz(&mut self, stop: &dyn Fn() -> bool) -> io::Result<()> {
        self.fuzzing = true;
        self.start = Instant::now();
        self.last_entry = self.start;
        while !self.done() && !stop() {
            self.step()?;
        }
        Ok(())
    }

    /// The final recovery: fuzzing stops, the mailbox is restored and the
    /// ring reset.
    pub fn final_recovery(&mut self) {
        self.fuzzing = false;
        self.recover(Cause::Final);
    }

    /// Correct service for `d` or until `stop()`.
    pub fn settle(&mut self, d: Duration, stop: &dyn Fn() -> bool) -> io::Result<()> {
        self.fuzzing = false;
        let until = Instant::now() + d;
        while Instant::now() < until && !stop() {
            self.step()?;
        }
        self.restore_mailbox();
        Ok(())
    }

    /// Whether fuzzing is on.
    pub fn fuzzing(&self) -> bool {
        self.fuzzing
    }

    /// Turns mutations (and recoveries) on or off.
    pub fn set_fuzzing(&mut self, on: bool) {
        self.fuzzing = on;
    }

    /// Serves correctly (no mutation, no recovery) for one round.
    pub fn serve_step(&mut self) -> io::Result<()> {
        self.fuzzing = false;
        self.step()
    }

    /// Number of commands decoded and not completed.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Summary lines.
    pub fn report(&self, seed: u64) -> Vec<String> {
        let s = &self.stats;
        let mut out = vec![format!(
            "fuzzer: {} mutations, {} recoveries, seed {seed}",
            s.mutations,
            s.total_recoveries()
        )];
        let kinds: Vec<String> = Mutation::ALL
            .iter()
            .filter(|m| s.by_kind[m.index()] > 0)
            .map(|m| format!("{}={}", m.name(), s.by_kind[m.index()]))
            .collect();
        out.push(format!("fuzzer: mutations by kind: {}", kinds.join(" ")));
        out.push(format!(
            "fuzzer: recoveries: fatal={} periodic={} stall={} desync={} final={}",
            s.recoveries[0], s.recoveries[1], s.recoveries[2], s.recoveries[3], s.recoveries[4]
        ));
        out.push(format!(
            "fuzzer: commands={} tmrs={} completions={} lost={} kept-freed={} kept-refused={} notifies={} pages: sigbus={} mapped={} bad-size-io einval={} extra-maps refused={} fine={} max-quiet={}ms elapsed={:.1}s",
            s.cmds,
            s.tmrs,
            s.completions,
            s.lost,
            s.kept_freed,
            s.kept_refused,
            s.notifies,
            s.sigbus,
            s.touched,
            s.einval,
            s.maps_refused,
            s.maps_fine,
            s.max_quiet_ms,
            self.start.elapsed().as_secs_f64()
        ));
        if self.cfg.verbose > 0 {
            let t = s.time_us.map(|us| us / 1000);
            out.push(format!(
                "fuzzer: time (ms): wait={} decode={} ring-mutations={} completions={} recoveries={}",
                t[0], t[1], t[2], t[3], t[4]
            ));
            let kinds: Vec<String> = Mutation::ALL
                .iter()
                .filter(|m| s.kind_us[m.index()] > 0)
                .map(|m| format!("{}={}", m.name(), s.kind_us[m.index()] / 1000))
                .collect();
            out.push(format!(
                "fuzzer: ring-mutation time (ms): {}",
                kinds.join(" ")
            ));
        }
        for n in &s.notes {
            out.push(format!("fuzzer: note: {n}"));
        }
        for a in &s.anomalies {
            out.push(format!("fuzzer: ANOMALY: {a}"));
        }
        out
    }
}
