// SPDX-License-Identifier: GPL-2.0

//! Command ids, lowest free first over 1..=0xffff, like the C driver's `xa_alloc` on its
//! command xarray (handlers may rely on ids being small and reused).
//!
//! A bitmap (in caller-provided storage) records the ids in use, and a hint keeps the lowest
//! word that may have a free id, so finding the id of the next command costs one or two word
//! reads, not a walk over the command table.
//!
//! This file only uses `core` and is shared between the `tcmu_rs` kernel module and the host
//! test crate `tcmu-logic`.

#![allow(dead_code, unreachable_pub)]

use core::ops::DerefMut;

/// The highest command id (`cmd_id` is 16 bits; 0 is never used).
pub const MAX_ID: u16 = u16::MAX;

/// Number of `u64` bitmap words for ids `0..=MAX_ID`.
pub const ID_WORDS: usize = (MAX_ID as usize + 1) / u64::BITS as usize;

/// The ids in use on one ring.
pub struct IdMap<S> {
    bits: S,
    /// No word below this one has a free id.
    hint: usize,
    used: u32,
}

impl<S: DerefMut<Target = [u64]>> IdMap<S> {
    /// Creates a map with no id in use, using `bits` (cleared here) as storage.
    ///
    /// Returns `None` if `bits` has fewer than [`ID_WORDS`] words.
    pub fn new(mut bits: S) -> Option<Self> {
        if bits.len() < ID_WORDS {
            return None;
        }
        bits.fill(0);
        // Id 0 is reserved: never handed out.
        *bits.first_mut()? = 1;
        Some(Self {
            bits,
            hint: 0,
            used: 0,
        })
    }

    /// The lowest id not in use, `None` if all are.
    pub fn lowest_free(&self) -> Option<u16> {
        let words = self.bits.get(self.hint..ID_WORDS)?;
        let (i, w) = words.iter().enumerate().find(|(_, w)| **w != u64::MAX)?;
        let id = (self.hint + i) * u64::BITS as usize + w.trailing_ones() as usize;
        u16::try_from(id).ok()
    }

    /// Whether `id` is in use (never id 0).
    pub fn is_set(&self, id: u16) -> bool {
        let (w, b) = split(id);
        id != 0 && self.bits.get(w).is_some_and(|x| x & b != 0)
    }

    /// Marks `id` in use; returns `false` (and changes nothing) for id 0 or an id in use.
    pub fn set(&mut self, id: u16) -> bool {
        let (w, b) = split(id);
        let Some(x) = self.bits.get_mut(w) else {
            return false;
        };
        if id == 0 || *x & b != 0 {
            return false;
        }
        *x |= b;
        self.used += 1;
        if w == self.hint {
            while self.bits.get(self.hint).is_some_and(|x| *x == u64::MAX) {
                self.hint += 1;
            }
        }
        true
    }

    /// Marks `id` free; returns `false` (and changes nothing) if it was not in use.
    pub fn clear(&mut self, id: u16) -> bool {
        let (w, b) = split(id);
        let Some(x) = self.bits.get_mut(w) else {
            return false;
        };
        if id == 0 || *x & b == 0 {
            return false;
        }
        *x &= !b;
        self.used -= 1;
        self.hint = self.hint.min(w);
        true
    }

    /// Number of ids in use.
    pub fn used(&self) -> u32 {
        self.used
    }
}

/// Word index and bit mask of `id`.
fn split(id: u16) -> (usize, u64) {
    let id = usize::from(id);
    (id / u64::BITS as usize, 1u64 << (id % u64::BITS as usize))
}
