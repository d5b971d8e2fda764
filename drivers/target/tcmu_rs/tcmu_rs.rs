// SPDX-License-Identifier: GPL-2.0

//! TCMU in Rust: the LIO `user` backstore, which passes SCSI commands to a userspace handler
//! through a UIO shared-memory ring (see `Documentation/target/tcmu-design.rst`).
//!
//! It registers the target backend `user`, like `target_core_user`; the two modules exclude
//! each other because the target core refuses a second backend of the same name.

use kernel::{
    c_str, fmt, new_mutex,
    prelude::*,
    str::CString,
    sync::Mutex,
    target::{self, AttrList, Backend, Device, Hba, HwLimits},
};

mod abi;

module! {
    type: TcmuRs,
    name: "tcmu_rs",
    author: "TCMU in Rust developers",
    description: "TCM USER subsystem plugin (Rust)",
    license: "GPL",
    // The target core loads "target_core_<backend>" for an HBA of an unregistered backend.
    alias: ["target_core_user"],
}

/// Defaults of the C module for a device that has not been given other values.
const DEF_HW_BLOCK_SIZE: u32 = 512;
const DEF_HW_MAX_SECTORS: u32 = 128;
const DEF_HW_QUEUE_DEPTH: u32 = 128;

struct User;

/// One `user_<n>` HBA.
struct UserHba {
    host_id: u32,
}

/// One `user` device.
#[pin_data]
struct UserDev {
    name: CString,
    #[pin]
    cfg: Mutex<DevConfig>,
}

/// What the `control` attribute sets.
struct DevConfig {
    dev_size: u64,
}

impl Backend for User {
    const NAME: &'static CStr = c_str!("user");
    const INQUIRY_PROD: &'static CStr = c_str!("USER");
    const INQUIRY_REV: &'static CStr = c_str!("2.0");

    type HbaData = UserHba;
    type DevData = UserDev;

    fn attach_hba(host_id: u32) -> Result<UserHba> {
        Ok(UserHba { host_id })
    }

    fn alloc_device(_hba: &Hba<Self>, name: &CStr) -> impl PinInit<UserDev, Error> {
        try_pin_init!(UserDev {
            name: CString::try_from_fmt(fmt!("{}", name))?,
            cfg <- new_mutex!(DevConfig { dev_size: 0 }),
        })
    }

    fn configure_device(dev: &Device<Self>) -> Result {
        dev.set_hw_limits(HwLimits {
            block_size: DEF_HW_BLOCK_SIZE,
            max_sectors: DEF_HW_MAX_SECTORS,
            queue_depth: DEF_HW_QUEUE_DEPTH,
        });
        pr_info!(
            "configured device {} on hba {}\n",
            &*dev.name,
            dev.hba().data().host_id
        );
        Ok(())
    }

    fn destroy_device(dev: &Device<Self>) {
        pr_info!("destroyed device {}\n", &*dev.name);
    }

    fn set_params(_dev: &Device<Self>, params: &[u8]) -> Result<usize> {
        Ok(params.len())
    }

    fn show_params(dev: &Device<Self>, f: &mut dyn core::fmt::Write) -> core::fmt::Result {
        let size = dev.cfg.lock().dev_size;
        writeln!(f, "Config: {} Size: {}", &*dev.name, size)
    }

    fn last_lba(dev: &Device<Self>) -> u64 {
        let size = dev.cfg.lock().dev_size;
        let bs = u64::from(dev.block_size().max(1));
        (size / bs).saturating_sub(1)
    }
}

struct TcmuRs {
    _backend: target::Registration<User>,
}

impl kernel::Module for TcmuRs {
    fn init(module: &'static ThisModule) -> Result<Self> {
        let attrs = AttrList::passthrough(GFP_KERNEL)?;
        let backend = target::Registration::<User>::new(module, Some(attrs), None)?;
        pr_info!("TCMU in Rust loaded (ABI {})\n", abi::TCMU_VERSION);
        Ok(TcmuRs { _backend: backend })
    }
}

fn kunit_len_op_roundtrip() {
    let v = abi::hdr_set_len(abi::hdr_set_op(0, abi::Opcode::Cmd), 4096);
    kernel::kunit_expect_eq!(abi::hdr_get_opcode(v), Ok(abi::Opcode::Cmd));
    kernel::kunit_expect_eq!(abi::hdr_get_len(v), 4096);
}

fn kunit_mailbox_layout() {
    kernel::kunit_expect_eq!(core::mem::offset_of!(abi::Mailbox, cmd_tail), 64);
}

kernel::kunit_tests!(tcmu_rs_abi, [kunit_len_op_roundtrip, kunit_mailbox_layout]);
