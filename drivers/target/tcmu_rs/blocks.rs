// SPDX-License-Identifier: GPL-2.0

//! Data area block allocator, compatible with the C driver.
//!
//! The data area is divided into `max_blocks` blocks of `data_blk_size`
//! bytes. A bitmap (in caller-provided storage) records which blocks are in
//! use. As in C:
//!
//! * blocks are only allocated below `thresh` (C's `dbi_thresh`), which
//!   grows by the request size (up to `max_blocks`) when there are not enough
//!   free blocks below it, and is lowered again by [`BlockAlloc::reclaim`];
//! * the lowest free blocks are picked (`find_first_zero_bit`), so
//!   consecutive blocks can be merged into a single iovec;
//! * `dbi_max` is the highest block allocated since the last reclaim.
//!
//! Allocating the pages behind the blocks is up to the caller.
//!
//! This file only uses `core` and is shared between the `tcmu_rs` kernel
//! module and the host test crate `tcmu-logic`.

#![allow(dead_code, unreachable_pub)]

use core::ops::DerefMut;

use super::abi::Iovec;

/// Bits per bitmap word.
const WORD_BITS: u32 = u64::BITS;

/// Number of `u64` bitmap words needed for `max_blocks` blocks.
pub const fn bitmap_words(max_blocks: u32) -> usize {
    max_blocks.div_ceil(WORD_BITS) as usize
}

/// Number of blocks of `blk_size` bytes needed for `len` bytes
/// (`DIV_ROUND_UP`); `None` if `blk_size` is 0 or the count overflows.
pub fn blocks_for(len: u64, blk_size: u32) -> Option<u32> {
    if blk_size == 0 {
        return None;
    }
    u32::try_from(len.div_ceil(u64::from(blk_size))).ok()
}

/// Blocks whose pages may be released, from [`BlockAlloc::reclaim`]: blocks
/// `start..end`, none of them in use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reclaim {
    /// First block to release (the new `thresh`).
    pub start: u32,
    /// One past the last block to release (the old `dbi_max + 1`).
    pub end: u32,
}

/// The block allocator of one device.
pub struct BlockAlloc<S> {
    bitmap: S,
    max_blocks: u32,
    thresh: u32,
    dbi_max: u32,
    used: u32,
}

impl<S: DerefMut<Target = [u64]>> BlockAlloc<S> {
    /// Creates an allocator for `max_blocks` blocks with all blocks free,
    /// using `bitmap` (cleared here) as storage.
    ///
    /// Returns `None` if `bitmap` has fewer than
    /// [`bitmap_words`]`(max_blocks)` words.
    pub fn new(max_blocks: u32, mut bitmap: S) -> Option<Self> {
        if bitmap.len() < bitmap_words(max_blocks) {
            return None;
        }
        bitmap.fill(0);
        Some(Self {
            bitmap,
            max_blocks,
            thresh: 0,
            dbi_max: 0,
            used: 0,
        })
    }

    /// Total number of blocks.
    pub fn max_blocks(&self) -> u32 {
        self.max_blocks
    }

    /// Blocks are only allocated below this (C's `dbi_thresh`); 0 when idle.
    pub fn thresh(&self) -> u32 {
        self.thresh
    }

    /// Highest block allocated since the last reclaim (C's `dbi_max`).
    pub fn dbi_max(&self) -> u32 {
        self.dbi_max
    }

    /// Number of blocks in use.
    pub fn used(&self) -> u32 {
        self.used
    }

    /// Number of free blocks.
    pub fn free_count(&self) -> u32 {
        self.max_blocks.saturating_sub(self.used)
    }

    /// Number of free blocks below `thresh` (C's `spc_bitmap_free`).
    pub fn free_below_thresh(&self) -> u32 {
        // All used blocks are below thresh.
        self.thresh.saturating_sub(self.used)
    }

