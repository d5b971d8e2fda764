// SPDX-License-Identifier: GPL-2.0

//! Module parameters with their own parsing and formatting, like C's `module_param_cb()`.
//!
//! C header: [`include/linux/moduleparam.h`](srctree/include/linux/moduleparam.h)
//!
//! A parameter is a type implementing [`ParamOps`]; [`module_param_cb!`](crate::module_param_cb)
//! places its `struct kernel_param` in the module's `__param` section, where the module loader
//! finds it: it parses `name=value` at load time and shows the parameter in
//! `/sys/module/<module>/parameters/<name>`.
//!
//! The callbacks run before the module's `init` (for values given at load time) and later
//! from sysfs with the module's parameter lock held. Values a parameter stores live in
//! statics (atomics). State the module creates in `init` reaches the callbacks through a
//! [`ParamShared`]: `init` publishes it and `exit` withdraws it under the parameter lock, so
//! a callback either sees it whole or not at all.
//!
//! # Examples
//!
//! ```ignore
//! static LIMIT: AtomicU32 = AtomicU32::new(8);
//!
//! struct Limit;
//! impl kernel::module_param::ParamOps for Limit {
//!     fn set(_ctx: &ParamContext<'_>, val: &[u8]) -> Result {
//!         LIMIT.store(parse(val)?, Ordering::Relaxed);
//!         Ok(())
//!     }
//!     fn get(_ctx: &ParamContext<'_>, f: &mut ParamWriter<'_>) -> Result {
//!         writeln!(f, "{}", LIMIT.load(Ordering::Relaxed)).map_err(|_| EINVAL)
//!     }
//! }
//! kernel::module_param_cb!("limit", Limit, 0o644, "The limit.");
//! ```

use crate::{
    bindings,
    error::Result,
    ffi::{c_char, c_int},
    str::CStr,
    sync::Arc,
    ThisModule,
};
use core::{
    fmt,
    marker::PhantomData,
    ptr,
    sync::atomic::{AtomicPtr, Ordering},
};

/// Proof that a parameter callback is running: either at load time, before the module's
/// `init` (nothing is published yet), or from sysfs with the module's parameter lock held.
pub struct ParamContext<'a>(PhantomData<&'a ()>);

/// The text a parameter shows in sysfs (one page).
pub struct ParamWriter<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl ParamWriter<'_> {
    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.pos
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.pos == 0
    }
}

impl fmt::Write for ParamWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.pos.checked_add(s.len()).ok_or(fmt::Error)?;
        // Keep one byte for the terminating NUL sysfs does not need but C callers write.
        if end >= self.buf.len() {
            return Err(fmt::Error);
        }
        self.buf[self.pos..end].copy_from_slice(s.as_bytes());
        self.pos = end;
        Ok(())
    }
}

