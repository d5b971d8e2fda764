// SPDX-License-Identifier: GPL-2.0

//! TCMU in Rust: the LIO `user` backstore, which passes SCSI commands to a userspace handler
//! through a UIO shared-memory ring (see `Documentation/target/tcmu-design.rst` for the ABI and
//! `Documentation/target/tcmu-rs.rst` for this module's design).
//!
//! It registers the target backend `user`, like `target_core_user`; the two modules exclude
//! each other because the target core refuses a second backend of the same name.
//!
//! Locking order (`Documentation/target/tcmu-rs.rst`, "Locking", has the reasons):
//! `UserDev::cfg` -> `UserDev::uio` -> the UIO core's `info_lock` -> `Ring::st` -> the page
//! lock of a data page -> `Ring::mapping` -> `Ring::waker` (innermost, taken with any of them
//! held, or none). `Reclaimer::rings` is taken alone (the reclaim work copies the list, then
//! locks each ring).

// `pin_init!` of `Ring` and `RingState` expands past the default limit of 128.
#![recursion_limit = "256"]
// The driver has no `unsafe` code: what needs it is in `rust/kernel`.
#![forbid(unsafe_code)]

use kernel::{
    c_str,
    prelude::*,
    sync::Arc,
    target,
    timer::{ArcTimer, ArcWork},
    uio::RootDevice,
};

mod abi;
mod attrs;
mod blocks;
mod cmd_ring;
mod cmds;
mod complete;
mod device;
mod entry;
mod error;
mod fifo;
mod ids;
mod kstrto;
mod modparams;
mod netlink;
mod params;
mod placement;
mod race_delay;
mod reclaim;
mod response;
mod ringstate;
mod sense;
mod slots;
mod smallvec;
mod stats;
mod submit;
mod timeout;
mod tmr;
mod uio_ops;

use device::{Global, User};
use modparams::RECLAIMER;
use reclaim::Reclaimer;

module! {
    type: TcmuRs,
    name: "tcmu_rs",
    author: "TCMU in Rust developers",
    description: "TCM USER subsystem plugin (Rust)",
    license: "GPL",
    // The target core loads "target_core_<backend>" for an HBA of an unregistered backend.
    alias: ["target_core_user"],
}

struct TcmuRs {
    _backend: target::Registration<User>,
    reclaimer: Arc<Reclaimer>,
    module: &'static ThisModule,
}

impl kernel::Module for TcmuRs {
    fn init(module: &'static ThisModule) -> Result<Self> {
        // The netlink family first: its name clashes with the C module's, so loading next to
        // it fails here, cleanly, before anything else is set up.
        let nl = kernel::genetlink::Registration::new(module, netlink::Nl::new()?)?;
        let root = RootDevice::new(c_str!("tcmu_rs"), module)?;
        let reclaimer = Reclaimer::new()?;
        RECLAIMER.publish(module, reclaimer.clone());
        let backend = target::Registration::<User>::new(
            module,
            Global {
                root,
                nl,
                reclaimer: reclaimer.clone(),
            },
        );
        let backend = match backend {
            Ok(b) => b,
            Err(e) => {
                RECLAIMER.withdraw(module);
                return Err(e);
            }
        };
        pr_info!("TCMU in Rust loaded (ABI {})\n", abi::TCMU_VERSION);
        Ok(TcmuRs {
            _backend: backend,
            reclaimer,
            module,
        })
    }
}

impl Drop for TcmuRs {
    fn drop(&mut self) {
        // No device is left (each holds a reference on the module): stop the parameter's
        // access to the reclaimer, then wait for a reclaim still running.
        RECLAIMER.withdraw(self.module);
        // The timer twice: the work may arm it while being cancelled.
        ArcTimer::cancel(&*self.reclaimer);
        ArcWork::cancel_sync(&*self.reclaimer);
        ArcTimer::cancel(&*self.reclaimer);
    }
}