    /// Returns `true` if block `dbi` is in use (`false` if out of range).
    pub fn is_used(&self, dbi: u32) -> bool {
        if dbi >= self.max_blocks {
            return false;
        }
        match self.bitmap.get((dbi / WORD_BITS) as usize) {
            Some(w) => w & (1u64 << (dbi % WORD_BITS)) != 0,
            None => false,
        }
    }

    /// Sets or clears the bit of `dbi`; returns its previous value, or
    /// `None` if out of range.
    fn set_bit(&mut self, dbi: u32, on: bool) -> Option<bool> {
        if dbi >= self.max_blocks {
            return None;
        }
        let w = self.bitmap.get_mut((dbi / WORD_BITS) as usize)?;
        let mask = 1u64 << (dbi % WORD_BITS);
        let old = *w & mask != 0;
        if on {
            *w |= mask;
        } else {
            *w &= !mask;
        }
        Some(old)
    }

    /// Allocates `n` blocks and writes their indices, in ascending order,
    /// to `out[..n]`, like C's `tcmu_alloc_data_space`: if there are fewer
    /// than `n` free blocks below `thresh`, `thresh` grows by `n` (capped to
    /// `max_blocks`), then the `n` lowest free blocks are taken.
    ///
    /// Fails, changing nothing, if fewer than `n` blocks are free in the
    /// whole data area or `out` is shorter than `n`. `n == 0` succeeds
    /// without changing anything.
    pub fn alloc(&mut self, n: u32, out: &mut [u32]) -> Option<()> {
        if n == 0 {
            return Some(());
        }
        let out = out.get_mut(..n as usize)?;
        let space = self.free_below_thresh();
        let mut thresh = self.thresh;
        if space < n {
            let blocks_left = self
                .max_blocks
                .saturating_sub(self.thresh)
                .saturating_add(space);
            if blocks_left < n {
                return None;
            }
            thresh = thresh.saturating_add(n).min(self.max_blocks);
        }
        // Find the n lowest free blocks below thresh before changing
        // anything.
        let mut found = 0usize;
        let mut word_idx = 0u32;
        'scan: while word_idx.saturating_mul(WORD_BITS) < thresh {
            let word = *self.bitmap.get(word_idx as usize)?;
            let mut free = !word;
            while free != 0 {
                let bit = free.trailing_zeros();
                let dbi = word_idx * WORD_BITS + bit;
                if dbi >= thresh {
                    break 'scan;
                }
                *out.get_mut(found)? = dbi;
                found += 1;
                if found == out.len() {
                    break 'scan;
                }
                free &= free - 1;
            }
            word_idx += 1;
        }
        if found != out.len() {
            // Cannot happen: the thresh computation guarantees n free blocks.
            return None;
        }
        self.thresh = thresh;
        for &dbi in out.iter() {
            self.set_bit(dbi, true)?;
            self.dbi_max = self.dbi_max.max(dbi);
        }
        self.used = self.used.saturating_add(n);
        Some(())
    }

    /// Frees the blocks in `dbis`. Indices out of range or not in use are
    /// skipped; returns how many there were (0 when all were valid).
    pub fn free(&mut self, dbis: &[u32]) -> u32 {
        let mut bad = 0u32;
        for &dbi in dbis {
            match self.set_bit(dbi, false) {
                Some(true) => self.used = self.used.saturating_sub(1),
                _ => bad = bad.saturating_add(1),
            }
        }
        bad
    }

    /// Frees all blocks and returns to the idle state (`thresh = dbi_max =
    /// 0`).
    pub fn clear(&mut self) {
        self.bitmap.fill(0);
        self.thresh = 0;
        self.dbi_max = 0;
        self.used = 0;
    }

    /// Index of the highest block in use below `end`, if any (C's
    /// `find_last_bit`).
    fn last_used_below(&self, end: u32) -> Option<u32> {
        let end = end.min(self.max_blocks);
        if end == 0 {
            return None;
        }
        let mut word_idx = (end - 1) / WORD_BITS;
        let mut mask = if end % WORD_BITS == 0 {
            u64::MAX
        } else {
            (1u64 << (end % WORD_BITS)) - 1
        };
        loop {
            let word = self.bitmap.get(word_idx as usize)? & mask;
            if word != 0 {
                return Some(word_idx * WORD_BITS + (WORD_BITS - 1 - word.leading_zeros()));
            }
            if word_idx == 0 {
                return None;
            }
            word_idx -= 1;
            mask = u64::MAX;
        }
    }

    /// Highest block in use, if any.
    pub fn highest_used(&self) -> Option<u32> {
        self.last_used_below(self.max_blocks)
    }

    /// Lowers `thresh` and `dbi_max` to just above the highest block in use
    /// and returns the blocks above it whose pages may be released, like the
    /// C unmap work (`find_unmap_devices`):
    ///
    /// * idle (`thresh == 0`): `None`;
    /// * the highest block in use is `dbi_max`: `None`, nothing changes;
    /// * no block in use: back to idle, `thresh = dbi_max = 0`, release
    ///   `0..dbi_max + 1`;
    /// * otherwise, with `b` the highest block in use: `thresh = b + 1`,
    ///   `dbi_max = b`, release `b + 1..old dbi_max + 1`.
    pub fn reclaim(&mut self) -> Option<Reclaim> {
        if self.thresh == 0 {
            return None;
        }
        let end = self.dbi_max.saturating_add(1);
        let start = match self.last_used_below(end) {
            Some(b) if b == self.dbi_max => return None,
            Some(b) => {
                self.thresh = b + 1;
                self.dbi_max = b;
                b + 1
            }
            None => {
                self.thresh = 0;
                self.dbi_max = 0;
                0
            }
        };
        Some(Reclaim { start, end })
    }
}

