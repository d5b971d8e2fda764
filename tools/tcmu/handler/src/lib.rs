// SPDX-License-Identifier: GPL-2.0

//! A userspace TCMU handler: SCSI block command emulation over ram, file
//! and null backstores, on top of the `tcmu-ring` crate.

pub mod backstore;
pub mod daemon;
pub mod device;
pub mod scsi;
