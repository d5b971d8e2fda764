// SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note

//! The generic netlink interface of TCMU (`enum tcmu_genl_cmd`, `enum tcmu_genl_attr`), and
//! the family name, version and multicast group that `target_core_user.c` defines. Part of
//! [`abi`](super), which re-exports it: shared like it with the host crates.

#![allow(dead_code, unreachable_pub)]

use super::UnknownValue;

/// Generic netlink family name of TCMU.
pub const TCMU_GENL_FAMILY_NAME: &str = "TCM-USER";
/// Generic netlink family name of TCMU, as a C string.
pub const TCMU_GENL_FAMILY_NAME_C: &core::ffi::CStr = c"TCM-USER";
/// Generic netlink family version of TCMU.
pub const TCMU_GENL_VERSION: u8 = 2;
/// Name of the TCMU generic netlink multicast group (`TCMU_MCGRP_CONFIG`).
pub const TCMU_GENL_MCGRP_CONFIG_NAME: &str = "config";
/// Name of the TCMU generic netlink multicast group, as a C string.
pub const TCMU_GENL_MCGRP_CONFIG_NAME_C: &core::ffi::CStr = c"config";

/// Netlink command: unspecified.
pub const TCMU_CMD_UNSPEC: u8 = 0;
/// Netlink command (event): a device was added.
pub const TCMU_CMD_ADDED_DEVICE: u8 = 1;
/// Netlink command (event): a device was removed.
pub const TCMU_CMD_REMOVED_DEVICE: u8 = 2;
/// Netlink command (event): a device was reconfigured.
pub const TCMU_CMD_RECONFIG_DEVICE: u8 = 3;
/// Netlink command (reply): userspace finished handling `ADDED_DEVICE`.
pub const TCMU_CMD_ADDED_DEVICE_DONE: u8 = 4;
/// Netlink command (reply): userspace finished handling `REMOVED_DEVICE`.
pub const TCMU_CMD_REMOVED_DEVICE_DONE: u8 = 5;
/// Netlink command (reply): userspace finished handling `RECONFIG_DEVICE`.
pub const TCMU_CMD_RECONFIG_DEVICE_DONE: u8 = 6;
/// Netlink command: userspace sets netlink features.
pub const TCMU_CMD_SET_FEATURES: u8 = 7;
/// Highest netlink command value (`TCMU_CMD_MAX`).
pub const TCMU_CMD_MAX: u8 = TCMU_CMD_SET_FEATURES;

/// Generic netlink command of the TCMU family (`enum tcmu_genl_cmd`).
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GenlCmd {
    /// [`TCMU_CMD_UNSPEC`].
    Unspec = TCMU_CMD_UNSPEC,
    /// [`TCMU_CMD_ADDED_DEVICE`].
    AddedDevice = TCMU_CMD_ADDED_DEVICE,
    /// [`TCMU_CMD_REMOVED_DEVICE`].
    RemovedDevice = TCMU_CMD_REMOVED_DEVICE,
    /// [`TCMU_CMD_RECONFIG_DEVICE`].
    ReconfigDevice = TCMU_CMD_RECONFIG_DEVICE,
    /// [`TCMU_CMD_ADDED_DEVICE_DONE`].
    AddedDeviceDone = TCMU_CMD_ADDED_DEVICE_DONE,
    /// [`TCMU_CMD_REMOVED_DEVICE_DONE`].
    RemovedDeviceDone = TCMU_CMD_REMOVED_DEVICE_DONE,
    /// [`TCMU_CMD_RECONFIG_DEVICE_DONE`].
    ReconfigDeviceDone = TCMU_CMD_RECONFIG_DEVICE_DONE,
    /// [`TCMU_CMD_SET_FEATURES`].
    SetFeatures = TCMU_CMD_SET_FEATURES,
}

impl GenlCmd {
    /// Decodes a raw netlink command; unknown values are returned as an error.
    pub const fn from_raw(raw: u8) -> Result<Self, UnknownValue> {
        match raw {
            TCMU_CMD_UNSPEC => Ok(Self::Unspec),
            TCMU_CMD_ADDED_DEVICE => Ok(Self::AddedDevice),
            TCMU_CMD_REMOVED_DEVICE => Ok(Self::RemovedDevice),
            TCMU_CMD_RECONFIG_DEVICE => Ok(Self::ReconfigDevice),
            TCMU_CMD_ADDED_DEVICE_DONE => Ok(Self::AddedDeviceDone),
            TCMU_CMD_REMOVED_DEVICE_DONE => Ok(Self::RemovedDeviceDone),
            TCMU_CMD_RECONFIG_DEVICE_DONE => Ok(Self::ReconfigDeviceDone),
            TCMU_CMD_SET_FEATURES => Ok(Self::SetFeatures),
            _ => Err(UnknownValue(raw as u32)),
        }
    }

