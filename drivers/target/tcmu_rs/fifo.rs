// SPDX-License-Identifier: GPL-2.0

//! A first-in first-out queue on a ring buffer: the commands waiting for ring space, the TMR
//! notifications waiting for room and the deferred Data-In copies.
//!
//! Its storage is bounded by the longest the queue has been (at most twice that): a queue that
//! stays non-empty under steady load reuses its slots instead of growing (6.12's `KVec` cannot
//! remove from the front, and a queue that only appended grew by a slot per command for as
//! long as it never emptied).

use kernel::{
    alloc::{flags::GFP_NOIO, AllocError},
    prelude::*,
};

/// Capacity of the first allocation.
const MIN_CAPACITY: usize = 8;
/// An empty queue holding more slots than this gives its storage back at the next push.
const SHRINK_ABOVE: usize = 256;

/// A FIFO queue.
///
/// # Invariants
///
/// `head < slots.len()` unless `slots` is empty; `len <= slots.len()`; the `len` slots from
/// `head` on (wrapping around) are `Some`, all others `None`.
pub(crate) struct Fifo<T> {
    slots: KVec<Option<T>>,
    head: usize,
    len: usize,
}

impl<T> Fifo<T> {
    pub(crate) const fn new() -> Self {
        // INVARIANT: No slots, nothing queued.
        Self {
            slots: KVec::new(),
            head: 0,
            len: 0,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The number of slots allocated.
    pub(crate) fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// The index of the `i`-th slot from `head`.
    fn index(&self, i: usize) -> usize {
        self.head
            .wrapping_add(i)
            .checked_rem(self.slots.len())
            .unwrap_or(0)
    }

    /// Moves the queue into new storage of `cap` slots, oldest first at slot 0.
    fn regrow(&mut self, cap: usize) -> Result<(), AllocError> {
        let mut slots = KVec::with_capacity(cap, GFP_NOIO)?;
        while let Some(v) = self.pop() {
            // Cannot fail: `cap` >= the number of elements, reserved above.
            let _ = slots.push(Some(v), GFP_NOIO);
        }
        while slots.len() < cap {
            let _ = slots.push(None, GFP_NOIO);
        }
        // INVARIANT: The elements are in slots `0..len`, in order; the rest are `None`.
        self.len = slots.iter().take_while(|s| s.is_some()).count();
        self.slots = slots;
        self.head = 0;
        Ok(())
    }

    /// Appends `v`; on allocation failure gives it back.
    pub(crate) fn try_push(&mut self, v: T) -> Result<(), T> {
        if self.len == 0 && self.slots.len() > SHRINK_ABOVE {
            self.slots = KVec::new();
            self.head = 0;
        }
        if self.len >= self.slots.len() {
            let cap = self.slots.len().saturating_mul(2).max(MIN_CAPACITY);
            if self.regrow(cap).is_err() {
                return Err(v);
            }
        }
        let i = self.index(self.len);
        match self.slots.get_mut(i) {
            Some(slot @ None) => {
                // INVARIANT: `i` is the first free slot after the queued ones.
                *slot = Some(v);
                self.len += 1;
                Ok(())
            }
            _ => Err(v),
        }
    }

    /// Appends `v`; on allocation failure `v` is dropped.
    pub(crate) fn push(&mut self, v: T) -> Result<(), AllocError> {
        self.try_push(v).map_err(|_| AllocError)
    }

    /// Removes the oldest element.
    pub(crate) fn pop(&mut self) -> Option<T> {
        if self.len == 0 {
            return None;
        }
        let v = self.slots.get_mut(self.head)?.take()?;
        // INVARIANT: The slot at `head` was the oldest; the next one is now.
        self.head = self.index(1);
        self.len -= 1;
        Some(v)
    }

    /// Puts `v` back at the front (after a failed retry of what `pop` returned). Drops it if
    /// there is no room, which cannot happen right after a `pop`.
    pub(crate) fn unpop(&mut self, v: T) {
        if self.len >= self.slots.len() {
            return;
        }
        let i = self.index(self.slots.len().wrapping_sub(1));
        if let Some(slot @ None) = self.slots.get_mut(i) {
            // INVARIANT: `i` is the free slot just before `head`.
            *slot = Some(v);
            self.head = i;
            self.len += 1;
        }
    }

    /// Removes the elements for which `f` is true, keeping the order of the others, and
    /// passes each to `done`.
    pub(crate) fn take_where(&mut self, mut f: impl FnMut(&T) -> bool, mut done: impl FnMut(T)) {
        // Each element goes round once: popped, then appended again unless taken. The
        // append reuses the slot just freed, so it never allocates.
        for _ in 0..self.len {
            let Some(v) = self.pop() else { break };
            if f(&v) {
                done(v);
            } else if let Err(v) = self.try_push(v) {
                done(v);
            }
        }
    }

    /// The two runs of slots in queue order (from `head` to the end, then from the start).
    fn runs(&self) -> (&[Option<T>], &[Option<T>]) {
        let (front, back) = self.slots.split_at(self.head.min(self.slots.len()));
        (back, front)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> {
        let (a, b) = self.runs();
        // Slots outside the queued range are `None` (see the invariants).
        Iterator::chain(a.iter(), b.iter()).flatten()
    }

    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = &mut T> {
        let head = self.head.min(self.slots.len());
        let (front, back) = self.slots.split_at_mut(head);
        Iterator::chain(back.iter_mut(), front.iter_mut()).flatten()
    }
}

#[kunit_tests(tcmu_rs_fifo)]
mod tests {
    use super::*;

    /// Pushes and pops 10^6 elements with up to 100 queued: the storage stays bounded.
    #[test]
    fn bounded() {
        let mut q = Fifo::new();
        let (mut next_in, mut next_out) = (0u32, 0u32);
        let mut ordered = true;
        while next_in < 1_000_000 {
            for _ in 0..(next_in % 100 + 1) {
                if q.push(next_in).is_err() {
                    assert!(false, "push");
                    return;
                }
                next_in += 1;
            }
            while q.len() > 50 {
                ordered &= q.pop() == Some(next_out);
                next_out += 1;
            }
        }
        while let Some(v) = q.pop() {
            ordered &= v == next_out;
            next_out += 1;
        }
        assert!(ordered);
        assert_eq!(next_out, next_in);
        assert!(q.capacity() <= 256);
    }

    /// `unpop` restores the front; `take_where` keeps the order of what it leaves; iteration
    /// follows the queue across the wrap of the ring buffer.
    #[test]
    fn order() {
        let mut q = Fifo::new();
        for i in 0..6u32 {
            let _ = q.push(i);
        }
        // Wrap: 0..4 out, 6..10 in (capacity 8).
        for _ in 0..4 {
            let _ = q.pop();
        }
        for i in 6..10u32 {
            let _ = q.push(i);
        }
        assert_eq!(q.capacity(), MIN_CAPACITY);
        let v = q.pop();
        assert_eq!(v, Some(4));
        q.unpop(4);
        let mut taken = 0;
        q.take_where(|v| v % 2 == 1, |_| taken += 1);
        assert_eq!(taken, 3);
        let in_order = {
            let mut it = q.iter();
            it.next() == Some(&4)
                && it.next() == Some(&6)
                && it.next() == Some(&8)
                && it.next().is_none()
        };
        assert!(in_order);
        for v in q.iter_mut() {
            *v += 1;
        }
        assert_eq!(q.pop(), Some(5));
        assert_eq!(q.len(), 2);
    }
}
