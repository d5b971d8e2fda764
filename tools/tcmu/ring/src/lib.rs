// SPDX-License-Identifier: GPL-2.0

//! Safe userspace access to a TCMU command ring.
//!
//! * [`uio`]: discovery of `tcm-user/<hba>/<dev>/<config>` UIO devices,
//!   opening `/dev/uioN`, mapping `map0`, waiting for and sending
//!   notifications ([`uio::UioDevice`]).
//! * [`configfs`]: the device facts a handler needs (`info` Size and
//!   Config, `attrib/hw_block_size`, `attrib/hw_max_sectors`, ...).
//! * [`Ring`]: decoding of new entries with validation of everything read
//!   from the shared memory ([`entry`]), data buffers as byte slices,
//!   in-order and out-of-order completion with sense data and `READ_LEN`,
//!   UNKNOWN_OP marking, TMR notifications.
//! * [`mem::Region`]: bounds-checked volatile access to the mapping; also
//!   a plain heap buffer, so everything above except [`uio`] works without
//!   a kernel.
//! * [`fake::FakeKernel`]: the kernel's side of the ring, for tests.
//!
//! The only `unsafe` code is in [`mem`] (raw accesses behind bounds checks,
//! `mmap`/`munmap`) and the `mmap` call in [`uio`].

pub mod configfs;
pub mod entry;
pub mod fake;
pub mod mem;
pub mod pos;
pub mod ring;
pub mod uio;

pub use entry::{iovs_len, Command, Entry, Geometry, IoVec, RingError, Tmr};
pub use mem::{MemError, Region};
pub use ring::{Response, Ring, SAM_STAT_CHECK_CONDITION, SAM_STAT_GOOD};
pub use tcmu_abi as abi;
