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

// Device attributes (`<dev>/attrib`), in the order of the C module.
const A_CMD_TIME_OUT: usize = 0;
const A_QFULL_TIME_OUT: usize = 1;
const A_MAX_DATA_AREA_MB: usize = 2;
const A_DATA_PAGES_PER_BLK: usize = 3;
const A_CMD_RING_SIZE_MB: usize = 4;
const A_DEV_CONFIG: usize = 5;
const A_DEV_SIZE: usize = 6;
const A_NL_REPLY_SUPPORTED: usize = 7;
const A_TMR_NOTIFICATION: usize = 8;
const A_EMULATE_WRITE_CACHE: usize = 9;
const A_STATS: usize = 10;
// Device actions (`<dev>/action`).
const ACT_BLOCK_DEV: usize = 0;
const ACT_RESET_RING: usize = 1;
const ACT_FREE_KEPT_BUF: usize = 2;

/// The attributes of `<dev>/attrib`, by id (`A_*`).
pub(crate) const DEV_ATTRS: &[AttrDef] = &[
    AttrDef::rw(c_str!("cmd_time_out")),
    AttrDef::rw(c_str!("qfull_time_out")),
    AttrDef::ro(c_str!("max_data_area_mb")),
    AttrDef::ro(c_str!("data_pages_per_blk")),
    AttrDef::ro(c_str!("cmd_ring_size_mb")),
    AttrDef::rw(c_str!("dev_config")),
    AttrDef::rw(c_str!("dev_size")),
    AttrDef::rw(c_str!("nl_reply_supported")),
    AttrDef::rw(c_str!("tmr_notification")),
    AttrDef::rw(c_str!("emulate_write_cache")),
    // Not in the C module: counters and ring/data use (read-only, skipped by saveconfig).
    AttrDef::ro(c_str!("stats")),
];

/// The attributes of `<dev>/action`, by id (`ACT_*`).
pub(crate) const ACTION_ATTRS: &[AttrDef] = &[
    AttrDef::rw(c_str!("block_dev")),
    AttrDef::wo(c_str!("reset_ring")),
    AttrDef::wo(c_str!("free_kept_buf")),
];

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
    let r = match id {
        A_CMD_TIME_OUT => writeln!(f, "{}", st.cmd_time_out_ms.load(Ordering::Relaxed) / 1000),
        A_QFULL_TIME_OUT => {
            let q = st.qfull_time_out_ms.load(Ordering::Relaxed);
            writeln!(f, "{}", if q <= 0 { q } else { q / 1000 })
        }
        A_TMR_NOTIFICATION => {
            writeln!(
                f,
                "{}",
                u8::from(st.tmr_notification.load(Ordering::Relaxed))
            )
        }
        A_EMULATE_WRITE_CACHE => writeln!(f, "{}", u8::from(dev.write_cache())),
        A_STATS => match dev.uio.lock().as_ref() {
            Some(reg) => reg.data().write_stats(f),
            None => writeln!(f, "enabled 0"),
        },
        _ => {
            let p = dev.cfg.lock();
            match id {
                A_MAX_DATA_AREA_MB => writeln!(f, "{}", p.data_area_mb),
                A_DATA_PAGES_PER_BLK => writeln!(f, "{}", p.data_pages_per_blk),
                A_CMD_RING_SIZE_MB => writeln!(f, "{}", p.cmd_ring_size_mb()),
                A_DEV_CONFIG => f
                    .write_bytes(p.dev_config())
                    .and_then(|()| f.write_str("\n")),
                A_DEV_SIZE => writeln!(f, "{}", p.dev_size),
                A_NL_REPLY_SUPPORTED => writeln!(f, "{}", p.nl_reply_supported),
                _ => return Err(EINVAL),
            }
        }
    };
    r.map_err(|_| EINVAL)
}

/// Stores attribute `id` of `<dev>/attrib` (`Backend::dev_attr_store`).
pub(crate) fn dev_attr_store(dev: &Device<User>, id: usize, data: &[u8]) -> Result<usize> {
    let st = &dev.settings;
    match id {
        A_CMD_TIME_OUT => {
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
        A_QFULL_TIME_OUT => {
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
        A_DEV_CONFIG => {
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
        A_DEV_SIZE => {
            let v = kstrto::kstrtoull(data).map_err(kerr)?;
            reconfig(dev, netlink::Reconfig::DevSize(v))?;
            dev.cfg.lock().dev_size = v;
        }
        A_EMULATE_WRITE_CACHE => {
            let v = kstrto::kstrtou8(data).map_err(kerr)?;
            reconfig(dev, netlink::Reconfig::WriteCache(v))?;
            dev.set_write_cache(v != 0);
        }
        A_TMR_NOTIFICATION => match kstrto::kstrtou8(data).map_err(kerr)? {
            v @ (0 | 1) => st.tmr_notification.store(v == 1, Ordering::Relaxed),
            v => {
                pr_warn_ratelimited!("{}: invalid tmr_notification value {}\n", &*dev.name, v);
                return Err(EINVAL);
            }
        },
        A_NL_REPLY_SUPPORTED => {
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
    if id != ACT_BLOCK_DEV {
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
    match id {
        ACT_BLOCK_DEV => match kstrto::kstrtou8(data).map_err(kerr)? {
            v @ (0 | 1) => ring.set_blocked(v == 1),
            v => {
                pr_warn_ratelimited!("{}: invalid block value {}\n", &*dev.name, v);
                return Err(EINVAL);
            }
        },
        ACT_RESET_RING => match kstrto::kstrtou8(data).map_err(kerr)? {
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
        ACT_FREE_KEPT_BUF => {
            let id = kstrto::kstrtou16(data).map_err(kerr)?;
            if ring.free_kept_buf(id)? {
                reg.notify();
            }
        }
        _ => return Err(EINVAL),
    }
    Ok(data.len())
}
