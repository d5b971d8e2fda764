// SPDX-License-Identifier: GPL-2.0

//! Scatter-gather lists: the borrowed view of a list the kernel owns (a target command's data
//! or bidi buffer) and copies between it and pages.
//!
//! Mainline has since merged a `scatterlist` module of its own (`SGTable`, `SGEntry`) for
//! lists a driver builds and maps for DMA; [`SgList`] covers the other case, a list someone else
//! built, and would become an iteration over its entries on a rebase.
//!
//! C header: [`include/linux/scatterlist.h`](srctree/include/linux/scatterlist.h).

use crate::page::{AsPage, Page, PAGE_SIZE};
use crate::{bindings, error::Result, prelude::*};
use core::{marker::PhantomData, ptr};

/// A command's scatter-gather list.
pub struct SgList<'a> {
    sgl: *mut bindings::scatterlist,
    nents: u32,
    _p: PhantomData<&'a ()>,
}

impl SgList<'_> {
    /// # Safety
    ///
    /// `sgl` must be null or a valid list of `nents` entries for the lifetime of the result.
    pub(crate) unsafe fn new(sgl: *mut bindings::scatterlist, nents: u32) -> Self {
        Self {
            sgl,
            nents: if sgl.is_null() { 0 } else { nents },
            _p: PhantomData,
        }
    }

    /// Whether the list has no entries.
    pub fn is_empty(&self) -> bool {
        self.nents == 0
    }

    /// The total length of the list's entries in bytes.
    pub fn len(&self) -> usize {
        let mut total = 0usize;
        let mut sg = self.sgl;
        for _ in 0..self.nents {
            if sg.is_null() {
                break;
            }
            // SAFETY: `sg` is one of the list's `nents` valid entries (see `new`).
            unsafe {
                total = total.saturating_add((*sg).length as usize);
                sg = bindings::sg_next(sg);
            }
        }
        total
    }

    /// Copies `len` bytes starting `skip` bytes into the list to `page` at offset `off`.
    /// Returns the number of bytes copied (less than `len` if the list is shorter).
    pub fn copy_to_page(&self, skip: usize, page: &Page, off: usize, len: usize) -> Result<usize> {
        self.copy_page(skip, page, off, len, true)
    }

    /// Copies `len` bytes from `page` at offset `off` into the list, starting `skip` bytes in.
    /// Returns the number of bytes copied (less than `len` if the list is shorter).
    pub fn copy_from_page(
        &self,
        skip: usize,
        page: &Page,
        off: usize,
        len: usize,
    ) -> Result<usize> {
        self.copy_page(skip, page, off, len, false)
    }

    /// Copies the first `len` bytes of the list to (`to_pages`) or from a sequence of pages in
    /// one pass: byte `i` of the list goes to byte `i % PAGE_SIZE` of `page(i / PAGE_SIZE)`.
    /// Stops early at the end of the list or when `page` returns `None`; returns the number of
    /// bytes copied. `page` must not sleep (the list's pages are mapped atomically).
    pub fn copy_pages<'p, P: AsPage + 'p>(
        &self,
        len: usize,
        to_pages: bool,
        mut page: impl FnMut(usize) -> Option<&'p P>,
    ) -> usize {
        if self.is_empty() || len == 0 {
            return 0;
        }
        let flags = bindings::SG_MITER_ATOMIC
            | if to_pages {
                bindings::SG_MITER_FROM_SG
            } else {
                bindings::SG_MITER_TO_SG
            };
        let mut miter = core::mem::MaybeUninit::<bindings::sg_mapping_iter>::zeroed();
        let m = miter.as_mut_ptr();
        // SAFETY: `sgl`/`nents` describe a valid list for `'a`; `m` is ours. Every iteration
        // below is ended by `sg_miter_stop`.
        unsafe { bindings::sg_miter_start(m, self.sgl, self.nents, flags) };
        let mut done = 0usize;
        // SAFETY: As above; `sg_miter_next` maps the next chunk at `addr` for `length` bytes.
        'outer: while done < len && unsafe { bindings::sg_miter_next(m) } {
            // SAFETY: Valid after a successful `sg_miter_next`.
            let (addr, mlen) = unsafe { ((*m).addr.cast::<u8>(), (*m).length) };
            let mut at = 0usize;
            while at < mlen && done < len {
                let poff = done % PAGE_SIZE;
                let n = (mlen - at).min(PAGE_SIZE - poff).min(len - done);
                let Some(p) = page(done / PAGE_SIZE) else {
                    break 'outer;
                };
                // SAFETY: `p` is a valid page, mapped for the copy; `poff + n <= PAGE_SIZE`.
                // The chunk `addr + at .. + n` is within the mapped `mlen` bytes. The two
                // ranges do not overlap (kernel page vs. the command's buffers). Local
                // mappings are released in reverse order (ours first).
                unsafe {
                    let pa = bindings::kmap_local_page(p.page_ptr()).cast::<u8>();
                    if to_pages {
                        ptr::copy_nonoverlapping(addr.add(at), pa.add(poff), n);
                    } else {
                        ptr::copy_nonoverlapping(pa.add(poff), addr.add(at), n);
                    }
                    bindings::kunmap_local(pa.cast());
                }
                at += n;
                done += n;
            }
            if !to_pages {
                // SAFETY: `m` is active; only `consumed` is updated (full chunks are the
                // default), so the iterator marks what we wrote as dirty data.
                unsafe { (*m).consumed = at };
            }
        }
        // SAFETY: Started above.
        unsafe { bindings::sg_miter_stop(m) };
        done
    }

    fn copy_page(
        &self,
        skip: usize,
        page: &Page,
        off: usize,
        len: usize,
        to_page: bool,
    ) -> Result<usize> {
        let end = off.checked_add(len).ok_or(EINVAL)?;
        if end > PAGE_SIZE || self.is_empty() {
            return if len == 0 { Ok(0) } else { Err(EINVAL) };
        }
        // SAFETY: `page` is a valid page owned by the caller; it is mapped for the duration of
        // the copy and `off + len` stays within it.
        let n = unsafe {
            let addr = bindings::kmap_local_page(page.as_ptr())
                .cast::<u8>()
                .add(off)
                .cast();
            let n = if to_page {
                bindings::sg_pcopy_to_buffer(self.sgl, self.nents, addr, len, skip as _)
            } else {
                bindings::sg_pcopy_from_buffer(self.sgl, self.nents, addr, len, skip as _)
            };
            bindings::kunmap_local(addr);
            n
        };
        Ok(n)
    }
}
