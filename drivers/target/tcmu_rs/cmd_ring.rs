// SPDX-License-Identifier: GPL-2.0

//! Command ring bookkeeping of the kernel side.
//!
//! The command ring is a circular buffer of `size` bytes in shared memory.
//! The kernel appends entries at `head` (published to userspace as
//! `cmd_head` in the mailbox) and userspace reports completed entries by
//! advancing `cmd_tail`. The kernel reaps completed entries from
//! `last_cleaned` up to `cmd_tail`.
//!
//! Unlike the C driver, which re-reads `cmd_head` and every entry length from
//! the shared (userspace-writable) memory, [`CmdRing`] keeps all of this state
//! kernel-private:
//!
//! * `head` and `last_cleaned` live only here;
//! * the `len_op` of every slot written (PAD, CMD and TMR) is remembered in a
//!   caller-provided circular FIFO, so the reaper knows where each slot ends
//!   without trusting shared memory. The caller compares the `len_op` that
//!   userspace sees with the remembered one and treats any difference as a
//!   broken ring.
//!
//! The only value taken from userspace is `cmd_tail`, which
//! [`CmdRing::begin_reap`] validates.
//!
//! Entries are contiguous: when an entry does not fit before the end of the
//! ring, a PAD entry covering the rest of the ring is placed first, like C's
//! `ring_insert_padding`. As in C's `spc_free`, one byte of the ring is
//! always left unused so that a full ring can be told from an empty one.
//!
//! This file only uses `core` and is shared between the `tcmu_rs` kernel
//! module and the host test crate `tcmu-logic`.

#![allow(dead_code, unreachable_pub)]

use core::ops::DerefMut;

use super::abi::{
    hdr_get_len, hdr_get_op, hdr_len_op, Opcode, CMD_ENTRY_SIZE, TCMU_OP_ALIGN_SIZE, TMR_ENTRY_SIZE,
};

/// Alignment of ring offsets and entry lengths, as `u32`.
const ALIGN: u32 = TCMU_OP_ALIGN_SIZE as u32;

/// Size of the smallest non-PAD entry the kernel writes: a TMR entry without
/// command ids (32 bytes); a CMD entry is at least `CMD_ENTRY_SIZE`
/// (112 bytes).
pub const MIN_ENTRY_SIZE: u32 = if TMR_ENTRY_SIZE < CMD_ENTRY_SIZE {
    TMR_ENTRY_SIZE as u32
} else {
    CMD_ENTRY_SIZE as u32
};

/// Exclusive upper bound of the ring size (`2^31`), so that every offset
/// and every sum of two offsets fits in a `u32`.
pub const MAX_RING_SIZE: u32 = 1 << 31;

/// Number of FIFO slots that is always enough for a ring of `size` bytes,
/// whatever the mix of CMD, TMR and PAD entries.
///
/// Live entries occupy at most `size - 1` bytes. Every PAD entry ends exactly
/// at the end of the ring, and live entries do not overlap, so at most one
/// PAD entry is live at any time. Every other entry is at least
/// [`MIN_ENTRY_SIZE`] bytes long. Hence at most
/// `(size - 1) / MIN_ENTRY_SIZE + 1 <= size / MIN_ENTRY_SIZE + 1` slots are
/// live.
///
/// A smaller FIFO is still safe: [`CmdRing::reserve`] then reports the ring
/// as full earlier (the caller queues the command as it does when the ring
/// is out of space).
pub const fn fifo_capacity(size: u32) -> usize {
    (size / MIN_ENTRY_SIZE) as usize + 1
}

/// Where an entry reserved by [`CmdRing::reserve`] goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    /// A PAD entry to write first, as `(offset, length)` relative to the
    /// ring; it always ends at the end of the ring.
    pub pad: Option<(u32, u32)>,
    /// Offset of the entry relative to the ring.
    pub offset: u32,
}

/// A slot of the ring as remembered by the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot {
    /// Offset of the slot relative to the ring.
    pub offset: u32,
    /// The `len_op` the kernel wrote into the slot header.
    pub len_op: u32,
}

impl Slot {
    /// Length of the slot in bytes.
    pub const fn len(&self) -> u32 {
        hdr_get_len(self.len_op)
    }

    /// Raw opcode of the slot (`TCMU_OP_*`).
    pub const fn op(&self) -> u32 {
        hdr_get_op(self.len_op)
    }
}

