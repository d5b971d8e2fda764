// SPDX-License-Identifier: GPL-2.0

//! What the fuzzer can do wrong, and how it picks.
//!
//! Mutations come in three classes:
//!
//! * [`Class::Command`]: the response to one command is wrong (status,
//!   sense, `uflags`, `read_len`, data), late, lost or released without a
//!   response. The ring stays consistent: the kernel must complete the
//!   command somehow (possibly through `cmd_time_out`) and go on.
//! * [`Class::Fatal`]: the ring protocol is broken (bad `cmd_tail`,
//!   changed `len_op`, unknown, stale or duplicate command ids). The kernel
//!   is expected to stop using the ring until `reset_ring`; the fuzzer
//!   recovers soon after.
//! * [`Class::Shared`]: noise the kernel must ignore or survive: garbage in
//!   mailbox fields userspace must not write, data pages touched outside
//!   any iovec, notifications at random moments and of bad sizes, extra
//!   mappings of the device.
//!
//! [`choose`] draws one mutation among those possible in the current state
//! ([`Avail`]), with fixed weights; the value generators ([`bad_tail`],
//! [`bad_len_op`], ...) are pure functions of the PRNG and the ring
//! positions, so a seed replays a run.

use crate::rng::Rng;
use tcmu_ring::abi;
use tcmu_ring::pos;

/// Class of a mutation, see the module documentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Class {
    /// Wrong response to one command; the ring stays consistent.
    Command,
    /// Breaks the ring protocol; needs `reset_ring`.
    Fatal,
    /// Noise outside the protocol.
    Shared,
}

