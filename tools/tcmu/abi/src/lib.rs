// SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note

//! TCMU userspace ABI for host tools.
//!
//! The definitions live in `drivers/target/tcmu_rs/abi.rs`, which is shared
//! verbatim with the `tcmu_rs` kernel module. The tests of this crate compare
//! them with the C header `include/uapi/linux/target_core_user.h` (see
//! `build.rs`).

#![no_std]
#![forbid(unsafe_code)]

#[path = "../../../../drivers/target/tcmu_rs/abi.rs"]
pub mod abi;

pub use abi::*;