/// Errors found while reaping, caused by a bad `cmd_tail` from userspace
/// (or, for [`RingError::Inconsistent`], by a bug in the bookkeeping).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingError {
    /// `cmd_tail` is not smaller than the ring size.
    TailOutOfRange {
        /// The offending tail.
        tail: u32,
    },
    /// `cmd_tail` is not a multiple of `TCMU_OP_ALIGN_SIZE`.
    TailMisaligned {
        /// The offending tail.
        tail: u32,
    },
    /// `cmd_tail` is not within the region of entries handed to userspace
    /// (between `last_cleaned` and `head`).
    TailOutsideUsed {
        /// The offending tail.
        tail: u32,
    },
    /// `cmd_tail` points into the middle of a slot.
    TailInsideEntry {
        /// The offending tail.
        tail: u32,
        /// The slot that contains it.
        slot: Slot,
    },
    /// The slot FIFO does not match the ring state (a bug, never caused by
    /// userspace).
    Inconsistent,
}

/// Kernel-private state of a command ring.
///
/// `S` is the storage of the slot FIFO, provided by the caller (see
/// [`fifo_capacity`]).
pub struct CmdRing<S> {
    size: u32,
    head: u32,
    last_cleaned: u32,
    fifo: S,
    fifo_first: usize,
    fifo_len: usize,
}

impl<S: DerefMut<Target = [u32]>> CmdRing<S> {
    /// Creates an empty ring of `size` bytes using `fifo` as slot storage.
    ///
    /// Returns `None` unless `size` is a non-zero multiple of
    /// `TCMU_OP_ALIGN_SIZE` below [`MAX_RING_SIZE`].
    pub fn new(size: u32, fifo: S) -> Option<Self> {
        if size == 0 || size % ALIGN != 0 || size >= MAX_RING_SIZE {
            return None;
        }
        Some(Self {
            size,
            head: 0,
            last_cleaned: 0,
            fifo,
            fifo_first: 0,
            fifo_len: 0,
        })
    }

    /// Ring size in bytes.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// Offset of the next entry to write (the value to publish as
    /// `cmd_head`).
    pub fn head(&self) -> u32 {
        self.head
    }

    /// Offset of the oldest entry not yet reaped.
    pub fn last_cleaned(&self) -> u32 {
        self.last_cleaned
    }

    /// Distance from `from` to `to` going forward around the ring.
    fn dist(&self, from: u32, to: u32) -> u32 {
        if to >= from {
            to - from
        } else {
            // from < size, so the result is < size.
            self.size.saturating_sub(from).saturating_add(to)
        }
    }

    /// Number of bytes in use (written and not yet reaped), like C's
    /// `spc_used`.
    pub fn used(&self) -> u32 {
        self.dist(self.last_cleaned, self.head)
    }

    /// Number of bytes that may still be written, like C's `spc_free`: one
    /// byte is kept unused.
    pub fn free(&self) -> u32 {
        self.size.saturating_sub(self.used()).saturating_sub(1)
    }

    /// Number of slots written and not yet reaped.
    pub fn pending_slots(&self) -> usize {
        self.fifo_len
    }

    /// Number of slots the FIFO storage can hold.
    pub fn slot_capacity(&self) -> usize {
        self.fifo.len()
    }

    /// Returns `true` if the ring is empty (everything reaped).
    pub fn is_empty(&self) -> bool {
        self.head == self.last_cleaned
    }

    /// Computes the PAD length needed before an entry of `len` bytes (0 if
    /// none) and the total space needed, or `None` if `len` is not a valid
    /// entry length for this ring.
    fn layout(&self, len: u32) -> Option<(u32, u32)> {
        if len < ALIGN || len % ALIGN != 0 || len >= self.size {
            return None;
        }
        let to_end = self.size.saturating_sub(self.head);
        let pad = if to_end >= len { 0 } else { to_end };
        Some((pad, pad.checked_add(len)?))
    }

    /// Returns `true` if [`CmdRing::reserve`] would succeed for an entry of
    /// `len` bytes (like C's `is_ring_space_avail`, plus FIFO space).
    pub fn fits(&self, len: u32) -> bool {
        match self.layout(len) {
            Some((pad, needed)) => {
                let slots = if pad != 0 { 2 } else { 1 };
                needed <= self.free() && self.fifo_len.saturating_add(slots) <= self.fifo.len()
            }
            None => false,
        }
    }

