// SPDX-License-Identifier: GPL-2.0

//! The `TCM-USER` generic netlink family: device events for handlers and their replies.
//!
//! Events (`ADDED_DEVICE`, `REMOVED_DEVICE`) go to the multicast group `config`. A handler that
//! announced `SUPP_KERN_CMD_REPLY` with `SET_FEATURES` answers each event with the matching
//! `*_DONE` command carrying `CMD_STATUS` and `DEVICE_ID`; the configfs write that caused the
//! event waits for that reply and returns its status, as in the C module. Unlike the C module
//! (which waits forever unless `reset_netlink` is written), the wait ends after
//! [`REPLY_TIMEOUT_MS`] with `ETIMEDOUT`, or at once on a signal.

use crate::abi;
use crate::slots::Slots;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use kernel::{
    c_str,
    genetlink::{self, AttrType, Info, Op},
    new_condvar, new_mutex, pr_warn_ratelimited,
    prelude::*,
    str::CStr,
    sync::{
        lock::{mutex::MutexBackend, Guard},
        Arc, CondVar, CondVarTimeoutResult, Mutex,
    },
    time::msecs_to_jiffies,
};

/// How long a configfs write waits for a handler's reply.
pub(crate) const REPLY_TIMEOUT_MS: u32 = 30_000;
/// Waiting writes check for `reset_netlink` this often.
const RESET_POLL_MS: u32 = 100;

/// Module parameter `block_netlink`: events that would wait for a reply fail with `EAGAIN`.
pub(crate) static BLOCKED: AtomicBool = AtomicBool::new(false);
/// Bumped by `reset_netlink`: writes waiting for a reply end with `EINTR`.
static RESET_GEN: AtomicU32 = AtomicU32::new(0);
/// Number of writes waiting for a reply.
static WAITING: AtomicU32 = AtomicU32::new(0);

/// `reset_netlink=1`: fails the writes waiting for a reply (within [`RESET_POLL_MS`]).
/// As in C, that needs `block_netlink` set while any waits.
pub(crate) fn reset_waiting() -> Result {
    if WAITING.load(Ordering::Acquire) == 0 {
        return Ok(());
    }
    if !BLOCKED.load(Ordering::Relaxed) {
        pr_err!("Could not reset device's netlink interface. Netlink is not blocked.\n");
        return Err(EBUSY);
    }
    RESET_GEN.fetch_add(1, Ordering::AcqRel);
    Ok(())
}

/// An errno that `kernel::error::code` lacks.
fn errno(e: u32) -> Error {
    Error::from_errno(-(e as i32))
}

/// One device waiting for a reply.
struct Waiter {
    dev_index: u32,
    cmd: u8,
    status: Option<i32>,
}

struct State {
    /// Whether the handler asked for replies (`tcmu_kern_cmd_reply_supported`).
    reply_supported: bool,
    /// Devices waiting for a reply.
    waiting: Slots<Waiter>,
}

impl State {
    fn find(&mut self, dev_index: u32) -> Option<&mut Waiter> {
        self.waiting.iter_mut().find(|w| w.dev_index == dev_index)
    }

    fn add(&mut self, w: Waiter) -> Result {
        self.waiting.add(w, GFP_KERNEL)
    }

    fn remove(&mut self, dev_index: u32) {
        self.waiting.remove_where(|w| w.dev_index == dev_index);
    }
}

#[pin_data]
pub(crate) struct Shared {
    #[pin]
    st: Mutex<State>,
    #[pin]
    cv: CondVar,
}

/// The family's data.
pub(crate) struct Nl {
    shared: Arc<Shared>,
}

impl Nl {
    pub(crate) fn new() -> Result<Self> {
        let shared = Arc::pin_init(
            pin_init!(Shared {
                st <- new_mutex!(State { reply_supported: false, waiting: Slots::new() }, "Nl::st"),
                cv <- new_condvar!("Nl::cv"),
            }),
            GFP_KERNEL,
        )?;
        Ok(Self { shared })
    }
}

const POLICY: [Option<AttrType>; abi::TCMU_ATTR_MAX as usize + 1] = {
    let mut p = [None; abi::TCMU_ATTR_MAX as usize + 1];
    p[abi::TCMU_ATTR_DEVICE as usize] = Some(AttrType::String);
    p[abi::TCMU_ATTR_MINOR as usize] = Some(AttrType::U32);
    p[abi::TCMU_ATTR_CMD_STATUS as usize] = Some(AttrType::S32);
    p[abi::TCMU_ATTR_DEVICE_ID as usize] = Some(AttrType::U32);
    p[abi::TCMU_ATTR_SUPP_KERN_CMD_REPLY as usize] = Some(AttrType::U8);
    p
};