macro_rules! mutations {
    ($($(#[doc = $doc:literal])* $name:ident = ($class:ident, $weight:expr, $label:literal),)*) => {
        /// One kind of misbehaviour.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Mutation {
            $($(#[doc = $doc])* $name,)*
        }

        impl Mutation {
            /// Every mutation, in declaration order.
            pub const ALL: &'static [Mutation] = &[$(Mutation::$name,)*];

            /// Its class.
            pub const fn class(self) -> Class {
                match self {
                    $(Mutation::$name => Class::$class,)*
                }
            }

            /// Relative weight when drawn among the mutations of the same
            /// opportunity.
            pub const fn weight(self) -> u32 {
                match self {
                    $(Mutation::$name => $weight,)*
                }
            }

            /// Short name for logs and counters.
            pub const fn name(self) -> &'static str {
                match self {
                    $(Mutation::$name => $label,)*
                }
            }
        }
    };
}

mutations! {
    /// A random SCSI status byte (valid or not) after executing.
    RandomStatus = (Command, 10, "random-status"),
    /// CHECK CONDITION (or a random status) with random sense bytes.
    RandomSense = (Command, 10, "random-sense"),
    /// `TCMU_UFLAG_UNKNOWN_OP` on a command the kernel did send.
    UnknownOp = (Command, 6, "unknown-op"),
    /// `TCMU_UFLAG_READ_LEN` with a huge or random `read_len`.
    HugeReadLen = (Command, 8, "huge-read-len"),
    /// `TCMU_UFLAG_KEEP_BUF`, which the kernel does not offer.
    KeepBuf = (Command, 5, "keep-buf"),
    /// A random `uflags` byte.
    RandomUflags = (Command, 6, "random-uflags"),
    /// Random bytes in the command's own data buffers.
    GarbageData = (Command, 8, "garbage-data"),
    /// GOOD without executing (Data-In is whatever the buffer held).
    SkipExecute = (Command, 5, "skip-execute"),
    /// Random bytes in the request part of the entry (iovecs, CDB)
    /// before completing it; the kernel must not re-read them.
    EntryGarbage = (Command, 6, "entry-garbage"),
    /// Complete late, around or after `cmd_time_out`.
    HoldCommand = (Command, 2, "hold"),
    /// Complete two commands into the same slot: the first is lost and
    /// must time out in the kernel.
    OverwriteSlot = (Command, 3, "overwrite-slot"),
    /// Release the oldest slot without writing a response: the kernel
    /// completes its command from the request bytes left in the entry.
    PrematureRelease = (Command, 3, "premature-release"),

    /// `cmd_tail` not a multiple of 8.
    TailMisaligned = (Fatal, 3, "tail-misaligned"),
    /// `cmd_tail` at or beyond the end of the ring.
    TailBeyond = (Fatal, 3, "tail-beyond"),
    /// `cmd_tail` inside an entry.
    TailInsideEntry = (Fatal, 3, "tail-inside-entry"),
    /// `cmd_tail` in the free part of the ring (behind the last position).
    TailBehind = (Fatal, 3, "tail-behind"),
    /// `cmd_tail` moved back over entries already released.
    RewindTail = (Fatal, 3, "rewind-tail"),
    /// A different `len_op` in an entry before releasing it.
    LenOpChange = (Fatal, 3, "len-op-change"),
    /// A command id that is not in flight (0 or random).
    BadCmdId = (Fatal, 3, "bad-cmd-id"),
    /// The id of a command completed earlier.
    StaleCmdId = (Fatal, 2, "stale-cmd-id"),
    /// The same id in two slots released together.
    DuplicateCmdId = (Fatal, 2, "duplicate-cmd-id"),
    /// A command completed a second time in a later slot.
    DoubleComplete = (Fatal, 2, "double-complete"),

    /// Garbage in `version`, `flags`, `cmdr_off` or `cmdr_size`.
    MailboxGarbage = (Shared, 8, "mailbox-garbage"),
    /// Garbage in `cmd_head` (restored before the handler reads it again).
    HeadGarbage = (Shared, 6, "head-garbage"),
    /// Read or write a random data-area page from a forked child (SIGBUS
    /// for pages that hold no data).
    TouchDataPage = (Shared, 2, "touch-data-page"),
    /// A 4-byte write to `/dev/uioN` at a random moment.
    SpuriousNotify = (Shared, 10, "spurious-notify"),
    /// A read or write of `/dev/uioN` of a size other than 4 (`EINVAL`).
    BadNotifySize = (Shared, 4, "bad-notify-size"),
    /// A second mapping of the device (wrong size, offset, or split by a
    /// partial `munmap`).
    ExtraMapping = (Shared, 2, "extra-mapping"),
    /// `action/free_kept_buf` of a kept buffer (must work) or of an id
    /// that is not kept (must fail with `EINVAL`).
    FreeKeptBuf = (Shared, 3, "free-kept-buf"),
}

/// Number of mutation kinds.
pub const COUNT: usize = Mutation::ALL.len();

impl Mutation {
    /// Index in [`Mutation::ALL`], for counters.
    pub fn index(self) -> usize {
        Mutation::ALL.iter().position(|&m| m == self).unwrap_or(0)
    }

    /// Looks a mutation up by [`Mutation::name`].
    pub fn from_name(name: &str) -> Option<Mutation> {
        Mutation::ALL.iter().copied().find(|m| m.name() == name)
    }
}

/// What the current state allows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Avail {
    /// Number of commands ready to complete now.
    pub ready: usize,
    /// At least one slot was released since the last recovery (for
    /// [`Mutation::RewindTail`]).
    pub released: bool,
    /// A command id completed earlier is known (for
    /// [`Mutation::StaleCmdId`]).
    pub stale_id: bool,
    /// Fatal mutations are allowed now (rate limit: I/O must progress
    /// between recoveries).
    pub fatal: bool,
    /// The oldest slot holds a command still waiting for its response (for
    /// [`Mutation::PrematureRelease`]).
    pub front_pending: bool,
}

impl Mutation {
    /// Whether the mutation can be applied in state `a`.
    pub fn possible(self, a: &Avail) -> bool {
        use Mutation::*;
        if self.class() == Class::Fatal && !a.fatal {
            return false;
        }
        match self {
            RandomStatus | RandomSense | UnknownOp | HugeReadLen | KeepBuf | RandomUflags
            | GarbageData | SkipExecute | EntryGarbage | HoldCommand => a.ready >= 1,
            OverwriteSlot => a.ready >= 2,
            PrematureRelease => a.front_pending,
            TailMisaligned | TailBeyond | TailBehind => true,
            TailInsideEntry | LenOpChange | BadCmdId | DoubleComplete => a.ready >= 1,
            DuplicateCmdId => a.ready >= 2,
            RewindTail => a.released,
            StaleCmdId => a.ready >= 1 && a.stale_id,
            MailboxGarbage | HeadGarbage | TouchDataPage | SpuriousNotify | BadNotifySize
            | ExtraMapping | FreeKeptBuf => true,
        }
    }
}

impl Mutation {
    /// Whether the mutation needs a command to complete (as opposed to a
    /// ring-level one).
    pub fn needs_command(self) -> bool {
        !self.possible(&Avail {
            ready: 0,
            released: true,
            stale_id: true,
            fatal: true,
            front_pending: true,
        }) || self.class() == Class::Command
    }
}

/// Draws a mutation of one of `classes` possible in state `a`, by weight
/// (scaled per class by `class_weight`); `None` if none is possible.
pub fn choose(rng: &mut Rng, a: &Avail, classes: &[(Class, u32)]) -> Option<Mutation> {
    let weights: Vec<u32> = Mutation::ALL
        .iter()
        .map(|&m| {
            let cw = classes
                .iter()
                .find(|(c, _)| *c == m.class())
                .map_or(0, |(_, w)| *w);
            if cw > 0 && m.possible(a) {
                m.weight() * cw
            } else {
                0
            }
        })
        .collect();
    rng.weighted(&weights).map(|i| Mutation::ALL[i])
}

/// Kind of bad `cmd_tail`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadTail {
    /// Not a multiple of [`abi::TCMU_OP_ALIGN_SIZE`].
    Misaligned,
    /// `>= cmdr_size`.
    Beyond,
    /// Strictly inside the entry `(pos, len)`.
    InsideEntry {
        /// Ring position of the entry.
        pos: u32,
        /// Its length.
        len: u32,
    },
    /// In the free part of the ring: strictly between `head` and `tail`
    /// going forward (needs at least 16 free bytes, else falls back to
    /// [`BadTail::Misaligned`]).
    Behind {
        /// The kernel's head as last seen.
        head: u32,
    },
}

