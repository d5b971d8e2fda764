// SPDX-License-Identifier: GPL-2.0

//! Userspace I/O (UIO) devices whose memory is shared with a userspace driver.
//!
//! A driver implements [`Operations`] and creates a [`Registration`]: that adds `/dev/uioN`
//! with one map (`map0`) of [`Operations::map_pages`] pages. Userspace `mmap()`s it; each page
//! is supplied on first touch by [`Operations::fault`], typically from a [`SharedArea`]
//! (`vmalloc` memory) or from driver-owned [`Page`]s. Every mapping holds a reference to the
//! driver data, so the memory it shows stays alive until the last mapping is gone, even after
//! the registration is dropped.
//!
//! Memory shared with userspace can change at any time: [`SharedArea`] only offers volatile,
//! bounds-checked accessors and never hands out references into it.
//!
//! C header: [`include/linux/uio_driver.h`](srctree/include/linux/uio_driver.h)

use crate::{
    alloc::AllocError,
    bindings,
    error::{from_result, to_result, Error, Result},
    ffi::{c_int, c_void},
    init::PinInit,
    new_mutex,
    page::{Page, PageRef, PAGE_SIZE},
    prelude::*,
    str::{CStr, CString},
    sync::{Arc, ArcBorrow, Mutex},
    types::Opaque,
    ThisModule,
};
use core::ptr::{self, NonNull};

/// A page handed to the memory manager to satisfy a fault: a reference to the page and, if
/// made by [`FaultPage::locked`], its page lock.
pub struct FaultPage {
    page: PageRef,
    locked: bool,
}

impl FaultPage {
    /// Takes a new reference to `page`.
    pub fn from_page(page: &Page) -> Self {
        Self {
            page: PageRef::new(page),
            locked: false,
        }
    }

    /// Takes a new reference to `page` and locks it (may sleep). The memory manager unlocks
    /// it once the page is mapped, so [`wait_for_fault`] on the page returns only after that:
    /// a driver that takes pages back calls it before it unmaps them, and no fault that
    /// found the page before can map it after the unmap.
    pub fn locked(page: &Page) -> Self {
        let mut fp = Self::from_page(page);
        // SAFETY: We hold a reference to the page; process context (a fault handler).
        unsafe { bindings::lock_page(fp.page.as_ptr()) };
        fp.locked = true;
        fp
    }

    /// The page, with its reference (and lock, if locked) given up to the memory manager.
    fn into_raw(self) -> (*mut bindings::page, bool) {
        let this = core::mem::ManuallyDrop::new(self);
        // SAFETY: `this` is never used or dropped again: the reference moves out once.
        let page = unsafe { ptr::read(&this.page) };
        (page.into_raw().as_ptr(), this.locked)
    }
}

impl Drop for FaultPage {
    fn drop(&mut self) {
        if self.locked {
            // SAFETY: We locked the page in `locked` and still hold a reference to it.
            unsafe { bindings::unlock_page(self.page.as_ptr()) };
        }
        // `self.page` puts its reference.
    }
}

/// Waits until a fault that took `page` with [`FaultPage::locked`] has mapped it (takes and
/// drops the page lock). May sleep.
pub fn wait_for_fault(page: &Page) {
    let p = page.as_ptr();
    // SAFETY: `page` is a live page; locking and unlocking it at once has no other effect.
    unsafe {
        bindings::lock_page(p);
        bindings::unlock_page(p);
    }
}

