// SPDX-License-Identifier: GPL-2.0

//! Delays that hold a race window open, so that kselftests can hit a race on purpose rather
//! than by luck. They exist only with `CONFIG_TCM_USER_RS_RACE_DELAYS` (a debugging option,
//! off in any real build), as write-only module parameters of milliseconds (at most 10000):
//!
//! * `race_delay_fault_ms`: a fault that found its data page sleeps before it hands the page
//!   to the memory manager (a reclaim must not free the page under it);
//! * `race_delay_unregister_ms`: device removal sleeps right after the UIO device is gone and
//!   before the ring leaves the reclaimer (a reclaim then must not reach the address space
//!   of a file closed in between).

#[cfg(CONFIG_TCM_USER_RS_RACE_DELAYS)]
use core::sync::atomic::{AtomicU32, Ordering};

/// A race window that a test can hold open.
#[derive(Clone, Copy)]
pub(crate) enum Window {
    Fault = 0,
    Unregister = 1,
}

#[cfg(CONFIG_TCM_USER_RS_RACE_DELAYS)]
static DELAYS_MS: [AtomicU32; 2] = [AtomicU32::new(0), AtomicU32::new(0)];

/// Sleeps in `w` for the time its parameter says (nothing without the option). Process
/// context, no spinlock held.
#[inline]
pub(crate) fn hold(w: Window) {
    #[cfg(CONFIG_TCM_USER_RS_RACE_DELAYS)]
    {
        let ms = DELAYS_MS[w as usize].load(Ordering::Relaxed);
        if ms > 0 {
            kernel::timer::msleep(ms);
        }
    }
    #[cfg(not(CONFIG_TCM_USER_RS_RACE_DELAYS))]
    let _ = w;
}

#[cfg(CONFIG_TCM_USER_RS_RACE_DELAYS)]
mod params {
    use super::{Ordering, Window, DELAYS_MS};
    use kernel::module_param::{ParamContext, ParamOps};
    use kernel::prelude::*;

    const MAX_MS: u32 = 10_000;

    fn set(w: Window, val: &[u8]) -> Result {
        match crate::kstrto::kstrtou32(val) {
            Ok(ms) if ms <= MAX_MS => {
                DELAYS_MS[w as usize].store(ms, Ordering::Relaxed);
                Ok(())
            }
            _ => Err(EINVAL),
        }
    }

    pub(crate) struct FaultMs;
    impl ParamOps for FaultMs {
        fn set(_ctx: &ParamContext<'_>, val: &[u8]) -> Result {
            set(Window::Fault, val)
        }
    }

    pub(crate) struct UnregisterMs;
    impl ParamOps for UnregisterMs {
        fn set(_ctx: &ParamContext<'_>, val: &[u8]) -> Result {
            set(Window::Unregister, val)
        }
    }

    kernel::module_param_cb!(
        "race_delay_fault_ms",
        FaultMs,
        0o200,
        "Test only: fault delay.",
        write_only
    );
    kernel::module_param_cb!(
        "race_delay_unregister_ms",
        UnregisterMs,
        0o200,
        "Test only: removal delay.",
        write_only
    );
}
