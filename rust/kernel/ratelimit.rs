// SPDX-License-Identifier: GPL-2.0

//! Rate limiting of log messages, like `printk_ratelimited()`.
//!
//! [`pr_warn_ratelimited!`](crate::pr_warn_ratelimited) and friends print at most
//! [`RateLimit::BURST`] messages per call site in every [`RateLimit::INTERVAL_NS`] window.

use crate::time::Ktime;
use core::sync::atomic::{AtomicI64, AtomicU32, Ordering};

/// The state of one rate-limited call site.
///
/// # Examples
///
/// The first [`RateLimit::BURST`] messages of a window pass; the others are counted, and the
/// count is reported with the first message of the next window.
///
/// ```
/// use kernel::ratelimit::RateLimit;
///
/// let site = RateLimit::new();
/// for _ in 0..RateLimit::BURST {
///     assert_eq!(site.check(), Some(0));
/// }
/// assert_eq!(site.check(), None);
/// assert_eq!(site.check(), None);
/// ```
pub struct RateLimit {
    window_start: AtomicI64,
    printed: AtomicU32,
    missed: AtomicU32,
}

impl Default for RateLimit {
    fn default() -> Self {
        Self::new()
    }
}

impl RateLimit {
    /// Length of a window (5 s, as `DEFAULT_RATELIMIT_INTERVAL`).
    pub const INTERVAL_NS: i64 = 5_000_000_000;
    /// Messages allowed per window (as `DEFAULT_RATELIMIT_BURST`).
    pub const BURST: u32 = 10;

    /// A call site that has printed nothing yet.
    pub const fn new() -> Self {
        Self {
            window_start: AtomicI64::new(i64::MIN),
            printed: AtomicU32::new(0),
            missed: AtomicU32::new(0),
        }
    }

    /// Whether a message may be printed now. Returns the number of messages suppressed in
    /// the previous window when a new window starts, so the caller can report it.
    pub fn check(&self) -> Option<u32> {
        let now = Ktime::ktime_get().to_ns();
        let start = self.window_start.load(Ordering::Relaxed);
        let mut missed = 0;
        if now.wrapping_sub(start) >= Self::INTERVAL_NS || start == i64::MIN {
            // Racing callers may both start a window: at worst a few extra messages.
            self.window_start.store(now, Ordering::Relaxed);
            self.printed.store(0, Ordering::Relaxed);
            missed = self.missed.swap(0, Ordering::Relaxed);
        }
        if self.printed.fetch_add(1, Ordering::Relaxed) < Self::BURST {
            Some(missed)
        } else {
            self.missed.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

/// Prints a warning at most [`RateLimit::BURST`] times per 5 s from this call site.
#[macro_export]
macro_rules! pr_warn_ratelimited (
    ($($arg:tt)*) => {{
        static RL: $crate::ratelimit::RateLimit = $crate::ratelimit::RateLimit::new();
        if let Some(missed) = RL.check() {
            if missed > 0 {
                $crate::pr_warn!("{} messages suppressed\n", missed);
            }
            $crate::pr_warn!($($arg)*);
        }
    }}
);

/// Prints an error at most [`RateLimit::BURST`] times per 5 s from this call site.
#[macro_export]
macro_rules! pr_err_ratelimited (
    ($($arg:tt)*) => {{
        static RL: $crate::ratelimit::RateLimit = $crate::ratelimit::RateLimit::new();
        if let Some(missed) = RL.check() {
            if missed > 0 {
                $crate::pr_err!("{} messages suppressed\n", missed);
            }
            $crate::pr_err!($($arg)*);
        }
    }}
);