/// Zeroed `vmalloc` memory of a whole number of pages, meant to be shared with userspace.
///
/// Accessors are volatile and bounds-checked; values read may have been written by an
/// untrusted process and must be validated by the caller.
///
/// # Examples
///
/// An offset the other side chose cannot reach past the area: out-of-bounds, misaligned and
/// overflowing accesses are refused.
///
/// ```
/// use kernel::{page::PAGE_SIZE, uio::SharedArea};
///
/// let area = SharedArea::new(1)?;
/// assert_eq!(area.len(), PAGE_SIZE);
/// assert_eq!(area.read_u32(0), Some(0));
/// assert!(area.write_u32(PAGE_SIZE - 4, 7).is_some());
/// assert_eq!(area.read_u32(PAGE_SIZE - 4), Some(7));
/// assert_eq!(area.read_u32(PAGE_SIZE), None);
/// assert_eq!(area.read_u32(PAGE_SIZE - 2), None);
/// assert_eq!(area.read_u32(1), None);
/// assert_eq!(area.read_u64(usize::MAX), None);
/// # Ok::<(), Error>(())
/// ```
pub struct SharedArea {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: The memory is only accessed through volatile accesses, never through references.
unsafe impl Send for SharedArea {}
// SAFETY: As above; concurrent volatile accesses are the point of shared memory.
unsafe impl Sync for SharedArea {}

macro_rules! shared_rw {
    ($read:ident, $write:ident, $t:ty) => {
        /// Reads a value of this type at byte offset `off` (naturally aligned).
        pub fn $read(&self, off: usize) -> Option<$t> {
            let p = self.at(off, core::mem::size_of::<$t>())?.cast::<$t>();
            // SAFETY: `at` checked bounds and alignment; the area is live.
            Some(unsafe { ptr::read_volatile(p) })
        }

        /// Writes a value of this type at byte offset `off` (naturally aligned).
        pub fn $write(&self, off: usize, v: $t) -> Option<()> {
            let p = self.at(off, core::mem::size_of::<$t>())?.cast::<$t>();
            // SAFETY: `at` checked bounds and alignment; the area is live.
            unsafe { ptr::write_volatile(p, v) };
            Some(())
        }
    };
}

impl SharedArea {
    /// Allocates `pages` zeroed pages of `vmalloc` memory.
    pub fn new(pages: usize) -> Result<Self, AllocError> {
        let len = pages.checked_mul(PAGE_SIZE).ok_or(AllocError)?;
        if len == 0 {
            return Err(AllocError);
        }
        // SAFETY: FFI call without safety requirements.
        let p = unsafe { bindings::vzalloc_noprof(len as _) };
        Ok(Self {
            ptr: NonNull::new(p.cast()).ok_or(AllocError)?,
            len,
        })
    }

    /// The size in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the area is empty (never: areas have at least one page).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn at(&self, off: usize, size: usize) -> Option<*mut u8> {
        let end = off.checked_add(size)?;
        if end > self.len || off % size.clamp(1, 8) != 0 {
            return None;
        }
        // SAFETY: `off < len`, so the result is within the allocation.
        Some(unsafe { self.ptr.as_ptr().add(off) })
    }

    shared_rw!(read_u8, write_u8, u8);
    shared_rw!(read_u16, write_u16, u16);
    shared_rw!(read_u32, write_u32, u32);
    shared_rw!(read_u64, write_u64, u64);

    /// Whether `off..off + len` lies within the area (and does not overflow).
    fn fits(&self, off: usize, len: usize) -> bool {
        off.checked_add(len).is_some_and(|end| end <= self.len)
    }

    /// Copies `src` to byte offset `off`.
    pub fn write_bytes(&self, off: usize, src: &[u8]) -> Option<()> {
        let p = self.at(off, 1).filter(|_| self.fits(off, src.len()))?;
        // SAFETY: Bounds checked above; `src` cannot overlap memory we own exclusively.
        unsafe { ptr::copy_nonoverlapping(src.as_ptr(), p, src.len()) };
        Some(())
    }

    /// Copies bytes at offset `off` into `dst`.
    pub fn read_bytes(&self, off: usize, dst: &mut [u8]) -> Option<()> {
        let p = self.at(off, 1).filter(|_| self.fits(off, dst.len()))?;
        // SAFETY: Bounds checked above.
        unsafe { ptr::copy_nonoverlapping(p, dst.as_mut_ptr(), dst.len()) };
        Some(())
    }

    /// Zeroes `len` bytes at offset `off`.
    pub fn zero(&self, off: usize, len: usize) -> Option<()> {
        let p = self.at(off, 1).filter(|_| self.fits(off, len))?;
        // SAFETY: Bounds checked above.
        unsafe { ptr::write_bytes(p, 0, len) };
        Some(())
    }

    /// The page at page index `pgoff`, for a fault handler.
    pub fn fault_page(&self, pgoff: usize) -> Option<FaultPage> {
        let p = self.at(pgoff.checked_mul(PAGE_SIZE)?, 1)?;
        // SAFETY: `p` is inside this vmalloc area.
        let page = unsafe { bindings::vmalloc_to_page(p.cast()) };
        let page = NonNull::new(page)?;
        Some(FaultPage {
            // SAFETY: The page belongs to this live vmalloc area.
            page: unsafe { PageRef::get(page) },
            locked: false,
        })
    }
}

