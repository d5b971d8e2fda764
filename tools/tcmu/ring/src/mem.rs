// SPDX-License-Identifier: GPL-2.0

//! Bounds-checked volatile access to the shared memory region.
//!
//! A [`Region`] is either a `MAP_SHARED` mapping of a UIO device (see
//! [`crate::uio`]) or an owned, zeroed heap buffer (for tests and
//! [`crate::fake::FakeKernel`]). Every accessor checks bounds and alignment
//! and returns [`MemError`] instead of panicking, so offsets read from the
//! shared memory itself can be passed in directly.
//!
//! Scalar accesses are volatile: the kernel writes the mailbox and the ring
//! concurrently. Byte slices ([`Region::slice`], [`Region::slice_mut`]) are
//! only handed out for the data area buffers of in-flight commands, which
//! the kernel does not touch between queueing a command and reaping its
//! completion (it copies Data-Out before queueing and Data-In after the
//! completion).

use core::ptr::NonNull;
use std::fmt;

/// An out-of-bounds or misaligned access to a [`Region`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemError {
    /// Requested offset.
    pub off: u64,
    /// Requested length.
    pub len: u64,
    /// Size of the region.
    pub size: usize,
}

impl fmt::Display for MemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "access of {} bytes at offset {:#x} outside or misaligned in a region of {:#x} bytes",
            self.len, self.off, self.size
        )
    }
}

impl std::error::Error for MemError {}

enum Backing {
    /// Owned heap memory (`Box<[u64]>` leaked with `Box::into_raw`).
    Heap(usize),
    /// A mapping from `mmap`, unmapped on drop.
    Mmap,
}

/// A shared memory region with bounds-checked volatile accessors.
pub struct Region {
    ptr: NonNull<u8>,
    len: usize,
    backing: Backing,
}

// SAFETY: the region owns its memory (heap or mapping); nothing in it is
// tied to a thread.
unsafe impl Send for Region {}

impl fmt::Debug for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Region")
            .field("ptr", &self.ptr)
            .field("len", &self.len)
            .field("mmap", &matches!(self.backing, Backing::Mmap))
            .finish()
    }
}

impl Region {
    /// Allocates a zeroed, 8-byte aligned region of `len` bytes (rounded up
    /// to a multiple of 8).
    pub fn new_zeroed(len: usize) -> Self {
        let words = len.div_ceil(8).max(1);
        let boxed: Box<[u64]> = vec![0u64; words].into_boxed_slice();
        let raw = Box::into_raw(boxed) as *mut u64;
        // SAFETY: `Box::into_raw` never returns null.
        let ptr = unsafe { NonNull::new_unchecked(raw.cast::<u8>()) };
        Region {
            ptr,
            len: words * 8,
            backing: Backing::Heap(words),
        }
    }

    /// Takes ownership of a mapping of `len` bytes at `ptr`.
    ///
    /// # Safety
    ///
    /// `ptr` must be the page-aligned start of a readable and writable
    /// mapping of `len` bytes made with `mmap`, not used by anything else
    /// in this process; it is unmapped when the region is dropped.
    pub unsafe fn from_mmap(ptr: NonNull<u8>, len: usize) -> Self {
        Region {
            ptr,
            len,
            backing: Backing::Mmap,
        }
    }

    /// Size of the region in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the region is empty (never true for a valid TCMU mapping).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Checks that `off..off + len` is inside the region and `off` is a
    /// multiple of `align`; returns `off` as `usize`.
    pub fn check(&self, off: u64, len: u64, align: usize) -> Result<usize, MemError> {
        let err = MemError {
            off,
            len,
            size: self.len,
        };
        let end = off.checked_add(len).ok_or(err)?;
        if end > self.len as u64 || !off.is_multiple_of(align as u64) {
            return Err(err);
        }
        Ok(off as usize)
    }

    fn at<T>(&self, off: u64) -> Result<*mut T, MemError> {
        let off = self.check(off, size_of::<T>() as u64, align_of::<T>())?;
        // The base is at least 8-byte aligned (heap: Box<[u64]>, mmap: page)
        // so an aligned offset gives an aligned pointer.
        // SAFETY: `off + size_of::<T>() <= len`, in bounds of the allocation.
        Ok(unsafe { self.ptr.as_ptr().add(off) }.cast::<T>())
    }