/// The behaviour of one module parameter.
pub trait ParamOps {
    /// Parses and stores a value: the text given at load time or written to sysfs (which may
    /// end with a newline; empty for a bare `name` at load time).
    fn set(ctx: &ParamContext<'_>, val: &[u8]) -> Result;

    /// Writes the current value for a sysfs read. The default shows nothing (for write-only
    /// parameters, whose sysfs file is not readable anyway).
    fn get(_ctx: &ParamContext<'_>, _f: &mut ParamWriter<'_>) -> Result {
        Ok(())
    }
}

/// # Safety
///
/// Called by the parameter code with `val` null or a NUL-terminated string.
unsafe extern "C" fn set_cb<T: ParamOps>(
    val: *const c_char,
    _kp: *const bindings::kernel_param,
) -> c_int {
    let bytes: &[u8] = if val.is_null() {
        &[]
    } else {
        // SAFETY: `val` is a NUL-terminated string, valid for this call.
        unsafe { core::ffi::CStr::from_ptr(val.cast()) }.to_bytes()
    };
    match T::set(&ParamContext(PhantomData), bytes) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// # Safety
///
/// Called by the parameter code with `buf` pointing to a page-sized buffer.
unsafe extern "C" fn get_cb<T: ParamOps>(
    buf: *mut c_char,
    _kp: *const bindings::kernel_param,
) -> c_int {
    // SAFETY: `param_attr_show()` passes a buffer of `PAGE_SIZE` bytes, ours for this call.
    let buf = unsafe { core::slice::from_raw_parts_mut(buf.cast::<u8>(), crate::page::PAGE_SIZE) };
    let mut w = ParamWriter { buf, pos: 0 };
    match T::get(&ParamContext(PhantomData), &mut w) {
        Ok(()) => {
            let n = w.pos;
            // `write_str` keeps `pos` below the buffer's length; `get_mut` makes that local.
            if let Some(b) = w.buf.get_mut(n) {
                *b = 0;
            }
            n as c_int
        }
        Err(e) => e.to_errno(),
    }
}

/// A `struct kernel_param_ops` (shareable: it holds only function pointers).
#[repr(transparent)]
pub struct KernelParamOps(bindings::kernel_param_ops);

// SAFETY: Only function pointers, never written after construction.
unsafe impl Sync for KernelParamOps {}

/// The operations of a parameter type.
pub struct OpsOf<T>(PhantomData<T>);

impl<T: ParamOps> OpsOf<T> {
    /// The ops of `T` (read-write).
    pub const RW: KernelParamOps = KernelParamOps(bindings::kernel_param_ops {
        flags: 0,
        set: Some(set_cb::<T>),
        get: Some(get_cb::<T>),
        free: None,
    });
    /// The ops of `T` without `get` (write-only parameters, as C's `reset_netlink`).
    pub const WO: KernelParamOps = KernelParamOps(bindings::kernel_param_ops {
        flags: 0,
        set: Some(set_cb::<T>),
        get: None,
        free: None,
    });
}

/// A `struct kernel_param`, as the loader reads it from the `__param` section.
#[repr(transparent)]
pub struct KernelParam(bindings::kernel_param);

// SAFETY: The loader and the parameter code only read it; the pointers it holds are to
// statics (name, ops) and to the module.
unsafe impl Sync for KernelParam {}

impl KernelParam {
    /// A parameter named `name` of `module` with `ops` and sysfs mode `perm`.
    ///
    /// Used by [`module_param_cb!`](crate::module_param_cb), which also rejects a
    /// world-writable `perm` at compile time.
    pub const fn new(
        name: &'static CStr,
        module: *mut bindings::module,
        ops: &'static KernelParamOps,
        perm: u16,
    ) -> Self {
        Self(bindings::kernel_param {
            name: name.as_char_ptr(),
            mod_: module,
            ops: &ops.0,
            perm,
            level: -1,
            flags: 0,
            __bindgen_anon_1: bindings::kernel_param__bindgen_ty_1 {
                arg: ptr::null_mut(),
            },
        })
    }
}

/// Copies a string into a NUL-terminated array (for `.modinfo` entries).
pub const fn modinfo<const N: usize>(s: &str) -> [u8; N] {
    let b = s.as_bytes();
    assert!(b.len() + 1 == N);
    let mut out = [0u8; N];
    let mut i = 0;
    while i < b.len() {
        out[i] = b[i];
        i += 1;
    }
    out
}

/// Declares a module parameter `name` of type `ops` (a [`ParamOps`]) with sysfs mode `perm`
/// (0: not in sysfs) and description `desc` (shown by `modinfo`). With `write_only`, reads
/// are not offered (C: ops without `get`).
///
/// Names get the `<module>.` prefix only for built-in code, as in C; this macro supports
/// loadable modules only.
#[macro_export]
macro_rules! module_param_cb {
    ($name:literal, $ops:ty, $perm:expr, $desc:literal) => {
        $crate::module_param_cb!(@emit $name, $ops, $perm, $desc, RW);
    };
    ($name:literal, $ops:ty, $perm:expr, $desc:literal, write_only) => {
        $crate::module_param_cb!(@emit $name, $ops, $perm, $desc, WO);
    };
    (@emit $name:literal, $ops:ty, $perm:expr, $desc:literal, $kind:ident) => {
        #[cfg(not(MODULE))]
        compile_error!("module_param_cb! supports loadable modules only");
        const _: () = {
            extern "C" {
                static __this_module: $crate::types::Opaque<$crate::bindings::module>;
            }
            const _: () = ::core::assert!(($perm) & 0o002 == 0, "world-writable module parameter");
            static OPS: $crate::module_param::KernelParamOps =
                $crate::module_param::OpsOf::<$ops>::$kind;
            #[link_section = "__param"]
            #[used(compiler)]
            static PARAM: $crate::module_param::KernelParam =
                $crate::module_param::KernelParam::new(
                    $crate::c_str!($name),
                    // SAFETY: Only the address of the module's `struct module` is taken.
                    unsafe { ::core::ptr::addr_of!(__this_module) }.cast_mut().cast(),
                    &OPS,
                    $perm,
                );
            const INFO: &str = concat!("parm=", $name, ":", $desc);
            #[link_section = ".modinfo"]
            #[used(compiler)]
            static MODINFO: [u8; INFO.len() + 1] = $crate::module_param::modinfo(INFO);
        };
    };
}

/// Module state that parameter callbacks may use: published by the module's `init`,
/// withdrawn by its `exit`, both under the module's parameter lock, which sysfs callbacks
/// hold. (Callbacks at load time run before `init`: they find nothing.)
pub struct ParamShared<T> {
    ptr: AtomicPtr<T>,
}

// SAFETY: It holds an `Arc<T>`, shared with the callbacks: `T` must be `Send + Sync`.
unsafe impl<T: Send + Sync> Sync for ParamShared<T> {}

impl<T: Send + Sync> ParamShared<T> {
    /// Nothing published.
    pub const fn new() -> Self {
        Self {
            ptr: AtomicPtr::new(ptr::null_mut()),
        }
    }

    fn swap(&self, module: &'static ThisModule, new: *mut T) -> *mut T {
        // SAFETY: `module` is this module (a valid `struct module` while it is loaded).
        unsafe { bindings::kernel_param_lock(module.as_ptr()) };
        let old = self.ptr.swap(new, Ordering::AcqRel);
        // SAFETY: Locked above.
        unsafe { bindings::kernel_param_unlock(module.as_ptr()) };
        old
    }

    fn drop_raw(old: *mut T) {
        if !old.is_null() {
            // SAFETY: Every non-null pointer stored came from `Arc::into_raw` and is owned here.
            drop(unsafe { Arc::from_raw(old) });
        }
    }

    /// Makes `v` visible to the callbacks (replacing what was published).
    pub fn publish(&self, module: &'static ThisModule, v: Arc<T>) {
        let old = self.swap(module, Arc::into_raw(v).cast_mut());
        Self::drop_raw(old);
    }

    /// Withdraws what was published; once this returns, no callback uses it.
    pub fn withdraw(&self, module: &'static ThisModule) {
        let old = self.swap(module, ptr::null_mut());
        Self::drop_raw(old);
    }

    /// A new reference to what is published (e.g. to queue work that outlives the callback).
    pub fn get_arc(&self, ctx: &ParamContext<'_>) -> Option<Arc<T>> {
        let r = self.get(ctx)?;
        // SAFETY: `r` points to the data of the published `Arc` (alive, see `get`): adding a
        // reference and handing it out keeps the count right.
        let a = unsafe { Arc::from_raw(ptr::from_ref(r)) };
        let b = a.clone();
        core::mem::forget(a);
        Some(b)
    }

    /// What is published, for the duration of a callback.
    pub fn get<'a>(&'a self, _ctx: &'a ParamContext<'_>) -> Option<&'a T> {
        let p = self.ptr.load(Ordering::Acquire);
        // SAFETY: A callback runs with the parameter lock held (sysfs) or before `init`
        // (nothing published); `withdraw` takes that lock, so the `Arc` stays alive while the
        // `ParamContext` (the callback) lives.
        (!p.is_null()).then(|| unsafe { &*p })
    }
}

impl<T: Send + Sync> Default for ParamShared<T> {
    fn default() -> Self {
        Self::new()
    }
}