impl Drop for SharedArea {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from `vzalloc`. Pages still mapped by a process hold their own
        // reference, so they are freed only when unmapped.
        unsafe { bindings::vfree(self.ptr.as_ptr().cast()) };
    }
}

/// Callbacks of a UIO device. They are called in process context.
pub trait Operations: Send + Sync + Sized + 'static {
    /// `open()` of `/dev/uioN`.
    fn open(&self) -> Result {
        Ok(())
    }

    /// Last `close()` of `/dev/uioN` (not called once the registration is gone). `this`
    /// borrows the registration's `Arc`, as in [`Operations::irqcontrol`].
    fn release(_this: ArcBorrow<'_, Self>) {}

    /// Where the registration records the file mappings of the process that has the device
    /// open, for [`OpenMapping::unmap`]; `None` (the default) if the driver never unmaps.
    fn open_mapping(&self) -> Option<&OpenMapping> {
        None
    }

    /// A write of a 32-bit value to `/dev/uioN`. `notifier` wakes up readers of the device.
    /// `this` borrows the registration's `Arc`, so the driver can take a reference (to queue
    /// work, say).
    fn irqcontrol(this: ArcBorrow<'_, Self>, notifier: &Notifier, value: i32) -> Result;

    /// Where the registration records its device for [`Waker::notify`]; `None` (the default)
    /// if the driver only wakes up readers from callbacks or through the [`Registration`].
    fn waker(&self) -> Option<&Waker> {
        None
    }

    /// The exact number of pages of map 0; `mmap()` of any other size fails.
    fn map_pages(&self) -> usize;

    /// Supplies page `pgoff` of map 0 to a process touching it for the first time; `None`
    /// sends it `SIGBUS`.
    fn fault(&self, pgoff: usize) -> Option<FaultPage>;
}

/// The address space of an open `/dev/uioN`, through which a driver takes pages back from the
/// process that mapped them (`unmap_mapping_range()`): its next access faults again.
///
/// A driver embeds one in its [`Operations`] data and returns it from
/// [`Operations::open_mapping`]; the registration records the address space at a successful
/// `open()` and forgets it at `release()`. Mappings keep the file open, so every mapping of
/// the device is reachable through it while it is recorded.
#[pin_data]
pub struct OpenMapping {
    #[pin]
    mapping: Mutex<MappingPtr>,
}

/// The recorded address space, and whether recording has stopped for good.
struct MappingPtr(*mut bindings::address_space, bool);

// SAFETY: Only used under the mutex, between `open()` and `release()` of the file, while the
// inode (and its address space) is pinned by that open file.
unsafe impl Send for MappingPtr {}

impl OpenMapping {
    /// Nothing recorded.
    pub fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            mapping <- new_mutex!(MappingPtr(ptr::null_mut(), false), "uio::OpenMapping"),
        })
    }

    fn set(&self, m: *mut bindings::address_space) {
        let mut g = self.mapping.lock();
        if !g.1 {
            g.0 = m;
        }
    }

    /// Forgets the address space and records no other: the registration is going away, after
    /// which `release()` of a file still open is not reported and its inode may go.
    fn close(&self) {
        *self.mapping.lock() = MappingPtr(ptr::null_mut(), true);
    }

    /// Removes the process's mappings of bytes `offset..offset + len` of map 0 (`len` 0: to
    /// the end), so that its next access to them goes to [`Operations::fault`] again. Does
    /// nothing if the device is not open.
    ///
    /// Sleeps; may be called with driver locks held that the fault path also takes, as the
    /// memory manager's locks are not held around [`Operations::fault`] in a way that waits
    /// for this (it takes the mapping's `i_mmap` lock, not the faulting process's `mmap_lock`).
    pub fn unmap(&self, offset: u64, len: u64) {
        let m = self.mapping.lock();
        if m.0.is_null() {
            return;
        }
        let (Ok(off), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
            return;
        };
        // SAFETY: `m.0` is the address space of the inode of the open file (see `MappingPtr`);
        // the lock keeps `release_cb` from clearing it meanwhile.
        unsafe { bindings::unmap_mapping_range(m.0, off, len, 1) };
    }
}