const ALIGN: u32 = abi::TCMU_OP_ALIGN_SIZE as u32;

/// A bad value for `cmd_tail`, given the current (good) `tail` and the ring
/// size. Each kind is checked by the unit tests to be rejected by the
/// kernel's validation (`begin_reap` plus the slot walk).
pub fn bad_tail(rng: &mut Rng, kind: BadTail, tail: u32, size: u32) -> u32 {
    match kind {
        BadTail::Misaligned => {
            let base = rng.below(size as u64 / ALIGN as u64) as u32 * ALIGN;
            base + rng.range(1, ALIGN as u64 - 1) as u32
        }
        BadTail::Beyond => match rng.below(4) {
            0 => size,
            1 => u32::MAX - rng.below(8) as u32 * ALIGN,
            2 => size + rng.range(1, 1024) as u32 * ALIGN,
            _ => size.saturating_add(rng.next_u32() & !(ALIGN - 1)).max(size),
        },
        BadTail::InsideEntry { pos, len } => {
            let steps = len / ALIGN;
            if steps < 2 {
                return bad_tail(rng, BadTail::Misaligned, tail, size);
            }
            pos::advance(pos, rng.range(1, steps as u64 - 1) as u32 * ALIGN, size)
        }
        BadTail::Behind { head } => {
            // Free bytes between head and tail (going forward from head).
            let free = pos::distance(head, tail, size);
            let free = if free == 0 { size } else { free };
            let steps = free / ALIGN;
            if steps < 2 {
                return bad_tail(rng, BadTail::Misaligned, tail, size);
            }
            pos::advance(head, rng.range(1, steps as u64 - 1) as u32 * ALIGN, size)
        }
    }
}

/// A `len_op` different from `orig`: another length, another opcode, both,
/// or random bits.
pub fn bad_len_op(rng: &mut Rng, orig: u32) -> u32 {
    loop {
        let v = match rng.below(5) {
            0 => {
                abi::hdr_get_len(orig).wrapping_add(rng.range(1, 64) as u32 * ALIGN)
                    | abi::hdr_get_op(orig)
            }
            1 => {
                abi::hdr_get_len(orig).wrapping_sub(rng.range(1, 8) as u32 * ALIGN)
                    | abi::hdr_get_op(orig)
            }
            2 => abi::hdr_get_len(orig) | (rng.below(8) as u32),
            3 => abi::hdr_get_len(orig) | abi::TCMU_OP_PAD,
            _ => rng.next_u32(),
        };
        if v != orig {
            return v;
        }
    }
}

