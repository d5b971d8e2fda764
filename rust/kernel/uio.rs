// SPDX-License-Identifier: GPL-2.0

//! Userspace I/O (UIO) devices: see `include/linux/uio_driver.h`.
//!
//! The abstraction arrives with the TCMU data path.