/// Wakes up processes waiting on a UIO device from code that has neither a callback's
/// [`Notifier`] nor the [`Registration`] (a work item of the driver data, say).
///
/// A driver embeds one in its [`Operations`] data and returns it from [`Operations::waker`];
/// the registration records its device in it once registered and forgets it before it
/// unregisters, after which [`Waker::notify`] does nothing.
///
/// Its lock is taken innermost: call [`Waker::notify`] with any driver lock held or none.
#[pin_data]
pub struct Waker {
    #[pin]
    info: Mutex<InfoPtr>,
}

struct InfoPtr(*mut bindings::uio_info);

// SAFETY: Only used under the mutex, while the device is registered (see `Waker`).
unsafe impl Send for InfoPtr {}

impl Waker {
    /// Nothing recorded.
    pub fn new() -> impl PinInit<Self> {
        pin_init!(Self { info <- new_mutex!(InfoPtr(ptr::null_mut()), "uio::Waker") })
    }

    fn set(&self, info: *mut bindings::uio_info) {
        self.info.lock().0 = info;
    }

    /// Wakes up processes waiting in `read()`/`poll()` on `/dev/uioN`, if it is registered.
    pub fn notify(&self) {
        let info = self.info.lock();
        if !info.0.is_null() {
            // SAFETY: Recorded after a successful registration; the registration clears it
            // under this lock before it unregisters the device.
            unsafe { bindings::uio_event_notify(info.0) };
        }
    }
}

/// Wakes up processes waiting on a UIO device; only lent to callbacks, during the call.
pub struct Notifier(*mut bindings::uio_info);

impl Notifier {
    /// Wakes up processes waiting in `read()`/`poll()` on `/dev/uioN`.
    pub fn notify(&self) {
        // SAFETY: A `Notifier` only exists during a callback of a registered device.
        unsafe { bindings::uio_event_notify(self.0) };
    }
}

/// The parent device of UIO devices: a root device under `/sys/devices/<name>`.
pub struct RootDevice(NonNull<bindings::device>);

// SAFETY: The device core handles its own locking.
unsafe impl Send for RootDevice {}
// SAFETY: As above.
unsafe impl Sync for RootDevice {}

impl RootDevice {
    /// Registers root device `name`, owned by `module`.
    pub fn new(name: &'static CStr, module: &'static ThisModule) -> Result<Self> {
        // SAFETY: `name` is a valid C string that outlives the device.
        let dev = unsafe { bindings::__root_device_register(name.as_char_ptr(), module.as_ptr()) };
        let dev = crate::error::from_err_ptr(dev)?;
        Ok(Self(NonNull::new(dev).ok_or(ENOMEM)?))
    }
}

impl Drop for RootDevice {
    fn drop(&mut self) {
        // SAFETY: Registered in `new`.
        unsafe { bindings::root_device_unregister(self.0.as_ptr()) };
    }
}

/// A registered UIO device (`/dev/uioN`). Dropping it unregisters the device; mappings that
/// remain keep the driver data alive.
#[pin_data(PinnedDrop)]
pub struct Registration<T: Operations> {
    #[pin]
    info: Opaque<bindings::uio_info>,
    /// The name `info` points to; replaced under the UIO device's `info_lock`.
    name: core::cell::UnsafeCell<CString>,
    data: Arc<T>,
}

// SAFETY: The UIO core serialises its use of `info`; `T` is `Send + Sync`.
unsafe impl<T: Operations> Send for Registration<T> {}
// SAFETY: As above.
unsafe impl<T: Operations> Sync for Registration<T> {}

impl<T: Operations> Registration<T> {
    /// Registers a UIO device called `name` (shown in `/sys/class/uio/uioN/name`) with driver
    /// version `version`, one map called `map_name` of `data.map_pages()` pages, under `parent`.
    pub fn new(
        parent: &RootDevice,
        module: &'static ThisModule,
        name: CString,
        version: &'static CStr,
        map_name: &'static CStr,
        data: Arc<T>,
    ) -> impl PinInit<Self, Error> {
        let parent = parent.0.as_ptr();
        let name_ptr = name.as_char_ptr();
        let raw = Arc::into_raw(data);
        // SAFETY: Undoes `into_raw` right away; we only wanted the pointer.
        let data = unsafe { Arc::from_raw(raw) };
        let priv_ = raw.cast_mut().cast::<c_void>();
        let size = data.map_pages() * PAGE_SIZE;
        try_pin_init!(Self {
            name: core::cell::UnsafeCell::new(name),
            data,
            info <- Self::register(parent, module, name_ptr, version, map_name, priv_, size),
        }? Error)
    }

