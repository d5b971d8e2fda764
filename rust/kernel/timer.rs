// SPDX-License-Identifier: GPL-2.0

//! Kernel timers whose owner lives in an [`Arc`].
//!
//! An [`ArcTimer`] embedded in a `T` holds a reference to its `Arc<T>` while it is pending, so
//! the owner cannot go away under a timer about to fire; [`ArcTimerCallback::expired`] receives
//! that reference. The callback runs in softirq context: it must not sleep, and should hand
//! real work to a workqueue.
//!
//! C header: [`include/linux/timer.h`](srctree/include/linux/timer.h)

use crate::{bindings, init::PinInit, prelude::*, sync::Arc, time::Jiffies, types::Opaque};
use core::marker::PhantomData;

/// The current time in jiffies.
pub fn jiffies() -> Jiffies {
    // SAFETY: `jiffies` is a word-sized counter updated by the timer interrupt; a volatile read
    // is what `READ_ONCE(jiffies)` does.
    unsafe { core::ptr::read_volatile(core::ptr::addr_of!(bindings::jiffies)) }
}

/// Whether jiffies value `a` is after `b` (wrap-safe, like `time_after`).
pub fn time_after(a: Jiffies, b: Jiffies) -> bool {
    (b.wrapping_sub(a) as isize) < 0
}

/// The callback of an [`ArcTimer`].
pub trait ArcTimerCallback: Sized + Send + Sync + 'static {
    /// Called in softirq context when the timer expires, with the reference the timer held.
    fn expired(this: Arc<Self>);
}

/// Where the [`ArcTimer`] is inside its owner.
///
/// # Safety
///
/// `OFFSET` must be the offset of a field of type `ArcTimer<Self>` in `Self`. Use
/// [`impl_has_arc_timer!`](crate::impl_has_arc_timer).
pub unsafe trait HasArcTimer: ArcTimerCallback {
    /// Offset of the timer field.
    const OFFSET: usize;
}

/// Implements [`HasArcTimer`] for `$t` whose timer is the field `$field`.
#[macro_export]
macro_rules! impl_has_arc_timer {
    ($t:ty, $field:ident) => {
        // SAFETY: `OFFSET` is the offset of the `ArcTimer` field, computed by the compiler.
        unsafe impl $crate::timer::HasArcTimer for $t {
            const OFFSET: usize = ::core::mem::offset_of!($t, $field);
        }
    };
}

/// A timer embedded in a `T` that always lives in an `Arc<T>`.
#[pin_data]
pub struct ArcTimer<T: HasArcTimer> {
    #[pin]
    timer: Opaque<bindings::timer_list>,
    _p: PhantomData<T>,
}

// SAFETY: Timer functions may be called from any thread; `T` is `Send + Sync`.
unsafe impl<T: HasArcTimer> Send for ArcTimer<T> {}
// SAFETY: As above.
unsafe impl<T: HasArcTimer> Sync for ArcTimer<T> {}