    /// Volatile read of a `u8`.
    pub fn read_u8(&self, off: u64) -> Result<u8, MemError> {
        // SAFETY: in bounds and aligned (checked by `at`).
        Ok(unsafe { self.at::<u8>(off)?.read_volatile() })
    }

    /// Volatile read of a native-endian, naturally aligned `u16`.
    pub fn read_u16(&self, off: u64) -> Result<u16, MemError> {
        // SAFETY: in bounds and aligned (checked by `at`).
        Ok(unsafe { self.at::<u16>(off)?.read_volatile() })
    }

    /// Volatile read of a native-endian, naturally aligned `u32`.
    pub fn read_u32(&self, off: u64) -> Result<u32, MemError> {
        // SAFETY: in bounds and aligned (checked by `at`).
        Ok(unsafe { self.at::<u32>(off)?.read_volatile() })
    }

    /// Volatile read of a native-endian, naturally aligned `u64`.
    pub fn read_u64(&self, off: u64) -> Result<u64, MemError> {
        // SAFETY: in bounds and aligned (checked by `at`).
        Ok(unsafe { self.at::<u64>(off)?.read_volatile() })
    }

    /// Volatile write of a `u8`.
    pub fn write_u8(&mut self, off: u64, v: u8) -> Result<(), MemError> {
        // SAFETY: in bounds and aligned (checked by `at`).
        unsafe { self.at::<u8>(off)?.write_volatile(v) };
        Ok(())
    }

    /// Volatile write of a native-endian, naturally aligned `u16`.
    pub fn write_u16(&mut self, off: u64, v: u16) -> Result<(), MemError> {
        // SAFETY: in bounds and aligned (checked by `at`).
        unsafe { self.at::<u16>(off)?.write_volatile(v) };
        Ok(())
    }

    /// Volatile write of a native-endian, naturally aligned `u32`.
    pub fn write_u32(&mut self, off: u64, v: u32) -> Result<(), MemError> {
        // SAFETY: in bounds and aligned (checked by `at`).
        unsafe { self.at::<u32>(off)?.write_volatile(v) };
        Ok(())
    }

    /// Volatile write of a native-endian, naturally aligned `u64`.
    pub fn write_u64(&mut self, off: u64, v: u64) -> Result<(), MemError> {
        // SAFETY: in bounds and aligned (checked by `at`).
        unsafe { self.at::<u64>(off)?.write_volatile(v) };
        Ok(())
    }

    /// Atomic compare-and-exchange of a naturally aligned `u32` (SeqCst):
    /// stores `new` if the value is `current`. Returns `Ok(previous)` on
    /// success, `Err(actual)` if the value differed.
    ///
    /// Raw access for tools that write where they should not (the fuzzer
    /// puts garbage into `cmd_head` and takes it back only if the kernel
    /// did not overwrite it meanwhile); a handler never needs it.
    pub fn compare_exchange_u32(
        &mut self,
        off: u64,
        current: u32,
        new: u32,
    ) -> Result<Result<u32, u32>, MemError> {
        let p = self.at::<u32>(off)?;
        // SAFETY: in bounds and 4-byte aligned (checked by `at`); the
        // memory is only accessed atomically or volatilely by this process
        // and the kernel.
        let a = unsafe { core::sync::atomic::AtomicU32::from_ptr(p) };
        Ok(a.compare_exchange(
            current,
            new,
            core::sync::atomic::Ordering::SeqCst,
            core::sync::atomic::Ordering::SeqCst,
        ))
    }

    /// Copies `dst.len()` bytes at `off` out of the region (volatile, byte
    /// by byte for the ring; use [`Region::slice`] for bulk data).
    pub fn read_bytes(&self, off: u64, dst: &mut [u8]) -> Result<(), MemError> {
        let start = self.check(off, dst.len() as u64, 1)?;
        for (i, b) in dst.iter_mut().enumerate() {
            // SAFETY: `start + i < start + dst.len() <= len`.
            *b = unsafe { self.ptr.as_ptr().add(start + i).read_volatile() };
        }
        Ok(())
    }