/// A command id not in `inflight` (0 half of the time when possible).
pub fn bad_cmd_id(rng: &mut Rng, inflight: &dyn Fn(u16) -> bool) -> u16 {
    if rng.chance(1, 2) && !inflight(0) {
        return 0;
    }
    for _ in 0..64 {
        let id = rng.next_u32() as u16;
        if !inflight(id) {
            return id;
        }
    }
    0
}

/// A random (mostly invalid) mailbox write: `(offset, size in bytes,
/// value)` for one of `version`, `flags`, `cmdr_off`, `cmdr_size`.
pub fn mailbox_garbage(rng: &mut Rng) -> (u64, usize, u32) {
    match rng.below(4) {
        0 => (
            abi::MAILBOX_VERSION_OFFSET as u64,
            2,
            rng.next_u32() & 0xffff,
        ),
        1 => (abi::MAILBOX_FLAGS_OFFSET as u64, 2, rng.next_u32() & 0xffff),
        2 => (abi::MAILBOX_CMDR_OFF_OFFSET as u64, 4, rng.next_u32()),
        _ => (abi::MAILBOX_CMDR_SIZE_OFFSET as u64, 4, rng.next_u32()),
    }
}

/// A random `cmd_head` value, never equal to `orig`.
pub fn head_garbage(rng: &mut Rng, orig: u32, size: u32) -> u32 {
    loop {
        let v = match rng.below(3) {
            0 => rng.next_u32(),
            1 => rng.below(size as u64) as u32 & !(ALIGN - 1),
            _ => orig ^ (1 << rng.below(32)),
        };
        if v != orig {
            return v;
        }
    }
}

/// A SCSI status byte: half of the time one of the statuses a target may
/// return, else any byte.
pub fn random_status(rng: &mut Rng) -> u8 {
    const VALID: [u8; 8] = [0x00, 0x02, 0x04, 0x08, 0x18, 0x28, 0x30, 0x40];
    if rng.chance(1, 2) {
        *rng.pick(&VALID)
    } else {
        rng.byte()
    }
}

/// Random sense data: fully random, or fixed/descriptor format with a
/// random key and random additional sense; length 0..=96.
pub fn random_sense(rng: &mut Rng) -> Vec<u8> {
    let len = match rng.below(4) {
        0 => rng.below(abi::TCMU_SENSE_BUFFERSIZE as u64 + 1) as usize,
        1 => abi::TCMU_SENSE_BUFFERSIZE,
        _ => 18,
    };
    let mut s = vec![0u8; len];
    rng.fill(&mut s);
    if len >= 14 && rng.chance(2, 3) {
        if rng.chance(1, 2) {
            s[0] = 0x70 | (s[0] & 0x80);
            s[7] = (len - 8).min(255) as u8;
        } else {
            s[0] = 0x72;
            s[7] = rng.byte();
        }
    }
    s
}

/// Sense whose lengths the kernel's parsers must not trust (review item
/// 11: `scsi_sense_desc_find()` returned a descriptor at byte 95 and
/// `scsi_get_sense_info_fld()` read past the 96-byte buffer from `sd_done`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SenseEdge {
    /// Descriptor format, the last descriptor header at byte 94.
    HeaderAt94,
    /// Descriptor format, the last descriptor header at byte 95.
    HeaderAt95,
    /// Descriptor format, a descriptor whose length runs past byte 96.
    AddLenOverflow,
    /// Descriptor format with an additional length above 88.
    LongAdditional,
    /// Fixed format with additional length 255.
    FixedLen255,
    /// A response code other than 0x70..=0x73.
    BadResponseCode,
}

impl SenseEdge {
    /// Every edge case.
    pub const ALL: [SenseEdge; 6] = [
        SenseEdge::HeaderAt94,
        SenseEdge::HeaderAt95,
        SenseEdge::AddLenOverflow,
        SenseEdge::LongAdditional,
        SenseEdge::FixedLen255,
        SenseEdge::BadResponseCode,
    ];
}

/// An edge case for [`Mutation::RandomSense`] half of the time: which one,
/// and its sense bytes.
pub fn maybe_edge_sense(rng: &mut Rng) -> Option<(SenseEdge, Vec<u8>)> {
    if rng.chance(1, 2) {
        let e = *rng.pick(&SenseEdge::ALL);
        Some((e, edge_sense(rng, e)))
    } else {
        None
    }
}

