// SPDX-License-Identifier: GPL-2.0

//! Where a command goes on the ring, the pure part of queueing it: the data blocks it takes,
//! whether its entry can ever fit the ring, and its iovecs once its blocks are allocated.
//!
//! This file only uses `core` and is shared between the `tcmu_rs` kernel module, whose
//! `try_ring` allocates, copies and publishes around it, and the host test crate
//! `tcmu-logic`, whose ring simulation places its commands with the same code.

#![allow(dead_code, unreachable_pub)]

use super::abi::Iovec;
use super::blocks::{blocks_for, fill_iovecs, iov_count};
use super::entry::cmd_entry_size;

/// The data of a command and its blocks: its Data-Out or Data-In (`data_len` bytes in the
/// first `n_first` blocks), then its bidi Data-In (`bidi_len` bytes in `n_bidi` blocks).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataBlocks {
    /// Bytes of Data-Out or Data-In.
    pub data_len: u32,
    /// Bytes of bidi Data-In (0 unless bidirectional).
    pub bidi_len: u32,
    /// Blocks of the Data-Out or Data-In.
    pub n_first: u32,
    /// Blocks of the bidi Data-In.
    pub n_bidi: u32,
}

impl DataBlocks {
    /// The blocks of `blk_size` bytes the data takes; `None` if a data area of `max_blocks`
    /// blocks can never hold them (or `blk_size` is 0).
    pub fn new(data_len: u32, bidi_len: u32, blk_size: u32, max_blocks: u32) -> Option<Self> {
        let n_first = blocks_for(data_len.into(), blk_size)?;
        let n_bidi = blocks_for(bidi_len.into(), blk_size)?;
        let fits = u64::from(n_first) + u64::from(n_bidi) <= u64::from(max_blocks);
        fits.then_some(Self {
            data_len,
            bidi_len,
            n_first,
            n_bidi,
        })
    }

    /// All the blocks.
    pub fn total(&self) -> usize {
        self.n_first as usize + self.n_bidi as usize
    }

    /// Blocks `dbis` allocated for the data (in order), split into the first and the bidi
    /// ones.
    pub fn split<'a>(&self, dbis: &'a [u32]) -> (&'a [u32], &'a [u32]) {
        // `min`: equal by construction, and no panic path.
        dbis.split_at((self.n_first as usize).min(dbis.len()))
    }

    /// The iovecs of the data in blocks `dbis`: of the first blocks, of the bidi ones.
    pub fn iov_counts(&self, dbis: &[u32]) -> (usize, usize) {
        let (first, bidi) = self.split(dbis);
        (iov_count(first), iov_count(bidi))
    }

    /// Fills `iovs` (as many as [`Self::iov_counts`] together) with the iovecs of the data in
    /// blocks `dbis` of `blk_size` bytes of a data area at `data_off`; `None` on a mismatch,
    /// including iovec counts other than [`Self::iov_counts`].
    pub fn fill_iovecs(
        &self,
        dbis: &[u32],
        blk_size: u32,
        data_off: u64,
        iovs: &mut [Iovec],
    ) -> Option<()> {
        let (first, bidi) = self.split(dbis);
        let (n_first, n_bidi) = (iov_count(first), iov_count(bidi));
        if iovs.len() != n_first.checked_add(n_bidi)? {
            return None;
        }
        let (iov_first, iov_bidi) = iovs.split_at_mut(n_first);
        let wrote_first = fill_iovecs(first, self.data_len.into(), blk_size, data_off, iov_first)?;
        let wrote_bidi = fill_iovecs(bidi, self.bidi_len.into(), blk_size, data_off, iov_bidi)?;
        (wrote_first == n_first && wrote_bidi == n_bidi).then_some(())
    }
}

/// The offset of the iovecs in, and the size of, a command entry with `iovs` iovecs and a
/// CDB of `cdb_len` bytes. `Err(size)` if it can never fit a ring of `cmdr_size` bytes:
/// entries take at most half of it, as in C.
pub fn entry_fit(iovs: usize, cdb_len: usize, cmdr_size: u32) -> Result<(usize, usize), usize> {
    match cmd_entry_size(iovs, cdb_len) {
        Some((base, total)) if total <= (cmdr_size / 2) as usize => Ok((base, total)),
        size => Err(size.map_or(usize::MAX, |(_, total)| total)),
    }
}
