// SPDX-License-Identifier: GPL-2.0

//! The `user` backend: its module-wide data, HBAs and devices (`UserDev`, their settings), and
//! the target core's callbacks: configure, enable, destroy, control parameters, commands and
//! task management.

use crate::modparams::limits;
use crate::params::{self, Params};
use crate::reclaim::Reclaimer;
use crate::ringstate::Ring;
use crate::tmr::tmr_type;
use crate::{abi, attrs, netlink, race_delay, THIS_MODULE};
use core::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use kernel::{
    c_str, fmt, new_mutex, pr_warn_ratelimited,
    prelude::*,
    str::CString,
    sync::{Arc, Mutex},
    target::{
        self, AttrDef, Backend, Device, Hba, HwLimits, PendingCmd, Rejected, ShowPage,
        TCM_LOGICAL_UNIT_COMMUNICATION_FAILURE,
    },
    uio::{self, RootDevice},
};

/// Defaults the C module applies at `enable`.
const DEF_HW_BLOCK_SIZE: u32 = 512;
const DEF_HW_MAX_SECTORS: u32 = 128;
const DEF_HW_QUEUE_DEPTH: u32 = 128;
/// Default command timeout, and the qfull timeout when neither is set (`TCMU_TIME_OUT`).
const TCMU_TIME_OUT_MS: u64 = 30_000;

/// The `user` backend.
pub(crate) struct User;

/// Module-wide data: the parent of all UIO devices, the netlink family, the reclaimer.
pub(crate) struct Global {
    pub(crate) root: RootDevice,
    pub(crate) nl: kernel::genetlink::Registration<netlink::Nl>,
    pub(crate) reclaimer: Arc<Reclaimer>,
}

/// One `user_<n>` HBA.
pub(crate) struct UserHba {
    host_id: u32,
}

/// Device settings that configfs can change at any time, read on the I/O path.
pub(crate) struct Settings {
    /// `cmd_time_out` in ms; 0: commands never time out.
    pub(crate) cmd_time_out_ms: AtomicU64,
    /// `qfull_time_out` in ms; -1: use `cmd_time_out` (or the default), 0: fail at once.
    pub(crate) qfull_time_out_ms: AtomicI64,
    /// `action/block_dev`: new commands are refused with `LUN BUSY`.
    pub(crate) blocked: AtomicBool,
    /// `tmr_notification`: task management functions are passed to the handler.
    pub(crate) tmr_notification: AtomicBool,
}

impl Settings {
    /// How long a command may wait for ring space, or `None` to fail it at once.
    pub(crate) fn qfull_wait_ms(&self) -> Option<u64> {
        let q = self.qfull_time_out_ms.load(Ordering::Relaxed);
        let c = self.cmd_time_out_ms.load(Ordering::Relaxed);
        match q {
            0 => None,
            q if q > 0 => Some(q as u64),
            _ if c > 0 => Some(c),
            _ => Some(TCMU_TIME_OUT_MS),
        }
    }
}

/// One `user` device.
#[pin_data]
pub(crate) struct UserDev {
    pub(crate) name: CString,
    pub(crate) settings: Arc<Settings>,
    #[pin]
    pub(crate) cfg: Mutex<Params>,
    /// The UIO device and its ring, from `enable` until the device is destroyed.
    #[pin]
    pub(crate) uio: Mutex<Option<Pin<KBox<uio::Registration<Ring>>>>>,
    /// A batch of queued submissions is running: the handler is woken up at its end.
    plugged: AtomicBool,
    /// Commands went on the ring while plugged.
    notify_pending: AtomicBool,
}

/// What netlink events say to identify a device: its UIO name and minor.
pub(crate) fn event_id(reg: &Pin<KBox<uio::Registration<Ring>>>) -> Result<(CString, u32)> {
    Ok((reg.name()?, reg.minor()))
}

/// Wakes the handler up for new ring entries (counted in `attrib/stats`).
fn wake_handler(reg: &uio::Registration<Ring>) {
    reg.data().wakeups.fetch_add(1, Ordering::Relaxed);
    reg.notify();
}

/// The concatenation of `parts` as a C string (`EINVAL` if one holds a NUL byte).
pub(crate) fn cstring_of(parts: &[&[u8]]) -> Result<CString> {
    let mut v = KVec::new();
    for p in parts {
        v.extend_from_slice(p, GFP_KERNEL)?;
    }
    v.push(0, GFP_KERNEL)?;
    let c = kernel::str::CStr::from_bytes_with_nul(&v).map_err(|_| EINVAL)?;
    Ok(CString::try_from(c)?)
}