const SENSE_LEN: usize = abi::TCMU_SENSE_BUFFERSIZE;

/// Descriptor sense header: mostly current (0x72, as sd only parses current
/// sense) with MEDIUM or HARDWARE ERROR (for which sd asks
/// `scsi_get_sense_info_fld()` where the error is), else anything.
fn desc_header(rng: &mut Rng, s: &mut [u8]) {
    s[0] = if rng.chance(7, 8) { 0x72 } else { 0x73 };
    s[1] = match rng.below(3) {
        0 => 0x03,
        1 => 0x04,
        _ => rng.byte() & 0x0f,
    };
}

/// Fills `s[8..end]` with 1..=4 vendor descriptors (types 0x80..=0xff, so
/// that the kernel's search walks past them). `end - 8` must be 0 or >= 2.
fn filler(rng: &mut Rng, s: &mut [u8], end: usize) {
    let gap = end - 8;
    if gap < 2 {
        return;
    }
    let n = rng.range(1, (gap as u64 / 2).min(4)) as usize;
    let mut lens = vec![2usize; n];
    for _ in 0..gap - 2 * n {
        lens[rng.below(n as u64) as usize] += 1;
    }
    let mut at = 8;
    for l in lens {
        s[at] = 0x80 | rng.byte();
        s[at + 1] = (l - 2) as u8;
        at += l;
    }
}

/// A descriptor type the kernel looks for: information (sd), sense key
/// specific, stream commands (st), or any.
fn wanted_type(rng: &mut Rng) -> u8 {
    match rng.below(5) {
        0..=1 => 0x00,
        2 => 0x02,
        3 => 0x04,
        _ => rng.byte(),
    }
}