impl<T: HasArcTimer> ArcTimer<T> {
    /// A timer that is not pending.
    pub fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            timer <- Opaque::ffi_init(|t: *mut bindings::timer_list| {
                // SAFETY: `t` is valid for writes; `timer_setup` initialises it fully.
                unsafe { bindings::timer_setup(t, Some(expired_cb::<T>), 0) };
            }),
            _p: PhantomData,
        })
    }

    fn of(this: &T) -> *mut bindings::timer_list {
        let p = core::ptr::from_ref(this).cast::<u8>();
        let off = T::OFFSET + core::mem::offset_of!(Self, timer);
        // SAFETY: By `HasArcTimer`, an `ArcTimer<T>` is at `OFFSET` in `T`, and its `timer`
        // field at `off - OFFSET` in it.
        unsafe { Opaque::raw_get(p.add(off).cast::<Opaque<bindings::timer_list>>()) }
    }

    /// Makes the timer of `this` fire at `expires` (jiffies), or moves it there if pending.
    pub fn arm(this: &Arc<T>, expires: Jiffies) {
        let t = Self::of(this);
        let r = Arc::into_raw(this.clone());
        // SAFETY: The timer was set up by `new`; the pending timer owns the reference `r`.
        if unsafe { bindings::mod_timer(t, expires) } != 0 {
            // It was pending and already held a reference: drop ours.
            // SAFETY: `r` came from `into_raw` just above.
            drop(unsafe { Arc::from_raw(r) });
        }
    }

    /// Makes the timer of `this` fire at `expires` only if it is not pending, or pending for
    /// later than `expires` (`timer_reduce()`: atomic, so of two racing calls the earlier
    /// deadline wins).
    pub fn arm_earlier(this: &Arc<T>, expires: Jiffies) {
        let t = Self::of(this);
        let r = Arc::into_raw(this.clone());
        // SAFETY: The timer was set up by `new`; if it was not pending, it now is and owns the
        // reference `r`.
        if unsafe { bindings::timer_reduce(t, expires) } != 0 {
            // It was pending and already held a reference: drop ours.
            // SAFETY: `r` came from `into_raw` just above.
            drop(unsafe { Arc::from_raw(r) });
        }
    }

    /// Stops the timer of `this` and waits for a running callback. Must not be called from the
    /// callback itself.
    pub fn cancel(this: &T) {
        let t = Self::of(this);
        // SAFETY: The timer was set up by `new`.
        if unsafe { bindings::timer_delete_sync(t) } != 0 {
            // It was pending: drop the reference it held.
            // SAFETY: A pending timer holds one reference from `arm`.
            drop(unsafe { Arc::from_raw(core::ptr::from_ref(this)) });
        }
    }
}

/// The `timer_list` callback.
///
/// # Safety
///
/// `t` is the timer of a live `ArcTimer` embedded in a `T`, armed by `ArcTimer::arm` with a
/// reference to its `Arc<T>` that this callback now owns.
unsafe extern "C" fn expired_cb<T: HasArcTimer>(t: *mut bindings::timer_list) {
    let off = T::OFFSET + core::mem::offset_of!(ArcTimer<T>, timer);
    // SAFETY: `t` is the timer of a `T` (see `of`); it fired, so it held the reference taken in
    // `arm`, which now passes to the callback.
    let this = unsafe { Arc::from_raw(t.cast::<u8>().sub(off).cast::<T>()) };
    T::expired(this);
}

/// The callback of an [`ArcWork`].
pub trait ArcWorkCallback: Sized + Send + Sync + 'static {
    /// Runs in process context (the system workqueue) with the reference the work held.
    fn run(this: Arc<Self>);
}

/// Where the [`ArcWork`] is inside its owner.
///
/// # Safety
///
/// `OFFSET` must be the offset of a field of type `ArcWork<Self>` in `Self`. Use
/// [`impl_has_arc_work!`](crate::impl_has_arc_work).
pub unsafe trait HasArcWork: ArcWorkCallback {
    /// Offset of the work field.
    const OFFSET: usize;
}

/// Implements [`HasArcWork`] for `$t` whose work item is the field `$field`.
#[macro_export]
macro_rules! impl_has_arc_work {
    ($t:ty, $field:ident) => {
        // SAFETY: `OFFSET` is the offset of the `ArcWork` field, computed by the compiler.
        unsafe impl $crate::timer::HasArcWork for $t {
            const OFFSET: usize = ::core::mem::offset_of!($t, $field);
        }
    };
}

/// A work item embedded in a `T` that lives in an `Arc<T>`; it holds a reference while
/// queued, and can be cancelled synchronously (unlike `kernel::workqueue` in this kernel), so
/// that nothing of a module runs after its last user is gone.
#[pin_data]
pub struct ArcWork<T: HasArcWork> {
    #[pin]
    work: Opaque<bindings::work_struct>,
    _p: PhantomData<T>,
}

// SAFETY: Work functions may be called from any thread; `T` is `Send + Sync`.
unsafe impl<T: HasArcWork> Send for ArcWork<T> {}
// SAFETY: As above.
unsafe impl<T: HasArcWork> Sync for ArcWork<T> {}

