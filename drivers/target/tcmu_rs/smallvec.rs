// SPDX-License-Identifier: GPL-2.0

//! A vector with inline storage for the usual sizes: the data blocks of a command and the
//! iovecs of its entry.

use kernel::prelude::*;

/// A vector of up to `N` elements kept inline (no allocation on the I/O path for the usual
/// sizes), larger ones on the heap.
pub(crate) enum SmallVec<T: Copy, const N: usize> {
    Inline([T; N], usize),
    Heap(KVec<T>),
}

impl<T: Copy, const N: usize> SmallVec<T, N> {
    /// `n` copies of `v`.
    pub(crate) fn filled(v: T, n: usize) -> Result<Self, kernel::alloc::AllocError> {
        if n <= N {
            Ok(Self::Inline([v; N], n))
        } else {
            Ok(Self::Heap(KVec::from_elem(v, n, GFP_NOIO)?))
        }
    }
}

impl<T: Copy, const N: usize> core::ops::Deref for SmallVec<T, N> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        match self {
            Self::Inline(a, n) => a.get(..*n).unwrap_or_default(),
            Self::Heap(v) => v,
        }
    }
}

impl<T: Copy, const N: usize> core::ops::DerefMut for SmallVec<T, N> {
    fn deref_mut(&mut self) -> &mut [T] {
        match self {
            Self::Inline(a, n) => a.get_mut(..*n).unwrap_or_default(),
            Self::Heap(v) => v,
        }
    }
}