    fn register(
        parent: *mut bindings::device,
        module: &'static ThisModule,
        name: *const crate::ffi::c_char,
        version: &'static CStr,
        map_name: &'static CStr,
        priv_: *mut c_void,
        size: usize,
    ) -> impl PinInit<Opaque<bindings::uio_info>, Error> {
        // SAFETY: The closure fully initialises the `uio_info` in place before registering it
        // and returns an error (leaving nothing registered) if registration fails.
        unsafe {
            crate::init::pin_init_from_closure(move |slot: *mut Opaque<bindings::uio_info>| {
                let info = Opaque::raw_get(slot);
                info.write_bytes(0, 1);
                (*info).name = name;
                (*info).version = version.as_char_ptr();
                (*info).mem[0].name = map_name.as_char_ptr();
                (*info).mem[0].size = size as _;
                (*info).mem[0].memtype = bindings::UIO_MEM_NONE as _;
                (*info).irq = bindings::UIO_IRQ_CUSTOM as _;
                (*info).priv_ = priv_;
                (*info).mmap = Some(mmap_cb::<T>);
                (*info).open = Some(open_cb::<T>);
                (*info).release = Some(release_cb::<T>);
                (*info).irqcontrol = Some(irqcontrol_cb::<T>);
                to_result(bindings::__uio_register_device(
                    module.as_ptr(),
                    parent,
                    info,
                ))?;
                // `priv_` is the driver data (see `new`), alive as long as the registration.
                if let Some(w) = (*priv_.cast::<T>()).waker() {
                    w.set(info);
                }
                Ok(())
            })
        }
    }

    /// The driver data.
    pub fn data(&self) -> &Arc<T> {
        &self.data
    }

    /// Runs `f` with the UIO core's lock of this device (`info_lock`), which it holds while it
    /// reads `info` (e.g. for `/sys/class/uio/uioN/name`).
    fn with_info_lock<R>(&self, f: impl FnOnce() -> R) -> R {
        // SAFETY: `uio_dev` is set at registration and valid for the lifetime of `self`.
        let lock = unsafe { ptr::addr_of_mut!((*(*self.info.get()).uio_dev).info_lock) };
        // SAFETY: `lock` is the initialised mutex of the live UIO device.
        unsafe { bindings::mutex_lock(lock) };
        let r = f();
        // SAFETY: Locked above.
        unsafe { bindings::mutex_unlock(lock) };
        r
    }

    /// A copy of the UIO device name.
    pub fn name(&self) -> Result<CString> {
        self.with_info_lock(|| {
            // SAFETY: The name is only replaced under `info_lock`, which we hold.
            let name = unsafe { &*self.name.get() };
            CString::try_from_fmt(crate::fmt!("{}", &**name))
        })
    }

    /// Renames the UIO device (`/sys/class/uio/uioN/name`), as the C module does when the
    /// device's configuration string changes.
    pub fn set_name(&self, name: CString) {
        let old = self.with_info_lock(|| {
            // SAFETY: `info` is registered; the UIO core reads `name` under `info_lock`, held.
            unsafe { (*self.info.get()).name = name.as_char_ptr() };
            // SAFETY: As in `name`.
            core::mem::replace(unsafe { &mut *self.name.get() }, name)
        });
        drop(old);
    }

    /// The minor number N of `/dev/uioN`.
    pub fn minor(&self) -> u32 {
        // SAFETY: `uio_dev` is set by the UIO core during registration and stays valid until
        // `uio_unregister_device`, i.e. for the lifetime of `self`.
        unsafe { (*(*self.info.get()).uio_dev).minor as u32 }
    }

    /// Wakes up processes waiting in `read()`/`poll()` on `/dev/uioN`.
    pub fn notify(&self) {
        // SAFETY: `info` is registered for the lifetime of `self`.
        unsafe { bindings::uio_event_notify(self.info.get()) };
    }

