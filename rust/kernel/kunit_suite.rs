// SPDX-License-Identifier: GPL-2.0

//! KUnit test suites written in Rust, for code inside modules and the kernel crate.
//!
//! Linux 6.12 runs Rust doctests through KUnit but has no way to declare a KUnit suite from Rust
//! code. `#[kunit_tests(suite)]` (in the prelude; it mirrors mainline's attribute of the same
//! name) fills that gap: on a module of `#[test]` functions it places a `struct kunit_suite`
//! in the `.kunit_test_suites` section, which KUnit runs at boot (built-in code) or when the
//! module is loaded, printing KTAP results to the kernel log. The module is only built with
//! `CONFIG_KUNIT`; inside it `assert!` and `assert_eq!` report to KUnit instead of panicking
//! (a failed check marks the case failed and the case goes on).
//!
//! ```ignore
//! #[kunit_tests(my_suite)]
//! mod tests {
//!     #[test]
//!     fn adds() {
//!         assert_eq!(1 + 1, 2);
//!     }
//! }
//! ```
//!
//! C header: [`include/kunit/test.h`](srctree/include/kunit/test.h)

use crate::bindings;
use crate::ffi::c_char;

/// The type of a KUnit test case function.
pub type RunCase = unsafe extern "C" fn(*mut bindings::kunit);

/// Builds a test case entry. Used by [`kunit_suite!`](crate::kunit_suite).
#[doc(hidden)]
pub const fn case(run: RunCase, name: *const c_char) -> bindings::kunit_case {
    // SAFETY: `kunit_case` is a plain C struct for which all-zero is the "unset" value.
    let mut c: bindings::kunit_case = unsafe { core::mem::zeroed() };
    c.run_case = Some(run);
    c.name = name;
    c
}

/// Builds the all-zero entry that ends a test case array.
#[doc(hidden)]
pub const fn case_end() -> bindings::kunit_case {
    // SAFETY: As in `case`.
    unsafe { core::mem::zeroed() }
}

/// Builds a suite called `name` running `cases` (a terminated array).
#[doc(hidden)]
pub const fn suite(name: &str, cases: *mut bindings::kunit_case) -> bindings::kunit_suite {
    // SAFETY: `kunit_suite` is a plain C struct for which all-zero is the "unset" value.
    let mut s: bindings::kunit_suite = unsafe { core::mem::zeroed() };
    let bytes = name.as_bytes();
    // The last byte stays NUL; longer names are cut.
    let mut i = 0;
    while i < bytes.len() && i < s.name.len() - 1 {
        s.name[i] = bytes[i] as c_char;
        i += 1;
    }
    s.test_cases = cases;
    s
}

/// Marks the running KUnit test as failed and logs `msg`; the test goes on.
#[doc(hidden)]
pub fn fail(file: &str, line: u32, msg: core::fmt::Arguments<'_>) {
    crate::kunit::err(format_args!(
        "    # {file}:{line}: EXPECTATION FAILED: {msg}\n"
    ));
    // SAFETY: FFI call without safety requirements.
    let test = unsafe { bindings::kunit_get_current_test() };
    if !test.is_null() {
        // SAFETY: `test` is the running test; KUnit reads `status` after the case returns, and
        // setting it is what `kunit_set_failure()` does.
        unsafe {
            core::ptr::write_volatile(
                core::ptr::addr_of_mut!((*test).status),
                bindings::kunit_status_KUNIT_FAILURE,
            )
        };
    }
}

/// Checks a condition inside a KUnit test case; on failure the case is marked failed and goes on.
#[macro_export]
macro_rules! kunit_expect {
    ($cond:expr $(,)?) => {
        if !$cond {
            $crate::kunit_suite::fail(file!(), line!(), format_args!("{}", stringify!($cond)));
        }
    };
    ($cond:expr, $($arg:tt)+) => {
        if !$cond {
            $crate::kunit_suite::fail(file!(), line!(), format_args!($($arg)+));
        }
    };
}

/// Checks that two values are equal inside a KUnit test case (see [`kunit_expect!`]).
#[macro_export]
macro_rules! kunit_expect_eq {
    ($left:expr, $right:expr $(,)?) => {
        match (&$left, &$right) {
            (l, r) => {
                if !(*l == *r) {
                    $crate::kunit_suite::fail(
                        file!(),
                        line!(),
                        format_args!(
                            "{} == {} ({:?} != {:?})",
                            stringify!($left),
                            stringify!($right),
                            l,
                            r
                        ),
                    );
                }
            }
        }
    };
}

/// Declares a KUnit suite `$suite` whose cases are the functions `fn()` listed. Used by
/// `#[kunit_tests]`.
#[doc(hidden)]
#[macro_export]
macro_rules! kunit_suite {
    ($suite:ident, [$($test:ident),+ $(,)?]) => {
        const _: () = {
            const N: usize = [$(stringify!($test)),+].len();
            static mut CASES: [$crate::bindings::kunit_case; N + 1] = [
                $($crate::kunit_suite::case(
                    {
                        unsafe extern "C" fn run(_test: *mut $crate::bindings::kunit) {
                            $test()
                        }
                        run
                    },
                    $crate::c_str!(stringify!($test)).as_char_ptr(),
                ),)+
                $crate::kunit_suite::case_end(),
            ];
            static mut SUITE: $crate::bindings::kunit_suite =
                $crate::kunit_suite::suite(
                    stringify!($suite),
                    // SAFETY: Only the address of `CASES` is taken.
                    unsafe { core::ptr::addr_of_mut!(CASES) }.cast(),
                );
            #[used]
            #[link_section = ".kunit_test_suites"]
            static mut SUITES: [*mut $crate::bindings::kunit_suite; 1] =
                // SAFETY: Only the address of `SUITE` is taken.
                [unsafe { core::ptr::addr_of_mut!(SUITE) }];
        };
    };
}
