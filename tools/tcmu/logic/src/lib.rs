// SPDX-License-Identifier: GPL-2.0

//! Pure logic of the `tcmu_rs` kernel module, for host tests.
//!
//! The modules live in `drivers/target/tcmu_rs/` and are compiled verbatim
//! both into the kernel module (`mod cmd_ring;` etc. next to `mod abi;`) and
//! into this crate. They only use `core`, contain no `unsafe` code, take
//! their storage from the caller and never panic, whatever the values read
//! from the userspace handler.

#![no_std]
#![forbid(unsafe_code)]

#[path = "../../../../drivers/target/tcmu_rs/abi.rs"]
pub mod abi;

#[path = "../../../../drivers/target/tcmu_rs/cmd_ring.rs"]
pub mod cmd_ring;

#[path = "../../../../drivers/target/tcmu_rs/entry.rs"]
pub mod entry;

#[path = "../../../../drivers/target/tcmu_rs/response.rs"]
pub mod response;

#[path = "../../../../drivers/target/tcmu_rs/blocks.rs"]
pub mod blocks;

/// Where a command goes on the ring: its data blocks, entry size and iovecs.
#[path = "../../../../drivers/target/tcmu_rs/placement.rs"]
pub mod placement;

#[path = "../../../../drivers/target/tcmu_rs/ids.rs"]
pub mod ids;

#[path = "../../../../drivers/target/tcmu_rs/params.rs"]
pub mod params;

/// Number parsing of configfs attributes (`kstrtou32()` and friends).
#[path = "../../../../drivers/target/tcmu_rs/kstrto.rs"]
pub mod kstrto;

/// Validation of sense data from the handler before the target core sees it.
#[path = "../../../../drivers/target/tcmu_rs/sense.rs"]
pub mod sense;