    /// Copies `src` into the region at `off` (volatile, byte by byte).
    pub fn write_bytes(&mut self, off: u64, src: &[u8]) -> Result<(), MemError> {
        let start = self.check(off, src.len() as u64, 1)?;
        for (i, b) in src.iter().enumerate() {
            // SAFETY: `start + i < start + src.len() <= len`.
            unsafe { self.ptr.as_ptr().add(start + i).write_volatile(*b) };
        }
        Ok(())
    }

    /// Fills `len` bytes at `off` with `val` (volatile).
    pub fn fill(&mut self, off: u64, len: u64, val: u8) -> Result<(), MemError> {
        let start = self.check(off, len, 1)?;
        for i in 0..len as usize {
            // SAFETY: `start + i < start + len <= self.len`.
            unsafe { self.ptr.as_ptr().add(start + i).write_volatile(val) };
        }
        Ok(())
    }

    /// A byte slice of the region, for data buffers.
    ///
    /// Only meant for parts of the mapping nobody else writes while the
    /// slice lives (the data area buffers of in-flight commands).
    pub fn slice(&self, off: u64, len: u64) -> Result<&[u8], MemError> {
        let start = self.check(off, len, 1)?;
        // SAFETY: in bounds; u8 has no alignment or validity requirements;
        // the `&self` borrow prevents mutable access through this region
        // while the slice lives.
        Ok(unsafe { core::slice::from_raw_parts(self.ptr.as_ptr().add(start), len as usize) })
    }

    /// A mutable byte slice of the region, for data buffers (see
    /// [`Region::slice`]).
    pub fn slice_mut(&mut self, off: u64, len: u64) -> Result<&mut [u8], MemError> {
        let start = self.check(off, len, 1)?;
        // SAFETY: in bounds; the `&mut self` borrow makes the slice the only
        // access through this region while it lives.
        Ok(unsafe { core::slice::from_raw_parts_mut(self.ptr.as_ptr().add(start), len as usize) })
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        match self.backing {
            Backing::Heap(words) => {
                let raw =
                    core::ptr::slice_from_raw_parts_mut(self.ptr.as_ptr().cast::<u64>(), words);
                // SAFETY: created by `Box::into_raw` of a `Box<[u64]>` of
                // `words` elements in `new_zeroed`, freed only here.
                drop(unsafe { Box::from_raw(raw) });
            }
            Backing::Mmap => {
                // SAFETY: the caller of `from_mmap` handed us the mapping.
                unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_and_alignment() {
        let mut r = Region::new_zeroed(64);
        assert_eq!(r.len(), 64);
        r.write_u32(60, 0xdead_beef).unwrap();
        assert_eq!(r.read_u32(60).unwrap(), 0xdead_beef);
        assert!(r.read_u32(61).is_err());
        assert!(r.read_u32(62).is_err());
        assert!(r.read_u64(60).is_err());
        assert!(r.read_u64(u64::MAX - 3).is_err());
        assert!(r.read_u8(64).is_err());
        assert!(r.slice(0, 65).is_err());
        assert!(r.slice(u64::MAX, 2).is_err());
        assert_eq!(r.slice(64, 0).unwrap().len(), 0);
        r.write_bytes(1, &[1, 2, 3]).unwrap();
        let mut b = [0u8; 4];
        r.read_bytes(0, &mut b).unwrap();
        assert_eq!(b, [0, 1, 2, 3]);
        r.fill(0, 4, 9).unwrap();
        assert_eq!(r.slice(0, 4).unwrap(), &[9, 9, 9, 9]);
        r.slice_mut(8, 2).unwrap().copy_from_slice(&[7, 8]);
        assert_eq!(r.read_u16(8).unwrap(), u16::from_ne_bytes([7, 8]));
        r.write_u32(16, 5).unwrap();
        assert_eq!(r.compare_exchange_u32(16, 5, 6).unwrap(), Ok(5));
        assert_eq!(r.compare_exchange_u32(16, 5, 7).unwrap(), Err(6));
        assert_eq!(r.read_u32(16).unwrap(), 6);
        assert!(r.compare_exchange_u32(18, 0, 1).is_err());
        assert!(r.compare_exchange_u32(64, 0, 1).is_err());
    }

    #[test]
    fn rounds_up() {
        assert_eq!(Region::new_zeroed(0).len(), 8);
        assert_eq!(Region::new_zeroed(9).len(), 16);
    }
}