    /// Pushes `len_op` at the back of the FIFO.
    fn push(&mut self, len_op: u32) -> Option<()> {
        let cap = self.fifo.len();
        if self.fifo_len >= cap {
            return None;
        }
        // fifo_first < cap and fifo_len < cap: no overflow.
        let mut idx = self.fifo_first + self.fifo_len;
        if idx >= cap {
            idx -= cap;
        }
        *self.fifo.get_mut(idx)? = len_op;
        self.fifo_len += 1;
        Some(())
    }

    /// Returns the `len_op` at the front of the FIFO.
    fn front(&self) -> Option<u32> {
        if self.fifo_len == 0 {
            return None;
        }
        self.fifo.get(self.fifo_first).copied()
    }

    /// Removes the front of the FIFO.
    fn pop(&mut self) {
        if self.fifo_len == 0 {
            return;
        }
        self.fifo_len -= 1;
        self.fifo_first += 1;
        if self.fifo_first >= self.fifo.len() {
            self.fifo_first = 0;
        }
    }

    /// Advances `offset` by `len` bytes around the ring.
    fn advance(&self, offset: u32, len: u32) -> u32 {
        let sum = u64::from(offset) + u64::from(len);
        // The result is < size, which fits in a u32. `size` is never 0 (see `new`); the
        // checked form keeps a panic path out of the kernel anyway.
        sum.checked_rem(u64::from(self.size)).unwrap_or(0) as u32
    }

    /// Reserves space for an entry of `len` bytes with opcode `op`.
    ///
    /// `len` must be a multiple of `TCMU_OP_ALIGN_SIZE`, at least that
    /// large, and smaller than the ring. If the entry does not fit before the
    /// end of the ring, a PAD of exactly `size - head` bytes is placed at
    /// `head` first, so entries are contiguous.
    ///
    /// Returns `None`, changing nothing, if `len` is invalid, if the ring
    /// does not have `len` (plus PAD) free bytes, or if the slot FIFO is
    /// full. Otherwise advances `head`, remembers the slot(s) and returns
    /// where the caller must write the PAD and the entry. The caller
    /// publishes [`CmdRing::head`] as `cmd_head` after writing them.
    pub fn reserve(&mut self, len: u32, op: Opcode) -> Option<Placement> {
        if !self.fits(len) {
            return None;
        }
        let (pad_len, _) = self.layout(len)?;
        let pad = if pad_len != 0 {
            let pad_off = self.head;
            self.push(hdr_len_op(pad_len, Opcode::Pad))?;
            self.head = self.advance(self.head, pad_len);
            Some((pad_off, pad_len))
        } else {
            None
        };
        let offset = self.head;
        // Cannot fail: fits() checked the FIFO space.
        self.push(hdr_len_op(len, op))?;
        self.head = self.advance(self.head, len);
        Some(Placement { pad, offset })
    }

    /// Empties the ring: `head = last_cleaned = 0` and no slots (used when
    /// the ring is reset, like C's `tcmu_reset_ring`).
    pub fn reset(&mut self) {
        self.head = 0;
        self.last_cleaned = 0;
        self.fifo_first = 0;
        self.fifo_len = 0;
    }

    /// Validates `tail`, the `cmd_tail` read once from the mailbox, and
    /// returns a [`Reaper`] for the slots between `last_cleaned` and `tail`.
    ///
    /// `tail` must be smaller than the ring size, a multiple of
    /// `TCMU_OP_ALIGN_SIZE` and within the used region (its distance from
    /// `last_cleaned` at most [`CmdRing::used`]). `tail == last_cleaned`
    /// means there is nothing to reap.
    pub fn begin_reap(&mut self, tail: u32) -> Result<Reaper<'_, S>, RingError> {
        if tail >= self.size {
            return Err(RingError::TailOutOfRange { tail });
        }
        if tail % ALIGN != 0 {
            return Err(RingError::TailMisaligned { tail });
        }
        if self.dist(self.last_cleaned, tail) > self.used() {
            return Err(RingError::TailOutsideUsed { tail });
        }
        Ok(Reaper { ring: self, tail })
    }
}