/// The UIO name of a device: `tcm-user/<hba>/<dev>[/<dev_config>]`, the config bytes as they
/// are (as C: the handler parses them).
pub(crate) fn uio_name(dev: &Device<User>, config: &[u8]) -> Result<CString> {
    let hba = dev.hba();
    let prefix = CString::try_from_fmt(fmt!("tcm-user/{}/{}", hba.data().host_id, &*dev.name))?;
    if config.is_empty() {
        Ok(prefix)
    } else {
        cstring_of(&[prefix.as_bytes(), b"/", config])
    }
}

impl params::WriteBytes for ShowPage<'_> {
    fn write_bytes(&mut self, bytes: &[u8]) -> core::fmt::Result {
        ShowPage::write_bytes(self, bytes)
    }
}

impl Backend for User {
    const NAME: &'static CStr = c_str!("user");
    const INQUIRY_PROD: &'static CStr = c_str!("USER");
    const INQUIRY_REV: &'static CStr = c_str!("2.0");
    // As C: no task attribute ordering by the target core (the handler sees the commands as
    // they come); alua_support and pgr_support may be switched off.
    const TRANSPORT_FLAGS_DEFAULT: u8 = target::TRANSPORT_FLAG_PASSTHROUGH;
    const TRANSPORT_FLAGS_CHANGEABLE: u8 =
        target::TRANSPORT_FLAG_PASSTHROUGH_PGR | target::TRANSPORT_FLAG_PASSTHROUGH_ALUA;

    type Data = Global;
    type HbaData = UserHba;
    type DevData = UserDev;

    const DEV_ATTRS: &'static [AttrDef] = attrs::DEV_ATTRS;
    const ACTION_ATTRS: &'static [AttrDef] = attrs::ACTION_ATTRS;

    fn dev_attr_show(dev: &Device<Self>, id: usize, f: &mut ShowPage<'_>) -> Result {
        attrs::dev_attr_show(dev, id, f)
    }

    fn dev_attr_store(dev: &Device<Self>, id: usize, data: &[u8]) -> Result<usize> {
        attrs::dev_attr_store(dev, id, data)
    }

    fn action_show(dev: &Device<Self>, id: usize, f: &mut ShowPage<'_>) -> Result {
        attrs::action_show(dev, id, f)
    }

    fn action_store(dev: &Device<Self>, id: usize, data: &[u8]) -> Result<usize> {
        attrs::action_store(dev, id, data)
    }

    fn attach_hba(host_id: u32) -> Result<UserHba> {
        Ok(UserHba { host_id })
    }

    fn alloc_device(_hba: &Hba<Self>, name: &CStr) -> impl PinInit<UserDev, Error> {
        let settings = Arc::new(
            Settings {
                cmd_time_out_ms: AtomicU64::new(TCMU_TIME_OUT_MS),
                qfull_time_out_ms: AtomicI64::new(-1),
                blocked: AtomicBool::new(false),
                tmr_notification: AtomicBool::new(false),
            },
            GFP_KERNEL,
        );
        try_pin_init!(UserDev {
            name: CString::try_from_fmt(fmt!("{}", name))?,
            settings: settings?,
            cfg <- new_mutex!(Params::new(&limits()), "UserDev::cfg"),
            uio <- new_mutex!(None, "UserDev::uio"),
            plugged: AtomicBool::new(false),
            notify_pending: AtomicBool::new(false),
        })
    }

    fn configure_device(dev: &Device<Self>) -> Result {
        let global = dev.backend_data();
        // A device that did not opt out follows the handler's SET_FEATURES (as C, this sticks
        // even if enabling fails below).
        let p = {
            let mut c = dev.cfg.lock();
            if c.nl_reply_supported >= 0 {
                c.nl_reply_supported = i32::from(global.nl.data().reply_supported());
            }
            *c
        };
        let mut uio = dev.uio.lock();
        if uio.is_some() {
            return Err(EEXIST);
        }
        let ring = Ring::new(
            &dev.name,
            &p,
            dev.settings.clone(),
            global.reclaimer.clone(),
        )?;
        let name = uio_name(dev, p.dev_config())?;
        let reg = KBox::pin_init(
            uio::Registration::new(
                &dev.backend_data().root,
                &THIS_MODULE,
                name,
                c_str!("2"),
                c_str!("tcm-user command & data buffer"),
                ring,
            ),
            GFP_KERNEL,
        )?;
        let hw = dev.hw_limits();
        dev.set_hw_limits(HwLimits {
            block_size: if hw.block_size == 0 {
                DEF_HW_BLOCK_SIZE
            } else {
                hw.block_size
            },
            max_sectors: if hw.max_sectors == 0 {
                DEF_HW_MAX_SECTORS
            } else {
                hw.max_sectors
            },
            queue_depth: DEF_HW_QUEUE_DEPTH,
        });
        let (uio_name, minor) = event_id(&reg)?;
        global.reclaimer.add(reg.data().clone())?;
        *uio = Some(reg);
        // The handler reacts to the event by opening the device and writing its attributes and
        // actions (tcmu-runner blocks it during setup): no lock may be held while waiting.
        drop(uio);
        let ev = netlink::DevEvent {
            uio_name: &uio_name,
            minor,
            dev_index: dev.index(),
            nl_reply_supported: p.nl_reply_supported,
            reconfig: netlink::Reconfig::None,
        };
        if let Err(e) = netlink::Nl::send_event(&global.nl, abi::TCMU_CMD_ADDED_DEVICE, &ev) {
            if let Some(reg) = dev.uio.lock().take() {
                let ring = reg.data().clone();
                drop(reg);
                global.reclaimer.remove(&ring);
                ring.shutdown();
            }
            return Err(e);
        }
        Ok(())
    }