impl genetlink::Family for Nl {
    const NAME: &'static CStr = c_str!("TCM-USER");
    const VERSION: u32 = 2;
    const POLICY: &'static [Option<AttrType>] = &POLICY;
    const OPS: &'static [Op] = &[
        Op {
            cmd: abi::TCMU_CMD_ADDED_DEVICE_DONE,
            admin: true,
        },
        Op {
            cmd: abi::TCMU_CMD_REMOVED_DEVICE_DONE,
            admin: true,
        },
        Op {
            cmd: abi::TCMU_CMD_RECONFIG_DEVICE_DONE,
            admin: true,
        },
        Op {
            cmd: abi::TCMU_CMD_SET_FEATURES,
            admin: true,
        },
    ];
    const MCGRPS: &'static [&'static CStr] = &[c_str!("config")];

    fn doit(&self, cmd: u8, info: &Info<'_>) -> Result {
        let mut st = self.shared.st.lock();
        if cmd == abi::TCMU_CMD_SET_FEATURES {
            if let Some(v) = info.u8(abi::TCMU_ATTR_SUPP_KERN_CMD_REPLY) {
                st.reply_supported = v != 0;
            }
            return Ok(());
        }
        let event = match cmd {
            abi::TCMU_CMD_ADDED_DEVICE_DONE => abi::TCMU_CMD_ADDED_DEVICE,
            abi::TCMU_CMD_REMOVED_DEVICE_DONE => abi::TCMU_CMD_REMOVED_DEVICE,
            abi::TCMU_CMD_RECONFIG_DEVICE_DONE => abi::TCMU_CMD_RECONFIG_DEVICE,
            _ => return Err(errno(kernel::bindings::EOPNOTSUPP)),
        };
        let (Some(status), Some(dev_index)) = (
            info.s32(abi::TCMU_ATTR_CMD_STATUS),
            info.u32(abi::TCMU_ATTR_DEVICE_ID),
        ) else {
            pr_warn_ratelimited!("netlink reply without status or device id\n");
            return Err(EINVAL);
        };
        let Some(w) = st.find(dev_index) else {
            pr_warn_ratelimited!(
                "netlink reply for device {} that waits for none\n",
                dev_index
            );
            return Err(ENODEV);
        };
        if w.cmd != event || w.status.is_some() {
            pr_warn_ratelimited!(
                "netlink reply {} does not match the pending event {} of device {}\n",
                cmd,
                w.cmd,
                dev_index
            );
            return Err(EINVAL);
        }
        w.status = Some(status);
        drop(st);
        self.shared.cv.notify_all();
        Ok(())
    }
}

/// The result of the handler's reply `status` for device `dev_index`: 0 or a negative errno.
/// Anything else is the handler's error, refused as `EINVAL` with a rate-limited warning
/// (`Error::from_errno` would warn without a limit, at every reply).
fn reply_result(status: i32, dev_index: u32) -> Result {
    const MAX_ERRNO: i32 = 4095;
    match status {
        0 => Ok(()),
        s if (-MAX_ERRNO..0).contains(&s) => Err(Error::from_errno(s)),
        s => {
            pr_warn_ratelimited!(
                "netlink reply for device {} with invalid status {}\n",
                dev_index,
                s
            );
            Err(EINVAL)
        }
    }
}

/// What an event says about a device.
pub(crate) struct DevEvent<'a> {
    pub(crate) uio_name: &'a CStr,
    pub(crate) minor: u32,
    pub(crate) dev_index: u32,
    /// The device's `nl_reply_supported` (negative: never wait).
    pub(crate) nl_reply_supported: i32,
    /// The change a `RECONFIG_DEVICE` event announces.
    pub(crate) reconfig: Reconfig<'a>,
}

/// The attribute a `RECONFIG_DEVICE` event carries.
pub(crate) enum Reconfig<'a> {
    None,
    DevConfig(&'a CStr),
    DevSize(u64),
    WriteCache(u8),
}

impl Nl {
    /// The value a device's `nl_reply_supported` takes at `enable` when it is not negative.
    pub(crate) fn reply_supported(&self) -> bool {
        self.shared.st.lock().reply_supported
    }