/// Walks the slots completed by userspace, in ring order, from
/// `last_cleaned` up to a validated `cmd_tail`.
///
/// Slot boundaries come from the kernel's FIFO, never from shared memory.
pub struct Reaper<'a, S> {
    ring: &'a mut CmdRing<S>,
    tail: u32,
}

impl<S: DerefMut<Target = [u32]>> Reaper<'_, S> {
    /// The validated tail this reaper stops at.
    pub fn tail(&self) -> u32 {
        self.tail
    }

    /// Number of bytes left to reap before the tail.
    pub fn remaining(&self) -> u32 {
        self.ring.dist(self.ring.last_cleaned, self.tail)
    }

    /// Returns the next slot to reap without consuming it, `Ok(None)` when
    /// the tail has been reached, or [`RingError::TailInsideEntry`] if the
    /// tail lies inside the next slot.
    pub fn peek(&self) -> Result<Option<Slot>, RingError> {
        let remaining = self.remaining();
        if remaining == 0 {
            return Ok(None);
        }
        let len_op = self.ring.front().ok_or(RingError::Inconsistent)?;
        let slot = Slot {
            offset: self.ring.last_cleaned,
            len_op,
        };
        let len = slot.len();
        if len == 0 {
            return Err(RingError::Inconsistent);
        }
        if len > remaining {
            return Err(RingError::TailInsideEntry {
                tail: self.tail,
                slot,
            });
        }
        Ok(Some(slot))
    }

    /// Consumes the next slot: moves `last_cleaned` past it and drops it from
    /// the FIFO. Returns the slot, `Ok(None)` at the tail, or the error of
    /// [`Reaper::peek`] (changing nothing).
    pub fn consume(&mut self) -> Result<Option<Slot>, RingError> {
        let slot = match self.peek()? {
            Some(slot) => slot,
            None => return Ok(None),
        };
        self.ring.last_cleaned = self.ring.advance(slot.offset, slot.len());
        self.ring.pop();
        Ok(Some(slot))
    }
}

#[cfg(CONFIG_KUNIT)]
#[kernel::prelude::kunit_tests(tcmu_rs_cmd_ring)]
mod tests {
    use super::*;
    use crate::abi;
    use kernel::prelude::*;

    /// An entry that does not fit before the end of the ring is placed at offset 0 after a PAD
    /// that fills the end; reaping returns the PAD, then the entry, and the ring is empty again.
    #[test]
    fn wraps_with_pad() {
        let Ok(fifo) = KVVec::from_elem(0, fifo_capacity(1024), GFP_KERNEL) else {
            assert!(false, "alloc");
            return;
        };
        let Some(mut r) = CmdRing::new(1024, fifo) else {
            assert!(false, "ring");
            return;
        };
        let first = r.reserve(640, Opcode::Cmd);
        assert_eq!(
            first,
            Some(Placement {
                pad: None,
                offset: 0
            })
        );
        // Not reaped yet: no room for 512 more bytes (with or without the PAD).
        assert!(r.reserve(512, Opcode::Cmd).is_none());
        match r.begin_reap(640) {
            Ok(mut reaper) => {
                assert!(matches!(reaper.consume(), Ok(Some(s)) if s.offset == 0));
                assert!(matches!(reaper.consume(), Ok(None)));
            }
            Err(_) => assert!(false, "reap the first entry"),
        }
        // 384 bytes are left before the end: the next 512 wrap behind a PAD of 384 at 640.
        let wrapped = r.reserve(512, Opcode::Cmd);
        assert_eq!(
            wrapped,
            Some(Placement {
                pad: Some((640, 384)),
                offset: 0
            })
        );
        assert_eq!(r.head(), 512);
        assert_eq!(r.pending_slots(), 2);
        match r.begin_reap(512) {
            Ok(mut reaper) => {
                let slot = |r: Result<Option<Slot>, RingError>| {
                    r.ok().flatten().map(|s| (s.offset, s.len(), s.op()))
                };
                assert_eq!(slot(reaper.consume()), Some((640, 384, abi::TCMU_OP_PAD)));
                assert_eq!(slot(reaper.consume()), Some((0, 512, abi::TCMU_OP_CMD)));
                assert!(matches!(reaper.consume(), Ok(None)));
            }
            Err(_) => assert!(false, "reap the PAD and the entry"),
        }
        assert!(r.is_empty());
        assert_eq!(r.last_cleaned(), 512);
    }
}