    fn destroy_device(dev: &Device<Self>) {
        let nl_reply_supported = dev.cfg.lock().nl_reply_supported;
        // Announce the removal while the device is still whole and unlocked: the handler
        // may block it or touch its attributes before answering.
        let id = dev.uio.lock().as_ref().map(event_id);
        if let Some(Ok((uio_name, minor))) = id {
            let ev = netlink::DevEvent {
                uio_name: &uio_name,
                minor,
                dev_index: dev.index(),
                nl_reply_supported,
                reconfig: netlink::Reconfig::None,
            };
            // As in C, the handler's answer does not stop the removal.
            let _ =
                netlink::Nl::send_event(&dev.backend_data().nl, abi::TCMU_CMD_REMOVED_DEVICE, &ev);
        }
        let reg = dev.uio.lock().take();
        if let Some(reg) = reg {
            let ring = reg.data().clone();
            // Unregister first: no more completions or opens race with the teardown.
            drop(reg);
            race_delay::hold(race_delay::Window::Unregister);
            dev.backend_data().reclaimer.remove(&ring);
            ring.shutdown();
        }
    }

    fn set_params(dev: &Device<Self>, params: &[u8]) -> Result<usize> {
        let mut p = dev.cfg.lock();
        let enabled = dev.uio.lock().is_some();
        let res = params::set_params(&mut p, params, enabled, &limits());
        // Block size and transfer limit go to the device attributes at once, as in C.
        let mut hw = dev.hw_limits();
        if p.hw_block_size != 0 {
            hw.block_size = p.hw_block_size;
        }
        if p.hw_max_sectors != 0 {
            hw.max_sectors = p.hw_max_sectors;
        }
        dev.set_hw_limits(hw);
        match res {
            Ok(()) => Ok(params.len()),
            Err(e) => {
                pr_warn_ratelimited!("{}: invalid control parameters\n", &*dev.name);
                Err(Error::from_errno(e.to_errno()))
            }
        }
    }

    fn tmr_notify(dev: &Device<Self>, tmf: target::Tmf, aborted: &mut dyn Iterator<Item = usize>) {
        let uio = dev.uio.lock();
        if let Some(reg) = uio.as_ref() {
            if reg.data().tmr(tmr_type(tmf), aborted) {
                reg.notify();
            }
        }
    }

    fn show_params(dev: &Device<Self>, f: &mut ShowPage<'_>) -> core::fmt::Result {
        params::format_info(&dev.cfg.lock(), f)
    }

    fn last_lba(dev: &Device<Self>) -> u64 {
        params::last_lba(dev.cfg.lock().dev_size, dev.block_size())
    }

    fn execute(dev: &Device<Self>, cmd: PendingCmd<Self>) -> Result<(), Rejected<Self>> {
        // Holding `uio` across the queueing keeps `destroy_device` (which takes it) from
        // tearing the device down under us even if the command completes meanwhile.
        let uio = dev.uio.lock();
        let Some(reg) = uio.as_ref() else {
            return Err(cmd.reject(TCM_LOGICAL_UNIT_COMMUNICATION_FAILURE));
        };
        // Plugged: one wake-up at `unplug` for the whole batch (as C). The order of the flag
        // operations (here and in `unplug`) makes sure one of the two sides notifies.
        if reg.data().queue(cmd, || reg.has_waiters())? {
            dev.notify_pending.store(true, Ordering::SeqCst);
            if !dev.plugged.load(Ordering::SeqCst)
                && dev.notify_pending.swap(false, Ordering::SeqCst)
            {
                wake_handler(reg);
            }
        }
        Ok(())
    }

    const PLUG: bool = true;

    fn plug(dev: &Device<Self>) -> bool {
        !dev.plugged.swap(true, Ordering::SeqCst)
    }

    fn unplug(dev: &Device<Self>) {
        dev.plugged.store(false, Ordering::SeqCst);
        if dev.notify_pending.swap(false, Ordering::SeqCst) {
            if let Some(reg) = dev.uio.lock().as_ref() {
                wake_handler(reg);
            }
        }
    }
}
