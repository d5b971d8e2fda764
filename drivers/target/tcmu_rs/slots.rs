// SPDX-License-Identifier: GPL-2.0

//! A small unordered collection whose freed slots are reused (6.12's `KVec` cannot remove
//! an element): the reclaimer's ring list and the netlink reply waiters.

use kernel::prelude::*;

/// Elements in slots of a vector; `remove_where` empties slots, `add` refills the first
/// empty one before growing.
pub(crate) struct Slots<T>(KVec<Option<T>>);

impl<T> Slots<T> {
    pub(crate) const fn new() -> Self {
        Self(KVec::new())
    }

    /// Adds `v` in the first free slot, or at the end.
    pub(crate) fn add(&mut self, v: T, flags: kernel::alloc::Flags) -> Result {
        if let Some(slot) = self.0.iter_mut().find(|s| s.is_none()) {
            *slot = Some(v);
            return Ok(());
        }
        Ok(self.0.push(Some(v), flags)?)
    }

    /// Drops the elements for which `f` is true.
    pub(crate) fn remove_where(&mut self, mut f: impl FnMut(&T) -> bool) {
        for slot in self.0.iter_mut() {
            if slot.as_ref().is_some_and(&mut f) {
                *slot = None;
            }
        }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> {
        self.0.iter().flatten()
    }

    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.0.iter_mut().flatten()
    }
}