/// 96 bytes of sense for edge case `e`.
pub fn edge_sense(rng: &mut Rng, e: SenseEdge) -> Vec<u8> {
    let mut s = vec![0u8; SENSE_LEN];
    rng.fill(&mut s);
    match e {
        SenseEdge::HeaderAt94 | SenseEdge::HeaderAt95 => {
            let at = if e == SenseEdge::HeaderAt94 { 94 } else { 95 };
            desc_header(rng, &mut s);
            // The header must lie within the additional length.
            s[7] = if rng.chance(3, 4) {
                88
            } else {
                rng.range(at as u64 - 7, 255) as u8
            };
            filler(rng, &mut s, at);
            s[at] = wanted_type(rng);
            if at == 94 {
                // 0x0a: a whole information descriptor, 12 bytes from 94;
                // never 0, which would end exactly at 96.
                s[95] = if rng.chance(1, 2) {
                    0x0a
                } else {
                    rng.byte().max(1)
                };
            }
        }
        SenseEdge::AddLenOverflow => {
            desc_header(rng, &mut s);
            s[7] = if rng.chance(1, 2) {
                88
            } else {
                rng.range(89, 255) as u8
            };
            let at = 8 + 2 * rng.below(43) as usize;
            filler(rng, &mut s, at);
            s[at] = wanted_type(rng);
            // 2 + add_len > 96 - at.
            s[at + 1] = rng.range((SENSE_LEN - at - 1) as u64, 255) as u8;
        }
        SenseEdge::LongAdditional => {
            desc_header(rng, &mut s);
            s[7] = rng.range(89, 255) as u8;
            if rng.chance(1, 2) {
                filler(rng, &mut s, SENSE_LEN);
            }
        }
        SenseEdge::FixedLen255 => {
            s[0] = 0x70 | (rng.byte() & 0x81);
            s[7] = 255;
        }
        SenseEdge::BadResponseCode => loop {
            s[0] = match rng.below(3) {
                0 => 0x00,
                1 => *rng.pick(&[0x7f, 0xff, 0x74, 0xf4, 0x6f, 0x80]),
                _ => rng.byte(),
            };
            if !(0x70..=0x73).contains(&(s[0] & 0x7f)) {
                break;
            }
        },
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_avail() -> Avail {
        Avail {
            ready: 4,
            released: true,
            stale_id: true,
            fatal: true,
            front_pending: true,
        }
    }

    const ALL_CLASSES: [(Class, u32); 3] =
        [(Class::Command, 1), (Class::Fatal, 1), (Class::Shared, 1)];

    #[test]
    fn table() {
        assert_eq!(COUNT, Mutation::ALL.len());
        let mut names: Vec<&str> = Mutation::ALL.iter().map(|m| m.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), COUNT, "duplicate names");
        for (i, &m) in Mutation::ALL.iter().enumerate() {
            assert_eq!(m.index(), i);
            assert_eq!(Mutation::from_name(m.name()), Some(m));
            assert!(m.weight() > 0);
        }
        for c in [Class::Command, Class::Fatal, Class::Shared] {
            assert!(Mutation::ALL.iter().any(|m| m.class() == c));
        }
        use Mutation::*;
        for m in [
            TailMisaligned,
            TailBeyond,
            TailBehind,
            RewindTail,
            SpuriousNotify,
        ] {
            assert!(!m.needs_command(), "{m:?}");
        }
        for m in [
            TailInsideEntry,
            LenOpChange,
            BadCmdId,
            StaleCmdId,
            DoubleComplete,
            HoldCommand,
        ] {
            assert!(m.needs_command(), "{m:?}");
        }
    }

    #[test]
    fn selection_is_deterministic_per_seed() {
        let run = |seed| {
            let mut r = Rng::new(seed);
            (0..500)
                .map(|_| choose(&mut r, &all_avail(), &ALL_CLASSES))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(5), run(5));
        assert_ne!(run(5), run(6));
    }

    #[test]
    fn selection_covers_everything_by_weight() {
        let mut r = Rng::new(11);
        let mut counts = [0u32; COUNT];
        let n = 200_000;
        for _ in 0..n {
            let m = choose(&mut r, &all_avail(), &ALL_CLASSES).unwrap();
            counts[m.index()] += 1;
        }
        let total_w: u32 = Mutation::ALL.iter().map(|m| m.weight()).sum();
        for &m in Mutation::ALL {
            let expect = n as f64 * m.weight() as f64 / total_w as f64;
            let got = counts[m.index()] as f64;
            assert!(
                (got - expect).abs() < expect * 0.15 + 50.0,
                "{}: {got} vs {expect}",
                m.name()
            );
        }
    }

    #[test]
    fn selection_respects_state_and_classes() {
        let mut r = Rng::new(3);
        let idle = Avail::default();
        for _ in 0..5000 {
            // Nothing ready, no fatal: only Shared noise.
            let m = choose(&mut r, &idle, &ALL_CLASSES).unwrap();
            assert_eq!(m.class(), Class::Shared, "{m:?}");
            // Fatal allowed but no command: only tail values and noise.
            let a = Avail {
                fatal: true,
                ..Avail::default()
            };
            let m = choose(&mut r, &a, &ALL_CLASSES).unwrap();
            assert!(m.possible(&a));
            assert!(!matches!(
                m,
                Mutation::RewindTail | Mutation::StaleCmdId | Mutation::LenOpChange
            ));
            // Only Command class requested, one command ready.
            let a = Avail {
                ready: 1,
                ..all_avail()
            };
            let m = choose(&mut r, &a, &[(Class::Command, 1)]).unwrap();
            assert_eq!(m.class(), Class::Command);
            assert_ne!(m, Mutation::OverwriteSlot);
        }
        assert_eq!(choose(&mut r, &idle, &[(Class::Fatal, 1)]), None);
        assert_eq!(choose(&mut r, &all_avail(), &[]), None);
    }

    /// The kernel's validation of `cmd_tail` (cmd_ring.rs `begin_reap` and the
    /// slot walk), for checking the generators.
    fn kernel_accepts(tail: u32, size: u32, last_cleaned: u32, head: u32, bounds: &[u32]) -> bool {
        if tail >= size || !tail.is_multiple_of(ALIGN) {
            return false;
        }
        if pos::distance(last_cleaned, tail, size) > pos::distance(last_cleaned, head, size) {
            return false;
        }
        tail == head || bounds.contains(&tail)
    }

    #[test]
    fn bad_tails_are_bad() {
        let size = 4096;
        let mut r = Rng::new(99);
        for _ in 0..20_000 {
            // A used region [tail, head) of entries of random length.
            let tail = r.below(size as u64 / 8) as u32 * 8;
            let mut bounds = vec![tail];
            let mut head = tail;
            let mut entries = Vec::new();
            for _ in 0..r.below(10) {
                let len = r.range(2, 40) as u32 * 8;
                if pos::distance(tail, head, size) + len >= size - 8 {
                    break;
                }
                entries.push((head, len));
                head = pos::advance(head, len, size);
                bounds.push(head);
            }
            let kinds = [
                BadTail::Misaligned,
                BadTail::Beyond,
                BadTail::Behind { head },
            ];
            for k in kinds {
                let t = bad_tail(&mut r, k, tail, size);
                assert!(
                    !kernel_accepts(t, size, tail, head, &bounds),
                    "{k:?} {t:#x} tail {tail:#x} head {head:#x}"
                );
            }
            for &(p, l) in &entries {
                let k = BadTail::InsideEntry { pos: p, len: l };
                let t = bad_tail(&mut r, k, tail, size);
                assert!(
                    !kernel_accepts(t, size, tail, head, &bounds),
                    "{k:?} {t:#x}"
                );
            }
        }
    }

    #[test]
    fn other_generators() {
        let mut r = Rng::new(1234);
        for _ in 0..10_000 {
            let orig = abi::hdr_len_op(r.range(1, 500) as u32 * 8, abi::Opcode::Cmd);
            assert_ne!(bad_len_op(&mut r, orig), orig);
            let h = r.below(512) as u32 * 8;
            assert_ne!(head_garbage(&mut r, h, 4096), h);
            let inflight = |id: u16| id.is_multiple_of(3);
            assert!(!inflight(bad_cmd_id(&mut r, &inflight)));
            let s = random_sense(&mut r);
            assert!(s.len() <= abi::TCMU_SENSE_BUFFERSIZE);
            let (off, sz, v) = mailbox_garbage(&mut r);
            assert!(off < abi::MAILBOX_CMD_HEAD_OFFSET as u64);
            assert!(sz == 4 || v <= 0xffff);
        }
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            seen.insert(random_status(&mut r));
        }
        assert!(seen.len() > 100);
    }

    /// The edge cases of [`SenseEdge`] as the kernel's descriptor walk
    /// (`scsi_sense_desc_find`) sees them, independently of the generator.
    fn classify(s: &[u8]) -> Vec<SenseEdge> {
        use SenseEdge::*;
        let rc = s[0] & 0x7f;
        if !(0x70..=0x73).contains(&rc) {
            return vec![BadResponseCode];
        }
        if rc <= 0x71 {
            return if s[7] == 255 {
                vec![FixedLen255]
            } else {
                vec![]
            };
        }
        let mut v = Vec::new();
        if s[7] > 88 {
            v.push(LongAdditional);
        }
        let end = 8 + usize::from(s[7].min(88));
        let (mut at, mut last) = (8, None);
        while at < end {
            last = Some(at);
            let Some(&add_len) = s.get(at + 1) else { break };
            let next = at + 2 + usize::from(add_len);
            if next > s.len() {
                v.push(AddLenOverflow);
            }
            at = next;
        }
        match last {
            Some(94) => v.push(HeaderAt94),
            Some(95) => v.push(HeaderAt95),
            _ => {}
        }
        v
    }

    #[test]
    fn sense_edge_cases_are_generated() {
        let mut r = Rng::new(77);
        for e in SenseEdge::ALL {
            for _ in 0..2000 {
                let s = edge_sense(&mut r, e);
                assert_eq!(s.len(), abi::TCMU_SENSE_BUFFERSIZE);
                assert!(classify(&s).contains(&e), "{e:?}: {s:02x?}");
            }
        }
        // RandomSense draws every one of them, and says which.
        let mut seen = std::collections::HashSet::new();
        for _ in 0..2000 {
            if let Some((e, s)) = maybe_edge_sense(&mut r) {
                assert!(classify(&s).contains(&e), "{e:?}: {s:02x?}");
                seen.insert(e);
            }
        }
        assert_eq!(seen.len(), SenseEdge::ALL.len());
        // The KASAN reproducer: information descriptor header at byte 95 of
        // current sense within the additional length, MEDIUM or HARDWARE ERROR.
        let hit = (0..2000).any(|_| {
            let s = edge_sense(&mut r, SenseEdge::HeaderAt95);
            s[0] == 0x72 && s[7] == 88 && s[95] == 0 && matches!(s[1], 3 | 4)
        });
        assert!(hit);
    }
}