    /// Sends event `cmd` for a device and, if the handler replies to events, waits for its
    /// reply. Returns the handler's status (0 or a negative errno) or a send error.
    pub(crate) fn send_event(
        reg: &genetlink::Registration<Nl>,
        cmd: u8,
        ev: &DevEvent<'_>,
    ) -> Result {
        let nl = reg.data();
        let wait = ev.nl_reply_supported > 0 && nl.reply_supported();
        if wait {
            if BLOCKED.load(Ordering::Relaxed) {
                pr_warn_ratelimited!(
                    "Failing nl cmd {} on device {}. Interface is blocked.\n",
                    cmd,
                    ev.dev_index
                );
                return Err(EAGAIN);
            }
            let mut st = nl.shared.st.lock();
            if st.find(ev.dev_index).is_some() {
                return Err(EBUSY);
            }
            st.add(Waiter {
                dev_index: ev.dev_index,
                cmd,
                status: None,
            })?;
        }
        let sent = Self::multicast(reg, cmd, ev);
        // Nobody listening is fine for an addition: the handler may not be up yet.
        let sent = match sent {
            Err(e) if e == ESRCH && cmd == abi::TCMU_CMD_ADDED_DEVICE => Ok(()),
            r => r,
        };
        if !wait {
            return sent;
        }
        let gen = RESET_GEN.load(Ordering::Acquire);
        WAITING.fetch_add(1, Ordering::AcqRel);
        let mut st = nl.shared.st.lock();
        let res = sent.and_then(|()| Self::wait_reply(nl, &mut st, cmd, ev.dev_index, gen));
        st.remove(ev.dev_index);
        drop(st);
        WAITING.fetch_sub(1, Ordering::AcqRel);
        res
    }

    /// Sends event `cmd` about `ev` to the handlers listening.
    fn multicast(reg: &genetlink::Registration<Nl>, cmd: u8, ev: &DevEvent<'_>) -> Result {
        let mut msg = reg.message(cmd, GFP_KERNEL)?;
        msg.put_string(abi::TCMU_ATTR_DEVICE, ev.uio_name)?;
        msg.put_u32(abi::TCMU_ATTR_MINOR, ev.minor)?;
        msg.put_u32(abi::TCMU_ATTR_DEVICE_ID, ev.dev_index)?;
        match ev.reconfig {
            Reconfig::None => {}
            Reconfig::DevConfig(c) => msg.put_string(abi::TCMU_ATTR_DEV_CFG, c)?,
            Reconfig::DevSize(s) => msg.put_u64(abi::TCMU_ATTR_DEV_SIZE, s, abi::TCMU_ATTR_PAD)?,
            Reconfig::WriteCache(w) => msg.put_u8(abi::TCMU_ATTR_WRITECACHE, w)?,
        }
        msg.multicast(0)
    }

    /// Waits (with `st` locked, dropped while asleep) for the handler's reply to event `cmd`
    /// of device `dev_index`, for at most `REPLY_TIMEOUT_MS`, or until `reset_netlink` moves
    /// the reset generation on from `gen` or a signal comes.
    fn wait_reply(
        nl: &Nl,
        st: &mut Guard<'_, State, MutexBackend>,
        cmd: u8,
        dev_index: u32,
        gen: u32,
    ) -> Result {
        let mut left = msecs_to_jiffies(REPLY_TIMEOUT_MS);
        let slice = msecs_to_jiffies(RESET_POLL_MS);
        loop {
            if let Some(status) = st.find(dev_index).and_then(|w| w.status) {
                return reply_result(status, dev_index);
            }
            if RESET_GEN.load(Ordering::Acquire) != gen {
                pr_debug!("Aborting nl cmd {} on device {}\n", cmd, dev_index);
                return Err(EINTR);
            }
            if left == 0 {
                pr_warn_ratelimited!(
                    "no netlink reply from the handler for device {}\n",
                    dev_index
                );
                return Err(errno(kernel::bindings::ETIMEDOUT));
            }
            let t = left.min(slice);
            match nl.shared.cv.wait_interruptible_timeout(st, t) {
                CondVarTimeoutResult::Woken { jiffies } => left -= t - jiffies.min(t),
                CondVarTimeoutResult::Timeout => left -= t,
                CondVarTimeoutResult::Signal { .. } => return Err(EINTR),
            }
        }
    }
}
