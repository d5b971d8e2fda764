// SPDX-License-Identifier: GPL-2.0

//! The device's configfs attributes (`<dev>/attrib`) and actions (`<dev>/action`): their
//! table, and their show and store callbacks.

use crate::device::{cstring_of, event_id, uio_name, User};
use crate::{abi, kstrto, netlink, params};
use core::fmt::Write as _;
use core::sync::atomic::Ordering;
use kernel::{
    c_str, pr_warn_ratelimited,
    prelude::*,
    target::{AttrDef, Device, ShowPage},
};

/// Declares an enum of attributes and its table: the enum's value is the attribute's id
/// (its index in the table the target core gets), so that the two cannot disagree.
macro_rules! attr_table {
    ($(#[$m:meta])* $enum:ident, $table:ident: $($(#[$vm:meta])* $v:ident = $def:expr,)+) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        enum $enum {
            $($(#[$vm])* $v,)+
        }

        impl $enum {
            const ALL: &'static [$enum] = &[$($enum::$v,)+];

            /// The attribute with id `id`.
            fn from_id(id: usize) -> Option<Self> {
                Self::ALL.get(id).copied()
            }
        }

        /// The table of the attributes, by id.
        pub(crate) const $table: &[AttrDef] = &[$($def,)+];
    };
}

attr_table! {
    /// The attributes of `<dev>/attrib`, in the order of the C module.
    DevAttr, DEV_ATTRS:
    CmdTimeOut = AttrDef::rw(c_str!("cmd_time_out")),
    QfullTimeOut = AttrDef::rw(c_str!("qfull_time_out")),
    MaxDataAreaMb = AttrDef::ro(c_str!("max_data_area_mb")),
    DataPagesPerBlk = AttrDef::ro(c_str!("data_pages_per_blk")),
    CmdRingSizeMb = AttrDef::ro(c_str!("cmd_ring_size_mb")),
    DevConfig = AttrDef::rw(c_str!("dev_config")),
    DevSize = AttrDef::rw(c_str!("dev_size")),
    NlReplySupported = AttrDef::rw(c_str!("nl_reply_supported")),
    TmrNotification = AttrDef::rw(c_str!("tmr_notification")),
    EmulateWriteCache = AttrDef::rw(c_str!("emulate_write_cache")),
    /// Not in the C module: counters and ring/data use (read-only, skipped by saveconfig).
    Stats = AttrDef::ro(c_str!("stats")),
}

attr_table! {
    /// The actions of `<dev>/action`.
    Action, ACTION_ATTRS:
    BlockDev = AttrDef::rw(c_str!("block_dev")),
    ResetRing = AttrDef::wo(c_str!("reset_ring")),
    FreeKeptBuf = AttrDef::wo(c_str!("free_kept_buf")),
}

/// For an enabled device, announces a change to the handler (`RECONFIG_DEVICE`) and returns
/// its answer; `ESRCH` when no handler listens, as in C. Nothing to do before `enable`.
fn reconfig(dev: &Device<User>, r: netlink::Reconfig<'_>) -> Result {
    // Lock order: `cfg` before `uio`; neither is held while the handler answers.
    let nl_reply_supported = dev.cfg.lock().nl_reply_supported;
    let Some((uio_name, minor)) = dev.uio.lock().as_ref().map(event_id).transpose()? else {
        return Ok(());
    };
    let ev = netlink::DevEvent {
        uio_name: &uio_name,
        minor,
        dev_index: dev.index(),
        nl_reply_supported,
        reconfig: r,
    };
    netlink::Nl::send_event(&dev.backend_data().nl, abi::TCMU_CMD_RECONFIG_DEVICE, &ev)
        .inspect_err(|_| pr_warn_ratelimited!("{}: unable to reconfigure device\n", &*dev.name))
}

fn kerr(e: kstrto::KstrtoError) -> Error {
    Error::from_errno(e.to_errno())
}

/// Shows attribute `id` of `<dev>/attrib` (`Backend::dev_attr_show`).
pub(crate) fn dev_attr_show(dev: &Device<User>, id: usize, f: &mut ShowPage<'_>) -> Result {
    let st = &dev.settings;
    let r = match DevAttr::from_id(id) {
        Some(DevAttr::CmdTimeOut) => {
            writeln!(f, "{}", st.cmd_time_out_ms.load(Ordering::Relaxed) / 1000)
        }
        Some(DevAttr::QfullTimeOut) => {
            let q = st.qfull_time_out_ms.load(Ordering::Relaxed);
            writeln!(f, "{}", if q <= 0 { q } else { q / 1000 })
        }
        Some(DevAttr::TmrNotification) => {
            writeln!(
                f,
                "{}",
                u8::from(st.tmr_notification.load(Ordering::Relaxed))
            )
        }
        Some(DevAttr::EmulateWriteCache) => writeln!(f, "{}", u8::from(dev.write_cache())),
        Some(DevAttr::Stats) => match dev.uio.lock().as_ref() {
            Some(reg) => reg.data().write_stats(f),
            None => writeln!(f, "enabled 0"),
        },
        _ => {
            let p = dev.cfg.lock();
            match DevAttr::from_id(id) {
                Some(DevAttr::MaxDataAreaMb) => writeln!(f, "{}", p.data_area_mb),
                Some(DevAttr::DataPagesPerBlk) => writeln!(f, "{}", p.data_pages_per_blk),
                Some(DevAttr::CmdRingSizeMb) => writeln!(f, "{}", p.cmd_ring_size_mb()),
                Some(DevAttr::DevConfig) => f
                    .write_bytes(p.dev_config())
                    .and_then(|()| f.write_str("\n")),
                Some(DevAttr::DevSize) => writeln!(f, "{}", p.dev_size),
                Some(DevAttr::NlReplySupported) => writeln!(f, "{}", p.nl_reply_supported),
                _ => return Err(EINVAL),
            }
        }
    };
    r.map_err(|_| EINVAL)
}

/// Stores attribute `id` of `<dev>/attrib` (`Backend::dev_attr_store`).
pub(crate) fn dev_attr_store(dev: &Device<User>, id: usize, data: &[u8]) -> Result<usize> {
    let st = &dev.settings;
    match DevAttr::from_id(id) {
        Some(DevAttr::CmdTimeOut) => {
            if dev.export_count() > 0 {
                pr_warn_ratelimited!(
                    "{}: cannot set cmd_time_out while exports exist\n",
                    &*dev.name
                );
                return Err(EINVAL);
            }
            let v = kstrto::kstrtou32(data).map_err(kerr)?;
            st.cmd_time_out_ms
                .store(u64::from(v) * 1000, Ordering::Relaxed);
        }
        Some(DevAttr::QfullTimeOut) => {
            let v = kstrto::kstrtos32(data).map_err(kerr)?;
            let ms = match v {
                v if v >= 0 => i64::from(v) * 1000,
                -1 => -1,
                _ => {
                    pr_warn_ratelimited!("{}: invalid qfull_time_out {}\n", &*dev.name, v);
                    return Err(EINVAL);
                }
            };
            st.qfull_time_out_ms.store(ms, Ordering::Relaxed);
        }
        Some(DevAttr::DevConfig) => {
            let v = data.split(|&b| b == 0).next().unwrap_or(&[]);
            if v.is_empty() || v.len() > params::TCMU_CONFIG_LEN - 1 {
                return Err(EINVAL);
            }
            let c = cstring_of(&[v])?;
            reconfig(dev, netlink::Reconfig::DevConfig(&c))?;
            dev.cfg.lock().set_dev_config(v);
            // The handler finds its configuration in the UIO name (as C updates it).
            if let Some(reg) = dev.uio.lock().as_ref() {
                reg.set_name(uio_name(dev, v)?);
            }
        }
        Some(DevAttr::DevSize) => {
            let v = kstrto::kstrtoull(data).map_err(kerr)?;
            reconfig(dev, netlink::Reconfig::DevSize(v))?;
            dev.cfg.lock().dev_size = v;
        }
        Some(DevAttr::EmulateWriteCache) => {
            let v = kstrto::kstrtou8(data).map_err(kerr)?;
            reconfig(dev, netlink::Reconfig::WriteCache(v))?;
            dev.set_write_cache(v != 0);
        }
        Some(DevAttr::TmrNotification) => match kstrto::kstrtou8(data).map_err(kerr)? {
            v @ (0 | 1) => st.tmr_notification.store(v == 1, Ordering::Relaxed),
            v => {
                pr_warn_ratelimited!("{}: invalid tmr_notification value {}\n", &*dev.name, v);
                return Err(EINVAL);
            }
        },
        Some(DevAttr::NlReplySupported) => {
            let v = kstrto::kstrtoll(data).map_err(kerr)?;
            let v = i8::try_from(v).map_err(|_| ERANGE)?;
            dev.cfg.lock().nl_reply_supported = i32::from(v);
        }
        _ => return Err(EINVAL),
    }
    Ok(data.len())
}

/// Shows action `id` of `<dev>/action` (`Backend::action_show`).
pub(crate) fn action_show(dev: &Device<User>, id: usize, f: &mut ShowPage<'_>) -> Result {
    if Action::from_id(id) != Some(Action::BlockDev) {
        return Err(EINVAL);
    }
    let blocked = dev.settings.blocked.load(Ordering::Relaxed);
    writeln!(f, "{}", if blocked { "blocked" } else { "unblocked" }).map_err(|_| EINVAL)
}

/// Runs action `id` of `<dev>/action` (`Backend::action_store`).
pub(crate) fn action_store(dev: &Device<User>, id: usize, data: &[u8]) -> Result<usize> {
    let uio = dev.uio.lock();
    let Some(reg) = uio.as_ref() else {
        pr_warn_ratelimited!("{}: device is not configured\n", &*dev.name);
        return Err(EINVAL);
    };
    let ring = reg.data();
    match Action::from_id(id) {
        Some(Action::BlockDev) => match kstrto::kstrtou8(data).map_err(kerr)? {
            v @ (0 | 1) => ring.set_blocked(v == 1),
            v => {
                pr_warn_ratelimited!("{}: invalid block value {}\n", &*dev.name, v);
                return Err(EINVAL);
            }
        },
        Some(Action::ResetRing) => match kstrto::kstrtou8(data).map_err(kerr)? {
            v @ (1 | 2) => {
                if ring.reset(v) {
                    reg.notify();
                }
            }
            v => {
                pr_warn_ratelimited!("{}: invalid reset ring value {}\n", &*dev.name, v);
                return Err(EINVAL);
            }
        },
        Some(Action::FreeKeptBuf) => {
            let id = kstrto::kstrtou16(data).map_err(kerr)?;
            if ring.free_kept_buf(id)? {
                reg.notify();
            }
        }
        _ => return Err(EINVAL),
    }
    Ok(data.len())
}