    /// Returns the raw netlink command value.
    pub const fn as_raw(self) -> u8 {
        self as u8
    }
}

/// Netlink attribute: unspecified.
pub const TCMU_ATTR_UNSPEC: u16 = 0;
/// Netlink attribute: device name (string).
pub const TCMU_ATTR_DEVICE: u16 = 1;
/// Netlink attribute: UIO minor number (u32).
pub const TCMU_ATTR_MINOR: u16 = 2;
/// Netlink attribute: padding for 64-bit attributes.
pub const TCMU_ATTR_PAD: u16 = 3;
/// Netlink attribute: device config string (string).
pub const TCMU_ATTR_DEV_CFG: u16 = 4;
/// Netlink attribute: device size in bytes (u64).
pub const TCMU_ATTR_DEV_SIZE: u16 = 5;
/// Netlink attribute: write cache enabled (u8).
pub const TCMU_ATTR_WRITECACHE: u16 = 6;
/// Netlink attribute: command status in `*_DONE` replies (s32).
pub const TCMU_ATTR_CMD_STATUS: u16 = 7;
/// Netlink attribute: device index (u32).
pub const TCMU_ATTR_DEVICE_ID: u16 = 8;
/// Netlink attribute: userspace supports kernel command replies (u8).
pub const TCMU_ATTR_SUPP_KERN_CMD_REPLY: u16 = 9;
/// Highest netlink attribute value (`TCMU_ATTR_MAX`).
pub const TCMU_ATTR_MAX: u16 = TCMU_ATTR_SUPP_KERN_CMD_REPLY;

/// Generic netlink attribute of the TCMU family (`enum tcmu_genl_attr`).
#[repr(u16)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GenlAttr {
    /// [`TCMU_ATTR_UNSPEC`].
    Unspec = TCMU_ATTR_UNSPEC,
    /// [`TCMU_ATTR_DEVICE`].
    Device = TCMU_ATTR_DEVICE,
    /// [`TCMU_ATTR_MINOR`].
    Minor = TCMU_ATTR_MINOR,
    /// [`TCMU_ATTR_PAD`].
    Pad = TCMU_ATTR_PAD,
    /// [`TCMU_ATTR_DEV_CFG`].
    DevCfg = TCMU_ATTR_DEV_CFG,
    /// [`TCMU_ATTR_DEV_SIZE`].
    DevSize = TCMU_ATTR_DEV_SIZE,
    /// [`TCMU_ATTR_WRITECACHE`].
    Writecache = TCMU_ATTR_WRITECACHE,
    /// [`TCMU_ATTR_CMD_STATUS`].
    CmdStatus = TCMU_ATTR_CMD_STATUS,
    /// [`TCMU_ATTR_DEVICE_ID`].
    DeviceId = TCMU_ATTR_DEVICE_ID,
    /// [`TCMU_ATTR_SUPP_KERN_CMD_REPLY`].
    SuppKernCmdReply = TCMU_ATTR_SUPP_KERN_CMD_REPLY,
}

impl GenlAttr {
    /// Decodes a raw netlink attribute type; unknown values are returned as
    /// an error.
    pub const fn from_raw(raw: u16) -> Result<Self, UnknownValue> {
        match raw {
            TCMU_ATTR_UNSPEC => Ok(Self::Unspec),
            TCMU_ATTR_DEVICE => Ok(Self::Device),
            TCMU_ATTR_MINOR => Ok(Self::Minor),
            TCMU_ATTR_PAD => Ok(Self::Pad),
            TCMU_ATTR_DEV_CFG => Ok(Self::DevCfg),
            TCMU_ATTR_DEV_SIZE => Ok(Self::DevSize),
            TCMU_ATTR_WRITECACHE => Ok(Self::Writecache),
            TCMU_ATTR_CMD_STATUS => Ok(Self::CmdStatus),
            TCMU_ATTR_DEVICE_ID => Ok(Self::DeviceId),
            TCMU_ATTR_SUPP_KERN_CMD_REPLY => Ok(Self::SuppKernCmdReply),
            _ => Err(UnknownValue(raw as u32)),
        }
    }

    /// Returns the raw netlink attribute type.
    pub const fn as_raw(self) -> u16 {
        self as u16
    }
}