    /// Whether a process sleeps in `read()`/`poll()` on `/dev/uioN` right now (the UIO wait
    /// queue is not empty, as `waitqueue_active()`). A hint only: it can change at once.
    pub fn has_waiters(&self) -> bool {
        // SAFETY: `uio_dev` is set at registration and valid for the lifetime of `self`; the
        // wait queue head is initialised by the UIO core and lives as long as the device.
        let head = unsafe { ptr::addr_of!((*(*self.info.get()).uio_dev).wait.head) };
        // SAFETY: `head` is a live list head; its `next` pointer is read without the queue's
        // lock, as `waitqueue_active()` does with `READ_ONCE()`.
        let next = unsafe { ptr::read_volatile(ptr::addr_of!((*head).next)) };
        !ptr::eq(next.cast_const(), head)
    }
}

#[pinned_drop]
impl<T: Operations> PinnedDrop for Registration<T> {
    fn drop(self: Pin<&mut Self>) {
        // No wake-ups through the driver data from here on.
        if let Some(w) = self.data.waker() {
            w.set(ptr::null_mut());
        }
        // `release_cb` is not called for a file closed after the unregistration, whose inode
        // may then be freed: forget its mapping before, for good (a racing `open_cb` cannot
        // record it again).
        if let Some(om) = self.data.open_mapping() {
            om.close();
        }
        // SAFETY: Registered in `new`. After this returns the UIO core makes no more calls
        // through `info`.
        unsafe { bindings::uio_unregister_device(self.info.get()) };
    }
}

/// # Safety
///
/// `info` must be the `uio_info` of a live `Registration<T>`.
unsafe fn data_of<'a, T: Operations>(info: *mut bindings::uio_info) -> &'a T {
    // SAFETY: `priv_` points to the `T` inside the registration's `Arc`.
    unsafe { &*(*info).priv_.cast::<T>() }
}

/// `uio_info::open`.
///
/// # Safety
///
/// `info` is the `uio_info` of a device registered by this abstraction, still registered, and
/// `inode` the inode being opened.
unsafe extern "C" fn open_cb<T: Operations>(
    info: *mut bindings::uio_info,
    inode: *mut bindings::inode,
) -> c_int {
    // SAFETY: The UIO core calls this only while the registration exists.
    let data = unsafe { data_of::<T>(info) };
    from_result(|| {
        data.open()?;
        if let Some(om) = data.open_mapping() {
            // SAFETY: `inode` is the inode of the file being opened; it stays valid until the
            // file's release, where `release_cb` forgets it.
            om.set(unsafe { (*inode).i_mapping });
        }
        Ok(0)
    })
}

/// `uio_info::release`.
///
/// # Safety
///
/// As for [`open_cb`], for a file that [`open_cb`] let open.
unsafe extern "C" fn release_cb<T: Operations>(
    info: *mut bindings::uio_info,
    _: *mut bindings::inode,
) -> c_int {
    // SAFETY: As in `irqcontrol_cb`.
    let data = unsafe { ArcBorrow::from_raw((*info).priv_.cast::<T>().cast_const()) };
    if let Some(om) = data.open_mapping() {
        om.set(ptr::null_mut());
    }
    T::release(data);
    0
}

/// `uio_info::irqcontrol` (a write to the device).
///
/// # Safety
///
/// As for [`open_cb`].
unsafe extern "C" fn irqcontrol_cb<T: Operations>(info: *mut bindings::uio_info, v: i32) -> c_int {
    // SAFETY: As in `open_cb`: `priv_` is the pointer `Arc::into_raw` gave for the
    // registration's `Arc`, which outlives this call.
    let data = unsafe { ArcBorrow::from_raw((*info).priv_.cast::<T>().cast_const()) };
    let notifier = Notifier(info);
    from_result(|| T::irqcontrol(data, &notifier, v).map(|()| 0))
}

struct VmOps<T>(core::marker::PhantomData<T>);

impl<T: Operations> VmOps<T> {
    const OPS: bindings::vm_operations_struct = bindings::vm_operations_struct {
        open: Some(vma_open_cb::<T>),
        close: Some(vma_close_cb::<T>),
        fault: Some(fault_cb::<T>),
        // SAFETY: All-zero is the "no callback" value of every other field.
        ..unsafe { core::mem::MaybeUninit::zeroed().assume_init() }
    };
}