/// Number of iovecs needed for blocks `dbis` (in the order they are used):
/// one per run of consecutive indices, as C counts them in
/// `tcmu_get_empty_block`.
pub fn iov_count(dbis: &[u32]) -> usize {
    let mut count = 0usize;
    let mut prev: Option<u32> = None;
    for &dbi in dbis {
        if prev.and_then(|p| p.checked_add(1)) != Some(dbi) {
            count += 1;
        }
        prev = Some(dbi);
    }
    count
}

/// Fills `out` with the iovecs describing `len` bytes stored in blocks
/// `dbis` of `blk_size` bytes, like C's `new_block_to_iov`: each block
/// contributes `min(bytes left, blk_size)` bytes at
/// `data_off + dbi * blk_size`, and consecutive blocks are merged into one
/// iovec.
///
/// `dbis` must hold exactly `DIV_ROUND_UP(len, blk_size)` blocks and `out`
/// at least [`iov_count`]`(dbis)` entries. Returns the number of iovecs
/// written, or `None` (with `out` partially written) on any mismatch or
/// overflow.
pub fn fill_iovecs(
    dbis: &[u32],
    len: u64,
    blk_size: u32,
    data_off: u64,
    out: &mut [Iovec],
) -> Option<usize> {
    if u64::try_from(dbis.len()).ok()? != u64::from(blocks_for(len, blk_size)?) {
        return None;
    }
    let mut left = len;
    let mut n = 0usize;
    let mut prev: Option<u32> = None;
    for &dbi in dbis {
        let chunk = left.min(u64::from(blk_size));
        if prev.and_then(|p| p.checked_add(1)) != Some(dbi) {
            let base = u64::from(dbi)
                .checked_mul(u64::from(blk_size))?
                .checked_add(data_off)?;
            *out.get_mut(n)? = Iovec { base, len: 0 };
            n += 1;
        }
        let iov = out.get_mut(n.checked_sub(1)?)?;
        iov.len = iov.len.checked_add(chunk)?;
        left -= chunk;
        prev = Some(dbi);
    }
    Some(n)
}