impl<T: HasArcWork> ArcWork<T> {
    /// A work item that is not queued.
    pub fn new(
        name: &'static crate::str::CStr,
        key: &'static crate::sync::LockClassKey,
    ) -> impl PinInit<Self> {
        pin_init!(Self {
            work <- Opaque::ffi_init(|w: *mut bindings::work_struct| {
                // SAFETY: `w` is valid for writes; this initialises it fully.
                unsafe {
                    bindings::init_work_with_key(
                        w,
                        Some(run_cb::<T>),
                        false,
                        name.as_char_ptr(),
                        key.as_ptr(),
                    )
                };
            }),
            _p: PhantomData,
        })
    }

    fn of(this: &T) -> *mut bindings::work_struct {
        let off = T::OFFSET + core::mem::offset_of!(Self, work);
        // SAFETY: By `HasArcWork`, the work item is at `off` in `T`.
        unsafe { Opaque::raw_get(core::ptr::from_ref(this).cast::<u8>().add(off).cast()) }
    }

    /// Queues the work of `this` on the system workqueue unless it is queued already. Can be
    /// called from any context.
    pub fn schedule(this: Arc<T>) {
        Self::queue_on(this, bindings::wq_misc_consts_WORK_CPU_UNBOUND as _);
    }

    /// As [`ArcWork::schedule`], on the system workqueue's worker of `cpu` (a CPU number the
    /// kernel gave, such as a command's submitting CPU; if it is offline the work runs
    /// elsewhere). A work that is queued already stays where it is.
    pub fn schedule_on(this: Arc<T>, cpu: i32) {
        Self::queue_on(this, cpu);
    }

    fn queue_on(this: Arc<T>, cpu: i32) {
        let w = Self::of(&this);
        let r = Arc::into_raw(this);
        // SAFETY: The work was set up by `new`; the queued work owns the reference `r`.
        let queued = unsafe { bindings::queue_work_on(cpu as _, bindings::system_wq, w) };
        if !queued {
            // Already queued (with its own reference).
            // SAFETY: `r` came from `into_raw` just above.
            drop(unsafe { Arc::from_raw(r) });
        }
    }

    /// Cancels the work of `this` and waits for it if it runs. Must not be called from it.
    pub fn cancel_sync(this: &T) {
        // SAFETY: The work was set up by `new`.
        if unsafe { bindings::cancel_work_sync(Self::of(this)) } {
            // It was queued: drop the reference it held.
            // SAFETY: A queued work holds one reference from `schedule`.
            drop(unsafe { Arc::from_raw(core::ptr::from_ref(this)) });
        }
    }
}

/// The `work_struct` callback.
///
/// # Safety
///
/// `w` is the work item of a live `ArcWork` embedded in a `T`, queued with a reference to its
/// `Arc<T>` that this callback now owns.
unsafe extern "C" fn run_cb<T: HasArcWork>(w: *mut bindings::work_struct) {
    let off = T::OFFSET + core::mem::offset_of!(ArcWork<T>, work);
    // SAFETY: `w` is the work of a `T` (see `of`), queued with the reference taken in
    // `schedule`, which passes to the callback.
    let this = unsafe { Arc::from_raw(w.cast::<u8>().sub(off).cast::<T>()) };
    T::run(this);
}

/// The CPU the caller runs on, as a placement hint (for [`ArcWork::schedule_on`], say): the
/// caller may move to another CPU right after, unless it runs with preemption disabled.
pub fn current_cpu() -> i32 {
    // SAFETY: Reads the per-CPU CPU number; no other requirement.
    unsafe { bindings::raw_smp_processor_id() }
}

/// Sleeps for at least `ms` milliseconds (uninterruptibly). Process context only; upstream's
/// `kernel::time::delay::fsleep` is the later equivalent.
pub fn msleep(ms: u32) {
    // SAFETY: `msleep` only sleeps; callers are in process context, where sleeping is allowed.
    unsafe { bindings::msleep(ms) };
}