/// `uio_info::mmap`.
///
/// # Safety
///
/// As for [`open_cb`]; `vma` is the new mapping, whose `vm_ops` and `vm_private_data` this
/// callback may set.
unsafe extern "C" fn mmap_cb<T: Operations>(
    info: *mut bindings::uio_info,
    vma: *mut bindings::vm_area_struct,
) -> c_int {
    // SAFETY: As in `open_cb`; the UIO core holds `info_lock`, so the registration (and the
    // `Arc` whose count we raise below) is alive.
    let data = unsafe { data_of::<T>(info) };
    // SAFETY: `vma` is the new mapping being set up, not yet visible to anyone else.
    unsafe {
        // Map 0, whole: `fault_cb` relies on it starting at file offset 0.
        if (*vma).vm_pgoff != 0 || bindings::vma_pages(vma) as usize != data.map_pages() {
            return EINVAL.to_errno();
        }
        bindings::vm_flags_set(vma, (bindings::VM_DONTEXPAND | bindings::VM_DONTDUMP) as _);
        (*vma).vm_ops = &VmOps::<T>::OPS;
        // The mapping holds a reference to the driver data, dropped in `vma_close_cb`.
        arc_inc(ptr::from_ref(data));
        (*vma).vm_private_data = ptr::from_ref(data).cast_mut().cast();
    }
    0
}

/// `vm_operations_struct::open`.
///
/// # Safety
///
/// `vma` is a mapping set up by [`mmap_cb`] (or copied from one), whose `vm_private_data` is
/// what [`mmap_cb`] stored.
unsafe extern "C" fn vma_open_cb<T: Operations>(vma: *mut bindings::vm_area_struct) {
    // SAFETY: A copy or split of a mapping set up by `mmap_cb`: `vm_private_data` is an
    // `Arc<T>` pointer; the new mapping takes its own reference.
    unsafe { arc_inc((*vma).vm_private_data.cast::<T>()) };
}

/// Adds a reference to the `Arc<T>` whose data `p` points to.
///
/// # Safety
///
/// `p` must come from `Arc::into_raw` (or point to the data of a live `Arc<T>`).
unsafe fn arc_inc<T>(p: *const T) {
    // SAFETY: By the safety requirements; forgetting both handles leaves one more reference.
    let a = unsafe { Arc::from_raw(p) };
    core::mem::forget(a.clone());
    core::mem::forget(a);
}

/// `vm_operations_struct::close`.
///
/// # Safety
///
/// As for [`vma_open_cb`]; called once per mapping.
unsafe extern "C" fn vma_close_cb<T: Operations>(vma: *mut bindings::vm_area_struct) {
    // SAFETY: Drops the reference taken in `mmap_cb` or `vma_open_cb` for this mapping.
    unsafe { drop(Arc::from_raw((*vma).vm_private_data.cast::<T>())) };
}

/// `vm_operations_struct::fault`.
///
/// # Safety
///
/// `vmf` is a fault on a mapping set up by [`mmap_cb`], in process context with the mmap lock
/// held.
unsafe extern "C" fn fault_cb<T: Operations>(vmf: *mut bindings::vm_fault) -> bindings::vm_fault_t {
    // SAFETY: The memory manager passes a valid fault on a mapping set up by `mmap_cb`, which
    // holds a reference to `T` for as long as the mapping exists. Map 0 starts at file offset
    // 0 (`mmap_cb` checks it), so the fault's file page offset is the page of the map, also in
    // what is left of a mapping after a split (whose `vm_pgoff` is no longer 0).
    let (data, pgoff) = unsafe {
        let vma = (*vmf).__bindgen_anon_1.vma;
        (
            (&*(*vma).vm_private_data.cast::<T>()),
            (*vmf).__bindgen_anon_1.pgoff,
        )
    };
    match data.fault(pgoff) {
        Some(page) => {
            let (page, locked) = page.into_raw();
            // SAFETY: The memory manager takes over our page reference (and lock).
            unsafe { (*vmf).page = page };
            if locked {
                bindings::vm_fault_reason_VM_FAULT_LOCKED as bindings::vm_fault_t
            } else {
                0
            }
        }
        None => bindings::VM_FAULT_SIGBUS,
    }
}
